#include "jail.h"

#include <linux/capability.h>
#include <linux/kvm.h>
#include <linux/landlock.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <fcntl.h>

#include "kos/support/file.h"

namespace kos::vmm {
namespace {

// Landlock UAPI values newer than Debian 12's headers (kernel 6.1 has ABI 2).
constexpr uint64_t kFsRightsV1 = (1ull << 13) - 1; // EXECUTE .. MAKE_SYM
constexpr uint64_t kFsRefer = 1ull << 13;          // ABI 2
constexpr uint64_t kFsTruncate = 1ull << 14;       // ABI 3
constexpr uint64_t kFsIoctlDev = 1ull << 15;       // ABI 5
constexpr uint64_t kNetBindTcp = 1ull << 0;        // ABI 4
constexpr uint64_t kNetConnectTcp = 1ull << 1;     // ABI 4
constexpr uint64_t kScopeAbstractUnix = 1ull << 0; // ABI 6
constexpr uint64_t kScopeSignal = 1ull << 1;       // ABI 6
// fchmodat2 (Linux 6.6) is newer than Debian 12's headers and libseccomp.
constexpr int kSysFchmodat2 = 452;

scmp_arg_cmp cmp(unsigned arg, scmp_compare op, uint64_t a, uint64_t b = 0) {
    scmp_arg_cmp c{};
    c.arg = arg;
    c.op = op;
    c.datum_a = a;
    c.datum_b = b;
    return c;
}

// A seccomp filter under construction: kills the process on anything not
// allowed; keeps the first error.
class Filter {
public:
    Filter() : m_ctx(::seccomp_init(SCMP_ACT_KILL_PROCESS)) {
        if (!m_ctx)
            m_rc = -ENOMEM;
    }
    ~Filter() {
        if (m_ctx)
            ::seccomp_release(m_ctx);
    }
    Filter(const Filter&) = delete;
    Filter& operator=(const Filter&) = delete;
    void allow(int nr, std::initializer_list<scmp_arg_cmp> args = {}) {
        if (m_rc == 0)
            m_rc = ::seccomp_rule_add_array(m_ctx, SCMP_ACT_ALLOW, nr, static_cast<unsigned>(args.size()),
                                            args.size() ? args.begin() : nullptr);
    }
    // Loads the filter on the calling thread only (no TSYNC): each kind
    // of VMM thread has its own.
    Result<void> load(const char* which) {
        if (m_rc == 0)
            m_rc = ::seccomp_load(m_ctx);
        if (m_rc != 0)
            return make_error(-m_rc, std::string("installing the ") + which + " seccomp filter failed: " +
                                         errno_string(-m_rc));
        return {};
    }

private:
    scmp_filter_ctx m_ctx;
    int m_rc = 0;
};

// Memory and the runtime, for every VMM thread.
void allow_runtime(Filter& f) {
    // The allocator (error messages, buffers, teardown); never executable
    // memory. One arena for all threads (NetService::launch), so no
    // per-thread heaps to mprotect or trim.
    f.allow(SCMP_SYS(brk));
    f.allow(SCMP_SYS(mmap), {cmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
    f.allow(SCMP_SYS(munmap));
    f.allow(SCMP_SYS(mremap));
    f.allow(SCMP_SYS(madvise));
    // Clocks (when the vDSO is not used), and futexes of the C++ runtime
    // (mutexes, the network service's condition variable, thread join).
    f.allow(SCMP_SYS(clock_gettime));
    f.allow(SCMP_SYS(futex));
    // Teardown: closing descriptors, then exiting.
    f.allow(SCMP_SYS(close));
    f.allow(SCMP_SYS(exit));
    f.allow(SCMP_SYS(exit_group));
}

struct RulesetAttr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

} // namespace

std::string JailReport::summary() const {
    std::string threads = network && files ? "seccomp filters (vCPU, network and file threads)"
                          : network        ? "seccomp filters (vCPU and network threads)"
                          : files          ? "seccomp filters (vCPU and file threads)"
                                           : "seccomp filter";
    std::string landlock = landlock_abi ? "Landlock ABI " + std::to_string(landlock_abi) : "no Landlock (kernel lacks it)";
    if (landlock_abi && volumes)
        landlock += " (" + std::to_string(volumes) + (volumes == 1 ? " volume)" : " volumes)");
    std::string ns = namespaces.empty() ? "no new namespaces (" + namespaces_refused + ")"
                                        : "namespaces (" + namespaces + ")";
    return threads + ", " + ns + ", no capabilities, no_new_privs, " + landlock;
}

namespace {

bool write_file(const char* path, const std::string& text) {
    int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    return ok;
}

} // namespace

Result<std::string> enter_namespaces(bool keep_network, std::string* why) {
    int flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | (keep_network ? 0 : CLONE_NEWNET);
    std::string entered;
    if (::unshare(flags) != 0) {
        if (errno != EPERM) {
            *why = "unshare: " + errno_string(errno);
            return std::string();
        }
        // Unprivileged: a user namespace holding the caller's ids gives the
        // rights to make the others (and the capabilities go right after).
        uid_t uid = ::geteuid();
        gid_t gid = ::getegid();
        if (::unshare(CLONE_NEWUSER | flags) != 0) {
            *why = "unshare (user namespace): " + errno_string(errno);
            return std::string();
        }
        if (!write_file("/proc/self/setgroups", "deny") ||
            !write_file("/proc/self/uid_map", std::to_string(uid) + " " + std::to_string(uid) + " 1") ||
            !write_file("/proc/self/gid_map", std::to_string(gid) + " " + std::to_string(gid) + " 1"))
            return make_error(errno, "mapping the VMM's ids in its user namespace: " + errno_string(errno));
        entered = "user, ";
    }
    // Nothing mounted here reaches the host's namespace, and back.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        return make_error(errno, "making the VMM's mounts private: " + errno_string(errno));
    entered += keep_network ? "mount, IPC, UTS" : "mount, IPC, UTS, network";
    return entered;
}

Result<void> drop_privileges(unsigned extra_fds) {
    // No core dumps of guest memory, and no ptrace by same-uid processes.
    rlimit core{0, 0};
    if (::setrlimit(RLIMIT_CORE, &core) != 0)
        return make_error(errno, "setrlimit(RLIMIT_CORE): " + errno_string(errno));
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return make_error(errno, "prctl(PR_SET_DUMPABLE): " + errno_string(errno));
    // Descriptors: the VMM opens nothing after setup but the network
    // service's sockets and the file service's files.
    rlimit nofile{64 + extra_fds, 64 + extra_fds};
    ::setrlimit(RLIMIT_NOFILE, &nofile);
    // Capabilities: the bounding set first (needs CAP_SETPCAP, which only a
    // privileged VMM has), then every set.
    for (int cap = 0; cap <= 63; ++cap)
        if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL)
            break;
    ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (::syscall(SYS_capset, &header, data) != 0)
        return make_error(errno, "capset: " + errno_string(errno));
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return make_error(errno, "prctl(PR_SET_NO_NEW_PRIVS): " + errno_string(errno));
    return {};
}

Result<int> restrict_with_landlock(bool allow_connect, const std::vector<JailVolume>& volumes) {
    long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 0) {
        if (errno == ENOSYS || errno == EOPNOTSUPP)
            return 0;
        return make_error(errno, "Landlock ABI query: " + errno_string(errno));
    }
    RulesetAttr attr{kFsRightsV1, 0, 0};
    size_t size = sizeof(uint64_t);
    if (abi >= 2)
        attr.handled_access_fs |= kFsRefer;
    if (abi >= 3)
        attr.handled_access_fs |= kFsTruncate;
    if (abi >= 4) {
        // Nothing is bound after setup (published ports are bound before);
        // connect stays handled, so denied, unless outbound connections are
        // possible (Landlock cannot allow "any port" but by not handling it).
        attr.handled_access_net = kNetBindTcp | (allow_connect ? 0 : kNetConnectTcp);
        size = 2 * sizeof(uint64_t);
    }
    if (abi >= 5)
        attr.handled_access_fs |= kFsIoctlDev;
    if (abi >= 6) {
        attr.scoped = kScopeAbstractUnix | kScopeSignal;
        size = sizeof attr;
    }
    UniqueFd ruleset(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, size, 0)));
    if (!ruleset)
        return make_error(errno, "landlock_create_ruleset: " + errno_string(errno));
    // One rule per volume; everything else handled is denied. Reading
    // files and directories; for a writable volume also what the file
    // service's calls do (write, truncate, create files, directories and
    // symlinks, remove, and REFER for renames and links between its
    // directories). Never EXECUTE, never device ioctls.
    for (const JailVolume& v : volumes) {
        landlock_path_beneath_attr rule{};
        rule.allowed_access = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
        if (v.writable)
            rule.allowed_access |= LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_FILE |
                                   LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
                                   LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_SYM |
                                   (attr.handled_access_fs & (kFsRefer | kFsTruncate));
        rule.parent_fd = v.fd;
        if (::syscall(SYS_landlock_add_rule, ruleset.get(), LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0)
            return make_error(errno, "landlock_add_rule for a volume: " + errno_string(errno));
    }
    if (::syscall(SYS_landlock_restrict_self, ruleset.get(), 0) != 0)
        return make_error(errno, "landlock_restrict_self: " + errno_string(errno));
    return static_cast<int>(abi);
}

