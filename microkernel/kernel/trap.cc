// Trap dispatch: system calls (native and Linux), user page faults, user
// exceptions (which end the program with the matching signal) and kernel
// exceptions (which stop the VM with the registers).
#include "../arch/x86_64/apic.h"
#include "../arch/x86_64/cpu.h"
#include "../arch/x86_64/platform.h"
#include "errno.h"
#include "kos/hypercall.h"
#include "kos/rootfs_image.h"
#include "kos/syscall.h"
#include "panic.h"
#include "loader.h"
#include "pmm.h"
#include "ipc.h"
#include "pipe.h"
#include "net.h"
#include "file.h"
#include "rootfs_access.h"
#include "task.h"
#include "security_hook.h"

namespace kos {
extern bool g_stats;
namespace {

using abi::i64;
using abi::u64;
using arch::TrapFrame;
namespace sys = abi::sys;
namespace hc = abi::hc;

constexpr u64 kPage = pmm::kPageSize;
constexpr i64 kYield = kBlocked + 1;

// Kernel counters, printed at exit with `kos run --stats`.
struct Counters {
    u64 native_calls, linux_syscalls, page_faults, timer_ticks, tsc_at_boot, tsc_at_user;
    u64 forks, fork_cycles, fault_cycles; // where ring-0 time goes on emulated ring 0
} g_counters;
constexpr u64 kUserFlagsMask = 0xcd5; // CF PF AF ZF SF TF DF OF: what ring 3 may keep

const char* exception_name(u64 v) {
    static const char* names[] = {
        "divide error", "debug", "NMI", "breakpoint", "overflow", "bound range",
        "invalid opcode", "device not available", "double fault", "coprocessor overrun",
        "invalid TSS", "segment not present", "stack fault", "general protection fault",
        "page fault", "reserved", "x87 floating-point error", "alignment check",
        "machine check", "SIMD floating-point error", "virtualization", "control protection"};
    return v < sizeof names / sizeof names[0] ? names[v] : "exception";
}

int signal_for(u64 vector) {
    switch (vector) {
    case 0: case 16: case 19: return 8;  // SIGFPE
    case 1: case 3: return 5;            // SIGTRAP
    case 6: return 4;                    // SIGILL
    case 17: return 7;                   // SIGBUS
    default: return 11;                  // SIGSEGV
    }
}

const char* signal_name(int sig) {
    switch (sig) {
    case 4: return "SIGILL";
    case 5: return "SIGTRAP";
    case 7: return "SIGBUS";
    case 8: return "SIGFPE";
    default: return "SIGSEGV";
    }
}

[[noreturn]] void kernel_fault(TrapFrame* f) {
    panic("kos kernel: %s (vector %lu, error %#lx) in ring 0\n"
          "  rip=%016lx rsp=%016lx rflags=%08lx cr2=%016lx cr3=%016lx\n"
          "  rax=%016lx rbx=%016lx rcx=%016lx rdx=%016lx\n"
          "  rsi=%016lx rdi=%016lx rbp=%016lx r8=%016lx\n",
          exception_name(f->vector), f->vector, f->error, f->rip, f->rsp, f->rflags,
          arch::read_cr2(), arch::read_cr3(), f->rax, f->rbx, f->rcx, f->rdx, f->rsi, f->rdi,
          f->rbp, f->r8);
}

// The user registers of a trap frame, as the runtime's thread block holds
// them (the syscall path then puts the return address and flags that
// `syscall` moved into rcx and r11 in their places).
void save_user_frame(sys::LinuxSyscallFrame& s, const TrapFrame* f) {
    s.rax = f->rax; s.rbx = f->rbx; s.rcx = f->rcx; s.rdx = f->rdx;
    s.rsi = f->rsi; s.rdi = f->rdi; s.rbp = f->rbp; s.rsp = f->rsp;
    s.r8 = f->r8; s.r9 = f->r9; s.r10 = f->r10; s.r11 = f->r11;
    s.r12 = f->r12; s.r13 = f->r13; s.r14 = f->r14; s.r15 = f->r15;
    s.rip = f->rip;
    s.rflags = f->rflags;
}

// Enters the personality runtime of `t` (interrupted in application code)
// without a system call: `reason` says why (abi/kos/syscall.h
// ThreadBlock::async_entry). The runtime resumes the application itself.
void enter_runtime_async(Thread& t, TrapFrame* f, u64 reason, u64 fault_addr) {
    auto* tb = static_cast<sys::ThreadBlock*>(pmm::phys_to_virt(t.thread_block_pa));
    save_user_frame(tb->frame, f);
    tb->async_entry = reason;
    tb->fault_addr = fault_addr;
    f->rip = t.task->runtime_linux_entry;
    f->rsp = t.runtime_stack_top;
    f->rflags = 0x202;
}

// Whether `t` runs application code of a Linux process (not its runtime).
bool in_application(const Thread& t, const TrapFrame* f) {
    const Task& p = *t.task;
    return p.linux_personality && t.thread_block_pa && (f->cs & 3) == 3 &&
           (f->rip < p.runtime_text_start || f->rip >= p.runtime_text_end);
}

// Whether `t` is at the runtime's entry before it saved the program's
// vector registers, or at its exit after it loaded them back.
bool in_fpu_window(const Thread& t, const TrapFrame* f) {
    const Task& p = *t.task;
    if (!p.linux_personality || (f->cs & 3) != 3)
        return false;
    return (f->rip >= p.runtime_linux_entry && f->rip < p.runtime_fpu_saved) ||
           (f->rip >= p.runtime_resume_start && f->rip < p.runtime_resume_end);
}

// A tick at one of those edges. At the exit (the program's state loaded
// back) the return starts over from the runtime stack, since it reloads
// everything from the block: the thread can be switched out now (true). At
// the entry (not saved yet; ring-0 FXSAVE/FXRSTOR do not work on every
// hypervisor) the thread goes on, and its runtime yields right after saving
// (false: no switch here). Leaving it there until a later tick would starve
// the others: a thread making calls back to back is at its entry at almost
// every tick, which waits while the kernel handles the call.
bool leave_fpu_window(Thread& t, TrapFrame* f) {
    const Task& p = *t.task;
    if (f->rip >= p.runtime_resume_start && f->rip < p.runtime_resume_end) {
        f->rip = p.runtime_resume_start;
        f->rsp = t.runtime_stack_top;
        return true;
    }
    auto* tb = static_cast<sys::ThreadBlock*>(pmm::phys_to_virt(t.thread_block_pa));
    tb->yield_requested = 1;
    return false;
}

// Before a thread entered from ring 3 (not by a `syscall`) is switched
// out: a Linux thread in its program's code, or at the runtime's edges,
// has its vector registers in the CPU only (the kernel switches no FPU
// state for Linux threads). It goes through its runtime first, which saves
// them and then yields (its pending signals run there too): true when it
// was sent there and must not be switched out now.
bool preempt_through_runtime(Thread& t, TrapFrame* f) {
    if (in_application(t, f)) {
        auto* tb = static_cast<sys::ThreadBlock*>(pmm::phys_to_virt(t.thread_block_pa));
        if (!tb->async_entry) {
            enter_runtime_async(t, f, sys::kAsyncPreempt, 0);
            return true;
        }
    }
    return in_fpu_window(t, f) && !leave_fpu_window(t, f);
}

// Ends the current task for a fault. The first task is the bundle's app:
// its end ends the run; another task's end fails its peers (EPIPE).
void kill_current(TrapFrame* f, u64 fault_addr) {
    int sig = signal_for(f->vector);
    Thread* self = current_thread();
    Task* task = self->task;
    // A fault in application code of a process with a handler for its
    // signal: the handler runs (the runtime ends the process instead if the
    // signal is blocked, as Linux does).
    if (in_application(*self, f) && (task->sig_caught & (1ull << (sig - 1))) &&
        !(f->vector == arch::kVecPageFault && task->as.last_fault_out_of_memory())) {
        enter_runtime_async(*self, f, sys::kAsyncFault | static_cast<u64>(sig), fault_addr);
        return;
    }
    const char* who = task->index == 0 ? "program" : task->name;
    if (f->vector == arch::kVecPageFault && task->as.last_fault_out_of_memory()) {
        // What Linux's OOM killer does: SIGKILL, with the limit named.
        kprintf("kos: %s killed by SIGKILL: out of memory (the VM's memory limit is reached; "
                "raise it with --memory or [limits] memory)\n", who);
        if (task->index == 0)
            platform::exit(hc::ExitKind::OutOfMemory, 9);
        task->end_reported = true;
        task_exit(task);
        schedule(f, false);
        return;
    }
    if (f->vector == arch::kVecPageFault)
        kprintf("kos: %s killed by %s: %s %s address %#lx (rip %#lx)\n", who, signal_name(sig),
                (f->error & 2) ? "write to" : ((f->error & 16) ? "execute at" : "read of"),
                (f->error & 1) ? "protected" : "unmapped", fault_addr, f->rip);
    else
        kprintf("kos: %s killed by %s: %s (rip %#lx)\n", who, signal_name(sig),
                exception_name(f->vector), f->rip);
    if (task->index == 0)
        platform::exit(hc::ExitKind::Signaled, static_cast<u64>(sig));
    task->end_reported = true;
    task_exit(task, static_cast<abi::u32>(sig));
    schedule(f, false);
}

// Runs `op(pa, len)` over the physically contiguous pieces of a user buffer.
template <class Op> i64 user_io(Task& p, u64 va, u64 len, bool write, Op op) {
    if (len == 0)
        return 0;
    if (va >= sys::kUserTop || len > sys::kUserTop - va)
        return -err::kFault;
    if (len > hc::kMaxConsoleChunk)
        len = hc::kMaxConsoleChunk;
    u64 done = 0;
    while (done < len) {
        i64 pa = p.as.translate(va + done, write);
        if (pa < 0)
            return done ? static_cast<i64>(done) : pa;
        u64 chunk = kPage - ((va + done) & (kPage - 1));
        if (chunk > len - done)
            chunk = len - done;
        // Extend while the next page is physically adjacent.
        while (done + chunk < len) {
            i64 next = p.as.translate(va + done + chunk, write);
            if (next < 0 || static_cast<u64>(next) != static_cast<u64>(pa) + chunk)
                break;
            u64 more = len - done - chunk;
            chunk += more < kPage ? more : kPage;
        }
        i64 r = op(static_cast<u64>(pa), chunk);
        if (r < 0)
            return done ? static_cast<i64>(done) : r;
        done += static_cast<u64>(r);
        if (static_cast<u64>(r) < chunk)
            break;
    }
    return static_cast<i64>(done);
}

i64 native_call(Thread* self, TrapFrame* f) {
    Task& p = *self->task;
    u64 a0 = f->rdi, a1 = f->rsi, a2 = f->rdx, a3 = f->r10, a4 = f->r8;
    switch (static_cast<sys::Sys>(f->rax)) {
    case sys::Sys::exit:
        if (p.index != 0) {
            task_exit(&p, a0 == 1 ? static_cast<abi::u32>(a1 & 0x7f) : static_cast<abi::u32>((a1 & 0xff) << 8));
            return kBlocked;
        }
        if (g_stats)
            kprintf("kos kernel: %lu native calls, %lu Linux syscalls, %lu page faults (%lu kcycles), %lu "
                    "forks (%lu kcycles), %lu timer ticks, %lu pages mapped; %lu kcycles to boot, %lu "
                    "kcycles running\n",
                    g_counters.native_calls, g_counters.linux_syscalls, g_counters.page_faults,
                    g_counters.fault_cycles >> 10, g_counters.forks, g_counters.fork_cycles >> 10,
                    g_counters.timer_ticks,
                    p.as.mapped_pages(), (g_counters.tsc_at_user - g_counters.tsc_at_boot) >> 10,
                    (arch::rdtsc() - g_counters.tsc_at_user) >> 10);
        if (g_stats) {
            smp_print_stats();
            ipc_print_stats();
        }
        platform::exit(a0 == 1 ? hc::ExitKind::Signaled : hc::ExitKind::Exited, a1);
    case sys::Sys::console_write:
        if (a0 != 1 && a0 != 2)
            return -err::kInval;
        return user_io(p, a1, a2, false, [&](u64 pa, u64 n) {
            return platform::console_write_phys(static_cast<int>(a0), pa, n);
        });
    case sys::Sys::console_read:
        return user_io(p, a0, a1, true, [&](u64 pa, u64 n) {
            return platform::console_read_phys(pa, n);
        });
    case sys::Sys::vm_map:
        return p.as.map_anon(a0, a1, static_cast<abi::u32>(a2 & 7), a3, 0);
    case sys::Sys::vm_unmap:
        return p.as.unmap(a0, a1);
    case sys::Sys::vm_protect:
        return p.as.protect(a0, a1, static_cast<abi::u32>(a2 & 7));
    case sys::Sys::set_fs_base:
        if (a0 >= sys::kUserTop)
            return -err::kPerm;
        arch::wrmsr(arch::kMsrFsBase, a0);
        self->fs_base = a0;
        this_cpu().loaded_fs = a0;
        return 0;
    case sys::Sys::vm_map_image: {
        // a2: offset inside the rootfs image; only whole pages of it.
        const auto* bh = g_boot_image.header;
        if (a2 % kPage != 0 || a2 > bh->rootfs_size || a1 > bh->rootfs_size - a2 || (a3 & vm::kWrite))
            return -err::kInval;
        u64 len = (a1 + kPage - 1) & ~(kPage - 1);
        if (!rootfs_range_readable(p.rootfs_access, a2, len))
            return -err::kAccess; // a file the task's label may not read
        return p.as.map_image(a0, len, g_boot_image.pa + bh->rootfs_offset + a2,
                              static_cast<abi::u32>(a3 & 7), 0);
    }
    case sys::Sys::ipc_call:
        self->grant_size = 0;
        self->grant_write = false;
        return ipc_call(self, a0, a1, a2, a3, a4);
    case sys::Sys::ipc_call_grant:
        return ipc_call_grant(self, a0, a1, a2, a3, a4, f->r9);
    case sys::Sys::ipc_grant_read:
        return ipc_grant_copy(self, a0, a1, a2, false);
    case sys::Sys::ipc_grant_write:
        return ipc_grant_copy(self, a0, a1, a2, true);
    case sys::Sys::ipc_receive:
        return ipc_receive(self, a0, a1, a2, a3);
    case sys::Sys::ipc_reply:
        return ipc_reply(self, a0, a1);
    case sys::Sys::ipc_reply_receive:
        // The client becomes runnable, then this thread waits: the
        // scheduler runs the client here, without an IPI to another CPU.
        (void)ipc_reply(self, a0, a1);
        return ipc_receive(self, a2, a3, a4, f->r9);
    case sys::Sys::handle_close: {
        if (a0 > 0xffffffffu)
            return -9;
        auto r = p.handles.remove(static_cast<Handle>(a0));
        if (r.is_error())
            return -9;
        handle_released((*r).object);
        return 0;
    }
    case sys::Sys::handle_duplicate: {
        if (a0 > 0xffffffffu)
            return -9;
        auto r = p.handles.duplicate(static_cast<Handle>(a0), static_cast<abi::u32>(a1));
        return r.as_syscall_result();
    }
    case sys::Sys::thread_yield:
        if (a0 == 1 && p.linux_personality)
            thread_wait_yield(self); // a wait: not CPU time
        return kYield;
    case sys::Sys::thread_create:
        return thread_create(self, a0, a1, a2);
    case sys::Sys::thread_exit:
        if (thread_exit(self, a0)) {
            // The last thread: the task ends with this status.
            if (p.index == 0)
                platform::exit(hc::ExitKind::Exited, a1 & 0xff);
            task_exit(&p, static_cast<abi::u32>((a1 & 0xff) << 8));
        }
        return kBlocked;
    case sys::Sys::vm_reset:
        if (p.live_threads != 1)
            return -16; // EBUSY: other threads still use this address space
        p.as.unmap_unpinned();
        return 0;
    case sys::Sys::process_fork: {
        u64 t0 = arch::rdtsc();
        i64 r = process_fork(self, a0);
        ++g_counters.forks;
        g_counters.fork_cycles += arch::rdtsc() - t0;
        return r;
    }
    case sys::Sys::process_wait:
        return process_wait(self, static_cast<i64>(a0), a1, a2 & 1, !(a2 & 2), a2 & 4, a2 & 8);
    case sys::Sys::process_self:
        return static_cast<i64>(pid_of(&p) | (pid_of(p.parent) << 32));
    case sys::Sys::pipe_create:
        return pipe_create(self, a0);
    case sys::Sys::pipe_read:
        return pipe_read(self, a0, a1, a2);
    case sys::Sys::pipe_write:
        return pipe_write(self, a0, a1, a2);
    case sys::Sys::pipe_poll:
        return pipe_poll(self, a0);
    case sys::Sys::futex_wait:
        return futex_wait(self, a0, a1);
    case sys::Sys::futex_wake:
        return futex_wake(&p, a0, a1);
    case sys::Sys::signal_disposition:
        p.sig_caught = a0;
        p.sig_ignored = a1;
        p.no_child_stop_signal = a2 & 1;
        return 0;
    case sys::Sys::process_kill:
        return process_kill(self, a0, a1);
    case sys::Sys::process_kill_for_client:
        return process_kill_for_client(self, a0, a1);
    case sys::Sys::security_resolve:
        return security_resolve(p, a0, a1, a2, a3);
    case sys::Sys::security_query:
        return security_query(p, a0, a1, a2, a3);
    case sys::Sys::net_call:
        return net_call(self, a0);
    case sys::Sys::file_call:
        return file_call(self, a0);
    case sys::Sys::process_alarm:
        return process_alarm(self, a0, a1);
    case sys::Sys::process_timer:
        if (a0 == 0)
            return -err::kInval; // the alarm's, through process_alarm
        return process_timer(self, a0, a1, a2, a3);
    case sys::Sys::cpu_time:
        return cpu_time(self, a0, a1);
    case sys::Sys::thread_kill:
        return thread_kill(self, a0, a1);
    case sys::Sys::exec_check: {
        char path[abi::rootfs::kMaxPath + 1];
        if (a1 == 0 || a1 > abi::rootfs::kMaxPath)
            return -err::kInval;
        if (!p.as.copy_in(a0, path, a1))
            return -err::kFault;
        path[a1] = 0;
        Verdict v = check_execute(p, p, path);
        return v.allow ? 0 : -err::kAccess;
    }
    default:
        return -err::kNoSys;
    }
}

void syscall_entry(Thread* self, TrapFrame* f) {
    Task& p = *self->task;
    u64 user_rip = f->rcx;
    u64 user_flags = f->r11;
    f->cs = arch::kUserCs;
    f->ss = arch::kUserDs;
    if (!p.linux_personality || (user_rip >= p.runtime_text_start && user_rip < p.runtime_text_end))
        [[likely]] {
        ++g_counters.native_calls;
        f->rip = user_rip;
        f->rflags = (user_flags & kUserFlagsMask) | 0x202;
        i64 r = native_call(self, f);
        if (r == kYield)
            f->rax = 0;
        if (r == kRestart) {
            // The caller waits, then executes the same `syscall` again (its
            // registers still hold the call): back up over the instruction.
            f->rip = user_rip - 2;
            schedule(f, true);
            return;
        }
        if (r == kBlocked || r == kYield) [[unlikely]] {
            // The caller waits (its result arrives with its wake-up) or
            // yields: run someone else.
            schedule(f, true);
            return;
        }
        f->rax = static_cast<u64>(r);
        if (self->state == ThreadState::Stopped) [[unlikely]]
            schedule(f, true); // its task stopped itself (kill(getpid(), SIGSTOP))
        return;
    }
    // A Linux system call of the application: hand it to the personality
    // runtime in the same address space (DESIGN.md, "The path of one request").
    ++g_counters.linux_syscalls;
    Thread& t = *self;
    auto* tb = static_cast<sys::ThreadBlock*>(pmm::phys_to_virt(t.thread_block_pa));
    sys::LinuxSyscallFrame& s = tb->frame;
    save_user_frame(s, f);
    s.rcx = s.rip = user_rip;
    s.r11 = s.rflags = user_flags;
    f->rip = p.runtime_linux_entry;
    f->rsp = t.runtime_stack_top;
    f->rflags = 0x202;
}

} // namespace

bool g_stats = false;
void stats_start() { g_counters.tsc_at_boot = arch::rdtsc(); }
u64 boot_tsc() { return g_counters.tsc_at_boot; }
void stats_user() { g_counters.tsc_at_user = arch::rdtsc(); }

extern "C" char probe_fxrstor_insn[];
extern "C" char probe_fxrstor_fail[];
extern "C" char safe_wrmsr_insn[];
extern "C" char safe_wrmsr_fail[];

namespace {

// Signals posted for a thread that computes without system calls: its
// runtime runs their handlers now.
void enter_runtime_for_signals(Thread& t, TrapFrame* f) {
    if (!in_application(t, f))
        return;
    auto* tb = static_cast<sys::ThreadBlock*>(pmm::phys_to_virt(t.thread_block_pa));
    // Not for signals it blocks: they wait, pending, until it unblocks them.
    u64 ready = __atomic_load_n(&tb->pending_signals, __ATOMIC_RELAXED) &
                ~__atomic_load_n(&tb->sigmask, __ATOMIC_RELAXED);
    if (ready && !tb->async_entry)
        enter_runtime_async(t, f, sys::kAsyncSignals, 0);
}

// A trap from ring 3, with the kernel lock held.
void user_trap(TrapFrame* f, Thread* self) {
    if (!self || !self->task) [[unlikely]]
        panic("kos kernel: trap %lu from user mode with no current thread (rip %#lx)\n", f->vector, f->rip);
    if (f->vector == arch::kVecTimer) {
        ++g_counters.timer_ticks;
        arch::apic_eoi(); // and the next tick armed
        fire_alarms();
    } else if (f->vector == arch::kVecReschedule) {
        arch::apic_eoi_only();
    }
    // Every kernel instruction counts where ring 0 is emulated: the common
    // case (still runnable) costs one load here.
    if (self->state != ThreadState::Runnable) [[unlikely]] {
        bool syscall = f->vector == arch::kVecSyscall ||
                       (f->vector == arch::kVecPageFault && arch::is_syscall_entry(f->rip));
        // Stopped: switched out once its runtime has saved its registers.
        if (self->state == ThreadState::Stopped && !syscall && preempt_through_runtime(*self, f))
            return;
        switch_out_stopped_or_ended(self, f, syscall);
        enter_runtime_for_signals(*current_thread(), f);
        return;
    }
    Task& p = *self->task;
    if (f->vector == arch::kVecReschedule) {
        // Another CPU posted a signal for this thread (or stopped or ended
        // it: handled above).
        enter_runtime_for_signals(*self, f);
        return;
    }
    if (f->vector == arch::kVecTimer) {
        // Preemption: the running thread goes to the back of the queue
        // (a Linux thread through its runtime).
        if (preempt_through_runtime(*self, f))
            return;
        schedule(f, true);
        enter_runtime_for_signals(*current_thread(), f);
        return;
    }
    if (f->vector == arch::kVecSpurious)
        return;
    if (f->vector == arch::kVecSyscall) {
        syscall_entry(self, f);
        return;
    }
    if (f->vector == arch::kVecPageFault) {
        u64 cr2 = arch::read_cr2();
        if (f->rip == cr2 && arch::is_syscall_entry(cr2)) {
            // `syscall` on nested KVM: see entry.S.
            syscall_entry(self, f);
            return;
        }
        ++g_counters.page_faults;
        bool write = f->error & 2;
        bool exec = f->error & 16;
        u64 t0 = arch::rdtsc();
        bool handled = p.as.handle_fault(cr2, write, exec);
        g_counters.fault_cycles += arch::rdtsc() - t0;
        if (handled)
            return;
        kill_current(f, cr2);
        return;
    }
    // `int 0x80`, the 32-bit system call gate: x86-64 Linux programs get
    // no i386 ABI from kos, so the call fails with ENOSYS like an unknown
    // system call (ATTACKS.md 20). It faults as #UD on nested KVM and as
    // #GP (the gate is not user-callable) on hardware.
    bool idt_0x80 = (f->vector == 13 || f->vector == 11) && (f->error & 2) && (f->error >> 3) == 0x80;
    if (f->vector == 6 || idt_0x80 || f->vector == 13) {
        i64 pa = p.as.translate(f->rip, false);
        if (pa >= 0 && (f->rip & (kPage - 1)) != kPage - 1) {
            const auto* insn = static_cast<const abi::u8*>(pmm::phys_to_virt(static_cast<u64>(pa)));
            if (insn[0] == 0xcd && insn[1] == 0x80) {
                f->rax = static_cast<u64>(-err::kNoSys);
                f->rip += 2;
                return;
            }
        }
    }
    kill_current(f, 0);
}

} // namespace

extern "C" void trap_dispatch(TrapFrame* f) {
    if (f->vector == arch::kVecTlbFlush) {
        tlb_flush_ipi(); // from ring 3, or while waiting for the lock or idle: no lock
        return;
    }
    if ((f->cs & 3) != 3) [[unlikely]] {
        if (f->vector == 6 && f->rip == reinterpret_cast<u64>(probe_fxrstor_insn)) {
            f->rip = reinterpret_cast<u64>(probe_fxrstor_fail);
            return;
        }
        if (f->vector == 13 && f->rip == reinterpret_cast<u64>(safe_wrmsr_insn)) {
            f->rip = reinterpret_cast<u64>(safe_wrmsr_fail);
            return;
        }
        // Interrupts reach ring 0 only in the idle loop and while waiting
        // for the kernel lock: the CPU looks at the run queue next anyway.
        if (f->vector == arch::kVecTimer) {
            arch::apic_eoi();
            return;
        }
        if (f->vector == arch::kVecReschedule) {
            arch::apic_eoi_only();
            return;
        }
        if (f->vector == arch::kVecSpurious)
            return;
        kernel_fault(f);
    }
    if (f->vector == arch::kVecSpurious)
        return;
    if (g_cpu_count == 1) { // nothing to lock against
        user_trap(f, g_cpus[0].current);
        return;
    }
    if (f->vector == arch::kVecTimer && !kernel_try_lock()) {
        // Another CPU is in the kernel (on nested KVM a fork there takes
        // tens of milliseconds): this thread keeps the CPU until the next
        // tick rather than wait to be preempted.
        arch::apic_eoi();
        return;
    }
    if (f->vector != arch::kVecTimer)
        kernel_lock();
    user_trap(f, current_thread());
    wake_cpu_for_queued_threads();
    kernel_unlock();
}

} // namespace kos