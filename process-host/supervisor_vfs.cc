// Paths in volumes (docs/process-backend.md, "Paths in volumes"): with
// volumes under a policy, the seccomp filter notifies every call that names
// a path. The supervisor copies the path once, resolves it to the guest path
// the VFS server would be asked about (joined with the program's working
// directory or the directory descriptor's path, both as the sandbox sees
// them, and normalized lexically), and:
// - outside every volume: the call continues in the kernel. Landlock grants
//   nothing beneath a volume, so a path a racing thread rewrites into a
//   volume after this check is refused there. Except: metadata calls,
//   resolved and performed here, and read-only opens of a directory above
//   a mount point that the program may list (Landlock's READ_DIR there
//   would reach into the volume), opened here from what the path resolves
//   to and added to the program;
// - inside one: the policy judges `request DOMAIN -> vfs_t vfs.File.<m>`,
//   then the volume's label (`security DOMAIN -> LABEL file.read/write`, as
//   the guest kernel checks it; a volume attached `ro` gives EROFS to
//   writes). Denied: EACCES and the audit line. Allowed: the supervisor
//   performs the call itself, on its own copy of the path, beneath the
//   volume's mounted tree (openat2 RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS:
//   a symlink leading out of the volume fails, EACCES, as the VM's file
//   service answers), with the program's file system ids, and returns the
//   result: an opened file is added to the program
//   (SECCOMP_IOCTL_NOTIF_ADDFD), a stat buffer or a link's target is
//   written into its memory.
#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>
#include <utime.h>

#include <climits>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>
#include <set>

#include "supervisor.h"

