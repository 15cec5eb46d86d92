// The VMM jail, applied in forked children (it cannot be undone).
#include "kvm-host/jail.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "kos/policy/compiler.h"
#include "kos/security/engine.h"
#include "kvm-host/file_service.h"
#include "kvm-host/net_service.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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

namespace {

namespace net = kos::abi::net;

std::vector<uint8_t> net_policy() {
    auto blob = kos::policy::compile_bundle_policy(
        "app_t", {{"policy/app.kpol", "idl \"net.kidl\"\ndomain app_t, net_t\n"
                                      "allow request app_t -> net_t net.Socket.bind where port == 9000\n"}});
    EXPECT_TRUE(blob) << (blob ? "" : blob.error().message);
    return blob ? *blob : std::vector<uint8_t>{};
}

// The whole jail with networking, as run_vm applies it: the process-wide
// parts, the I/O thread with its own filter, then this thread's filter.
std::unique_ptr<kos::vmm::NetService> jail_with_network(const std::vector<uint8_t>& policy,
                                                        kos::vmm::JailOptions o) {
    kos::vmm::NetServiceOptions no;
    no.policy = policy;
    auto svc = kos::vmm::NetService::start(std::move(no));
    if (!svc)
        return nullptr;
    o.net_wake_fd = (*svc)->wake_fd();
    o.net_fds = (*svc)->max_host_fds();
    o.net_connect = (*svc)->may_connect_out();
    auto& s = *svc;
    auto r = kos::vmm::enter_jail(o, [&] { return s->launch([] { return kos::vmm::install_io_thread_filter(); }); });
    if (!r || !r->network)
        return nullptr;
    return std::move(*svc);
}

// "Seccomp:" and "NoNewPrivs:" of every thread of `pid`.
std::vector<std::pair<std::string, std::string>> thread_status(pid_t pid) {
    std::vector<std::pair<std::string, std::string>> out;
    std::string dir = "/proc/" + std::to_string(pid) + "/task";
    DIR* d = ::opendir(dir.c_str());
    if (!d)
        return out;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.')
            continue;
        std::ifstream in(dir + "/" + e->d_name + "/status");
        std::string line, seccomp, nnp;
        while (std::getline(in, line)) {
            if (line.rfind("Seccomp:", 0) == 0)
                seccomp = line.substr(line.find_first_not_of(" \t", 8));
            if (line.rfind("NoNewPrivs:", 0) == 0)
                nnp = line.substr(line.find_first_not_of(" \t", 11));
        }
        out.emplace_back(seccomp, nnp);
    }
    ::closedir(d);
    return out;
}

} // namespace

