#include "landlock.h"

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

} // namespace
} // namespace kos::proc
