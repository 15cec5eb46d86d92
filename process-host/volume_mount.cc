#include "volume_mount.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace kos::proc {
namespace {

long openat2_dir(int dirfd, const std::string& rel, uint64_t resolve) {
    struct open_how how{};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = resolve;
    return ::syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how);
}

constexpr uint64_t kBeneath = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

Result<void> write_id_file(pid_t pid, const char* file, const std::string& value) {
    std::string path = "/proc/" + std::to_string(pid) + "/" + file;
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd || ::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
        return make_error(errno, "writing " + path + " (\"" + value + "\"): " + errno_string(errno));
    return {};
}

} // namespace

Result<UniqueFd> make_idmap_userns(uid_t owner_uid, gid_t owner_gid, uid_t uid, gid_t gid) {
    // A process in a new user namespace that waits until its pipe closes;
    // the namespace outlives it through the descriptor returned.
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0)
        return make_error(errno, "pipe: " + errno_string(errno));
    UniqueFd rd(p[0]), wr(p[1]);
    long pid = ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, 0);
    if (pid == 0) {
        ::close(p[1]);
        char c;
        [[maybe_unused]] ssize_t n = ::read(p[0], &c, 1);
        ::_exit(0);
    }
    if (pid < 0)
        return make_error(errno, "creating a user namespace for an ID-mapped volume: " + errno_string(errno));
    rd = UniqueFd();
    auto reap = [&] {
        wr = UniqueFd();
        int st;
        ::waitpid(static_cast<pid_t>(pid), &st, 0);
    };
    Result<void> ok = write_id_file(static_cast<pid_t>(pid), "uid_map",
                                    std::to_string(owner_uid) + " " + std::to_string(uid) + " 1");
    if (ok)
        ok = write_id_file(static_cast<pid_t>(pid), "gid_map",
                           std::to_string(owner_gid) + " " + std::to_string(gid) + " 1");
    UniqueFd ns;
    if (ok) {
        ns = UniqueFd(::open(("/proc/" + std::to_string(pid) + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC));
        if (!ns)
            ok = make_error(errno, "opening the ID-mapping user namespace: " + errno_string(errno));
    }
    reap();
    if (!ok)
        return std::unexpected(ok.error());
    return ns;
}

Result<UniqueFd> reopen_volume_dir(const pkg::VolumeMount& v, int parent_fd) {
    UniqueFd fd = KOS_TRY(pkg::open_volume_host_dir(v));
    struct stat a{}, b{};
    if (::fstat(parent_fd, &a) != 0 || ::fstat(fd.get(), &b) != 0)
        return make_error(errno, "volume " + pkg::describe(v) + ": " + errno_string(errno));
    if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
        return make_error(EXDEV, "volume " + pkg::describe(v) + ": " + v.host +
                                     " is no longer the directory opened when the run started (replaced "
                                     "meanwhile); the volume is not attached");
    return fd;
}

Result<UniqueFd> clone_volume(int dir_fd, bool writable, int userns_fd, bool* idmapped) {
    UniqueFd tree(static_cast<int>(
        ::syscall(SYS_open_tree, dir_fd, "", OPEN_TREE_CLONE | AT_EMPTY_PATH | OPEN_TREE_CLOEXEC)));
    if (!tree)
        return make_error(errno, "open_tree: " + errno_string(errno));
    struct mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC | (writable ? 0 : MOUNT_ATTR_RDONLY);
    *idmapped = false;
    if (userns_fd >= 0) {
        struct mount_attr id = attr;
        id.attr_set |= MOUNT_ATTR_IDMAP;
        id.userns_fd = static_cast<uint64_t>(userns_fd);
        if (::syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH, &id, sizeof id) == 0) {
            *idmapped = true;
            return tree;
        }
        if (errno != EINVAL)
            return make_error(errno, "mount_setattr (ID mapping): " + errno_string(errno));
    }
    if (::syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH, &attr, sizeof attr) != 0)
        return make_error(errno, "mount_setattr: " + errno_string(errno) +
                                     (errno == ENOSYS ? " (volumes need Linux 5.12 or later)" : ""));
    return tree;
}

Result<void> make_mount_point(int root_fd, const std::string& guest) {
    if (guest.size() < 2 || guest[0] != '/')
        return make_error(EINVAL, guest + ": not an absolute path");
    UniqueFd dir(static_cast<int>(openat2_dir(root_fd, ".", kBeneath)));
    if (!dir)
        return make_error(errno, guest + ": " + errno_string(errno));
    size_t pos = 1;
    while (pos <= guest.size()) {
        size_t end = guest.find('/', pos);
        if (end == std::string::npos)
            end = guest.size();
        std::string name = guest.substr(pos, end - pos);
        if (::mkdirat(dir.get(), name.c_str(), 0755) != 0 && errno != EEXIST)
            return make_error(errno, "creating the mount point " + guest.substr(0, end) + ": " + errno_string(errno));
        UniqueFd next(static_cast<int>(openat2_dir(dir.get(), name, kBeneath)));
        if (!next)
            return make_error(errno, "mount point " + guest.substr(0, end) + ": " + errno_string(errno));
        dir = std::move(next);
        pos = end + 1;
    }
    return {};
}

Result<UniqueFd> open_mount_point(int root_fd, const std::string& guest) {
    if (guest.size() < 2 || guest[0] != '/')
        return make_error(EINVAL, guest + ": not an absolute path");
    UniqueFd fd(static_cast<int>(openat2_dir(root_fd, guest.substr(1), kBeneath)));
    if (!fd) {
        int e = errno;
        return make_error(e, "mount point " + guest + ": " + errno_string(e) +
                                 (e == ELOOP ? " (a component is a symlink; mount points are not reached "
                                               "through symlinks)"
                                  : e == EXDEV ? " (the path leaves the sandbox's root)"
                                               : ""));
    }
    return fd;
}

Result<void> attach_volume(int tree_fd, int target_fd) {
    if (::syscall(SYS_move_mount, tree_fd, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0)
        return make_error(errno, "move_mount: " + errno_string(errno));
    return {};
}

Result<UniqueFd> mount_volume(const pkg::VolumeMount& v, bool writable, int dir_fd, int root_fd,
                              bool create_mount_point, int userns_fd, bool* idmapped) {
    auto fail = [&](const Error& e) { return make_error(e.code, "volume " + pkg::describe(v) + ": " + e.message); };
    if (create_mount_point)
        if (auto ok = make_mount_point(root_fd, v.guest); !ok)
            return fail(ok.error());
    auto target = open_mount_point(root_fd, v.guest);
    if (!target)
        return fail(target.error());
    auto tree = clone_volume(dir_fd, writable, userns_fd, idmapped);
    if (!tree)
        return fail(tree.error());
    if (auto ok = attach_volume(tree->get(), target->get()); !ok)
        return fail(ok.error());
    return std::move(*tree);
}

} // namespace kos::proc
