// TLB maintenance, the one CPU operation the memory code needs. Implemented
// in arch/ for the guest and by the host unit tests.
#pragma once

#include "kos/types.h"

namespace kos::arch {
void flush_tlb_page(abi::u64 va);
void flush_tlb_all(); // every non-global entry of the current address space
} // namespace kos::arch
