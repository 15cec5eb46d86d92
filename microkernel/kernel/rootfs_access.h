// Which rootfs files a Linux task may read (abi/kos/rootfs_access.h): the
// kernel maps into its address space only the rootfs metadata and the data
// pages of files its label may read, and refuses vm_map_image of anything
// else. Without the boot image's section, the whole rootfs is mapped.
#pragma once

#include "kos/rootfs_access.h"
#include "kos/types.h"
#include "vm.h"

namespace kos {

using RootfsAccess = abi::rootfs_access::Label;

// Checks the boot image's section (bounds, order, counts). nullptr, or what
// is wrong (the kernel then stops).
const char* rootfs_access_init();

// Maps what a Linux task labeled `label` may read of the boot image (its
// header, launch description, volume table and the readable rootfs parts),
// read-only and pinned. `*access` is the label's entry (nullptr: all).
const char* map_rootfs_for(vm::AddressSpace& as, const char* label, const RootfsAccess** access);

// Whether rootfs image bytes [offset, offset + len) lie in one readable run.
bool rootfs_range_readable(const RootfsAccess* access, abi::u64 offset, abi::u64 len);

// The user address of the label's bitmap of readable entries (0: none).
abi::u64 rootfs_readable_bitmap(const RootfsAccess* access);

} // namespace kos
