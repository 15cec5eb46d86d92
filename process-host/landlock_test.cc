#include "landlock.h"
#include "sandbox.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace kos::proc {
namespace {

TEST(Landlock, ReadOnlyRuleDeniesEverythingElse) {
    int abi = landlock_abi();
    if (abi < 1)
        GTEST_SKIP() << "Landlock is not available on this kernel";
    pid_t pid = ::fork();
    if (pid == 0) {
        LandlockRules r;
        r.read_paths = {"/usr"};
        auto rs = landlock_build(r, abi);
        if (!rs || ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || !landlock_restrict_self(*rs))
            ::_exit(100);
        int ok = ::open("/usr/bin", O_RDONLY | O_DIRECTORY);
        int denied = ::open("/etc/passwd", O_RDONLY);
        int denied_errno = errno;
        int write = ::open("/usr/bin/env", O_WRONLY);
        ::_exit(ok >= 0 && denied < 0 && denied_errno == EACCES && write < 0 ? 0 : 1);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST(Landlock, RefusesAbiZero) {
    auto r = landlock_build({}, 0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, EOPNOTSUPP);
}

TEST(Landlock, RunRefusesWhatTheKernelCannotEnforceUnlessBestEffort) {
    SandboxSpec fs_only;
    auto none = check_landlock(fs_only, 0, false);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().message, "this kernel's Landlock ABI is 0 but the bundle needs ABI 1 (file system rules); "
                                    "enable Landlock (lsm= boot parameter) or pass --best-effort");
    EXPECT_TRUE(check_landlock(fs_only, 0, true));
    EXPECT_TRUE(check_landlock(fs_only, 1, false));
    SandboxSpec net = fs_only;
    net.bind.push_back(NetRule{});
    auto old = check_landlock(net, 3, false);
    ASSERT_FALSE(old);
    EXPECT_NE(old.error().message.find("needs ABI 4 (TCP port rules for [network])"), std::string::npos);
    EXPECT_TRUE(check_landlock(net, 4, false));
}

} // namespace
} // namespace kos::proc