Result<void> install_seccomp_filter(const JailOptions& o) {
    Filter f;
    auto fd_is = [](unsigned arg, int fd) { return cmp(arg, SCMP_CMP_EQ, static_cast<uint64_t>(fd)); };

    // Run the vCPU and read its registers for error reports; only on the
    // vCPU descriptors.
    // KVM_GET/SET_XSAVE: user FPU state switches where the guest kernel
    // cannot do them itself (nested kvm_pvm); KVM_GET_MP_STATE: is the
    // guest halted for good. A further vCPU is set up when the guest
    // kernel starts it: KVM_SET_REGS, KVM_SET_SREGS, KVM_SET_MP_STATE.
    std::vector<int> vcpus{o.vcpu_fd};
    vcpus.insert(vcpus.end(), o.more_vcpu_fds.begin(), o.more_vcpu_fds.end());
    for (int fd : vcpus) {
        for (uint64_t req : {uint64_t{KVM_RUN}, uint64_t{KVM_GET_REGS}, uint64_t{KVM_GET_SREGS},
                             uint64_t{KVM_GET_XSAVE}, uint64_t{KVM_SET_XSAVE}, uint64_t{KVM_GET_MP_STATE}})
            f.allow(SCMP_SYS(ioctl), {fd_is(0, fd), cmp(1, SCMP_CMP_EQ, req)});
        if (fd != o.vcpu_fd)
            for (uint64_t req : {uint64_t{KVM_SET_REGS}, uint64_t{KVM_SET_SREGS}, uint64_t{KVM_SET_MP_STATE}})
                f.allow(SCMP_SYS(ioctl), {fd_is(0, fd), cmp(1, SCMP_CMP_EQ, req)});
    }
    // vCPU threads stop each other's KVM_RUN at the end of the run (the
    // watchdog's signal, to this process's threads only).
    if (!o.more_vcpu_fds.empty()) {
        f.allow(SCMP_SYS(tgkill), {cmp(0, SCMP_CMP_EQ, static_cast<uint64_t>(::getpid())),
                                   cmp(2, SCMP_CMP_EQ, SIGUSR1)});
        f.allow(SCMP_SYS(getpid)); // pthread_kill's first argument
        f.allow(SCMP_SYS(rt_sigprocmask)); // thread exit blocks signals
    }
    // Guest console input and output, and kos's own messages.
    f.allow(SCMP_SYS(read), {fd_is(0, o.stdin_fd)});
    f.allow(SCMP_SYS(write), {fd_is(0, o.stdout_fd)});
    if (o.stderr_fd != o.stdout_fd)
        f.allow(SCMP_SYS(write), {fd_is(0, o.stderr_fd)});
    // The policy's audit records, appended to the audit log opened before.
    if (o.audit_fd >= 0)
        f.allow(SCMP_SYS(write), {fd_is(0, o.audit_fd)});
    // Waking the network I/O thread (an eventfd); the vCPU thread makes no
    // socket call itself.
    if (o.net_wake_fd >= 0)
        f.allow(SCMP_SYS(write), {fd_is(0, o.net_wake_fd)});
    // The file service's I/O thread is handed each call through a mutex
    // and condition variable: futex, below; no file call here.
    allow_runtime(f);
    // stdio asks whether an output is a terminal/file on first use.
    f.allow(SCMP_SYS(fstat));
    f.allow(SCMP_SYS(newfstatat), {cmp(3, SCMP_CMP_EQ, AT_EMPTY_PATH)});
    // The watchdog timer's signal interrupts KVM_RUN and returns.
    f.allow(SCMP_SYS(rt_sigreturn));
    f.allow(SCMP_SYS(timer_delete));
    // Default signal actions at exit (SIGPIPE on a closed output) need none.
    return f.load("vCPU thread's");
}