// Attack 24 with the network: both threads are filtered, and the service
// still works (loopback connection, teardown) inside the jail.
TEST(Jail, EveryThreadIsFilteredWithNetworking) {
    auto policy = net_policy();
    int ready[2], go[2];
    ASSERT_EQ(::pipe(ready), 0);
    ASSERT_EQ(::pipe(go), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
        kos::vmm::JailOptions o = options();
        o.stdout_fd = ready[1]; // "output": the only descriptors it may use
        o.stdin_fd = go[0];
        auto svc = jail_with_network(policy, o);
        if (!svc)
            ::_exit(100);
        if (::write(ready[1], "r", 1) != 1)
            ::_exit(101);
        char c;
        if (::read(go[0], &c, 1) != 1)
            ::_exit(102);
        // A loopback connection: socketpair on the I/O thread, data both ways.
        kos::vmm::NetGuestMemory ram{};
        std::vector<uint8_t> buf(1 << 16);
        ram.base = buf.data();
        ram.size = buf.size();
        auto call = [&](net::NetOp op, uint32_t s) {
            net::NetCall c{};
            c.op = static_cast<uint32_t>(op);
            c.socket = s;
            c.family = net::kFamilyInet;
            c.type = net::kTypeStream;
            c.address.family = net::kFamilyInet;
            c.address.ip[10] = c.address.ip[11] = 0xff;
            c.address.ip[12] = 127;
            c.address.ip[15] = 1;
            c.address.port = 9000;
            c.arg = op == net::NetOp::Poll ? net::kMaxNetPollWaitNs : 8;
            c.segment_count = 1;
            c.segments[0] = {0, 4};
            int64_t r = svc->handle(c, ram);
            return std::pair{r, c.socket};
        };
        uint32_t l = call(net::NetOp::Socket, 0).second;
        uint32_t cl = call(net::NetOp::Socket, 0).second;
        if (call(net::NetOp::Bind, l).first != 0 || call(net::NetOp::Listen, l).first != 0)
            ::_exit(103);
        if (call(net::NetOp::Connect, cl).first != -EINPROGRESS)
            ::_exit(104);
        int64_t a = -EAGAIN;
        uint32_t accepted = 0;
        for (int i = 0; i < 200 && a == -EAGAIN; ++i) {
            auto r = call(net::NetOp::Accept, l);
            a = r.first;
            accepted = r.second;
            if (a == -EAGAIN)
                call(net::NetOp::Poll, 0); // waits (no entries, capped timeout)
        }
        if (a != 0)
            ::_exit(105);
        std::memcpy(buf.data(), "ping", 4);
        if (call(net::NetOp::Send, cl).first != 4)
            ::_exit(106);
        int64_t n = -EAGAIN;
        for (int i = 0; i < 200 && n == -EAGAIN; ++i) {
            std::memset(buf.data(), 0, 4);
            n = call(net::NetOp::Recv, accepted).first;
            if (n == -EAGAIN)
                call(net::NetOp::Poll, 0);
        }
        if (n != 4 || std::memcmp(buf.data(), "ping", 4) != 0)
            ::_exit(107);
        svc.reset(); // joins the I/O thread, closes everything
        ::_exit(0);
    }
    ::close(ready[1]);
    ::close(go[0]);
    char c = 0;
    bool jailed = ::read(ready[0], &c, 1) == 1;
    auto threads = jailed ? thread_status(pid) : decltype(thread_status(pid)){};
    [[maybe_unused]] ssize_t w = ::write(go[1], "g", 1);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(ready[0]);
    ::close(go[1]);
    ASSERT_TRUE(jailed) << "the child did not enter the jail; status " << status;
    EXPECT_GE(threads.size(), 2u); // the vCPU (main) thread and the I/O thread
    for (auto& [seccomp, nnp] : threads) {
        EXPECT_EQ(seccomp, "2");
        EXPECT_EQ(nnp, "1");
    }
    ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Jail, ForbiddenSyscallOnTheIoThreadKillsTheProcess) {
    auto policy = net_policy();
    int status = in_child([&] {
        auto svc = jail_with_network(policy, options());
        if (!svc)
            return 100;
        // The I/O thread may not open files (nor may the ring: its
        // opcodes are restricted).
        svc->run_on_io_thread_for_test([] { ::open("/etc/hostname", O_RDONLY); });
        net::NetCall poll{};
        poll.op = static_cast<uint32_t>(net::NetOp::Poll);
        poll.arg = net::kMaxNetPollWaitNs;
        for (int i = 0; i < 100; ++i) // 5 s at most
            svc->handle(poll, kos::vmm::NetGuestMemory{});
        return 0;
    });
    ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << WEXITSTATUS(status);
    EXPECT_EQ(WTERMSIG(status), SIGSYS);
}

TEST(Jail, SocketCallsKillTheVcpuThreadEvenWithNetworking) {
    auto policy = net_policy();
    int status = in_child([&] {
        auto svc = jail_with_network(policy, options());
        if (!svc)
            return 100;
        ::socket(AF_INET, SOCK_STREAM, 0); // only the I/O thread makes socket calls
        return 0;
    });
    ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << WEXITSTATUS(status);
    EXPECT_EQ(WTERMSIG(status), SIGSYS);
}

