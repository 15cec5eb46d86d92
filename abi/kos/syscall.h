// The native kos system calls: what ring-3 code (the POSIX personality
// runtime, native kos programs) asks of the microkernel.
//
// Calling convention: `syscall` executed from the runtime's text, number in
// rax, arguments in rdi, rsi, rdx, r10, r8, r9, result in rax (>= 0 success,
// negated Linux errno on failure). rcx and r11 are clobbered, everything else
// is preserved. A `syscall` executed anywhere else is a Linux system call and
// is handed to the personality runtime (see posix-personality/).
#pragma once

#include "kos/types.h"

namespace kos::abi::sys {

#define KOS_SYSCALLS(X)                                                                  \
    X(0, exit, "end the program: a0 = ExitKind, a1 = status or signal")                  \
    X(1, console_write, "a0 = stream (1, 2), a1 = buffer, a2 = length -> written")       \
    X(2, console_read, "a0 = buffer, a1 = length -> bytes read, 0 at end of input")      \
    X(3, vm_map, "a0 = addr hint, a1 = length, a2 = Prot, a3 = MapFlags -> address")     \
    X(4, vm_unmap, "a0 = addr, a1 = length")                                             \
    X(5, vm_protect, "a0 = addr, a1 = length, a2 = Prot")                                \
    X(6, set_fs_base, "a0 = FS base for the calling thread")                             \
    X(7, vm_map_image, "a0 = addr, a1 = length, a2 = rootfs offset, a3 = Prot: map "     \
                       "rootfs image pages read-only, without copying")                  \
    X(8, ipc_call, "a0 = channel handle, a1 = request (ipc::MessageHeader + payload), "   \
                   "a2 = request size, a3 = reply buffer, a4 = reply capacity -> reply size") \
    X(9, ipc_receive, "a0 = channel handle (server end), a1 = buffer, a2 = capacity, "     \
                      "a3 = ipc::ReceiveInfo* -> message size")                          \
    X(10, ipc_reply, "a0 = reply (ipc::MessageHeader + payload), a1 = size -> 0")         \
    X(11, handle_close, "a0 = handle")                                                   \
    X(12, handle_duplicate, "a0 = handle, a1 = rights (a subset) -> new handle")          \
    X(13, thread_yield, "let other runnable threads run; a0 = 1: the caller waits (its "  \
                        "time from here until ThreadBlock::wait_end_tsc is not CPU time)") \
    X(14, thread_create, "a0 = initial user registers (LinuxSyscallFrame*), a1 = FS base, " \
                         "a2 = u32 address to clear and futex-wake at exit (0: none) -> tid") \
    X(15, thread_exit, "a0 = u32 address to clear and futex-wake (0: none), a1 = status; " \
                       "the last thread's exit ends the task with that status")          \
    X(16, futex_wait, "a0 = u32 address, a1 = expected value -> 0 when woken, EAGAIN if " \
                      "the value differs")                                               \
    X(17, futex_wake, "a0 = u32 address, a1 = most threads to wake -> threads woken")     \
    X(18, vm_reset, "unmap every mapping except the pinned ones (for execve); only in a " \
                    "task with one thread")                                              \
    X(19, process_fork, "a0 = the child's initial user registers (LinuxSyscallFrame*) " \
                        "-> child pid (a copy of this task: memory, handles, one thread)") \
    X(20, process_wait, "a0 = pid (-1: any child), a1 = u32* Linux wait status, a2 = " \
                        "1: do not wait | 2: leave the child collectable | 4: report a stop " \
                        "(WUNTRACED) | 8: report a continuation (WCONTINUED) -> pid, 0, or ECHILD") \
    X(21, process_self, "-> pid | parent pid << 32")                                    \
    X(22, pipe_create, "a0 = u32[2]: the read handle, then the write handle")           \
    X(23, pipe_read, "a0 = read handle, a1 = buffer, a2 = length -> bytes, 0 at the "   \
                     "end; waits while the pipe is empty")                              \
    X(24, pipe_write, "a0 = write handle, a1 = buffer, a2 = length -> bytes; waits "    \
                      "while full, EPIPE without readers")                              \
    X(25, security_resolve, "a0 = SecurityName, a1 = name, a2 = length, a3 = class id "  \
                            "(permissions only) -> the id in the loaded policy; ENOENT " \
                            "if it has none such, ENOSYS without a policy")            \
    X(26, security_query, "object managers: a0 = subject task (ReceiveInfo::"            \
                          "sender_task), a1 = object label id, a2 = class id, a3 = "     \
                          "permission id -> 0 allowed, EACCES denied (audited as the "   \
                          "policy says)")                                               \
    X(27, ipc_call_grant, "ipc_call with a5 = const Grant*: a region of the caller's "  \
                          "memory the server may read (and write, with kGrantWrite) "    \
                          "until it replies, for payloads larger than a message")        \
    X(28, ipc_grant_read, "server: a0 = offset in the grant of the call it serves, a1 = " \
                          "buffer, a2 = length -> bytes copied")                         \
    X(29, ipc_grant_write, "server: a0 = offset in the grant, a1 = buffer, a2 = length " \
                           "-> bytes copied; EACCES unless the grant is writable")         \
    X(30, signal_disposition, "a0 = signals the process handles, a1 = signals it ignores " \
                              "(bit sig - 1): what process_kill does with them; a2 = 1: " \
                              "no SIGCHLD when a child stops or continues (SA_NOCLDSTOP)") \
    X(31, process_kill, "a0 = pid, a1 = signal (0: only check the pid) -> 0, ESRCH "     \
                        "without such a live process, EPERM unless it is of the caller's " \
                        "tree (its init process and all forked from it). SIGKILL, or a signal without a " \
                        "handler whose default ends a process, ends the target (its "    \
                        "wait status is the signal); a handled one is posted to the "    \
                        "target's ThreadBlock::pending_signals, run at its next call")     \
    X(32, pipe_poll, "a0 = pipe handle (either end) -> bit 0: a read would not wait "    \
                     "(data, or no writer left), bit 1: a write would not wait (room, " \
                     "or no reader left)")                                              \
    X(33, net_call, "a0 = net::NetCall* (kos/net.h): a socket operation of the VMM's "   \
                    "network service, checked by the policy -> its result; ENOSYS "      \
                    "when the VM has no network service")                                 \
    X(34, process_alarm, "a0 = ns until SIGALRM (0: cancel), a1 = ns between later ones " \
                         "(0: once); a0 = ~0: only ask -> ns that were left of the previous alarm")  \
    X(35, exec_check, "a0 = program path, a1 = length: may the caller execute it "     \
                      "(execute, its label to itself)? -> 0, EACCES (audited as the "   \
                      "policy says); 0 without a policy")                                \
    X(36, process_timer, "a0 = timer 1..10 | TimerClock << 8 | thread id << 32 (whose " \
                         "CPU time for kTimerThreadCpu; 0: the caller), a1 = ns until it is due " \
                         "(0: disarm; ~0: only ask), a2 = ns between expirations (0: "   \
                         "once), a3 = signal to post (0: none) | thread id << 32 (0: the " \
                         "process; else that thread, SIGEV_THREAD_ID) -> ns that were "   \
                         "left (timer 0 is process_alarm's); EINVAL for no such thread")  \
    X(37, file_call, "a0 = file::FileCall* (kos/file.h): an operation on a volume of the " \
                     "VMM's file service, checked by the policy -> its result; ENOENT " \
                     "when the path is in no volume")                               \
    X(38, cpu_time, "a0 = CpuClock, a1 = pid (of the caller's tree) or thread id of " \
                    "the caller's process (0: the caller's) -> CPU ns the scheduler gave " \
                    "it (ESRCH: none such)")                                           \
    X(39, thread_kill, "a0 = thread id of the caller's process, a1 = signal (0: only "  \
                       "check) -> 0, ESRCH: a thread-directed signal (tkill, tgkill)")   \
    X(40, process_kill_for_client, "the process server only, while it serves a "       \
                                   "request: a0 = pid, a1 = signal (0: only check) "     \
                                   "for the client, to a Linux process of another tree " \
                                   "-> 0, ESRCH, EPERM (not the process server), "       \
                                   "EACCES (security CLIENT -> TARGET process.signal "    \
                                   "denied, audited as the policy says)")                 \
    X(41, ipc_reply_receive, "server: ipc_reply of a0 = reply, a1 = size (its own "      \
                             "error is not reported), then ipc_receive on a2 = handle, " \
                             "a3 = buffer, a4 = capacity, a5 = ReceiveInfo*: one entry " \
                             "per request, and the client runs on this CPU")

// Memory a client lends the server for one call (ipc_call_grant): at most
// kMaxGrant bytes, never kernel memory.
inline constexpr u32 kGrantWrite = 1;
inline constexpr u64 kMaxGrant = 64ull << 20;
struct Grant {
    u64 addr;
    u64 size;
    u32 flags; // kGrantWrite
    u32 reserved;
};

// What a timer of process_timer counts (a0 >> 8): the monotonic clock, or
// CPU time the scheduler gave the process or the thread that set it.
enum TimerClock : u64 { kTimerMonotonic = 0, kTimerProcessCpu = 1, kTimerThreadCpu = 2 };
// Timers 9 and 10 are setitimer's ITIMER_VIRTUAL and ITIMER_PROF.
inline constexpr u64 kTimerVirtual = 9, kTimerProf = 10;

// Whose CPU time cpu_time reads.
enum CpuClock : u64 { kCpuProcess = 0, kCpuThread = 1, kCpuChildren = 2 };

// What security_resolve looks up.
enum class SecurityName : u64 { Label = 1, Class = 2, Permission = 3 };

enum class Sys : u64 {
#define KOS_SYS_ENUM(n, name, doc) name = n,
    KOS_SYSCALLS(KOS_SYS_ENUM)
#undef KOS_SYS_ENUM
        count
};

// Rights of handles (a handle's rights only shrink when it is duplicated
// or passed on).
enum HandleRights : u32 {
    kRightCall = 1u << 0,      // send requests over a channel (client end)
    kRightReceive = 1u << 1,   // receive requests and reply (server end)
    kRightTransfer = 1u << 2,  // may be passed to another task in a message
    kRightDuplicate = 1u << 3, // may be duplicated with equal or fewer rights
};

// Native programs (tasks without the Linux personality) start at their ELF
// entry with rdi = NativeStartInfo*, on a stack of kNativeStackSize below
// kAppStackTop. Every `syscall` they execute is a native call.
inline constexpr u32 kMaxNativeHandles = 16;
struct NativeHandle {
    char name[40]; // the channel's name in the init description
    u32 handle;
    u32 rights;
};
static_assert(sizeof(NativeHandle) == 48);
struct NativeStartInfo {
    u64 magic; // kNativeStartMagic
    u32 argc;
    u32 handle_count;
    u64 argv; // const char* const*
    u64 tsc_khz; // TSC rate, for clocks read in user mode with rdtsc
    NativeHandle handles[kMaxNativeHandles];
};
inline constexpr u64 kNativeStartMagic = 0x5654414e534f4bull; // "KOSNATV"
// Init description programs naming the personality's servers, which the
// kernel image carries (posix-personality/servers), rather than rootfs
// files: the VFS server (vfs.kidl, label vfs_t) and the process server
// (proc.kidl, label proc_t).
inline constexpr char kVfsServerProgram[] = "kos:vfs";
inline constexpr char kProcServerProgram[] = "kos:proc";
inline constexpr char kPipeServerProgram[] = "kos:pipe"; // pipe.kidl, pipe_t
inline constexpr u64 kNativeStackSize = 256 * 1024;

enum Prot : u64 {
    kProtRead = 1,
    kProtWrite = 2,
    kProtExec = 4,
};

enum MapFlags : u64 {
    kMapFixed = 1,     // exactly at addr; fails if the range overlaps a mapping
    kMapPopulate = 2,  // back every page now instead of on first touch
    kMapReplace = 4,   // with kMapFixed: replace existing user mappings (MAP_FIXED)
};

// User address space layout shared by the kernel and the runtime.
inline constexpr u64 kUserTop = 0x0000800000000000ull;
inline constexpr u64 kRuntimeBase = 0x00007ff000000000ull;   // runtime ELF is linked here
inline constexpr u64 kRootfsMapBase = 0x00007fe000000000ull; // rootfs image, read-only
inline constexpr u64 kRuntimeStackTop = 0x00007ff800000000ull;
inline constexpr u64 kRuntimeStackSize = 64 * 1024;
// Threads after the first: thread n's runtime stack and block live in the
// n-th slot of this area (stack, then the block page), pinned.
inline constexpr u64 kRuntimeThreadArea = 0x00007ff900000000ull;
inline constexpr u64 kRuntimeThreadSlot = 128 * 1024;
inline constexpr u64 kMmapTop = 0x00007f0000000000ull;       // anonymous mappings grow down
inline constexpr u64 kAppStackTop = 0x00007ffff0000000ull;
inline constexpr u64 kAppStackSize = 8 * 1024 * 1024;
inline constexpr u64 kMinUserAddr = 0x10000;                  // below is never mapped

// Saved application registers at a Linux syscall, written by the kernel into
// the calling thread's block (at the GS base of the runtime) before it enters
// the runtime's Linux entry, and restored by the runtime when it returns to
// the application.
struct LinuxSyscallFrame {
    u64 rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp;
    u64 r8, r9, r10, r11, r12, r13, r14, r15;
    u64 rip, rflags;
};
static_assert(sizeof(LinuxSyscallFrame) == 18 * 8);

// Per-thread block: at the runtime's GS base. The first member is the frame.
struct ThreadBlock {
    LinuxSyscallFrame frame;
    u64 self;           // address of this block
    u64 runtime_stack;  // top of this thread's runtime stack
    u64 tid;
    u64 scratch[4];
    u64 pending_signals; // set by the kernel (process_kill), taken by the runtime
    // Why the kernel entered the runtime when the application made no
    // system call (0: it did): kAsyncSignals when handled signals are
    // pending for a thread the timer interrupted in application code;
    // kAsyncFault | signal for a fault the application has a handler for
    // (fault_addr: the address, for SIGSEGV and SIGBUS). The frame then
    // holds every register as the application left it.
    u64 async_entry;
    u64 fault_addr;
    // Set by the kernel when a tick found the thread at the runtime's entry
    // before it saved the program's vector registers (no switch there): the
    // runtime yields once it has saved them.
    u64 yield_requested;
    u64 cpu;            // the CPU running the thread, set by the kernel as it loads it (getcpu)
    // The thread's blocked signals (bit sig - 1), kept by the runtime; the
    // kernel reads them to pick the thread for a process's signal (one that
    // does not block it) and to leave a blocked signal pending whatever
    // its disposition. A new thread starts with its creator's.
    u64 sigmask;
    // Timers whose signal the kernel posted to this thread and the runtime
    // has not taken yet (bit = timer index), and how many expirations of
    // each came while its signal was still pending (timer_getoverrun).
    u64 timer_fired;
    u32 timer_overrun[12];
    // The runtime writes the TSC here when a wait it told the kernel of
    // (thread_yield with a0 = 1) ends: the CPU time it charges resumes there.
    u64 wait_end_tsc;
    u64 waited; // the runtime's own: it told the kernel of a wait in this call
    // The pid of the process that sent each signal posted to this thread
    // (index sig - 1; 0: the kernel, or a timer), for siginfo's si_pid.
    u32 signal_sender[64];
};
static_assert(sizeof(ThreadBlock) == 40 * 8 + 64 * 4);
inline constexpr u64 kAsyncSignals = 1;
// The timer tick interrupted the thread in application code: the runtime
// saves the program's vector registers, yields, and runs pending signals.
inline constexpr u64 kAsyncPreempt = 3;
// A new thread (thread_create, process_fork) starts in the runtime, which
// loads the vector registers saved in its block and resumes the frame.
inline constexpr u64 kAsyncResume = 2;
inline constexpr u64 kAsyncFault = 0x100;
// The program's vector state lives in the thread block's page at this
// offset whenever the runtime runs: saved on every entry, loaded on every
// return to the program. The runtime does it in ring 3, so no thread ever
// sees another's registers, whatever the hypervisor does with ring-0 FPU
// switching. FXSAVE format (512 bytes), or XSAVE's standard format (64-byte
// aligned, at most kFpuAreaMax bytes) with the components of
// RuntimeStartInfo::xsave_mask when the kernel enabled more than x87/SSE
// in XCR0 (AVX: the YMM upper halves).
inline constexpr u64 kFpuAreaOffset = 1024;
inline constexpr u64 kFpuAreaMax = 4096 - kFpuAreaOffset;

// What the kernel hands the runtime at start (pointer in rdi).
struct RuntimeStartInfo {
    u64 magic;          // kRuntimeStartMagic
    u64 rootfs_base;    // where the rootfs image is mapped (read-only)
    u64 rootfs_size;
    u64 launch_base;    // LaunchHeader + strings, read-only
    u64 launch_size;
    u64 readable_bitmap; // bit i: rootfs entry i may be read (rootfs_access.h); 0: all may
    u64 thread_block;   // the first thread's block (also the GS base)
    u64 boot_flags;     // boot::BootFlags
    u64 tsc_khz;
    u64 realtime_at_tsc0_ns;
    u8 random_seed[32];
    u64 cpus;           // CPUs the kernel runs threads on (sched_getaffinity)
    // XCR0 components the runtime saves with xsave64/xrstor64 (0: fxsave64
    // and fxrstor64 only), and the size of that save area.
    u64 xsave_mask;
    u64 xsave_size;
    // The handle of the channel "vfs" to the VFS server (vfs.kidl): calls
    // naming a path in a labeled volume go there. 0: no such channel (no
    // labeled volume, or a policy without vfs_t).
    u64 vfs_channel;
    // The handle of the channel "proc" to the process server (proc.kidl):
    // signals to processes of other labels go there. 0: none.
    u64 proc_channel;
    // The handle of the channel "pipe" to the pipe server (pipe.kidl):
    // opens of the bundle's declared pipes go there. 0: none.
    u64 pipe_channel;
};
inline constexpr u64 kRuntimeStartMagic = 0x5452415453534f4bull; // "KOSSTART"

// Header at the first byte of the runtime image; the kernel reads it to find
// the entry points.
struct RuntimeHeader {
    u64 magic;          // kRuntimeMagic
    u64 start_entry;    // void start(RuntimeStartInfo*) on the runtime stack
    u64 linux_entry;    // entered after a Linux syscall, frame in the ThreadBlock
    u64 text_start;     // `syscall` between these is a native call
    u64 text_end;
    // Where the program's vector registers are still (or again) in the CPU
    // but not in the thread block: [linux_entry, fpu_saved) before the
    // runtime saves them, [resume_start, resume_end) after it loads them
    // back. A timer tick there must not switch threads (the ring-0 FPU
    // switch does not work on every hypervisor).
    u64 fpu_saved;
    u64 resume_start;
    u64 resume_end;
};
inline constexpr u64 kRuntimeMagic = 0x454d49544e55524bull; // "KRUNTIME"

} // namespace kos::abi::sys
