// The sandbox side of volumes (volume_mount.h), ATTACKS.md 26: mount points
// are never reached through a symlink, and the directory mounted is the one
// the parent opened.
#include "volume_mount.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "process_backend.h"

namespace kos::proc {
namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char t[] = "/tmp/kos-volmount-test-XXXXXX";
        path = ::mkdtemp(t);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

// Runs `body` in a child with a mount namespace of its own (and, without
// root, a user namespace mapping the caller to root); its exit status.
template <class F>
int in_mount_namespace(F body) {
    uid_t uid = ::geteuid();
    gid_t gid = ::getegid();
    pid_t pid = ::fork();
    if (pid == 0) {
        if (uid != 0) {
            if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
                ::_exit(90);
            auto put = [](const char* f, const std::string& v) {
                std::ofstream(f) << v;
            };
            put("/proc/self/setgroups", "deny");
            put("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1");
            put("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1");
        } else if (::unshare(CLONE_NEWNS) != 0) {
            ::_exit(90);
        }
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
            ::_exit(91);
        ::_exit(body());
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

bool namespaces_usable() {
    std::string why;
    if (kos::proc::process_backend_usable(&why))
        return true;
    if (std::getenv("CI"))
        ADD_FAILURE() << "the process backend must run in CI: " << why;
    return false;
}

// No privileges needed: the mount point is opened beneath a directory
// standing in for the staging root, which holds symlinks as a bundle's
// rootfs could.
TEST(VolumeMount, MountPointThroughASymlinkIsRefused) {
    TempDir root, outside;
    ASSERT_EQ(::mkdir((root.path + "/real").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root.path + "/real/data").c_str(), 0755), 0);
    ASSERT_EQ(::symlink("real", (root.path + "/link").c_str()), 0);
    ASSERT_EQ(::symlink(outside.path.c_str(), (root.path + "/abs").c_str()), 0);
    ASSERT_EQ(::symlink("../../..", (root.path + "/real/up").c_str()), 0);
    UniqueFd fd(::open(root.path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(fd);

    auto ok = open_mount_point(fd.get(), "/real/data");
    EXPECT_TRUE(ok) << ok.error().message;
    for (const char* p : {"/link/data", "/link", "/abs", "/real/up"}) {
        auto r = open_mount_point(fd.get(), p);
        ASSERT_FALSE(r) << p;
        EXPECT_EQ(r.error().code, ELOOP) << p;
        EXPECT_NE(r.error().message.find("a component is a symlink"), std::string::npos) << r.error().message;
    }
    // Creating missing mount point directories stops at a symlink too:
    // nothing appears outside.
    auto made = make_mount_point(fd.get(), "/abs/new/dir");
    ASSERT_FALSE(made);
    EXPECT_EQ(made.error().code, ELOOP);
    EXPECT_TRUE(std::filesystem::is_empty(outside.path));
    auto created = make_mount_point(fd.get(), "/srv/app/data");
    EXPECT_TRUE(created) << created.error().message;
    EXPECT_TRUE(std::filesystem::is_directory(root.path + "/srv/app/data"));
}

// The sandbox reopens the host directory in its own mount namespace and
// mounts it only if it is the one the parent opened.
TEST(VolumeMount, ReopenRefusesAReplacedDirectory) {
    TempDir d;
    std::string host = d.path + "/vol";
    ASSERT_EQ(::mkdir(host.c_str(), 0755), 0);
    pkg::VolumeMount v{host, "/data", false, "data_t", ""};
    auto parent = pkg::open_volume_host_dir(v);
    ASSERT_TRUE(parent) << parent.error().message;
    auto same = reopen_volume_dir(v, parent->get());
    EXPECT_TRUE(same) << same.error().message;
    ASSERT_EQ(::rename(host.c_str(), (d.path + "/old").c_str()), 0);
    ASSERT_EQ(::mkdir(host.c_str(), 0755), 0);
    auto swapped = reopen_volume_dir(v, parent->get());
    ASSERT_FALSE(swapped);
    EXPECT_EQ(swapped.error().code, EXDEV);
    EXPECT_NE(swapped.error().message.find("no longer the directory opened when the run started"), std::string::npos)
        << swapped.error().message;
    // And a symlink in its place fails to open at all (pkg, ELOOP).
    ASSERT_EQ(::rmdir(host.c_str()), 0);
    ASSERT_EQ(::symlink("old", host.c_str()), 0);
    auto link = reopen_volume_dir(v, parent->get());
    ASSERT_FALSE(link);
    EXPECT_EQ(link.error().code, ELOOP);
}

// Real mounts, in a mount namespace of a child: read-only volumes are
// read-only, every volume nosuid, nodev, noexec; a symlinked mount point
// mounts nothing.
TEST(VolumeMount, MountsTheCloneWithItsAttributesAndNeverThroughASymlink) {
    if (!namespaces_usable())
        GTEST_SKIP() << "process backend test skipped: needs user namespaces and Landlock (see `kos doctor`)";
    TempDir stage, host, elsewhere;
    std::ofstream(host.path + "/in.txt") << "volume\n";
    ASSERT_EQ(::mkdir((stage.path + "/ro").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((stage.path + "/rw").c_str(), 0755), 0);
    ASSERT_EQ(::symlink(elsewhere.path.c_str(), (stage.path + "/link").c_str()), 0);
    int status = in_mount_namespace([&]() -> int {
        UniqueFd root(::open(stage.path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        pkg::VolumeMount ro{host.path, "/ro", false, "data_t", ""};
        pkg::VolumeMount rw{host.path, "/rw", true, "data_t", ""};
        pkg::VolumeMount via_link{host.path, "/link", false, "data_t", ""};
        auto dir = pkg::open_volume_host_dir(ro);
        if (!root || !dir)
            return 10;
        bool idmapped = false;
        auto a = mount_volume(ro, false, dir->get(), root.get(), false, -1, &idmapped);
        auto b = mount_volume(rw, true, dir->get(), root.get(), false, -1, &idmapped);
        if (!a || !b)
            return 11;
        struct statvfs s{};
        if (::statvfs((stage.path + "/ro").c_str(), &s) != 0)
            return 12;
        unsigned long all = ST_NOSUID | ST_NODEV | ST_NOEXEC;
        if ((s.f_flag & (all | ST_RDONLY)) != (all | ST_RDONLY))
            return 13;
        if (::statvfs((stage.path + "/rw").c_str(), &s) != 0 || (s.f_flag & (all | ST_RDONLY)) != all)
            return 14;
        std::ifstream in(stage.path + "/ro/in.txt");
        std::string line;
        if (!std::getline(in, line) || line != "volume")
            return 15;
        if (::open((stage.path + "/ro/new").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644) >= 0 || errno != EROFS)
            return 16;
        auto c = mount_volume(via_link, false, dir->get(), root.get(), false, -1, &idmapped);
        if (c || c.error().code != ELOOP)
            return 17;
        // Nothing was mounted where the symlink points.
        if (::access((elsewhere.path + "/in.txt").c_str(), F_OK) == 0)
            return 18;
        return 0;
    });
    EXPECT_EQ(status, 0) << "10: setup, 11: mount, 12-14: attributes, 15: contents, 16: EROFS, 17: the symlinked "
                            "mount point was not refused, 18: something was mounted through it";
}

} // namespace
} // namespace kos::proc
