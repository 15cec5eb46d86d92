// NetService::handle with arbitrary NetCall pages (ATTACKS.md 23): each
// input is a series of calls on a fresh service with real host sockets
// behind it. Half of the calls are steered towards valid ops, socket ids
// and segments so the fuzzer gets past the first checks; every result must
// be a count or a negated errno, and nothing may crash or hang.
#include <cstdint>
#include <cstring>
#include <vector>

#include "kos/policy/compiler.h"
#include "kvm-host/net_service.h"

namespace net = kos::abi::net;

namespace {

const std::vector<uint8_t>& policy() {
    static const std::vector<uint8_t> blob = [] {
        auto b = kos::policy::compile_bundle_policy(
            "app_t", {{"policy/app.kpol", "idl \"net.kidl\"\ndomain app_t, net_t\n"
                                          "allow request app_t -> net_t net.Socket.bind where port < 20000\n"
                                          "allow request app_t -> net_t net.Socket.connect "
                                          "where address in 127.0.0.0/8\n"}});
        if (!b)
            __builtin_trap();
        return *b;
    }();
    return blob;
}

void steer(net::NetCall& c, uint8_t mode, uint64_t ram_size) {
    c.op = 1 + c.op % 16; // up to SendTo
    c.socket = 1 + c.socket % 8;
    c.subject = 0;
    c.family = (mode & 4) ? net::kFamilyInet6 : net::kFamilyInet;
    c.type = (mode & 32) ? net::kTypeDgram : net::kTypeStream;
    c.option = 1 + c.option % 8;
    if (mode & 8) { // the bundle's loopback, a small port
        std::memset(c.address.ip, 0, 16);
        c.address.ip[10] = c.address.ip[11] = 0xff;
        c.address.ip[12] = 127;
        c.address.ip[15] = 1;
        c.address.family = net::kFamilyInet;
        c.address.port = static_cast<uint16_t>(9000 + c.address.port % 4);
    }
    c.length = (mode & 64) ? 0 : c.length % 16384; // a datagram's size, or none
    c.segment_count %= 4;
    for (auto& s : c.segments) {
        s.addr %= ram_size;
        s.len %= 8192;
    }
    c.poll_count %= 8;
    for (auto& p : c.poll)
        p.socket = 1 + p.socket % 8;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static std::vector<uint8_t> ram(256 * 1024);
    kos::vmm::NetServiceOptions o;
    o.policy = policy();
    o.max_sockets = 16;
    o.buffer_bytes = 16 * 1024;
    o.audit = [](std::span<const uint8_t> r) {
        if (r.size() != 256)
            __builtin_trap();
    };
    auto svc = kos::vmm::NetService::start(std::move(o));
    if (!svc || !(*svc)->launch())
        __builtin_trap();
    kos::vmm::NetGuestMemory mem{ram.data(), ram.size()};
    size_t off = 0;
    for (int calls = 0; off < size && calls < 64; ++calls) {
        uint8_t mode = data[off++];
        net::NetCall c{};
        // Mostly short prefixes (the fields before the segments); sometimes
        // a whole page.
        size_t n = std::min(size - off, (mode & 1) ? sizeof c : size_t{80});
        std::memcpy(&c, data + off, n);
        off += n;
        if (mode & 2)
            steer(c, mode, ram.size());
        if (c.op == static_cast<uint32_t>(net::NetOp::Poll))
            c.arg = 0; // no waiting: the fuzzer runs calls, not clocks
        int64_t r = (*svc)->handle(c, mem);
        if (r < -4095 || r > static_cast<int64_t>(net::kMaxNetData))
            __builtin_trap();
    }
    return 0;
}
