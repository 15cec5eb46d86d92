#include "smp.h"

#include "../arch/x86_64/apic.h"
#include "../arch/x86_64/platform.h"
#include "kos/boot.h"
#include "panic.h"
#include "task.h"
#include "tlb.h"

extern "C" [[noreturn]] void enter_user(kos::arch::TrapFrame* frame);
extern "C" char ap_entry64[];

namespace kos {

using abi::i64;
using abi::u32;
using abi::u64;

static_assert(arch::kMaxCpus == abi::boot::kMaxCpus);

PerCpu g_cpus[arch::kMaxCpus];
u32 g_cpu_count = 1;

namespace {

u32 g_lock = 0;
u32 g_lock_waiters = 0; // bit n: CPU n waits for the lock
u64 g_kernel_pml4 = 0;
// CPU 0 runs on the boot stack (boot.S); the others on these.
alignas(arch::kKernelStackSize) abi::u8 g_ap_stacks[arch::kMaxCpus - 1][arch::kKernelStackSize];
arch::TrapFrame g_first_frames[arch::kMaxCpus];
bool g_wake_sent[arch::kMaxCpus];

} // namespace

void kernel_lock() {
    if (!__atomic_exchange_n(&g_lock, 1u, __ATOMIC_ACQUIRE)) [[likely]]
        return;
    u64 t0 = arch::rdtsc();
    PerCpu& cpu = this_cpu();
    u32 bit = 1u << cpu.index;
    for (;;) {
        // Halt rather than spin: on nested KVM a spinning CPU runs emulated
        // ring-0 code on a host core the holder needs. The holder's unlock
        // sends an IPI to a waiter (seen in g_lock_waiters; both sides use
        // sequentially consistent order, so either the waiter sees the lock
        // free or the holder sees the waiter). Interrupts are on while
        // halted: the holder may be waiting for this CPU to flush its TLB,
        // and the ticks go on.
        __atomic_or_fetch(&g_lock_waiters, bit, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&g_lock, __ATOMIC_SEQ_CST))
            asm volatile("sti; hlt; cli" : : : "memory");
        __atomic_and_fetch(&g_lock_waiters, ~bit, __ATOMIC_SEQ_CST);
        if (!__atomic_exchange_n(&g_lock, 1u, __ATOMIC_ACQUIRE))
            break;
    }
    ++cpu.lock_waits;
    cpu.lock_wait_cycles += arch::rdtsc() - t0;
}

bool kernel_try_lock() { return !__atomic_exchange_n(&g_lock, 1u, __ATOMIC_ACQUIRE); }

void kernel_unlock() {
    __atomic_store_n(&g_lock, 0u, __ATOMIC_SEQ_CST);
    u32 waiters = __atomic_load_n(&g_lock_waiters, __ATOMIC_SEQ_CST);
    if (waiters) [[unlikely]]
        arch::apic_send_ipi(static_cast<u32>(__builtin_ctz(waiters)), arch::kVecReschedule);
}

void smp_print_stats() {
    u64 waits = 0, cycles = 0;
    for (u32 i = 0; i < g_cpu_count; ++i) {
        waits += g_cpus[i].lock_waits;
        cycles += g_cpus[i].lock_wait_cycles;
    }
    kprintf("kos kernel: %u CPUs; %lu kernel entries waited for the kernel lock (%lu kcycles)\n", g_cpu_count,
            waits, cycles >> 10);
}

u64 kernel_page_tables() { return g_kernel_pml4; }

u32 smp_start(u32 count, u64 kernel_pml4) {
    g_kernel_pml4 = kernel_pml4;
    if (count > arch::kMaxCpus)
        count = arch::kMaxCpus;
    for (u32 cpu = 1; cpu < count; ++cpu) {
        abi::u8* stack = g_ap_stacks[cpu - 1];
        *reinterpret_cast<u64*>(stack) = cpu; // arch::cpu_index()
        g_cpus[cpu].index = cpu;
        i64 r = platform::start_cpu(cpu, reinterpret_cast<u64>(ap_entry64),
                                    reinterpret_cast<u64>(stack + arch::kKernelStackSize), kernel_pml4);
        if (r < 0) {
            kprintf("kos kernel: CPU %u did not start (error %ld): running on %u\n", cpu, -r, cpu);
            break;
        }
        g_cpu_count = cpu + 1;
    }
    return g_cpu_count;
}

