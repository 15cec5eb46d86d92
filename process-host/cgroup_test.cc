#include "cgroup.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

namespace kos::proc {
namespace {

std::string read_line(const std::string& path) {
    std::ifstream f(path);
    std::string s;
    std::getline(f, s);
    return s;
}

TEST(Cgroup, LimitsAreWrittenAndTheCgroupIsRemoved) {
    CgroupSupport sup = probe_cgroups();
    if (sup.version == CgroupVersion::None || ::geteuid() != 0)
        GTEST_SKIP() << "needs root and a usable cgroup hierarchy: " << sup.detail;
    Limits l;
    l.memory_bytes = 64ull << 20;
    l.pids = 12;
    std::vector<std::string> dirs;
    {
        auto cg = Cgroup::create("unit-test-" + std::to_string(::getpid()), l);
        ASSERT_TRUE(cg) << cg.error().message;
        dirs = cg->dirs();
        ASSERT_FALSE(dirs.empty());
        for (const auto& d : dirs) {
            if (d.find("memory") != std::string::npos || sup.version == CgroupVersion::V2) {
                std::string f = sup.version == CgroupVersion::V2 ? "/memory.max" : "/memory.limit_in_bytes";
                if (struct stat st{}; ::stat((d + f).c_str(), &st) == 0)
                    EXPECT_EQ(read_line(d + f), std::to_string(64ull << 20));
            }
            if (d.find("pids") != std::string::npos || sup.version == CgroupVersion::V2)
                EXPECT_EQ(read_line(d + "/pids.max"), "12");
        }
        // A child joins, forks past the limit, and the limit is reported.
        int go[2];
        ASSERT_EQ(::pipe(go), 0);
        pid_t pid = ::fork();
        if (pid == 0) {
            char c;
            if (::read(go[0], &c, 1) != 1) // joined by then
                ::_exit(2);
            pid_t kids[20];
            int failed = 0;
            for (int i = 0; i < 20; ++i) {
                kids[i] = ::fork();
                if (kids[i] == 0) {
                    ::pause();
                    ::_exit(0);
                }
                failed += kids[i] < 0;
            }
            for (pid_t k : kids)
                if (k > 0) {
                    ::kill(k, SIGKILL);
                    ::waitpid(k, nullptr, 0);
                }
            ::_exit(failed > 0 ? 0 : 1);
        }
        ASSERT_TRUE(cg->add(pid)) << "joining";
        ASSERT_EQ(::write(go[1], "g", 1), 1);
        int st = 0;
        ::waitpid(pid, &st, 0);
        ::close(go[0]);
        ::close(go[1]);
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "no fork failed under pids.max";
        EXPECT_EQ(cg->limit_hit(l), "process limit ([limits] pids = 12)");
    }
    for (const auto& d : dirs) {
        struct stat st{};
        EXPECT_NE(::stat(d.c_str(), &st), 0) << d << " was not removed";
    }
}

} // namespace
} // namespace kos::proc
