// State and helpers of the personality runtime (one per Linux process).
#pragma once

#include "kos/rootfs_image.h"
#include "kos/syscall.h"
#include "native.h"

namespace kos::rt {

using abi::u32;
using abi::u8;
using abi::u16;

// Linux errno values returned (negated) by the personality.
enum Errno : long {
    kEPERM = 1, kENOENT = 2, kEIO = 5, kEBADF = 9, kECHILD = 10, kENOMEM = 12, kEACCES = 13,
    kEFAULT = 14, kEEXIST = 17, kENOTDIR = 20, kEISDIR = 21, kEINVAL = 22, kEMFILE = 24,
    kENOTTY = 25, kESPIPE = 29, kEROFS = 30, kERANGE = 34, kENAMETOOLONG = 36, kENOSYS = 38,
    kEPIPE = 32, kELOOP = 40, kEPROTO = 71,
};

struct Launch {
    u32 argc = 0, envc = 0, uid = 0, gid = 0;
    const char* const* argv = nullptr; // pointers into launch strings (runtime heap)
    const char* const* envp = nullptr;
    const char* cwd = nullptr;
    const char* hostname = nullptr;
};

struct Runtime {
    abi::sys::RuntimeStartInfo info{};
    abi::rootfs::RootfsView rootfs;
    Launch launch;
    bool trace = false;
    u64 brk_start = 0, brk_cur = 0, brk_mapped = 0;
    char cwd[abi::rootfs::kMaxPath + 1] = {}; // set from the launch description
    u64 tsc_mult = 0; // ns = (tsc * tsc_mult) >> 32
    u64 rng_state[4] = {};
    u64 unknown_syscalls = 0;
};

extern Runtime g_rt;

// The lock serializing system calls over the runtime's shared state; a
// call that waits in the kernel (a pipe) drops it while it waits.
void runtime_lock();
void runtime_unlock();

// Output helpers (to the console, stream 2 = stderr).
void print(int stream, const char* s, u64 len);
void printf(int stream, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
[[noreturn]] void fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Files (fs.cc).
void fs_init();
// Resolves a path (absolute or relative to dirfd/cwd) to a rootfs entry
// index; returns the index or a negated errno.
i64 fs_resolve(int dirfd, const char* path, bool follow_last);
// Whether this process's label may read rootfs entry `entry` (the kernel
// maps only the files it may; rootfs_access.h).
bool rootfs_readable(u32 entry);

// Program loading (exec.cc): maps `path` and builds the initial stack; fills
// `frame` so that resuming it starts the program. Returns 0 or -errno.
// With `replace` (execve), the current program's mappings are removed once
// the new program has been checked; a failure before that changes nothing.
i64 exec_program(const char* path, const char* const* argv, const char* const* envp,
                 abi::sys::LinuxSyscallFrame* frame, bool replace = false);

// This process's pid, and its parent's << 32 (cached; fork empties the cache).
u64 process_self();

// The calling thread's block (at its GS base).
inline abi::sys::ThreadBlock* self_block() {
    u64 self;
    asm volatile("mov %%gs:%c1, %0" : "=r"(self) : "i"(__builtin_offsetof(abi::sys::ThreadBlock, self)));
    return reinterpret_cast<abi::sys::ThreadBlock*>(self);
}
// The first thread's block, where signals every thread blocks wait.
inline abi::sys::ThreadBlock* main_block() {
    return reinterpret_cast<abi::sys::ThreadBlock*>(abi::sys::kRuntimeStackTop);
}

inline u64 read_tsc() {
    abi::u32 lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (u64(hi) << 32) | lo;
}

// Lets other threads run while this one waits (for a deadline, a signal,
// another thread): the kernel does not count it as CPU time, from here
// until the system call returns.
inline void wait_yield() {
    self_block()->waited = 1;
    native(Sys::thread_yield, 1);
}

// Time and randomness (misc.cc).
void time_init();
u64 monotonic_ns();
u64 realtime_ns();
void random_fill(void* buf, u64 len);

// Strings.
inline u64 cstr_len(const char* s, u64 max) {
    u64 n = 0;
    while (n < max && s[n])
        ++n;
    return n;
}

} // namespace kos::rt
