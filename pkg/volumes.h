// Volumes: host directories a run attaches (`kos run -v`), for both
// backends. The process backend bind-mounts them into the sandbox; the VM
// backend serves them through the VMM's file service (abi/kos/file.h).
//
// Each volume carries a label, as every object does: the bundle's policy
// decides what the program may do with it (`security DOMAIN -> LABEL
// file.read` / `file.write`); `ro` makes it read-only whatever the policy
// says.
#pragma once

#include <string>
#include <vector>

#include "kos/support/file.h"
#include "kos/support/result.h"
#include "pkg/bundle_config.h"

namespace kos::pkg {

inline constexpr size_t kMaxVolumes = 16;       // as abi::file::kMaxVolumes
inline constexpr size_t kMaxVolumeGuestPath = 255;

struct VolumeMount {
    std::string host;  // absolute host directory, symlinks resolved when the run started
    std::string guest; // absolute, normalized path inside the bundle, not "/"
    bool writable = false;
    std::string label;
    std::string name; // the [volumes.NAME] it attaches, or ""
};

// Resolves the `-v` values of one run against the bundle's [volumes]:
//
//   NAME=HOST_DIR                   attaches [volumes.NAME]: its path, access, label
//   HOST_DIR:GUEST_PATH[:OPTIONS]   OPTIONS, comma-separated: ro, rw, label=LABEL
//
// A GUEST_PATH that a [volumes.NAME] declares takes that volume's label
// and may not be more writable than it; any other needs label=LABEL (there
// is no default label). Without ro/rw a volume is read-write unless its
// declaration says "ro". HOST_DIR must be an existing directory; it is made
// absolute with its symlinks resolved now, so the backends can open it
// later without following any symlink (a component swapped for a symlink
// in between then fails the run: ATTACKS.md 26). GUEST_PATHs may not be
// under /proc or /dev, nor nest in one another. Errors name the value and
// what to write instead.
Result<std::vector<VolumeMount>> resolve_volumes(const BundleConfig& config, const std::vector<std::string>& args);

// Opens the volume's host directory (O_PATH | O_DIRECTORY) without
// following any symlink on the way (openat2 RESOLVE_NO_SYMLINKS | NO_MAGICLINKS
// on the path resolve_volumes canonicalized): a component swapped for a
// symlink since then fails with ELOOP, naming the volume (ATTACKS.md 26).
// Both backends mount or serve the volume through this descriptor only.
Result<UniqueFd> open_volume_host_dir(const VolumeMount& v);

// "HOST -> GUEST (rw, label L)", for messages.
std::string describe(const VolumeMount& v);

// What `kos run` says, under either backend, when volumes are attached and
// the policy declares no `vfs_label` (the VFS server's): every path in them
// fails, and which rules would change that for `domain`.
std::string no_vfs_server_note(const VolumeMount& first, size_t count, const std::string& domain,
                               const std::string& vfs_label);

} // namespace kos::pkg
