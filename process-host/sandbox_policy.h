// The compiled bundle policy as the host-process backend asks it: one
// security engine (security-server/engine, the same object code as the
// guest kernel's) loaded with the blob, and the requests the supervisor
// builds from what it copied out of the program:
//
//   connect  request DOMAIN -> net_t net.Socket.connect address=A port=P proto=6|17
//   bind     request DOMAIN -> net_t net.Socket.bind socket=0 address=A port=P
//   execve   execute DOMAIN -> DOMAIN program="/path/inside/the/rootfs"
//   labels   security DOMAIN -> L file.read (file.write)
//   volumes  request DOMAIN -> vfs_t vfs.File.open path="/v/x" flags=F mode=M
//            (stat, unlink, rmdir, mkdir, rename, readlink, symlink, link,
//            chmod, set_times: vfs.kidl's methods that name a path)
//
// Fields are in net.kidl's declaration order; IPv4 addresses travel as
// ::ffff:a.b.c.d; vfs requests are built by vfs_request.h, as the guest
// kernel sees them. `net_t` is the system label of the network server
// (docs/security-server.md, "System labels"): the process backend has no
// network server process, but it answers for one with the same label, so a
// policy reads the same under both backends; likewise `vfs_t` for the VFS
// server, for paths in volumes.
//
// Not thread-safe (the engine is not): the supervisor is one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kos/security/engine.h"
#include "kos/security/net_request.h"
#include "kos/security/vfs_request.h"
#include "kos/support/result.h"

namespace kos::proc {

struct IpEndpoint;

// The network server's system label.
inline constexpr const char* kNetLabel = security::kNetLabel;
// The VFS server's system label.
inline constexpr const char* kVfsLabel = security::kVfsLabel;

// vfs.kidl's File methods that name a path.
enum class VfsOp { Open, Stat, Unlink, Rmdir, Mkdir, Rename, Readlink, Symlink, Link, Chmod, SetTimes };

// One path call on a volume as the VFS server would be asked it: `path` the
// absolute, normalized guest path; `path2` the new path of rename and link,
// or the target of symlink; flags (open: Linux O_* flags, O_CLOEXEC is
// dropped), mode (open, mkdir, chmod: masked with 07777), follow (stat,
// chmod, set_times), atime/mtime (set_times: ns, or kVfsTimeNow/Omit).
struct VfsCall {
    VfsOp op = VfsOp::Open;
    std::string path;
    std::string path2;
    uint32_t flags = 0;
    uint32_t mode = 0;
    bool follow = false;
    int64_t atime = 0;
    int64_t mtime = 0;
};

// "vfs.File.open" and the like, for messages.
const char* vfs_method_name(VfsOp op);

// One verdict and, when the policy marks it for audit, its record (rendered
// by render_audit_human / render_audit_json).
struct PolicyDecision {
    security::Verdict verdict;
    bool audited = false;
    security::AuditRecord record{};
};

class SandboxPolicy {
  public:
    // Loads `blob` (a compile_bundle_policy result) for processes of
    // `domain`. EINVAL when the blob does not load or does not declare
    // `domain` (the VM backend refuses the same bundle).
    static Result<std::unique_ptr<SandboxPolicy>> load(std::vector<uint8_t> blob,
                                                       const std::string& domain);

    SandboxPolicy(const SandboxPolicy&) = delete;
    SandboxPolicy& operator=(const SandboxPolicy&) = delete;

    // `ep` as decode_ip_sockaddr produced it; `proto` the IP protocol number
    // (6 TCP, 17 UDP). `now_ns`: CLOCK_MONOTONIC, for the policy's limits.
    PolicyDecision decide_connect(const IpEndpoint& ep, uint8_t proto, uint64_t now_ns);
    PolicyDecision decide_bind(const IpEndpoint& ep, uint64_t now_ns);
    PolicyDecision decide_execute(const std::string& program, uint64_t now_ns);
    // request DOMAIN -> vfs_t vfs.File.<method>{fields} (vfs_request.h).
    PolicyDecision decide_vfs(const VfsCall& call, uint64_t now_ns);
    // security DOMAIN -> label file.read / file.write at run time, as the
    // guest kernel checks a volume's label for each path call (a policy
    // without class `file`, the perm or the label gets the engine's deny).
    PolicyDecision decide_file(const std::string& label, bool write, uint64_t now_ns);

    // Back to the policy's initial state (machines, rate buckets), when it
    // has any: questions asked before the run (the executables, the labels)
    // are each answered as from a fresh start, so that asking about many
    // files does not spend a `limit` or move a `machine`.
    void restart();

    // security DOMAIN -> label file.PERM; false when the policy has no class
    // `file`, no such perm, or does not declare `label`.
    bool allows_file(const std::string& label, const char* perm);
    // Whether the policy declares class `file` with a `read` permission
    // (then the bundle's labels narrow what Landlock lets the program read).
    bool has_file_class() const;
    bool declares_net_label() const { return m_net != security::kNone; }
    bool declares_vfs_label() const { return m_vfs != security::kNone; }
    // Whether the policy includes vfs.kidl (interface 0x100).
    bool knows_vfs_interface() const { return m_engine.interface_by_id(security::kVfsInterface) != nullptr; }
    // Whether the policy declares `label` (a volume's label, for messages).
    bool declares_label(const std::string& label) const;

    const security::Engine& engine() const { return m_engine; }
    uint32_t domain() const { return m_domain; }
    uint32_t net_label() const { return m_net; }
    uint32_t vfs_label() const { return m_vfs; }
    const std::vector<uint8_t>& blob() const { return m_blob; }

  private:
    SandboxPolicy() = default;
    PolicyDecision decide(const security::Request& r);

    std::vector<uint8_t> m_blob;
    std::vector<uint64_t> m_state; // 8-byte aligned; the engine wants 64 (over-allocated, see load)
    security::Engine m_engine;
    uint32_t m_domain = security::kNone;
    uint32_t m_net = security::kNone;
    uint32_t m_vfs = security::kNone;
};

// The 16-byte `ip` field of an endpoint (IPv4 as ::ffff:a.b.c.d).
void ip_field_bytes(const IpEndpoint& ep, uint8_t out[16]);

} // namespace kos::proc
