// Builds the boot image (abi/kos/boot.h) the kernel receives: header, launch
// description and the bundle's rootfs image.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kos/support/result.h"

namespace kos::vmm {

// The init description (abi/kos/init.h): every process and channel.
struct InitProcessSpec {
    std::string name;
    std::string label;
    bool native = false;           // native kos program; else Linux (process 0 only)
    std::vector<std::string> argv; // native: program path and arguments
    std::string program;           // argv[0] with its symlinks resolved ("": argv[0])
};

struct InitChannelSpec {
    std::string name;
    uint32_t client = 0; // process index
    uint32_t server = 0;
    uint32_t interface_id = 0;
    uint32_t client_rights = 0; // abi::sys::HandleRights
};

struct InitSpec {
    std::vector<InitProcessSpec> processes;
    std::vector<InitChannelSpec> channels;
};

// Encodes an init description; checks indices and limits.
Result<std::vector<uint8_t>> encode_init(const InitSpec& spec);

// A volume as the guest sees it (the host side is the VMM's file service).
struct LaunchVolume {
    std::string path;  // absolute, normalized guest path, not "/"
    std::string label; // "" only for scratch
    bool writable = false;
    bool scratch = false; // the VM's private /tmp: no label check
    bool pipe = false;    // a declared pipe (after every volume), not a volume
};

struct LaunchSpec {
    std::vector<std::string> argv; // argv[0] is the program path inside the rootfs
    std::vector<std::string> env;
    std::string cwd = "/";
    std::string hostname = "kos";
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint32_t flags = 0; // abi::boot::BootFlags
    InitSpec init;      // empty: the program above is the only process
    std::vector<uint8_t> policy; // the compiled policy; empty: none
    std::vector<LaunchVolume> volumes; // the volume table (abi/kos/file.h), in order
};

// Returns the image, page-aligned sections, total size a multiple of 4 KiB.
Result<std::vector<uint8_t>> build_boot_image(const LaunchSpec& launch,
                                              std::span<const uint8_t> rootfs_image);

} // namespace kos::vmm
