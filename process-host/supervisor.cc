#include "supervisor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <ctime>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>

#include "kos/policy/audit_json.h"
#include "kos/support/file.h"

namespace kos::proc {
namespace {

constexpr uint64_t kMaxDenialLines = 100;

std::string comm_of(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
    std::string s;
    std::getline(f, s);
    return s.empty() ? "?" : s;
}

// Copies up to `len` bytes of the program's memory.
bool read_mem(int pid, uint64_t addr, void* buf, size_t len, size_t* got) {
    iovec local{buf, len};
    iovec remote{reinterpret_cast<void*>(addr), len};
    ssize_t n = ::process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n < 0)
        return false;
    *got = static_cast<size_t>(n);
    return true;
}

bool read_path(int pid, uint64_t addr, std::string& out) {
    // Page by page, since the string may end right before an unmapped page.
    out.clear();
    char buf[256];
    while (out.size() < 4096) {
        size_t chunk = 256 - (addr % 256);
        size_t got = 0;
        if (!read_mem(pid, addr, buf, chunk, &got) || got == 0)
            return false;
        size_t n = ::strnlen(buf, got);
        out.append(buf, n);
        if (n < got)
            return true;
        addr += got;
    }
    return false;
}

uint64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// The path the kernel resolved for `fd` (an O_PATH descriptor opened
// through the program's root): /proc/self/fd names it relative to the
// sandbox's root, whose top-level entries are the rootfs's, so it is the
// path inside the rootfs. The caller checks that the inode matches.
std::string fd_path(int fd) {
    char buf[4096];
    ssize_t n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf, sizeof buf);
    if (n <= 0 || static_cast<size_t>(n) >= sizeof buf)
        return "";
    return std::string(buf, static_cast<size_t>(n));
}

std::string addr_text(int family, const uint8_t* a, uint16_t port) {
    char s[INET6_ADDRSTRLEN] = "?";
    ::inet_ntop(family, a, s, sizeof s);
    return family == AF_INET6 ? "[" + std::string(s) + "]:" + std::to_string(port)
                              : std::string(s) + ":" + std::to_string(port);
}

} // namespace

bool decode_ip_sockaddr(const void* bytes, size_t len, IpEndpoint* out) {
    sockaddr_storage ss{};
    if (len < sizeof(sa_family_t) || len > sizeof ss)
        return false;
    std::memcpy(&ss, bytes, len);
    *out = IpEndpoint{};
    if (ss.ss_family == AF_INET) {
        if (len < sizeof(sockaddr_in))
            return false;
        auto* in = reinterpret_cast<sockaddr_in*>(&ss);
        out->family = AF_INET;
        std::memcpy(out->addr, &in->sin_addr, 4);
        out->port = ntohs(in->sin_port);
        return true;
    }
    if (ss.ss_family == AF_INET6) {
        if (len < sizeof(sockaddr_in6))
            return false;
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
        out->family = AF_INET6;
        std::memcpy(out->addr, &in6->sin6_addr, 16);
        out->port = ntohs(in6->sin6_port);
        static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (std::memcmp(out->addr, kMapped, 12) == 0) { // v4-mapped: judged as IPv4
            out->family = AF_INET;
            std::memmove(out->addr, out->addr + 12, 4);
            std::memset(out->addr + 4, 0, 12);
        }
        return true;
    }
    return false;
}

Verdict decide_net(const SandboxSpec& spec, NetOp op, Proto proto, int family, const uint8_t* addr,
                   uint16_t port) {
    const auto& rules = op == NetOp::Connect ? spec.connect : spec.bind;
    for (const NetRule& r : rules)
        if (net_rule_matches(r, proto, family, addr, port))
            return {true, "allowed by " + r.text, op == NetOp::Connect ? "network.connect" : "network.listen"};
    if (op == NetOp::Connect)
        return {false, "no [network] connect entry in " + spec.origin + " allows it", "network.connect"};
    return {false, "no [network] listen entry in " + spec.origin + " allows it", "network.listen"};
}