namespace kos::proc {
namespace {

constexpr size_t kMaxGuestPath = 1024; // vfs.kidl: path: string<1024>
constexpr uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;

// What the program asked, decoded from its registers and memory.
enum class Call {
    Open,
    Truncate,
    Stat,
    Statx,
    Access,
    Mkdir,
    Unlink,
    Rmdir,
    Rename,
    Link,
    Symlink,
    Readlink,
    Chmod,
    Times,
    Mknod
};

struct PathCall {
    Call call = Call::Open;
    const char* name = "?";
    int dirfd = AT_FDCWD;
    uint64_t path = 0;
    int dirfd2 = AT_FDCWD; // rename, link: the new path
    uint64_t path2 = 0;
    uint64_t target = 0; // symlink's target text
    uint64_t flags = 0;  // open flags, AT_* flags, renameat2 flags
    uint64_t mode = 0;
    uint64_t buf = 0;     // stat, statx, readlink: where the answer goes
    uint64_t size = 0;    // readlink: buffer size; truncate: length; statx: mask
    uint64_t resolve = 0; // openat2
    bool follow = true;
    enum class TimeArg { None, Utimbuf, Timeval, Timespec } times = TimeArg::None;
};

bool decode(long nr, const uint64_t* a, PathCall& c) {
    auto at = [&](Call call, const char* name, int dirfd, uint64_t path) {
        c.call = call;
        c.name = name;
        c.dirfd = dirfd;
        c.path = path;
    };
    int fd0 = static_cast<int>(a[0]);
    switch (nr) {
    case SYS_open:
        at(Call::Open, "open", AT_FDCWD, a[0]), c.flags = a[1], c.mode = a[2];
        return true;
    case SYS_openat:
        at(Call::Open, "openat", fd0, a[1]), c.flags = a[2], c.mode = a[3];
        return true;
    case SYS_creat:
        at(Call::Open, "creat", AT_FDCWD, a[0]), c.flags = O_CREAT | O_WRONLY | O_TRUNC,
                                                 c.mode = a[1];
        return true;
    case SYS_openat2:
        at(Call::Open, "openat2", fd0, a[1]), c.buf = a[2], c.size = a[3];
        return true;
    case SYS_truncate:
        at(Call::Truncate, "truncate", AT_FDCWD, a[0]), c.size = a[1];
        return true;
    case SYS_stat:
        at(Call::Stat, "stat", AT_FDCWD, a[0]), c.buf = a[1];
        return true;
    case SYS_lstat:
        at(Call::Stat, "lstat", AT_FDCWD, a[0]), c.buf = a[1], c.follow = false;
        return true;
    case SYS_newfstatat:
        at(Call::Stat, "newfstatat", fd0, a[1]), c.buf = a[2], c.flags = a[3];
        c.follow = !(a[3] & AT_SYMLINK_NOFOLLOW);
        return true;
    case SYS_statx:
        at(Call::Statx, "statx", fd0, a[1]), c.flags = a[2], c.size = a[3], c.buf = a[4];
        c.follow = !(a[2] & AT_SYMLINK_NOFOLLOW);
        return true;
    case SYS_access:
        at(Call::Access, "access", AT_FDCWD, a[0]), c.mode = a[1];
        return true;
    case SYS_faccessat:
        at(Call::Access, "faccessat", fd0, a[1]), c.mode = a[2];
        return true;
    case SYS_faccessat2:
        at(Call::Access, "faccessat2", fd0, a[1]), c.mode = a[2], c.flags = a[3];
        c.follow = !(a[3] & AT_SYMLINK_NOFOLLOW);
        return true;
    case SYS_mkdir:
        at(Call::Mkdir, "mkdir", AT_FDCWD, a[0]), c.mode = a[1];
        return true;
    case SYS_mkdirat:
        at(Call::Mkdir, "mkdirat", fd0, a[1]), c.mode = a[2];
        return true;
    case SYS_unlink:
        at(Call::Unlink, "unlink", AT_FDCWD, a[0]);
        return true;
    case SYS_unlinkat:
        at(a[2] & AT_REMOVEDIR ? Call::Rmdir : Call::Unlink, "unlinkat", fd0, a[1]), c.flags = a[2];
        return true;
    case SYS_rmdir:
        at(Call::Rmdir, "rmdir", AT_FDCWD, a[0]);
        return true;
    case SYS_rename:
        at(Call::Rename, "rename", AT_FDCWD, a[0]), c.path2 = a[1];
        return true;
    case SYS_renameat:
        at(Call::Rename, "renameat", fd0, a[1]), c.dirfd2 = static_cast<int>(a[2]), c.path2 = a[3];
        return true;
    case SYS_renameat2:
        at(Call::Rename, "renameat2", fd0, a[1]), c.dirfd2 = static_cast<int>(a[2]), c.path2 = a[3],
                                                  c.flags = a[4];
        return true;
    case SYS_link:
        at(Call::Link, "link", AT_FDCWD, a[0]), c.path2 = a[1], c.follow = false;
        return true;
    case SYS_linkat:
        at(Call::Link, "linkat", fd0, a[1]), c.dirfd2 = static_cast<int>(a[2]), c.path2 = a[3],
                                             c.flags = a[4];
        c.follow = a[4] & AT_SYMLINK_FOLLOW;
        return true;
    case SYS_symlink:
        at(Call::Symlink, "symlink", AT_FDCWD, a[1]), c.target = a[0];
        return true;
    case SYS_symlinkat:
        at(Call::Symlink, "symlinkat", static_cast<int>(a[1]), a[2]), c.target = a[0];
        return true;
    case SYS_readlink:
        at(Call::Readlink, "readlink", AT_FDCWD, a[0]), c.buf = a[1], c.size = a[2];
        return true;
    case SYS_readlinkat:
        at(Call::Readlink, "readlinkat", fd0, a[1]), c.buf = a[2], c.size = a[3];
        return true;
    case SYS_chmod:
        at(Call::Chmod, "chmod", AT_FDCWD, a[0]), c.mode = a[1];
        return true;
    case SYS_fchmodat:
        at(Call::Chmod, "fchmodat", fd0, a[1]), c.mode = a[2];
        return true;
#ifdef SYS_fchmodat2
    case SYS_fchmodat2:
        at(Call::Chmod, "fchmodat2", fd0, a[1]), c.mode = a[2], c.flags = a[3];
        c.follow = !(a[3] & AT_SYMLINK_NOFOLLOW);
        return true;
#endif
    case SYS_utime:
        at(Call::Times, "utime", AT_FDCWD, a[0]), c.buf = a[1],
                                                  c.times = PathCall::TimeArg::Utimbuf;
        return true;
    case SYS_utimes:
        at(Call::Times, "utimes", AT_FDCWD, a[0]), c.buf = a[1],
                                                   c.times = PathCall::TimeArg::Timeval;
        return true;
    case SYS_futimesat:
        at(Call::Times, "futimesat", fd0, a[1]), c.buf = a[2], c.times = PathCall::TimeArg::Timeval;
        return true;
    case SYS_utimensat:
        at(Call::Times, "utimensat", fd0, a[1]), c.buf = a[2], c.flags = a[3],
                                                 c.times = PathCall::TimeArg::Timespec;
        c.follow = !(a[3] & AT_SYMLINK_NOFOLLOW);
        return true;
    case SYS_mknod:
        at(Call::Mknod, "mknod", AT_FDCWD, a[0]);
        return true;
    case SYS_mknodat:
        at(Call::Mknod, "mknodat", fd0, a[1]);
        return true;
    default:
        return false;
    }
}

bool read_mem(int pid, uint64_t addr, void* buf, size_t len) {
    iovec local{buf, len};
    iovec remote{reinterpret_cast<void*>(addr), len};
    return ::process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len);
}

bool write_mem(int pid, uint64_t addr, const void* buf, size_t len) {
    iovec local{const_cast<void*>(buf), len};
    iovec remote{reinterpret_cast<void*>(addr), len};
    return ::process_vm_writev(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len);
}

// A NUL-terminated string of the program, copied once: 0, or -EFAULT,
// -ENAMETOOLONG (longer than PATH_MAX, as the kernel says).
int copy_string(int pid, uint64_t addr, std::string& out) {
    out.clear();
    char buf[256];
    while (out.size() < 4096) {
        size_t chunk = 256 - (addr % 256); // never across a page it may not own
        iovec local{buf, chunk};
        iovec remote{reinterpret_cast<void*>(addr), chunk};
        ssize_t got = ::process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (got <= 0)
            return -EFAULT;
        size_t n = ::strnlen(buf, static_cast<size_t>(got));
        out.append(buf, n);
        if (n < static_cast<size_t>(got))
            return 0;
        addr += static_cast<uint64_t>(got);
    }
    return -ENAMETOOLONG;
}

// The path of the program's cwd or descriptor, as its sandbox names it
// (the kernel names a path relative to the root of the sandbox's mount
// namespace, which the supervisor does not share). "" when it has none.
std::string proc_link(const std::string& pid, const std::string& what) {
    char buf[4096];
    ssize_t n = ::readlink(("/proc/" + pid + "/" + what).c_str(), buf, sizeof buf);
    if (n <= 0 || static_cast<size_t>(n) >= sizeof buf)
        return "";
    return std::string(buf, static_cast<size_t>(n));
}

// The program's umask, from /proc/PID/status (0022 if unreadable).
mode_t umask_of(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("Umask:", 0) == 0)
            return static_cast<mode_t>(std::strtoul(line.c_str() + 6, nullptr, 8)) & 0777;
    return 022;
}

// The thread's ids in the sandbox's PID namespace (NStgid, NSpid: the
// last of each), for /proc/self as the program sees it. False if gone.
bool sandbox_ids(int pid, std::string* tgid, std::string* tid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    auto last = [](const std::string& l) { return l.substr(l.find_last_of(" \t") + 1); };
    while (std::getline(f, line)) {
        if (line.rfind("NStgid:", 0) == 0)
            *tgid = last(line);
        else if (line.rfind("NSpid:", 0) == 0)
            *tid = last(line);
    }
    return !tgid->empty() && !tid->empty();
}

