// TLB maintenance, the one CPU operation the memory code needs. Implemented
// in arch/ and smp.cc for the guest and by the host unit tests.
#pragma once

#include "kos/types.h"

namespace kos::arch {
void flush_tlb_page(abi::u64 va);
void flush_tlb_all(); // every non-global entry of the current address space
// The bit of the CPU running this code in a CPU mask.
abi::u64 tlb_this_cpu_bit();
// Makes every CPU in `cpu_mask` (but this one) flush its TLB, and waits
// until they have.
void tlb_shootdown(abi::u64 cpu_mask);
} // namespace kos::arch