Supervisor::Supervisor(const SandboxSpec& spec, int child_pid, SandboxPolicy* policy, int audit_fd)
    : m_spec(spec), m_child(child_pid), m_policy(policy), m_audit_fd(audit_fd) {
    for (const auto& e : spec.execs) {
        struct stat st{};
        if (::stat((spec.rootfs + e).c_str(), &st) == 0)
            m_execs.insert({st.st_dev, st.st_ino});
    }
}

bool Supervisor::exec_allowed(dev_t dev, ino_t ino) const { return m_execs.count({dev, ino}) != 0; }

// "prog (domain)", as the VM backend's audit lines name a subject.
std::string Supervisor::who(int pid) const { return comm_of(pid) + " (" + m_spec.domain + ")"; }

void Supervisor::print_line(const std::string& line) {
    // Up to a cap, so a looping program cannot flood the terminal; the
    // count is in the --stats summary and every record in the audit log.
    ++m_lines;
    if (m_lines <= kMaxDenialLines)
        std::fprintf(stderr, "%s\n", line.c_str());
    if (m_lines == kMaxDenialLines)
        std::fprintf(stderr, "%s\n", m_audit_fd >= 0 ? "kos: more audit records than shown; all are in the audit log"
                                                     : "kos: further denials are counted, not printed");
}

void Supervisor::audit(const PolicyDecision& d) {
    if (!d.audited)
        return;
    print_line(policy::render_audit_human(m_policy->engine(), d.record));
    if (m_audit_fd >= 0) {
        std::string line = policy::render_audit_json(m_policy->engine(), d.record) + "\n";
        // A full disk must not stop the supervisor; stderr still has the line.
        [[maybe_unused]] auto written = write_all(m_audit_fd, line.data(), line.size(), "audit log");
    }
}

void Supervisor::add_pollfds(std::vector<pollfd>& fds) const {
    for (const auto& p : m_pending)
        fds.push_back({p.sock.get(), POLLOUT, 0});
}

void Supervisor::handle_pending(int notify_fd, const pollfd* fds, size_t count) {
    for (size_t i = 0; i < count && i < m_pending.size(); ++i) {
        if (!(fds[i].revents & (POLLOUT | POLLERR | POLLHUP)))
            continue;
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(m_pending[i].sock.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        seccomp_notif_resp resp{};
        resp.id = m_pending[i].id;
        resp.error = -err;
        ::ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp); // ENOENT if the caller gave up
        m_pending[i].sock = UniqueFd();
    }
    std::erase_if(m_pending, [](const PendingConnect& p) { return !p.sock; });
}

