// The VM's private /tmp: a fresh host directory served as a scratch volume
// (abi/kos/file.h kVolumeScratch), removed with everything in it when the
// process that made it ends, however it ends.
#pragma once

#include <cstdint>
#include <string>

#include "kos/support/result.h"

namespace kos::cli {

// The size the scratch volume may hold (as the process backend's /tmp tmpfs).
inline constexpr uint64_t kScratchQuotaBytes = 64ull << 20;

// Makes a 0700 directory under $XDG_RUNTIME_DIR/kos/scratch (a tmpfs on
// most systems), else under /tmp, and starts a small reaper process that
// waits for this process to end (a pipe's last writer goes away) and then
// removes the directory and its contents without following symlinks.
Result<std::string> make_scratch_dir();

} // namespace kos::cli
