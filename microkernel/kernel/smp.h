// Several CPUs: each CPU's state, the kernel lock, idling, and the
// interprocessor interrupts that wake an idle CPU, stop a thread another
// CPU runs, and flush other CPUs' TLBs.
//
// One lock covers the kernel: every entry from ring 3 takes it and the
// return to ring 3 releases it. Kernel paths are short and never block (a
// thread that waits is switched out, see task.h), so user code runs on all
// CPUs at once and kernel code on one at a time, which keeps every kernel
// structure as simple as it was with one CPU. A CPU waits for the lock with
// interrupts enabled, so it still answers TLB flush requests meanwhile.
#pragma once

#include "../arch/x86_64/cpu.h"

namespace kos {

struct Task;
struct Thread;

struct PerCpu {
    abi::u32 index = 0;
    bool idle = false;             // halted in the idle loop (without the lock)
    Thread* current = nullptr;     // the thread it runs; null: none (idle)
    Task* loaded = nullptr;        // whose address space CR3 holds; null: the kernel's tables
    abi::u64 loaded_fs = ~0ull;    // FS and GS bases in the MSRs (~0: unknown)
    abi::u64 loaded_gs = ~0ull;
    volatile abi::u64 flush_seq = 0;  // TLB flushes asked of it
    volatile abi::u64 flush_done = 0; // and done
    // Kernel entries that found the lock taken, and the cycles they waited
    // (kos run --stats).
    abi::u64 lock_waits = 0;
    abi::u64 lock_wait_cycles = 0;
};

extern PerCpu g_cpus[arch::kMaxCpus];
extern abi::u32 g_cpu_count; // CPUs online
inline PerCpu& this_cpu() { return g_cpus[arch::cpu_index()]; }

void kernel_lock();
// Takes the lock only if it is free.
bool kernel_try_lock();
void kernel_unlock();
// One line for kos run --stats: the CPUs and how long they waited for the lock.
void smp_print_stats();

// Starts CPUs 1 .. count-1 through the VMM (kos.cpus=N); each runs ap_main
// and joins the scheduler. Returns how many CPUs are online.
abi::u32 smp_start(abi::u32 count, abi::u64 kernel_pml4);
// The kernel's own page tables (loaded by a CPU with nothing to run).
abi::u64 kernel_page_tables();

// Whether another CPU runs a thread now.
bool other_cpus_busy();
// Lets an idle CPU look at the run queue (a thread became runnable).
void wake_idle_cpu();
// Makes `cpu` enter the kernel (its thread was stopped or ended, or has a
// signal to run).
void kick_cpu(abi::u32 cpu);
// Halts until an interrupt, with the lock released meanwhile.
void wait_for_interrupt(PerCpu& cpu);
// A TLB flush request from another CPU (vector kVecTlbFlush): flushes and
// acknowledges. Needs no lock.
void tlb_flush_ipi();

} // namespace kos
