// `kos run --backend process` end to end: real static programs (the probe in
// tests/guest/sbx_probe.c, busybox, hello) in the host-process sandbox.
// Covers ATTACKS.md 24 (the sandboxed app's threads), 25 and 27, the
// policy's errno, host paths, network verdicts and limits.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "process-host/process_backend.h"
#include "process-host/sandbox.h"
#include "process-host/sandbox_spec.h"
#include "process.h"

extern char** environ;

using kos::test::ProcessResult;
using kos::test::free_loopback_port;
using kos::test::http_get;
using kos::test::run_process;

namespace {

const std::string kKos = KOS_BINARY;
const std::string kSrc = KOS_SOURCE_DIR;
const std::string kSbx = KOS_SBX_BUNDLE;

class ProcessBackend : public ::testing::Test {
protected:
    void SetUp() override {
        std::string why;
        if (!kos::proc::process_backend_usable(&why)) {
            if (std::getenv("CI"))
                FAIL() << "the process backend must run in CI: " << why;
            GTEST_SKIP() << "process backend test skipped: " << why
                         << " (needs user namespaces and Landlock; see `kos doctor`)";
        }
    }
};

ProcessResult kos_run(const std::string& bundle, const std::vector<std::string>& args,
                      const std::vector<std::string>& options = {}, int timeout = 30) {
    std::vector<std::string> argv = {kKos, "run", "--backend", "process"};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.push_back(bundle);
    if (!args.empty()) {
        argv.push_back("--");
        argv.insert(argv.end(), args.begin(), args.end());
    }
    return run_process(argv, timeout);
}

ProcessResult probe(const std::vector<std::string>& args) {
    std::vector<std::string> a = {"/bin/sbx_probe"};
    a.insert(a.end(), args.begin(), args.end());
    return kos_run(kSbx, a);
}

int count_lines(const std::string& text, const std::string& needle) {
    std::istringstream in(text);
    std::string line;
    int n = 0;
    while (std::getline(in, line))
        n += line.find(needle) != std::string::npos;
    return n;
}

// A scratch bundle with the probe, removed at the end.
class ProbeBundle {
public:
    explicit ProbeBundle(const std::string& extra_toml) {
        char tmpl[] = "/tmp/kos-sbx-XXXXXX";
        m_dir = ::mkdtemp(tmpl);
        ::chmod(m_dir.c_str(), 0755);
        [[maybe_unused]] int rc =
            std::system(("cp -a " + kSbx + "/rootfs " + kSbx + "/policy " + m_dir + "/").c_str());
        // The sbx bundle's behavior config (every bundle needs one).
        std::ofstream(m_dir + "/bundle.toml")
            << "[app]\nname = \"t\"\nentrypoint = [\"/bin/sbx_probe\"]\n"
            << "[labels]\n\"/**\" = \"sbx_bin_t\"\n[policy]\ndomain = \"sbx_t\"\nsources = [\"policy/sbx.kpol\"]\n"
            << extra_toml;
    }
    ~ProbeBundle() { [[maybe_unused]] int rc = std::system(("rm -rf " + m_dir).c_str()); }
    const std::string& dir() const { return m_dir; }

private:
    std::string m_dir;
};

TEST_F(ProcessBackend, HelloExample) {
    auto r = kos_run(kSrc + "/examples/hello", {});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "Hello from kos: an unmodified Linux program in a kos microkernel VM.\n");
}

TEST_F(ProcessBackend, BusyboxShellPipesAndExitStatus) {
    auto r = kos_run(kSrc + "/examples/busybox",
                     {"/bin/busybox", "sh", "-c", "echo kos | /bin/busybox tr a-z A-Z; cat /etc/hostname; exit 7"});
    EXPECT_EQ(r.status, 7) << r.err;
    EXPECT_EQ(r.out, "KOS\nkos-busybox\n");
}

