#include "task.h"

#include "../arch/x86_64/cpu.h"
#include "../arch/x86_64/platform.h"
#include "errno.h"
#include "ipc.h"
#include "loader.h"
#include "pipe.h"
#include "security_hook.h"
#include "net.h"
#include "file.h"
#include "kos/base/string.h"
#include "kos/hypercall.h"
#include "panic.h"
#include "pmm.h"

namespace kos {

namespace {

using abi::i64;
using abi::u64;
namespace sys = abi::sys;
constexpr u64 kPageSize = pmm::kPageSize;

Task g_tasks[kMaxTasks];
Thread g_threads[kMaxTasks];
abi::u32 g_task_count = 0;
Thread* g_run_head = nullptr;
Thread* g_run_tail = nullptr;
bool g_xsave = false;
u64 g_xcr0 = 0;
u64 g_runtime_xsave_mask = 0; // what the runtimes save with xsave64 (0: fxsave64)
u64 g_runtime_xsave_size = 512;

bool g_ring0_fpu = true;
bool g_no_fpu_switch = false; // kos.ring3_fpu

// Switches the user FPU/SSE/AVX state: `save_pa` receives the running
// thread's state, `load_pa` provides the next one's (either may be 0).
// Where ring-0 FXRSTOR/XRSTOR do not work (nested kvm_pvm), the kos VMM
// does it with KVM_GET_XSAVE/KVM_SET_XSAVE: one exit per switch there.
void fpu_switch(u64 save_pa, u64 load_pa) {
    if (g_no_fpu_switch || (!save_pa && !load_pa))
        return;
    if (!g_ring0_fpu) {
        platform::fpu_switch_via_vmm(save_pa, load_pa);
        return;
    }
    if (save_pa) {
        void* p = pmm::phys_to_virt(save_pa);
        if (g_xsave)
            asm volatile("xsave64 (%0)" : : "r"(p), "a"(u32(g_xcr0)), "d"(u32(g_xcr0 >> 32)) : "memory");
        else
            asm volatile("fxsave64 (%0)" : : "r"(p) : "memory");
    }
    if (load_pa) {
        void* p = pmm::phys_to_virt(load_pa);
        if (g_xsave)
            asm volatile("xrstor64 (%0)" : : "r"(p), "a"(u32(g_xcr0)), "d"(u32(g_xcr0 >> 32)) : "memory");
        else
            asm volatile("fxrstor64 (%0)" : : "r"(p) : "memory");
    }
}

// Takes `t` out of the run queue if it is there (a task ended while its
// threads were runnable: another process killed it).
void unqueue(Thread* t) {
    Thread* prev = nullptr;
    for (Thread* q = g_run_head; q; prev = q, q = q->next) {
        if (q != t)
            continue;
        if (prev)
            prev->next = q->next;
        else
            g_run_head = q->next;
        if (g_run_tail == q)
            g_run_tail = prev;
        q->next = nullptr;
        return;
    }
}

Thread* pop_runnable() {
    Thread* t = g_run_head;
    if (t) {
        g_run_head = t->next;
        if (!g_run_head)
            g_run_tail = nullptr;
        t->next = nullptr;
    }
    return t;
}

} // namespace

extern "C" int probe_fxrstor(void* area);

void fpu_init(bool xsave, u64 xcr0, bool ring3_only) {
    g_no_fpu_switch = ring3_only;
    // The runtimes save user vector state in ring 3 into the thread block's
    // page (kFpuAreaMax bytes): with more than x87/SSE enabled they use
    // xsave64 (cpu_init enables no more than AVX: AVX-512's state would not
    // fit there).
    if (xsave && (xcr0 & ~3ull)) {
        u64 size = arch::cpuid(0xd, 0).ebx; // for the components XCR0 enables now
        if (size <= sys::kFpuAreaMax && size >= 576) {
            g_runtime_xsave_mask = xcr0;
            g_runtime_xsave_size = size;
        }
    }
    g_xsave = xsave;
    g_xcr0 = xcr0;
    // Probe with a valid initial-state image (a fresh thread's).
    u64 pa = pmm::alloc_frame(true);
    if (pa == pmm::kNoFrame)
        return;
    fpu_init_area(pa);
    g_ring0_fpu = probe_fxrstor(pmm::phys_to_virt(pa)) != 0;
    pmm::free_frame(pa);
    if (!g_ring0_fpu && !platform::is_kos_vmm())
        platform::panic_stop("kos kernel: this CPU cannot restore FPU state in ring 0 and the VMM "
                             "offers no other way\n", 89);
}

u64 runtime_xsave_mask() { return g_runtime_xsave_mask; }
u64 runtime_xsave_size() { return g_runtime_xsave_size; }

void fpu_init_area(u64 pa) {
    // The state a fresh Linux thread has: x87 control word 0x37f, MXCSR
    // 0x1f80 (all exceptions masked), everything else zero (SDM vol. 1
    // §10.5.1). The frame is zeroed by the allocator.
    auto* area = static_cast<abi::u8*>(pmm::phys_to_virt(pa));
    area[0] = 0x7f;
    area[1] = 0x03;
    area[24] = 0x80;
    area[25] = 0x1f;
}

Task* task_at(abi::u32 index) { return index < g_task_count ? &g_tasks[index] : nullptr; }

void task_release(Task* t);

// Whether a CPU still has `t`'s address space loaded (a CPU running one of
// its threads always has: load_thread; a task ended by another CPU runs
// until that CPU enters the kernel).
bool task_in_use(const Task& t) { return t.as.loaded_on() != 0; }

Task* alloc_task() {
    // A slot whose task ended and was reaped (and released) is reused; one
    // reaped without a wait (see task_exit) is released first, unless its
    // address space is the one loaded.
    for (u32 i = 0; i < g_task_count; ++i) {
        Task& t = g_tasks[i];
        if (t.dead && t.reaped && !t.released && !task_in_use(t))
            task_release(&t);
        if (t.released) {
            g_tasks[i] = Task{};
            g_tasks[i].index = i;
            return &g_tasks[i];
        }
    }
    if (g_task_count == kMaxTasks)
        return nullptr;
    Task* t = &g_tasks[g_task_count];
    t->index = g_task_count++;
    return t;
}

// Frees what a reaped task still holds: its address space and threads.
void task_release(Task* t) {
    t->as.release();
    for (u32 i = 0; i < g_task_count; ++i) // its children outlive the slot
        if (g_tasks[i].parent == t)
            g_tasks[i].parent = nullptr;
    for (Thread& th : g_threads) {
        if (th.task != t || th.state == ThreadState::Free)
            continue;
        pmm::free_frame(th.fpu_pa);
        pmm::free_frame(th.msg_pa);
        th = Thread{};
    }
    t->released = true;
}

Thread* alloc_thread(Task* task) {
    for (Thread& t : g_threads) {
        if (t.state != ThreadState::Free)
            continue;
        u64 fpu = pmm::alloc_frame(true);
        u64 msg = pmm::alloc_frame(false);
        if (fpu == pmm::kNoFrame || msg == pmm::kNoFrame)
            return nullptr;
        fpu_init_area(fpu);
        t = Thread{};
        t.fpu_pa = fpu;
        t.msg_pa = msg;
        t.task = task;
        t.state = ThreadState::Dead; // runnable once started
        t.tid = task->next_tid++;
        ++task->live_threads;
        if (!task->thread)
            task->thread = &t;
        return &t;
    }
    return nullptr;
}

bool other_threads_runnable() { return g_run_head != nullptr || other_cpus_busy(); }

namespace {

sys::ThreadBlock* block_of(const Thread* t) {
    return t->thread_block_pa ? static_cast<sys::ThreadBlock*>(pmm::phys_to_virt(t->thread_block_pa))
                              : nullptr;
}

// CPU time: the cycles `t` ran since run_start that count (none while it
// waits, until its runtime says when the wait ended); with `commit`,
// added to its total and run_start moved to `now`.
u64 charge(Thread* t, u64 now, bool commit) {
    u64 add = 0;
    if (t->waiting) {
        const sys::ThreadBlock* tb = block_of(t);
        u64 end = tb ? __atomic_load_n(&tb->wait_end_tsc, __ATOMIC_RELAXED) : 0;
        if (end > t->run_start && end <= now) {
            add = now - end;
            if (commit)
                t->waiting = false;
        }
    } else if (now > t->run_start) {
        add = now - t->run_start;
    }
    if (commit) {
        t->cpu_cycles += add;
        t->run_start = now;
    }
    return add;
}

} // namespace

void make_runnable(Thread* t) {
    if (t->task && t->task->stopped) {
        t->state = ThreadState::Stopped; // runs again when its task continues
        return;
    }
    t->state = ThreadState::Runnable;
    if (t->on_cpu >= 0)
        return; // still running on a CPU (stopped and continued before it noticed)
    t->next = nullptr;
    if (g_run_tail)
        g_run_tail->next = t;
    else
        g_run_head = t;
    g_run_tail = t;
}

bool run_queue_hint() { return __atomic_load_n(&g_run_head, __ATOMIC_RELAXED) != nullptr; }

void wake_cpu_for_queued_threads() {
    if (g_run_head)
        wake_idle_cpu();
}

namespace {

// Loads `task`'s address space on this CPU (nullptr: the kernel's tables).
void load_address_space(PerCpu& cpu, Task* task) {
    if (cpu.loaded == task)
        return;
    if (cpu.loaded)
        cpu.loaded->as.set_loaded_on(cpu.index, false);
    arch::write_cr3(task ? task->as.pml4() : kernel_page_tables());
    if (task)
        task->as.set_loaded_on(cpu.index, true);
    cpu.loaded = task;
}

// Nothing to run here: the CPU waits until a thread is runnable. When no
// other CPU runs anything either, nothing ever will: every thread waits
// for another.
Thread* idle(PerCpu& cpu) {
    load_address_space(cpu, nullptr); // its task may end and free it meanwhile
    for (;;) {
        if (Thread* next = pop_runnable()) {
            wake_cpu_for_queued_threads(); // more than one became runnable
            return next;
        }
        if (!other_cpus_busy())
            platform::panic_stop("kos: every task is blocked (each waits for another): the "
                                 "program deadlocked\n",
                                 71);
        wait_for_interrupt(cpu); // alarms: the busy CPUs' ticks fire them
    }
}

} // namespace

void load_thread(Thread* t, arch::TrapFrame* f) {
    PerCpu& cpu = this_cpu();
    load_address_space(cpu, t->task);
    t->run_start = arch::rdtsc(); // CPU time counts from here (charge at its switch-out)
    *f = t->frame;
    // FS and GS bases change only through the kernel (user-mode
    // wrfsbase/wrgsbase are off), so the loaded values are known and an
    // MSR is written only when it differs: MSR accesses trap to the
    // hypervisor.
    if (t->fs_base != cpu.loaded_fs) {
        arch::wrmsr(arch::kMsrFsBase, t->fs_base);
        cpu.loaded_fs = t->fs_base;
    }
    if (t->gs_base != cpu.loaded_gs) {
        arch::wrmsr(arch::kMsrGsBase, t->gs_base);
        cpu.loaded_gs = t->gs_base;
    }
    t->on_cpu = static_cast<int>(cpu.index);
    cpu.current = t;
    if (t->thread_block_pa) // getcpu
        static_cast<sys::ThreadBlock*>(pmm::phys_to_virt(t->thread_block_pa))->cpu = cpu.index;
}

void schedule(arch::TrapFrame* f, bool save) {
    PerCpu& cpu = this_cpu();
    Thread* cur = cpu.current;
    Thread* next = pop_runnable();
    if (!next && cur && cur->state == ThreadState::Runnable)
        return;
    u64 save_pa = 0;
    if (cur) {
        if (save) {
            cur->frame = *f;
            save_pa = cur->task->kernel_fpu ? cur->fpu_pa : 0;
            cur->fs_base = arch::rdmsr(arch::kMsrFsBase);
            cur->gs_base = arch::rdmsr(arch::kMsrGsBase);
        }
        charge(cur, arch::rdtsc(), true); // CPU time, up to its switch-out
        cur->on_cpu = -1;
        cpu.current = nullptr;
        if (save && cur->state == ThreadState::Runnable)
            make_runnable(cur);
    }
    if (!next) {
        fpu_switch(save_pa, 0);
        save_pa = 0;
        next = idle(cpu);
    }
    fpu_switch(save_pa, next->task->kernel_fpu ? next->fpu_pa : 0);
    load_thread(next, f);
}

void switch_out_stopped_or_ended(Thread* self, arch::TrapFrame* f, bool syscall) {
    if (self->state == ThreadState::Stopped && syscall) {
        // Its task was stopped: it executes this `syscall` again once
        // continued (the frame is the user's, see trap.cc).
        f->rip = f->rcx - 2;
        f->rflags = (f->r11 & 0xcd5) | 0x202;
        f->cs = arch::kUserCs;
        f->ss = arch::kUserDs;
    }
    // Stopped: saved, to run on at SIGCONT; ended: dropped.
    schedule(f, self->state == ThreadState::Stopped);
}

namespace {

// A parent waiting for its children runs its wait again.
void wake_parent_waiters(Task* task) {
    if (!task->parent)
        return;
    for (Thread& w : g_threads)
        if (w.state == ThreadState::BlockedWait && w.task == task->parent)
            make_runnable(&w);
}

// A parent that handles SIGCHLD without SA_NOCLDSTOP hears of its
// children's stops and continuations.
void notify_parent_of_stop(Task* t) {
    Task* parent = t->parent;
    constexpr u64 kSigchld = 1ull << 16;
    if (parent && !parent->dead && !parent->released && (parent->sig_caught & kSigchld) &&
        !parent->no_child_stop_signal)
        signal_task(nullptr, parent, 17, static_cast<u32>(pid_of(t)));
}

// SIGSTOP and friends: every thread of `t` stops where it is (a blocked one
// when its wait ends); its parent's wait(WUNTRACED) reports it.
void stop_task(Task* t, u64 sig) {
    if (t->stopped || t->dead)
        return;
    t->stopped = true;
    t->stop_signal = static_cast<u32>(sig);
    t->stop_unreported = true;
    t->continue_unreported = false;
    for (Thread& th : g_threads)
        if (th.task == t && th.state == ThreadState::Runnable) {
            if (th.on_cpu < 0)
                unqueue(&th);
            else
                kick_cpu(static_cast<u32>(th.on_cpu)); // it stops at its next entry
            th.state = ThreadState::Stopped;
        }
    wake_parent_waiters(t);
    notify_parent_of_stop(t);
}

// SIGCONT: a stopped task's threads run again; wait(WCONTINUED) reports it.
void continue_task(Task* t) {
    if (!t->stopped)
        return;
    t->stopped = false;
    t->stop_unreported = false;
    t->continue_unreported = true;
    for (Thread& th : g_threads)
        if (th.task == t && th.state == ThreadState::Stopped)
            make_runnable(&th);
    wake_parent_waiters(t);
    notify_parent_of_stop(t);
}

} // namespace

void handle_released(KernelObject* object) {
    pipe_end_released(object);
    net_socket_released(object);
    volume_file_released(object);
}

void task_exit(Task* task, u32 wait_status) {
    if (task->dead)
        return;
    task->dead = true;
    task->wait_status = wait_status;
    // A process of the init description other than the app ends: no parent
    // waits for it, so the run says how, unless it went well (a fault was
    // reported where it happened).
    if (task->origin == task && task->index != 0 && wait_status != 0 && !task->end_reported) {
        if (wait_status & 0x7f)
            kprintf("kos: process %s (%s) ended by signal %u\n", task->name, task->label_name, wait_status & 0x7f);
        else
            kprintf("kos: process %s (%s) exited with status %u\n", task->name, task->label_name,
                    (wait_status >> 8) & 0xff);
    }
    for (Thread& t : g_threads)
        if (t.task == task && t.state != ThreadState::Free) {
            if (t.on_cpu >= 0)
                kick_cpu(static_cast<u32>(t.on_cpu)); // it is switched out at its next entry
            else if (t.state == ThreadState::Runnable)
                unqueue(&t);
            t.state = ThreadState::Dead;
        }
    ipc_task_died(task);
    task->handles.clear([](const HandleEntry& e) { handle_released(e.object); });
    // No one will wait for it when its parent is gone or ignores SIGCHLD
    // (Linux reaps such children itself); its orphaned children the same.
    // Released when their slots are needed (alloc_task).
    constexpr u64 kSigchld = 1ull << 16;
    if (task->orphaned || (task->parent && (task->parent->dead || (task->parent->sig_ignored & kSigchld))))
        task->reaped = true;
    for (u32 i = 0; i < g_task_count; ++i) {
        Task& c = g_tasks[i];
        if (c.parent != task || c.released)
            continue;
        if (c.dead)
            c.reaped = true;
        else
            c.orphaned = true;
    }
    // A parent that handles SIGCHLD gets it (its handler runs when its
    // current or next system call returns, or at a tick).
    if (task->parent && !task->parent->dead && !task->parent->released && (task->parent->sig_caught & kSigchld))
        signal_task(nullptr, task->parent, 17, static_cast<u32>(pid_of(task)));
    wake_parent_waiters(task);
    // Address space teardown waits for a later change (frames of a dead
    // task stay allocated until the run ends).
}

namespace {

// Whether two tasks are of one process tree: they fork from one ancestor
// (as far as the parent links reach: an orphan's ends at itself).
bool same_tree(Task* a, Task* b) {
    auto root = [](Task* t) {
        while (t->parent)
            t = t->parent;
        return t;
    };
    return root(a) == root(b);
}

} // namespace

i64 process_kill(Thread* self, u64 pid, u64 sig) {
    constexpr i64 kEsrch = 3;
    if (sig > 64)
        return -err::kInval;
    if (pid == 0 || pid > 0xffffffffu)
        return -kEsrch; // process groups: not yet
    Task* t = task_at(static_cast<u32>(pid - 1));
    if (!t || t->dead || t->released || t->reaped)
        return -kEsrch;
    // A process signals the processes of its own tree (the process of the
    // init description it descends from, and everything forked from it:
    // one program, one label, as processes of one uid on Linux), never
    // another process of the init description: those talk over channels,
    // under the policy.
    if (!same_tree(t, self->task))
        return -err::kPerm;
    if (sig == 0)
        return 0;
    return signal_task(self, t, sig);
}

namespace {

bool thread_live(const Thread& th) { return th.state != ThreadState::Free && th.state != ThreadState::Dead; }

u64 mask_of(const Thread* t) {
    const sys::ThreadBlock* tb = block_of(t);
    return tb ? __atomic_load_n(&tb->sigmask, __ATOMIC_RELAXED) : 0;
}

Thread* find_thread(Task* task, u64 tid) {
    for (Thread& th : g_threads)
        if (th.task == task && th.tid == tid && thread_live(th))
            return &th;
    return nullptr;
}

// Where a process's signal goes: the first thread (the main one first)
// that does not block it, else the first live one, where it stays pending.
Thread* thread_for_signal(Task* t, u64 bit) {
    if (t->thread && thread_live(*t->thread) && !(mask_of(t->thread) & bit))
        return t->thread;
    Thread* any = t->thread && thread_live(*t->thread) ? t->thread : nullptr;
    for (Thread& th : g_threads) {
        if (th.task != t || !thread_live(th))
            continue;
        if (!(mask_of(&th) & bit))
            return &th;
        if (!any)
            any = &th;
    }
    return any;
}

// Posts `sig` to `th`'s block, for its handler, its sigwaitinfo or, once
// unblocked, its default action. `timer`: the timer that sent it (-1: none).
// A thread waiting on a futex, a pipe or a child that lets it through
// wakes with EINTR.
void post_signal(Thread* th, u64 sig, int timer, u32 sender) {
    sys::ThreadBlock* tb = block_of(th);
    if (!tb)
        return;
    u64 bit = 1ull << (sig - 1);
    tb->signal_sender[sig - 1] = sender;
    if (timer >= 0) {
        __atomic_or_fetch(&tb->timer_fired, 1ull << timer, __ATOMIC_RELAXED);
        th->task->timers[timer].posted_tid = th->tid;
    }
    __atomic_or_fetch(&tb->pending_signals, bit, __ATOMIC_RELAXED);
    if (mask_of(th) & bit)
        return;
    if (th->on_cpu >= 0)
        kick_cpu(static_cast<u32>(th->on_cpu)); // its handler runs at once, not at a tick
    bool restarts = th->state == ThreadState::BlockedPipe || th->state == ThreadState::BlockedWait;
    if (restarts || th->state == ThreadState::BlockedFutex) {
        // A wait on a pipe or for a child would execute its call again when
        // woken (kRestart backed it up over the `syscall`): the signal ends
        // it instead (the runtime restarts the call after a handler with
        // SA_RESTART, as Linux does).
        if (restarts)
            th->frame.rip += 2;
        th->frame.rax = static_cast<u64>(-4); // EINTR
        th->pipe = nullptr;
        make_runnable(th);
    }
}

// Sends `sig` to `t`, or to its thread `target` (no permission check): its
// default action, or posted for its handler (or a sigwaitinfo) to the
// target or to a thread that does not block it. kBlocked if it ended
// `self`'s task.
i64 send_signal(Thread* self, Task* t, Thread* target, u64 sig, int timer, u32 sender = 0) {
    u64 bit = 1ull << (sig - 1);
    bool ignored_by_default = sig == 17 || sig == 18 || sig == 23 || sig == 28; // CHLD CONT URG WINCH
    bool stops = sig == 19 || sig == 20 || sig == 21 || sig == 22;             // STOP TSTP TTIN TTOU
    if (sig == 18)
        continue_task(t); // whatever its disposition, SIGCONT continues
    if (sig == 19 || (stops && !(t->sig_caught & bit) && !(t->sig_ignored & bit))) {
        stop_task(t, sig); // SIGSTOP cannot be caught or ignored
        return 0;
    }
    if (sig != 9 && (t->sig_ignored & bit))
        return 0;
    if (sig != 9) {
        // Blocked (in the target, or in every thread): pending, whatever
        // its disposition; handled: posted.
        Thread* th = target ? target : thread_for_signal(t, bit);
        if (th && ((mask_of(th) & bit) || (t->sig_caught & bit))) {
            post_signal(th, sig, timer, sender);
            return 0;
        }
        if (ignored_by_default || stops)
            return 0; // default-ignored signals vanish
    }
    if (sig == 9 || (!(t->sig_caught & bit) && !ignored_by_default && !stops)) {
        if (t->index == 0) // the bundle's app: its end is the run's
            platform::exit(abi::hc::ExitKind::Signaled, sig);
        task_exit(t, static_cast<u32>(sig));
        return self && t == self->task ? kBlocked : 0;
    }
    return 0;
}

} // namespace

i64 signal_task(Thread* self, Task* t, u64 sig, u32 sender) {
    if (!sender && self)
        sender = static_cast<u32>(pid_of(self->task));
    return send_signal(self, t, nullptr, sig, -1, sender);
}

i64 process_kill_for_client(Thread* self, u64 pid, u64 sig) {
    constexpr i64 kEsrch = 3;
    Thread* client = self->reply_to;
    if (self->task->server != PersonalityServer::Proc || !client || client->task->dead)
        return -err::kPerm;
    if (sig > 64)
        return -err::kInval;
    if (pid == 0 || pid > 0xffffffffu)
        return -kEsrch;
    Task* t = task_at(static_cast<u32>(pid - 1));
    if (!t || t->dead || t->released || t->reaped || !t->linux_personality)
        return -kEsrch; // native programs and the servers take no signals
    if (!check_signal(*client->task, *t).allow)
        return -err::kAccess;
    if (sig == 0)
        return 0;
    return signal_task(nullptr, t, sig, static_cast<u32>(pid_of(client->task)));
}

i64 thread_kill(Thread* self, u64 tid, u64 sig) {
    if (sig > 64)
        return -err::kInval;
    Thread* th = find_thread(self->task, tid);
    if (!th)
        return -3; // ESRCH
    if (sig == 0)
        return 0;
    return send_signal(self, self->task, th, sig, -1, static_cast<u32>(pid_of(self->task)));
}

namespace {

u64 ns_of_cycles(u64 c) {
    u64 khz = g_boot_image.header ? g_boot_image.header->tsc_khz : 0;
    if (khz == 0)
        return c;
    return c / khz * 1'000'000 + (c % khz) * 1'000'000 / khz;
}

// CPU cycles of a thread, and of a task's threads (the running one's
// current slice included).
u64 thread_cycles(Thread* t, u64 now) { return t->cpu_cycles + (t->on_cpu >= 0 ? charge(t, now, false) : 0); }

u64 task_cycles(Task* task, u64 now) {
    u64 sum = 0;
    for (Thread& th : g_threads)
        if (th.task == task && th.state != ThreadState::Free)
            sum += thread_cycles(&th, now);
    return sum;
}

// The current value of a timer's clock (0 when the thread it measures is gone).
u64 timer_clock_now(Task* task, u32 clock, u32 clock_tid, u64 tsc) {
    if (clock == sys::kTimerProcessCpu)
        return ns_of_cycles(task_cycles(task, tsc));
    if (clock == sys::kTimerThreadCpu) {
        Thread* th = find_thread(task, clock_tid);
        return th ? ns_of_cycles(thread_cycles(th, tsc)) : 0;
    }
    return ns_of_cycles(tsc);
}

} // namespace

u64 monotonic_ns() { return ns_of_cycles(arch::rdtsc()); }

void thread_wait_yield(Thread* self) {
    charge(self, arch::rdtsc(), true);
    self->waiting = true;
}

i64 cpu_time(Thread* self, u64 which, u64 id) {
    u64 now = arch::rdtsc();
    Task* task = self->task;
    switch (which) {
    case sys::kCpuProcess: {
        Task* t = id && id <= 0xffffffffu ? task_at(static_cast<u32>(id - 1)) : task;
        // Only of the caller's tree, as for process_kill.
        if (!t || t->released || id > 0xffffffffu || !same_tree(t, task))
            return -3; // ESRCH
        return static_cast<i64>(ns_of_cycles(task_cycles(t, now)));
    }
    case sys::kCpuThread: {
        Thread* th = id ? find_thread(task, id) : self;
        if (!th)
            return -3;
        return static_cast<i64>(ns_of_cycles(thread_cycles(th, now)));
    }
    case sys::kCpuChildren:
        return static_cast<i64>(ns_of_cycles(task->children_cycles));
    default:
        return -err::kInval;
    }
}

i64 process_timer(Thread* self, u64 which, u64 delay_ns, u64 interval_ns, u64 signal_and_tid) {
    u64 index = which & 0xff, clock = (which >> 8) & 0xff, clock_tid = which >> 32;
    u64 signal = signal_and_tid & 0xffffffffu, tid = signal_and_tid >> 32;
    if (index >= Task::kTimers || signal > 64 || clock > sys::kTimerThreadCpu)
        return -err::kInval;
    Task* task = self->task;
    if (tid && !find_thread(task, tid))
        return -err::kInval; // SIGEV_THREAD_ID: a thread of the caller's process
    Task::Timer& tm = task->timers[index];
    u64 tsc = arch::rdtsc();
    u64 now = timer_clock_now(task, tm.clock, tm.clock_tid, tsc);
    u64 left = tm.at > now ? tm.at - now : (tm.at ? 1 : 0);
    if (delay_ns == ~0ull)
        return static_cast<i64>(left); // a query (getitimer, timer_gettime)
    tm.clock = static_cast<u32>(clock);
    if (clock == sys::kTimerThreadCpu && clock_tid && !find_thread(task, clock_tid))
        return -err::kInval;
    tm.clock_tid = clock == sys::kTimerThreadCpu ? static_cast<u32>(clock_tid ? clock_tid : self->tid) : 0;
    now = timer_clock_now(task, tm.clock, tm.clock_tid, tsc);
    tm.at = delay_ns ? now + delay_ns : 0;
    tm.interval = delay_ns ? interval_ns : 0;
    tm.signal = static_cast<u32>(signal);
    tm.tid = static_cast<u32>(tid);
    tm.posted_tid = 0;
    return static_cast<i64>(left);
}

i64 process_alarm(Thread* self, u64 delay_ns, u64 interval_ns) {
    return process_timer(self, 0, delay_ns, interval_ns, 14); // SIGALRM
}

namespace {

// A due timer's signal, to its thread or its process; if the signal it
// posted last is still pending there, this expiration is an overrun.
void fire_timer(Task& t, u32 index) {
    Task::Timer& tm = t.timers[index];
    if (!tm.signal)
        return;
    u64 bit = 1ull << (tm.signal - 1);
    if (tm.posted_tid) {
        Thread* last = find_thread(&t, tm.posted_tid);
        sys::ThreadBlock* tb = last ? block_of(last) : nullptr;
        if (tb && (__atomic_load_n(&tb->timer_fired, __ATOMIC_RELAXED) & (1ull << index)) &&
            (__atomic_load_n(&tb->pending_signals, __ATOMIC_RELAXED) & bit)) {
            if (tb->timer_overrun[index] < 0x7fffffffu)
                __atomic_add_fetch(&tb->timer_overrun[index], 1u, __ATOMIC_RELAXED);
            return;
        }
    }
    Thread* target = nullptr;
    if (tm.tid && !(target = find_thread(&t, tm.tid)))
        return; // its thread is gone
    send_signal(nullptr, &t, target, tm.signal, static_cast<int>(index));
}

} // namespace

// At each timer tick: the signal of every timer that is due (so timers
// have the tick's resolution, 10 ms; CPU-time timers count what the
// scheduler gave the process or thread up to the tick).
void fire_alarms() {
    u64 tsc = arch::rdtsc();
    u64 now = 0;
    for (u32 i = 0; i < g_task_count; ++i) {
        Task& t = g_tasks[i];
        if (t.dead || t.released)
            continue;
        u64 process_cpu = ~0ull; // computed once, when a timer needs it
        for (u32 index = 0; index < Task::kTimers; ++index) {
            Task::Timer& tm = t.timers[index];
            if (!tm.at)
                continue;
            u64 clock_now;
            if (tm.clock == sys::kTimerMonotonic) {
                if (!now)
                    now = ns_of_cycles(tsc);
                clock_now = now;
            } else if (tm.clock == sys::kTimerProcessCpu) {
                if (process_cpu == ~0ull)
                    process_cpu = timer_clock_now(&t, tm.clock, 0, tsc);
                clock_now = process_cpu;
            } else {
                clock_now = timer_clock_now(&t, tm.clock, tm.clock_tid, tsc);
            }
            if (clock_now < tm.at)
                continue;
            tm.at = tm.interval ? clock_now + tm.interval : 0;
            fire_timer(t, index);
            if (t.dead)
                break;
        }
    }
}

namespace {

// Reads or writes a u32 of a task's memory (4-byte aligned, so it never
// straddles a page).
bool user_u32(Task* task, u64 va, u32* value, bool write) {
    if (va % 4 != 0)
        return false;
    i64 pa = task->as.translate(va, write);
    if (pa < 0)
        return false;
    auto* p = static_cast<volatile u32*>(pmm::phys_to_virt(static_cast<u64>(pa)));
    if (write)
        *p = *value;
    else
        *value = *p;
    return true;
}

constexpr i64 kEagain = 11, kEfault = 14, kEinval = 22, kEnomem = 12;

} // namespace

void frame_from_regs(arch::TrapFrame& f, const sys::LinuxSyscallFrame& r);

// A new Linux thread enters its runtime first (kAsyncResume), which loads
// the vector state from its block and resumes `regs`.
void start_in_runtime(Thread& t, sys::ThreadBlock* tb, const sys::LinuxSyscallFrame& regs) {
    frame_from_regs(t.frame, regs);
    tb->frame = regs;
    tb->frame.rflags = t.frame.rflags;
    tb->async_entry = sys::kAsyncResume;
    t.frame.rip = t.task->runtime_linux_entry;
    t.frame.rsp = t.runtime_stack_top;
    t.frame.rflags = 0x202;
}

// A new thread's user state from registers a caller passed (thread_create,
// process_fork): everything but the privilege-related bits of RFLAGS.
void frame_from_regs(arch::TrapFrame& f, const sys::LinuxSyscallFrame& r) {
    f = arch::TrapFrame{};
    f.rax = r.rax;
    f.rbx = r.rbx;
    f.rcx = r.rcx;
    f.rdx = r.rdx;
    f.rsi = r.rsi;
    f.rdi = r.rdi;
    f.rbp = r.rbp;
    f.r8 = r.r8;
    f.r9 = r.r9;
    f.r10 = r.r10;
    f.r11 = r.r11;
    f.r12 = r.r12;
    f.r13 = r.r13;
    f.r14 = r.r14;
    f.r15 = r.r15;
    f.rip = r.rip;
    f.rsp = r.rsp;
    f.rflags = (r.rflags & 0xcd5) | 0x202;
    f.cs = arch::kUserCs;
    f.ss = arch::kUserDs;
}

i64 thread_create(Thread* self, u64 regs_va, u64 fs_base, u64 clear_tid) {
    Task* task = self->task;
    sys::LinuxSyscallFrame regs;
    if (!task->as.copy_in(regs_va, &regs, sizeof regs))
        return -kEfault;
    if (regs.rip >= sys::kUserTop || regs.rsp >= sys::kUserTop || fs_base >= sys::kUserTop ||
        clear_tid >= sys::kUserTop)
        return -kEinval;
    Thread* t = alloc_thread(task);
    if (!t)
        return -kEnomem;
    if (task->linux_personality) {
        // The new thread's runtime stack and block, in its slot.
        u64 slot = sys::kRuntimeThreadArea + u64(t->tid) * sys::kRuntimeThreadSlot;
        if (task->as.map_anon(slot, sys::kRuntimeThreadSlot - kPageSize, vm::kRead | vm::kWrite,
                              sys::kMapFixed, vm::kPinned) < 0 ||
            task->as.map_anon(slot + sys::kRuntimeThreadSlot - kPageSize, kPageSize,
                              vm::kRead | vm::kWrite, sys::kMapFixed | sys::kMapPopulate, vm::kPinned) < 0) {
            t->state = ThreadState::Free;
            --task->live_threads;
            return -kEnomem;
        }
        t->runtime_stack_top = slot + sys::kRuntimeThreadSlot - kPageSize;
        t->thread_block_va = t->runtime_stack_top;
        t->thread_block_pa = static_cast<u64>(task->as.translate(t->thread_block_va, true));
        auto* tb = static_cast<sys::ThreadBlock*>(pmm::phys_to_virt(t->thread_block_pa));
        tb->self = t->thread_block_va;
        tb->runtime_stack = t->runtime_stack_top;
        tb->tid = t->tid;
        tb->scratch[0] = clear_tid; // the runtime passes it back at exit
        t->gs_base = t->thread_block_va;
        // It starts in the runtime with its creator's vector state (saved
        // in the creator's block when the runtime was entered).
        const auto* mine = static_cast<const abi::u8*>(pmm::phys_to_virt(self->thread_block_pa));
        memcpy(reinterpret_cast<abi::u8*>(tb) + sys::kFpuAreaOffset, mine + sys::kFpuAreaOffset,
               g_runtime_xsave_size);
        // And its signal mask (its pending signals start empty).
        tb->sigmask = reinterpret_cast<const sys::ThreadBlock*>(mine)->sigmask;
        start_in_runtime(*t, tb, regs);
    } else {
        frame_from_regs(t->frame, regs);
    }
    t->fs_base = fs_base;
    make_runnable(t);
    return t->tid;
}

bool thread_exit(Thread* self, u64 clear_tid) {
    Task* task = self->task;
    if (clear_tid && clear_tid < sys::kUserTop) {
        u32 zero = 0;
        if (user_u32(task, clear_tid, &zero, true))
            futex_wake(task, clear_tid, ~0ull);
    }
    self->state = ThreadState::Dead;
    return --task->live_threads == 0;
}

i64 futex_wait(Thread* self, u64 addr, u64 expected) {
    u32 value = 0;
    if (addr >= sys::kUserTop || !user_u32(self->task, addr, &value, false))
        return -kEfault;
    if (value != static_cast<u32>(expected))
        return -kEagain;
    self->state = ThreadState::BlockedFutex;
    self->futex_addr = addr;
    return kBlocked;
}

i64 futex_wake(Task* task, u64 addr, u64 count) {
    i64 woken = 0;
    for (Thread& t : g_threads) {
        if (static_cast<u64>(woken) >= count)
            break;
        if (t.task == task && t.state == ThreadState::BlockedFutex && t.futex_addr == addr) {
            t.frame.rax = 0;
            make_runnable(&t);
            ++woken;
        }
    }
    return woken;
}

void wake_pipe_waiters(void* pipe) {
    for (Thread& t : g_threads)
        if (t.state == ThreadState::BlockedPipe && t.pipe == pipe)
            make_runnable(&t);
}

i64 process_fork(Thread* self, u64 regs_va) {
    Task* parent = self->task;
    if (parent->live_threads != 1)
        return -kEinval; // forking a multi-threaded task: not yet
    // The child's first thread starts from these registers (rax = 0 there).
    sys::LinuxSyscallFrame regs;
    if (!parent->as.copy_in(regs_va, &regs, sizeof regs))
        return -kEfault;
    Task* child = alloc_task();
    if (!child)
        return -11; // EAGAIN: no task slot left
    if (!child->as.init(arch::read_cr3() & ~0xfffull) || !child->as.clone_from(parent->as)) {
        task_exit(child, 0);
        child->reaped = true;
        task_release(child);
        return -kEnomem;
    }
    child->handles.copy_from(parent->handles);
    child->parent = parent;
    child->origin = parent->origin;
    child->kernel_fpu = parent->kernel_fpu;
    memcpy(child->server_channel, parent->server_channel, sizeof child->server_channel);
    child->label = parent->label;
    child->name = parent->name;
    child->label_name = parent->label_name;
    child->policy_label = parent->policy_label;
    child->rootfs_access = parent->rootfs_access;
    child->sig_caught = parent->sig_caught;
    child->sig_ignored = parent->sig_ignored;
    child->linux_personality = parent->linux_personality;
    child->runtime_text_start = parent->runtime_text_start;
    child->runtime_text_end = parent->runtime_text_end;
    child->runtime_linux_entry = parent->runtime_linux_entry;
    child->runtime_fpu_saved = parent->runtime_fpu_saved;
    child->runtime_resume_start = parent->runtime_resume_start;
    child->runtime_resume_end = parent->runtime_resume_end;
    Thread* t = alloc_thread(child);
    if (!t) {
        task_exit(child, 0);
        child->reaped = true;
        task_release(child);
        return -kEnomem;
    }
    t->runtime_stack_top = self->runtime_stack_top;
    t->thread_block_va = self->thread_block_va;
    if (t->thread_block_va)
        t->thread_block_pa = static_cast<u64>(child->as.translate(t->thread_block_va, true));
    t->gs_base = self->gs_base;
    t->fs_base = self->fs_base;
    if (t->thread_block_pa) {
        // Its block is a copy of the parent's, vector state included.
        auto* tb = static_cast<sys::ThreadBlock*>(pmm::phys_to_virt(t->thread_block_pa));
        start_in_runtime(*t, tb, regs);
    } else {
        frame_from_regs(t->frame, regs);
    }
    make_runnable(t);
    return static_cast<i64>(pid_of(child));
}

i64 process_wait(Thread* self, i64 pid, u64 status_va, bool nohang, bool reap, bool stopped, bool continued) {
    Task* me = self->task;
    bool any_child = false;
    for (u32 i = 0; i < g_task_count; ++i) {
        Task& c = g_tasks[i];
        if (c.parent != me || c.reaped || (pid > 0 && static_cast<u64>(pid) != pid_of(&c)))
            continue;
        any_child = true;
        // A stop or a continuation not yet reported, when asked for.
        bool report_stop = !c.dead && stopped && c.stopped && c.stop_unreported;
        bool report_cont = !c.dead && continued && c.continue_unreported;
        if (report_stop || report_cont) {
            u32 st = report_stop ? 0x7f | (c.stop_signal << 8) : 0xffff;
            if (status_va && !user_u32(me, status_va, &st, true))
                return -kEfault;
            if (reap) {
                c.stop_unreported = c.stop_unreported && !report_stop;
                c.continue_unreported = c.continue_unreported && !report_cont;
            }
            return static_cast<i64>(pid_of(&c));
        }
        if (!c.dead)
            continue;
        if (status_va) {
            u32 st = c.wait_status;
            if (!user_u32(me, status_va, &st, true))
                return -kEfault;
        }
        if (!reap)
            return static_cast<i64>(pid_of(&c));
        c.reaped = true;
        me->children_cycles += task_cycles(&c, arch::rdtsc()) + c.children_cycles;
        i64 reaped_pid = static_cast<i64>(pid_of(&c));
        // A child killed while running on another CPU runs until that CPU
        // enters the kernel: then its slot is released (alloc_task).
        if (!task_in_use(c))
            task_release(&c);
        return reaped_pid;
    }
    if (!any_child)
        return -10; // ECHILD
    if (nohang)
        return 0;
    self->state = ThreadState::BlockedWait;
    return kRestart;
}

} // namespace kos
