// The supervisor answers the sandbox's seccomp user notifications
// (connect, bind, execve, execveat), deciding from the sandbox spec.
//
// No decision trusts memory the program can change after the check:
// - connect/bind on IP sockets: the supervisor copies the address once,
//   decides on the copy, and if allowed performs the call itself on a
//   duplicate of the program's socket (pidfd_getfd) with that copy (a
//   connect that does not finish at once is answered when it does, so the
//   supervisor never blocks);
// - execve: the supervisor denies what the spec does not list and lets an
//   allowed path continue, and the kernel re-checks: Landlock grants
//   EXECUTE only on the listed files, so a path rewritten after the check
//   still cannot start anything else (ATTACKS.md 27).
// Every denial prints one line on stderr, shaped like the VM backend's audit
// lines: "kos: denied connect tcp 10.0.0.1:80 by prog (app_t) [rule
// network.connect]: why".
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "kos/support/file.h"

#include "sandbox.h"
#include "sandbox_spec.h"

namespace kos::proc {

enum class NetOp { Connect, Bind };

struct IpEndpoint {
    int family = 0; // AF_INET (also for v4-mapped IPv6) or AF_INET6
    uint8_t addr[16] = {};
    uint16_t port = 0;
};

// Decodes an IPv4/IPv6 sockaddr copied from the program (`len` as the
// program passed it). False when it is not one or is too short.
bool decode_ip_sockaddr(const void* bytes, size_t len, IpEndpoint* out);

// The verdict for an IP connect/bind, from the spec alone (the security
// engine's answer once security-server/ offers one).
Verdict decide_net(const SandboxSpec& spec, NetOp op, Proto proto, int family, const uint8_t* addr,
                   uint16_t port);

class Supervisor {
public:
    Supervisor(const SandboxSpec& spec, int child_pid);
    // Receives and answers one notification (a connect that cannot finish
    // at once is answered later by handle_pending).
    void handle(int notify_fd, RunOutcome& stats);
    // Connects in progress: their sockets, polled for completion.
    void add_pollfds(std::vector<pollfd>& fds) const;
    void handle_pending(int notify_fd, const pollfd* fds, size_t count);
    size_t pending() const { return m_pending.size(); }

private:
    struct PendingConnect {
        uint64_t id;
        UniqueFd sock;
    };
    std::vector<PendingConnect> m_pending;
    bool exec_allowed(dev_t dev, ino_t ino) const;
    std::string who(int pid) const;
    const SandboxSpec& m_spec;
    int m_child;
    std::set<std::pair<dev_t, ino_t>> m_execs;
};

} // namespace kos::proc
