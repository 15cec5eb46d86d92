// Physical memory manager: 4 KiB frames.
//
// Frames come from the RAM ranges of the boot memory map. Frames never handed
// out before are known to be zero when the VMM guarantees zeroed RAM (the kos
// VMM does): handing them out needs no clearing, which matters because ring-0
// stores are emulated on nested KVM. Freed frames go to a free list and are
// cleared when reused.
#pragma once

#include "kos/types.h"

namespace kos::pmm {

using abi::u64;

inline constexpr u64 kPageSize = 4096;
inline constexpr u64 kNoFrame = ~0ull;

void add_range(u64 start, u64 end); // [start, end) of usable RAM
void reserve(u64 start, u64 end);   // never hand out frames in [start, end); after add_range
void set_fresh_frames_zero(bool zero);

// Returns a frame's physical address, or kNoFrame when memory is exhausted.
u64 alloc_frame(bool zeroed);
void free_frame(u64 pa);

// Frames of user memory shared copy-on-write after fork: share_frame adds
// a holder, release_user_frame drops one and frees the frame with its last
// holder; shared_frame tells whether others hold it too. False (nothing
// changed) when the share table cannot be set up.
bool share_frame(u64 pa);
bool shared_frame(u64 pa);
void release_user_frame(u64 pa);

u64 free_frames();
u64 highest_address(); // end of the highest RAM range

// Kernel virtual address of a physical address (direct map, or identity
// before the kernel's own page tables are active).
void* phys_to_virt(u64 pa);
void set_direct_map_base(u64 base);

} // namespace kos::pmm