Result<void> install_io_thread_filter() {
    Filter f;
    constexpr uint64_t kStream = SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC;
    constexpr uint64_t kDgram = SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC;
    // The event loop: submissions and completions of the restricted ring.
    f.allow(SCMP_SYS(io_uring_enter));
    // Outbound TCP connections (the policy allowed them; Landlock applies
    // too), and the socketpairs of the bundle's loopback connections.
    f.allow(SCMP_SYS(socket), {cmp(0, SCMP_CMP_EQ, AF_INET), cmp(1, SCMP_CMP_EQ, kStream), cmp(2, SCMP_CMP_EQ, 0)});
    f.allow(SCMP_SYS(socket), {cmp(0, SCMP_CMP_EQ, AF_INET6), cmp(1, SCMP_CMP_EQ, kStream), cmp(2, SCMP_CMP_EQ, 0)});
    f.allow(SCMP_SYS(socketpair), {cmp(0, SCMP_CMP_EQ, AF_UNIX), cmp(1, SCMP_CMP_EQ, kStream)});
    // A guest UDP socket's host socket, made at its first outbound datagram (the policy decided its destination).
    f.allow(SCMP_SYS(socket), {cmp(0, SCMP_CMP_EQ, AF_INET), cmp(1, SCMP_CMP_EQ, kDgram), cmp(2, SCMP_CMP_EQ, 0)});
    f.allow(SCMP_SYS(socket), {cmp(0, SCMP_CMP_EQ, AF_INET6), cmp(1, SCMP_CMP_EQ, kDgram), cmp(2, SCMP_CMP_EQ, 0)});
    // The guest's TCP_NODELAY and SO_KEEPALIVE on its host sockets.
    f.allow(SCMP_SYS(setsockopt), {cmp(1, SCMP_CMP_EQ, IPPROTO_TCP), cmp(2, SCMP_CMP_EQ, TCP_NODELAY)});
    f.allow(SCMP_SYS(setsockopt), {cmp(1, SCMP_CMP_EQ, SOL_SOCKET), cmp(2, SCMP_CMP_EQ, SO_KEEPALIVE)});
    // The local address of an outbound connection (getsockname), and the
    // guest's shutdown(SHUT_WR) once its output has gone out.
    f.allow(SCMP_SYS(getsockname));
    f.allow(SCMP_SYS(shutdown), {cmp(1, SCMP_CMP_EQ, SHUT_WR)});
    allow_runtime(f);
    // Thread exit blocks signals (they are blocked already).
    f.allow(SCMP_SYS(rt_sigprocmask));
    return f.load("network I/O thread's");
}

