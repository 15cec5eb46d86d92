#include "rootfs_access.h"

#include "kos/base/string.h"
#include "kos/boot.h"
#include "kos/rootfs_image.h"
#include "kos/syscall.h"
#include "loader.h"
#include "pmm.h"

namespace kos {
namespace {

namespace ra = abi::rootfs_access;
using abi::u32;
using abi::u64;
using abi::u8;

constexpr u64 kPage = 4096;
const ra::Header* g_header = nullptr;
const ra::Label* g_labels = nullptr;
const ra::Run* g_runs = nullptr;

u64 page_up(u64 v) { return (v + kPage - 1) & ~(kPage - 1); }

const u8* image_at(u64 offset) { return static_cast<const u8*>(pmm::phys_to_virt(g_boot_image.pa + offset)); }

} // namespace

const char* rootfs_access_init() {
    const auto* bh = g_boot_image.header;
    if (bh->readable_offset == 0)
        return nullptr;
    u64 off = bh->readable_offset, size = bh->readable_size;
    if (off % kPage || off > bh->rootfs_offset || size > bh->rootfs_offset - off || size < sizeof(ra::Header))
        return "the rootfs access section lies outside its place in the boot image";
    const auto* h = reinterpret_cast<const ra::Header*>(image_at(off));
    const auto* rh = reinterpret_cast<const abi::rootfs::RootfsHeader*>(image_at(bh->rootfs_offset));
    if (h->magic != ra::kMagic || h->label_count == 0 || h->label_count > ra::kMaxLabels ||
        bh->rootfs_size < sizeof *rh || h->entry_count != rh->entry_count)
        return "the rootfs access section is malformed (magic, counts)";
    u64 labels_end = sizeof *h + u64{h->label_count} * sizeof(ra::Label);
    u64 runs_end = labels_end + u64{h->run_count} * sizeof(ra::Run);
    u64 bitmap = (u64{h->entry_count} + 7) / 8;
    if (runs_end > size)
        return "the rootfs access section is truncated";
    const auto* labels = reinterpret_cast<const ra::Label*>(image_at(off) + sizeof *h);
    const auto* runs = reinterpret_cast<const ra::Run*>(image_at(off) + labels_end);
    u64 limit = page_up(bh->rootfs_size);
    for (u32 i = 0; i < h->label_count; ++i) {
        const ra::Label& l = labels[i];
        bool terminated = false;
        for (u32 c = 0; c < ra::kMaxLabelLen; ++c)
            terminated |= l.label[c] == 0;
        if (!terminated || l.first_run > h->run_count || l.run_count > h->run_count - l.first_run ||
            l.run_count == 0 || l.bitmap_offset < runs_end || l.bitmap_offset > size || bitmap > size - l.bitmap_offset)
            return "a label of the rootfs access section is malformed";
        u64 prev_end = 0;
        for (u32 r = l.first_run; r < l.first_run + l.run_count; ++r) {
            const ra::Run& run = runs[r];
            if (run.offset % kPage || run.length % kPage || run.length == 0 || run.offset < prev_end ||
                run.offset > limit || run.length > limit - run.offset)
                return "a run of the rootfs access section is malformed";
            prev_end = run.offset + run.length;
        }
    }
    g_header = h;
    g_labels = labels;
    g_runs = runs;
    return nullptr;
}

const char* map_rootfs_for(vm::AddressSpace& as, const char* label, const RootfsAccess** access) {
    const auto* bh = g_boot_image.header;
    *access = nullptr;
    u64 full = page_up(bh->rootfs_offset + bh->rootfs_size);
    if (!g_header)
        return as.map_image(abi::sys::kRootfsMapBase, full, g_boot_image.pa, vm::kRead, vm::kPinned) < 0
                   ? "cannot map the boot image"
                   : nullptr;
    for (u32 i = 0; i < g_header->label_count && !*access; ++i)
        if (strcmp(g_labels[i].label, label) == 0)
            *access = &g_labels[i];
    if (!*access)
        return "the rootfs access section has no entry for a Linux process's label";
    // Everything before the rootfs, then the runs (the first is the rootfs's
    // metadata: header, entries, strings).
    if (as.map_image(abi::sys::kRootfsMapBase, bh->rootfs_offset, g_boot_image.pa, vm::kRead, vm::kPinned) < 0)
        return "cannot map the boot image";
    for (u32 r = (*access)->first_run; r < (*access)->first_run + (*access)->run_count; ++r) {
        const ra::Run& run = g_runs[r];
        u64 at = bh->rootfs_offset + run.offset;
        if (as.map_image(abi::sys::kRootfsMapBase + at, run.length, g_boot_image.pa + at, vm::kRead, vm::kPinned) < 0)
            return "cannot map the readable parts of the rootfs";
    }
    return nullptr;
}

bool rootfs_range_readable(const RootfsAccess* access, u64 offset, u64 len) {
    if (!access)
        return true;
    for (u32 r = access->first_run; r < access->first_run + access->run_count; ++r) {
        const ra::Run& run = g_runs[r];
        if (offset >= run.offset && offset - run.offset <= run.length && len <= run.length - (offset - run.offset))
            return true;
    }
    return false;
}

u64 rootfs_readable_bitmap(const RootfsAccess* access) {
    if (!access)
        return 0;
    return abi::sys::kRootfsMapBase + g_boot_image.header->readable_offset + access->bitmap_offset;
}

} // namespace kos
