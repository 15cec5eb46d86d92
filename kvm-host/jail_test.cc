// The VMM jail, applied in forked children (it cannot be undone).
#include "kvm-host/jail.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <functional>

namespace {

// Runs `body` in a child; returns its wait status.
int in_child(const std::function<int()>& body) {
    pid_t pid = ::fork();
    if (pid == 0)
        ::_exit(body());
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
}

kos::vmm::JailOptions options() {
    kos::vmm::JailOptions o;
    o.vcpu_fd = 1000; // no such descriptor: no ioctl is allowed anywhere
    return o;
}

} // namespace

TEST(Jail, ForbiddenSyscallKillsTheProcess) {
    int status = in_child([] {
        if (!kos::vmm::enter_jail(options()))
            return 100;
        ::socket(AF_INET, SOCK_STREAM, 0); // not in the allow list
        return 0;
    });
    ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << WEXITSTATUS(status);
    EXPECT_EQ(WTERMSIG(status), SIGSYS);
}

TEST(Jail, OpeningAnyFileKillsTheProcess) {
    int status = in_child([] {
        if (!kos::vmm::enter_jail(options()))
            return 100;
        ::open("/etc/hostname", O_RDONLY); // attack 25: no new descriptors
        return 0;
    });
    ASSERT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGSYS);
}

TEST(Jail, IoctlOnlyOnTheVcpuDescriptor) {
    int status = in_child([] {
        if (!kos::vmm::enter_jail(options()))
            return 100;
        int v = 0;
        ::ioctl(0, FIONREAD, &v);
        return 0;
    });
    ASSERT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGSYS);
}

TEST(Jail, AllowedWorkStillRuns) {
    int status = in_child([] {
        auto r = kos::vmm::enter_jail(options());
        if (!r)
            return 100;
        // Output, memory, and the process's own exit.
        if (::write(1, "", 0) != 0)
            return 101;
        std::string s(1 << 20, 'x'); // mmap for a large allocation
        return s.size() == (1u << 20) ? 0 : 102;
    });
    ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Jail, LandlockDeniesPathsAndPrivilegesAreGone) {
    int status = in_child([] {
        if (!kos::vmm::drop_privileges())
            return 100;
        auto abi = kos::vmm::restrict_with_landlock();
        if (!abi)
            return 101;
        if (*abi == 0)
            return 0; // no Landlock on this kernel: nothing more to check
        errno = 0;
        if (::open("/etc/hostname", O_RDONLY) >= 0 || errno != EACCES)
            return 102;
        if (::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
            return 103;
        if (::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
            return 104;
        return 0;
    });
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}
