// The personality runtime's start and its Linux system call dispatcher.
//
// Every Linux `syscall` of the application lands in linux_syscall() with the
// application's registers in the thread block. Calls that need no authority
// (time, identity, memory bookkeeping of this process) are answered here;
// the rest become native kernel calls (and, with the IPC work, typed
// messages to personality servers that the security server mediates).
#include "fs.h"
#include "volume.h"
#include "net.h"
#include "system.h"
#include "kos/base/format.h"
#include "kos/base/string.h"
#include "kos/boot.h"
#include "kos/linux_syscalls.h"
#include "runtime.h"

namespace kos::rt {

constinit Runtime g_rt;

// The XCR0 components entry.S saves and loads with xsave64/xrstor64 (0:
// fxsave64/fxrstor64), and the size of that area (RuntimeStartInfo).
extern "C" {
u64 kos_xsave_mask = 0;
u64 kos_xsave_size = 512;
}

void print(int stream, const char* s, u64 len) {
    native(Sys::console_write, static_cast<u64>(stream), reinterpret_cast<u64>(s), len);
}

void printf(int stream, const char* fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    u64 n = vformat(buf, sizeof buf, fmt, ap);
    va_end(ap);
    print(stream, buf, n < sizeof buf ? n : sizeof buf - 1);
}

void fatal(const char* fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    u64 n = vformat(buf, sizeof buf, fmt, ap);
    va_end(ap);
    print(2, buf, n < sizeof buf ? n : sizeof buf - 1);
    native_exit(0, 127);
}

namespace {

namespace nr = abi::linux_nr;
namespace sys = abi::sys;

constexpr u64 kPage = 4096;

const char* syscall_name(u64 n) {
    switch (n) {
#define KOS_NAME_CASE(num, name) case num: return #name;
        KOS_LINUX_SYSCALLS(KOS_NAME_CASE)
#undef KOS_NAME_CASE
    }
    return nullptr;
}

// --- memory ---------------------------------------------------------------

i64 sys_brk(u64 addr) {
    if (addr == 0 || addr < g_rt.brk_start)
        return static_cast<i64>(g_rt.brk_cur);
    u64 want = (addr + kPage - 1) & ~(kPage - 1);
    if (want > g_rt.brk_mapped) {
        i64 r = native(Sys::vm_map, g_rt.brk_mapped, want - g_rt.brk_mapped,
                       sys::kProtRead | sys::kProtWrite, sys::kMapFixed);
        if (r < 0)
            return static_cast<i64>(g_rt.brk_cur); // Linux: unchanged break on failure
        g_rt.brk_mapped = want;
    } else if (want < g_rt.brk_mapped) {
        native(Sys::vm_unmap, want, g_rt.brk_mapped - want);
        g_rt.brk_mapped = want;
    }
    g_rt.brk_cur = addr;
    return static_cast<i64>(addr);
}

constexpr u64 kMapShared = 0x01, kMapPrivate = 0x02, kMapFixed = 0x10, kMapAnonymous = 0x20,
              kMapPopulate = 0x8000, kMapFixedNoreplace = 0x100000;

i64 sys_mmap(u64 addr, u64 len, u64 prot, u64 flags, i64 fd, u64 off) {
    if (len == 0 || (off & (kPage - 1)) || (prot & ~7ull))
        return -kEINVAL;
    u64 type = flags & 3;
    if (type != kMapPrivate && type != kMapShared)
        return -kEINVAL;
    u64 map_flags = 0;
    if (flags & (kMapFixed | kMapFixedNoreplace)) {
        if (addr & (kPage - 1))
            return -kEINVAL;
        map_flags |= sys::kMapFixed;
        if (flags & kMapFixed)
            map_flags |= sys::kMapReplace;
    }
    if (flags & kMapPopulate)
        map_flags |= sys::kMapPopulate;
    if (flags & kMapAnonymous) {
        i64 r = native(Sys::vm_map, addr, len, prot, map_flags);
        return r == -kEEXIST && !(flags & kMapFixedNoreplace) ? -kENOMEM : r;
    }
    // File mapping: a private copy of the file's bytes (the rootfs is
    // read-only, so MAP_SHARED of it is the same view). Zero-copy sharing
    // of file pages comes with the VFS server.
    if (Fd* vf = fd_get(static_cast<int>(fd)); vf && vf->kind == FdKind::VolFile) {
        // A volume file: a private copy of its bytes (MAP_SHARED only for
        // reading: writes would not reach the file).
        if (type == kMapShared && (prot & sys::kProtWrite))
            return -19; // ENODEV
        i64 r = native(Sys::vm_map, addr, len, prot | sys::kProtWrite, map_flags);
        if (r < 0)
            return r;
        u64 done = 0;
        while (done < len) {
            i64 n = vol_read(*vf, static_cast<u64>(r) + done, len - done, static_cast<i64>(off + done));
            if (n <= 0)
                break;
            done += static_cast<u64>(n);
        }
        if (!(prot & sys::kProtWrite))
            native(Sys::vm_protect, static_cast<u64>(r), len, prot);
        return r;
    }
    i64 entry = fd_file_entry(static_cast<int>(fd));
    if (entry < 0)
        return entry == -kEACCES ? -19 /* ENODEV */ : entry;
    if (type == kMapShared && (prot & sys::kProtWrite))
        return -kEACCES; // opened read-only
    i64 r = native(Sys::vm_map, addr, len, prot | sys::kProtWrite, map_flags);
    if (r < 0)
        return r;
    const auto& e = g_rt.rootfs.entry(static_cast<abi::u32>(entry));
    if (off < e.size) {
        u64 n = e.size - off < len ? e.size - off : len;
        memcpy(reinterpret_cast<void*>(r), g_rt.rootfs.file_data(e) + off, n);
    }
    if (!(prot & sys::kProtWrite))
        native(Sys::vm_protect, static_cast<u64>(r), len, prot);
    return r;
}

// --- identity and time ------------------------------------------------------

struct Utsname {
    char sysname[65], nodename[65], release[65], version[65], machine[65], domainname[65];
};

void copy_field(char* dst, const char* src) {
    u64 n = cstr_len(src, 64);
    memcpy(dst, src, n);
    dst[n] = 0;
}

// mremap of anonymous read-write memory (what allocators grow): in place
// when the pages after it are free, else moved (MREMAP_MAYMOVE) by copying.
i64 sys_mremap(u64 old, u64 old_size, u64 new_size, u64 flags, u64 new_addr) {
    constexpr u64 kMayMove = 1, kFixed = 2;
    if (flags & ~(kMayMove | kFixed) || old % kPage || new_size == 0 || ((flags & kFixed) && !(flags & kMayMove)))
        return -kEINVAL;
    if (flags & kFixed)
        return -kENOSYS; // a chosen new address: not yet
    old_size = (old_size + kPage - 1) & ~(kPage - 1);
    new_size = (new_size + kPage - 1) & ~(kPage - 1);
    if (old_size == 0 || old >= sys::kUserTop || old_size > sys::kUserTop - old)
        return -kEINVAL;
    if (new_size <= old_size) {
        if (new_size < old_size)
            native(Sys::vm_unmap, old + new_size, old_size - new_size);
        return static_cast<i64>(old);
    }
    if (native(Sys::vm_map, old + old_size, new_size - old_size, sys::kProtRead | sys::kProtWrite,
               sys::kMapFixed) >= 0)
        return static_cast<i64>(old);
    if (!(flags & kMayMove))
        return -kENOMEM;
    i64 moved = native(Sys::vm_map, 0, new_size, sys::kProtRead | sys::kProtWrite, 0);
    if (moved < 0)
        return moved;
    memcpy(reinterpret_cast<void*>(moved), reinterpret_cast<const void*>(old), old_size);
    native(Sys::vm_unmap, old, old_size);
    return moved;
}

i64 sys_uname(u64 buf) {
    if (buf >= sys::kUserTop)
        return -kEFAULT;
    auto* u = reinterpret_cast<Utsname*>(buf);
    memset(u, 0, sizeof *u);
    copy_field(u->sysname, "Linux");
    copy_field(u->nodename, g_rt.launch.hostname);
    copy_field(u->release, "6.1.0-kos");
    copy_field(u->version, "#1 kos");
    copy_field(u->machine, "x86_64");
    copy_field(u->domainname, "(none)");
    return 0;
}

struct Timespec {
    i64 sec, nsec;
};

i64 sys_clock_gettime(u64 clock, u64 ts) {
    if (ts >= sys::kUserTop)
        return -kEFAULT;
    u64 ns;
    switch (clock) {
    case 0: case 5: case 8: ns = realtime_ns(); break;          // REALTIME(_COARSE), TAI
    case 1: case 4: case 6: case 7: ns = monotonic_ns(); break; // MONOTONIC*, BOOTTIME
    default: {
        i64 cpu = cpu_clock_ns(static_cast<abi::i32>(clock));
        if (cpu < 0)
            return cpu;
        ns = static_cast<u64>(cpu);
    }
    }
    auto* t = reinterpret_cast<Timespec*>(ts);
    t->sec = static_cast<i64>(ns / 1000000000ull);
    t->nsec = static_cast<i64>(ns % 1000000000ull);
    return 0;
}

i64 sys_clock_getres(u64 clock, u64 ts) {
    // The TSC's clocks; CPU-time clocks too (charged at each switch, the
    // running thread's slice up to now).
    if (clock > 8 && cpu_clock_ns(static_cast<abi::i32>(clock)) < 0)
        return -kEINVAL;
    if (ts) {
        if (ts >= sys::kUserTop - sizeof(Timespec))
            return -kEFAULT;
        *reinterpret_cast<Timespec*>(ts) = {0, 1};
    }
    return 0;
}

i64 sys_gettimeofday(u64 tv) {
    if (tv) {
        if (tv >= sys::kUserTop)
            return -kEFAULT;
        u64 ns = realtime_ns();
        auto* t = reinterpret_cast<i64*>(tv);
        t[0] = static_cast<i64>(ns / 1000000000ull);
        t[1] = static_cast<i64>(ns % 1000000000ull / 1000);
    }
    return 0;
}

i64 sys_getrandom(u64 buf, u64 len, u64 flags) {
    if (flags & ~7ull)
        return -kEINVAL;
    if (buf >= sys::kUserTop || len > sys::kUserTop - buf)
        return -kEFAULT;
    if (len > (32u << 20))
        len = 32u << 20;
    random_fill(reinterpret_cast<void*>(buf), len);
    return static_cast<i64>(len);
}

// --- signals (bookkeeping until delivery lands) ------------------------------

struct KSigaction {
    u64 handler, flags, restorer, mask;
};
KSigaction g_sigactions[65];
// Each thread's signal mask is its block's sigmask (the kernel reads it).

// execve keeps ignored signals ignored and resets handlers to the default.
void publish_dispositions();
void signals_reset_on_exec_impl() {
    for (auto& a : g_sigactions)
        if (a.handler != 1) // SIG_IGN
            a = KSigaction{};
    publish_dispositions();
}

// Tells the kernel which signals this process handles and ignores, so
// that process_kill ends it, posts to it or leaves it alone as Linux would.
void publish_dispositions() {
    u64 caught = 0, ignored = 0;
    for (int sig = 1; sig <= 64; ++sig) {
        if (g_sigactions[sig].handler == 1)
            ignored |= 1ull << (sig - 1);
        else if (g_sigactions[sig].handler > 1)
            caught |= 1ull << (sig - 1);
    }
    constexpr u64 kSaNocldstop = 1;
    native(Sys::signal_disposition, caught, ignored, (g_sigactions[17].flags & kSaNocldstop) ? 1 : 0);
}

constexpr u64 bit(int sig) { return 1ull << (sig - 1); }

i64 sys_rt_sigaction(u64 sig, u64 act, u64 oldact, u64 size) {
    if (sig < 1 || sig > 64 || sig == 9 || sig == 19 || size != 8)
        return -kEINVAL;
    if (oldact)
        memcpy(reinterpret_cast<void*>(oldact), &g_sigactions[sig], sizeof(KSigaction));
    if (act) {
        KSigaction before = g_sigactions[sig];
        memcpy(&g_sigactions[sig], reinterpret_cast<const void*>(act), sizeof(KSigaction));
        bool was = before.handler > 1, is = g_sigactions[sig].handler > 1;
        if (was != is || (before.handler == 1) != (g_sigactions[sig].handler == 1) ||
            (sig == 17 && ((before.flags ^ g_sigactions[sig].flags) & 1 /* SA_NOCLDSTOP */)))
            publish_dispositions();
        // Ignoring a signal discards it if pending (POSIX), as does the
        // default action of a signal ignored by default. Signals are posted
        // to a process's first thread; this thread's block is checked too.
        bool default_ignored = sig == 17 || sig == 18 || sig == 23 || sig == 28;
        if (g_sigactions[sig].handler == 1 || (g_sigactions[sig].handler == 0 && default_ignored)) {
            u64 blocks[2] = {reinterpret_cast<u64>(self_block()), sys::kRuntimeStackTop};
            for (u64 block : blocks)
                __atomic_and_fetch(&reinterpret_cast<sys::ThreadBlock*>(block)->pending_signals, ~bit(static_cast<int>(sig)),
                                   __ATOMIC_RELAXED);
        }
    }
    return 0;
}

i64 sys_rt_sigprocmask(sys::ThreadBlock* tb, u64 how, u64 set, u64 oldset, u64 size) {
    if (size != 8)
        return -kEINVAL;
    u64& mask = tb->sigmask;
    if (oldset)
        memcpy(reinterpret_cast<void*>(oldset), &mask, 8);
    if (set) {
        u64 s;
        memcpy(&s, reinterpret_cast<const void*>(set), 8);
        s &= ~((1ull << 8) | (1ull << 18)); // SIGKILL, SIGSTOP cannot be blocked
        switch (how) {
        case 0: mask |= s; break;
        case 1: mask &= ~s; break;
        case 2: mask = s; break;
        default: return -kEINVAL;
        }
    }
    return 0;
}

// --- signal delivery ------------------------------------------------------------
//
// Handlers run the way Linux runs them: the runtime builds a Linux x86-64
// signal frame (ucontext with the interrupted registers and signal mask, the
// FPU state, siginfo) on the thread's stack, below the red zone, and returns
// from the system call into the handler with the frame's return address set
// to the application's restorer (SA_RESTORER, which libcs always give); the
// restorer's rt_sigreturn restores everything. Today signals are delivered
// when a system call returns (SIGCHLD after rt_sigsuspend, below).

constexpr u64 kSaRestart = 0x10000000, kSaRestorer = 0x04000000, kSaOnstack = 0x08000000,
              kSaNodefer = 0x40000000, kSaResethand = 0x80000000;
constexpr u64 kUnblockable = (1ull << 8) | (1ull << 18); // SIGKILL, SIGSTOP (bits of signal - 1)

struct SigContext {
    u64 r8, r9, r10, r11, r12, r13, r14, r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
    u16 cs, gs, fs, ss;
    u64 err, trapno, oldmask, cr2, fpstate, reserved[8];
};
static_assert(sizeof(SigContext) == 256);

struct UContext {
    u64 flags, link, ss_sp;
    abi::i32 ss_flags, pad;
    u64 ss_size;
    SigContext mc;
    u64 sigmask;
};

struct SigInfo {
    abi::i32 signo, error, code, pad;
    abi::i32 pid;
    abi::u32 uid;
    abi::i32 status;
    u8 rest[100];
};
static_assert(sizeof(SigInfo) == 128);

struct SigFrame {
    u64 pretcode; // the handler returns here: the restorer
    UContext uc;
    SigInfo info;
};


// Redirects the thread, returning from its system call with `result`, into
// the handler of `sig`. False if the signal has no handler to run. A call
// the signal interrupted (EINTR) whose number is `restart_nr` is executed
// again after the handler when the handler has SA_RESTART.
bool deliver_signal(sys::ThreadBlock* tb, int sig, const SigInfo& info, i64 result, u64 restart_nr = ~0ull) {
    KSigaction& a = g_sigactions[sig];
    if (a.handler <= 1 || !(a.flags & kSaRestorer) || a.restorer >= sys::kUserTop || a.handler >= sys::kUserTop)
        return false;
    sys::LinuxSyscallFrame& f = tb->frame;
    u64 sp = f.rsp - 128; // the red zone belongs to the interrupted code
    u64 alt_top = 0;
    if ((a.flags & kSaOnstack) && alt_signal_stack(f.rsp, &alt_top))
        sp = alt_top; // sigaltstack: a fresh stack (a stack overflow's SIGSEGV still runs)
    sp = (sp - kos_xsave_size - 4) & ~63ull; // xsave's area is 64-byte aligned, then FP_XSTATE_MAGIC2
    u64 fx = sp;
    sp = ((sp - sizeof(SigFrame)) & ~15ull) - 8; // at the handler's entry, rsp + 8 is 16-aligned
    if (sp >= sys::kUserTop || f.rsp >= sys::kUserTop || sp < 4096)
        return false;
    memcpy(reinterpret_cast<void*>(fx), reinterpret_cast<const u8*>(tb) + sys::kFpuAreaOffset, kos_xsave_size);
    if (kos_xsave_mask) {
        // Linux's marks of an XSAVE frame (struct _fpx_sw_bytes, then
        // FP_XSTATE_MAGIC2 after the area).
        struct {
            u32 magic1, extended_size;
            u64 xfeatures;
            u32 xstate_size, padding[7];
        } sw = {0x46505853u, static_cast<u32>(kos_xsave_size + 4), kos_xsave_mask,
                static_cast<u32>(kos_xsave_size), {}};
        static_assert(sizeof sw == 48);
        memcpy(reinterpret_cast<u8*>(fx) + 464, &sw, sizeof sw);
        u32 magic2 = 0x46505845u;
        memcpy(reinterpret_cast<u8*>(fx) + kos_xsave_size, &magic2, 4);
    }
    auto* fr = reinterpret_cast<SigFrame*>(sp);
    memset(fr, 0, sizeof *fr);
    fr->pretcode = a.restorer;
    SigContext& mc = fr->uc.mc;
    mc.r8 = f.r8, mc.r9 = f.r9, mc.r10 = f.r10, mc.r11 = f.r11, mc.r12 = f.r12, mc.r13 = f.r13;
    mc.r14 = f.r14, mc.r15 = f.r15, mc.rdi = f.rdi, mc.rsi = f.rsi, mc.rbp = f.rbp, mc.rbx = f.rbx;
    mc.rdx = f.rdx, mc.rax = static_cast<u64>(result), mc.rcx = f.rcx, mc.rsp = f.rsp, mc.rip = f.rip;
    if (result == -4 && restart_nr != ~0ull && (a.flags & kSaRestart)) {
        mc.rax = restart_nr; // the handler returns to the `syscall` again
        mc.rip = f.rip - 2;
    }
    mc.eflags = f.rflags;
    mc.cs = 0x33;
    mc.ss = 0x2b;
    mc.fpstate = fx;
    // After rt_sigsuspend, the handler returns to the mask from before it.
    fr->uc.sigmask = tb->scratch[3] ? tb->scratch[2] : tb->sigmask;
    tb->scratch[3] = 0;
    fr->info = info;
    tb->sigmask |= (a.mask | ((a.flags & kSaNodefer) ? 0 : bit(sig))) & ~kUnblockable;
    u64 handler = a.handler;
    if (a.flags & kSaResethand)
        a = KSigaction{};
    f.rsp = sp;
    f.rip = handler;
    f.rdi = static_cast<u64>(sig);
    f.rsi = reinterpret_cast<u64>(&fr->info);
    f.rdx = reinterpret_cast<u64>(&fr->uc);
    f.rax = 0;
    return true;
}

// rt_sigreturn: the registers, mask and FPU state saved in the frame.
i64 sys_rt_sigreturn(sys::ThreadBlock* tb) {
    sys::LinuxSyscallFrame& f = tb->frame;
    u64 uc_addr = f.rsp; // the handler's `ret` popped the return address
    if (uc_addr >= sys::kUserTop - sizeof(UContext) || uc_addr < 4096)
        native_exit(1, 11); // no frame to return to: SIGSEGV, as Linux does
    const auto* uc = reinterpret_cast<const UContext*>(uc_addr);
    const SigContext& mc = uc->mc;
    if (mc.rip >= sys::kUserTop || mc.rsp >= sys::kUserTop)
        native_exit(1, 11);
    f.r8 = mc.r8, f.r9 = mc.r9, f.r10 = mc.r10, f.r11 = mc.r11, f.r12 = mc.r12, f.r13 = mc.r13;
    f.r14 = mc.r14, f.r15 = mc.r15, f.rdi = mc.rdi, f.rsi = mc.rsi, f.rbp = mc.rbp, f.rbx = mc.rbx;
    f.rdx = mc.rdx, f.rcx = mc.rcx, f.rsp = mc.rsp, f.rip = mc.rip;
    // Only the flags a program may change (Linux's FIX_EFLAGS), interrupts on.
    f.rflags = (mc.eflags & 0x40dd5ull) | 0x202;
    tb->sigmask = uc->sigmask & ~kUnblockable;
    u64 fx = mc.fpstate;
    if (fx && fx % 16 == 0 && fx < sys::kUserTop - kos_xsave_size) {
        u32 mxcsr;
        memcpy(&mxcsr, reinterpret_cast<const void*>(fx + 24), 4);
        u8* area = reinterpret_cast<u8*>(tb) + sys::kFpuAreaOffset;
        if ((mxcsr & ~0xffffu) == 0) { // loaded as the call returns to the program
            memcpy(area, reinterpret_cast<const void*>(fx), 512);
            if (kos_xsave_mask) {
                // The XSAVE header and the extended state, if the frame is
                // one (64-byte aligned, its header loadable with XCR0's
                // components, standard format); else x87/SSE only.
                u64 header[8];
                memcpy(header, reinterpret_cast<const void*>(fx + 512), sizeof header);
                bool ok = fx % 64 == 0 && (header[0] & ~kos_xsave_mask) == 0 && header[1] == 0;
                for (int i = 2; i < 8; ++i)
                    ok = ok && header[i] == 0;
                if (ok) {
                    memcpy(area + 512, reinterpret_cast<const void*>(fx + 512), kos_xsave_size - 512);
                } else {
                    memset(area + 512, 0, 64);
                    u64 legacy = 3; // x87 and SSE from the legacy area
                    memcpy(area + 512, &legacy, 8);
                }
            }
        }
    }
    return static_cast<i64>(mc.rax);
}

// What a signal taken from `block` says of its sender: the timer that
// posted it (SI_TIMER, its id, overruns and value), else a process.
void fill_timer_info(sys::ThreadBlock* block, int sig, SigInfo& info) {
    abi::i32 timerid = 0, overrun = 0;
    u64 value = 0;
    if (!timer_signal_info(block, sig, &timerid, &overrun, &value)) {
        // kill, tgkill, or the kernel (SI_USER/SI_TKILL: 0 and -6; si_pid, si_uid).
        info.pid = static_cast<abi::i32>(block->signal_sender[sig - 1]);
        if (info.pid)
            info.uid = g_rt.launch.uid;
        return;
    }
    info.code = -2; // SI_TIMER
    info.pid = timerid;          // si_timerid
    info.uid = static_cast<abi::u32>(overrun); // si_overrun
    memcpy(&info.status, &value, 8); // si_value
}

// Takes `sig` from a block's pending signals; false if it was not there.
bool take_pending(sys::ThreadBlock* block, int sig) {
    return __atomic_fetch_and(&block->pending_signals, ~bit(sig), __ATOMIC_RELAXED) & bit(sig);
}

// rt_sigtimedwait (sigwaitinfo, sigtimedwait, sigwait): a signal of `set`
// pending for this thread, or for the process (posted to the first
// thread while every thread blocked it), taken without running a handler.
i64 sys_rt_sigtimedwait(sys::ThreadBlock* tb, u64 set_p, u64 info_p, u64 timeout_p, u64 size) {
    if (size != 8)
        return -kEINVAL;
    if (!set_p || set_p >= sys::kUserTop - 8 || (info_p && info_p >= sys::kUserTop - sizeof(SigInfo)) ||
        (timeout_p && timeout_p >= sys::kUserTop - 16))
        return -kEFAULT;
    u64 set;
    memcpy(&set, reinterpret_cast<const void*>(set_p), 8);
    set &= ~kUnblockable;
    u64 deadline = kNoDeadline;
    if (timeout_p) {
        const auto* t = reinterpret_cast<const abi::i64*>(timeout_p);
        if (t[0] < 0 || t[1] < 0 || t[1] >= 1000000000)
            return -kEINVAL;
        deadline = monotonic_ns() + static_cast<u64>(t[0]) * 1000000000ull + static_cast<u64>(t[1]);
    }
    sys::ThreadBlock* blocks[2] = {tb, main_block() != tb ? main_block() : nullptr};
    for (;;) {
        for (sys::ThreadBlock* block : blocks) {
            if (!block)
                continue;
            u64 p = __atomic_load_n(&block->pending_signals, __ATOMIC_RELAXED) & set;
            if (!p)
                continue;
            int sig = __builtin_ctzll(p) + 1;
            SigInfo info{};
            info.signo = sig;
            runtime_lock();
            fill_timer_info(block, sig, info);
            bool taken = take_pending(block, sig);
            runtime_unlock();
            if (!taken)
                continue;
            if (info_p)
                memcpy(reinterpret_cast<void*>(info_p), &info, sizeof info);
            return sig;
        }
        // A signal with a handler interrupts the wait (it runs as the call
        // returns EINTR).
        if (__atomic_load_n(&tb->pending_signals, __ATOMIC_RELAXED) & ~tb->sigmask & ~set)
            return -4;
        if (deadline != kNoDeadline && monotonic_ns() >= deadline)
            return -11; // EAGAIN
        wait_yield();
    }
}

// --- threads and futexes ------------------------------------------------------

constexpr u64 kCloneVm = 0x100, kCloneFs = 0x200, kCloneFiles = 0x400, kCloneSighand = 0x800,
              kCloneThread = 0x10000, kCloneSysvsem = 0x40000, kCloneSettls = 0x80000,
              kCloneParentSettid = 0x100000, kCloneChildCleartid = 0x200000,
              kCloneChildSettid = 0x1000000, kCloneDetached = 0x400000;

// getpid/getppid without a kernel call: the answer only changes in a forked
// child, whose copy of the cache is emptied by the fork (0: ask the kernel).
u64 g_self = 0;

} // namespace

u64 process_self() {
    if (!g_self)
        g_self = static_cast<u64>(native(Sys::process_self));
    return g_self;
}

namespace {

// fork, vfork and clone without CLONE_VM: a new process, a copy of this one
// (memory, descriptors), resuming where this one called with rax = 0.
i64 sys_fork(sys::ThreadBlock* tb, u64 child_sp, u64 child_tid, bool settid) {
    sys::LinuxSyscallFrame child = tb->frame;
    child.rax = 0;
    if (child_sp)
        child.rsp = child_sp;
    // The child starts from a copy of this memory, runtime lock included:
    // fork with the lock free (the kernel forks single-threaded tasks only,
    // so nobody else can take it meanwhile).
    u64 self = g_self;
    g_self = 0; // the child's copy: unknown until it asks
    runtime_unlock();
    i64 pid = native(Sys::process_fork, reinterpret_cast<u64>(&child));
    runtime_lock();
    g_self = self;
    (void)child_tid;
    (void)settid; // CLONE_CHILD_SETTID: not supported for processes yet
    return pid;
}

// clone for threads (what pthread_create asks for), and for processes.
i64 sys_clone(sys::ThreadBlock* tb, u64 flags, u64 newsp, u64 parent_tid, u64 child_tid, u64 tls) {
    if (!(flags & kCloneVm) || (flags & 0x4000 /* CLONE_VFORK */)) {
        // A process (fork, or vfork run as fork). Signals other than the
        // exit signal and namespace flags are not supported.
        if (flags & ~(0xffull | kCloneChildCleartid | kCloneChildSettid | kCloneParentSettid | 0x4000 | kCloneVm))
            return -kENOSYS;
        i64 pid = sys_fork(tb, (flags & kCloneVm) ? 0 : newsp, child_tid, flags & kCloneChildSettid);
        if (pid > 0 && (flags & kCloneParentSettid) && parent_tid && parent_tid < sys::kUserTop)
            *reinterpret_cast<volatile abi::i32*>(parent_tid) = static_cast<abi::i32>(pid);
        return pid;
    }
    constexpr u64 kThreadFlags = kCloneVm | kCloneFs | kCloneFiles | kCloneSighand | kCloneThread;
    constexpr u64 kSupported = kThreadFlags | kCloneSysvsem | kCloneSettls | kCloneParentSettid |
                               kCloneChildCleartid | kCloneChildSettid | kCloneDetached | 0xff;
    if ((flags & kThreadFlags) != kThreadFlags || (flags & ~kSupported))
        return -kENOSYS;
    if (newsp == 0 || newsp >= sys::kUserTop)
        return -kEINVAL;
    // The child resumes where the parent called clone, with rax = 0 on its
    // own stack.
    sys::LinuxSyscallFrame child = tb->frame;
    child.rax = 0;
    child.rsp = newsp;
    u64 fs = (flags & kCloneSettls) ? tls : tb->scratch[1];
    i64 tid = native(Sys::thread_create, reinterpret_cast<u64>(&child), fs,
                     (flags & kCloneChildCleartid) ? child_tid : 0);
    // The kernel put the clear-tid address in the new block's scratch[0];
    // its FS base is in scratch[1] for ARCH_GET_FS.
    if (tid > 0) {
        auto* child_tb = reinterpret_cast<sys::ThreadBlock*>(sys::kRuntimeThreadArea +
                                                             static_cast<u64>(tid) * sys::kRuntimeThreadSlot +
                                                             sys::kRuntimeThreadSlot - 4096);
        child_tb->scratch[1] = fs;
    }
    if (tid < 0)
        return tid;
    if ((flags & kCloneParentSettid) && parent_tid && parent_tid < sys::kUserTop)
        *reinterpret_cast<volatile abi::i32*>(parent_tid) = static_cast<abi::i32>(tid);
    if ((flags & kCloneChildSettid) && child_tid && child_tid < sys::kUserTop)
        *reinterpret_cast<volatile abi::i32*>(child_tid) = static_cast<abi::i32>(tid);
    return tid;
}

constexpr u64 kFutexWait = 0, kFutexWake = 1, kFutexWaitBitset = 9, kFutexWakeBitset = 10,
              kFutexPrivate = 128, kFutexClockRealtime = 256;

// Waits until `deadline_ns` on `clock` (0 monotonic, 1 realtime) by
// yielding: the kernel has no timed waits yet, so a timed wait returns
// EINTR (a spurious wakeup, which callers handle) until the deadline.
i64 timed_yield(u64 deadline_ns, bool realtime) {
    wait_yield();
    u64 now = realtime ? realtime_ns() : monotonic_ns();
    return now >= deadline_ns ? -110 /* ETIMEDOUT */ : -4 /* EINTR */;
}

i64 sys_futex(u64 uaddr, u64 op, u64 val, u64 timeout, u64 uaddr2, u64 val3) {
    u64 cmd = op & ~(kFutexPrivate | kFutexClockRealtime);
    if (uaddr >= sys::kUserTop || uaddr % 4)
        return -kEINVAL;
    switch (cmd) {
    case kFutexWait:
    case kFutexWaitBitset: {
        if (!timeout)
            return native(Sys::futex_wait, uaddr, val & 0xffffffffu);
        if (timeout >= sys::kUserTop)
            return -kEFAULT;
        if (*reinterpret_cast<volatile u32*>(uaddr) != static_cast<u32>(val))
            return -11; // EAGAIN
        const auto* ts = reinterpret_cast<const abi::i64*>(timeout);
        if (ts[0] < 0 || ts[1] < 0 || ts[1] >= 1000000000)
            return -kEINVAL;
        u64 t = static_cast<u64>(ts[0]) * 1000000000ull + static_cast<u64>(ts[1]);
        bool realtime = cmd == kFutexWaitBitset && (op & kFutexClockRealtime);
        // FUTEX_WAIT takes a relative timeout, FUTEX_WAIT_BITSET an absolute one.
        u64 deadline = cmd == kFutexWait ? monotonic_ns() + t : t;
        return timed_yield(deadline, realtime);
    }
    case kFutexWake:
    case kFutexWakeBitset:
        return native(Sys::futex_wake, uaddr, val);
    default:
        return -kENOSYS;
    }
}

// Deadlines of the waiting calls (monotonic; 0: do not wait; kNoDeadline).
u64 deadline_ms(abi::i32 ms) {
    if (ms < 0)
        return kNoDeadline;
    if (ms == 0)
        return 0;
    return monotonic_ns() + static_cast<u64>(ms) * 1000000ull;
}
// A struct timespec (ppoll, pselect6) or struct timeval (select); null: forever.
u64 deadline_ts(u64 p, bool timespec) {
    if (p == 0)
        return kNoDeadline;
    if (p >= sys::kUserTop - 16)
        return 0;
    const auto* t = reinterpret_cast<const abi::i64*>(p);
    if (t[0] < 0 || t[1] < 0)
        return 0;
    u64 ns = static_cast<u64>(t[0]) * 1000000000ull + static_cast<u64>(t[1]) * (timespec ? 1 : 1000);
    return ns == 0 ? 0 : monotonic_ns() + ns;
}

i64 sys_nanosleep(u64 req, bool absolute, bool realtime) {
    if (req >= sys::kUserTop)
        return -kEFAULT;
    const auto* ts = reinterpret_cast<const abi::i64*>(req);
    if (ts[0] < 0 || ts[1] < 0 || ts[1] >= 1000000000)
        return -kEINVAL;
    u64 t = static_cast<u64>(ts[0]) * 1000000000ull + static_cast<u64>(ts[1]);
    u64 deadline = absolute ? t : (realtime ? realtime_ns() : monotonic_ns()) + t;
    // Sleeping yields the CPU to other threads until the deadline.
    while (timed_yield(deadline, realtime) != -110) {
    }
    return 0;
}

void signals_reset_on_exec() { signals_reset_on_exec_impl(); }

// --- execve -----------------------------------------------------------------

// The arguments are copied out of the program's memory first: it is gone
// once the new image is mapped.
char g_exec_strings[256 * 1024];
const char* g_exec_argv[4097];
const char* g_exec_envp[4097];

i64 copy_string_vector(u64 vec, const char** out, u64 max, u64* used) {
    if (vec == 0) {
        out[0] = nullptr;
        return 0;
    }
    u64 n = 0;
    for (;; ++n) {
        if (vec + n * 8 + 8 > sys::kUserTop)
            return -kEFAULT;
        u64 p = reinterpret_cast<const u64*>(vec)[n];
        if (p == 0)
            break;
        if (n == max)
            return -7; // E2BIG
        if (p >= sys::kUserTop)
            return -kEFAULT;
        u64 len = cstr_len(reinterpret_cast<const char*>(p), sizeof g_exec_strings);
        if (*used + len + 1 > sizeof g_exec_strings)
            return -7;
        memcpy(g_exec_strings + *used, reinterpret_cast<const char*>(p), len);
        g_exec_strings[*used + len] = 0;
        out[n] = g_exec_strings + *used;
        *used += len + 1;
    }
    out[n] = nullptr;
    return 0;
}

// The x87/SSE state a program starts with (FCW 0x37f, MXCSR 0x1f80; an
// empty XSAVE header: every other component in its initial state).
void fpu_reset(sys::ThreadBlock* tb) {
    u8* area = reinterpret_cast<u8*>(tb) + sys::kFpuAreaOffset;
    memset(area, 0, kos_xsave_size);
    u16 fcw = 0x37f;
    u32 mxcsr = 0x1f80;
    memcpy(area, &fcw, 2);
    memcpy(area + 24, &mxcsr, 4);
}

i64 sys_execve(sys::ThreadBlock* tb, const char* path, u64 argv, u64 envp) {
    if (!path)
        return -kEFAULT;
    u64 used = 0;
    u64 plen = cstr_len(path, abi::rootfs::kMaxPath + 1);
    if (plen > abi::rootfs::kMaxPath)
        return -kENAMETOOLONG;
    memcpy(g_exec_strings, path, plen);
    g_exec_strings[plen] = 0;
    used = plen + 1;
    if (i64 r = copy_string_vector(argv, g_exec_argv, 4096, &used); r < 0)
        return r;
    if (i64 r = copy_string_vector(envp, g_exec_envp, 4096, &used); r < 0)
        return r;
    if (!g_exec_argv[0]) { // Linux accepts an empty argv; programs expect argv[0]
        g_exec_argv[0] = g_exec_strings;
        g_exec_argv[1] = nullptr;
    }
    i64 r = exec_program(g_exec_strings, g_exec_argv, g_exec_envp, &tb->frame, true);
    if (r < 0)
        return r;
    fs_close_on_exec();
    signals_reset_on_exec();
    timers_reset_on_exec();
    tb->scratch[1] = 0; // FS base: the new program sets its own
    native(Sys::set_fs_base, 0);
    fpu_reset(tb); // and starts with the initial x87/SSE state
    return 0;
}

// --- dispatch ---------------------------------------------------------------

// ITIMER_REAL through the kernel's alarm (process_alarm); ITIMER_VIRTUAL
// and ITIMER_PROF through the kernel's timers on the process's CPU time
// (one count: the kernel does not tell user from system time).
u64 g_alarm_interval_ns = 0;
i64 sys_itimer(bool set, int which, u64 new_value, u64 old_value) {
    struct Timeval {
        i64 sec, usec;
    };
    struct Itimerval {
        Timeval interval, value;
    };
    if (which < 0 || which > 2)
        return -kEINVAL;
    u64 out = set ? old_value : new_value; // getitimer(which, curr)
    Itimerval nv{};
    if (set) {
        if (new_value >= sys::kUserTop - sizeof nv)
            return -kEFAULT;
        memcpy(&nv, reinterpret_cast<const void*>(new_value), sizeof nv);
        if (nv.value.sec < 0 || nv.value.usec < 0 || nv.value.usec >= 1'000'000 || nv.interval.sec < 0 ||
            nv.interval.usec < 0 || nv.interval.usec >= 1'000'000)
            return -kEINVAL;
    }
    if (out && out >= sys::kUserTop - sizeof(Itimerval))
        return -kEFAULT;
    auto ns = [](const Timeval& t) { return static_cast<u64>(t.sec) * 1'000'000'000ull + static_cast<u64>(t.usec) * 1000; };
    u64 interval = g_alarm_interval_ns;
    u64 left = 0;
    if (which != 0) {
        if (i64 r = cpu_itimer(which, ns(nv.value), ns(nv.interval), set, &left, &interval); r < 0)
            return r;
    } else {
        left = set ? static_cast<u64>(native(Sys::process_alarm, ns(nv.value), ns(nv.interval)))
                   : static_cast<u64>(native(Sys::process_alarm, ~0ull, 0));
        if (set)
            g_alarm_interval_ns = ns(nv.value) ? ns(nv.interval) : 0;
    }
    if (out) {
        Itimerval ov{};
        ov.value = {static_cast<i64>(left / 1'000'000'000ull), static_cast<i64>(left % 1'000'000'000ull / 1000)};
        if (left && ov.value.sec == 0 && ov.value.usec == 0)
            ov.value.usec = 1;
        ov.interval = {static_cast<i64>(interval / 1'000'000'000ull), static_cast<i64>(interval % 1'000'000'000ull / 1000)};
        memcpy(reinterpret_cast<void*>(out), &ov, sizeof ov);
    }
    return 0;
}

i64 dispatch(sys::ThreadBlock* tb, const sys::LinuxSyscallFrame& f) {
    u64 a0 = f.rdi, a1 = f.rsi, a2 = f.rdx, a3 = f.r10, a4 = f.r8, a5 = f.r9;
    auto str = [](u64 p) { return p < sys::kUserTop ? reinterpret_cast<const char*>(p) : nullptr; };
    int i0 = static_cast<int>(a0);
    switch (f.rax) {
    case nr::read: return sys_read(i0, a1, a2);
    case nr::write: return sys_write(i0, a1, a2);
    case nr::pread64: return sys_pread(i0, a1, a2, static_cast<i64>(a3));
    case nr::pwrite64: return sys_pwrite(i0, a1, a2, static_cast<i64>(a3));
    case nr::readv: return sys_readv(i0, a1, static_cast<int>(a2));
    case nr::writev: return sys_writev(i0, a1, static_cast<int>(a2));
    case nr::open: return sys_openat(-100, str(a0), static_cast<int>(a1), static_cast<int>(a2));
    case nr::openat: return sys_openat(i0, str(a1), static_cast<int>(a2), static_cast<int>(a3));
    case nr::close: return sys_close(i0);
    case nr::lseek: return sys_lseek(i0, static_cast<i64>(a1), static_cast<int>(a2));
    case nr::fstat: return sys_fstat(i0, a1);
    case nr::stat: return sys_fstatat(-100, str(a0), a1, 0);
    case nr::lstat: return sys_fstatat(-100, str(a0), a1, 0x100);
    case nr::newfstatat: return sys_fstatat(i0, str(a1), a2, static_cast<int>(a3));
    case nr::getdents64: return sys_getdents64(i0, a1, a2);
    case nr::readlink: return sys_readlinkat(-100, str(a0), a1, a2);
    case nr::readlinkat: return sys_readlinkat(i0, str(a1), a2, a3);
    case nr::access: return sys_faccessat(-100, str(a0), static_cast<int>(a1));
    case nr::faccessat: case nr::faccessat2:
        return sys_faccessat(i0, str(a1), static_cast<int>(a2));
    case nr::ioctl: return sys_ioctl(i0, a1, a2);
    case nr::dup: return sys_dup(i0);
    case nr::dup2: return sys_dup3(i0, static_cast<int>(a1), 0, true);
    case nr::dup3: return sys_dup3(i0, static_cast<int>(a1), static_cast<int>(a2), false);
    case nr::fcntl: return sys_fcntl(i0, static_cast<int>(a1), a2);
    case nr::chdir: return sys_chdir(str(a0));
    case nr::getcwd: return sys_getcwd(a0, a1);
    case nr::brk: return sys_brk(a0);
    case nr::mmap: return sys_mmap(a0, a1, a2, a3, static_cast<i64>(a4), a5);
    case nr::munmap: return native(Sys::vm_unmap, a0, a1);
    case nr::mprotect: return native(Sys::vm_protect, a0, a1, a2);
    case nr::madvise: return 0; // advice only; nothing to release early yet
    case nr::arch_prctl:
        if (a0 == 0x1002) { // ARCH_SET_FS
            i64 r = native(Sys::set_fs_base, a1);
            if (r == 0)
                tb->scratch[1] = a1;
            return r;
        }
        if (a0 == 0x1003) { // ARCH_GET_FS
            if (a1 >= sys::kUserTop)
                return -kEFAULT;
            *reinterpret_cast<u64*>(a1) = tb->scratch[1];
            return 0;
        }
        return -kEINVAL;
    case nr::set_tid_address:
        tb->scratch[0] = a0 < sys::kUserTop ? a0 : 0;
        return static_cast<i64>(tb->tid);
    case nr::exit:
        native(Sys::thread_exit, tb->scratch[0], a0 & 0xff);
        __builtin_unreachable();
    case nr::exit_group: native_exit(0, a0 & 0xff);
    case nr::clone: return sys_clone(tb, a0, a1, a2, a3, a4);
    case nr::clone3: return -kENOSYS; // callers fall back to clone
    case nr::execve: return sys_execve(tb, str(a0), a1, a2);
    case nr::execveat:
        if (static_cast<int>(a0) != -100 || a4 != 0)
            return -kENOSYS; // relative to a descriptor, or with flags: not yet
        return sys_execve(tb, str(a1), a2, a3);
    case nr::futex: return sys_futex(a0, a1, a2, a3, a4, a5);
    case nr::sched_yield: return native(Sys::thread_yield);
    case nr::nanosleep: return sys_nanosleep(a0, false, false);
    case nr::clock_nanosleep:
        if (a0 != 0 && a0 != 1)
            return -kEINVAL;
        return sys_nanosleep(a2, a1 & 1, a0 == 0);
    case nr::poll: return sys_poll(a0, a1, deadline_ms(static_cast<abi::i32>(a2)));
    case nr::ppoll: return sys_poll(a0, a1, deadline_ts(a2, true));
    case nr::select: return sys_select(i0, a1, a2, a3, deadline_ts(a4, false));
    case nr::pselect6: return sys_select(i0, a1, a2, a3, deadline_ts(a4, true));
    case nr::epoll_create:
        return static_cast<abi::i32>(a0) <= 0 ? -kEINVAL : sys_epoll_create(0);
    case nr::epoll_create1: return sys_epoll_create(i0);
    case nr::epoll_ctl: return sys_epoll_ctl(i0, static_cast<int>(a1), static_cast<int>(a2), a3);
    case nr::epoll_wait:
    case nr::epoll_pwait:
        return sys_epoll_wait(i0, a1, static_cast<int>(a2), deadline_ms(static_cast<abi::i32>(a3)));
    case nr::eventfd: return sys_eventfd(a0, 0);
    case nr::eventfd2: return sys_eventfd(a0, static_cast<int>(a1));
    case nr::kill: {
        abi::i64 pid = static_cast<abi::i32>(a0);
        if (pid == 0 || pid == -1) // the caller's group, everyone: the caller itself for now
            pid = static_cast<abi::i64>(process_self() & 0xffffffff);
        if (pid < 0)
            pid = -pid; // a process group: its leader, for now
        abi::i64 r = native(Sys::process_kill, static_cast<u64>(pid), a1);
        if (r == -kEPERM) // of another tree: the process server's, under the policy
            r = kill_across(static_cast<u32>(pid), static_cast<u32>(a1));
        return r;
    }
    case nr::tkill:
    case nr::tgkill: {
        // To a thread of this process (raise(), abort(), pthread_kill, the
        // end of a SIGEV_THREAD timer).
        u64 sig = f.rax == nr::tkill ? a1 : a2;
        abi::i64 tid = static_cast<abi::i32>(f.rax == nr::tkill ? a0 : a1);
        if (f.rax == nr::tgkill && static_cast<abi::i64>(static_cast<abi::i32>(a0)) !=
                                       static_cast<abi::i64>(process_self() & 0xffffffff))
            return -3; // ESRCH
        if (tid <= 0 || sig > 64)
            return -kEINVAL;
        return native(Sys::thread_kill, static_cast<u64>(tid), sig);
    }
    case nr::set_robust_list: return a1 == 24 ? 0 : -kEINVAL; // no robust futex cleanup yet
    case nr::uname: return sys_uname(a0);
    case nr::getpid: return static_cast<i64>(process_self() & 0xffffffff);
    case nr::fork:
    case nr::vfork: return sys_fork(tb, 0, 0, false);
    case nr::wait4: {
        bool usage = a3 && a3 < sys::kUserTop - 144;
        if (usage)
            memset(reinterpret_cast<void*>(a3), 0, 144);
        constexpr u64 kWnohang = 1, kWuntraced = 2, kWcontinued = 8;
        if (a2 & ~(kWnohang | kWuntraced | kWcontinued))
            return -kEINVAL;
        abi::i64 pid = static_cast<abi::i32>(a0); // pid_t: -1 any child, 0 the group
        u64 flags = (a2 & kWnohang ? 1 : 0) | (a2 & kWuntraced ? 4 : 0) | (a2 & kWcontinued ? 8 : 0);
        // struct rusage: the CPU time the reaped child adds to this
        // process's children total (all of it user time).
        i64 before = usage ? native(Sys::cpu_time, sys::kCpuChildren, 0) : 0;
        i64 r = native(Sys::process_wait, static_cast<u64>(pid <= 0 ? -1 : pid), a1, flags);
        if (usage && r > 0) {
            i64 after = native(Sys::cpu_time, sys::kCpuChildren, 0);
            i64 ns = after > before ? after - before : 0;
            abi::i64 utime[2] = {ns / 1'000'000'000, ns % 1'000'000'000 / 1000};
            memcpy(reinterpret_cast<void*>(a3), utime, sizeof utime);
        }
        return r;
    }
    case nr::rt_sigsuspend: {
        // Waits with the given mask until a signal it lets through is
        // pending (posted by another process, a timer, or the kernel's
        // SIGCHLD); the signal runs as the call returns EINTR, and its
        // rt_sigreturn restores the mask from before the call.
        if (a1 != 8)
            return -kEINVAL;
        if (!a0 || a0 >= sys::kUserTop - 8)
            return -kEFAULT;
        u64 suspend_mask;
        memcpy(&suspend_mask, reinterpret_cast<const void*>(a0), 8);
        tb->scratch[2] = tb->sigmask; // the mask the handler's frame restores
        tb->scratch[3] = 1;
        tb->sigmask = suspend_mask & ~kUnblockable;
        while (!(__atomic_load_n(&tb->pending_signals, __ATOMIC_RELAXED) & ~tb->sigmask))
            wait_yield();
        return -4; // EINTR
    }
    case nr::rt_sigreturn: return sys_rt_sigreturn(tb);
    case nr::pipe: return sys_pipe2(a0, 0);
    case nr::pipe2: return sys_pipe2(a0, static_cast<int>(a1));
    case nr::gettid: return static_cast<i64>(tb->tid);
    case nr::getcpu: return sys_getcpu(a0, a1, __atomic_load_n(&tb->cpu, __ATOMIC_RELAXED));
    case nr::getppid: return static_cast<i64>(process_self() >> 32);
    case nr::getuid: case nr::geteuid: return g_rt.launch.uid;
    case nr::getgid: case nr::getegid: return g_rt.launch.gid;
    case nr::clock_gettime: return sys_clock_gettime(a0, a1);
    case nr::gettimeofday: return sys_gettimeofday(a0);
    case nr::time: {
        i64 t = static_cast<i64>(realtime_ns() / 1000000000ull);
        if (a0 && a0 < sys::kUserTop)
            *reinterpret_cast<i64*>(a0) = t;
        return t;
    }
    case nr::getrandom: return sys_getrandom(a0, a1, a2);
    case nr::rt_sigaction: return sys_rt_sigaction(a0, a1, a2, a3);
    case nr::rt_sigprocmask: return sys_rt_sigprocmask(tb, a0, a1, a2, a3);
    case nr::rt_sigtimedwait: return sys_rt_sigtimedwait(tb, a0, a1, a2, a3);
    case nr::rt_sigpending: {
        if (a1 != 8)
            return -kEINVAL;
        if (!a0 || a0 >= sys::kUserTop - 8)
            return -kEFAULT;
        u64 p = (__atomic_load_n(&tb->pending_signals, __ATOMIC_RELAXED) |
                 __atomic_load_n(&main_block()->pending_signals, __ATOMIC_RELAXED)) & tb->sigmask;
        memcpy(reinterpret_cast<void*>(a0), &p, 8);
        return 0;
    }
    case nr::clock_getres: return sys_clock_getres(a0, a1);
    case nr::alarm: {
        u64 left = static_cast<u64>(native(Sys::process_alarm, a0 * 1'000'000'000ull, 0));
        g_alarm_interval_ns = 0;
        u64 secs = left / 1'000'000'000ull;
        // Linux rounds to the nearest second, and never reports 0 for a
        // pending alarm.
        if (left % 1'000'000'000ull >= 500'000'000ull || (secs == 0 && left))
            ++secs;
        return static_cast<i64>(secs);
    }
    case nr::getitimer:
    case nr::setitimer: return sys_itimer(f.rax == nr::setitimer, i0, a1, a2);
    case nr::pause:
        // Until a signal is posted; it runs as the call returns EINTR.
        while (!(__atomic_load_n(&tb->pending_signals, __ATOMIC_RELAXED) & ~tb->sigmask))
            wait_yield();
        return -4; // EINTR
    case nr::mremap: return sys_mremap(a0, a1, a2, a3, a4);
    case nr::timer_create: return sys_timer_create(i0, a1, a2);
    case nr::timer_settime: return sys_timer_settime(i0, static_cast<int>(a1), a2, a3);
    case nr::timer_gettime: return sys_timer_gettime(i0, a1);
    case nr::timer_getoverrun: return sys_timer_getoverrun(i0);
    case nr::timer_delete: return sys_timer_delete(i0);
    case nr::msync: return 0; // no file is mapped shared for writing
    case nr::statx: return sys_statx(i0, str(a1), static_cast<int>(a2), static_cast<u32>(a3), a4);
    case nr::sendfile: return sys_sendfile(i0, static_cast<int>(a1), a2, a3);
    case nr::getrlimit: return sys_prlimit(0, i0, 0, a1);
    case nr::setrlimit: return sys_prlimit(0, i0, a1, 0);
    case nr::prlimit64: return sys_prlimit(i0, static_cast<int>(a1), a2, a3);
    case nr::umask: return sys_umask(static_cast<u32>(a0));
    case nr::getgroups: return sys_getgroups(i0, a1);
    case nr::getpgrp: return sys_getpgid(0);
    case nr::getpgid: return sys_getpgid(i0);
    case nr::setpgid: return sys_setpgid(i0, static_cast<int>(a1));
    case nr::getsid: return sys_getsid(i0);
    case nr::setsid: return sys_setsid();
    case nr::sysinfo: return sys_sysinfo(a0);
    case nr::times: return sys_times(a0);
    case nr::getrusage: return sys_getrusage(i0, a1);
    case nr::sched_getaffinity: return sys_sched_getaffinity(i0, a1, a2);
    case nr::sigaltstack: return sys_sigaltstack(a0, a1, f.rsp);
    // Changes: in volumes through the file service; the rootfs is read-only.
    case nr::mkdir: return sys_mkdirat(-100, str(a0), static_cast<u32>(a1));
    case nr::mkdirat: return sys_mkdirat(i0, str(a1), static_cast<u32>(a2));
    case nr::symlink: return sys_symlinkat(str(a0), -100, str(a1));
    case nr::symlinkat: return sys_symlinkat(str(a0), static_cast<int>(a1), str(a2));
    case nr::link: return sys_linkat(-100, str(a0), -100, str(a1), 0);
    case nr::linkat: return sys_linkat(i0, str(a1), static_cast<int>(a2), str(a3), static_cast<int>(a4));
    case nr::unlink: return sys_unlinkat(-100, str(a0), 0);
    case nr::rmdir: return sys_unlinkat(-100, str(a0), 0x200);
    case nr::unlinkat: return sys_unlinkat(i0, str(a1), static_cast<int>(a2));
    case nr::rename: return sys_renameat(-100, str(a0), -100, str(a1), 0);
    case nr::renameat: return sys_renameat(i0, str(a1), static_cast<int>(a2), str(a3), 0);
    case nr::renameat2: return sys_renameat(i0, str(a1), static_cast<int>(a2), str(a3), static_cast<u32>(a4));
    case nr::chmod: return sys_fchmodat(-100, str(a0), static_cast<u32>(a1), true);
    case nr::fchmodat: return sys_fchmodat(i0, str(a1), static_cast<u32>(a2), true);
    case nr::chown: return sys_fchownat(-100, str(a0), true);
    case nr::lchown: return sys_fchownat(-100, str(a0), false);
    case nr::fchownat: return sys_fchownat(i0, str(a1), !(a4 & 0x100));
    case nr::truncate: return sys_truncate(str(a0), static_cast<i64>(a1));
    case nr::utimensat: return sys_utimensat(i0, a1 ? str(a1) : nullptr, a2, static_cast<int>(a3));
    case nr::fchmod: return sys_fchmod(i0, static_cast<u32>(a1));
    case nr::fchown: return sys_fchown(i0);
    case nr::ftruncate: return sys_ftruncate(i0, static_cast<i64>(a1));
    case nr::fsync: case nr::fdatasync: return sys_fsync(i0);
    case nr::flock: case nr::fadvise64: return fd_check(i0);
    case nr::socket: return sys_socket(i0, static_cast<int>(a1), static_cast<int>(a2));
    case nr::socketpair: return sys_socketpair(i0, static_cast<int>(a1), static_cast<int>(a2), a3);
    case nr::bind: return sys_bind(i0, a1, a2);
    case nr::listen: return sys_listen(i0, static_cast<int>(a1));
    case nr::accept: return sys_accept4(i0, a1, a2, 0);
    case nr::accept4: return sys_accept4(i0, a1, a2, static_cast<int>(a3));
    case nr::connect: return sys_connect(i0, a1, a2);
    case nr::sendto: return sys_sendto(i0, a1, a2, static_cast<int>(a3), a4, a5);
    case nr::recvfrom: return sys_recvfrom(i0, a1, a2, static_cast<int>(a3), a4, a5);
    case nr::sendmsg: return sys_sendmsg(i0, a1, static_cast<int>(a2));
    case nr::recvmsg: return sys_recvmsg(i0, a1, static_cast<int>(a2));
    case nr::shutdown: return sys_shutdown(i0, static_cast<int>(a1));
    case nr::getsockname: return sys_sockname(i0, a1, a2, false);
    case nr::getpeername: return sys_sockname(i0, a1, a2, true);
    case nr::setsockopt: return sys_setsockopt(i0, static_cast<int>(a1), static_cast<int>(a2), a3, a4);
    case nr::getsockopt: return sys_getsockopt(i0, static_cast<int>(a1), static_cast<int>(a2), a3, a4);
    default:
        ++g_rt.unknown_syscalls;
        return -kENOSYS;
    }
}

// The runtime's state (descriptors, break, random state) is shared by the
// process's threads, which the kernel preempts: one lock serializes system
// calls, except those that wait or end the thread.
volatile u32 g_lock = 0;

bool waits_or_exits(u64 n) {
    return n == nr::pause || n == nr::futex || n == nr::sched_yield || n == nr::nanosleep ||
           n == nr::clock_nanosleep || n == nr::exit || n == nr::exit_group || n == nr::wait4 ||
           n == nr::rt_sigsuspend || n == nr::rt_sigtimedwait ||
           // These take the lock themselves, around each check of their wait.
           n == nr::poll || n == nr::ppoll || n == nr::select || n == nr::pselect6 ||
           n == nr::epoll_wait || n == nr::epoll_pwait;
}

} // namespace

void runtime_lock() {
    while (__atomic_exchange_n(&g_lock, 1u, __ATOMIC_ACQUIRE))
        native(Sys::thread_yield);
}
void runtime_unlock() { __atomic_store_n(&g_lock, 0u, __ATOMIC_RELEASE); }

// Calls a signal may interrupt while they wait in the kernel (a pipe, a
// child), which SA_RESTART executes again, as Linux does.
bool restartable(u64 n) {
    return n == nr::read || n == nr::readv || n == nr::write || n == nr::writev || n == nr::pread64 ||
           n == nr::pwrite64 || n == nr::wait4 || n == nr::waitid;
}

// Signals other processes (or this one, or its alarm) posted: the lowest
// unblocked one runs now; its default action if it no longer has a
// handler. `r` is what the interrupted code's rax holds, `call` the number
// of the system call that returns it (~0: none). Whether one ran.
bool run_pending_signals(sys::ThreadBlock* tb, i64 r, u64 call = ~0ull) {
    u64 pending = __atomic_load_n(&tb->pending_signals, __ATOMIC_RELAXED) & ~tb->sigmask;
    if (!pending) [[likely]]
        return false;
    int sig = __builtin_ctzll(pending) + 1;
    SigInfo info{};
    info.signo = sig;
    runtime_lock();
    fill_timer_info(tb, sig, info);
    runtime_unlock();
    __atomic_and_fetch(&tb->pending_signals, ~(1ull << (sig - 1)), __ATOMIC_RELAXED);
    if (sig == 17) {
        // Which child: one that has ended, stopped or continued, left for
        // the program's wait.
        abi::u32 status = 0;
        i64 pid = native(Sys::process_wait, static_cast<u64>(-1), reinterpret_cast<u64>(&status), 1 | 2 | 4 | 8);
        if (pid > 0) {
            info.pid = static_cast<abi::i32>(pid);
            if (status == 0xffff) {
                info.code = 6; // CLD_CONTINUED
                info.status = 18;
            } else if ((status & 0xff) == 0x7f) {
                info.code = 5; // CLD_STOPPED
                info.status = static_cast<abi::i32>((status >> 8) & 0xff);
            } else {
                bool killed = (status & 0x7f) != 0;
                info.code = killed ? 2 : 1; // CLD_KILLED, CLD_EXITED
                info.status = static_cast<abi::i32>(killed ? (status & 0x7f) : (status >> 8) & 0xff);
            }
        }
    }
    runtime_lock();
    bool ran = deliver_signal(tb, sig, info, r, restartable(call) ? call : ~0ull);
    u64 handler = g_sigactions[sig].handler;
    runtime_unlock();
    if (!ran && handler == 0 && sig != 17 && sig != 18 && sig != 23 && sig != 28)
        native_exit(1, static_cast<u64>(sig));
    if (ran && g_rt.trace) [[unlikely]]
        printf(2, "[kos] --- signal %d delivered to its handler ---\n", sig);
    return true;
}

// The kernel entered without a system call (sys::ThreadBlock::async_entry):
// a fault the program handles, or signals for a thread that computes
// without making calls. Every register is the application's.
void async_entry(sys::ThreadBlock* tb) {
    u64 reason = tb->async_entry;
    tb->async_entry = 0;
    sys::LinuxSyscallFrame& f = tb->frame;
    i64 rax = static_cast<i64>(f.rax);
    if (reason == sys::kAsyncResume)
        return; // a new thread: its registers and vector state are in the block
    if (reason == sys::kAsyncPreempt)
        native(Sys::thread_yield); // the vector state is saved: others may run
    if (reason & sys::kAsyncFault) {
        int sig = static_cast<int>(reason & 0xff);
        SigInfo info{};
        info.signo = sig;
        info.code = 1; // SEGV_MAPERR / BUS_ADRALN / ILL_ILLOPC / FPE_INTDIV
        memcpy(&info.pid, &tb->fault_addr, 8); // si_addr: where si_pid is for SIGCHLD
        runtime_lock();
        bool blocked = tb->sigmask & bit(sig);
        bool ran = !blocked && deliver_signal(tb, sig, info, rax);
        runtime_unlock();
        if (!ran) // blocked or handler gone: what Linux does, the default action
            native_exit(1, static_cast<u64>(sig));
        if (g_rt.trace) [[unlikely]]
            printf(2, "[kos] --- signal %d (fault at %#lx) delivered to its handler ---\n", sig, tb->fault_addr);
        return;
    }
    run_pending_signals(tb, rax);
}

extern "C" void linux_syscall(sys::ThreadBlock* tb) {
    // A tick came while the entry had not saved the program's vector
    // registers yet; they are saved now: others may run.
    if (tb->yield_requested) [[unlikely]] {
        tb->yield_requested = 0;
        native(Sys::thread_yield);
    }
    if (tb->async_entry) [[unlikely]] {
        async_entry(tb);
        return;
    }
    sys::LinuxSyscallFrame& f = tb->frame;
    u64 n = f.rax;
    if (g_rt.trace && (n == nr::exit || n == nr::exit_group)) [[unlikely]]
        printf(2, "[kos] %s(%#lx) = ?\n", syscall_name(n), f.rdi);
    bool locked = !waits_or_exits(n);
    if (locked)
        runtime_lock();
    i64 r = dispatch(tb, f);
    if (locked)
        runtime_unlock();
    if (tb->waited) [[unlikely]] {
        // The wait is over: CPU time counts again from here.
        tb->waited = 0;
        __atomic_store_n(&tb->wait_end_tsc, read_tsc(), __ATOMIC_RELAXED);
    }
    // Writing where no one reads raises SIGPIPE, as on Linux (it ends the
    // process unless it is ignored or handled; the call still fails EPIPE),
    // unless a send says MSG_NOSIGNAL.
    constexpr u64 kMsgNosignal = 0x4000;
    bool sends = n == nr::write || n == nr::writev || n == nr::pwrite64 ||
                 (n == nr::sendto && !(f.r10 & kMsgNosignal)) || (n == nr::sendmsg && !(f.rdx & kMsgNosignal));
    if (r == -32 && sends) [[unlikely]]
        native(Sys::process_kill, process_self() & 0xffffffff, 13);
    if (g_rt.trace) [[unlikely]] {
        const char* name = syscall_name(n);
        if (name)
            printf(2, "[kos] %s(%#lx, %#lx, %#lx, %#lx) = %ld\n", name, f.rdi, f.rsi, f.rdx, f.r10, r);
        else
            printf(2, "[kos] syscall_%lu(%#lx, %#lx, %#lx) = %ld (unknown)\n", n, f.rdi, f.rsi, f.rdx, r);
    }
    f.rax = static_cast<u64>(r);
    run_pending_signals(tb, r, n);
    if (tb->scratch[3]) [[unlikely]] {
        // rt_sigsuspend's signal ran no handler: its mask ends with the call.
        tb->scratch[3] = 0;
        tb->sigmask = tb->scratch[2];
    }
}

extern "C" [[noreturn]] void resume_application();

extern "C" [[noreturn]] void runtime_main(const sys::RuntimeStartInfo* si) {
    if (si->magic != sys::kRuntimeStartMagic)
        native_exit(0, 127);
    g_rt.info = *si;
    if (si->xsave_mask & ~3ull && si->xsave_size >= 576 && si->xsave_size <= sys::kFpuAreaMax) {
        kos_xsave_size = si->xsave_size;
        kos_xsave_mask = si->xsave_mask;
    }
    g_rt.trace = si->boot_flags & abi::boot::kBootTrace;
    g_rt.rootfs = abi::rootfs::RootfsView(reinterpret_cast<const u8*>(si->rootfs_base), si->rootfs_size);
    u32 bad = 0;
    if (auto err = g_rt.rootfs.validate(&bad); err != abi::rootfs::Error::None)
        fatal("kos: the bundle's rootfs image is invalid: %s (entry %u)\n",
              abi::rootfs::error_string(err), bad);

    // Launch description: counts, then strings (validated: every string
    // must end inside the block).
    const auto* lh = reinterpret_cast<const abi::boot::LaunchHeader*>(si->launch_base);
    if (si->launch_size < sizeof *lh || lh->strings_size > si->launch_size - sizeof *lh ||
        lh->argc == 0 || lh->argc > abi::boot::kMaxArgs || lh->envc > abi::boot::kMaxArgs)
        fatal("kos: malformed launch description\n");
    static const char* argv[abi::boot::kMaxArgs + 1];
    static const char* envp[abi::boot::kMaxArgs + 1];
    const char* s = reinterpret_cast<const char*>(lh + 1);
    const char* end = s + lh->strings_size;
    auto next = [&]() -> const char* {
        const char* start = s;
        while (s < end && *s)
            ++s;
        if (s >= end)
            fatal("kos: malformed launch description (unterminated string)\n");
        ++s;
        return start;
    };
    for (u32 i = 0; i < lh->argc; ++i)
        argv[i] = next();
    for (u32 i = 0; i < lh->envc; ++i)
        envp[i] = next();
    g_rt.launch.argc = lh->argc;
    g_rt.launch.envc = lh->envc;
    g_rt.launch.uid = lh->uid;
    g_rt.launch.gid = lh->gid;
    g_rt.launch.argv = argv;
    g_rt.launch.envp = envp;
    g_rt.launch.cwd = next();
    g_rt.launch.hostname = next();

    time_init();
    fs_init();
    auto* tb = reinterpret_cast<sys::ThreadBlock*>(si->thread_block);
    i64 r = exec_program(argv[0], argv, envp, &tb->frame);
    if (r < 0) {
        if (r == -kENOENT)
            fatal("kos: %s: no such file in the bundle's rootfs\n", argv[0]);
        if (r == -kEACCES)
            fatal("kos: %s: not an executable file (permission denied)\n", argv[0]);
        fatal("kos: cannot start %s (error %ld)\n", argv[0], -r);
    }
    resume_application();
}

} // namespace kos::rt
