// The supervisor answers the sandbox's seccomp user notifications
// (connect, bind, execve, execveat), deciding with the security engine
// loaded with the bundle's compiled policy (sandbox_policy.h), or from the
// sandbox spec for a bundle without policy sources.
//
// No decision trusts memory the program can change after the check:
// - connect/bind on IP sockets: the supervisor copies the address once,
//   decides on the copy, and if allowed performs the call itself on a
//   duplicate of the program's socket (pidfd_getfd) with that copy (a
//   connect that does not finish at once is answered when it does, so the
//   supervisor never blocks);
// - execve: the supervisor resolves the path inside the sandbox root and
//   denies what the policy (or the spec) does not allow, and lets an
//   allowed path continue; the kernel re-checks: Landlock grants EXECUTE
//   only on the files the policy allows (the spec lists), so a path
//   rewritten after the check still cannot start anything else
//   (ATTACKS.md 27).
// - a call that names a path in a volume (with volumes under a policy,
//   every such call is notified): the supervisor copies the path once,
//   resolves it to the normalized guest path, asks the policy the VFS
//   server's request (vfs.File.*, vfs_request.h) and the volume's label
//   (file.read/file.write), and if both allow, performs the call itself on
//   its copy, beneath the volume's mount (openat2 RESOLVE_BENEATH), and
//   returns the result (an opened file is added to the program with
//   SECCOMP_IOCTL_NOTIF_ADDFD). A path outside every volume continues in
//   the kernel, where Landlock grants nothing in a volume, so a path
//   rewritten after the check cannot reach one (supervisor_vfs.cc).
// With a policy, every verdict the policy marks for audit prints
// render_audit_human's line on stderr (as the VM backend does) and appends
// render_audit_json's to the audit log, if one is open. Without one, every
// denial prints "kos: denied connect tcp 10.0.0.1:80 by prog (app_t) [rule
// network.connect]: why". At most 100 lines per run reach stderr.
#pragma once

#include <linux/seccomp.h>
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
#include "sandbox_policy.h"
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

// `path` joined to `base` (an absolute directory; ignored when `path` is
// absolute) and lexically normalized: "." and ".." and duplicate slashes
// removed, ".." at the root stays there. Symlinks are not resolved.
std::string normalize_guest_path(const std::string& base, const std::string& path);

// A volume whose paths the supervisor judges and performs: its guest path
// (normalized), label, declared access and its mounted tree inside the
// sandbox (the descriptor the supervisor resolves beneath).
struct SupervisedVolume {
    std::string guest;
    std::string label;
    bool writable = false; // declared rw (`ro` makes writes fail with EROFS)
    UniqueFd dir;
    dev_t dev = 0; // its file system (set_volumes)
};

// The ids the program's files are created and checked with (kos as root:
// the program's host ids, kHostNobody), and how its user namespace shows
// host ids: `host_uid` as `uid`, any other as 65534.
struct VolumeIdentity {
    bool switch_fs_ids = false; // setfsuid/setfsgid to host_uid/host_gid around each call
    uint32_t host_uid = 0, host_gid = 0;
    uint32_t uid = 0, gid = 0;
};

// The sandbox's root as the supervisor holds it, and its /proc's device.
struct SandboxRoot {
    int fd = -1;
    dev_t dev = 0;
    ino_t ino = 0;
    dev_t proc_dev = 0;
};

class Supervisor {
public:
    // `policy` (may be null: spec verdicts) and `audit_fd` (-1: none; JSON
    // lines appended) stay owned by the caller and outlive the supervisor.
    Supervisor(const SandboxSpec& spec, int child_pid, SandboxPolicy* policy = nullptr, int audit_fd = -1);
    // Receives and answers one notification (a connect that cannot finish
    // at once is answered later by handle_pending).
    void handle(int notify_fd, RunOutcome& stats);
    // Connects in progress: their sockets, polled for completion.
    void add_pollfds(std::vector<pollfd>& fds) const;
    void handle_pending(int notify_fd, const pollfd* fds, size_t count);
    size_t pending() const { return m_pending.size(); }
    // The volumes whose path calls this supervisor judges and performs
    // (the seccomp filter must notify path calls: SeccompOptions::volume_paths).
    void set_volumes(std::vector<SupervisedVolume> volumes, const VolumeIdentity& identity);

private:
    struct PendingConnect {
        uint64_t id;
        UniqueFd sock;
    };
    std::vector<PendingConnect> m_pending;
    bool exec_allowed(dev_t dev, ino_t ino) const;
    // A call naming a path (supervisor_vfs.cc). Fills `resp`; false when
    // the response was already sent (an added descriptor) or must not be.
    bool handle_path_call(int notify_fd, const struct seccomp_notif& req, struct seccomp_notif_resp& resp,
                          RunOutcome& stats);
    // The volume holding the normalized `path` (-1: none) and the path
    // beneath its root ("" for the root itself).
    int volume_of(const std::string& path, std::string* rel) const;
    std::vector<SupervisedVolume> m_volumes;
    VolumeIdentity m_identity;
    UniqueFd m_root_fd;
    SandboxRoot m_root;
    // The directories above mount points the program may list (the spec's
    // listable_dirs): their guest paths, and what they were at setup.
    std::set<std::string> m_listable_paths;
    std::set<std::pair<dev_t, ino_t>> m_listable;
    std::string who(int pid) const;
    // Prints (up to the cap) and logs one policy verdict's audit record.
    void audit(const PolicyDecision& d);
    void print_line(const std::string& line);
    const SandboxSpec& m_spec;
    int m_child;
    SandboxPolicy* m_policy;
    int m_audit_fd;
    uint64_t m_lines = 0;
    std::set<std::pair<dev_t, ino_t>> m_execs;
};

} // namespace kos::proc
