// The file system's requests as the policy sees them: vfs.kidl's File
// methods that name a path, from a program's label to the VFS server's
// label (`vfs_t`). One place builds them for every enforcement point that
// judges paths in volumes: the guest kernel sees them as IPC messages of
// the personality runtime, the process backend's supervisor builds them
// here from what it copied out of the program, so both give the same
// verdict for the same bundle and policy.
// Freestanding: no OS calls, no allocation.
#pragma once

#include "kos/security/engine.h"

namespace kos::security {

// vfs.kidl: interface File 0x100.
inline constexpr u32 kVfsInterface = 0x100;
inline constexpr u32 kVfsOpen = 1;
inline constexpr u32 kVfsStat = 5;
inline constexpr u32 kVfsUnlink = 6;
inline constexpr u32 kVfsMkdir = 7;
inline constexpr u32 kVfsRename = 8;
inline constexpr u32 kVfsReadlink = 10;
inline constexpr u32 kVfsSymlink = 11;
inline constexpr u32 kVfsLink = 12;
inline constexpr u32 kVfsChmod = 13;
inline constexpr u32 kVfsSetTimes = 14;
inline constexpr u32 kVfsRmdir = 15;
inline constexpr const char kVfsLabel[] = "vfs_t";
// set_times: atime and mtime in ns since the epoch, or one of these.
inline constexpr i64 kVfsTimeNow = -1;
inline constexpr i64 kVfsTimeOmit = -2;
// open: O_CLOEXEC (0x80000) is the program's own business and O_LARGEFILE
// (0x8000) means nothing on x86-64 (musl sets it, glibc does not): neither
// is sent, so one rule on flags reads the same for every program.
inline constexpr u32 kVfsOpenCloexec = 0x80000;
inline constexpr u32 kVfsOpenLargefile = 0x8000;

// Field storage for one request; strings must outlive the Request.
struct VfsRequest {
    FieldValue fields[4];
    Request request;
};

// A request of vfs.File `method` with its first `count` fields filled.
inline void make_vfs_request(VfsRequest& r, u32 subject, u32 vfs, u32 method, u32 count,
                             u64 now_ns) {
    r.request = Request{Kind::Request, subject, vfs, kVfsInterface, method, r.fields, count, now_ns};
}

inline FieldValue vfs_string(const char* s, u32 len) {
    return FieldValue{0, reinterpret_cast<const u8*>(s), len};
}

// open 1 (path, flags, mode): flags without O_CLOEXEC and O_LARGEFILE,
// mode & 07777.
inline void make_vfs_open(VfsRequest& r, u32 subject, u32 vfs, const char* path, u32 len, u32 flags,
                          u32 mode, u64 now_ns) {
    r.fields[0] = vfs_string(path, len);
    r.fields[1] = FieldValue{flags & ~(kVfsOpenCloexec | kVfsOpenLargefile), nullptr, 0};
    r.fields[2] = FieldValue{mode & 07777u, nullptr, 0};
    make_vfs_request(r, subject, vfs, kVfsOpen, 3, now_ns);
}

// stat 5 (path, follow): follow false describes a symbolic link itself.
inline void make_vfs_stat(VfsRequest& r, u32 subject, u32 vfs, const char* path, u32 len,
                          bool follow, u64 now_ns) {
    r.fields[0] = vfs_string(path, len);
    r.fields[1] = FieldValue{follow ? 1u : 0u, nullptr, 0};
    make_vfs_request(r, subject, vfs, kVfsStat, 2, now_ns);
}

// unlink 6, readlink 10, rmdir 15 (path).
inline void make_vfs_path(VfsRequest& r, u32 subject, u32 vfs, u32 method, const char* path,
                          u32 len, u64 now_ns) {
    r.fields[0] = vfs_string(path, len);
    make_vfs_request(r, subject, vfs, method, 1, now_ns);
}
inline void make_vfs_unlink(VfsRequest& r, u32 subject, u32 vfs, const char* path, u32 len,
                            u64 now_ns) {
    make_vfs_path(r, subject, vfs, kVfsUnlink, path, len, now_ns);
}
inline void make_vfs_rmdir(VfsRequest& r, u32 subject, u32 vfs, const char* path, u32 len,
                           u64 now_ns) {
    make_vfs_path(r, subject, vfs, kVfsRmdir, path, len, now_ns);
}
inline void make_vfs_readlink(VfsRequest& r, u32 subject, u32 vfs, const char* path, u32 len,
                              u64 now_ns) {
    make_vfs_path(r, subject, vfs, kVfsReadlink, path, len, now_ns);
}

// mkdir 7 (path, mode): mode & 07777.
inline void make_vfs_mkdir(VfsRequest& r, u32 subject, u32 vfs, const char* path, u32 len, u32 mode,
                           u64 now_ns) {
    r.fields[0] = vfs_string(path, len);
    r.fields[1] = FieldValue{mode & 07777u, nullptr, 0};
    make_vfs_request(r, subject, vfs, kVfsMkdir, 2, now_ns);
}

// rename 8 (old_path, new_path), link 12 (old_path, new_path).
inline void make_vfs_two_paths(VfsRequest& r, u32 subject, u32 vfs, u32 method,
                               const char* old_path, u32 old_len, const char* new_path, u32 new_len,
                               u64 now_ns) {
    r.fields[0] = vfs_string(old_path, old_len);
    r.fields[1] = vfs_string(new_path, new_len);
    make_vfs_request(r, subject, vfs, method, 2, now_ns);
}
inline void make_vfs_rename(VfsRequest& r, u32 subject, u32 vfs, const char* old_path, u32 old_len,
                            const char* new_path, u32 new_len, u64 now_ns) {
    make_vfs_two_paths(r, subject, vfs, kVfsRename, old_path, old_len, new_path, new_len, now_ns);
}
inline void make_vfs_link(VfsRequest& r, u32 subject, u32 vfs, const char* old_path, u32 old_len,
                          const char* new_path, u32 new_len, u64 now_ns) {
    make_vfs_two_paths(r, subject, vfs, kVfsLink, old_path, old_len, new_path, new_len, now_ns);
}

// symlink 11 (path, target): a new link at path; target is any text.
inline void make_vfs_symlink(VfsRequest& r, u32 subject, u32 vfs, const char* path, u32 len,
                             const char* target, u32 target_len, u64 now_ns) {
    r.fields[0] = vfs_string(path, len);
    r.fields[1] = vfs_string(target, target_len);
    make_vfs_request(r, subject, vfs, kVfsSymlink, 2, now_ns);
}

// chmod 13 (path, mode, follow): mode & 07777.
inline void make_vfs_chmod(VfsRequest& r, u32 subject, u32 vfs, const char* path, u32 len, u32 mode,
                           bool follow, u64 now_ns) {
    r.fields[0] = vfs_string(path, len);
    r.fields[1] = FieldValue{mode & 07777u, nullptr, 0};
    r.fields[2] = FieldValue{follow ? 1u : 0u, nullptr, 0};
    make_vfs_request(r, subject, vfs, kVfsChmod, 3, now_ns);
}

// set_times 14 (path, atime, mtime, follow): ns since the epoch, or
// kVfsTimeNow / kVfsTimeOmit.
inline void make_vfs_set_times(VfsRequest& r, u32 subject, u32 vfs, const char* path, u32 len,
                               i64 atime, i64 mtime, bool follow, u64 now_ns) {
    r.fields[0] = vfs_string(path, len);
    r.fields[1] = FieldValue{static_cast<u64>(atime), nullptr, 0};
    r.fields[2] = FieldValue{static_cast<u64>(mtime), nullptr, 0};
    r.fields[3] = FieldValue{follow ? 1u : 0u, nullptr, 0};
    make_vfs_request(r, subject, vfs, kVfsSetTimes, 4, now_ns);
}

} // namespace kos::security
