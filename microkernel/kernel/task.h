// Tasks (an address space, a handle table and a label) and their threads,
// and the scheduler that runs them on the CPUs (one run queue; see smp.h).
//
// Threads never block inside the kernel: a thread that must wait (for a
// message, for a reply) has its user state saved in its Thread and the
// trap returns into another thread. Switching is done by replacing the
// trap frame on the CPU's kernel stack (see schedule in task.cc).
#pragma once

#include "../arch/x86_64/cpu.h"
#include "handle_table.h"
#include "kos/rootfs_access.h"
#include "kos/syscall.h"
#include "smp.h"
#include "vm.h"

namespace kos {

struct Task;
struct Channel;

// The personality's servers (posix-personality/servers), which the kernel
// image carries; the kernel gives the first two a narrow authority.
enum class PersonalityServer : abi::u8 { None, Vfs, Proc, Pipe };

enum class ThreadState : abi::u8 {
    Free,
    Runnable,
    BlockedReceive,
    BlockedSend,
    BlockedReply,
    BlockedFutex,
    BlockedPipe, // waits on `pipe`, then executes its call again
    BlockedWait, // waits for a child task to end, then executes its call again
    Stopped,     // its task is stopped (SIGSTOP...): runs again at SIGCONT
    Dead
};

struct Thread {
    arch::TrapFrame frame{};   // user state while not running
    abi::u64 fpu_pa = 0;       // FPU/SSE(/AVX) save area, one frame
    abi::u64 fs_base = 0;
    abi::u64 gs_base = 0;
    Task* task = nullptr;
    ThreadState state = ThreadState::Free;
    abi::u32 tid = 0;
    abi::u64 futex_addr = 0;   // BlockedFutex: the user address waited on
    void* pipe = nullptr;      // BlockedPipe: the pipe waited on
    Thread* next = nullptr;    // run queue or channel send queue
    int on_cpu = -1;           // the CPU running it now (-1: none)

    // Linux personality: the runtime's per-thread block and stack.
    abi::u64 thread_block_va = 0;
    abi::u64 thread_block_pa = 0;
    abi::u64 runtime_stack_top = 0;

    // IPC.
    abi::u64 msg_pa = 0;       // kernel copy of this thread's pending message
    abi::u32 msg_size = 0;
    abi::u64 reply_buf = 0;    // client: where the reply goes
    abi::u64 reply_cap = 0;
    abi::u64 recv_buf = 0;     // server blocked in receive
    abi::u64 recv_cap = 0;
    abi::u64 recv_info = 0;
    Channel* channel = nullptr; // channel the thread waits on
    abi::u64 grant_addr = 0;    // client: memory lent to the server for this call
    abi::u64 grant_size = 0;
    bool grant_write = false;
    Thread* reply_to = nullptr; // server: the client awaiting this thread's reply
    Channel* reply_channel = nullptr;

