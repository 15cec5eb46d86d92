// A user buffer as guest-physical segments, for the VMM services that read
// or write a program's memory directly (sockets, volume files).
#pragma once

#include "kos/types.h"
#include "task.h"

namespace kos {

// The layout of net::NetSegment and file::FileSegment.
struct PhysSegment {
    abi::u64 addr;
    abi::u64 len;
};

inline constexpr abi::u64 kMaxUserBuffer = 256 * 1024;

// Describes [va, va + len) (len at most kMaxUserBuffer) as at most
// `max_segments` segments, physically contiguous pages merged, faulting
// pages in as their mappings allow (`write`: for the service to write
// into, breaking copy-on-write). One page-table walk per 2 MiB. Returns the
// bytes described (fewer than `len` when the segments ran out), or -EFAULT
// if any byte is not accessible; `*count` is the segments used.
abi::i64 user_segments(Task& t, abi::u64 va, abi::u64 len, bool write, PhysSegment* out, abi::u32 max_segments,
                       abi::u32* count);

} // namespace kos
