// The local APIC timer (x2APIC mode), which drives preemption.
// Intel SDM vol. 3 ch. 11 (APIC), §11.12 (x2APIC).
#pragma once

#include "kos/types.h"

namespace kos::arch {

// Starts a timer interrupt (kVecTimer) every `period_us`, with the
// x2APIC (MSRs) where the platform allows it, else the xAPIC through its
// MMIO page, which must be mapped at `xapic_va`. Returns false when neither
// works; the kernel then runs without preemption.
inline constexpr abi::u64 kXapicPhys = 0xfee00000;
bool apic_timer_start(abi::u64 period_us, abi::u64 xapic_va);
// Acknowledges the timer interrupt and arms the next tick.
void apic_eoi();
// Acknowledges another interrupt (an IPI).
void apic_eoi_only();
// Sends interrupt `vector` to the CPU whose local APIC ID is `apic_id`
// (kos numbers CPUs by their APIC IDs: the kos VMM's vCPU n has ID n).
// Call after this CPU's apic_timer_start.
void apic_send_ipi(abi::u32 apic_id, abi::u32 vector);

} // namespace kos::arch
