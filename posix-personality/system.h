// Process and system information calls of the personality that need no
// authority: resource limits, umask, groups, process groups and sessions,
// sysinfo, times and rusage, CPU affinity, sigaltstack, and the file calls
// a read-only rootfs answers with EROFS.
#pragma once

#include "runtime.h"

namespace kos::rt {

i64 sys_prlimit(int pid, int resource, u64 new_limit, u64 old_limit);
// kill() of a process outside the caller's tree (another label): a
// proc.Process.kill request to the process server, which the policy
// judges; EPERM when the bundle has no process server.
i64 kill_across(u32 pid, u32 signal);
i64 sys_umask(u32 mask);
// The mask applied to the modes of files and directories made.
u32 current_umask();
i64 sys_getgroups(int size, u64 list);
i64 sys_getpgid(int pid);
i64 sys_setpgid(int pid, int pgid);
i64 sys_getsid(int pid);
i64 sys_setsid();
i64 sys_sysinfo(u64 info);
i64 sys_times(u64 buf);
i64 sys_getrusage(int who, u64 usage);
i64 sys_getcpu(u64 cpu_out, u64 node_out, u64 cpu);
i64 sys_sched_getaffinity(int pid, u64 size, u64 mask);
// sp: the caller's stack pointer (no change while running on the stack).
i64 sys_sigaltstack(u64 ss, u64 old, u64 sp);
// The top of the alternate signal stack for a handler with SA_ONSTACK
// interrupting code at `sp`; false without one, or when already on it.
bool alt_signal_stack(u64 sp, u64* top);
// POSIX timers (SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID; on the
// monotonic, realtime and CPU-time clocks) on the kernel's per-process timers.
i64 sys_timer_create(int clock, u64 sevp, u64 id_out);
i64 sys_timer_settime(int id, int flags, u64 new_value, u64 old_value);
i64 sys_timer_gettime(int id, u64 value);
i64 sys_timer_getoverrun(int id);
i64 sys_timer_delete(int id);
// execve: POSIX timers do not survive it (the alarm does).
void timers_reset_on_exec();
// Whether `sig`, pending in `block`, was posted by a POSIX timer: which,
// its overruns until now (timer_getoverrun reports them from then on) and
// its sigev_value. Called with the runtime lock held.
bool timer_signal_info(abi::sys::ThreadBlock* block, int sig, abi::i32* timerid, abi::i32* overrun, u64* value);
// A CPU-time clock's value in ns (CLOCK_PROCESS_CPUTIME_ID,
// CLOCK_THREAD_CPUTIME_ID, or one made by clock_getcpuclockid or
// pthread_getcpuclockid), or -EINVAL.
i64 cpu_clock_ns(abi::i32 clock);
// ITIMER_VIRTUAL and ITIMER_PROF: `which` 1 or 2, on the process's CPU time.
i64 cpu_itimer(int which, u64 value_ns, u64 interval_ns, bool set, u64* left_ns, u64* interval_out);

} // namespace kos::rt
