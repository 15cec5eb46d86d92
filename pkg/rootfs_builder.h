// Builds a rootfs image (abi/kos/rootfs_image.h) from a host directory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kos/support/result.h"

namespace kos::pkg {

struct RootfsBuildOptions {
    // Returns the label of a path inside the rootfs ("/bin/sh"). May fail,
    // e.g. when no label rule matches (an unlabeled file is an error).
    std::function<Result<std::string>(const std::string& path, uint32_t mode)> labeler;
    uint64_t max_entries = 1'000'000;
    uint64_t max_total_bytes = 16ull << 30;
    // Called after each file is read (files so far, bytes so far), e.g. to
    // print progress on a terminal. May be empty.
    std::function<void(uint64_t files, uint64_t bytes)> progress = {};
};

struct RootfsBuildReport {
    std::vector<std::string> skipped; // special files left out, one line each
};

// Walks `dir` without following symlinks (every open is O_NOFOLLOW relative
// to its parent descriptor), so a symlink in the tree can never make the
// builder read outside `dir`.
Result<std::vector<uint8_t>> build_rootfs_image(const std::string& dir,
                                                const RootfsBuildOptions& options,
                                                RootfsBuildReport* report = nullptr);

} // namespace kos::pkg