Result<void> install_file_thread_filter() {
    Filter f;
    // The service's restricted ring: opens (openat2 beneath a volume's
    // root), reads, writes, stats, closes, fsyncs, mkdir, unlink, rename,
    // symlink, link, ftruncate.
    f.allow(SCMP_SYS(io_uring_enter));
    // What the ring has no opcode for, all on descriptors the service
    // opened beneath a volume (none of them opens a path):
    f.allow(SCMP_SYS(getdents64)); // ReadDir
    f.allow(SCMP_SYS(readlinkat)); // ReadLink, relative to the opened parent
    f.allow(kSysFchmodat2);        // Chmod by path (fchmodat2: AT_EMPTY_PATH on an O_PATH descriptor)
    f.allow(SCMP_SYS(fchmod));     // Chmod on an open file, and on kernels without fchmodat2
    f.allow(SCMP_SYS(utimensat));  // SetTimes
    f.allow(SCMP_SYS(lseek));      // Seek, and the position a write starts at (scratch quota)
    f.allow(SCMP_SYS(ftruncate));  // Truncate on kernels without IORING_OP_FTRUNCATE (6.9)
    // Open files lose the O_NONBLOCK they were opened with once they are
    // known to be regular files or directories.
    f.allow(SCMP_SYS(fcntl), {cmp(1, SCMP_CMP_EQ, F_SETFL)});
    allow_runtime(f);
    // Thread exit blocks signals (they are blocked already).
    f.allow(SCMP_SYS(rt_sigprocmask));
    return f.load("file I/O thread's");
}

Result<JailReport> enter_jail(const JailOptions& options, const std::function<Result<void>()>& start_threads) {
    JailReport report;
    std::string why;
    report.namespaces = KOS_TRY(enter_namespaces(options.net_connect, &why));
    report.namespaces_refused = why;
    KOS_TRY(drop_privileges(options.net_fds + options.file_fds));
    report.landlock_abi = KOS_TRY(restrict_with_landlock(options.net_connect, options.volumes));
    if (start_threads)
        KOS_TRY(start_threads());
    KOS_TRY(install_seccomp_filter(options));
    report.network = options.net_wake_fd >= 0;
    report.files = options.files;
    report.volumes = options.volumes.size();
    return report;
}

} // namespace kos::vmm
