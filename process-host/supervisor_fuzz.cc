// Fuzzes what the supervisor decodes from bytes the sandboxed program (or a
// bundle author) controls: sockaddrs copied from the program, connect hosts
// and published-port strings from the config, and the verdict over them.
#include <cstdint>
#include <cstring>
#include <string>

#include "sandbox_spec.h"
#include "supervisor.h"

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
    }
    return 0;
}
