#include "sandbox_policy.h"

#include <sys/socket.h>

#include <cstring>

#include "kos/security/net_request.h"
#include "supervisor.h"

namespace kos::proc {
namespace {

namespace sec = security;

uint32_t label_index(const sec::Engine& e, const std::string& name) {
    return e.find_label(name.data(), static_cast<uint32_t>(name.size()));
}

} // namespace

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
