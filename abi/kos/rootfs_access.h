// Which rootfs files a label may read: a boot image section computed by
// `kos run` from the bundle's compiled policy (`security LABEL -> <file's
// label> file.read`, the question the process backend's Landlock rules
// answer) for the label of each Linux process of the init description.
//
// The kernel maps into a Linux task only the parts of the rootfs image its
// label may read: the metadata (header, entries, strings) and the data
// pages of readable files, as `runs`. The runtime consults `bitmap` at open
// so that an unreadable file fails with EACCES instead of a fault; the
// bitmap is advice, the missing mappings are the enforcement. Without the
// section (no policy, no [labels], or a policy without class `file` and
// permission `read`) the whole rootfs is readable, as in the process
// backend.
#pragma once

#include "kos/types.h"

namespace kos::abi::rootfs_access {

inline constexpr u64 kMagic = 0x315244414552534full; // "OSREADR1"
inline constexpr u32 kMaxLabels = 16;
inline constexpr u32 kMaxLabelLen = 128;

struct Header {
    u64 magic;
    u32 label_count;
    u32 entry_count; // the rootfs image's, for the bitmaps
    u32 run_count;   // all labels' runs, back to back after the labels
    u32 reserved;
};

struct Label {
    char label[kMaxLabelLen]; // NUL-terminated
    u32 first_run;            // index into the runs
    u32 run_count;
    u32 bitmap_offset;        // from the section's start: (entry_count + 7) / 8 bytes,
                              // bit i set: entry i may be read (always for directories
                              // and symlinks)
    u32 reserved;
};

// Page-aligned byte ranges of the rootfs image [offset, offset + length),
// sorted and disjoint.
struct Run {
    u64 offset;
    u64 length;
};

// Layout: Header, Label[label_count], Run[run_count], bitmaps.
static_assert(sizeof(Header) == 24);
static_assert(sizeof(Label) == 144);
static_assert(sizeof(Run) == 16);

} // namespace kos::abi::rootfs_access
