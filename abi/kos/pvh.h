// The PVH boot protocol (Xen's hvm_start_info), which QEMU, Firecracker and
// cloud-hypervisor implement and which the kos VMM uses too, so the kernel
// has one way to learn about memory, modules and its command line.
// Reference: xen/include/public/arch-x86/hvm/start_info.h.
#pragma once

#include "kos/types.h"

namespace kos::abi::pvh {

inline constexpr u32 kStartInfoMagic = 0x336ec578;
inline constexpr u32 kElfNotePhys32Entry = 18; // XEN_ELFNOTE_PHYS32_ENTRY
inline constexpr u32 kMemmapRam = 1;
inline constexpr u32 kMemmapReserved = 2;

struct StartInfo {
    u32 magic;
    u32 version;
    u32 flags;
    u32 nr_modules;
    u64 modlist_paddr;
    u64 cmdline_paddr;
    u64 rsdp_paddr;
    u64 memmap_paddr; // version >= 1
    u32 memmap_entries;
    u32 reserved;
};
static_assert(sizeof(StartInfo) == 56);

struct ModlistEntry {
    u64 paddr;
    u64 size;
    u64 cmdline_paddr;
    u64 reserved;
};
static_assert(sizeof(ModlistEntry) == 32);

struct MemmapEntry {
    u64 addr;
    u64 size;
    u32 type;
    u32 reserved;
};
static_assert(sizeof(MemmapEntry) == 24);

} // namespace kos::abi::pvh