// Landlock leaves TCP connect only when the policy may allow outbound
// connections; bind is never left.
TEST(Jail, LandlockConnectOnlyWhenThePolicyMayAllowIt) {
    for (bool allow : {false, true}) {
        int status = in_child([allow] {
            int l = ::socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in sa{};
            sa.sin_family = AF_INET;
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            socklen_t len = sizeof sa;
            if (::bind(l, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(l, 1) != 0 ||
                ::getsockname(l, reinterpret_cast<sockaddr*>(&sa), &len) != 0)
                return 100;
            if (!kos::vmm::drop_privileges())
                return 101;
            auto abi = kos::vmm::restrict_with_landlock(allow);
            if (!abi)
                return 102;
            if (*abi < 4)
                return 0; // no network rights in this Landlock
            int c = ::socket(AF_INET, SOCK_STREAM, 0);
            errno = 0;
            int rc = ::connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
            if (allow ? rc != 0 : (rc == 0 || errno != EACCES))
                return 103;
            int b = ::socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in any{};
            any.sin_family = AF_INET;
            any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            errno = 0;
            if (::bind(b, reinterpret_cast<sockaddr*>(&any), sizeof any) == 0 || errno != EACCES)
                return 104;
            return 0;
        });
        ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
        EXPECT_EQ(WEXITSTATUS(status), 0) << "allow_connect " << allow;
    }
}

// ---- Volumes: the file service's I/O thread, Landlock rules per volume.

namespace {

namespace file = kos::abi::file;
namespace fs = std::filesystem;

std::vector<uint8_t> file_policy() {
    auto blob = kos::policy::compile_bundle_policy(
        "app_t", {{"policy/app.kpol", "domain app_t\nresource data_t\nclass file { read: read, write: write }\n"
                                      "allow security app_t -> data_t file.{read, write}\n"}});
    EXPECT_TRUE(blob) << (blob ? "" : blob.error().message);
    return blob ? *blob : std::vector<uint8_t>{};
}

uint32_t app_label(const std::vector<uint8_t>& blob) {
    std::vector<uint64_t> state(kos::security::Engine::required_state_size(blob.data(), blob.size()) / 8 + 8);
    kos::security::Engine e;
    if (e.load(blob.data(), blob.size(), state.data(), state.size() * 8) != kos::security::LoadError::None)
        return kos::security::kNone;
    return e.find_label("app_t", 5);
}

// A temporary directory with `vol` (the volume) and `sibling` beside it,
// each holding a file `f`.
struct VolumeDirs {
    fs::path top;
    VolumeDirs() {
        std::string tmpl = (fs::temp_directory_path() / "kos-jail-XXXXXX").string();
        if (::mkdtemp(tmpl.data()))
            top = tmpl;
        for (const char* d : {"vol", "ro", "sibling"}) {
            fs::create_directory(top / d);
            std::ofstream(top / d / "f") << d;
        }
    }
    ~VolumeDirs() {
        std::error_code ec;
        fs::remove_all(top, ec);
    }
    kos::UniqueFd open(const char* d) const {
        return kos::UniqueFd(::open((top / d).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    }
};

std::unique_ptr<kos::vmm::FileService> start_files(const std::vector<uint8_t>& policy, kos::UniqueFd root,
                                                   bool scratch) {
    kos::vmm::FileServiceOptions fo;
    fo.policy = policy;
    fo.volumes.push_back({std::move(root), "/data", scratch ? "" : "data_t", true, scratch, 0});
    auto svc = kos::vmm::FileService::start(std::move(fo));
    return svc ? std::move(*svc) : nullptr;
}

// The whole jail with a volume, as run_vm applies it.
std::unique_ptr<kos::vmm::FileService> jail_with_files(const std::vector<uint8_t>& policy, kos::UniqueFd root,
                                                       kos::vmm::JailOptions o) {
    auto svc = start_files(policy, std::move(root), false);
    if (!svc)
        return nullptr;
    o.files = true;
    o.file_fds = svc->max_host_fds();
    for (auto [fd, writable] : svc->volume_access())
        o.volumes.push_back({fd, writable});
    auto r = kos::vmm::enter_jail(o, [&] { return svc->launch([] { return kos::vmm::install_file_thread_filter(); }); });
    if (!r || !r->files)
        return nullptr;
    return svc;
}

// FileCalls against a guest RAM buffer.
struct Calls {
    kos::vmm::FileService& svc;
    uint32_t subject;
    std::vector<uint8_t> ram = std::vector<uint8_t>(1 << 16);

    file::FileCall make(file::FileOp op, const char* path = "", const char* path2 = "") {
        file::FileCall c{};
        c.op = static_cast<uint32_t>(op);
        c.subject = subject;
        c.path_len = static_cast<uint32_t>(std::strlen(path));
        std::memcpy(c.path, path, c.path_len);
        c.path2_len = static_cast<uint32_t>(std::strlen(path2));
        std::memcpy(c.path2, path2, c.path2_len);
        c.segment_count = 1;
        c.segments[0] = {0, 4096};
        c.offset = file::kAtPosition;
        return c;
    }
    int64_t run(file::FileCall& c) { return svc.handle(c, kos::vmm::NetGuestMemory{ram.data(), ram.size()}); }
    int64_t op(file::FileOp o, const char* path = "", const char* path2 = "", uint32_t file_id = 0,
               uint32_t flags = 0, uint32_t arg = 0, int64_t offset = file::kAtPosition) {
        auto c = make(o, path, path2);
        c.file = file_id;
        c.flags = flags;
        c.mode = o == file::FileOp::Mkdir ? 0755 : 0644;
        c.arg = arg;
        c.offset = offset;
        c.times[0] = c.times[1] = file::kTimeNow;
        int64_t r = run(c);
        return o == file::FileOp::Open && r == 0 ? c.file : r;
    }
};

} // namespace

// Every call the service makes, inside the whole jail: no SIGSYS, and every
// thread is filtered.
TEST(Jail, EveryThreadIsFilteredWithVolumes) {
    auto policy = file_policy();
    uint32_t subject = app_label(policy);
    VolumeDirs dirs;
    int ready[2], go[2];
    ASSERT_EQ(::pipe(ready), 0);
    ASSERT_EQ(::pipe(go), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
        kos::vmm::JailOptions o = options();
        o.stdout_fd = ready[1];
        o.stdin_fd = go[0];
        auto svc = jail_with_files(policy, dirs.open("vol"), o);
        if (!svc)
            ::_exit(100);
        if (::write(ready[1], "r", 1) != 1)
            ::_exit(101);
        char c;
        if (::read(go[0], &c, 1) != 1)
            ::_exit(102);
        Calls k{*svc, subject};
        using Op = file::FileOp;
        int64_t f = k.op(Op::Open, "new", "", 0, O_RDWR | O_CREAT);
        if (f <= 0)
            ::_exit(103);
        auto id = static_cast<uint32_t>(f);
        std::memcpy(k.ram.data(), "jailed data", 11);
        auto w = k.make(Op::Write);
        w.file = id;
        w.segments[0] = {0, 11};
        int step = 104;
        auto expect = [&](int64_t got, int64_t want) {
            if (got != want) {
                std::fprintf(stderr, "step %d: %lld, expected %lld\n", step, static_cast<long long>(got),
                             static_cast<long long>(want));
                ::_exit(step);
            }
            ++step;
        };
        expect(k.run(w), 11);
        expect(k.op(Op::Seek, "", "", id, 0, SEEK_SET, 0), 0);
        expect(k.op(Op::Read, "", "", id), 11);
        expect(k.op(Op::FStat, "", "", id), 0);
        expect(k.op(Op::Truncate, "", "", id, 0, 0, 6), 0);
        expect(k.op(Op::Sync, "", "", id), 0);
        expect(k.op(Op::Chmod, "", "", id), 0);
        expect(k.op(Op::SetTimes, "", "", id), 0);
        expect(k.op(Op::Close, "", "", id), 0);
        expect(k.op(Op::Mkdir, "d"), 0);
        expect(k.op(Op::Rename, "new", "d/moved"), 0);
        expect(k.op(Op::Link, "d/moved", "hard"), 0);
        expect(k.op(Op::Symlink, "sym", "d/moved"), 0);
        expect(k.op(Op::ReadLink, "sym"), 7);
        expect(k.op(Op::Stat, "sym"), 0);
        expect(k.op(Op::Stat, "sym", "", 0, 0, file::kNoFollow), 0);
        expect(k.op(Op::Chmod, "sym"), 0);
        expect(k.op(Op::SetTimes, "sym", "", 0, 0, file::kNoFollow), 0);
        expect(k.op(Op::Unlink, "hard"), 0);
        int64_t d = k.op(Op::Open, "d", "", 0, O_RDONLY | O_DIRECTORY);
        if (d <= 0)
            ::_exit(150);
        if (k.op(Op::ReadDir, "", "", static_cast<uint32_t>(d)) <= 0)
            ::_exit(151);
        expect(k.op(Op::Close, "", "", static_cast<uint32_t>(d)), 0);
        expect(k.op(Op::Open, "../sibling/f"), -EINVAL);
        svc.reset(); // joins the I/O thread, closes everything
        ::_exit(0);
    }
    ::close(ready[1]);
    ::close(go[0]);
    char c = 0;
    bool jailed = ::read(ready[0], &c, 1) == 1;
    auto threads = jailed ? thread_status(pid) : decltype(thread_status(pid)){};
    [[maybe_unused]] ssize_t w = ::write(go[1], "g", 1);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(ready[0]);
    ::close(go[1]);
    ASSERT_TRUE(jailed) << "the child did not enter the jail; status " << status;
    EXPECT_GE(threads.size(), 2u); // the vCPU (main) thread and the file I/O thread
    for (auto& [seccomp, nnp] : threads) {
        EXPECT_EQ(seccomp, "2");
        EXPECT_EQ(nnp, "1");
    }
    ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 0);
    std::ifstream in(dirs.top / "vol" / "d" / "moved");
    std::string content((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(content, "jailed");
    EXPECT_TRUE(fs::is_symlink(dirs.top / "vol" / "sym"));
    EXPECT_FALSE(fs::exists(dirs.top / "vol" / "hard"));
}

TEST(Jail, ForbiddenSyscallOnTheFileThreadKillsTheProcess) {
    auto policy = file_policy();
    uint32_t subject = app_label(policy);
    VolumeDirs dirs;
    int status = in_child([&] {
        auto svc = jail_with_files(policy, dirs.open("vol"), options());
        if (!svc)
            return 100;
        // The file thread opens nothing itself: its ring does, beneath a
        // volume.
        svc->run_on_io_thread_for_test([] { ::open("/etc/hostname", O_RDONLY); });
        Calls k{*svc, subject};
        k.op(file::FileOp::Stat, "f"); // waits for the I/O thread
        return 0;
    });
    ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << WEXITSTATUS(status);
    EXPECT_EQ(WTERMSIG(status), SIGSYS);
}

TEST(Jail, FileCallsKillTheVcpuThreadEvenWithVolumes) {
    auto policy = file_policy();
    VolumeDirs dirs;
    int status = in_child([&] {
        auto svc = jail_with_files(policy, dirs.open("vol"), options());
        if (!svc)
            return 100;
        ::openat(AT_FDCWD, (dirs.top / "vol" / "f").c_str(), O_RDONLY); // only the ring opens
        return 0;
    });
    ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << WEXITSTATUS(status);
    EXPECT_EQ(WTERMSIG(status), SIGSYS);
}

// Landlock gives the process the volumes' directories and nothing beside
// them, read-only ones read-only; io_uring operations obey it too.
TEST(Jail, LandlockLimitsFilesToTheVolumes) {
    VolumeDirs dirs;
    int status = in_child([&] {
        kos::UniqueFd vol = dirs.open("vol"), ro = dirs.open("ro"), sibling = dirs.open("sibling");
        if (!kos::vmm::drop_privileges(8))
            return 100;
        auto abi = kos::vmm::restrict_with_landlock(false, {{vol.get(), true}, {ro.get(), false}});
        if (!abi)
            return 101;
        if (*abi == 0)
            return 0; // no Landlock on this kernel
        auto at = [&](const char* d, const char* f) { return (dirs.top / d / f).string(); };
        auto opens = [&](const std::string& p, int flags) {
            int fd = ::open(p.c_str(), flags | O_CLOEXEC, 0644);
            if (fd >= 0)
                ::close(fd);
            return fd >= 0 ? 0 : errno;
        };
        if (opens(at("vol", "f"), O_RDWR) != 0 || opens(at("vol", "new"), O_WRONLY | O_CREAT) != 0)
            return 102;
        if (::mkdir(at("vol", "d").c_str(), 0755) != 0 || ::rename(at("vol", "new").c_str(), at("vol", "d/n").c_str()) != 0)
            return 103;
        if (opens(at("ro", "f"), O_RDONLY) != 0)
            return 104;
        if (opens(at("ro", "f"), O_WRONLY) != EACCES || opens(at("ro", "new"), O_WRONLY | O_CREAT) != EACCES ||
            ::mkdir(at("ro", "d").c_str(), 0755) == 0)
            return 105;
        if (opens(at("sibling", "f"), O_RDONLY) != EACCES || opens(at("sibling", "new"), O_WRONLY | O_CREAT) != EACCES)
            return 106;
        if (opens(dirs.top.string(), O_RDONLY | O_DIRECTORY) != EACCES)
            return 107;
        // The ring runs with the I/O thread's credentials: a service whose
        // volume Landlock did not give cannot open in it.
        for (auto [which, want] : {std::pair{"vol", 0}, std::pair{"sibling", -EACCES}}) {
            auto svc = start_files({}, dirs.open(which), true);
            if (!svc || !svc->launch())
                return 108;
            Calls k{*svc, 0};
            int64_t r = k.op(file::FileOp::Open, "f", "", 0, O_RDONLY);
            if ((want == 0 && r <= 0) || (want != 0 && r != want))
                return 109;
        }
        return 0;
    });
    ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_TRUE(fs::exists(dirs.top / "vol" / "d" / "n"));
    EXPECT_FALSE(fs::exists(dirs.top / "ro" / "new"));
    EXPECT_FALSE(fs::exists(dirs.top / "sibling" / "new"));
}

// UDP inside the whole jail: the I/O thread makes its host UDP socket
// (socket(AF_INET, SOCK_DGRAM) is in its filter), sends with io_uring
// SENDMSG and receives the reply with RECVMSG.
TEST(Jail, UdpDatagramsGoOutFromTheIoThread) {
    // A host UDP socket on this host's first non-loopback IPv4 address
    // (the guest's 127.0.0.0/8 is its own).
    std::string ip;
    if (ifaddrs* list = nullptr; ::getifaddrs(&list) == 0) {
        for (ifaddrs* i = list; i && ip.empty(); i = i->ifa_next) {
            if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
                continue;
            auto* in = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
            char text[INET_ADDRSTRLEN];
            if ((ntohl(in->sin_addr.s_addr) >> 24) != 127)
                ip = ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        }
        ::freeifaddrs(list);
    }
    if (ip.empty())
        GTEST_SKIP() << "no non-loopback IPv4 address on this host";
    int host = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    ::inet_pton(AF_INET, ip.c_str(), &sa.sin_addr);
    socklen_t len = sizeof sa;
    ASSERT_EQ(::bind(host, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ::getsockname(host, reinterpret_cast<sockaddr*>(&sa), &len);
    uint16_t port = ntohs(sa.sin_port);
    auto blob = kos::policy::compile_bundle_policy(
        "app_t", {{"policy/app.kpol", "idl \"net.kidl\"\ndomain app_t, net_t\n"
                                      "allow request app_t -> net_t net.Socket.connect where port == " +
                                          std::to_string(port) + " and proto == 17\n"}});
    ASSERT_TRUE(blob) << blob.error().message;
    pid_t pid = ::fork();
    if (pid == 0) {
        auto svc = jail_with_network(*blob, options());
        if (!svc)
            ::_exit(100);
        std::vector<uint8_t> buf(1 << 16);
        kos::vmm::NetGuestMemory ram{buf.data(), buf.size()};
        net::NetCall c{};
        c.op = static_cast<uint32_t>(net::NetOp::Socket);
        c.family = net::kFamilyInet;
        c.type = net::kTypeDgram;
        if (svc->handle(c, ram) != 0)
            ::_exit(101);
        uint32_t s = c.socket;
        c = net::NetCall{};
        c.op = static_cast<uint32_t>(net::NetOp::SendTo);
        c.socket = s;
        c.address.family = net::kFamilyInet;
        c.address.ip[10] = c.address.ip[11] = 0xff;
        std::memcpy(c.address.ip + 12, &sa.sin_addr, 4);
        c.address.port = port;
        std::memcpy(buf.data(), "ping", 4);
        c.length = 4;
        c.segment_count = 1;
        c.segments[0] = {0, 4};
        if (svc->handle(c, ram) != 4)
            ::_exit(102);
        int64_t n = -EAGAIN;
        for (int i = 0; i < 100 && n == -EAGAIN; ++i) { // 5 s at most
            net::NetCall r{};
            r.op = static_cast<uint32_t>(net::NetOp::Recv);
            r.socket = s;
            r.segment_count = 1;
            r.segments[0] = {0, 64};
            n = svc->handle(r, ram);
            if (n == -EAGAIN) {
                net::NetCall p{};
                p.op = static_cast<uint32_t>(net::NetOp::Poll);
                p.poll_count = 1;
                p.poll[0] = {s, net::kPollIn, 0};
                p.arg = net::kMaxNetPollWaitNs;
                svc->handle(p, ram);
            }
        }
        if (n != 4 || std::memcmp(buf.data(), "pong", 4) != 0)
            ::_exit(103);
        svc.reset();
        ::_exit(0);
    }
    timeval tv{10, 0};
    ::setsockopt(host, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char got[16] = {};
    sockaddr_in from{};
    socklen_t flen = sizeof from;
    ssize_t n = ::recvfrom(host, got, sizeof got, 0, reinterpret_cast<sockaddr*>(&from), &flen);
    if (n == 4)
        ::sendto(host, "pong", 4, 0, reinterpret_cast<sockaddr*>(&from), flen);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(host);
    EXPECT_EQ(n, 4);
    EXPECT_EQ(std::string(got, 4), "ping");
    ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

// The jail's new namespaces, read from the parent while the jailed child
// waits: mount, IPC and UTS always; network too unless the policy may
// connect out (the service then needs the host's network).
TEST(Jail, TheVmmEntersNewNamespaces) {
    auto ns_of = [](const std::string& pid, const char* kind) {
        std::error_code ec;
        return std::filesystem::read_symlink("/proc/" + pid + "/ns/" + kind, ec).string();
    };
    for (bool connect : {false, true}) {
        int go[2];
        ASSERT_EQ(::pipe(go), 0);
        pid_t pid = ::fork();
        if (pid == 0) {
            ::close(go[1]);
            kos::vmm::JailOptions o = options();
            o.stdin_fd = go[0];
            o.net_connect = connect;
            auto r = kos::vmm::enter_jail(o);
            if (!r || r->namespaces.empty())
                ::_exit(100);
            char c;
            ::_exit(::read(go[0], &c, 1) == 0 ? 0 : 101); // until the parent closes its end
        }
        ::close(go[0]);
        std::string child = std::to_string(pid);
        // Wait until the child has entered its namespaces.
        for (int i = 0; i < 200 && ns_of(child, "ipc") == ns_of("self", "ipc"); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        for (const char* kind : {"mnt", "ipc", "uts"})
            EXPECT_NE(ns_of(child, kind), ns_of("self", kind)) << kind;
        if (connect)
            EXPECT_EQ(ns_of(child, "net"), ns_of("self", "net"));
        else
            EXPECT_NE(ns_of(child, "net"), ns_of("self", "net"));
        ::close(go[1]);
        int status = 0;
        ::waitpid(pid, &status, 0);
        ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
        EXPECT_EQ(WEXITSTATUS(status), 0);
    }
}
