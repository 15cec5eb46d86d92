// The kos boot image and the guest physical memory layout.
//
// The boot image is the one module the kernel receives (PVH module 0, or
// QEMU's -initrd): a header, the launch description of the first program,
// and the bundle's rootfs image (see rootfs_image.h). The kos VMM builds it
// in memory and maps it into the guest read-only; `kos image` writes the
// same bytes to a file for other VMMs.
#pragma once

#include "kos/types.h"

namespace kos::abi::boot {

inline constexpr u64 kPageSize = 4096;

// Guest physical layout used by the kos VMM. Other VMMs (QEMU) choose their
// own; the kernel reads everything from the PVH start info.
inline constexpr u64 kBootPml4Paddr = 0x1000;   // VMM-built tables, 0x1000..0x4fff
inline constexpr u64 kStartInfoPaddr = 0x6000;  // StartInfo, modlist, memmap, cmdline
inline constexpr u64 kKernelPaddr = 0x100000;   // the kernel's LMA
inline constexpr u64 kImageSlotPaddr = 1ull << 32; // read-only slot for the boot image

// Virtual CPUs the kernel supports. The kos VMM passes the count on the
// kernel command line (`kos.cpus=N`) and starts each further CPU when the
// kernel asks (hypercall StartCpu); under other VMMs the kernel uses one.
inline constexpr u32 kMaxCpus = 8;

// Kernel virtual layout.
inline constexpr u64 kDirectMapBase = 0xffff800000000000ull;
inline constexpr u64 kKernelVirtBase = 0xffffffff80000000ull;

inline constexpr u64 kBootImageMagic = 0x31544f4f42534f4bull; // "KOSBOOT1"
inline constexpr u32 kBootImageVersion = 1;

enum BootFlags : u32 {
    kBootTrace = 1u << 0, // print each Linux syscall of the app (kos run --trace)
    kBootStats = 1u << 1, // print kernel counters at exit (kos run --stats)
};

// All offsets are from the start of the boot image; all sections are
// page-aligned so they can be mapped without copying.
struct BootImageHeader {
    u64 magic;
    u32 version;
    u32 header_size;
    u64 total_size;
    u64 launch_offset;
    u64 launch_size;
    u64 rootfs_offset;
    u64 rootfs_size;
    u32 flags;
    u32 reserved0;
    // Clock: guest TSC frequency and the host's CLOCK_REALTIME at guest TSC 0.
    // tsc_khz == 0 means unknown (the guest then calibrates or assumes).
    u64 tsc_khz;
    u64 realtime_at_tsc0_ns;
    u8 random_seed[32]; // host entropy for AT_RANDOM and getrandom
    u64 init_offset;    // init description (init.h); 0: process 0 only
    u64 init_size;
    // The compiled policy (security-server/engine/kos/security/policy_format.h);
    // 0: none (IPC is then denied). The kernel never maps it into a task.
    u64 policy_offset;
    u64 policy_size;
    // The volume table (file.h): host directories served by the VMM's file
    // service; 0: none. Placed before the rootfs, so tasks can read it.
    u64 volumes_offset;
    u64 volumes_size;
    // Which rootfs files each Linux process's label may read
    // (rootfs_access.h); 0: all of them. Before the rootfs, like the volumes.
    u64 readable_offset;
    u64 readable_size;
};
static_assert(sizeof(BootImageHeader) == 176);

// Launch description: counts, then NUL-terminated strings back to back:
// argv[0..argc), envp[0..envc), cwd, hostname. argv[0] is the program path
// inside the rootfs.
// The launch section holds one LaunchHeader + strings per Linux process of
// the init description, in its order (the first: process 0), each at an
// 8-byte aligned offset; `next` is the offset of the following one from the
// section's start (0: the last).
struct LaunchHeader {
    u32 argc;
    u32 envc;
    u32 uid;
    u32 gid;
    u32 strings_size;
    u32 next;
};
static_assert(sizeof(LaunchHeader) == 24);

inline constexpr u32 kMaxArgs = 4096;
inline constexpr u64 kMaxLaunchStrings = 256 * 1024;

} // namespace kos::abi::boot
