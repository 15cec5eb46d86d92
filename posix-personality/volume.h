// Volumes: host directories attached with `kos run -v`, reached through
// the kernel and the VMM's file service (abi/kos/file.h). The rootfs
// resolver (fs.cc) hands over every path that lands in a volume as an
// absolute, normalized guest path; everything below the mount point is
// resolved by the host (symlinks there must stay inside the volume).
// Descriptors of volume files hold a kernel handle (FdKind::VolFile,
// VolDir), shared with dup and fork like pipes; the file position lives in
// the VMM, so processes that share a descriptor share it too.
#pragma once

#include "fs.h"

namespace kos::rt {

// Reads the boot image's volume table (checked by the kernel at boot).
void volumes_init();
// The volume holding the absolute normalized path path[0, len), or -1.
int volume_at(const char* path, u64 len);

// Calls on an absolute normalized guest path inside a volume.
i64 vol_open(const char* path, int flags, int mode);
i64 vol_stat(const char* path, bool follow, LinuxStat* st);
i64 vol_readlink(const char* path, u64 buf, u64 len);
i64 vol_mkdir(const char* path, u32 mode);
i64 vol_unlink(const char* path, bool dir);
i64 vol_rename(const char* from, const char* to);
i64 vol_link(const char* from, const char* to);
i64 vol_symlink(const char* target, const char* path);
i64 vol_chmod(const char* path, u32 mode, bool follow);
// times: two Linux timespecs (nullptr: now, now).
i64 vol_set_times(const char* path, const Fd* f, u64 times, bool follow);

// Calls on a volume descriptor.
i64 vol_read(Fd& f, u64 buf, u64 len, i64 offset);  // offset < 0: at the position
i64 vol_write(Fd& f, u64 buf, u64 len, i64 offset);
i64 vol_seek(Fd& f, i64 offset, int whence);
i64 vol_fstat(Fd& f, LinuxStat* st);
i64 vol_getdents(Fd& f, u64 buf, u64 len);
i64 vol_truncate(Fd& f, i64 length);
i64 vol_fchmod(Fd& f, u32 mode);
i64 vol_sync(Fd& f);
// The guest path a volume directory descriptor was opened with.
const char* vol_dir_path(const Fd& f);
// dup/fork/close of a volume descriptor's directory path.
void vol_ref(const Fd& f);
void vol_release(const Fd& f);

} // namespace kos::rt
