// The network's requests as the policy sees them: net.kidl's Socket.connect
// and Socket.bind from a program's label to the network's label (`net_t`).
// One place builds them for every enforcement point that judges sockets: the
// guest kernel, the VMM's network service and the process backend, so all
// three give the same verdict for the same bundle and policy.
// Freestanding: no OS calls, no allocation.
#pragma once

#include "kos/security/engine.h"

namespace kos::security {

// net.kidl: interface Socket 0x200; connect 2 (address: ip, port: u16,
// proto: u8); bind 3 (socket: handle, address: ip, port: u16).
inline constexpr u32 kNetInterface = 0x200;
inline constexpr u32 kNetConnect = 2;
inline constexpr u32 kNetBind = 3;
inline constexpr const char kNetLabel[] = "net_t";
inline constexpr u8 kProtoTcp = 6;
inline constexpr u8 kProtoUdp = 17;

// Field storage for one request; `ip` must outlive the Request.
struct NetRequest {
    FieldValue fields[3];
    Request request;
};

// A request of net.Socket `method` with r.fields already filled.
inline void make_net_request(NetRequest& r, u32 subject, u32 net, u32 method, u64 now_ns) {
    r.request = Request{Kind::Request, subject, net, kNetInterface, method, r.fields, 3, now_ns};
}

// `ip` is the 16-byte IPv6 form (IPv4 as ::ffff:a.b.c.d).
inline void make_net_connect(NetRequest& r, u32 subject, u32 net, const u8* ip, u16 port, u8 proto,
                             u64 now_ns) {
    r.fields[0] = FieldValue{0, ip, 16};
    r.fields[1] = FieldValue{port, nullptr, 0};
    r.fields[2] = FieldValue{proto, nullptr, 0};
    make_net_request(r, subject, net, kNetConnect, now_ns);
}

// The program holds no handle of the network server: socket is 0.
inline void make_net_bind(NetRequest& r, u32 subject, u32 net, const u8* ip, u16 port, u64 now_ns) {
    r.fields[0] = FieldValue{0, nullptr, 0};
    r.fields[1] = FieldValue{0, ip, 16};
    r.fields[2] = FieldValue{port, nullptr, 0};
    make_net_request(r, subject, net, kNetBind, now_ns);
}

} // namespace kos::security
