// The packed single-file bundle (.kos). All integers little-endian.
//
//   [0, 4096)            PackedHeader, then zeros
//   [4096, ...)          sections, in this order, back to back:
//                          config (bundle.toml), policy sources (in [policy]
//                          sources order), compiled policy (optional),
//                          rootfs image (starts on a page boundary; the gap
//                          before it is zeros)
//   manifest             canonical text (manifest.h), right after the rootfs
//   signature            minisign signature of the manifest (may be empty)
//
// Nothing else: the header's sizes must add up to the file size, and the
// header tail and alignment gaps must be zero, so a change to any byte is
// detected (header fields by the layout checks, the manifest by its digest
// and signature, the sections by the digests in the manifest).
#pragma once

#include <cstdint>

namespace kos::pkg {

inline constexpr char kPackedMagic[8] = {'K', 'O', 'S', 'B', 'N', 'D', 'L', '1'};
inline constexpr uint32_t kPackedVersion = 1;
inline constexpr uint64_t kPackedHeaderSize = 4096;
inline constexpr uint64_t kPackedAlign = 4096;
inline constexpr uint64_t kMaxSignatureSize = 4096;

struct PackedHeader {
    char magic[8];
    uint32_t format_version;
    uint32_t header_size;
    uint64_t file_size;
    uint64_t manifest_offset;
    uint64_t manifest_size;
    uint64_t signature_offset;
    uint64_t signature_size;
    uint8_t manifest_sha256[32];
};
static_assert(sizeof(PackedHeader) == 88);
static_assert(__builtin_offsetof(PackedHeader, manifest_sha256) == 56);

} // namespace kos::pkg
