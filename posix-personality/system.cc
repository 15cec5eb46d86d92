#include "system.h"

#include "fs.h"
#include "kos/base/string.h"

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

i64 self_pid() { return static_cast<i64>(native(Sys::process_self) & 0xffffffff); }

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

i64 sys_times(u64 buf) {
    // CPU time is not accounted per process yet: all four are 0; the
    // result is the elapsed time in clock ticks (100 Hz), as Linux's.
    if (buf) {
        if (!user_ok(buf, 32))
            return -kEFAULT;
        memset(reinterpret_cast<void*>(buf), 0, 32);
    }
    return static_cast<i64>(monotonic_ns() / 10'000'000ull);
}

i64 sys_getrusage(int who, u64 usage) {
    if (who != 0 && who != -1 && who != 1) // SELF, CHILDREN, THREAD
        return -kEINVAL;
    if (!user_ok(usage, 144))
        return -kEFAULT;
    memset(reinterpret_cast<void*>(usage), 0, 144); // not accounted yet
    return 0;
}

i64 sys_sched_getaffinity(int pid, u64 size, u64 mask) {
    // One vCPU: CPU 0.
    if (size < 8 || size % 8)
        return -kEINVAL;
    if (!user_ok(mask, size))
        return -kEFAULT;
    memset(reinterpret_cast<void*>(mask), 0, size);
    *reinterpret_cast<u64*>(mask) = 1;
    return 8;
}

i64 sys_sigaltstack(u64 ss, u64 old) {
    // Recorded and reported; handlers still run on the interrupted stack.
    if (old) {
        if (!user_ok(old, 24))
            return -kEFAULT;
        memcpy(reinterpret_cast<void*>(old), g_altstack, 24);
    }
    if (ss) {
        if (!user_ok(ss, 24))
            return -kEFAULT;
        u64 next[3];
        memcpy(next, reinterpret_cast<const void*>(ss), 24);
        if (next[1] & ~2ull)
            return -kEINVAL;
        if (!(next[1] & 2) && next[2] < 2048)
            return -12; // ENOMEM: below MINSIGSTKSZ
        memcpy(g_altstack, next, 24);
    }
    return 0;
}

} // namespace kos::rt
