#include "pmm.h"

#include "../arch/x86_64/platform.h"

#include "kos/base/string.h"

namespace kos::pmm {
namespace {

struct Range {
    u64 next; // bump pointer: frames at and above it were never handed out
    u64 end;
};

constexpr int kMaxRanges = 32;
Range g_ranges[kMaxRanges];
int g_range_count = 0;

u64 g_free_list = kNoFrame; // singly linked through the first word of each frame
u64 g_free_count = 0;
u64 g_direct_map_base = 0;
u64 g_highest = 0;
bool g_fresh_zero = false;

} // namespace

void* phys_to_virt(u64 pa) { return reinterpret_cast<void*>(pa + g_direct_map_base); }
void set_direct_map_base(u64 base) { g_direct_map_base = base; }
void set_fresh_frames_zero(bool zero) { g_fresh_zero = zero; }

void add_range(u64 start, u64 end) {
    start = (start + kPageSize - 1) & ~(kPageSize - 1);
    end &= ~(kPageSize - 1);
    if (end <= start || g_range_count == kMaxRanges)
        return;
    g_ranges[g_range_count++] = {start, end};
    if (end > g_highest)
        g_highest = end;
}

void reserve(u64 start, u64 end) {
    start &= ~(kPageSize - 1);
    end = (end + kPageSize - 1) & ~(kPageSize - 1);
    // Split the usable ranges around [start, end) now, so allocation needs
    // no checks (ring-0 instructions are expensive on nested KVM).
    for (int i = 0; i < g_range_count; ++i) {
        Range& r = g_ranges[i];
        if (end <= r.next || start >= r.end)
            continue;
        if (start > r.next && end < r.end && g_range_count < kMaxRanges) {
            g_ranges[g_range_count++] = {end, r.end};
            r.end = start;
        } else if (start <= r.next) {
            r.next = end < r.end ? end : r.end;
        } else {
            r.end = start;
        }
    }
}

u64 alloc_frame(bool zeroed) {
    if (g_free_list != kNoFrame) {
        u64 pa = g_free_list;
        g_free_list = *static_cast<u64*>(phys_to_virt(pa));
        --g_free_count;
        if (zeroed)
            platform::zero_frame(pa);
        return pa;
    }
    for (int i = 0; i < g_range_count; ++i) {
        Range& r = g_ranges[i];
        if (r.next < r.end) {
            u64 pa = r.next;
            r.next += kPageSize;
            if (zeroed && !g_fresh_zero)
                platform::zero_frame(pa);
            return pa;
        }
    }
    return kNoFrame;
}

void free_frame(u64 pa) {
    *static_cast<u64*>(phys_to_virt(pa)) = g_free_list;
    g_free_list = pa;
    ++g_free_count;
}

namespace {
// Holders beyond the first, per frame (a frame is held by at most
// kMaxTasks address spaces). Physically contiguous, set up at the first
// fork from never-used frames.
abi::u8* g_share = nullptr;
u64 g_share_frames = 0;

bool ensure_share_table() {
    if (g_share)
        return true;
    u64 frames = g_highest / kPageSize;
    u64 bytes = (frames + kPageSize - 1) & ~(kPageSize - 1);
    for (int i = 0; i < g_range_count; ++i) {
        Range& r = g_ranges[i];
        if (r.end - r.next >= bytes) {
            g_share = static_cast<abi::u8*>(phys_to_virt(r.next));
            r.next += bytes;
            if (!g_fresh_zero)
                memset(g_share, 0, bytes);
            g_share_frames = frames;
            return true;
        }
    }
    return false;
}
} // namespace

bool share_frame(u64 pa) {
    if (!ensure_share_table() || pa / kPageSize >= g_share_frames || g_share[pa / kPageSize] == 255)
        return false;
    ++g_share[pa / kPageSize];
    return true;
}

bool shared_frame(u64 pa) { return g_share && pa / kPageSize < g_share_frames && g_share[pa / kPageSize]; }

void release_user_frame(u64 pa) {
    if (shared_frame(pa)) {
        --g_share[pa / kPageSize];
        return;
    }
    free_frame(pa);
}

u64 free_frames() {
    u64 n = g_free_count;
    for (int i = 0; i < g_range_count; ++i)
        n += (g_ranges[i].end - g_ranges[i].next) / kPageSize;
    return n;
}

u64 highest_address() { return g_highest; }

} // namespace kos::pmm
