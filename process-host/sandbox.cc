#include "sandbox.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "cgroup.h"
#include "kos/support/file.h"
#include "landlock.h"
#include "port_forward.h"
#include "sandbox_policy.h"
#include "seccomp_filter.h"
#include "supervisor.h"
#include "supervisor_jail.h"
#include "volume_mount.h"

namespace kos::proc {
namespace {

using Clock = std::chrono::steady_clock;

// Host id the sandbox's single uid/gid maps to when kos runs as root: the
// sandboxed program never runs as host root (its files, /proc/sys, ...).
constexpr uint32_t kHostNobody = 65534;

// Devices bind-mounted into the minimal /dev.
constexpr const char* kDevices[] = {"null", "zero", "full", "random", "urandom"};

// Messages on the setup socket (SOCK_SEQPACKET, one per datagram).
enum Msg : char {
    kGo = 'G',        // parent -> child: namespaces mapped, cgroup joined
    kUnshared = 'U',  // child -> parent: new user namespace, map it
    kMapped = 'M',    // parent -> child: maps written
    kNotifyFd = 'N',  // child -> parent: the seccomp listener (SCM_RIGHTS)
    kError = 'E',     // child -> parent: setup failed, text follows
    kExecError = 'X', // child -> parent: execve failed, errno follows
    kNote = 'n',      // child -> parent: a note for stderr, text follows
};

// A volume as the child mounts it: the host directory the parent opened
// before any setup, and (kos as root) the user namespace of its ID mapping.
struct PlanVolume {
    pkg::VolumeMount mount;
    bool writable = false; // rw and the policy allows file.write: else mounted read-only
    bool create_mount_point = false;
    int dir_fd = -1;
    int userns_fd = -1;
};

// Everything the child needs, computed before clone so the child only makes
// system calls.
struct ChildPlan {
    std::string rootfs;
    std::string hostname;
    std::string workdir;
    std::vector<std::string> argv, env;
    std::vector<char*> argv_p, env_p;
    uint32_t uid = 0, gid = 0;
    bool privileged = true; // kos runs as root: ids map to kHostNobody
    Limits limits;
    std::string tmp_opts;
    int landlock_abi = 0;
    LandlockRules landlock;
    std::vector<PlanVolume> volumes;
    const SeccompFilter* filter = nullptr;
    sigset_t sigmask{}; // the caller's mask, restored in the child
};

// ---- child side ----------------------------------------------------------

int g_sock = -1;

[[noreturn]] void child_fail(const char* what) {
    int err = errno;
    char buf[512];
    int n = std::snprintf(buf, sizeof buf, "%c%s: %s", kError, what, std::strerror(err));
    [[maybe_unused]] ssize_t w = ::send(g_sock, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
    ::_exit(125);
}

[[noreturn]] void child_fail_msg(const std::string& msg) {
    std::string m = std::string(1, kError) + msg;
    [[maybe_unused]] ssize_t w = ::send(g_sock, m.data(), m.size(), MSG_NOSIGNAL);
    ::_exit(125);
}

void expect(char want) {
    char c = 0;
    if (::recv(g_sock, &c, 1, 0) != 1 || c != want)
        ::_exit(125); // the parent is gone or failed; it reports
}

void must(bool ok, const char* what) {
    if (!ok)
        child_fail(what);
}

void bind_ro(const std::string& src, const std::string& dst, unsigned long extra) {
    must(::mount(src.c_str(), dst.c_str(), nullptr, MS_BIND | MS_REC, nullptr) == 0,
         ("bind-mounting " + src).c_str());
    must(::mount(nullptr, dst.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | extra,
                 nullptr) == 0,
         ("remounting " + dst + " read-only").c_str());
}

void send_note(const std::string& text) {
    std::string m = std::string(1, kNote) + text;
    [[maybe_unused]] ssize_t w = ::send(g_sock, m.data(), m.size(), MSG_NOSIGNAL);
}

// The new root: a tmpfs holding the bundle rootfs's top-level entries
// (bind-mounted read-only), the volumes, /proc, /dev and /tmp; then
// read-only itself. Returns the mounted volumes' descriptors (for their
// Landlock rules), in p.volumes's order.
std::vector<UniqueFd> build_root(const ChildPlan& p) {
    must(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0, "making mounts private");
    int rootfs = ::open(p.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    must(rootfs >= 0, ("opening the rootfs " + p.rootfs).c_str());
    // The volumes' host directories in this mount namespace, before the
    // staging tmpfs hides the host's /tmp: each must be the directory the
    // parent opened (volume_mount.h).
    std::vector<UniqueFd> volume_dirs;
    for (const PlanVolume& v : p.volumes) {
        auto fd = reopen_volume_dir(v.mount, v.dir_fd);
        if (!fd)
            child_fail_msg(fd.error().message);
        volume_dirs.push_back(std::move(*fd));
    }
    const std::string stage = "/tmp";
    must(::mount("kos-root", stage.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") == 0,
         "mounting the root tmpfs");
    int list = ::openat(rootfs, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    must(list >= 0, "listing the rootfs");
    DIR* d = ::fdopendir(list);
    must(d != nullptr, "listing the rootfs");
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == ".." || name == "proc" || name == "dev" || name == "tmp")
            continue;
        // Each entry is opened once without following symlinks and mounted
        // through its descriptor, so swapping it for a symlink after the
        // check cannot bring a host path into the sandbox.
        int efd = ::openat(rootfs, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
        struct stat st{};
        if (efd < 0 || ::fstat(efd, &st) != 0) {
            if (efd >= 0)
                ::close(efd);
            continue;
        }
        std::string src = "/proc/self/fd/" + std::to_string(efd);
        std::string dst = stage + "/" + name;
        if (S_ISLNK(st.st_mode)) {
            char target[4096];
            ssize_t n = ::readlinkat(efd, "", target, sizeof target - 1);
            must(n >= 0, ("reading symlink " + name).c_str());
            target[n] = 0;
            must(::symlink(target, dst.c_str()) == 0, ("creating symlink /" + name).c_str());
        } else if (S_ISDIR(st.st_mode)) {
            must(::mkdir(dst.c_str(), 0755) == 0, ("creating /" + name).c_str());
            bind_ro(src, dst, MS_NODEV);
        } else if (S_ISREG(st.st_mode)) {
            int fd = ::open(dst.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
            must(fd >= 0, ("creating /" + name).c_str());
            ::close(fd);
            bind_ro(src, dst, MS_NODEV);
        }
        ::close(efd);
        // Device nodes, FIFOs and sockets in a rootfs are not exposed.
    }
    ::closedir(d);
    ::close(rootfs);

    // Volumes, over rootfs directories or on directories created in the
    // root tmpfs while it is still writable.
    std::vector<UniqueFd> volumes;
    if (!p.volumes.empty()) {
        UniqueFd root(::open(stage.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        must(bool(root), "opening the root tmpfs");
        for (size_t i = 0; i < p.volumes.size(); ++i) {
            const PlanVolume& v = p.volumes[i];
            bool idmapped = false;
            auto tree = mount_volume(v.mount, v.writable, volume_dirs[i].get(), root.get(), v.create_mount_point,
                                     v.userns_fd, &idmapped);
            if (!tree)
                child_fail_msg(tree.error().message);
            if (v.userns_fd >= 0 && !idmapped)
                send_note("volume " + pkg::describe(v.mount) + ": its file system cannot be ID-mapped, so the "
                          "program accesses it as host uid " + std::to_string(kHostNobody) +
                          " (only what that id may read or write)");
            volumes.push_back(std::move(*tree));
        }
    }

    must(::mkdir((stage + "/proc").c_str(), 0555) == 0, "creating /proc");
    must(::mount("proc", (stage + "/proc").c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0,
         "mounting /proc");
    must(::mkdir((stage + "/tmp").c_str(), 01777) == 0, "creating /tmp");
    must(::mount("kos-tmp", (stage + "/tmp").c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                 p.tmp_opts.c_str()) == 0,
         "mounting /tmp");
    std::string dev = stage + "/dev";
    must(::mkdir(dev.c_str(), 0755) == 0, "creating /dev");
    must(::mount("kos-dev", dev.c_str(), "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") == 0,
         "mounting /dev");
    for (const char* node : kDevices) {
        std::string dst = dev + "/" + node;
        int fd = ::open(dst.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
        must(fd >= 0, ("creating /dev/" + std::string(node)).c_str());
        ::close(fd);
        std::string src = std::string("/dev/") + node;
        must(::mount(src.c_str(), dst.c_str(), nullptr, MS_BIND, nullptr) == 0, ("binding " + src).c_str());
        must(::mount(nullptr, dst.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC, nullptr) == 0,
             ("remounting " + src).c_str());
    }
    must(::symlink("/proc/self/fd", (dev + "/fd").c_str()) == 0, "creating /dev/fd");
    must(::symlink("/proc/self/fd/0", (dev + "/stdin").c_str()) == 0, "creating /dev/stdin");
    must(::symlink("/proc/self/fd/1", (dev + "/stdout").c_str()) == 0, "creating /dev/stdout");
    must(::symlink("/proc/self/fd/2", (dev + "/stderr").c_str()) == 0, "creating /dev/stderr");
    must(::mount(nullptr, dev.c_str(), nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, nullptr) == 0,
         "remounting /dev read-only");
    must(::mount(nullptr, stage.c_str(), nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) == 0,
         "remounting / read-only");

    // pivot_root(2): ". ." stacks the old root on the new one; detaching it
    // leaves no path to the host's file systems.
    must(::chdir(stage.c_str()) == 0, "entering the new root");
    must(::syscall(SYS_pivot_root, ".", ".") == 0, "pivot_root");
    must(::umount2(".", MNT_DETACH) == 0, "detaching the host root");
    must(::chdir("/") == 0, "chdir /");
    return volumes;
}

void loopback_up() {
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    must(s >= 0, "socket for loopback setup");
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "lo");
    must(::ioctl(s, SIOCGIFFLAGS, &ifr) == 0, "reading lo flags");
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    must(::ioctl(s, SIOCSIFFLAGS, &ifr) == 0, "bringing lo up");
    ::close(s);
}

void drop_privileges(const ChildPlan& p) {
    // Securebits first (needs CAP_SETPCAP, which the namespace root still
    // has): a uid-0 program never regains capabilities on execve.
    must(::prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED |
                                        SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                                        SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED) == 0,
         "setting securebits");
    for (int cap = 0; cap < 64; ++cap)
        if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL)
            break;
    must(::setresgid(p.gid, p.gid, p.gid) == 0, "setresgid");
    if (::setgroups(0, nullptr) != 0 && errno != EPERM) // EPERM: setgroups denied (unprivileged)
        child_fail("setgroups");
    must(::setresuid(p.uid, p.uid, p.uid) == 0, "setresuid");
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    must(::syscall(SYS_capset, &hdr, data) == 0, "dropping capabilities");
    must(::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == 0, "clearing ambient capabilities");
}

void set_rlimits(const Limits& l) {
    auto set = [](int res, uint64_t v, const char* what) {
        rlimit r{v, v};
        must(::setrlimit(res, &r) == 0, what);
    };
    set(RLIMIT_CORE, 0, "RLIMIT_CORE");
    set(RLIMIT_NOFILE, l.nofile, "RLIMIT_NOFILE");
    if (l.cpu_seconds)
        set(RLIMIT_CPU, l.cpu_seconds, "RLIMIT_CPU");
    if (l.file_size_bytes)
        set(RLIMIT_FSIZE, l.file_size_bytes, "RLIMIT_FSIZE");
}

[[noreturn]] void child_main(const ChildPlan& p) {
    ::sigprocmask(SIG_SETMASK, &p.sigmask, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    expect(kGo);
    std::vector<UniqueFd> volumes = build_root(p);
    must(::sethostname(p.hostname.data(), p.hostname.size()) == 0, "sethostname");
    loopback_up();
    // A user namespace of its own for the program: the mount, UTS, IPC and
    // network namespaces stay owned by the parent user namespace, so
    // nothing inside can change them.
    must(::unshare(CLONE_NEWUSER) == 0, "unshare(CLONE_NEWUSER)");
    if (p.privileged) {
        // Host root maps the program's ids to an unprivileged host id.
        char m = kUnshared;
        must(::send(g_sock, &m, 1, MSG_NOSIGNAL) == 1, "setup socket");
        expect(kMapped);
    } else {
        // Only a process inside may map its own ids (to namespace root,
        // which is the caller's own id on the host).
        auto put = [](const char* file, const std::string& v) {
            int fd = ::open(file, O_WRONLY | O_CLOEXEC);
            must(fd >= 0 && ::write(fd, v.data(), v.size()) == static_cast<ssize_t>(v.size()), file);
            ::close(fd);
        };
        put("/proc/self/setgroups", "deny");
        put("/proc/self/uid_map", std::to_string(p.uid) + " 0 1");
        put("/proc/self/gid_map", std::to_string(p.gid) + " 0 1");
    }
    set_rlimits(p.limits);
    drop_privileges(p);
    // No controlling terminal (ATTACKS.md 27: TIOCSTI needs one, or
    // CAP_SYS_ADMIN). TIOCNOTTY detaches it without setsid(), whose
    // scheduler autogroup costs up to a millisecond; the terminal stays
    // usable as the program's stdin/stdout.
    for (int fd = 0; fd < 3; ++fd)
        if (::isatty(fd))
            ::ioctl(fd, TIOCNOTTY);
    if (::chdir(p.workdir.c_str()) != 0)
        child_fail(("[app] workdir " + p.workdir).c_str());
    must(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs");
    if (p.landlock_abi > 0) {
        // Volume rules go on the mounted trees themselves, not on paths.
        LandlockRules rules = p.landlock;
        for (size_t i = 0; i < volumes.size() && i < rules.volumes.size(); ++i)
            rules.volumes[i].fd = volumes[i].get();
        auto rs = landlock_build(rules, p.landlock_abi);
        if (!rs)
            child_fail_msg(rs.error().message);
        if (auto ok = landlock_restrict_self(*rs); !ok)
            child_fail_msg(ok.error().message);
    }
    // Descriptors the caller leaked to kos never reach the program.
    must(::syscall(SYS_close_range, 3u, ~0u, 4u /*CLOSE_RANGE_CLOEXEC*/) == 0, "close_range");
    int nfd = p.filter->load();
    if (nfd < -1) {
        errno = -nfd;
        child_fail("installing the seccomp filter");
    }
    {
        // Always sent (without a descriptor when notification is off): the
        // parent starts supervising on this message. With notification, the
        // mounted volumes' descriptors follow the listener, for the
        // supervisor to perform the program's calls beneath them.
        char tag = kNotifyFd;
        iovec iov{&tag, 1};
        int fds[1 + pkg::kMaxVolumes];
        size_t nfds = 0;
        if (nfd >= 0) {
            fds[nfds++] = nfd;
            for (const UniqueFd& v : volumes)
                if (nfds < sizeof fds / sizeof fds[0])
                    fds[nfds++] = v.get();
        }
        alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof fds)] = {};
        msghdr mh{};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        if (nfds > 0) {
            mh.msg_control = ctl;
            mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
            cmsghdr* c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
            std::memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
        }
        must(::sendmsg(g_sock, &mh, MSG_NOSIGNAL) == 1, "sending the seccomp listener");
        if (nfd >= 0)
            ::close(nfd);
    }
    ::execve(p.argv_p[0], p.argv_p.data(), p.env_p.data());
    int err = errno;
    char buf[8] = {kExecError};
    std::memcpy(buf + 1, &err, sizeof err);
    [[maybe_unused]] ssize_t w = ::send(g_sock, buf, 1 + sizeof err, MSG_NOSIGNAL);
    ::_exit(err == ENOENT ? 127 : 126);
}

// ---- parent side ---------------------------------------------------------

Result<void> write_proc(int pid, const char* file, const std::string& value) {
    std::string path = "/proc/" + std::to_string(pid) + "/" + file;
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd || ::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
        return make_error(errno, "writing " + path + " (\"" + value + "\"): " + errno_string(errno));
    return {};
}

Result<void> send_msg(int sock, char m) {
    if (::send(sock, &m, 1, MSG_NOSIGNAL) != 1)
        return make_error(EPIPE, "the sandbox setup process exited early");
    return {};
}

// Receives one setup message; returns its bytes and the passed fds if any
// (the first in *fd_out, the others in *more).
Result<std::string> recv_msg(int sock, int* fd_out, int timeout_ms, std::vector<int>* more = nullptr) {
    pollfd pfd{sock, POLLIN, 0};
    int rc = ::poll(&pfd, 1, timeout_ms);
    if (rc == 0)
        return make_error(ETIMEDOUT, "sandbox setup did not answer within " + std::to_string(timeout_ms) + " ms");
    char buf[1024];
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * (1 + pkg::kMaxVolumes))] = {};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl;
    mh.msg_controllen = sizeof ctl;
    ssize_t n = ::recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return make_error(errno, "setup socket: " + errno_string(errno));
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (i == 0 && fd_out)
                *fd_out = fd;
            else if (more)
                more->push_back(fd);
            else
                ::close(fd);
        }
    }
    return std::string(buf, static_cast<size_t>(n));
}

uint64_t ns_since(Clock::time_point t) {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count());
}

LandlockRules landlock_rules(const SandboxSpec& s) {
    LandlockRules r;
    r.read_paths = s.read_paths;
    r.list_paths = s.list_paths;
    r.write_paths = s.write_paths;
    r.exec_files = s.execs;
    for (const char* d : kDevices)
        r.rw_files.push_back(std::string("/dev/") + d);
    // Volumes the supervisor serves: nothing beneath them for the program.
    for (const SandboxVolume& v : s.volumes)
        r.volumes.push_back({v.mount.guest, -1, v.readable && !s.volumes_by_supervisor,
                             v.writable && !s.volumes_by_supervisor});
    for (const auto& rule : s.bind)
        if (rule.proto == Proto::Tcp) {
            if (rule.any_port)
                r.tcp_any_bind = true;
            else
                r.tcp_bind_ports.push_back(rule.port);
        }
    for (const auto& rule : s.connect)
        if (rule.proto == Proto::Tcp) {
            if (rule.any_port)
                r.tcp_any_connect = true;
            else
                r.tcp_connect_ports.push_back(rule.port);
        }
    return r;
}

} // namespace

Result<void> check_landlock(const SandboxSpec& spec, int abi, bool best_effort) {
    int need = (spec.connect.empty() && spec.bind.empty()) ? 1 : 4;
    if (abi >= need || best_effort)
        return {};
    return make_error(EOPNOTSUPP, "this kernel's Landlock ABI is " + std::to_string(abi) + " but the bundle needs ABI " +
                                      std::to_string(need) +
                                      (need == 1 ? " (file system rules)" : " (TCP port rules for [network])") +
                                      "; enable Landlock (lsm= boot parameter) or pass --best-effort");
}

Result<RunOutcome> run_sandbox(const SandboxSpec& spec, const RunOptions& options) {
    RunOutcome out;
    auto t0 = Clock::now();

    // Landlock: refuse to run without it unless asked to.
    out.landlock_abi = landlock_abi();
    KOS_TRY(check_landlock(spec, out.landlock_abi, options.best_effort));
    if (out.landlock_abi < 1)
        for (const SandboxVolume& v : spec.volumes)
            if (!v.readable)
                std::fprintf(stderr, "kos: note: volume %s: without Landlock (--best-effort) the program can read it "
                                     "although the bundle's policy does not allow it\n",
                             pkg::describe(v.mount).c_str());

    // The security engine the supervisor asks, loaded before anything runs.
    std::unique_ptr<SandboxPolicy> policy;
    if (!spec.policy.empty())
        policy = KOS_TRY(SandboxPolicy::load(spec.policy, spec.domain));
    // Volumes: every host directory opened now, before any sandbox setup,
    // without following symlinks (ATTACKS.md 26); the sandbox mounts these
    // directories and no other. As root, each is ID-mapped so that its
    // owner's files belong to the program (whose host id is kHostNobody).
    bool privileged = ::geteuid() == 0;
    std::vector<UniqueFd> volume_fds;
    std::vector<PlanVolume> plan_volumes;
    std::vector<std::string> volume_lines;
    for (const SandboxVolume& v : spec.volumes) {
        UniqueFd dir = KOS_TRY(pkg::open_volume_host_dir(v.mount));
        PlanVolume pv{v.mount, v.writable, v.create_mount_point, dir.get(), -1};
        struct stat st{};
        if (::fstat(dir.get(), &st) != 0)
            return make_error(errno, "volume " + pkg::describe(v.mount) + ": " + errno_string(errno));
        volume_fds.push_back(std::move(dir));
        if (privileged) {
            UniqueFd ns = KOS_TRY(make_idmap_userns(st.st_uid, st.st_gid, kHostNobody, kHostNobody));
            pv.userns_fd = ns.get();
            volume_fds.push_back(std::move(ns));
            volume_lines.push_back("volume " + v.mount.host + ": ID-mapped: files of host uid " +
                                   std::to_string(st.st_uid) + " gid " + std::to_string(st.st_gid) +
                                   " (its owner) are the program's (uid " + std::to_string(spec.uid) +
                                   "), others appear as 65534");
        } else {
            volume_lines.push_back("volume " + v.mount.host + ": the program acts as the caller (host uid " +
                                   std::to_string(::geteuid()) + "), whose files appear as uid " +
                                   std::to_string(spec.uid) + ", others as 65534");
        }
        plan_volumes.push_back(std::move(pv));
    }

    UniqueFd audit_log;
    if (!options.audit_log.empty()) {
        audit_log = UniqueFd(::open(options.audit_log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
        if (!audit_log) // as the VM backend: the run goes on, records reach stderr only
            std::fprintf(stderr, "kos: warning: cannot open the audit log %s: %s; records go to stderr only\n",
                         options.audit_log.c_str(), errno_string(errno).c_str());
    }

    SeccompFilter filter = options.notify ? SeccompFilter::embedded(spec.volumes_by_supervisor)
                                          : KOS_TRY(SeccompFilter::build({.notify = false}));

    ChildPlan p;
    p.rootfs = spec.rootfs;
    p.hostname = spec.hostname;
    p.workdir = spec.workdir;
    p.argv = spec.argv;
    p.env = spec.env;
    for (auto& a : p.argv)
        p.argv_p.push_back(a.data());
    p.argv_p.push_back(nullptr);
    for (auto& e : p.env)
        p.env_p.push_back(e.data());
    p.env_p.push_back(nullptr);
    p.uid = spec.uid;
    p.gid = spec.gid;
    p.limits = spec.limits;
    p.tmp_opts = "mode=1777,size=" + std::to_string(spec.limits.tmp_bytes);
    p.landlock_abi = out.landlock_abi; // below `need` only with --best-effort: what the kernel has
    p.landlock = landlock_rules(spec);
    p.filter = &filter;
    p.volumes = std::move(plan_volumes);

    PortForwarder forward;
    {
        std::vector<Publish> publish = spec.publish;
        publish.insert(publish.end(), options.publish.begin(), options.publish.end());
        if (!publish.empty() && !privileged)
            return make_error(EPERM, "publishing ports with the process backend needs kos to run as root "
                                     "(it joins the sandbox's network namespace to relay connections)");
        KOS_TRY(forward.listen(publish));
    }
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return make_error(errno, "socketpair: " + errno_string(errno));
    UniqueFd sock(sv[0]);
    // Unprivileged: the user namespace comes first (it grants the rights to
    // create the others); privileged: last, after the mounts are set up by
    // real root, so the namespaces are owned by the initial user namespace.
    unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | SIGCHLD;
    if (!privileged)
        flags |= CLONE_NEWUSER;
    p.privileged = privileged;
    // Termination signals to kos are forwarded to the program (through a
    // signalfd in the supervision loop) instead of killing kos mid-run.
    sigset_t forwarded;
    sigemptyset(&forwarded);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT})
        sigaddset(&forwarded, sig);
    ::sigprocmask(SIG_BLOCK, &forwarded, &p.sigmask);
    struct MaskRestore {
        sigset_t mask;
        ~MaskRestore() { ::sigprocmask(SIG_SETMASK, &mask, nullptr); }
    } restore{p.sigmask};
    UniqueFd sigfd(::signalfd(-1, &forwarded, SFD_CLOEXEC | SFD_NONBLOCK));
    ::fflush(nullptr);
    out.prepared_ns = ns_since(t0);
    long pid = ::syscall(SYS_clone, flags, nullptr, nullptr, nullptr, 0);
    if (pid == 0) {
        g_sock = sv[1];
        child_main(p);
    }
    ::close(sv[1]);
    if (pid < 0) {
        int err = errno;
        return make_error(err, "clone with new namespaces: " + errno_string(err) +
                                   (privileged ? "" : " (unprivileged user namespaces may be disabled: "
                                                      "see `kos doctor`)"));
    }
    int child = static_cast<int>(pid);
    out.cloned_ns = ns_since(t0);
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, child, 0)));
    auto kill_child = [&] {
        ::kill(child, SIGKILL);
        int st;
        ::waitpid(child, &st, 0);
    };
    auto fail = [&](Error e) -> Result<RunOutcome> {
        kill_child();
        return std::unexpected(std::move(e));
    };

    if (!privileged) {
        if (auto r = write_proc(child, "setgroups", "deny"); !r)
            return fail(r.error());
        if (auto r = write_proc(child, "uid_map", "0 " + std::to_string(::geteuid()) + " 1"); !r)
            return fail(r.error());
        if (auto r = write_proc(child, "gid_map", "0 " + std::to_string(::getegid()) + " 1"); !r)
            return fail(r.error());
    }

    // The cgroup, joined before the program exists. Joining a v1 memory
    // cgroup can take milliseconds, so as root it overlaps the child's
    // mounts (the child runs only kos code until it reports back).
    std::optional<Cgroup> cgroup;
    auto join_cgroup = [&]() -> Result<void> {
        if (!(spec.limits.memory_bytes || spec.limits.pids || spec.limits.cpu_percent))
            return {};
        auto cg = Cgroup::create(std::to_string(child), spec.limits);
        if (cg) {
            KOS_TRY(cg->add(child));
            cgroup.emplace(std::move(*cg));
        } else if (!options.best_effort) {
            return make_error(cg.error().code, "cannot enforce [limits] with a cgroup: " + cg.error().message +
                                                   " (pass --best-effort to run without)");
        } else {
            std::fprintf(stderr, "kos: note: running without a cgroup (--best-effort): %s\n",
                         cg.error().message.c_str());
        }
        return {};
    };
    if (!privileged)
        if (auto r = join_cgroup(); !r)
            return fail(r.error());
    if (auto r = send_msg(sock.get(), kGo); !r)
        return fail(r.error());
    if (privileged)
        if (auto r = join_cgroup(); !r)
            return fail(r.error());

    int notify_fd = -1;
    std::vector<int> volume_tree_fds; // the mounted volumes, in spec.volumes's order
    for (;;) {
        auto m = recv_msg(sock.get(), &notify_fd, 10000, &volume_tree_fds);
        if (!m)
            return fail(m.error());
        if (m->empty())
            return fail(Error{EPIPE, "the sandbox setup process exited before starting the program"});
        char tag = (*m)[0];
        if (tag == kError)
            return fail(Error{EPERM, "sandbox setup: " + m->substr(1)});
        if (tag == kNote) {
            std::fprintf(stderr, "kos: note: %s\n", m->substr(1).c_str());
            continue;
        }
        if (tag == kUnshared) {
            out.mounted_ns = ns_since(t0);
            std::string host_id = std::to_string(kHostNobody);
            if (auto r = write_proc(child, "uid_map", std::to_string(spec.uid) + " " + host_id + " 1"); !r)
                return fail(r.error());
            if (auto r = write_proc(child, "gid_map", std::to_string(spec.gid) + " " + host_id + " 1"); !r)
                return fail(r.error());
            if (auto r = send_msg(sock.get(), kMapped); !r)
                return fail(r.error());
            continue;
        }
        if (tag == kNotifyFd) {
            out.confined_ns = ns_since(t0);
            break;
        }
    }
    UniqueFd notify(notify_fd);
    if (notify) {
        // Linux 6.6+: the program and the supervisor wake each other on the
        // CPU that is running, instead of waking an idle one for every
        // notification (which costs tens of microseconds in a VM). Older
        // kernels refuse the request; nothing else changes.
        constexpr unsigned long kNotifSetFlags = _IOW('!', 4, uint64_t); // SECCOMP_IOCTL_NOTIF_SET_FLAGS
        constexpr uint64_t kSyncWakeUp = 1;                             // SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
        ::ioctl(notify.get(), kNotifSetFlags, kSyncWakeUp);
    }
    std::vector<UniqueFd> volume_trees;
    for (int fd : volume_tree_fds)
        volume_trees.emplace_back(fd);
    Supervisor sup(spec, child, policy.get(), audit_log.get());
    if (spec.volumes_by_supervisor && policy && options.notify) {
        if (volume_trees.size() != spec.volumes.size())
            return fail(Error{EPROTO, "sandbox setup: the mounted volumes did not reach the supervisor"});
        std::vector<SupervisedVolume> served;
        for (size_t i = 0; i < spec.volumes.size(); ++i)
            served.push_back({spec.volumes[i].mount.guest, spec.volumes[i].mount.label, spec.volumes[i].mount.writable,
                              std::move(volume_trees[i])});
        // The program acts on volumes with its host ids: as root, 65534
        // (whose files the ID-mapped mount shows as the directory owner's).
        VolumeIdentity id{privileged, privileged ? kHostNobody : static_cast<uint32_t>(::geteuid()),
                          privileged ? kHostNobody : static_cast<uint32_t>(::getegid()), spec.uid, spec.gid};
        sup.set_volumes(std::move(served), id);
    }
    if (auto r = forward.attach(child); !r)
        return fail(r.error());
    if (options.jail_supervisor)
        if (auto r = jail_supervisor(); !r)
            return fail(r.error());
    if (options.stats)
        std::fprintf(stderr,
                     "kos: process backend: namespaces user,mnt,pid,ipc,uts,net; landlock ABI %d; seccomp "
                     "filter %zu BPF instructions%s; cgroup %s; sandbox uid %u -> host %s\n",
                     out.landlock_abi, filter.bpf_instructions(), options.notify ? " + user notification" : "",
                     !cgroup ? "none"
                             : cgroup->version() == CgroupVersion::V2 ? "v2"
                                                                      : "v1",
                     spec.uid, privileged ? "65534" : "caller");
    if (options.stats) {
        for (const std::string& line : spec.report)
            std::fprintf(stderr, "kos: process backend: %s\n", line.c_str());
        for (const std::string& line : volume_lines)
            std::fprintf(stderr, "kos: process backend: %s\n", line.c_str());
    }

    // Supervise: notifications, the setup socket (EOF when execve
    // succeeded), the child's exit, the wall-time limit.
    bool started = false;
    bool sock_open = true;
    // --timeout, else [limits] wall_time.
    int64_t wall_ms = options.timeout_s > 0 ? static_cast<int64_t>(options.timeout_s * 1000)
                                            : static_cast<int64_t>(spec.limits.wall_ms);
    auto deadline = wall_ms > 0 ? Clock::now() + std::chrono::milliseconds(wall_ms) : Clock::time_point::max();
    Clock::time_point run_start{};
    // After a forwarded signal the program has kGrace to exit (PID 1 ignores
    // signals it has no handler for), then it is killed.
    constexpr auto kGrace = std::chrono::seconds(2);
    auto kill_at = Clock::time_point::max();
    int status = 0;
    for (;;) {
        std::vector<pollfd> fds = {{pidfd.get(), POLLIN, 0},
                                   {notify ? notify.get() : -1, POLLIN, 0},
                                   {sock_open ? sock.get() : -1, POLLIN, 0},
                                   {sigfd.get(), POLLIN, 0}};
        size_t pending_at = fds.size();
        sup.add_pollfds(fds);
        size_t forward_at = fds.size();
        forward.add_pollfds(fds);
        auto next = std::min(deadline, kill_at);
        int timeout = -1;
        if (next != Clock::time_point::max()) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count();
            timeout = left < 0 ? 0 : static_cast<int>(left) + 1;
        }
        int rc = ::poll(fds.data(), fds.size(), timeout);
        if (rc < 0 && errno != EINTR)
            return fail(Error{errno, "poll: " + errno_string(errno)});
        if (rc == 0 && Clock::now() >= deadline) {
            ::kill(child, SIGKILL);
            out.limit_hit = options.timeout_s > 0 ? "wall-time limit (--timeout)" : "wall-time limit ([limits] wall_time)";
            deadline = Clock::time_point::max();
            continue;
        }
        if (rc == 0 && Clock::now() >= kill_at) {
            ::kill(child, SIGKILL);
            kill_at = Clock::time_point::max();
            continue;
        }
        if (fds[3].revents & POLLIN) {
            signalfd_siginfo si{};
            while (::read(sigfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
                // A second signal, or SIGQUIT, does not wait.
                bool now = kill_at != Clock::time_point::max() || si.ssi_signo == SIGQUIT;
                ::kill(child, now ? SIGKILL : static_cast<int>(si.ssi_signo));
                kill_at = now ? Clock::time_point::max() : Clock::now() + kGrace;
            }
        }
        if (fds[1].revents & POLLIN)
            sup.handle(notify.get(), out);
        if (fds[1].revents & (POLLHUP | POLLERR))
            notify = UniqueFd();
        if (fds[2].revents & (POLLIN | POLLHUP)) {
            int unused = -1;
            auto m = recv_msg(sock.get(), &unused, 0);
            if (!m || m->empty()) {
                sock_open = false;
                if (!started) {
                    started = true;
                    out.setup_ns = ns_since(t0);
                    run_start = Clock::now();
                }
            } else if ((*m)[0] == kExecError && m->size() >= 1 + sizeof(int)) {
                out.kind = RunOutcome::Kind::ExecFailed;
                std::memcpy(&out.value, m->data() + 1, sizeof(int));
            }
        }
        if (notify && forward_at > pending_at)
            sup.handle_pending(notify.get(), fds.data() + pending_at, forward_at - pending_at);
        if (fds.size() > forward_at)
            forward.handle(fds.data() + forward_at, fds.size() - forward_at);
        if (fds[0].revents & POLLIN) {
            if (::waitpid(child, &status, 0) == child)
                break;
        }
    }
    if (!started)
        out.setup_ns = ns_since(t0);
    else
        out.run_ns = ns_since(run_start);
    if (out.kind != RunOutcome::Kind::ExecFailed) {
        if (WIFSIGNALED(status)) {
            out.kind = RunOutcome::Kind::Signaled;
            out.value = WTERMSIG(status);
        } else {
            out.kind = RunOutcome::Kind::Exited;
            out.value = WEXITSTATUS(status);
        }
    }
    if (cgroup && out.limit_hit.empty())
        out.limit_hit = cgroup->limit_hit(spec.limits);
    if (out.limit_hit.empty() && out.kind == RunOutcome::Kind::Signaled && out.value == SIGXCPU)
        out.limit_hit = "CPU-time limit ([limits] cpu_time)";
    return out;
}

} // namespace kos::proc
