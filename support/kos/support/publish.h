// `-p [HOST_ADDR:]HOST_PORT:GUEST_PORT[/tcp|/udp]`: a port published on the
// host, for both backends (the VM's network service and the process
// backend's port forwarder). TCP unless the value ends in `/udp`, as
// docker's -p.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "kos/support/result.h"

namespace kos {

struct PublishedPort {
    std::array<uint8_t, 16> host_ip{}; // IPv6 form (IPv4 as ::ffff:a.b.c.d)
    bool host_ipv4 = true;             // bind an AF_INET socket (else AF_INET6)
    uint16_t host_port = 0;
    uint16_t guest_port = 0;
    bool udp = false;                  // `/udp`: datagrams, not connections
};

// Parses one `-p` value. HOST_ADDR is an IPv4 address or a bracketed IPv6
// address ("[::1]:8080:80"); without it the port is published on
// 127.0.0.1 only (give 0.0.0.0 to publish on every address). Ports are
// 1..65535. A `/udp` suffix publishes a UDP port (`/tcp`, the default, may
// be given too). Errors say which part is wrong and the expected form.
Result<PublishedPort> parse_published_port(std::string_view text);

} // namespace kos