// The times of utime, utimes, futimesat or utimensat as timespecs (NULL:
// both now). 0, or the errno the kernel would give.
int read_times(int pid, const PathCall& c, struct timespec ts[2]) {
    ts[0] = ts[1] = {0, UTIME_NOW};
    if (!c.buf)
        return 0;
    if (c.times == PathCall::TimeArg::Utimbuf) {
        utimbuf u{};
        if (!read_mem(pid, c.buf, &u, sizeof u))
            return EFAULT;
        ts[0] = {u.actime, 0};
        ts[1] = {u.modtime, 0};
    } else if (c.times == PathCall::TimeArg::Timeval) {
        timeval tv[2]{};
        if (!read_mem(pid, c.buf, tv, sizeof tv))
            return EFAULT;
        for (int i = 0; i < 2; ++i) {
            if (tv[i].tv_usec < 0 || tv[i].tv_usec >= 1000000)
                return EINVAL;
            ts[i] = {tv[i].tv_sec, tv[i].tv_usec * 1000};
        }
    } else if (!read_mem(pid, c.buf, ts, 2 * sizeof ts[0])) {
        return EFAULT;
    }
    return 0;
}

// Resolves `path` as the kernel would for the program, component by
// component from its root and working directory (or `dirfd`), with the
// caller's file system ids: symlinks are read and followed inside the
// sandbox's root, `..` never leaves it, /proc/self and /proc/thread-self
// name the program in its own PID namespace, and /proc's magic links (cwd,
// root, fd/N, exe) lead to what the sandbox's processes hold. Returns an
// O_PATH descriptor of what the path names (the symlink itself when not
// `follow`ing the last one), or -errno: the error the kernel would give.
int walk(const SandboxRoot& sr, int pid, int dirfd, const std::string& path, bool follow,
         std::string* self_link, struct stat* final_st) {
    if (path[0] == '/' && path.rfind("/proc", 0) != 0) {
        // Most absolute paths resolve in one call: openat2 confined to the
        // sandbox's root gives what the kernel gives the program, unless
        // the path passes through /proc/self or a magic link (an error
        // here, so the walk below decides, and says the right error).
        open_how how{};
        how.flags = O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW);
        how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
        long fd = ::syscall(SYS_openat2, sr.fd, path.c_str(), &how, sizeof how);
        if (fd >= 0) {
            if (::fstat(static_cast<int>(fd), final_st) == 0)
                return static_cast<int>(fd);
            ::close(static_cast<int>(fd));
        }
    }
    UniqueFd cur;
    if (path[0] == '/')
        cur = UniqueFd(::fcntl(sr.fd, F_DUPFD_CLOEXEC, 0));
    else
        cur = UniqueFd(::open(("/proc/" + std::to_string(pid) +
                               (dirfd == AT_FDCWD ? "/cwd" : "/fd/" + std::to_string(dirfd)))
                                  .c_str(),
                              O_PATH | O_CLOEXEC));
    if (!cur)
        return dirfd == AT_FDCWD ? -ENOENT : -EBADF;
    struct stat cur_st{};
    if (path[0] == '/') {
        cur_st.st_dev = sr.dev;
        cur_st.st_ino = sr.ino;
        cur_st.st_mode = 0; // fstat'ed if the walk ends there
    } else if (::fstat(cur.get(), &cur_st) != 0) {
        return -errno;
    }
    // Moves to `fd`, whose stat is `st` (or fstat'ed when null).
    auto move_to = [&](int fd, const struct stat* st) {
        cur = UniqueFd(fd);
        if (st)
            cur_st = *st;
        else if (::fstat(fd, &cur_st) != 0)
            return -errno;
        return 0;
    };
    std::vector<std::string> todo; // components left, last first
    auto push = [&](const std::string& text) {
        std::vector<std::string> parts;
        for (size_t i = 0; i <= text.size();) {
            size_t j = text.find('/', i);
            if (j == std::string::npos)
                j = text.size();
            parts.push_back(text.substr(i, j - i));
            i = j + 1;
        }
        for (auto it = parts.rbegin(); it != parts.rend(); ++it)
            todo.push_back(*it);
    };
    push(path);
    bool must_be_dir = path.back() == '/';
    int links = 0;
    std::string tgid, tid;
    while (!todo.empty()) {
        std::string c = todo.back();
        todo.pop_back();
        bool last = true;
        for (const std::string& t : todo)
            if (!t.empty() && t != ".")
                last = false;
        if (c.empty() || c == ".")
            continue;
        if (c == "..") {
            if (cur_st.st_dev == sr.dev && cur_st.st_ino == sr.ino)
                continue; // the sandbox's root is its own parent
            int up = ::openat(cur.get(), "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (up < 0)
                return -errno;
            if (int e = move_to(up, nullptr); e < 0)
                return e;
            continue;
        }
        bool in_proc = cur_st.st_dev == sr.proc_dev;
        if (in_proc && cur_st.st_ino == 1 && (c == "self" || c == "thread-self")) {
            // /proc/self is the reader's own PID; the supervisor is not in the
            // sandbox's PID namespace, so it names the program itself.
            if (tgid.empty() && !sandbox_ids(pid, &tgid, &tid))
                return -ENOENT;
            std::string target = c == "self" ? tgid : tgid + "/task/" + tid;
            if (last && !follow) {
                if (self_link)
                    *self_link = target;
                int fd = ::openat(cur.get(), c.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0 || ::fstat(fd, final_st) != 0)
                    return fd < 0 ? -errno : (::close(fd), -EIO);
                return fd;
            }
            push(target);
            continue;
        }
        int fd = ::openat(cur.get(), c.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        UniqueFd next(fd);
        struct stat st{};
        if (::fstat(fd, &st) != 0)
            return -errno;
        if (S_ISLNK(st.st_mode) && !(last && !follow && !must_be_dir)) {
            if (++links > 40)
                return -ELOOP;
            char buf[4096];
            ssize_t n = ::readlinkat(fd, "", buf, sizeof buf);
            std::string text = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
            if (in_proc) {
                // Relative ones (mounts -> self/mounts) are read as text;
                // magic links (cwd, root, fd/N, exe) lead to their object,
                // which the kernel finds for the supervisor too.
                if (n > 0 && text[0] != '/' && text.find(':') == std::string::npos) {
                    push(text);
                    continue;
                }
                int obj = ::openat(cur.get(), c.c_str(), O_PATH | O_CLOEXEC);
                if (obj < 0)
                    return -errno;
                if (int e = move_to(obj, nullptr); e < 0)
                    return e;
                continue;
            }
            if (n <= 0)
                return n == 0 ? -ENOENT : -errno;
            if (text[0] == '/') {
                cur = UniqueFd(::fcntl(sr.fd, F_DUPFD_CLOEXEC, 0));
                cur_st.st_dev = sr.dev;
                cur_st.st_ino = sr.ino;
            }
            push(text);
            continue;
        }
        if (!last && !S_ISDIR(st.st_mode))
            return -ENOTDIR;
        move_to(next.release(), &st);
    }
    if (cur_st.st_mode == 0 && ::fstat(cur.get(), &cur_st) != 0) // the root, reached by a jump
        return -errno;
    if (must_be_dir && !S_ISDIR(cur_st.st_mode))
        return -ENOTDIR;
    *final_st = cur_st;
    return cur.release();
}

uint64_t now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// openat2 beneath a volume's root: -errno on failure; a symlink or ".."
// leading out of the volume (EXDEV) is refused as the VM's file service
// refuses it, with EACCES.
int open_beneath(int dir, const std::string& rel, uint64_t flags, uint64_t mode,
                 uint64_t resolve = 0) {
    open_how how{};
    how.flags = flags | O_CLOEXEC;
    how.mode = mode;
    how.resolve = kResolve | resolve;
    long fd = ::syscall(SYS_openat2, dir, rel.empty() ? "." : rel.c_str(), &how, sizeof how);
    if (fd < 0)
        return errno == EXDEV ? -EACCES : -errno;
    return static_cast<int>(fd);
}

// `rel`'s parent directory (opened beneath `dir`) and last component.
int open_parent(int dir, const std::string& rel, std::string* name) {
    size_t slash = rel.rfind('/');
    *name = slash == std::string::npos ? rel : rel.substr(slash + 1);
    return open_beneath(dir, slash == std::string::npos ? "" : rel.substr(0, slash),
                        O_PATH | O_DIRECTORY, 0);
}

std::string self_fd(int fd) {
    return "/proc/self/fd/" + std::to_string(fd);
}

// Set while the supervisor acts for the program: its file system ids
// (kos as root) and no umask of the supervisor's own.
class ActAs {
  public:
    ActAs(const VolumeIdentity& id, bool creating) : m_id(id), m_creating(creating) {
        if (m_id.switch_fs_ids) {
            ::setfsgid(m_id.host_gid);
            ::setfsuid(m_id.host_uid);
        }
        if (m_creating)
            m_old_umask = ::umask(0);
    }
    ~ActAs() {
        if (m_creating)
            ::umask(m_old_umask);
        if (m_id.switch_fs_ids) {
            ::setfsuid(0);
            ::setfsgid(0);
        }
    }
    ActAs(const ActAs&) = delete;
    ActAs& operator=(const ActAs&) = delete;

  private:
    const VolumeIdentity& m_id;
    bool m_creating;
    mode_t m_old_umask = 0;
};

uint32_t shown_uid(const VolumeIdentity& id, uint32_t host) {
    return host == id.host_uid ? id.uid : 65534;
}
uint32_t shown_gid(const VolumeIdentity& id, uint32_t host) {
    return host == id.host_gid ? id.gid : 65534;
}

// Open flags openat2 accepts (it refuses unknown bits that open ignores).
constexpr uint64_t kOpenFlags = O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND |
                                O_NONBLOCK | O_DSYNC | O_ASYNC | O_DIRECT | O_LARGEFILE |
                                O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_SYNC | O_PATH |
                                O_TMPFILE;

bool creates(uint64_t flags) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

// A metadata call on what a path outside every volume names (`fd`, from
// walk), performed with the program's ids; `self_link` is the text of
// /proc/self (or thread-self) when the path named that link itself.
bool perform_outside(const PathCall& c, int fd, const struct stat& found,
                     const std::string& self_link, int pid, const VolumeIdentity& id,
                     seccomp_notif_resp& resp) {
    auto fail = [&](int err) {
        resp.error = -err;
        return true;
    };
    auto result = [&](long rc) {
        if (rc < 0)
            resp.error = -errno;
        else
            resp.val = rc;
        return true;
    };
    struct stat st{};
    struct timespec ts[2];
    if (c.call == Call::Times)
        if (int e = read_times(pid, c, ts); e != 0)
            return fail(e);
    switch (c.call) {
    case Call::Stat:
        st = found;
        st.st_uid = shown_uid(id, st.st_uid);
        st.st_gid = shown_gid(id, st.st_gid);
        return write_mem(pid, c.buf, &st, sizeof st) ? result(0) : fail(EFAULT);
    case Call::Statx: {
        struct statx stx{};
        if (::statx(fd, "", AT_EMPTY_PATH | static_cast<int>(c.flags & AT_STATX_SYNC_TYPE),
                    static_cast<unsigned>(c.size), &stx) != 0)
            return fail(errno);
        stx.stx_uid = shown_uid(id, stx.stx_uid);
        stx.stx_gid = shown_gid(id, stx.stx_gid);
        return write_mem(pid, c.buf, &stx, sizeof stx) ? result(0) : fail(EFAULT);
    }
    case Call::Access:
        return result(::syscall(SYS_faccessat2, fd, "", static_cast<int>(c.mode),
                                AT_EMPTY_PATH | AT_EACCESS));
    case Call::Readlink: {
        if (static_cast<int>(c.size) <= 0)
            return fail(EINVAL);
        std::string text = self_link;
        if (text.empty()) {
            if (::fstat(fd, &st) != 0)
                return fail(errno);
            if (!S_ISLNK(st.st_mode))
                return fail(EINVAL);
            char buf[4096];
            ssize_t n = ::readlinkat(fd, "", buf, sizeof buf);
            if (n < 0)
                return fail(errno);
            text.assign(buf, static_cast<size_t>(n));
        }
        size_t len = std::min(text.size(), static_cast<size_t>(static_cast<int>(c.size)));
        return write_mem(pid, c.buf, text.data(), len) ? result(static_cast<long>(len))
                                                       : fail(EFAULT);
    }
    case Call::Chmod:
        if (::fstat(fd, &st) != 0)
            return fail(errno);
        if (S_ISLNK(st.st_mode))
            return fail(EOPNOTSUPP);
        return result(::syscall(SYS_fchmodat, AT_FDCWD, self_fd(fd).c_str(),
                                static_cast<mode_t>(c.mode & 07777)));
    case Call::Times:
        return result(::syscall(SYS_utimensat, fd, "", ts, AT_EMPTY_PATH));
    default:
        return fail(ENOSYS);
    }
}

// A read-only open, outside every volume, of a directory above a mount
// point that the program may list (`listable`, recorded at setup): opened
// by the supervisor from what the walk found, never by the path again.
// The descriptor to add, -errno, or kKernelDecides.
constexpr int kKernelDecides = INT_MIN;
int open_listable(const SandboxRoot& root, const VolumeIdentity& id,
                  const std::set<std::pair<dev_t, ino_t>>& listable,
                  const std::set<std::string>& listable_paths, int pid, long nr, const PathCall& c,
                  const std::string& path, const std::string& guest, uint64_t* open_flags) {
    uint64_t flags = c.flags;
    if (nr == SYS_openat2) {
        // A plain open_how only; anything else is the kernel's to judge.
        open_how how{};
        if (c.size != sizeof how || !read_mem(pid, c.buf, &how, sizeof how) || how.resolve ||
            how.mode || (how.flags & ~kOpenFlags))
            return kKernelDecides;
        flags = how.flags;
    }
    // Read-only, creating nothing, not O_PATH (which Landlock allows), and
    // no flag a listing has no use for.
    constexpr uint64_t kKept =
        O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_LARGEFILE | O_NOATIME | O_NOCTTY | O_CLOEXEC;
    if ((flags & O_ACCMODE) != O_RDONLY ||
        (flags & kOpenFlags & ~static_cast<uint64_t>(O_ACCMODE) & ~kKept))
        return kKernelDecides;
    // Named by its path, or opened as a directory (through a symlink, a
    // relative path, /proc/self/root): resolved to see what it is.
    if (!listable_paths.count(guest) && !(flags & O_DIRECTORY))
        return kKernelDecides;
    ActAs as(id, false);
    struct stat st{};
    int fd = walk(root, pid, c.dirfd, path, !(flags & O_NOFOLLOW), nullptr, &st);
    if (fd < 0)
        return kKernelDecides; // the kernel says why
    UniqueFd found(fd);
    if (!S_ISDIR(st.st_mode) || !listable.count({st.st_dev, st.st_ino}))
        return kKernelDecides;
    int dir = ::open(self_fd(found.get()).c_str(),
                     static_cast<int>(O_RDONLY | O_DIRECTORY | O_CLOEXEC |
                                      (flags & (O_NONBLOCK | O_LARGEFILE | O_NOATIME))));
    if (dir < 0)
        return -errno;
    struct stat now{};
    if (::fstat(dir, &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
        ::close(dir);
        return -EACCES;
    }
    *open_flags = flags;
    return dir;
}

} // namespace

std::string normalize_guest_path(const std::string& base, const std::string& path) {
    std::vector<std::string> parts;
    auto add = [&](const std::string& s) {
        size_t i = 0;
        while (i <= s.size()) {
            size_t j = s.find('/', i);
            if (j == std::string::npos)
                j = s.size();
            std::string c = s.substr(i, j - i);
            if (c == "..") {
                if (!parts.empty())
                    parts.pop_back();
            } else if (!c.empty() && c != ".") {
                parts.push_back(std::move(c));
            }
            i = j + 1;
        }
    };
    if (path.empty() || path[0] != '/')
        add(base);
    add(path);
    std::string out;
    for (const std::string& c : parts)
        out += "/" + c;
    return out.empty() ? "/" : out;
}

void Supervisor::set_volumes(std::vector<SupervisedVolume> volumes,
                             const VolumeIdentity& identity) {
    m_volumes = std::move(volumes);
    m_identity = identity;
    // The sandbox's root (every process of it has this one: chroot is
    // denied) and its /proc, for resolving paths as the program's kernel.
    std::string root = "/proc/" + std::to_string(m_child) + "/root";
    m_root_fd = UniqueFd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    struct stat rs{}, ps{};
    if (m_root_fd && ::fstat(m_root_fd.get(), &rs) == 0 &&
        ::stat((root + "/proc").c_str(), &ps) == 0)
        m_root = {m_root_fd.get(), rs.st_dev, rs.st_ino, ps.st_dev};
    for (SupervisedVolume& v : m_volumes) {
        struct stat st{};
        if (::fstat(v.dir.get(), &st) == 0)
            v.dev = st.st_dev;
    }
    // The listable directories above the mount points, as they are now
    // (read-only rootfs or root tmpfs: they stay these), found without
    // following symlinks.
    m_listable_paths.clear();
    m_listable.clear();
    for (const std::string& dir : m_spec.listable_dirs) {
        if (!m_root_fd)
            break;
        open_how how{};
        how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
        how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        long fd = ::syscall(SYS_openat2, m_root_fd.get(), dir.c_str(), &how, sizeof how);
        if (fd < 0)
            continue;
        UniqueFd held(static_cast<int>(fd));
        struct stat st{};
        if (::fstat(held.get(), &st) == 0 && S_ISDIR(st.st_mode)) {
            m_listable_paths.insert(dir);
            m_listable.insert({st.st_dev, st.st_ino});
        }
    }
}

int Supervisor::volume_of(const std::string& path, std::string* rel) const {
    for (size_t i = 0; i < m_volumes.size(); ++i) {
        const std::string& g = m_volumes[i].guest;
        if (path.compare(0, g.size(), g) != 0 || (path.size() > g.size() && path[g.size()] != '/'))
            continue;
        *rel = path.size() == g.size() ? "" : path.substr(g.size() + 1);
        return static_cast<int>(i);
    }
    return -1;
}

bool Supervisor::handle_path_call(int notify_fd, const seccomp_notif& req, seccomp_notif_resp& resp,
                                  RunOutcome& stats) {
    PathCall c;
    if (!decode(req.data.nr, reinterpret_cast<const uint64_t*>(req.data.args), c)) {
        resp.error = -ENOSYS;
        return true;
    }
    int pid = static_cast<int>(req.pid);
    auto cont = [&] {
        resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        return true;
    };
    auto fail = [&](int err) {
        resp.error = -err;
        return true;
    };
    // Adds `fd` (the supervisor's) to the program as the call's result.
    auto inject = [&](int fd, uint64_t open_flags) {
        seccomp_notif_addfd add{};
        add.id = req.id;
        add.flags = SECCOMP_ADDFD_FLAG_SEND;
        add.srcfd = static_cast<uint32_t>(fd);
        add.newfd_flags = static_cast<uint32_t>(open_flags & O_CLOEXEC);
        if (::ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_ADDFD, &add) >= 0)
            return false; // added and answered with its number
        if (errno == ENOENT || errno == EINPROGRESS)
            return false;   // the call is gone (a signal, the program's end)
        return fail(errno); // EMFILE: the program's descriptor limit
    };
    // A call on a descriptor (an empty path with AT_EMPTY_PATH, utimensat
    // with none) is no request: the open was the decision.
    if (c.call == Call::Times && c.path == 0)
        return cont();
    std::string path;
    if (int r = copy_string(pid, c.path, path); r < 0)
        return fail(-r);
    if (path.empty())
        return cont();
    // The guest path: joined with the cwd or the directory descriptor's
    // path as the sandbox names them, then normalized.
    auto guest_path = [&](int dirfd, const std::string& p, std::string& out) {
        std::string base = "/";
        if (p[0] != '/') {
            base = proc_link(std::to_string(pid),
                             dirfd == AT_FDCWD ? "cwd" : "fd/" + std::to_string(dirfd));
            if (base.empty() || base[0] != '/')
                return false; // no such descriptor, or not a directory: the kernel says which
        }
        out = normalize_guest_path(base, p);
        return true;
    };
    std::string guest, guest2, rel, rel2, path2, target, self_link;
    UniqueFd outside; // what a path outside every volume names (metadata calls)
    if (!guest_path(c.dirfd, path, guest))
        return cont();
    int v = volume_of(guest, &rel);
    int v2 = -1;
    if (c.call == Call::Rename || c.call == Call::Link) {
        if (int r = copy_string(pid, c.path2, path2); r < 0)
            return fail(-r);
        if (path2.empty() || !guest_path(c.dirfd2, path2, guest2)) {
            if (v < 0)
                return cont();
            return fail(path2.empty() ? ENOENT : EBADF);
        }
        v2 = volume_of(guest2, &rel2);
        if (v < 0 && v2 < 0)
            return cont();
        if (v != v2)
            return fail(EXDEV); // across volumes, or in and out of one
    } else if (v < 0) {
        // A directory above a mount point: Landlock cannot grant READ_DIR
        // on it (the right would reach into the volume), so a read-only
        // open of one the program could list before is the supervisor's.
        if (c.call == Call::Open && !m_listable.empty()) {
            uint64_t flags = 0;
            int fd = open_listable(m_root, m_identity, m_listable, m_listable_paths, pid,
                                   req.data.nr, c, path, guest, &flags);
            if (fd == kKernelDecides)
                return cont();
            if (fd < 0)
                return fail(-fd);
            UniqueFd dir(fd);
            return inject(fd, flags);
        }
        // Landlock does not mediate what only reads or changes metadata
        // (stat, access, readlink, chmod, file times), so with volumes the
        // supervisor resolves and performs those calls for every path: one
        // that leads into a volume without naming it (a symlink in /tmp,
        // /proc/self/cwd) is judged by the path it resolves to, and a path
        // rewritten after the copy changes nothing.
        if (c.call != Call::Stat && c.call != Call::Statx && c.call != Call::Access &&
            c.call != Call::Readlink && c.call != Call::Chmod && c.call != Call::Times)
            return cont();
        // Resolved and performed with the program's ids, in one go.
        std::optional<ActAs> acting;
        acting.emplace(m_identity, false);
        struct stat st{};
        int fd =
            walk(m_root, pid, c.dirfd, path, c.call != Call::Readlink && c.follow, &self_link, &st);
        if (fd < 0)
            return fail(-fd);
        outside = UniqueFd(fd);
        bool volume_fs = false;
        for (const SupervisedVolume& sv : m_volumes)
            volume_fs = volume_fs || st.st_dev == sv.dev;
        std::string resolved = volume_fs ? proc_link("self", "fd/" + std::to_string(fd)) : "";
        int rv = -1;
        if (!resolved.empty() && resolved[0] == '/' && (rv = volume_of(resolved, &rel)) >= 0 &&
            st.st_dev == m_volumes[static_cast<size_t>(rv)].dev) {
            v = rv;
            guest = resolved;
            outside = UniqueFd();
        } else {
            if ((c.call == Call::Chmod || c.call == Call::Times) &&
                ::ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req.id) != 0)
                return false; // the call is gone: change nothing
            return perform_outside(c, outside.get(), st, self_link, pid, m_identity, resp);
        }
    }
    const SupervisedVolume& vol = m_volumes[static_cast<size_t>(v)];
    if (guest.size() > kMaxGuestPath || guest2.size() > kMaxGuestPath)
        return fail(ENAMETOOLONG);
    if (c.call == Call::Mknod) {
        ++stats.denials;
        print_line("kos: denied " + std::string(c.name) + " \"" + guest + "\" by " + who(pid) +
                   " [rule vfs.mknod]: device nodes, FIFOs and sockets cannot be made in a volume");
        return fail(EACCES);
    }

    // The request the VFS server would be asked, with its fields.
    VfsCall call;
    call.path = guest;
    call.follow = c.follow;
    bool read = false, write = false;
    open_how how{};
    struct timespec ts[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
    switch (c.call) {
    case Call::Open:
    case Call::Truncate:
        if (c.call == Call::Truncate) {
            how.flags = O_WRONLY;
        } else if (req.data.nr == SYS_openat2) {
            if (c.size < sizeof(uint64_t) * 3 || c.size > 4096)
                return fail(c.size < sizeof(uint64_t) * 3 ? EINVAL : E2BIG);
            if (!read_mem(pid, c.buf, &how, sizeof how))
                return fail(EFAULT);
            if (how.resolve & ~static_cast<uint64_t>(RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS |
                                                     RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH |
                                                     RESOLVE_IN_ROOT | RESOLVE_CACHED))
                return fail(EINVAL);
            if (how.resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT))
                return fail(EXDEV); // beneath a descriptor: not offered in volumes
        } else {
            how.flags = c.flags;
            how.mode = c.mode;
        }
        call.op = VfsOp::Open;
        call.flags = static_cast<uint32_t>(how.flags); // make_vfs_open leaves out what is never sent
        call.mode = static_cast<uint32_t>(how.mode & 07777);
        read = (how.flags & O_ACCMODE) != O_WRONLY;
        write = (how.flags & O_ACCMODE) != O_RDONLY || (how.flags & (O_CREAT | O_TRUNC));
        break;
    case Call::Stat:
    case Call::Statx:
    case Call::Access:
        call.op = VfsOp::Stat;
        read = true;
        break;
    case Call::Readlink:
        call.op = VfsOp::Readlink;
        read = true;
        break;
    case Call::Mkdir:
        call.op = VfsOp::Mkdir;
        call.mode = static_cast<uint32_t>(c.mode & 07777);
        write = true;
        break;
    case Call::Unlink:
        call.op = VfsOp::Unlink, write = true;
        break;
    case Call::Rmdir:
        call.op = VfsOp::Rmdir, write = true;
        break;
    case Call::Rename:
        call.op = VfsOp::Rename, call.path2 = guest2, write = true;
        break;
    case Call::Link:
        call.op = VfsOp::Link, call.path2 = guest2, write = true;
        break;
    case Call::Symlink: {
        if (int r = copy_string(pid, c.target, target); r < 0)
            return fail(-r);
        if (target.empty())
            return fail(ENOENT);
        if (target.size() > kMaxGuestPath)
            return fail(ENAMETOOLONG);
        call.op = VfsOp::Symlink, call.path2 = target, write = true;
        break;
    }
    case Call::Chmod:
        call.op = VfsOp::Chmod;
        call.mode = static_cast<uint32_t>(c.mode & 07777);
        write = true;
        break;
    case Call::Times: {
        call.op = VfsOp::SetTimes;
        write = true;
        if (int e = read_times(pid, c, ts); e != 0)
            return fail(e);
        int64_t ns[2];
        for (int i = 0; i < 2; ++i) {
            if (ts[i].tv_nsec == UTIME_NOW)
                ns[i] = security::kVfsTimeNow;
            else if (ts[i].tv_nsec == UTIME_OMIT)
                ns[i] = security::kVfsTimeOmit;
            else if (ts[i].tv_nsec < 0 || ts[i].tv_nsec >= 1000000000)
                return fail(EINVAL);
            else
                ns[i] = static_cast<int64_t>(ts[i].tv_sec) * 1000000000 + ts[i].tv_nsec;
        }
        call.atime = ns[0];
        call.mtime = ns[1];
        break;
    }
    case Call::Mknod:
        break;
    }

    // The verdicts, in the VM's order: the request, then the label.
    if (::ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req.id) != 0)
        return false;
    if (!m_policy->declares_vfs_label()) {
        // No VFS server to ask (the run said so once): refused, as the
        // guest's runtime refuses it without a channel to one.
        ++stats.denials;
        return fail(EACCES);
    }
    uint64_t now = now_ns();
    auto judged = [&](const PolicyDecision& d) {
        audit(d);
        if (!d.verdict.allow)
            ++stats.denials;
        return d.verdict.allow;
    };
    if (!judged(m_policy->decide_vfs(call, now)))
        return fail(EACCES);
    if (write && !vol.writable)
        return fail(EROFS);
    if (read && !judged(m_policy->decide_file(vol.label, false, now)))
        return fail(EACCES);
    if (write && !judged(m_policy->decide_file(vol.label, true, now)))
        return fail(EACCES);

    // Performed on the supervisor's copy, beneath the volume.
    int dir = vol.dir.get();
    bool creating = (c.call == Call::Open && creates(how.flags)) || c.call == Call::Mkdir;
    mode_t mask = creating ? umask_of(pid) : 0;
    ActAs as(m_identity, creating);
    auto result = [&](long rc) {
        if (rc < 0)
            resp.error = -errno;
        else
            resp.val = rc;
        return true;
    };
    switch (c.call) {
    case Call::Open: {
        uint64_t flags = how.flags & kOpenFlags;
        uint64_t mode = creates(flags) ? (how.mode & 07777 & ~static_cast<uint64_t>(mask)) : 0;
        uint64_t resolve = how.resolve & (RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS);
        bool nonblock_added = false;
        if (flags & O_PATH) {
            flags &= O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
        } else if (!(flags & O_NONBLOCK)) {
            // Never block the supervisor (a FIFO the host put there): the
            // flag is cleared again once the file is open.
            flags |= O_NONBLOCK;
            nonblock_added = true;
        }
        int fd = open_beneath(dir, rel, flags & ~static_cast<uint64_t>(O_CLOEXEC), mode, resolve);
        if (fd < 0)
            return fail(-fd);
        UniqueFd file(fd);
        if (nonblock_added)
            ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        return inject(fd, how.flags);
    }
    case Call::Truncate: {
        int fd = open_beneath(dir, rel, O_WRONLY | O_NONBLOCK, 0);
        if (fd < 0)
            return fail(-fd);
        UniqueFd file(fd);
        return result(::ftruncate(fd, static_cast<off_t>(c.size)));
    }
    case Call::Stat:
    case Call::Statx:
    case Call::Access: {
        int fd = open_beneath(dir, rel, O_PATH | (c.follow ? 0 : O_NOFOLLOW), 0);
        if (fd < 0)
            return fail(-fd);
        UniqueFd file(fd);
        if (c.call == Call::Access)
            return result(::syscall(SYS_faccessat2, fd, "", static_cast<int>(c.mode),
                                    AT_EMPTY_PATH | AT_EACCESS));
        if (c.call == Call::Stat) {
            struct stat st{};
            if (::fstat(fd, &st) != 0)
                return fail(errno);
            st.st_uid = shown_uid(m_identity, st.st_uid);
            st.st_gid = shown_gid(m_identity, st.st_gid);
            return write_mem(pid, c.buf, &st, sizeof st) ? result(0) : fail(EFAULT);
        }
        struct statx stx{};
        if (::statx(fd, "", AT_EMPTY_PATH | static_cast<int>(c.flags & AT_STATX_SYNC_TYPE),
                    static_cast<unsigned>(c.size), &stx) != 0)
            return fail(errno);
        stx.stx_uid = shown_uid(m_identity, stx.stx_uid);
        stx.stx_gid = shown_gid(m_identity, stx.stx_gid);
        return write_mem(pid, c.buf, &stx, sizeof stx) ? result(0) : fail(EFAULT);
    }
    case Call::Readlink: {
        if (static_cast<int>(c.size) <= 0)
            return fail(EINVAL);
        int fd = open_beneath(dir, rel, O_PATH | O_NOFOLLOW, 0);
        if (fd < 0)
            return fail(-fd);
        UniqueFd file(fd);
        struct stat st{};
        if (::fstat(fd, &st) != 0)
            return fail(errno);
        if (!S_ISLNK(st.st_mode))
            return fail(EINVAL);
        char buf[4096];
        ssize_t n = ::readlinkat(fd, "", buf, sizeof buf);
        if (n < 0)
            return fail(errno);
        size_t len =
            std::min(static_cast<size_t>(n), static_cast<size_t>(static_cast<int>(c.size)));
        return write_mem(pid, c.buf, buf, len) ? result(static_cast<long>(len)) : fail(EFAULT);
    }
    case Call::Mkdir:
    case Call::Unlink:
    case Call::Rmdir:
    case Call::Symlink: {
        if (rel.empty()) // the volume's root itself
            return fail(c.call == Call::Mkdir || c.call == Call::Symlink ? EEXIST : EBUSY);
        std::string name;
        int pfd = open_parent(dir, rel, &name);
        if (pfd < 0)
            return fail(-pfd);
        UniqueFd parent(pfd);
        if (c.call == Call::Mkdir)
            return result(
                ::mkdirat(pfd, name.c_str(), static_cast<mode_t>(c.mode & 07777 & ~mask)));
        if (c.call == Call::Symlink)
            return result(::symlinkat(target.c_str(), pfd, name.c_str()));
        return result(::unlinkat(pfd, name.c_str(), c.call == Call::Rmdir ? AT_REMOVEDIR : 0));
    }
    case Call::Rename:
    case Call::Link: {
        if (rel.empty() || rel2.empty())
            return fail(c.call == Call::Rename ? EBUSY : EEXIST);
        std::string name2;
        int p2 = open_parent(dir, rel2, &name2);
        if (p2 < 0)
            return fail(-p2);
        UniqueFd parent2(p2);
        if (c.call == Call::Link && c.follow) {
            // The link's target, followed beneath the volume, never outside.
            int fd = open_beneath(dir, rel, O_PATH, 0);
            if (fd < 0)
                return fail(-fd);
            UniqueFd file(fd);
            return result(
                ::linkat(AT_FDCWD, self_fd(fd).c_str(), p2, name2.c_str(), AT_SYMLINK_FOLLOW));
        }
        std::string name;
        int p1 = open_parent(dir, rel, &name);
        if (p1 < 0)
            return fail(-p1);
        UniqueFd parent(p1);
        if (c.call == Call::Link)
            return result(::linkat(p1, name.c_str(), p2, name2.c_str(), 0));
        return result(::syscall(SYS_renameat2, p1, name.c_str(), p2, name2.c_str(),
                                static_cast<unsigned>(c.flags)));
    }
    case Call::Chmod:
    case Call::Times: {
        int fd = open_beneath(dir, rel, O_PATH | (c.follow ? 0 : O_NOFOLLOW), 0);
        if (fd < 0)
            return fail(-fd);
        UniqueFd file(fd);
        if (c.call == Call::Times)
            return result(::syscall(SYS_utimensat, fd, "", ts, AT_EMPTY_PATH));
        struct stat st{};
        if (::fstat(fd, &st) != 0)
            return fail(errno);
        if (S_ISLNK(st.st_mode))
            return fail(EOPNOTSUPP); // Linux has no modes on symbolic links
        return result(::syscall(SYS_fchmodat, AT_FDCWD, self_fd(fd).c_str(),
                                static_cast<mode_t>(c.mode & 07777)));
    }
    case Call::Mknod:
        break;
    }
    return fail(ENOSYS);
}

} // namespace kos::proc
