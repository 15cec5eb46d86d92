// Files of the personality: the bundle's read-only rootfs (read in place from
// the mapped rootfs image) and the console. Descriptors live in a per-process
// table here; with the VFS server (issue 5) they become handles to it.
#pragma once

#include "runtime.h"

namespace kos::rt {

// Device: the standard character devices every program expects
// (/dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom, /dev/tty),
// answered here: they carry no authority.
enum class FdKind : u8 { Free, Console, File, Dir, Device, Pipe, Epoll, EventFd, Memory, Socket, UnixPair, VolFile, VolDir };
enum class Device : u8 { Null, Zero, Full, Random };

struct Fd {
    FdKind kind = FdKind::Free;
    bool cloexec = false;
    u32 flags = 0;   // open flags (O_ACCMODE etc.)
    u32 entry = 0;   // rootfs entry index (File, Dir); VolDir: its path's slot + 1
    int stream = 0;  // Console: 1 stdout, 2 stderr (reads come from stdin); Socket: SOCK_STREAM or SOCK_DGRAM
    Device device = Device::Null;
    u32 handle = 0;  // Pipe, Socket, VolFile, VolDir: the kernel handle; Epoll, EventFd, Memory: its slot;
                     // UnixPair: the read end of the pipe from the peer
    u32 handle2 = 0; // UnixPair: the write end of the pipe to the peer (0 after shutdown)
    u32 recv_timeout_ms = 0; // Socket: SO_RCVTIMEO (0: none)
    u32 send_timeout_ms = 0; // Socket: SO_SNDTIMEO
    u64 offset = 0;  // File: byte offset; Dir: next child index
};

// struct stat as the x86-64 Linux ABI lays it out.
struct LinuxStat {
    u64 st_dev, st_ino, st_nlink;
    u32 st_mode, st_uid, st_gid, pad0;
    u64 st_rdev;
    i64 st_size, st_blksize, st_blocks;
    u64 st_atime_sec, st_atime_nsec, st_mtime_sec, st_mtime_nsec, st_ctime_sec, st_ctime_nsec;
    i64 reserved[3];
};
static_assert(sizeof(LinuxStat) == 144);

inline constexpr int kMaxFds = 1024;
extern Fd g_fds[kMaxFds];
inline constexpr u32 kONonblock = 0x800;

// The descriptor `fd` if open; a free descriptor >= min (or -EMFILE).
Fd* fd_get(int fd);
int fd_alloc(int min = 0);
// A new descriptor refers to what `f` holds (dup, fork), or stops to.
void fd_ref(const Fd& f);
void fd_release(Fd& f);

i64 sys_read(int fd, u64 buf, u64 len);
i64 sys_pread(int fd, u64 buf, u64 len, i64 off);
i64 sys_write(int fd, u64 buf, u64 len);
i64 sys_readv(int fd, u64 iov, int cnt);
i64 sys_writev(int fd, u64 iov, int cnt);
i64 sys_openat(int dirfd, const char* path, int flags, int mode);
i64 sys_close(int fd);
i64 sys_lseek(int fd, i64 off, int whence);
i64 sys_fstat(int fd, u64 statbuf);
i64 sys_fstatat(int dirfd, const char* path, u64 statbuf, int flags);
i64 sys_getdents64(int fd, u64 buf, u64 len);
i64 sys_readlinkat(int dirfd, const char* path, u64 buf, u64 len);
i64 sys_faccessat(int dirfd, const char* path, int mode);
i64 sys_ioctl(int fd, u64 req, u64 arg);
i64 sys_dup3(int oldfd, int newfd, int flags, bool dup2);
i64 sys_dup(int oldfd);
i64 sys_fcntl(int fd, int cmd, u64 arg);
i64 sys_chdir(const char* path);
i64 sys_getcwd(u64 buf, u64 len);
// poll/select/epoll over this process's descriptors, waiting until one is
// ready or `deadline_ns` (monotonic; 0: do not wait, ~0: forever) by
// yielding the CPU between checks. Pipes report their real state (the
// kernel's pipe_poll); files, devices and the console are always ready
// (a console read waits for the host's input or its end).
inline constexpr u64 kNoDeadline = ~0ull;
i64 sys_poll(u64 fds, u64 nfds, u64 deadline_ns);
i64 sys_select(int nfds, u64 readfds, u64 writefds, u64 exceptfds, u64 deadline_ns);
// epoll (level-triggered; EPOLLET and EPOLLONESHOT are taken as level) and
// eventfd, both local to this process (a forked child gets a copy).
i64 sys_epoll_create(int flags);
i64 sys_epoll_ctl(int epfd, int op, int fd, u64 event);
i64 sys_epoll_wait(int epfd, u64 events, int max, u64 deadline_ns);
i64 sys_eventfd(u64 initval, int flags);
// pipe/pipe2: both ends as descriptors (flags: O_CLOEXEC).
i64 sys_pipe2(u64 fds, int flags);
// socketpair(AF_UNIX, SOCK_STREAM): two descriptors joined by two pipes,
// one each way (flags: O_CLOEXEC); shutdown(SHUT_WR) of one end.
i64 unix_pair(u64 fds, int flags);
i64 unix_pair_shutdown_write(Fd& f);
// /proc/self (and /proc/<own pid>): exe, cmdline, status, fd/N. What exec
// records for them: the program's path and its arguments.
void proc_set_program(const char* path, const char* const* argv);
// execve: closes the descriptors marked close-on-exec.
void fs_close_on_exec();
// statx over the same data as fstatat.
i64 sys_statx(int dirfd, const char* path, int flags, u32 mask, u64 buf);
// sendfile: reads from `in` (at *offset if given) and writes to `out`.
i64 sys_sendfile(int out, int in, u64 offset, u64 count);
// Calls that change files: in a volume they go to the VMM's file service
// (volume.h); on the rootfs they get rootfs_change_path's answers.
i64 sys_pwrite(int fd, u64 buf, u64 len, i64 off);
i64 sys_mkdirat(int dirfd, const char* path, u32 mode);
i64 sys_unlinkat(int dirfd, const char* path, int flags);
i64 sys_symlinkat(const char* target, int dirfd, const char* path);
i64 sys_renameat(int olddir, const char* oldpath, int newdir, const char* newpath, u32 flags);
i64 sys_linkat(int olddir, const char* oldpath, int newdir, const char* newpath, int flags);
i64 sys_fchmodat(int dirfd, const char* path, u32 mode, bool follow);
i64 sys_fchownat(int dirfd, const char* path, bool follow);
// utimensat; path nullptr: futimens of dirfd.
i64 sys_utimensat(int dirfd, const char* path, u64 times, int flags);
i64 sys_truncate(const char* path, i64 length);
i64 sys_ftruncate(int fd, i64 length);
i64 sys_fchmod(int fd, u32 mode);
i64 sys_fchown(int fd);
i64 sys_fsync(int fd);
// Whether volume `v` (volume.h's index) may be changed.
bool volume_writable(int v);
// Calls that change files, on the read-only rootfs: EEXIST for a name that
// exists when one is to be created, ENOENT for a missing one, else EROFS.
// `create`: the call makes `path` (mkdir, symlink, link); `follow`: the
// last component's symlink is followed.
i64 rootfs_change_path(int dirfd, const char* path, bool create, bool follow);
// The same for a descriptor (fchmod, fchown, ftruncate): EBADF or EROFS
// (EINVAL for ftruncate of what is not a file).
i64 rootfs_change_fd(int fd, bool truncate);
// Whether fd is open (fsync, flock, fadvise: nothing to do on this rootfs).
i64 fd_check(int fd);

// For mmap of files: the rootfs entry behind fd, or -errno.
i64 fd_file_entry(int fd);

} // namespace kos::rt