void Supervisor::handle(int fd, RunOutcome& stats) {
    seccomp_notif req{};
    if (::ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0)
        return; // the target died, or a signal interrupted it
    ++stats.notifications;
    seccomp_notif_resp resp{};
    resp.id = req.id;
    int pid = static_cast<int>(req.pid);
    auto still_valid = [&] { return ::ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req.id) == 0; };
    // A denial the supervisor makes itself: one line (spec verdicts, and
    // what the policy cannot be asked about).
    auto deny = [&](int err, const std::string& line) {
        resp.error = -err;
        ++stats.denials;
        print_line("kos: denied " + line);
    };
    // A verdict of the policy: its audit record if it asks for one.
    auto policy_verdict = [&](const PolicyDecision& d) {
        audit(d);
        if (!d.verdict.allow) {
            resp.error = -EACCES;
            ++stats.denials;
        }
        return d.verdict.allow;
    };
    const char* name = "?";
    long nr = req.data.nr;
    if (nr == SYS_execve || nr == SYS_execveat) {
        name = nr == SYS_execve ? "execve" : "execveat";
        // Decide on what the path names now; the kernel re-checks on the
        // real execve (Landlock EXECUTE), so a racing rewrite gains nothing.
        uint64_t path_arg = nr == SYS_execve ? req.data.args[0] : req.data.args[1];
        std::string path;
        bool ok = read_path(pid, path_arg, path);
        std::string proc = "/proc/" + std::to_string(pid);
        std::string rel = path;
        UniqueFd base;
        if (nr == SYS_execveat && (req.data.args[4] & AT_EMPTY_PATH) && path.empty()) {
            base = UniqueFd(::open((proc + "/fd/" + std::to_string(static_cast<int>(req.data.args[0]))).c_str(),
                                   O_PATH | O_CLOEXEC));
            rel = "";
        } else if (!path.empty() && path[0] == '/') {
            base = UniqueFd(::open((proc + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        } else if (nr == SYS_execveat && static_cast<int>(req.data.args[0]) != AT_FDCWD) {
            base = UniqueFd(::open((proc + "/fd/" + std::to_string(static_cast<int>(req.data.args[0]))).c_str(),
                                   O_PATH | O_DIRECTORY | O_CLOEXEC));
        } else {
            base = UniqueFd(::open((proc + "/cwd").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        }
        struct stat st{};
        UniqueFd target;
        int resolved = -1; // the file the path names now, if any
        if (ok && base) {
            if (rel.empty()) {
                if (::fstat(base.get(), &st) == 0)
                    resolved = base.get();
            } else {
                open_how how{};
                how.flags = O_PATH | O_CLOEXEC;
                how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
                target = UniqueFd(static_cast<int>(::syscall(SYS_openat2, base.get(), rel.c_str(), &how, sizeof how)));
                if (target && ::fstat(target.get(), &st) == 0 && S_ISREG(st.st_mode))
                    resolved = target.get();
                else if (!target && errno == ENOENT) {
                    // A missing program: let the kernel report ENOENT as usual.
                    resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
                    ::ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
                    return;
                }
            }
        }
        bool allowed = false;
        std::optional<PolicyDecision> decision;
        std::string program;
        if (resolved >= 0 && m_policy) {
            // The policy judges the path inside the rootfs, as resolved; only
            // a file that is that rootfs file may run (a memfd, a /tmp or
            // /proc file never: Landlock does not cover every such file).
            program = fd_path(resolved);
            struct stat rs{};
            if (S_ISREG(st.st_mode) && !program.empty() && program[0] == '/' &&
                ::lstat((m_spec.rootfs + program).c_str(), &rs) == 0 && rs.st_dev == st.st_dev &&
                rs.st_ino == st.st_ino)
                decision = m_policy->decide_execute(program, monotonic_ns());
        } else if (resolved >= 0) {
            allowed = exec_allowed(st.st_dev, st.st_ino);
        }
        if (!still_valid())
            return;
        if (decision)
            allowed = policy_verdict(*decision);
        if (allowed)
            resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        else if (m_policy && !decision)
            deny(EACCES, std::string(name) + " \"" + path + "\" by " + who(pid) +
                             " [rule exec.outside-rootfs]: only files of the bundle's rootfs may be executed" +
                             (program.empty() ? std::string() : " (it resolves to " + program + ")"));
        else if (!m_policy)
            deny(EACCES, std::string(name) + " \"" + path + "\" by " + who(pid) +
                             " [rule exec.undeclared]: only the entrypoint and its interpreter may be executed");
    } else if (nr == SYS_connect || nr == SYS_bind) {
        NetOp op = nr == SYS_connect ? NetOp::Connect : NetOp::Bind;
        name = op == NetOp::Connect ? "connect" : "bind";
        int sockfd = static_cast<int>(req.data.args[0]);
        sockaddr_storage ss{};
        size_t len = static_cast<size_t>(req.data.args[2]);
        size_t got = 0;
        if (len > sizeof ss || len < sizeof(sa_family_t)) {
            // Let the kernel reject the bad length itself.
            resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        } else if (!read_mem(pid, req.data.args[1], &ss, len, &got) || got != len) {
            resp.error = -EFAULT;
        } else if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) {
            // Local sockets resolve in the program's own mount and network
            // namespaces: nothing outside the sandbox is reachable.
            resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        } else {
            IpEndpoint ep{};
            bool size_ok = decode_ip_sockaddr(&ss, len, &ep);
            int family = ep.family;
            const uint8_t* a = ep.addr;
            uint16_t port = ep.port;
            UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
            UniqueFd dup(pidfd ? static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), sockfd, 0)) : -1);
            int type = 0;
            socklen_t tl = sizeof type;
            if (!size_ok) {
                resp.error = -EINVAL;
            } else if (!dup) {
                resp.error = -EBADF;
            } else if (::getsockopt(dup.get(), SOL_SOCKET, SO_TYPE, &type, &tl) != 0) {
                resp.error = -ENOTSOCK;
            } else if (!still_valid()) {
                return;
            } else {
                Proto proto = type == SOCK_STREAM ? Proto::Tcp : Proto::Udp;
                bool allowed = false;
                if (m_policy) {
                    // The IP protocol itself (net.kidl's proto): a stream
                    // socket of another protocol (MPTCP, SCTP) is not TCP.
                    int ip_proto = 0;
                    socklen_t pl = sizeof ip_proto;
                    bool tcp_or_udp = ::getsockopt(dup.get(), SOL_SOCKET, SO_PROTOCOL, &ip_proto, &pl) == 0 &&
                                      ((type == SOCK_STREAM && ip_proto == IPPROTO_TCP) ||
                                       (type == SOCK_DGRAM && ip_proto == IPPROTO_UDP));
                    if (tcp_or_udp) {
                        uint64_t now = monotonic_ns();
                        allowed = policy_verdict(op == NetOp::Connect
                                                     ? m_policy->decide_connect(ep, static_cast<uint8_t>(ip_proto), now)
                                                     : m_policy->decide_bind(ep, now));
                    } else {
                        deny(EACCES, std::string(name) + " " + addr_text(family, a, port) + " by " + who(pid) +
                                         " [rule network.socket-type]: only TCP and UDP sockets are supported");
                    }
                } else {
                    Verdict v = (type == SOCK_STREAM || type == SOCK_DGRAM)
                                    ? decide_net(m_spec, op, proto, family, a, port)
                                    : Verdict{false, "only TCP and UDP sockets are supported", "network.socket-type"};
                    allowed = v.allow;
                    if (!v.allow)
                        deny(EACCES, std::string(name) + " " + (proto == Proto::Tcp ? "tcp " : "udp ") +
                                         addr_text(family, a, port) + " by " + who(pid) + " [rule " + v.rule +
                                         "]: " + v.reason);
                }
                if (!allowed) {
                    // answered below with the error set by the verdict
                } else if (op == NetOp::Bind) {
                    // The call runs on our copy of the address.
                    int rc = ::bind(dup.get(), reinterpret_cast<sockaddr*>(&ss), static_cast<socklen_t>(len));
                    resp.error = rc == 0 ? 0 : -errno;
                } else {
                    // Connect on our copy of the address, never blocking this
                    // loop (it also enforces the wall-time limit): a blocking
                    // socket is switched to non-blocking for the call only,
                    // and an unfinished connect is answered when it completes.
                    int fl = ::fcntl(dup.get(), F_GETFL);
                    bool blocking = fl >= 0 && !(fl & O_NONBLOCK);
                    if (blocking)
                        ::fcntl(dup.get(), F_SETFL, fl | O_NONBLOCK);
                    int rc = ::connect(dup.get(), reinterpret_cast<sockaddr*>(&ss), static_cast<socklen_t>(len));
                    int err = rc == 0 ? 0 : errno;
                    if (blocking)
                        ::fcntl(dup.get(), F_SETFL, fl);
                    if (blocking && err == EINPROGRESS) {
                        m_pending.push_back({req.id, std::move(dup)});
                        return; // answered by handle_pending()
                    }
                    resp.error = -err;
                }
            }
        }
    } else if (!m_volumes.empty() && m_policy) {
        // A call naming a path (only notified with volumes).
        if (!handle_path_call(fd, req, resp, stats))
            return; // answered already (an added descriptor), or gone
    } else {
        resp.error = -ENOSYS; // the filter notifies nothing else
    }
    ::ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

} // namespace kos::proc
