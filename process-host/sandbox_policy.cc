#include "sandbox_policy.h"

#include <sys/socket.h>

#include <cstring>

#include "kos/security/net_request.h"
#include "kos/security/vfs_request.h"
#include "supervisor.h"

namespace kos::proc {
namespace {

namespace sec = security;

uint32_t label_index(const sec::Engine& e, const std::string& name) {
    return e.find_label(name.data(), static_cast<uint32_t>(name.size()));
}

} // namespace

const char* vfs_method_name(VfsOp op) {
    switch (op) {
    case VfsOp::Open: return "vfs.File.open";
    case VfsOp::Stat: return "vfs.File.stat";
    case VfsOp::Unlink: return "vfs.File.unlink";
    case VfsOp::Rmdir: return "vfs.File.rmdir";
    case VfsOp::Mkdir: return "vfs.File.mkdir";
    case VfsOp::Rename: return "vfs.File.rename";
    case VfsOp::Readlink: return "vfs.File.readlink";
    case VfsOp::Symlink: return "vfs.File.symlink";
    case VfsOp::Link: return "vfs.File.link";
    case VfsOp::Chmod: return "vfs.File.chmod";
    case VfsOp::SetTimes: return "vfs.File.set_times";
    }
    return "vfs.File.?";
}

void ip_field_bytes(const IpEndpoint& ep, uint8_t out[16]) {
    if (ep.family == AF_INET6) {
        std::memcpy(out, ep.addr, 16);
        return;
    }
    // net.kidl: IPv4 travels as ::ffff:a.b.c.d.
    std::memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    std::memcpy(out + 12, ep.addr, 4);
}

Result<std::unique_ptr<SandboxPolicy>> SandboxPolicy::load(std::vector<uint8_t> blob,
                                                           const std::string& domain) {
    std::unique_ptr<SandboxPolicy> p(new SandboxPolicy());
    p->m_blob = std::move(blob);
    uint64_t need = sec::Engine::required_state_size(p->m_blob.data(), p->m_blob.size());
    // Room to start the cache on a 64-byte boundary of an 8-byte aligned buffer.
    p->m_state.assign(need / 8 + 8, 0);
    sec::LoadError e = p->m_engine.load(p->m_blob.data(), p->m_blob.size(), p->m_state.data(),
                                        p->m_state.size() * 8);
    if (e != sec::LoadError::None)
        return make_error(EINVAL,
                          std::string("the compiled policy cannot be loaded: ") + sec::describe(e));
    p->m_domain = label_index(p->m_engine, domain);
    if (p->m_domain == sec::kNone)
        return make_error(EINVAL, "the program's label " + domain +
                                      " ([policy] domain) is not declared by the "
                                      "bundle's policy");
    p->m_net = label_index(p->m_engine, sec::kNetLabel);
    p->m_vfs = label_index(p->m_engine, sec::kVfsLabel);
    return p;
}

PolicyDecision SandboxPolicy::decide(const sec::Request& r) {
    PolicyDecision d;
    d.verdict = m_engine.decide(r);
    if (d.verdict.audit)
        d.audited = m_engine.make_audit_record(r, d.verdict, d.record);
    return d;
}

PolicyDecision SandboxPolicy::decide_connect(const IpEndpoint& ep, uint8_t proto, uint64_t now_ns) {
    uint8_t addr[16];
    ip_field_bytes(ep, addr);
    sec::NetRequest r;
    sec::make_net_connect(r, m_domain, m_net, addr, ep.port, proto, now_ns);
    return decide(r.request);
}

PolicyDecision SandboxPolicy::decide_bind(const IpEndpoint& ep, uint64_t now_ns) {
    uint8_t addr[16];
    ip_field_bytes(ep, addr);
    sec::NetRequest r;
    sec::make_net_bind(r, m_domain, m_net, addr, ep.port, now_ns);
    return decide(r.request);
}

PolicyDecision SandboxPolicy::decide_execute(const std::string& program, uint64_t now_ns) {
    sec::FieldValue f{0, reinterpret_cast<const uint8_t*>(program.data()),
                      static_cast<uint32_t>(program.size())};
    return decide(sec::Request{sec::Kind::Execute, m_domain, m_domain, 0, 0, &f, 1, now_ns});
}

PolicyDecision SandboxPolicy::decide_vfs(const VfsCall& c, uint64_t now_ns) {
    sec::VfsRequest r;
    const char* p = c.path.data();
    auto n = static_cast<uint32_t>(c.path.size());
    const char* p2 = c.path2.data();
    auto n2 = static_cast<uint32_t>(c.path2.size());
    switch (c.op) {
    case VfsOp::Open: sec::make_vfs_open(r, m_domain, m_vfs, p, n, c.flags, c.mode, now_ns); break;
    case VfsOp::Stat: sec::make_vfs_stat(r, m_domain, m_vfs, p, n, c.follow, now_ns); break;
    case VfsOp::Unlink: sec::make_vfs_unlink(r, m_domain, m_vfs, p, n, now_ns); break;
    case VfsOp::Rmdir: sec::make_vfs_rmdir(r, m_domain, m_vfs, p, n, now_ns); break;
    case VfsOp::Mkdir: sec::make_vfs_mkdir(r, m_domain, m_vfs, p, n, c.mode, now_ns); break;
    case VfsOp::Rename: sec::make_vfs_rename(r, m_domain, m_vfs, p, n, p2, n2, now_ns); break;
    case VfsOp::Readlink: sec::make_vfs_readlink(r, m_domain, m_vfs, p, n, now_ns); break;
    case VfsOp::Symlink: sec::make_vfs_symlink(r, m_domain, m_vfs, p, n, p2, n2, now_ns); break;
    case VfsOp::Link: sec::make_vfs_link(r, m_domain, m_vfs, p, n, p2, n2, now_ns); break;
    case VfsOp::Chmod: sec::make_vfs_chmod(r, m_domain, m_vfs, p, n, c.mode, c.follow, now_ns); break;
    case VfsOp::SetTimes:
        sec::make_vfs_set_times(r, m_domain, m_vfs, p, n, c.atime, c.mtime, c.follow, now_ns);
        break;
    }
    return decide(r.request);
}

PolicyDecision SandboxPolicy::decide_file(const std::string& label, bool write, uint64_t now_ns) {
    uint32_t cls = m_engine.find_class("file", 4);
    uint32_t perm = cls == sec::kNone ? sec::kNone : m_engine.find_perm(cls, write ? "write" : "read", write ? 5 : 4);
    return decide(sec::Request{sec::Kind::Security, m_domain, label_index(m_engine, label), cls, perm, nullptr, 0,
                               now_ns});
}

void SandboxPolicy::restart() {
    const sec::PolicyHeader* h = m_engine.header();
    if (h && (h->limit_count || h->machine_count))
        m_engine.reset_state();
}

bool SandboxPolicy::has_file_class() const {
    uint32_t cls = m_engine.find_class("file", 4);
    return cls != sec::kNone && m_engine.find_perm(cls, "read", 4) != sec::kNone;
}

bool SandboxPolicy::declares_label(const std::string& label) const {
    return label_index(m_engine, label) != sec::kNone;
}

bool SandboxPolicy::allows_file(const std::string& label, const char* perm) {
    uint32_t cls = m_engine.find_class("file", 4);
    if (cls == sec::kNone)
        return false;
    uint32_t p = m_engine.find_perm(cls, perm, static_cast<uint32_t>(std::strlen(perm)));
    uint32_t l = label_index(m_engine, label);
    if (p == sec::kNone || l == sec::kNone)
        return false;
    return m_engine.decide(sec::Request{sec::Kind::Security, m_domain, l, cls, p, nullptr, 0, 0})
        .allow;
}

} // namespace kos::proc