bool other_cpus_busy() {
    PerCpu& self = this_cpu();
    for (u32 i = 0; i < g_cpu_count; ++i)
        if (&g_cpus[i] != &self && g_cpus[i].current)
            return true;
    return false;
}

void kick_cpu(u32 cpu) {
    if (cpu != this_cpu().index && cpu < g_cpu_count)
        arch::apic_send_ipi(cpu, arch::kVecReschedule);
}

void wake_idle_cpu() {
    PerCpu& self = this_cpu();
    for (u32 i = 0; i < g_cpu_count; ++i) {
        if (&g_cpus[i] == &self || !g_cpus[i].idle || g_wake_sent[i])
            continue;
        g_wake_sent[i] = true; // until it wakes: the next thread goes to another idle CPU
        arch::apic_send_ipi(i, arch::kVecReschedule);
        return;
    }
}

void wait_for_interrupt(PerCpu& cpu) {
    cpu.idle = true;
    kernel_unlock();
    // An interrupt that arrives before the hlt (IF is still clear) stays
    // pending and ends it at once: `sti` takes effect after `hlt` starts.
    // A thread becoming runnable sends a reschedule IPI; the CPU's ticks
    // go on meanwhile as a safety net (with the timer off, an idle CPU hung
    // on nested KVM once in a few hundred wake-ups, as if an IPI went
    // missing). A tick with nothing queued goes back to sleep without the
    // lock: on nested KVM, waiting for it is emulated ring-0 code that
    // slows the CPU holding it (a page-fault-heavy program ran 1.7x
    // slower beside an idle CPU that took the lock at every tick).
    do
        asm volatile("sti; hlt; cli" : : : "memory");
    while (!__atomic_load_n(&g_wake_sent[cpu.index], __ATOMIC_RELAXED) && !run_queue_hint());
    kernel_lock();
    cpu.idle = false;
    g_wake_sent[cpu.index] = false;
}

void tlb_flush_ipi() {
    PerCpu& cpu = this_cpu();
    u64 seq = cpu.flush_seq;
    arch::flush_tlb_all();
    __atomic_store_n(&cpu.flush_done, seq, __ATOMIC_RELEASE);
    arch::apic_eoi_only();
}

namespace arch {

u64 tlb_this_cpu_bit() { return 1ull << cpu_index(); }

// The caller holds the kernel lock, so one shootdown is in flight at a
// time; each target is in ring 3, idle, or waiting for the lock, and
// takes the interrupt in all three.
void tlb_shootdown(u64 cpu_mask) {
    u64 want[kMaxCpus] = {};
    for (u32 i = 0; i < g_cpu_count; ++i) {
        if (!(cpu_mask & (1ull << i)) || i == cpu_index())
            continue;
        want[i] = __atomic_add_fetch(&g_cpus[i].flush_seq, 1, __ATOMIC_ACQ_REL);
        apic_send_ipi(i, kVecTlbFlush);
    }
    u64 start = monotonic_ns();
    for (u32 i = 0; i < g_cpu_count; ++i)
        while (want[i] && __atomic_load_n(&g_cpus[i].flush_done, __ATOMIC_ACQUIRE) < want[i]) {
            asm volatile("pause");
            if (monotonic_ns() - start > 2'000'000'000ull)
                panic("kos kernel: CPU %u did not flush its TLB within 2 s (its interrupts do not "
                      "arrive)\n", i);
        }
}

} // namespace arch

// A further CPU's first code (boot.S ap_entry64): its own GDT, TSS and
// timer, then the scheduler.
extern "C" [[noreturn]] void ap_main(u64 index) {
    u32 cpu = static_cast<u32>(index);
    arch::cpu_init(cpu, reinterpret_cast<u64>(g_ap_stacks[cpu - 1] + arch::kKernelStackSize));
    if (!arch::apic_timer_start(10000, abi::boot::kDirectMapBase + arch::kXapicPhys))
        kprintf("kos kernel: CPU %u has no APIC timer: its threads are not preempted\n", cpu);
    kernel_lock();
    arch::TrapFrame* frame = &g_first_frames[cpu];
    schedule(frame, false); // waits until a thread is runnable
    kernel_unlock();
    enter_user(frame);
}

} // namespace kos
