// Fuzzes what the supervisor decodes from bytes the sandboxed program (or a
// bundle author) controls: sockaddrs copied from the program, connect hosts
// and published-port strings from the config, and the verdicts over them,
// from the spec and from a compiled policy (the engine's requests built
// from the decoded address, and an execute request of arbitrary bytes), and
// the guest path a volume call is judged by (normalized lexically from a
// path and a base the program controls) with the vfs requests over it.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "kos/policy/compiler.h"
#include "sandbox_policy.h"
#include "sandbox_spec.h"
#include "supervisor.h"

namespace {

kos::proc::SandboxPolicy* fuzz_policy() {
    static std::unique_ptr<kos::proc::SandboxPolicy> p = [] {
        auto blob = kos::policy::compile_bundle_policy(
            "app_t", {{"policy/fuzz.kpol",
                       "idl \"net.kidl\"\nidl \"vfs.kidl\"\ndomain app_t, net_t, vfs_t\n"
                       "allow request app_t -> vfs_t vfs.File.{open, stat} where path glob \"/data/ok/**\"\n"
                       "allow execute app_t -> app_t where program glob \"/bin/*\"\n"
                       "allow request app_t -> net_t net.Socket.connect where address in 127.0.0.0/8 and proto == 6\n"
                       "deny request app_t -> net_t net.Socket.connect where port == 9\n"
                       "allow request app_t -> net_t net.Socket.bind where port in 1024..65535\n"}});
        if (!blob)
            __builtin_trap();
        auto loaded = kos::proc::SandboxPolicy::load(*blob, "app_t");
        if (!loaded)
            __builtin_trap();
        return std::move(*loaded);
    }();
    return p.get();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace kos::proc;
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    ++data;
    --size;
    std::string text(reinterpret_cast<const char*>(data), size);
    SandboxSpec spec;
    spec.origin = "fuzz.toml";
    if (auto rules = parse_host_rule(text.substr(0, text.find('\n')), "fuzz"); rules) {
        for (NetRule r : *rules) {
            r.port = static_cast<uint16_t>(mode * 257);
            spec.connect.push_back(r);
        }
    }
    (void)parse_publish(text, "fuzz");
    IpEndpoint ep{};
    if (decode_ip_sockaddr(data, size, &ep)) {
        Verdict v = decide_net(spec, (mode & 1) ? NetOp::Connect : NetOp::Bind, (mode & 2) ? Proto::Udp : Proto::Tcp,
                               ep.family, ep.addr, ep.port);
        if (v.allow && v.rule.empty())
            __builtin_trap();
        kos::proc::SandboxPolicy* p = fuzz_policy();
        kos::proc::PolicyDecision d = (mode & 1) ? p->decide_connect(ep, (mode & 2) ? 17 : 6, 0) : p->decide_bind(ep, 0);
        if (d.verdict.allow && d.verdict.rule < kos::security::kFirstUserRule) // an allow names a user rule
            __builtin_trap();
    }
    // The guest path: absolute, normalized (no empty, "." or ".." component),
    // and a fixed point; judged only as what it is.
    size_t cut = text.find('\0');
    std::string base = cut == std::string::npos ? "/" : "/" + text.substr(cut + 1);
    std::string guest = normalize_guest_path(base, text.substr(0, cut));
    if (guest.empty() || guest[0] != '/' || (guest.size() > 1 && guest.back() == '/') ||
        guest.find("//") != std::string::npos || guest.find("/./") != std::string::npos ||
        guest.find("/../") != std::string::npos || guest.ends_with("/.") || guest.ends_with("/..") ||
        normalize_guest_path("/", guest) != guest)
        __builtin_trap();
    VfsCall call;
    call.op = (mode & 1) ? VfsOp::Open : VfsOp::Stat;
    call.path = guest;
    call.flags = mode;
    // The bundle-label glob dialect: "/data/ok/**" is the directory and
    // everything beneath it.
    if (fuzz_policy()->decide_vfs(call, 0).verdict.allow && guest != "/data/ok" && guest.rfind("/data/ok/", 0) != 0)
        __builtin_trap();
    kos::proc::PolicyDecision e = fuzz_policy()->decide_execute(text, 0);
    if (e.verdict.allow && (text.size() < 6 || text.compare(0, 5, "/bin/") != 0))
        __builtin_trap();
    return 0;
}
