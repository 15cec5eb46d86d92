// Builds the boot image (abi/kos/boot.h) the kernel receives: header, launch
// description and the bundle's rootfs image.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kos/support/result.h"

namespace kos::vmm {

struct LaunchSpec {
    std::vector<std::string> argv; // argv[0] is the program path inside the rootfs
    std::vector<std::string> env;
    std::string cwd = "/";
    std::string hostname = "kos";
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint32_t flags = 0; // abi::boot::BootFlags
};

// Returns the image, page-aligned sections, total size a multiple of 4 KiB.
Result<std::vector<uint8_t>> build_boot_image(const LaunchSpec& launch,
                                              std::span<const uint8_t> rootfs_image);

} // namespace kos::vmm
