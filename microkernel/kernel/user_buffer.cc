#include "user_buffer.h"

#include "errno.h"

namespace kos {

using abi::i64;
using abi::u32;
using abi::u64;

i64 user_segments(Task& t, u64 va, u64 len, bool write, PhysSegment* out, u32 max_segments, u32* count) {
    constexpr u64 kPage = 4096;
    constexpr u32 kMaxPages = kMaxUserBuffer / kPage + 1;
    *count = 0;
    if (len > kMaxUserBuffer)
        len = kMaxUserBuffer;
    u64 frames[kMaxPages];
    u32 pages = static_cast<u32>(((va & (kPage - 1)) + len + kPage - 1) / kPage);
    if (len && t.as.translate_pages(va, pages, write, frames) != pages)
        return -err::kFault;
    u32 n = 0;
    u64 done = 0;
    while (done < len) {
        u64 at = va + done;
        u64 pa = frames[(at >> 12) - (va >> 12)] | (at & (kPage - 1));
        u64 chunk = kPage - (pa & (kPage - 1));
        if (chunk > len - done)
            chunk = len - done;
        if (n && out[n - 1].addr + out[n - 1].len == pa) {
            out[n - 1].len += chunk;
        } else {
            if (n == max_segments)
                break; // a shorter transfer
            out[n++] = {pa, chunk};
        }
        done += chunk;
    }
    *count = n;
    return static_cast<i64>(done);
}

} // namespace kos
