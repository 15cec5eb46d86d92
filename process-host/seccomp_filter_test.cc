// The generated filter, installed in a forked child and exercised with real
// system calls (the compiled artifact, not the rule table).
#include "seccomp_filter.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

namespace kos::proc {
namespace {

// Runs `body` in a child under the filter (without notification); returns
// the child's wait status.
int under_filter(const std::function<int()>& body) {
    auto f = SeccompFilter::build({.notify = false});
    EXPECT_TRUE(f) << f.error().message;
    pid_t pid = ::fork();
    if (pid == 0) {
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || f->load() < -1)
            ::_exit(100);
        ::_exit(body());
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    return st;
}

int expect_errno(long rc, int err) { return rc == -1 && errno == err ? 0 : 1; }

TEST(SeccompFilter, AllowedCallsWork) {
    int st = under_filter([] { return ::syscall(SYS_getpid) > 0 && ::getppid() > 0 ? 0 : 1; });
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST(SeccompFilter, DangerousCallsGetThePolicyErrno) {
    for (long nr : {(long)SYS_io_uring_setup, (long)SYS_io_uring_enter, (long)SYS_ptrace, (long)SYS_bpf,
                    (long)SYS_mount, (long)SYS_keyctl, (long)SYS_unshare, (long)SYS_setns, (long)SYS_add_key,
                    (long)SYS_perf_event_open, (long)SYS_userfaultfd, (long)SYS_init_module}) {
        int st = under_filter([nr] { return expect_errno(::syscall(nr, 0, 0, 0, 0, 0), kDeniedErrno); });
        ASSERT_TRUE(WIFEXITED(st)) << nr;
        EXPECT_EQ(WEXITSTATUS(st), 0) << "syscall " << nr;
    }
}

TEST(SeccompFilter, UnlistedCallsGetEnosys) {
    int st = under_filter([] { return expect_errno(::syscall(SYS_clone3, nullptr, 0), ENOSYS) |
                                      expect_errno(::syscall(SYS_acct, nullptr) == 0 ? 0 : -1, EPERM) << 1 |
                                      expect_errno(::syscall(SYS_kexec_load, 0, 0, 0, 0), EPERM) << 2 |
                                      expect_errno(::syscall(SYS_vserver), ENOSYS) << 3; });
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST(SeccompFilter, CloneWithNamespaceFlagsIsDenied) {
    int st = under_filter([] {
        long rc = ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, 0);
        if (rc == 0)
            ::_exit(0);
        return expect_errno(rc, kDeniedErrno);
    });
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 0);
    // Plain fork still works.
    st = under_filter([] {
        pid_t p = ::fork();
        if (p == 0)
            ::_exit(7);
        int s = 0;
        ::waitpid(p, &s, 0);
        return WIFEXITED(s) && WEXITSTATUS(s) == 7 ? 0 : 1;
    });
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST(SeccompFilter, TiocstiIsDenied) {
    int st = under_filter([] {
        char c = 'x';
        // The kernel reads the request as 32 bits: high bits must not hide it.
        int bits = expect_errno(::ioctl(0, 0x5412 /*TIOCSTI*/, &c), kDeniedErrno) |
                   expect_errno(::syscall(SYS_ioctl, 0, 0x100005412ul, &c), kDeniedErrno) << 1 |
                   expect_errno(::ioctl(0, 0x541c /*TIOCLINUX*/, &c), kDeniedErrno) << 2 |
                   expect_errno(::ioctl(0, 0x5401 /*TCGETS*/, &c), kDeniedErrno) << 3;
        return bits == 8 ? 0 : 1; // only TCGETS is not denied
    });
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST(SeccompFilter, X32AndI386AbisKillTheProcess) {
    int st = under_filter([] { return static_cast<int>(::syscall(0x40000000 | SYS_getpid)) >= 0 ? 0 : 2; });
    ASSERT_TRUE(WIFSIGNALED(st)) << "x32 getpid was not killed, status " << st;
    EXPECT_EQ(WTERMSIG(st), SIGSYS);
    st = under_filter([] {
        long ret;
        asm volatile("int $0x80" : "=a"(ret) : "a"(20 /* i386 getpid */) : "memory");
        return 2;
    });
    ASSERT_TRUE(WIFSIGNALED(st)) << "int 0x80 was not killed, status " << st;
    EXPECT_EQ(WTERMSIG(st), SIGSYS);
}

TEST(SeccompFilter, EveryNotifiedCallIsInThePseudoCode) {
    auto f = SeccompFilter::build({.notify = true, .with_pfc = true});
    ASSERT_TRUE(f) << f.error().message;
    const std::string& pfc = f->pfc();
    // libseccomp 2.5 prints SCMP_ACT_NOTIFY as its value.
    for (const char* name : {"\"connect\"", "\"bind\"", "\"execve\"", "\"execveat\""}) {
        auto at = pfc.find(name);
        ASSERT_NE(at, std::string::npos) << name;
        auto next = pfc.find("action", at);
        EXPECT_EQ(pfc.substr(next, 17), "action 0x7fc00000") << name;
    }
    EXPECT_GT(f->bpf_instructions(), 100u);
    EXPECT_LT(f->bpf_instructions(), 4096u); // BPF_MAXINSNS
}

// The filter embedded in kos at build time is the one the table produces.
TEST(SeccompFilter, EmbeddedFilterMatchesTheTable) {
    auto f = SeccompFilter::build({.notify = true});
    ASSERT_TRUE(f) << f.error().message;
    EXPECT_EQ(SeccompFilter::embedded().bpf(), f->bpf());
    auto v = SeccompFilter::build({.notify = true, .volume_paths = true});
    ASSERT_TRUE(v) << v.error().message;
    EXPECT_EQ(SeccompFilter::embedded(true).bpf(), v->bpf());
    EXPECT_NE(v->bpf(), f->bpf());
}

// Path calls are notified only with volume_paths: a run without volumes
// keeps them in the kernel (no supervisor round trip).
TEST(SeccompFilter, PathCallsAreNotifiedOnlyForVolumes) {
    size_t n = 0;
    const char* const* names = volume_path_syscall_names(&n);
    ASSERT_GT(n, 30u);
    for (bool volumes : {false, true}) {
        auto f = SeccompFilter::build({.notify = true, .volume_paths = volumes, .with_pfc = true});
        ASSERT_TRUE(f) << f.error().message;
        const std::string& pfc = f->pfc();
        for (size_t i = 0; i < n; ++i) {
            std::string quoted = std::string("\"") + names[i] + "\"";
            auto at = pfc.find(quoted);
            ASSERT_NE(at, std::string::npos) << names[i];
            auto next = pfc.find("action", at);
            EXPECT_EQ(pfc.substr(next, 17) == "action 0x7fc00000", volumes) << names[i];
        }
    }
}

} // namespace
} // namespace kos::proc
