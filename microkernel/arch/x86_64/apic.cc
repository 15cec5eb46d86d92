#include "apic.h"

#include "cpu.h"

extern "C" int safe_wrmsr(kos::abi::u32 msr, kos::abi::u64 value);

namespace kos::arch {
namespace {

constexpr u32 kMsrApicBase = 0x1b;
constexpr u64 kApicEnable = 1u << 11;
constexpr u64 kApicX2 = 1u << 10;
constexpr u32 kMsrTpr = 0x808;
constexpr u32 kMsrEoi = 0x80b;
constexpr u32 kMsrSvr = 0x80f;
constexpr u32 kMsrLvtTimer = 0x832;
constexpr u32 kMsrInitialCount = 0x838;
constexpr u32 kMsrDivide = 0x83e;
constexpr u32 kMsrIcr = 0x830;
// KVM's and QEMU's local APIC timers count at 1 GHz with divide-by-1.
constexpr u64 kTimerHz = 1000000000;

// xAPIC register offsets in the MMIO page.
constexpr u64 kXTpr = 0x80, kXEoi = 0xb0, kXSvr = 0xf0, kXIcrLow = 0x300, kXIcrHigh = 0x310,
              kXLvtTimer = 0x320, kXInitialCount = 0x380, kXDivide = 0x3e0;
constexpr u32 kIcrPending = 1u << 12; // xAPIC delivery status

bool g_x2apic = false;
volatile u32* g_xapic = nullptr;
u64 g_count = 0;

void xapic_write(u64 reg, u32 v) { g_xapic[reg / 4] = v; }
u32 xapic_read(u64 reg) { return g_xapic[reg / 4]; }

} // namespace

// The timer runs in one-shot mode, re-armed at every tick (apic_eoi): the
// periodic mode does not fire more than once on nested KVM (kvm_pvm), and a
// re-armed one-shot is what a tickless kernel needs anyway.
bool apic_timer_start(u64 period_us, u64 xapic_va) {
    u64 count = period_us * (kTimerHz / 1000000);
    g_count = count;
    // x2APIC (SDM §11.12.5): enabled after the xAPIC. The write faults
    // where the platform does not offer it; CPUID may not tell (it is empty
    // on some nested KVMs), so the write itself is the probe.
    u64 base = rdmsr(kMsrApicBase);
    if (safe_wrmsr(kMsrApicBase, base | kApicEnable) == 0 &&
        safe_wrmsr(kMsrApicBase, base | kApicEnable | kApicX2) == 0) {
        g_x2apic = true;
        wrmsr(kMsrTpr, 0);
        wrmsr(kMsrSvr, 0x100 | kVecSpurious);
        wrmsr(kMsrDivide, 0xb); // divide by 1
        wrmsr(kMsrLvtTimer, kVecTimer);
        wrmsr(kMsrInitialCount, count);
        return true;
    }
    // xAPIC through MMIO: the local APIC is enabled at reset.
    if (!(base & kApicEnable) || (base & ~0xfffull & 0xffffffffffull) != kXapicPhys || !xapic_va)
        return false;
    g_xapic = reinterpret_cast<volatile u32*>(xapic_va);
    xapic_write(kXTpr, 0);
    xapic_write(kXSvr, 0x100 | kVecSpurious);
    xapic_write(kXDivide, 0xb);
    xapic_write(kXLvtTimer, kVecTimer);
    xapic_write(kXInitialCount, static_cast<u32>(count));
    return true;
}

void apic_eoi() {
    if (g_x2apic) {
        wrmsr(kMsrEoi, 0);
        wrmsr(kMsrInitialCount, g_count);
    } else if (g_xapic) {
        xapic_write(kXEoi, 0);
        xapic_write(kXInitialCount, static_cast<u32>(g_count));
    }
}

} // namespace kos::arch

namespace kos::arch {

void apic_eoi_only() {
    if (g_x2apic)
        wrmsr(kMsrEoi, 0);
    else if (g_xapic)
        xapic_write(kXEoi, 0);
}

// Fixed delivery, physical destination, edge, no shorthand (SDM §11.6.1).
void apic_send_ipi(u32 apic_id, u32 vector) {
    if (g_x2apic) {
        wrmsr(kMsrIcr, (u64(apic_id) << 32) | vector);
    } else if (g_xapic) {
        // KVM's local APIC delivers at once; others may still be sending
        // the previous one. Bounded: a stuck bit must not hang the kernel.
        for (int i = 0; i < 1000 && (xapic_read(kXIcrLow) & kIcrPending); ++i)
            asm volatile("pause");
        xapic_write(kXIcrHigh, apic_id << 24);
        xapic_write(kXIcrLow, vector);
    }
}

} // namespace kos::arch
