#include "system.h"

#include "fs.h"
#include "kos/base/string.h"
#include "kos/idl/proc.h"
#include "server_channel.h"

namespace kos::rt {
namespace {

constexpr long kESRCH = 3;
constexpr u64 kInfinity = ~0ull;

struct Rlimit {
    u64 cur, max;
};

// RLIMIT_* 0..15. The VM enforces memory, time and output limits itself
// (kos run --memory, --timeout, --output-limit); these are what programs
// read to size themselves, and lower when they like.
Rlimit g_limits[16] = {
    {kInfinity, kInfinity},                  // CPU
    {kInfinity, kInfinity},                  // FSIZE
    {kInfinity, kInfinity},                  // DATA
    {8ull << 20, kInfinity},                 // STACK (the app stack is 8 MiB)
    {0, kInfinity},                          // CORE: no core files
    {kInfinity, kInfinity},                  // RSS
    {64, 64},                                // NPROC (the kernel's task table)
    {static_cast<u64>(kMaxFds), static_cast<u64>(kMaxFds)}, // NOFILE
    {8ull << 20, 8ull << 20},                // MEMLOCK
    {kInfinity, kInfinity},                  // AS
    {kInfinity, kInfinity},                  // LOCKS
    {0, 0},                                  // SIGPENDING
    {819200, 819200},                        // MSGQUEUE
    {0, 0},                                  // NICE
    {0, 0},                                  // RTPRIO
    {kInfinity, kInfinity},                  // RTTIME
};

u32 g_umask = 022;
i64 g_pgid = 0; // 0: the process's own pid (each process leads its group)
i64 g_sid = 0;
u64 g_altstack[3] = {0, 2 /* SS_DISABLE */, 0};

i64 self_pid() { return static_cast<i64>(process_self() & 0xffffffff); }

bool user_ok(u64 addr, u64 len) { return addr < abi::sys::kUserTop && len <= abi::sys::kUserTop - addr; }

} // namespace

i64 sys_prlimit(int pid, int resource, u64 new_limit, u64 old_limit) {
    if (pid != 0 && pid != self_pid())
        return -kEPERM; // other processes' limits: not ours to read or set
    if (resource < 0 || resource >= 16)
        return -kEINVAL;
    Rlimit& l = g_limits[resource];
    Rlimit next = l;
    if (new_limit) {
        if (!user_ok(new_limit, sizeof(Rlimit)))
            return -kEFAULT;
        memcpy(&next, reinterpret_cast<const void*>(new_limit), sizeof next);
        if (next.cur > next.max)
            return -kEINVAL;
        if (next.max > l.max)
            return -kEPERM; // only lowering, as for an unprivileged process
    }
    if (old_limit) {
        if (!user_ok(old_limit, sizeof(Rlimit)))
            return -kEFAULT;
        memcpy(reinterpret_cast<void*>(old_limit), &l, sizeof l);
    }
    l = next;
    return 0;
}

u32 current_umask() { return g_umask; }

i64 sys_umask(u32 mask) {
    u32 old = g_umask;
    g_umask = mask & 0777;
    return old;
}

i64 sys_getgroups(int size, u64 list) {
    // One supplementary group: the bundle's gid.
    if (size < 0)
        return -kEINVAL;
    if (size == 0)
        return 1;
    if (!user_ok(list, 4))
        return -kEFAULT;
    u32 gid = g_rt.launch.gid;
    memcpy(reinterpret_cast<void*>(list), &gid, 4);
    return 1;
}

i64 sys_getpgid(int pid) {
    if (pid != 0 && pid != self_pid())
        return pid > 0 ? pid : -kESRCH; // others lead their own groups
    return g_pgid ? g_pgid : self_pid();
}

i64 sys_setpgid(int pid, int pgid) {
    if (pgid < 0)
        return -kEINVAL;
    if (pid != 0 && pid != self_pid())
        return 0; // a child's group: recorded by the child itself (shells call both)
    g_pgid = pgid ? pgid : self_pid();
    return 0;
}

i64 sys_getsid(int pid) {
    if (pid != 0 && pid != self_pid())
        return 1; // the app's session
    return g_sid ? g_sid : 1;
}

i64 sys_setsid() {
    if (g_pgid == self_pid())
        return -kEPERM; // already a group leader by setpgid
    g_sid = g_pgid = self_pid();
    return g_sid;
}

i64 sys_sysinfo(u64 info) {
    struct SysInfo {
        i64 uptime;
        u64 loads[3];
        u64 totalram, freeram, sharedram, bufferram, totalswap, freeswap;
        u16 procs, pad;
        u32 pad2;
        u64 totalhigh, freehigh;
        u32 mem_unit;
        char reserved[4];
    };
    static_assert(sizeof(SysInfo) == 112);
    if (!user_ok(info, sizeof(SysInfo)))
        return -kEFAULT;
    SysInfo s{};
    s.uptime = static_cast<i64>(monotonic_ns() / 1'000'000'000ull);
    s.procs = 1;
    s.mem_unit = 1;
    // RAM: the limit programs see through RLIMIT_AS is unlimited; report
    // what the VM was given is not known here, so report no swap and
    // leave totals at 0 rather than invent them.
    memcpy(reinterpret_cast<void*>(info), &s, sizeof s);
    return 0;
}

// CPU time is what the kernel's scheduler gave the threads (abi cpu_time),
// all of it reported as user time: the kernel does not split it.
i64 sys_times(u64 buf) {
    // In clock ticks (100 Hz); the result is the elapsed time, as Linux's.
    if (buf) {
        if (!user_ok(buf, 32))
            return -kEFAULT;
        i64 self = native(Sys::cpu_time, abi::sys::kCpuProcess, 0);
        i64 children = native(Sys::cpu_time, abi::sys::kCpuChildren, 0);
        u64 tms[4] = {self > 0 ? static_cast<u64>(self) / 10'000'000ull : 0, 0,
                      children > 0 ? static_cast<u64>(children) / 10'000'000ull : 0, 0};
        memcpy(reinterpret_cast<void*>(buf), tms, sizeof tms);
    }
    return static_cast<i64>(monotonic_ns() / 10'000'000ull);
}

i64 sys_getrusage(int who, u64 usage) {
    if (who != 0 && who != -1 && who != 1) // SELF, CHILDREN, THREAD
        return -kEINVAL;
    if (!user_ok(usage, 144))
        return -kEFAULT;
    memset(reinterpret_cast<void*>(usage), 0, 144);
    u64 which = who == 0 ? abi::sys::kCpuProcess : who == 1 ? abi::sys::kCpuThread : abi::sys::kCpuChildren;
    i64 ns = native(Sys::cpu_time, which, 0);
    if (ns > 0) {
        abi::i64 utime[2] = {ns / 1'000'000'000, ns % 1'000'000'000 / 1000}; // ru_utime
        memcpy(reinterpret_cast<void*>(usage), utime, sizeof utime);
    }
    return 0;
}

i64 cpu_clock_ns(abi::i32 clock) {
    u64 which, id = 0;
    if (clock == 2) {
        which = abi::sys::kCpuProcess; // CLOCK_PROCESS_CPUTIME_ID
    } else if (clock == 3) {
        which = abi::sys::kCpuThread; // CLOCK_THREAD_CPUTIME_ID
    } else if (clock < 0 && (clock & 3) != 3) {
        // Linux's encoding: ~pid << 3 | per-thread 4 | PROF 0, VIRT 1, SCHED 2
        // (one count here, all three read it).
        which = (clock & 4) ? abi::sys::kCpuThread : abi::sys::kCpuProcess;
        abi::i64 pid = ~(static_cast<abi::i64>(clock) >> 3);
        id = static_cast<u64>(pid);
        if (which == abi::sys::kCpuProcess && id == (process_self() & 0xffffffff))
            id = 0;
    } else {
        return -kEINVAL;
    }
    i64 ns = native(Sys::cpu_time, which, id);
    return ns < 0 ? -kEINVAL : ns;
}

i64 sys_getcpu(u64 cpu_out, u64 node_out, u64 cpu) {
    // One NUMA node; the CPU as of the kernel's last switch to the thread.
    if ((cpu_out && !user_ok(cpu_out, 4)) || (node_out && !user_ok(node_out, 4)))
        return -kEFAULT;
    if (cpu_out)
        *reinterpret_cast<u32*>(cpu_out) = static_cast<u32>(cpu);
    if (node_out)
        *reinterpret_cast<u32*>(node_out) = 0;
    return 0;
}

i64 sys_sched_getaffinity(int pid, u64 size, u64 mask) {
    // Every thread may run on each of the VM's CPUs (0 .. cpus - 1).
    if (size < 8 || size % 8)
        return -kEINVAL;
    if (!user_ok(mask, size))
        return -kEFAULT;
    memset(reinterpret_cast<void*>(mask), 0, size);
    u64 cpus = g_rt.info.cpus;
    if (cpus == 0 || cpus > 64)
        cpus = 1;
    *reinterpret_cast<u64*>(mask) = cpus == 64 ? ~0ull : (1ull << cpus) - 1;
    return 8;
}

bool on_alt_stack(u64 sp) {
    return !(g_altstack[1] & 2) && g_altstack[2] && sp - g_altstack[0] < g_altstack[2];
}

bool alt_signal_stack(u64 sp, u64* top) {
    if ((g_altstack[1] & 2) || g_altstack[2] == 0 || on_alt_stack(sp))
        return false; // none, disabled, or already on it (nested signals stay there)
    *top = g_altstack[0] + g_altstack[2];
    return true;
}

i64 sys_sigaltstack(u64 ss, u64 old, u64 sp) {
    // Handlers with SA_ONSTACK run on this stack (deliver_signal).
    if (old) {
        if (!user_ok(old, 24))
            return -kEFAULT;
        u64 report[3] = {g_altstack[0], g_altstack[1] | (on_alt_stack(sp) ? 1u : 0u), g_altstack[2]};
        if (!g_altstack[2])
            report[1] = 2; // SS_DISABLE: none yet
        memcpy(reinterpret_cast<void*>(old), report, 24);
    }
    if (ss) {
        if (!user_ok(ss, 24))
            return -kEFAULT;
        if (on_alt_stack(sp))
            return -kEPERM; // not while running on it
        u64 next[3];
        memcpy(next, reinterpret_cast<const void*>(ss), 24);
        next[1] &= 0xffffffffu; // ss_flags is an int
        if (next[1] & ~(2ull | 0x80000000ull)) // SS_DISABLE, SS_AUTODISARM
            return -kEINVAL;
        next[1] &= 2;
        if (!(next[1] & 2) && next[2] < 2048)
            return -12; // ENOMEM: below MINSIGSTKSZ
        memcpy(g_altstack, next, 24);
    }
    return 0;
}

namespace {

constexpr int kTimers = 8; // the kernel's timers 1..8
struct PosixTimer {
    bool used = false;
    int clock = 0;
    u32 signal = 0;
    u64 interval_ns = 0;
    u64 tid = 0;      // SIGEV_THREAD_ID: the thread its signal goes to
    u64 kclock = 0;   // process_timer's a0 bits above the index (TimerClock, thread)
    u64 value = 0;    // sigev_value, in the signal's siginfo
    abi::i32 overrun = 0; // of the signal delivered last
};
PosixTimer g_timers[kTimers];

struct Timespec {
    abi::i64 sec, nsec;
};
struct Itimerspec {
    Timespec interval, value;
};

bool ns_of(const Timespec& t, u64* out) {
    if (t.sec < 0 || t.nsec < 0 || t.nsec >= 1'000'000'000)
        return false;
    *out = static_cast<u64>(t.sec) * 1'000'000'000ull + static_cast<u64>(t.nsec);
    return true;
}
Timespec ts_of(u64 ns) { return {static_cast<abi::i64>(ns / 1'000'000'000ull), static_cast<abi::i64>(ns % 1'000'000'000ull)}; }

PosixTimer* timer_at(int id) { return id >= 0 && id < kTimers && g_timers[id].used ? &g_timers[id] : nullptr; }

} // namespace

i64 sys_timer_create(int clock, u64 sevp, u64 id_out) {
    // CLOCK_REALTIME, MONOTONIC, BOOTTIME (and their _ALARM kinds): one
    // clock here; the CPU-time clocks of this process and its threads.
    constexpr u64 kProcessCpu = abi::sys::kTimerProcessCpu << 8, kThreadCpu = abi::sys::kTimerThreadCpu << 8;
    u64 kclock = 0; // process_timer's a0 above the index: the monotonic clock
    if (clock == 2) {
        kclock = kProcessCpu;
    } else if (clock == 3) {
        kclock = kThreadCpu | (self_block()->tid << 32); // the creating thread's
    } else if (clock < 0 && (clock & 3) != 3) {
        abi::i64 id = ~(static_cast<abi::i64>(clock) >> 3);
        if (clock & 4) {
            if (id <= 0 || native(Sys::cpu_time, abi::sys::kCpuThread, static_cast<u64>(id)) < 0)
                return -kEINVAL;
            kclock = kThreadCpu | (static_cast<u64>(id) << 32);
        } else {
            if (id != 0 && static_cast<u64>(id) != (process_self() & 0xffffffff))
                return -kEINVAL; // another process's CPU time: not here
            kclock = kProcessCpu;
        }
    } else if (clock != 0 && clock != 1 && clock != 7 && clock != 8 && clock != 9) {
        return -kEINVAL;
    }
    u32 signal = 14; // no sigevent: SIGALRM, as Linux
    u64 tid = 0, value = 0;
    if (sevp) {
        struct {
            abi::i64 value;
            int signo, notify;
            int tid;
        } ev;
        if (!user_ok(sevp, sizeof ev))
            return -kEFAULT;
        memcpy(&ev, reinterpret_cast<const void*>(sevp), sizeof ev);
        value = static_cast<u64>(ev.value);
        if (ev.notify == 1) // SIGEV_NONE
            signal = 0;
        else if ((ev.notify == 0 || ev.notify == 4) && ev.signo > 0 && ev.signo <= 64)
            signal = static_cast<u32>(ev.signo); // SIGEV_SIGNAL, SIGEV_THREAD_ID
        else
            return -kEINVAL; // SIGEV_THREAD is the C library's (a thread with SIGEV_THREAD_ID)
        if (ev.notify == 4) {
            // A thread of this process.
            if (ev.tid <= 0 || native(Sys::thread_kill, static_cast<u64>(ev.tid), 0) != 0)
                return -kEINVAL;
            tid = static_cast<u64>(ev.tid);
        }
    } else {
        value = 0; // the timer's id, below
    }
    if (!user_ok(id_out, 4))
        return -kEFAULT;
    for (int i = 0; i < kTimers; ++i)
        if (!g_timers[i].used) {
            g_timers[i] = PosixTimer{true, clock, signal, 0, tid, kclock, sevp ? value : static_cast<u64>(i), 0};
            memcpy(reinterpret_cast<void*>(id_out), &i, 4);
            return 0;
        }
    return -11; // EAGAIN: no timer left
}

i64 sys_timer_settime(int id, int flags, u64 new_value, u64 old_value) {
    PosixTimer* t = timer_at(id);
    if (!t)
        return -kEINVAL;
    Itimerspec nv;
    if (!user_ok(new_value, sizeof nv))
        return -kEFAULT;
    memcpy(&nv, reinterpret_cast<const void*>(new_value), sizeof nv);
    u64 value = 0, interval = 0;
    if (!ns_of(nv.value, &value) || !ns_of(nv.interval, &interval) || (flags & ~1))
        return -kEINVAL;
    if (value && (flags & 1)) { // TIMER_ABSTIME on the timer's clock
        u64 now = t->clock == 0 ? realtime_ns() : monotonic_ns();
        if (t->kclock) {
            i64 cpu = cpu_clock_ns(t->clock);
            now = cpu > 0 ? static_cast<u64>(cpu) : 0;
        }
        value = value > now ? value - now : 1;
    }
    if (old_value && !user_ok(old_value, sizeof(Itimerspec)))
        return -kEFAULT;
    u64 old_interval = t->interval_ns;
    i64 left = native(Sys::process_timer, (static_cast<u64>(id) + 1) | t->kclock, value, value ? interval : 0,
                      t->signal | (t->tid << 32));
    if (left < 0)
        return left;
    t->interval_ns = value ? interval : 0;
    if (old_value) {
        Itimerspec ov{ts_of(old_interval), ts_of(static_cast<u64>(left))};
        memcpy(reinterpret_cast<void*>(old_value), &ov, sizeof ov);
    }
    return 0;
}

i64 sys_timer_gettime(int id, u64 value) {
    PosixTimer* t = timer_at(id);
    if (!t)
        return -kEINVAL;
    if (!user_ok(value, sizeof(Itimerspec)))
        return -kEFAULT;
    i64 left = native(Sys::process_timer, (static_cast<u64>(id) + 1) | t->kclock, ~0ull, 0, 0);
    if (left < 0)
        return left;
    Itimerspec cur{ts_of(left ? t->interval_ns : 0), ts_of(static_cast<u64>(left))};
    memcpy(reinterpret_cast<void*>(value), &cur, sizeof cur);
    return 0;
}

i64 sys_timer_getoverrun(int id) {
    PosixTimer* t = timer_at(id);
    return t ? t->overrun : -kEINVAL;
}

bool timer_signal_info(abi::sys::ThreadBlock* block, int sig, abi::i32* timerid, abi::i32* overrun, u64* value) {
    u64 fired = __atomic_load_n(&block->timer_fired, __ATOMIC_RELAXED);
    for (int i = 0; i < kTimers; ++i) {
        u64 bit = 1ull << (i + 1); // the kernel's timer i + 1
        if (!(fired & bit) || !g_timers[i].used || g_timers[i].signal != static_cast<u32>(sig))
            continue;
        // Taken before the signal itself: an expiration in between posts
        // it again rather than counting an overrun that would be lost.
        __atomic_and_fetch(&block->timer_fired, ~bit, __ATOMIC_RELAXED);
        u32 ov = __atomic_exchange_n(&block->timer_overrun[i + 1], 0u, __ATOMIC_RELAXED);
        g_timers[i].overrun = static_cast<abi::i32>(ov);
        *timerid = i;
        *overrun = static_cast<abi::i32>(ov);
        *value = g_timers[i].value;
        return true;
    }
    return false;
}

i64 cpu_itimer(int which, u64 value_ns, u64 interval_ns, bool set, u64* left_ns, u64* interval_out) {
    static u64 intervals[3];
    u64 index = which == 1 ? abi::sys::kTimerVirtual : abi::sys::kTimerProf;
    u64 sig = which == 1 ? 26 : 27; // SIGVTALRM, SIGPROF
    i64 left = set ? native(Sys::process_timer, index | (abi::sys::kTimerProcessCpu << 8), value_ns,
                            value_ns ? interval_ns : 0, sig)
                   : native(Sys::process_timer, index | (abi::sys::kTimerProcessCpu << 8), ~0ull, 0, 0);
    if (left < 0)
        return left;
    *interval_out = intervals[which];
    if (set)
        intervals[which] = value_ns ? interval_ns : 0;
    *left_ns = static_cast<u64>(left);
    return 0;
}

i64 sys_timer_delete(int id) {
    if (!timer_at(id))
        return -kEINVAL;
    native(Sys::process_timer, static_cast<u64>(id) + 1, 0, 0, 0);
    g_timers[id] = PosixTimer{};
    return 0;
}

void timers_reset_on_exec() {
    for (int i = 0; i < kTimers; ++i)
        if (g_timers[i].used)
            sys_timer_delete(i);
}

namespace {
// Used under the runtime lock.
ServerChannel g_proc_channel{&g_rt.info.proc_channel, -kEPERM};
idl::proc::Process::Client<ServerChannel> g_proc(g_proc_channel);
} // namespace

i64 kill_across(u32 pid, u32 signal) {
    idl::proc::Process::kill::Response resp;
    return server_result(g_proc.kill({pid, signal}, resp));
}

} // namespace kos::rt
