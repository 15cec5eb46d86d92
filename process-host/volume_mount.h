// Attaching volumes (`kos run -v`, docs/process-backend.md "Volumes") to
// the sandbox's root without following any path an untrusted party can
// change (ATTACKS.md 26).
//
// The parent opens each volume's host directory with
// pkg::open_volume_host_dir before any sandbox setup. The kernel clones
// only mounts of the caller's own mount namespace (open_tree on a
// descriptor of another one fails with EINVAL), so the sandbox process, in
// its new mount namespace, opens the directory again the same way and uses
// it only if it is the parent's directory (same device and inode): a path
// swapped in between fails the run instead of reaching another directory.
// It then clones it (open_tree OPEN_TREE_CLONE), sets the mount's
// attributes on the detached clone, and moves it onto a mount point opened
// beneath the staging root with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, so a
// symlink in the bundle's rootfs can never redirect the mount.
#pragma once

#include <sys/types.h>

#include <string>

#include "kos/support/file.h"
#include "kos/support/result.h"
#include "pkg/volumes.h"

namespace kos::proc {

// ---- parent side ----

// A user namespace mapping the host ids `owner_uid`/`owner_gid` to
// `uid`/`gid` (one each), for an ID-mapped volume mount: files the owner
// owns then belong to `uid` on that mount, and files created through it
// belong to the owner on the host. Needs CAP_SETUID/CAP_SETGID (kos as root).
Result<UniqueFd> make_idmap_userns(uid_t owner_uid, gid_t owner_gid, uid_t uid, gid_t gid);

// ---- sandbox side (after clone, in the new mount namespace) ----

// Opens `v`'s host directory again in this mount namespace
// (pkg::open_volume_host_dir) and checks that it is the directory
// `parent_fd` holds (same device and inode). EXDEV when it is another.
Result<UniqueFd> reopen_volume_dir(const pkg::VolumeMount& v, int parent_fd);

// A detached clone of the mount at `dir_fd` (open_tree OPEN_TREE_CLONE,
// not recursive: mounts beneath the host directory are not brought in),
// nosuid, nodev, noexec, read-only unless `writable`; ID-mapped through
// `userns_fd` when it is >= 0. A file system that cannot be ID-mapped
// (EINVAL) is mounted without the mapping, and `*idmapped` says so.
Result<UniqueFd> clone_volume(int dir_fd, bool writable, int userns_fd, bool* idmapped);

// Creates the directories of `guest` (absolute, normalized) beneath
// `root_fd` that do not exist (mode 0755), each opened with RESOLVE_BENEATH
// | RESOLVE_NO_SYMLINKS from the previous one.
Result<void> make_mount_point(int root_fd, const std::string& guest);

// The directory `guest` beneath `root_fd`, opened O_PATH with
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS: a component that is a symlink
// fails with ELOOP, one that leaves root_fd with EXDEV.
Result<UniqueFd> open_mount_point(int root_fd, const std::string& guest);

// Attaches the detached `tree_fd` (clone_volume) on the directory
// `target_fd` (open_mount_point); `tree_fd` then refers to the mounted
// volume's root.
Result<void> attach_volume(int tree_fd, int target_fd);

// All of the above for one volume: the mount point (created when
// `create_mount_point`), the clone (writable only when `writable`: the
// volume is rw and the policy lets the program write it), the move.
// Returns the mounted tree's descriptor (for the volume's Landlock rule).
Result<UniqueFd> mount_volume(const pkg::VolumeMount& v, bool writable, int dir_fd, int root_fd,
                              bool create_mount_point, int userns_fd, bool* idmapped);

} // namespace kos::proc