TEST_F(ProcessBackend, HostnameUidAndReadOnlyRoot) {
    auto r = kos_run(kSrc + "/examples/busybox",
                     {"/bin/busybox", "sh", "-c", "/bin/busybox hostname; /bin/busybox id -u; "
                                                  "/bin/busybox touch /bin/x 2>&1; echo ok > /tmp/t && cat /tmp/t"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("kos-busybox\n0\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Read-only file system"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\nok\n"), std::string::npos) << r.out;
}

TEST_F(ProcessBackend, MissingProgramExits127) {
    auto m = kos_run(kSbx, {"/bin/nope"});
    EXPECT_EQ(m.status, 127);
    EXPECT_EQ(m.err, "kos: cannot run /bin/nope: no such file in the bundle's rootfs\n");
}

// ATTACKS.md 24 for the sandboxed app, and the first check.
TEST_F(ProcessBackend, EveryThreadHasSeccompAndNoNewPrivs) {
    auto r = probe({"threads"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(count_lines(r.out, "thread Seccomp=2 NoNewPrivs=1"), 4) << r.out;
    EXPECT_NE(r.out.find("threads 4\n"), std::string::npos) << r.out;
}

TEST_F(ProcessBackend, CapabilitiesAreAllDropped) {
    auto r = kos_run(kSrc + "/examples/busybox", {"/bin/busybox", "grep", "^Cap", "/proc/self/status"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(count_lines(r.out, "0000000000000000"), 5) << r.out;
}

TEST_F(ProcessBackend, ForbiddenSyscallsGetThePolicyErrno) {
    // ptrace (101), bpf (321), mount (165), keyctl (250), unshare (272): EPERM.
    for (const char* nr : {"101", "321", "165", "250", "272"}) {
        auto r = probe({"syscall", nr});
        EXPECT_EQ(r.status, 0) << r.err;
        EXPECT_EQ(r.out, "syscall " + std::string(nr) + " EPERM\n");
    }
    // A call the policy does not mention: ENOSYS.
    auto r = probe({"syscall", "236" /* vserver */});
    EXPECT_EQ(r.out, "syscall 236 ENOSYS\n");
}

// ATTACKS.md 27: io_uring cannot be used to bypass the filter.
TEST_F(ProcessBackend, IoUringIsDenied) {
    auto r = probe({"iouring"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "io_uring_setup EPERM\n");
}

TEST_F(ProcessBackend, X32SyscallKillsTheProgram) {
    auto r = probe({"x32"});
    EXPECT_EQ(r.status, 128 + SIGSYS) << r.out << r.err;
    EXPECT_EQ(r.out, "");
}

TEST_F(ProcessBackend, HostPathsAreUnreachable) {
    for (const std::string& p : {std::string("/etc/shadow"), kSrc + "/README.md", kKos, std::string("/root"),
                                 std::string("/proc/1/root/etc/shadow")}) {
        auto r = probe({"read", p});
        EXPECT_EQ(r.out, "read " + p + " ENOENT\n");
    }
}

// Symlinks in the bundle's rootfs resolve inside the sandbox, never on the host.
TEST_F(ProcessBackend, RootfsSymlinksCannotReachHostPaths) {
    ProbeBundle b("");
    ASSERT_EQ(::symlink("/etc", (b.dir() + "/rootfs/escape").c_str()), 0);
    ASSERT_EQ(::symlink("../../../../../../etc", (b.dir() + "/rootfs/bin/up").c_str()), 0);
    for (const char* p : {"/escape/hostname", "/bin/up/hostname"}) {
        auto r = kos_run(b.dir(), {"/bin/sbx_probe", "read", p});
        EXPECT_EQ(r.out, "read " + std::string(p) + " ENOENT\n") << r.err;
    }
}

TEST_F(ProcessBackend, LandlockDeniesWritesOutsideTmpAndExecFromTmp) {
    auto r = probe({"write", "/proc/sys/kernel/hostname"});
    EXPECT_EQ(r.out, "write /proc/sys/kernel/hostname EACCES\n");
    r = probe({"write", "/tmp/x"});
    EXPECT_EQ(r.out, "write /tmp/x ok\n");
    r = probe({"tmpexec"});
    EXPECT_EQ(r.out, "tmpexec EACCES\n");
}

// ATTACKS.md 25: no descriptor beyond 0-2 reaches the program, even one
// the caller of kos leaked; the kos binary is not visible to write.
TEST_F(ProcessBackend, NoDescriptorLeaks) {
    int leaked = ::open("/etc/hostname", O_RDONLY); // deliberately inheritable
    ASSERT_GE(leaked, 3);
    auto r = probe({"fds"});
    ::close(leaked);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "fd 0\nfd 1\nfd 2\n");
}

TEST_F(ProcessBackend, KosBinaryCannotBeWrittenThroughProc) {
    auto r = probe({"exe"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("self-exe-write EACCES\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("pid1-exe-write EACCES\n"), std::string::npos) << r.out;
    // The only process is the program itself, pid 1 of its namespace.
    EXPECT_EQ(count_lines(r.out, "process "), 1) << r.out;
    EXPECT_NE(r.out.find("process 1 /bin/sbx_probe\n"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("kos"), std::string::npos) << r.out;
}

TEST_F(ProcessBackend, ExecOfAnUndeclaredProgramIsDeniedAndReported) {
    auto r = probe({"exec", "/bin/forbidden"});
    EXPECT_EQ(r.out, "exec /bin/forbidden EACCES\n");
    EXPECT_EQ(count_lines(r.err, "kos: denied execute sbx_t -> sbx_t program=\"/bin/forbidden\" [rule default-deny]"), 1)
        << r.err;
    r = probe({"exec", "/bin/sbx_probe"});
    EXPECT_EQ(r.out, "RAN /bin/sbx_probe\n");
}

// ATTACKS.md 27: a thread rewrites the execve path while the supervisor
// decides. Landlock (EXECUTE only on declared programs) re-checks in the
// kernel, so the forbidden program never runs.
TEST_F(ProcessBackend, RacingPathRewriteAfterNotificationStaysDenied) {
    auto r = kos_run(kSbx, {"/bin/sbx_probe", "race", "/bin/sbx_probe", "/bin/forbidden", "300"}, {}, 60);
    EXPECT_EQ(r.status, 0) << r.err.substr(0, 500);
    EXPECT_EQ(r.out.find("FORBIDDEN-RAN"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("race allowed="), std::string::npos) << r.out;
}

// ATTACKS.md 27: TIOCSTI on the terminal kos was started from.
TEST_F(ProcessBackend, TiocstiIsDeniedOnARealTerminal) {
    int master = ::posix_openpt(O_RDWR | O_NOCTTY);
    ASSERT_GE(master, 0);
    ASSERT_EQ(::grantpt(master), 0);
    ASSERT_EQ(::unlockpt(master), 0);
    int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
    ASSERT_GE(slave, 0);
    termios raw{};
    ASSERT_EQ(::tcgetattr(slave, &raw), 0);
    ::cfmakeraw(&raw); // an injected byte would be readable at once
    ASSERT_EQ(::tcsetattr(slave, TCSANOW, &raw), 0);
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, slave, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, master);
    // kos runs in a new session with the pty as its controlling terminal
    // (setsid -c), the situation of an interactive shell.
    struct stat sst{};
    bool ctty = ::stat("/usr/bin/setsid", &sst) == 0;
    std::vector<std::string> argv = {kKos, "run", "--backend", "process", kSbx, "--", "/bin/sbx_probe", "tiocsti"};
    if (ctty)
        argv.insert(argv.begin(), {"/usr/bin/setsid", "-c"});
    std::vector<char*> args;
    for (auto& a : argv)
        args.push_back(a.data());
    args.push_back(nullptr);
    pid_t pid = 0;
    ASSERT_EQ(::posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    std::string text;
    char buf[256];
    ssize_t n;
    while ((n = ::read(out[0], buf, sizeof buf)) > 0)
        text.append(buf, static_cast<size_t>(n));
    ::close(out[0]);
    int st = 0;
    ::waitpid(pid, &st, 0);
    // Nothing was injected into the terminal's input queue.
    pollfd p{slave, POLLIN, 0};
    int pending = ::poll(&p, 1, 100);
    ::close(slave);
    ::close(master);
    // Denied, and the program has no controlling terminal at all.
    EXPECT_EQ(text, "tiocsti EPERM isatty=1 ctty=0\n");
    EXPECT_EQ(pending, 0);
}

TEST_F(ProcessBackend, ConnectToADisallowedAddressFailsWithOneLine) {
    auto r = probe({"connect", "127.0.0.1", "9"});
    EXPECT_EQ(r.out, "connect 127.0.0.1:9 EACCES\n");
    EXPECT_EQ(r.err, "kos: denied request sbx_t -> net_t net.Socket.connect address=127.0.0.1 port=9 proto=6 "
                     "[rule default-deny]\n");
    r = probe({"bind", "127.0.0.1", "9999"});
    EXPECT_EQ(r.out, "bind 127.0.0.1:9999 EACCES\n");
    EXPECT_EQ(count_lines(r.err, "kos: denied request sbx_t -> net_t net.Socket.bind socket=0 address=127.0.0.1 "
                                 "port=9999 [rule default-deny]"),
              1)
        << r.err;
}

TEST_F(ProcessBackend, AllowedListenAndConnectWorkOnLoopback) {
    auto r = probe({"loopback", "8000"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "loopback ping\n");
    EXPECT_EQ(r.err, "");
}

// The supervisor performs allowed connects itself; one that cannot finish
// (a full accept queue drops its SYNs) must not stall the supervisor, which
// also enforces the wall-time limit.
TEST_F(ProcessBackend, BlockedConnectDoesNotStallTheSupervisor) {
    auto t = std::chrono::steady_clock::now();
    auto r = kos_run(kSbx, {"/bin/sbx_probe", "slowconnect", "8000"}, {"--timeout", "1.5"}, 30);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    EXPECT_EQ(r.status, 128 + SIGKILL) << r.out << r.err;
    EXPECT_NE(r.err.find("wall-time limit (--timeout)"), std::string::npos) << r.err;
    EXPECT_LT(s, 5.0);
}

TEST_F(ProcessBackend, PidsLimitStopsAForkBomb) {
    ProbeBundle b("[limits]\npids = 10\n");
    auto r = kos_run(b.dir(), {"/bin/sbx_probe", "forkbomb", "50"});
    EXPECT_NE(r.out.find("failed="), std::string::npos) << r.out << r.err;
    EXPECT_EQ(r.out.find("failed=0 "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("last=EAGAIN"), std::string::npos) << r.out;
}

TEST_F(ProcessBackend, MemoryLimitIsReported) {
    ProbeBundle b("[limits]\nmemory = \"32M\"\n");
    auto r = kos_run(b.dir(), {"/bin/sbx_probe", "alloc", "256"});
    EXPECT_EQ(r.status, 128 + SIGKILL) << r.out << r.err;
    EXPECT_NE(r.err.find("kos: the program was stopped by its memory limit ([limits] memory = 32 MiB)"),
              std::string::npos)
        << r.err;
}

TEST_F(ProcessBackend, WallTimeLimitIsReported) {
    auto r = kos_run(kSrc + "/examples/busybox", {"/bin/busybox", "sleep", "10"}, {"--timeout", "0.5"});
    EXPECT_EQ(r.status, 128 + SIGKILL);
    EXPECT_NE(r.err.find("wall-time limit (--timeout)"), std::string::npos) << r.err;
}

TEST_F(ProcessBackend, UnprivilegedCallerGetsTheSameSandbox) {
    if (::geteuid() != 0)
        GTEST_SKIP() << "runs kos as nobody from root";
    struct stat st{};
    if (::stat("/usr/bin/setpriv", &st) != 0)
        GTEST_SKIP() << "setpriv (util-linux) is not installed";
    auto r = run_process({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", kKos, "run",
                          "--backend", "process", kSbx, "--", "/bin/sbx_probe", "threads"});
    if (r.status == 125 && r.err.find("clone with new namespaces") != std::string::npos)
        GTEST_SKIP() << "unprivileged user namespaces are disabled here: " << r.err;
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(count_lines(r.out, "thread Seccomp=2 NoNewPrivs=1"), 4) << r.out;
}

// Runs the library in this (single-threaded) test process with its stderr
// (where the supervisor's lines go) captured in `err`.
kos::Result<kos::proc::RunOutcome> run_sandbox_capturing_stderr(const kos::proc::SandboxSpec& spec,
                                                                const kos::proc::RunOptions& o, std::string* err) {
    char errfile[] = "/tmp/kos-sandbox-err-XXXXXX";
    int errfd = ::mkstemp(errfile);
    int saved = ::dup(2);
    ::dup2(errfd, 2);
    auto r = kos::proc::run_sandbox(spec, o);
    ::dup2(saved, 2);
    ::close(saved);
    std::ifstream ef(errfile);
    err->assign(std::istreambuf_iterator<char>(ef), std::istreambuf_iterator<char>());
    ::close(errfd);
    ::unlink(errfile);
    return r;
}

// The dynamic example: Debian's python3 serving HTTP on a published
// port, denied a host file and an undeclared outbound connection. Runs the
// library in this (single-threaded) test process; the client is a child.
TEST_F(ProcessBackend, PythonHttpExampleServesAPublishedPort) {
    std::string dir = kSrc + "/examples/python-http";
    struct stat st{};
    if (::stat((dir + "/rootfs/usr/bin/python3.11").c_str(), &st) != 0)
        GTEST_SKIP() << "the python-http rootfs is not built (needs Debian's python3; run "
                        "examples/python-http/make-rootfs.sh)";
    if (::geteuid() != 0)
        GTEST_SKIP() << "publishing ports with the process backend needs root";
    auto spec = kos::proc::spec_from_bundle_dir(dir, {"/usr/bin/python3", "/app/server.py", "8000", "3"});
    ASSERT_TRUE(spec) << spec.error().message;
    uint16_t port = free_loopback_port();
    kos::proc::RunOptions o;
    o.publish.push_back({"127.0.0.1", port, 8000});
    o.timeout_s = 60;

    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    pid_t client = ::fork();
    if (client == 0) {
        ::close(p[0]);
        std::string out = http_get(port, "/", 20000) + "\n----\n" + http_get(port, "/secret", 0) + "\n----\n" +
                          http_get(port, "/egress", 0);
        [[maybe_unused]] ssize_t w = ::write(p[1], out.data(), out.size());
        ::_exit(0);
    }
    ::close(p[1]);
    std::string err;
    auto r = run_sandbox_capturing_stderr(*spec, o, &err);
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(p[0], buf, sizeof buf)) > 0)
        text.append(buf, static_cast<size_t>(n));
    ::close(p[0]);
    int cst = 0;
    ::waitpid(client, &cst, 0);

    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->kind, kos::proc::RunOutcome::Kind::Exited) << err;
    EXPECT_EQ(r->value, 0) << err;
    EXPECT_NE(text.find("HTTP/1.0 200 OK"), std::string::npos) << text << err;
    EXPECT_NE(text.find("Hello from kos: Debian's python3 in the host-process sandbox."), std::string::npos) << text;
    EXPECT_NE(text.find("denied: open /etc/shadow: No such file or directory"), std::string::npos) << text;
    EXPECT_NE(text.find("denied: connect 10.1.2.3:80: Permission denied"), std::string::npos) << text;
    // The bundle's policy (examples/python-http/policy/app.kpol) decides:
    // one audit line for the egress attempt, none for the quiet DNS deny.
    EXPECT_EQ(count_lines(err, "kos: denied request python_t -> net_t net.Socket.connect address=10.1.2.3 port=80 "
                               "proto=6 [rule policy/app.kpol:16:1]"),
              1)
        << err;
    EXPECT_EQ(err.find("port=53"), std::string::npos) << err;
}

// The supervisor (`kos` itself) parses bytes the program controls, so it
// jails itself once the program runs: every thread of it shows a filter and
// no_new_privs too.
TEST_F(ProcessBackend, SupervisorIsJailedWhileTheProgramRuns) {
    std::vector<std::string> argv = {kKos, "run", "--backend", "process", kSrc + "/examples/busybox", "--",
                                     "/bin/busybox", "sleep", "1"};
    pid_t pid = kos::test::spawn_process(argv);
    ASSERT_GT(pid, 0);
    ::usleep(400'000);
    // The supervisor is the child of the kos process started here (its
    // monitor, cli/instances.h), which records the run.
    int supervisor = kos::test::child_of(pid);
    ASSERT_GT(supervisor, 0);
    std::string task_dir = "/proc/" + std::to_string(supervisor) + "/task";
    int threads = 0;
    if (DIR* d = ::opendir(task_dir.c_str())) {
        while (dirent* e = ::readdir(d)) {
            if (e->d_name[0] == '.')
                continue;
            std::ifstream f(task_dir + "/" + e->d_name + "/status");
            std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
            EXPECT_NE(text.find("Seccomp:\t2\n"), std::string::npos) << text;
            EXPECT_NE(text.find("NoNewPrivs:\t1\n"), std::string::npos) << text;
            ++threads;
        }
        ::closedir(d);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    EXPECT_GE(threads, 1);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

// SIGTERM to kos reaches the program; PID 1 without a handler ignores it,
// so kos kills it after a grace period and still exits cleanly (no stale
// cgroup, status 128 + SIGKILL).
TEST_F(ProcessBackend, TerminationSignalIsForwardedThenEscalated) {
    std::vector<std::string> argv = {kKos, "run", "--backend", "process", kSrc + "/examples/busybox", "--",
                                     "/bin/busybox", "sleep", "30"};
    pid_t pid = kos::test::spawn_process(argv);
    ASSERT_GT(pid, 0);
    ::usleep(300'000);
    auto t = std::chrono::steady_clock::now();
    ::kill(pid, SIGTERM);
    int st = 0;
    ::waitpid(pid, &st, 0);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    EXPECT_TRUE(WIFEXITED(st)) << "kos itself was killed: " << st;
    EXPECT_EQ(WEXITSTATUS(st), 128 + SIGKILL);
    EXPECT_GT(s, 1.5);
    EXPECT_LT(s, 5.0);
}

// --backend auto: with /dev/kvm unusable (hidden in a private mount
// namespace), kos runs the bundle with this backend.
TEST_F(ProcessBackend, AutoPicksTheProcessBackendWithoutKvm) {
    struct stat st{};
    if (::geteuid() != 0 || ::stat("/usr/bin/unshare", &st) != 0 || ::stat("/dev/kvm", &st) != 0)
        GTEST_SKIP() << "needs root, unshare(1) and a /dev/kvm to hide";
    auto r = run_process({"/usr/bin/unshare", "-m", "sh", "-c",
                          "mount --bind /dev/null /dev/kvm && exec " + kKos +
                              " run --backend auto --stats " + kSrc + "/examples/hello"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "Hello from kos: an unmodified Linux program in a kos microkernel VM.\n");
    EXPECT_NE(r.err.find("kos: process backend:"), std::string::npos) << r.err;
    auto d = run_process({"/usr/bin/unshare", "-m", "sh", "-c",
                          "mount --bind /dev/null /dev/kvm && exec " + kKos + " doctor"});
    EXPECT_NE(d.out.find("kos run --backend auto picks:      process"), std::string::npos) << d.out;
}

// ---- verdicts from the bundle's compiled policy ----------------------------

// tests/integration/sbx-policy (bundle.toml, policy/sbx.kpol) beside the sbx
// bundle's rootfs, with /data/public.txt and /data/secret.txt, in a scratch
// directory; `kpol` replaces the policy when not empty.
class PolicyBundle {
public:
    explicit PolicyBundle(const std::string& kpol = "") {
        char tmpl[] = "/tmp/kos-sbxpol-XXXXXX";
        m_dir = ::mkdtemp(tmpl);
        ::chmod(m_dir.c_str(), 0755);
        [[maybe_unused]] int rc = std::system(("cp -a " + kSbx + "/rootfs " + kSrc + "/tests/integration/sbx-policy/* " +
                                               m_dir + "/ && mkdir " + m_dir + "/rootfs/data")
                                                  .c_str());
        std::ofstream(m_dir + "/rootfs/data/public.txt") << "public\n";
        std::ofstream(m_dir + "/rootfs/data/secret.txt") << "secret\n";
        if (!kpol.empty())
            std::ofstream(m_dir + "/policy/sbx.kpol") << kpol;
    }
    ~PolicyBundle() { [[maybe_unused]] int rc = std::system(("rm -rf " + m_dir).c_str()); }
    const std::string& dir() const { return m_dir; }

private:
    std::string m_dir;
};

std::string read_file(const std::string& path) {
    std::ifstream f(path);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// The policy allows connect to 127.0.0.0/8 over TCP and denies every port
// but 8000 (sbx.kpol:12): the explicit deny beats the allow, and names its
// place in the source.
TEST_F(ProcessBackend, PolicyAllowsItsPortAndDeniesAnotherNamingTheRule) {
    PolicyBundle b;
    auto r = kos_run(b.dir(), {"/bin/sbx_probe", "loopback", "8000"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "loopback ping\n");
    EXPECT_EQ(r.err, "");
    r = kos_run(b.dir(), {"/bin/sbx_probe", "connect", "127.0.0.1", "8001"});
    EXPECT_EQ(r.out, "connect 127.0.0.1:8001 EACCES\n");
    EXPECT_EQ(r.err, "kos: denied request sbx_t -> net_t net.Socket.connect address=127.0.0.1 port=8001 proto=6 "
                     "[rule policy/sbx.kpol:12:1]\n");
    // No allow matches at all: the built-in default-deny.
    r = kos_run(b.dir(), {"/bin/sbx_probe", "connect", "10.1.2.3", "8000"});
    EXPECT_EQ(r.out, "connect 10.1.2.3:8000 EACCES\n");
    EXPECT_EQ(count_lines(r.err, "net.Socket.connect address=10.1.2.3 port=8000 proto=6 [rule default-deny]"), 1)
        << r.err;
    r = kos_run(b.dir(), {"/bin/sbx_probe", "bind", "127.0.0.1", "9999"});
    EXPECT_EQ(r.out, "bind 127.0.0.1:9999 EACCES\n");
    EXPECT_EQ(count_lines(r.err, "kos: denied request sbx_t -> net_t net.Socket.bind socket=0 address=127.0.0.1 "
                                 "port=9999 [rule default-deny]"),
              1)
        << r.err;
}

TEST_F(ProcessBackend, PolicyDeniesExecOfAProgramItDoesNotAllow) {
    PolicyBundle b;
    auto r = kos_run(b.dir(), {"/bin/sbx_probe", "exec", "/bin/forbidden"});
    EXPECT_EQ(r.out, "exec /bin/forbidden EACCES\n");
    EXPECT_EQ(r.err, "kos: denied execute sbx_t -> sbx_t program=\"/bin/forbidden\" [rule policy/sbx.kpol:10:1]\n");
    r = kos_run(b.dir(), {"/bin/sbx_probe", "exec", "/bin/sbx_probe"});
    EXPECT_EQ(r.out, "RAN /bin/sbx_probe\n");
    EXPECT_EQ(r.err, "");
    // The policy judges the path as resolved: through a symlink, and
    // relative to the working directory.
    ASSERT_EQ(::symlink("sbx_probe", (b.dir() + "/rootfs/bin/alias").c_str()), 0);
    ASSERT_EQ(::symlink("/bin/forbidden", (b.dir() + "/rootfs/bin/sneaky").c_str()), 0);
    r = kos_run(b.dir(), {"/bin/sbx_probe", "exec", "/bin/alias"});
    EXPECT_EQ(r.out, "RAN /bin/sbx_probe\n") << r.err;
    r = kos_run(b.dir(), {"/bin/sbx_probe", "exec", "/bin/sneaky"});
    EXPECT_EQ(r.out, "exec /bin/sneaky EACCES\n");
    EXPECT_EQ(r.err, "kos: denied execute sbx_t -> sbx_t program=\"/bin/forbidden\" [rule policy/sbx.kpol:10:1]\n");
    r = kos_run(b.dir(), {"/bin/sbx_probe", "exec", "bin/forbidden"});
    EXPECT_EQ(r.out, "exec bin/forbidden EACCES\n");
    EXPECT_EQ(r.err, "kos: denied execute sbx_t -> sbx_t program=\"/bin/forbidden\" [rule policy/sbx.kpol:10:1]\n");
    // A file outside the rootfs is never judged by the policy.
    r = kos_run(b.dir(), {"/bin/sbx_probe", "tmpexec"});
    EXPECT_EQ(r.out, "tmpexec EACCES\n");
    EXPECT_EQ(count_lines(r.err, "kos: denied execve \"/tmp/copy\" by sbx_probe (sbx_t) [rule exec.outside-rootfs]"), 1)
        << r.err;
}

// The entrypoint itself: refused before anything runs, as the VM backend
// refuses it before boot.
TEST_F(ProcessBackend, PolicyRefusesToStartAProgramItDoesNotAllow) {
    PolicyBundle b;
    auto r = kos_run(b.dir(), {"/bin/forbidden", "say"});
    EXPECT_EQ(r.status, 126);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind("kos: the bundle's policy does not allow app (sbx_t) to execute /bin/forbidden [rule "
                          "policy/sbx.kpol:10:1 (deny execute sbx_t -> sbx_t",
                          0),
              0u)
        << r.err;
}

TEST_F(ProcessBackend, PolicyWithFailingTestsRefusesTheRun) {
    PolicyBundle b(read_file(kSrc + "/tests/integration/sbx-policy/policy/sbx.kpol") +
                   "test \"wrong on purpose\" {\n    expect allow execute sbx_t -> sbx_t program=\"/bin/forbidden\"\n}\n");
    auto r = kos_run(b.dir(), {});
    EXPECT_EQ(r.status, 125);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("the policy's tests fail"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("policy/sbx.kpol:"), std::string::npos) << r.err;
}

// What needs the VM's init description is refused, not left out: a second
// process, a pipe between labels.
TEST_F(ProcessBackend, BundlesThatNeedTheVmAreRefusedWithTheReason) {
    PolicyBundle b;
    std::string toml = read_file(b.dir() + "/bundle.toml");
    std::ofstream(b.dir() + "/bundle.toml")
        << toml << "\n[[process]]\nname = \"worker\"\nlabel = \"sbx_t\"\nprogram = [\"/bin/sbx_probe\"]\n";
    auto r = kos_run(b.dir(), {});
    EXPECT_EQ(r.status, 125);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("[[process]] worker: the process backend runs the app alone; run this bundle in the VM"),
              std::string::npos)
        << r.err;
    std::ofstream(b.dir() + "/bundle.toml") << toml << "\n[[pipe]]\npath = \"/data/jobs\"\nlabel = \"jobs_t\"\n";
    r = kos_run(b.dir(), {});
    EXPECT_EQ(r.status, 125);
    EXPECT_NE(r.err.find("[[pipe]] /data/jobs: pipes between labels need the VM's pipe server"), std::string::npos)
        << r.err;
}

// [labels] + class file: Landlock lets the program read only what the
// policy lets its domain read (security sbx_t -> L file.read).
TEST_F(ProcessBackend, PolicyLabelsNarrowWhatTheProgramReads) {
    PolicyBundle b;
    auto r = kos_run(b.dir(), {"/bin/sbx_probe", "read", "/data/public.txt"});
    EXPECT_EQ(r.out, "read /data/public.txt ok\n") << r.err;
    r = kos_run(b.dir(), {"/bin/sbx_probe", "read", "/data/secret.txt"});
    EXPECT_EQ(r.out, "read /data/secret.txt EACCES\n") << r.err;
    r = kos_run(b.dir(), {"/bin/sbx_probe", "read", "/bin/forbidden"});
    EXPECT_EQ(r.out, "read /bin/forbidden ok\n") << r.err;
    // The program's own /proc stays readable.
    r = kos_run(b.dir(), {"/bin/sbx_probe", "threads"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(count_lines(r.out, "thread Seccomp=2 NoNewPrivs=1"), 4) << r.out;
}

// ATTACKS.md 27 under a policy: Landlock's EXECUTE set is what the policy
// allows, so a path rewritten after the verdict still runs nothing else.
TEST_F(ProcessBackend, PolicyRacingPathRewriteStaysDenied) {
    PolicyBundle b;
    auto r = kos_run(b.dir(), {"/bin/sbx_probe", "race", "/bin/sbx_probe", "/bin/forbidden", "200"}, {}, 60);
    EXPECT_EQ(r.status, 0) << r.err.substr(0, 500);
    EXPECT_EQ(r.out.find("FORBIDDEN-RAN"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("race allowed="), std::string::npos) << r.out;
}

TEST_F(ProcessBackend, StatsSayWhereTheVerdictsComeFrom) {
    PolicyBundle b;
    auto r = kos_run(b.dir(), {"/bin/sbx_probe", "say"}, {"--stats"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("kos: process backend: verdicts: the compiled bundle policy (policy/sbx.kpol) through the "
                         "security engine, domain sbx_t"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("kos: process backend: read: labels sbx_bin_t, sbx_data_t; not readable: sbx_secret_t"),
              std::string::npos)
        << r.err;
    // A bundle without a behavior config does not run (DESIGN.md principle 9).
    char tmpl[] = "/tmp/kos-nopol-XXXXXX";
    std::string bare = ::mkdtemp(tmpl);
    [[maybe_unused]] int rc = std::system(("cp -a " + kSbx + "/rootfs " + bare + "/").c_str());
    std::ofstream(bare + "/bundle.toml") << "[app]\nname = \"t\"\nentrypoint = [\"/bin/sbx_probe\"]\n"
                                         << "[policy]\ndomain = \"sbx_t\"\n";
    r = kos_run(bare, {"/bin/sbx_probe", "say"}, {"--stats"});
    EXPECT_EQ(r.status, 125) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("no behavior config"), std::string::npos) << r.err;
    rc = std::system(("rm -rf " + bare).c_str());
}

// --audit-log (RunOptions::audit_log): every audited verdict as a JSON line
// naming the rule. Runs the library in this single-threaded test process.
TEST_F(ProcessBackend, PolicyAuditRecordsGoToTheAuditLog) {
    PolicyBundle b;
    auto spec = kos::proc::spec_from_bundle_dir(b.dir(), {"/bin/sbx_probe", "connect", "127.0.0.1", "8001"});
    ASSERT_TRUE(spec) << spec.error().message;
    std::string log = b.dir() + "/audit.jsonl";
    kos::proc::RunOptions o;
    o.audit_log = log;
    o.timeout_s = 30;
    std::string err;
    auto r = run_sandbox_capturing_stderr(*spec, o, &err);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->denials, 1u);
    EXPECT_EQ(count_lines(err, "[rule policy/sbx.kpol:12:1]"), 1) << err;
    std::string json = read_file(log);
    EXPECT_EQ(count_lines(json, "\"verdict\":\"deny\""), 1) << json;
    EXPECT_NE(json.find("\"rule\":\"policy/sbx.kpol:12:1\""), std::string::npos) << json;
    EXPECT_NE(json.find("\"method\":\"connect\""), std::string::npos) << json;
    EXPECT_NE(json.find("\"port\":8001"), std::string::npos) << json;
    struct stat st{};
    ASSERT_EQ(::stat(log.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// The same bundle under both backends: a program its policy does not allow
// is refused by each, naming the same rule. Needs /dev/kvm (skipped loudly
// without it, failed in CI, as KOS_REQUIRE_KVM does).
TEST_F(ProcessBackend, VmAndProcessBackendsRefuseTheSameProgramByTheSameRule) {
    auto doctor = run_process({kKos, "doctor"});
    std::string kvm_line = doctor.out.substr(0, doctor.out.find('\n'));
    if (kvm_line.rfind("kvm:", 0) != 0 || kvm_line.find(" usable (") == std::string::npos) {
        if (std::getenv("CI"))
            FAIL() << "/dev/kvm is not usable in CI, where VM tests must run: " << doctor.out;
        GTEST_SKIP() << "VM test skipped: /dev/kvm is not usable here: " << kvm_line;
    }
    PolicyBundle b;
    const std::string rule = "[rule policy/sbx.kpol:10:1 (deny execute sbx_t -> sbx_t where program == "
                             "\"/bin/forbidden\")]";
    auto vm = run_process({kKos, "run", "--backend", "vm", b.dir(), "--", "/bin/forbidden", "say"}, 60);
    auto pr = kos_run(b.dir(), {"/bin/forbidden", "say"});
    EXPECT_EQ(vm.status, 126) << vm.err;
    EXPECT_EQ(pr.status, 126) << pr.err;
    EXPECT_NE(vm.err.find(rule), std::string::npos) << vm.err;
    EXPECT_NE(pr.err.find(rule), std::string::npos) << pr.err;
    EXPECT_EQ(vm.err, pr.err);
    // And both run the program the policy allows.
    vm = run_process({kKos, "run", "--backend", "vm", b.dir(), "--", "/bin/sbx_probe", "say"}, 60);
    pr = kos_run(b.dir(), {"/bin/sbx_probe", "say"});
    EXPECT_EQ(vm.status, 0) << vm.err;
    EXPECT_EQ(pr.status, 0) << pr.err;
    // (`say` prints /proc/self/exe, which the VM's personality does not resolve.)
    EXPECT_EQ(vm.out.rfind("RAN ", 0), 0u) << vm.out;
    EXPECT_EQ(pr.out, "RAN /bin/sbx_probe\n");
}

TEST_F(ProcessBackend, DoctorReportsLandlockAndTheBackend) {
    auto r = run_process({kKos, "doctor"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("landlock:"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ABI "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("user_notif"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("kos run --backend auto picks:"), std::string::npos) << r.out;
}

} // namespace

// ---- volumes (kos run -v) ----------------------------------------------------

namespace {

// The policy rules that let app_t reach paths in volumes at all: every
// call naming a path in a volume is a request to the VFS server (vfs_t),
// judged before the volume's label, under both backends (the VM backend
// also judges the server's responses; the process backend has none to
// judge). `vfs_rules` replaces the last line with narrower rules.
std::string volume_policy(const std::string& vfs_rules = "allow request app_t -> vfs_t vfs.File.*\n") {
    return "idl \"vfs.kidl\"\n"
           "domain app_t, vfs_t\nresource app_file_t, vol_rw_t, vol_ro_t, vol_none_t\n"
           "allow response vfs_t -> app_t vfs.File.*\n"
           "class file { read: read, write: write, execute: read }\n"
           "allow execute app_t -> app_t where program glob \"/bin/*\"\n"
           "allow security app_t -> { app_file_t, vol_rw_t, vol_ro_t } file.read\n"
           "allow security app_t -> vol_rw_t file.write\n" +
           vfs_rules;
}

// A bundle with busybox and the probe whose policy reads volumes by label:
// vol_rw_t read and write, vol_ro_t read, vol_none_t nothing, and lets it
// reach every path in them (volume_policy); it declares [volumes.shared] at
// /shared (rw, vol_rw_t). Beside it, a host directory `vol` (the volume,
// holding in.txt) and, outside the volume, secret.txt with a unique secret.
class VolumeBundle {
public:
    explicit VolumeBundle(const std::string& policy = volume_policy()) {
        char tmpl[] = "/tmp/kos-vol-XXXXXX";
        m_dir = ::mkdtemp(tmpl);
        ::chmod(m_dir.c_str(), 0755);
        [[maybe_unused]] int rc = std::system(("mkdir -p " + m_dir + "/bundle/policy " + m_dir + "/vol && cp -a " + kSrc +
                                               "/examples/busybox/rootfs " + m_dir + "/bundle/ && cp " + kSbx +
                                               "/rootfs/bin/sbx_probe " + m_dir + "/bundle/rootfs/bin/")
                                                  .c_str());
        std::ofstream(bundle() + "/bundle.toml")
            << "[app]\nname = \"vol\"\nentrypoint = [\"/bin/busybox\"]\nenv = [\"PATH=/bin\"]\n"
            << "[labels]\n\"/**\" = \"app_file_t\"\n"
            << "[policy]\ndomain = \"app_t\"\nsources = [\"policy/app.kpol\"]\n"
            << "[volumes.shared]\npath = \"/shared\"\naccess = \"rw\"\nlabel = \"vol_rw_t\"\n";
        std::ofstream(bundle() + "/policy/app.kpol") << policy;
        m_secret = "kos-volume-secret-" + std::to_string(::getpid()) + "-" + std::to_string(::time(nullptr));
        std::ofstream(m_dir + "/secret.txt") << m_secret << "\n";
        std::ofstream(vol() + "/in.txt") << "from the host\n";
    }
    ~VolumeBundle() { [[maybe_unused]] int rc = std::system(("rm -rf " + m_dir).c_str()); }
    std::string bundle() const { return m_dir + "/bundle"; }
    std::string vol() const { return m_dir + "/vol"; }
    const std::string& dir() const { return m_dir; }
    const std::string& secret() const { return m_secret; }

private:
    std::string m_dir;
    std::string m_secret;
};

std::vector<std::string> list_dir(const std::string& path) {
    std::vector<std::string> names;
    if (DIR* d = ::opendir(path.c_str())) {
        while (dirent* e = ::readdir(d))
            if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
                names.push_back(e->d_name);
        ::closedir(d);
    }
    std::sort(names.begin(), names.end());
    return names;
}

class ProcessVolumes : public ProcessBackend {};

} // namespace

TEST_F(ProcessVolumes, ReadOnlyVolumeReadsAHostFile) {
    VolumeBundle b;
    auto r = kos_run(b.bundle(), {"/bin/busybox", "cat", "/data/in.txt"}, {"-v", b.vol() + ":/data:ro,label=vol_ro_t"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "from the host\n");
    EXPECT_EQ(r.err, "");
    // The bundle's declared volume, attached by name.
    r = kos_run(b.bundle(), {"/bin/busybox", "cat", "/shared/in.txt"}, {"-v", "shared=" + b.vol()});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "from the host\n");
}

TEST_F(ProcessVolumes, WritableVolumeWritesToTheHost) {
    VolumeBundle b;
    auto r = kos_run(b.bundle(),
                     {"/bin/busybox", "sh", "-c",
                      "echo written inside > /data/out.txt && mkdir /data/sub && echo deeper > /data/sub/f && "
                      "rm /data/in.txt && /bin/busybox stat -c '%u %g' /data/out.txt"},
                     {"-v", b.vol() + ":/data:rw,label=vol_rw_t"});
    EXPECT_EQ(r.status, 0) << r.err;
    // Inside, the files the host directory's owner owns are the program's
    // (the bundle's [app] user, 0 here).
    EXPECT_EQ(r.out, "0 0\n") << r.err;
    EXPECT_EQ(read_file(b.vol() + "/out.txt"), "written inside\n");
    EXPECT_EQ(read_file(b.vol() + "/sub/f"), "deeper\n");
    EXPECT_EQ(list_dir(b.vol()), (std::vector<std::string>{"out.txt", "sub"}));
    // On the host, what the program created belongs to the directory's owner.
    struct stat st{}, dir{};
    ASSERT_EQ(::stat((b.vol() + "/out.txt").c_str(), &st), 0);
    ASSERT_EQ(::stat(b.vol().c_str(), &dir), 0);
    EXPECT_EQ(st.st_uid, dir.st_uid);
    EXPECT_EQ(st.st_gid, dir.st_gid);
    // Nothing is executable from a volume (noexec), even a copy of an allowed program.
    r = kos_run(b.bundle(), {"/bin/busybox", "sh", "-c", "cp /bin/busybox /data/bb && /data/bb true; echo $?"},
                {"-v", b.vol() + ":/data:rw,label=vol_rw_t"});
    EXPECT_EQ(r.out, "126\n") << r.err;
}

TEST_F(ProcessVolumes, WritingIntoAReadOnlyVolumeFailsAndTheHostIsUnchanged) {
    VolumeBundle b;
    auto before = list_dir(b.vol());
    auto r = kos_run(b.bundle(), {"/bin/sbx_probe", "write", "/data/new"}, {"-v", b.vol() + ":/data:ro,label=vol_rw_t"});
    EXPECT_EQ(r.out, "write /data/new EROFS\n") << r.err;
    r = kos_run(b.bundle(), {"/bin/busybox", "sh", "-c", "echo x > /data/in.txt; rm /data/in.txt; mkdir /data/d"},
                {"-v", b.vol() + ":/data:ro,label=vol_rw_t"});
    EXPECT_NE(r.err.find("Read-only file system"), std::string::npos) << r.err;
    EXPECT_EQ(list_dir(b.vol()), before);
    EXPECT_EQ(read_file(b.vol() + "/in.txt"), "from the host\n");
    // rw on the command line, but the policy allows vol_ro_t reads only:
    // the label check refuses the write (EACCES and its audit line, as the
    // guest kernel refuses it), and the volume is mounted read-only anyway.
    r = kos_run(b.bundle(), {"/bin/sbx_probe", "write", "/data/new"}, {"-v", b.vol() + ":/data:rw,label=vol_ro_t"});
    EXPECT_EQ(r.out, "write /data/new EACCES\n") << r.err;
    EXPECT_EQ(r.err, "kos: denied security app_t -> vol_ro_t file.write [rule default-deny]\n");
    r = kos_run(b.bundle(), {"/bin/sbx_probe", "read", "/data/in.txt"}, {"-v", b.vol() + ":/data:rw,label=vol_ro_t"});
    EXPECT_EQ(r.out, "read /data/in.txt ok\n") << r.err;
    EXPECT_EQ(list_dir(b.vol()), before);
}

TEST_F(ProcessVolumes, ALabelThePolicyDoesNotAllowIsInaccessible) {
    VolumeBundle b;
    auto r = kos_run(b.bundle(), {"/bin/sbx_probe", "read", "/data/in.txt"}, {"-v", b.vol() + ":/data:rw,label=vol_none_t"});
    EXPECT_EQ(r.out, "read /data/in.txt EACCES\n") << r.err;
    // The VFS request is allowed (vfs.File.*), the label is not: the
    // label check's audit line, as the guest kernel prints it.
    EXPECT_EQ(r.err, "kos: note: volume " + b.vol() + " -> /data (rw, label vol_none_t): the bundle's policy lets app_t "
                     "neither read nor write it, so it is mounted but inaccessible; to use it, add `allow security "
                     "app_t -> vol_none_t file.read` (and `file.write` to write) to the bundle's policy "
                     "(policy/app.kpol)\n"
                     "kos: denied security app_t -> vol_none_t file.read [rule default-deny]\n");
    r = kos_run(b.bundle(), {"/bin/busybox", "sh", "-c", "cat /data/in.txt; ls /data; echo x > /data/new; cat /etc/hostname"},
                {"-v", b.vol() + ":/data:rw,label=vol_none_t"});
    EXPECT_EQ(count_lines(r.err, "Permission denied"), 3) << r.err;
    EXPECT_EQ(count_lines(r.err, "kos: denied security app_t -> vol_none_t file.read"), 2) << r.err;
    EXPECT_EQ(count_lines(r.err, "kos: denied security app_t -> vol_none_t file.write"), 1) << r.err;
    // The rest of the rootfs stays readable.
    EXPECT_EQ(r.out, "kos-busybox\n") << r.err;
    EXPECT_EQ(list_dir(b.vol()), (std::vector<std::string>{"in.txt"}));
}

// Paths and symlinks inside a volume resolve beneath the volume, never on
// the host: a secret beside the volume's host directory is never read. A
// symlink in the volume that leads out of it (absolute, or with `..`) is
// refused with EACCES, as the VM's file service refuses it; `..` in the path
// itself is removed before anything is judged, so it names a sandbox path.
TEST_F(ProcessVolumes, EscapesDoNotReachTheHost) {
    VolumeBundle b;
    ASSERT_EQ(::symlink((b.dir() + "/secret.txt").c_str(), (b.vol() + "/abs").c_str()), 0);
    ASSERT_EQ(::symlink("../secret.txt", (b.vol() + "/rel").c_str()), 0);
    ASSERT_EQ(::symlink(b.dir().c_str(), (b.vol() + "/up").c_str()), 0);
    std::string script;
    const std::vector<std::string> paths = {"/data/../secret.txt", "/data/../../" + b.dir() + "/secret.txt", "/data/abs",
                                            "/data/rel", "/data/up/secret.txt",
                                            "/data/../../../../../../" + b.dir() + "/secret.txt",
                                            b.dir() + "/secret.txt", "/proc/1/root" + b.dir() + "/secret.txt"};
    for (const std::string& p : paths)
        script += "cat " + p + "; ";
    // The program's own symlink, and a hard link attempt, lead nowhere either.
    script += "ln -s " + b.dir() + "/secret.txt /data/mine; cat /data/mine; ln " + b.dir() + "/secret.txt /data/hard; "
              "cd /data/up && cat secret.txt; echo done";
    auto r = kos_run(b.bundle(), {"/bin/busybox", "sh", "-c", script}, {"-v", b.vol() + ":/data:rw,label=vol_rw_t"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "done\n") << r.err;
    EXPECT_EQ(r.out.find(b.secret()), std::string::npos);
    EXPECT_EQ(r.err.find(b.secret()), std::string::npos);
    EXPECT_GE(count_lines(r.err, "No such file or directory"), 6) << r.err;
    EXPECT_GE(count_lines(r.err, "Permission denied"), 4) << r.err;
    // Same through the probe, with its exact errno.
    for (const std::string p : {"/data/abs", "/data/rel", "/data/up/secret.txt"}) {
        r = kos_run(b.bundle(), {"/bin/sbx_probe", "read", p}, {"-v", b.vol() + ":/data:ro,label=vol_ro_t"});
        EXPECT_EQ(r.out, "read " + p + " EACCES\n") << r.err;
    }
    r = kos_run(b.bundle(), {"/bin/sbx_probe", "read", "/data/../secret.txt"}, {"-v", b.vol() + ":/data:ro,label=vol_ro_t"});
    EXPECT_EQ(r.out, "read /data/../secret.txt ENOENT\n") << r.err;
}

// -v errors: exit 125 with the message, nothing started (a valid rw
// volume beside the bad one stays empty).
TEST_F(ProcessVolumes, BadVolumeValuesExit125AndStartNothing) {
    VolumeBundle b;
    std::string out = b.dir() + "/out";
    ASSERT_EQ(::mkdir(out.c_str(), 0755), 0);
    std::vector<std::string> touch = {"/bin/busybox", "touch", "/out/ran"};
    std::string ok = out + ":/out:rw,label=vol_rw_t";
    auto r = kos_run(b.bundle(), touch, {"-v", ok, "-v", b.dir() + "/missing:/data:ro,label=vol_ro_t"});
    EXPECT_EQ(r.status, 125);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "kos: -v " + b.dir() + "/missing:/data:ro,label=vol_ro_t: host directory " + b.dir() +
                         "/missing: No such file or directory (create it first)\n");
    r = kos_run(b.bundle(), touch, {"-v", ok, "-v", b.vol() + ":/data:ro,lable=vol_ro_t"});
    EXPECT_EQ(r.status, 125);
    EXPECT_EQ(r.err, "kos: -v " + b.vol() + ":/data:ro,lable=vol_ro_t: unknown option \"lable=vol_ro_t\" (options: ro, "
                     "rw, label=LABEL, separated by commas)\n");
    // A mount point the rootfs cannot offer.
    r = kos_run(b.bundle(), touch, {"-v", ok, "-v", b.vol() + ":/etc/app/data:ro,label=vol_ro_t"});
    EXPECT_EQ(r.status, 125);
    EXPECT_EQ(r.err, "kos: /etc/app/data: /etc is part of the bundle's rootfs and has no directory app/data; create the "
                     "mount point in the bundle or choose a path outside the rootfs's directories\n");
    ASSERT_EQ(::symlink("etc", (b.bundle() + "/rootfs/conf").c_str()), 0);
    r = kos_run(b.bundle(), touch, {"-v", ok, "-v", b.vol() + ":/conf:ro,label=vol_ro_t"});
    EXPECT_EQ(r.status, 125);
    EXPECT_NE(r.err.find("/conf is a symlink in the bundle's rootfs"), std::string::npos) << r.err;
    r = kos_run(b.bundle(), touch, {"-v", ok, "-v", b.vol() + ":/tmp/data:ro,label=vol_ro_t"});
    EXPECT_EQ(r.status, 125);
    EXPECT_NE(r.err.find("/tmp is the sandbox's own tmpfs"), std::string::npos) << r.err;
    EXPECT_EQ(list_dir(out), std::vector<std::string>{});
    // And with the good volume alone, the program runs.
    r = kos_run(b.bundle(), touch, {"-v", ok});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(list_dir(out), std::vector<std::string>{"ran"});
}

// A volume over a directory of the rootfs hides it; one under a name the
// rootfs lacks gets directories created in the root tmpfs.
TEST_F(ProcessVolumes, MountPointsOverRootfsDirectoriesAndCreatedOnes) {
    VolumeBundle b;
    ASSERT_EQ(::mkdir((b.bundle() + "/rootfs/etc/app").c_str(), 0755), 0);
    std::ofstream(b.bundle() + "/rootfs/etc/app/hidden") << "rootfs\n";
    auto r = kos_run(b.bundle(), {"/bin/busybox", "sh", "-c", "ls /etc/app; cat /srv/a/b/in.txt; cat /etc/hostname"},
                     {"-v", b.vol() + ":/etc/app:ro,label=vol_ro_t", "-v", b.vol() + ":/srv/a/b:ro,label=vol_ro_t"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "in.txt\nfrom the host\nkos-busybox\n");
}

TEST_F(ProcessVolumes, StatsReportTheVolumeDecisions) {
    VolumeBundle b;
    auto r = kos_run(b.bundle(), {"/bin/busybox", "true"},
                     {"--stats", "-v", b.vol() + ":/data:rw,label=vol_ro_t", "-v", b.vol() + ":/none:ro,label=vol_none_t"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("kos: process backend: volume " + b.vol() + " -> /data (rw, label vol_ro_t): read (file.read "
                         "allowed, file.write denied); mounted read-only, nosuid, nodev, noexec on directories created in the "
                         "root tmpfs\n"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("kos: process backend: volume " + b.vol() + " -> /none (ro, label vol_none_t): no access "
                         "(file.read denied); mounted read-only, nosuid, nodev, noexec"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(count_lines(r.err, "kos: note: volume " + b.vol() + " -> /none"), 1) << r.err;
}

// ---- paths in volumes: the VFS server's requests (vfs.File.*) ---------------

namespace {

// Each path call on a volume is judged as the request the guest's runtime
// sends the VFS server, before the label; these rules name methods and
// paths of the bundle's volume /shared.
const char* kVfsRules =
    "allow request app_t -> vfs_t vfs.File.{open, stat} where path glob \"/shared/ok/**\"\n"
    "allow request app_t -> vfs_t vfs.File.{open, stat} where path == \"/shared\"\n"
    "allow request app_t -> vfs_t vfs.File.mkdir where path glob \"/shared/ok/new*\"\n"
    "allow request app_t -> vfs_t vfs.File.unlink where path glob \"/shared/ok/tmp*\"\n"
    "allow request app_t -> vfs_t vfs.File.rename where old_path glob \"/shared/ok/*\" and new_path glob "
    "\"/shared/ok/done/*\"\n"
    "allow request app_t -> vfs_t vfs.File.symlink where path glob \"/shared/ok/*\" and target == \"a\"\n";

// A VolumeBundle under kVfsRules with, in its volume, ok/a ("ok"), ok/b,
// ok/tmp1, ok/done/ and no/secret.txt ("SECRET").
class VfsBundle : public VolumeBundle {
public:
    VfsBundle() : VolumeBundle(volume_policy(kVfsRules)) {
        [[maybe_unused]] int rc = std::system(("mkdir -p " + vol() + "/ok/done " + vol() + "/no").c_str());
        std::ofstream(vol() + "/ok/a") << "ok\n";
        std::ofstream(vol() + "/ok/b") << "b\n";
        std::ofstream(vol() + "/ok/tmp1") << "t\n";
        std::ofstream(vol() + "/no/secret.txt") << "SECRET\n";
    }
    std::vector<std::string> shared() const { return {"-v", "shared=" + vol()}; }
};

} // namespace

TEST_F(ProcessVolumes, EachPathCallIsJudgedAsAVfsRequest) {
    VfsBundle b;
    // An allowed open works, and what it writes reaches the host.
    auto r = kos_run(b.bundle(), {"/bin/busybox", "sh", "-c", "cat /shared/ok/a && echo written > /shared/ok/out"},
                     b.shared());
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "ok\n");
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(read_file(b.vol() + "/ok/out"), "written\n");
    ASSERT_EQ(::unlink((b.vol() + "/ok/out").c_str()), 0);
    // Another path in the same volume: EACCES and the line naming the request.
    r = kos_run(b.bundle(), {"/bin/sbx_probe", "read", "/shared/no/secret.txt"}, b.shared());
    EXPECT_EQ(r.out, "read /shared/no/secret.txt EACCES\n");
    // (musl's open adds O_LARGEFILE, 0x8000, which both backends leave out
    // of the request: a rule on flags reads the same for musl and glibc.)
    EXPECT_EQ(r.err, "kos: denied request app_t -> vfs_t vfs.File.open path=\"/shared/no/secret.txt\" flags=0 "
                     "mode=0 [rule default-deny]\n");
    // The path judged is the normalized one, whatever the program wrote.
    r = kos_run(b.bundle(), {"/bin/sbx_probe", "read", "/shared/ok/../no//./secret.txt"}, b.shared());
    EXPECT_EQ(r.out, "read /shared/ok/../no//./secret.txt EACCES\n");
    EXPECT_EQ(count_lines(r.err, "vfs.File.open path=\"/shared/no/secret.txt\""), 1) << r.err;
    // Relative to the working directory.
    r = kos_run(b.bundle(), {"/bin/busybox", "sh", "-c", "cd /shared/ok && cat a && cat ../no/secret.txt"}, b.shared());
    EXPECT_EQ(r.out, "ok\n");
    EXPECT_EQ(count_lines(r.err, "vfs.File.open path=\"/shared/no/secret.txt\""), 1) << r.err;
    // Listing: the directory itself may be opened, each entry is stat'ed.
    r = kos_run(b.bundle(), {"/bin/busybox", "ls", "/shared/ok"}, b.shared());
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "a\nb\ndone\ntmp1\n");
}

TEST_F(ProcessVolumes, MkdirUnlinkRenameSymlinkFollowTheirOwnRules) {
    VfsBundle b;
    auto r = kos_run(b.bundle(),
                     {"/bin/busybox", "sh", "-c",
                      "mkdir /shared/ok/new1; mkdir /shared/ok/other; rm /shared/ok/tmp1; rm /shared/ok/b; "
                      "mv /shared/ok/a /shared/ok/done/a; mv /shared/ok/b /shared/ok/c; ln -s a /shared/ok/l1; "
                      "ln -s /etc/passwd /shared/ok/l2; true"},
                     b.shared());
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(list_dir(b.vol() + "/ok"), (std::vector<std::string>{"b", "done", "l1", "new1"})) << r.err;
    EXPECT_EQ(list_dir(b.vol() + "/ok/done"), std::vector<std::string>{"a"});
    char target[16] = {};
    EXPECT_EQ(::readlink((b.vol() + "/ok/l1").c_str(), target, sizeof target - 1), 1);
    EXPECT_STREQ(target, "a");
    EXPECT_EQ(count_lines(r.err, "kos: denied request app_t -> vfs_t vfs.File.mkdir path=\"/shared/ok/other\""), 1)
        << r.err;
    EXPECT_EQ(count_lines(r.err, "kos: denied request app_t -> vfs_t vfs.File.unlink path=\"/shared/ok/b\""), 1)
        << r.err;
    EXPECT_EQ(count_lines(r.err, "kos: denied request app_t -> vfs_t vfs.File.rename old_path=\"/shared/ok/b\" "
                                 "new_path=\"/shared/ok/c\""),
              1)
        << r.err;
    EXPECT_EQ(count_lines(r.err, "kos: denied request app_t -> vfs_t vfs.File.symlink path=\"/shared/ok/l2\" "
                                 "target=\"/etc/passwd\""),
              1)
        << r.err;
    // On the host, the new directory belongs to the volume's owner.
    struct stat st{}, dir{};
    ASSERT_EQ(::stat((b.vol() + "/ok/new1").c_str(), &st), 0);
    ASSERT_EQ(::stat(b.vol().c_str(), &dir), 0);
    EXPECT_EQ(st.st_uid, dir.st_uid);
    EXPECT_EQ(st.st_mode & 07777, 0755u); // the program's umask (022)
}

// ATTACKS.md 27 for volumes: a thread rewrites the path while open waits
// for the verdict. The supervisor opens its own copy, and a path outside
// the volume continues in the kernel, where Landlock grants nothing beneath
// the volume: the denied file is never read.
TEST_F(ProcessVolumes, PolicyRacingPathRewriteInAVolumeStaysDenied) {
    VfsBundle b;
    for (const std::string allowed : {"/shared/ok/a", "/etc/hostname"}) {
        auto r = kos_run(b.bundle(), {"/bin/sbx_probe", "openrace", allowed, "/shared/no/secret.txt", "3000"},
                         b.shared(), 60);
        EXPECT_EQ(r.status, 0) << r.err.substr(0, 500);
        EXPECT_EQ(r.out.find("DENIED-READ"), std::string::npos) << r.out;
        EXPECT_NE(r.out.find("openrace ok="), std::string::npos) << r.out;
        EXPECT_EQ(r.out.find("refused=0 "), std::string::npos) << r.out; // the race did reach the denied path
        // stat, which the supervisor performs for every path while volumes are attached.
        r = kos_run(b.bundle(), {"/bin/sbx_probe", "statrace", allowed, "/shared/no/secret.txt", "3000"}, b.shared(),
                    60);
        EXPECT_EQ(r.status, 0) << r.err.substr(0, 500);
        EXPECT_EQ(r.out.find("DENIED-STAT"), std::string::npos) << r.out;
        EXPECT_EQ(r.out.find("refused=0 "), std::string::npos) << r.out;
    }
}

// Descriptors the supervisor added: I/O on them is the kernel's (the open
// was the decision); a path relative to a volume directory descriptor is
// judged with the joined path.
TEST_F(ProcessVolumes, OpenatRelativeToAVolumeDirectoryIsJudgedWithTheJoinedPath) {
    VfsBundle b;
    auto r = kos_run(b.bundle(), {"/bin/sbx_probe", "fdops", "/shared/ok", "f1"}, b.shared());
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "open /shared/ok ok\ndir-cloexec 1\nopenat f1 ok\nwrite ok\nftruncate ok\npread ok 0123\nfchmod ok\n"
                     "fstat ok mode=600 size=4\ncloexec 0\ngetdents ok\nfstatat ok\n");
    EXPECT_EQ(read_file(b.vol() + "/ok/f1"), "0123");
    r = kos_run(b.bundle(), {"/bin/sbx_probe", "fdops", "/shared/ok", "../no/secret.txt"}, b.shared());
    EXPECT_EQ(r.out, "open /shared/ok ok\ndir-cloexec 1\nopenat ../no/secret.txt EACCES\ngetdents ok\nfstatat EACCES\n");
    EXPECT_EQ(count_lines(r.err, "kos: denied request app_t -> vfs_t vfs.File.open path=\"/shared/no/secret.txt\""), 1)
        << r.err;
    EXPECT_EQ(count_lines(r.err, "kos: denied request app_t -> vfs_t vfs.File.stat path=\"/shared/no/secret.txt\""), 1)
        << r.err;
}

// The VFS request allowed, the label not: the label still decides.
TEST_F(ProcessVolumes, TheLabelStillDecidesWhenTheRequestIsAllowed) {
    VfsBundle b;
    // (An anonymous volume at the same path: the bundle's own [volumes.shared] fixes its label.)
    auto r = kos_run(b.bundle(), {"/bin/sbx_probe", "read", "/shared/ok/a"},
                     {"-v", b.vol() + "/ok:/shared/ok:ro,label=vol_none_t"});
    EXPECT_EQ(r.out, "read /shared/ok/a EACCES\n");
    EXPECT_EQ(count_lines(r.err, "kos: denied security app_t -> vol_none_t file.read [rule default-deny]"), 1) << r.err;
    // Read-only: writes fail with EROFS after the request is allowed.
    r = kos_run(b.bundle(), {"/bin/sbx_probe", "write", "/shared/ok/a"}, {"-v", b.vol() + "/ok:/shared/ok:ro,label=vol_rw_t"});
    EXPECT_EQ(r.out, "write /shared/ok/a EROFS\n");
    EXPECT_EQ(read_file(b.vol() + "/ok/a"), "ok\n");
}

// A policy that never mentions vfs_t: every path in a volume is refused
// (fail closed), and the run says why once.
TEST_F(ProcessVolumes, APolicyWithoutVfsRefusesEveryVolumePathAndSaysSo) {
    VolumeBundle b("domain app_t\nresource app_file_t, vol_rw_t\nclass file { read: read, write: write, execute: read }\n"
                   "allow execute app_t -> app_t where program glob \"/bin/*\"\n"
                   "allow security app_t -> { app_file_t, vol_rw_t } file.{read, write}\n");
    auto r = kos_run(b.bundle(), {"/bin/busybox", "sh", "-c", "cat /shared/in.txt; echo x > /shared/new; cat /etc/hostname"},
                     {"-v", "shared=" + b.vol()});
    EXPECT_EQ(r.out, "kos-busybox\n") << r.err;
    // The VM backend's words (cli/cmd_run.cc), once.
    EXPECT_EQ(r.err, "kos: note: the bundle's policy declares no vfs_t, the label of the VFS server that serves volumes, "
                     "so every path in " + b.vol() + " -> /shared (rw, label vol_rw_t) fails (EACCES); to use it, "
                     "declare `domain vfs_t` and allow `request app_t -> vfs_t vfs.File.*` and `response vfs_t -> "
                     "app_t vfs.File.*` (or narrower rules)\n"
                     "cat: can't open '/shared/in.txt': Permission denied\n"
                     "sh: can't create /shared/new: Permission denied\n");
    EXPECT_EQ(list_dir(b.vol()), std::vector<std::string>{"in.txt"});
}

// The calls the supervisor performs behave as the kernel's own: stat
// buffers, link targets, modes, times, links, renames, errors.
TEST_F(ProcessVolumes, PathCallsPerformedByTheSupervisorBehaveAsLinuxOnes) {
    VolumeBundle b;
    auto r = kos_run(b.bundle(), {"/bin/sbx_probe", "pathcalls", "/shared"}, {"-v", "shared=" + b.vol()});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "creat ok\nwrite ok\ntruncate ok\nstat ok size=3 mode=644 uid=0\nstatx ok size=3\naccess ok\n"
                     "access-x EACCES\nfaccessat2 ok\nchmod ok\nmode 640\nutimensat ok\nmtime 1200000000\nsymlink ok\n"
                     "readlink ok pa\nreadlink-short 1\nreadlink-file Invalid argument\nlstat ok link=1\n"
                     "chmod-nofollow Not supported\nlink ok\nnlink 2\nunlink ok\nlinkat-follow ok\nlinked-file 1\n"
                     "rename-noreplace File exists\nrename ok\nmkdir ok\nrmdir-notdir Not a directory\nrmdir ok\n"
                     "mknod EACCES\nunlink-missing ok\nunlink-all ok\n");
    EXPECT_EQ(r.err, "kos: denied mknod \"/shared/pd\" by sbx_probe (app_t) [rule vfs.mknod]: device nodes, FIFOs and "
                     "sockets cannot be made in a volume\n");
    EXPECT_EQ(list_dir(b.vol()), std::vector<std::string>{"in.txt"});
}

// Without volumes nothing changes: path calls stay in the kernel (the
// filter notifies only connect, bind and execve), so opening files costs
// no notification.
TEST_F(ProcessVolumes, RunsWithoutVolumesGetNoPathNotifications) {
    VolumeBundle b;
    auto count = [&](const std::string& script, const std::vector<std::string>& volume) {
        std::vector<std::string> o = {"--stats"};
        o.insert(o.end(), volume.begin(), volume.end());
        auto r = kos_run(b.bundle(), {"/bin/busybox", "sh", "-c", script}, o);
        EXPECT_EQ(r.status, 0) << r.err;
        auto at = r.err.find(" notifications, ");
        EXPECT_NE(at, std::string::npos) << r.err;
        auto from = r.err.rfind(' ', at - 1) + 1;
        return std::stoi(r.err.substr(from, at - from));
    };
    // One exec each (cat); one open, or five.
    std::string one = "cat /etc/hostname > /dev/null";
    std::string five = "cat /etc/hostname /etc/hostname /etc/hostname /etc/hostname /bin/busybox > /dev/null";
    EXPECT_EQ(count(five, {}), count(one, {}));
    EXPECT_GT(count(five, {"-v", "shared=" + b.vol()}), count(one, {"-v", "shared=" + b.vol()}));
}

// Landlock does not mediate metadata (stat, access, readlink, chmod, file
// times): with volumes the supervisor resolves those calls for every path,
// as the kernel would, so a symlink elsewhere, /proc/self/cwd or /dev/fd
// that leads into a volume is judged by the path it reaches.
TEST_F(ProcessVolumes, MetadataThroughPathsOutsideTheVolumeIsJudgedWhereItLeads) {
    VfsBundle b;
    auto r = kos_run(b.bundle(),
                     {"/bin/busybox", "sh", "-c",
                      "ln -s /shared/no/secret.txt /tmp/l; cd /shared/no; stat -c %s /proc/self/cwd/secret.txt; "
                      "stat -c %s /dev/fd/../cwd/secret.txt; stat -L -c %s /tmp/l; touch /tmp/l; "
                      "stat -c %s /proc/1/cwd/../ok/a; readlink /tmp/l; stat -c %a /etc/hostname; echo done"},
                     b.shared());
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "3\n/shared/no/secret.txt\n644\ndone\n") << r.err;
    EXPECT_EQ(count_lines(r.err, "kos: denied request app_t -> vfs_t vfs.File.stat path=\"/shared/no/secret.txt\""), 3)
        << r.err;
    EXPECT_EQ(count_lines(r.err, "kos: denied request app_t -> vfs_t vfs.File.set_times path=\"/shared/no/secret.txt\""),
              1)
        << r.err;
    EXPECT_EQ(r.err.find("SECRET"), std::string::npos);
}

// Landlock cannot grant READ_DIR on a directory above a mount point (the
// right would reach into the volume), so the supervisor opens such a
// directory for reading itself, from what it resolves the path to, and only
// when the rootfs's rules let the program list it before they were split
// around the volumes (the policy's file.read of the labels). Opening it for
// writing, and every other path, stay the kernel's.
TEST_F(ProcessVolumes, DirectoriesAboveAMountPointCanBeListed) {
    VolumeBundle b;
    std::vector<std::string> data = {"-v", b.vol() + ":/data:rw,label=vol_rw_t"};
    std::vector<std::string> names = list_dir(b.bundle() + "/rootfs");
    for (const char* n : {"data", "dev", "proc", "tmp"})
        if (std::find(names.begin(), names.end(), n) == names.end())
            names.push_back(n);
    std::sort(names.begin(), names.end());
    std::string root = "list /";
    for (const std::string& n : names)
        root += " " + n;
    auto r = kos_run(b.bundle(), {"/bin/sbx_probe", "list", "/"}, data);
    EXPECT_EQ(r.out, root + " (cloexec)\n") << r.err;
    r = kos_run(b.bundle(), {"/bin/sbx_probe", "list", "/", "plain"}, data);
    EXPECT_EQ(r.out, root + " (cloexec)\n") << r.err;
    r = kos_run(b.bundle(), {"/bin/busybox", "sh", "-c", "ls /; echo rc=$?; cd / && ls -d data; ls /data; cat /data/in.txt"},
                data);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("\ndata\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\nrc=0\ndata\nin.txt\nfrom the host\n"), std::string::npos) << r.out << r.err;
    EXPECT_EQ(r.err, "");
    // For writing: the kernel's answer, as without volumes.
    r = kos_run(b.bundle(), {"/bin/sbx_probe", "list", "/", "rw"}, data);
    EXPECT_EQ(r.out, "list / EISDIR\n") << r.err;
    r = kos_run(b.bundle(), {"/bin/sbx_probe", "write", "/"}, data);
    EXPECT_EQ(r.out, "write / EISDIR\n") << r.err;

    // Every directory above a deeper mount point, by any path that leads there.
    std::vector<std::string> deep = {"-v", b.vol() + ":/srv/a/b:ro,label=vol_ro_t"};
    r = kos_run(b.bundle(), {"/bin/busybox", "sh", "-c",
                             "/bin/sbx_probe list /srv; /bin/sbx_probe list /srv/a; /bin/sbx_probe list /srv/a/b; "
                             "cd /srv/a/b && /bin/sbx_probe list ..; ln -s /srv /tmp/s && /bin/sbx_probe list /tmp/s/"},
                deep);
    EXPECT_EQ(r.out, "list /srv a (cloexec)\nlist /srv/a b (cloexec)\nlist /srv/a/b in.txt (cloexec)\n"
                     "list .. b (cloexec)\nlist /tmp/s/ a (cloexec)\n")
        << r.err;

    // A directory whose label the policy does not let the program read
    // cannot be listed, with the volume as without it; the volume beneath
    // it is reached as before.
    ASSERT_EQ(::mkdir((b.bundle() + "/rootfs/hidden").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((b.bundle() + "/rootfs/hidden/vol").c_str(), 0755), 0);
    std::string toml = read_file(b.bundle() + "/bundle.toml");
    toml.replace(toml.find("\"/**\" = \"app_file_t\"\n"), std::string("\"/**\" = \"app_file_t\"\n").size(),
                 "\"/**\" = \"app_file_t\"\n\"/hidden/**\" = \"vol_none_t\"\n");
    std::ofstream(b.bundle() + "/bundle.toml", std::ios::trunc) << toml;
    std::string script = "/bin/sbx_probe list /hidden; /bin/sbx_probe list /; /bin/sbx_probe list /etc plain";
    auto without = kos_run(b.bundle(), {"/bin/busybox", "sh", "-c", script}, {});
    EXPECT_EQ(without.status, 0) << without.err;
    EXPECT_EQ(without.out.substr(0, without.out.find("list /etc")), "list /hidden EACCES\nlist / EACCES\n");
    r = kos_run(b.bundle(), {"/bin/busybox", "sh", "-c", script + "; /bin/sbx_probe read /hidden/vol/in.txt"},
                {"-v", b.vol() + ":/hidden/vol:ro,label=vol_ro_t"});
    EXPECT_EQ(r.out, without.out + "read /hidden/vol/in.txt ok\n") << r.err;
}