    // CPU time: TSC cycles the scheduler gave the thread until run_start,
    // when it was last loaded or charged. A thread that said it waits
    // (thread_yield a0 = 1) is charged nothing until its runtime writes
    // ThreadBlock::wait_end_tsc.
    abi::u64 cpu_cycles = 0;
    abi::u64 run_start = 0;
    bool waiting = false;
};

struct Task {
    vm::AddressSpace as;
    HandleTable handles;
    Thread* thread = nullptr;  // the first thread
    abi::u32 live_threads = 0;
    abi::u32 next_tid = 1;
    abi::u32 index = 0;        // in the init description
    abi::u32 label = 0;        // label index from the init description
    abi::u32 policy_label = 0xffffffffu; // the label's index in the compiled policy
    abi::u64 sig_caught = 0;   // signals with a handler (bit sig - 1), from the runtime
    abi::u64 sig_ignored = 0;  // signals set to SIG_IGN
    // Timer 0 is the alarm (alarm, setitimer ITIMER_REAL: SIGALRM), the
    // others POSIX timers (timer_create); each posts its signal when due.
    // Timers 9 and 10 are ITIMER_VIRTUAL and ITIMER_PROF. A CPU-time timer
    // counts the CPU time of the process or of one thread (abi TimerClock).
    struct Timer {
        abi::u64 at = 0;       // ns of its clock when it is next due (0: disarmed)
        abi::u64 interval = 0; // ns between expirations after it (0: once)
        abi::u32 signal = 0;   // 0: none (SIGEV_NONE)
        abi::u32 tid = 0;      // the thread its signal goes to (0: the process)
        abi::u32 clock = 0;    // abi::sys::TimerClock
        abi::u32 clock_tid = 0; // kTimerThreadCpu: whose CPU time
        abi::u32 posted_tid = 0; // the thread its last signal was posted to
    };
    static constexpr abi::u32 kTimers = 11;
    // CPU time of its children that ended and were waited for (times, getrusage).
    abi::u64 children_cycles = 0;
    Timer timers[kTimers] = {};
    const char* name = "";
    const char* label_name = "";
    // Linux tasks: which rootfs files the label may read (nullptr: all).
    const abi::rootfs_access::Label* rootfs_access = nullptr;
    bool linux_personality = false;
    bool dead = false;
    // Stopped by SIGSTOP (or SIGTSTP, SIGTTIN, SIGTTOU without a handler)
    // until SIGCONT; what the parent's wait has yet to report of it.
    bool stopped = false;
    abi::u32 stop_signal = 0;
    bool stop_unreported = false;
    bool no_child_stop_signal = false; // SA_NOCLDSTOP on its SIGCHLD handler
    bool continue_unreported = false;
    Task* parent = nullptr;     // the task that forked this one
    // The process of the init description this task is (or descends from
    // by fork): the client end its channels were declared for. Its fork
    // children call over the channels they inherit as that process.
    Task* origin = nullptr;
    // Which personality server the task is, if any (loader.h): the VFS
    // server alone may ask the kernel for volume calls that name a path,
    // the process server alone may signal a process of another tree, each
    // on behalf of the client whose request it serves; the pipe server has
    // no authority beyond its own pipes.
    PersonalityServer server = PersonalityServer::None;
    bool end_reported = false; // its fault was reported where it happened
    // Whether the kernel switches its threads' FPU/SSE/AVX state. Linux
    // tasks' runtime saves and loads the program's vector registers in
    // ring 3 on every entry and return (and the runtime and the kernel use
    // none), and the personality's servers are built without them: only a
    // bundle's native programs need the kernel's switch, which on nested
    // KVM without ring-0 FXRSTOR costs a VM exit each time.
    bool kernel_fpu = false;
    // Linux tasks: their handles of the channels to the personality
    // servers, by PersonalityServer - 1 (0: none).
    abi::u32 server_channel[3] = {};
    abi::u32 wait_status = 0;   // Linux wait status once dead
    bool reaped = false;        // its status was collected by the parent (or no one will)
    bool orphaned = false;      // its parent ended first: no one will collect its status
    bool released = false;      // and its memory freed: the slot is free
    abi::u64 runtime_text_start = 0; // `syscall` from here is a native call (Linux tasks)
    abi::u64 runtime_text_end = 0;
    abi::u64 runtime_linux_entry = 0;
    // RuntimeHeader's windows where the program's vector registers are in
    // the CPU only: no preemption there.
    abi::u64 runtime_fpu_saved = 0;
    abi::u64 runtime_resume_start = 0;
    abi::u64 runtime_resume_end = 0;
};

inline constexpr abi::u32 kMaxTasks = 64;

// Returned by native calls whose caller now waits: the scheduler runs
// another thread, and the waker sets the caller's result.
inline constexpr abi::i64 kBlocked = 1ll << 62;

// The thread this CPU runs.
inline Thread* current_thread() { return this_cpu().current; }

Task* task_at(abi::u32 index);
Task* alloc_task();
Thread* alloc_thread(Task* task);

// Scheduler.
void make_runnable(Thread* t);
// At the end of a kernel entry: threads still queued wake an idle CPU (not
// at make_runnable: a caller that wakes a thread and then waits itself,
// as an IPC call does, runs it on this CPU without an IPI).
void wake_cpu_for_queued_threads();
// Whether threads wait in the run queue, read without the kernel lock (a
// hint for an idle CPU).
bool run_queue_hint();
// Whether a thread other than the running one waits for a CPU or runs on
// another.
bool other_threads_runnable();
// Saves the running thread into its Thread (if `save`), picks the next
// runnable thread and loads it into `f`; a running thread that is still
// runnable goes to the back of the queue (the caller must not queue it).
// With nothing to run, the CPU waits (idle) until a thread is runnable;
// stops the run with a clear error when no CPU runs anything either.
void schedule(arch::TrapFrame* f, bool save);
// At an entry from ring 3 of `self`, which another CPU stopped or ended
// meanwhile (its state is no longer Runnable): switches it out, and `f`
// holds the next thread.
void switch_out_stopped_or_ended(Thread* self, arch::TrapFrame* f, bool syscall);
// Loads `t` as the running thread (first entry to user mode).
void load_thread(Thread* t, arch::TrapFrame* f);

// The object a removed handle named: the last handle of a pipe end,
// socket or volume file closes it.
void handle_released(KernelObject* object);

// Ends a task with a Linux wait status (exit code << 8, or the signal):
// its channels fail their peers (EPIPE), its handles are released, its
// parent's waits complete.
void task_exit(Task* task, abi::u32 wait_status = 0);
// process_kill (abi/kos/syscall.h).
abi::i64 process_kill(Thread* self, abi::u64 pid, abi::u64 sig);
// process_kill_for_client (abi/kos/syscall.h): the process server's.
abi::i64 process_kill_for_client(Thread* self, abi::u64 pid, abi::u64 sig);
// Sends `sig` to `t` (no permission check): its default action, or posted
// for its handler. kBlocked if it ended `self`'s task.
// `sender`: the pid siginfo names (0: the caller's, if any).
abi::i64 signal_task(Thread* self, Task* t, abi::u64 sig, abi::u32 sender = 0);
// alarm/setitimer (abi/kos/syscall.h process_alarm), and the timer's check
// of every task's alarm.
abi::i64 process_alarm(Thread* self, abi::u64 delay_ns, abi::u64 interval_ns);
abi::i64 process_timer(Thread* self, abi::u64 index, abi::u64 delay_ns, abi::u64 interval_ns, abi::u64 signal);
void fire_alarms();
abi::u64 monotonic_ns();
// tkill/tgkill: `sig` to thread `tid` of the caller's process.
abi::i64 thread_kill(Thread* self, abi::u64 tid, abi::u64 sig);
// CPU time (abi/kos/syscall.h cpu_time), and the accounting of it.
abi::i64 cpu_time(Thread* self, abi::u64 which, abi::u64 id);
// thread_yield with a0 = 1: the caller waits, and is not charged for it.
void thread_wait_yield(Thread* self);

// fork and wait (native calls process_fork, process_wait), and wake-ups.
abi::i64 process_fork(Thread* self, abi::u64 regs_va);
// Without `reap`, the child stays collectable (WNOWAIT).
// `stopped`/`continued`: also report a child's stop or continuation not
// reported yet (WUNTRACED, WCONTINUED).
abi::i64 process_wait(Thread* self, abi::i64 pid, abi::u64 status_va, bool nohang, bool reap, bool stopped = false,
                      bool continued = false);
void wake_pipe_waiters(void* pipe);
inline abi::u64 pid_of(const Task* t) { return t ? t->index + 1 : 0; }

// Threads after the first (native calls thread_create, thread_exit) and
// futexes.
abi::i64 thread_create(Thread* self, abi::u64 regs_va, abi::u64 fs_base, abi::u64 clear_tid);
// Returns true when this was the task's last thread.
bool thread_exit(Thread* self, abi::u64 clear_tid);
abi::i64 futex_wait(Thread* self, abi::u64 addr, abi::u64 expected);
abi::i64 futex_wake(Task* task, abi::u64 addr, abi::u64 count);

// FPU state: save/restore areas (fxsave, or xsave where the CPU has it).
// `ring3_only`: no switch of user FPU state by the kernel (for tests; native
// tasks then share one state).
void fpu_init(bool xsave, abi::u64 xcr0, bool ring3_only = false);
void fpu_init_area(abi::u64 pa);
// What the runtimes save in ring 3 with xsave64 (0: fxsave64), and its size.
abi::u64 runtime_xsave_mask();
abi::u64 runtime_xsave_size();

} // namespace kos
