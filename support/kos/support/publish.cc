#include "kos/support/publish.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace kos {
namespace {

Result<uint16_t> parse_port(std::string_view s, const char* which, std::string_view whole) {
    uint32_t v = 0;
    if (s.empty() || s.size() > 5)
        return make_error(EINVAL, "-p " + std::string(whole) + ": " + which +
                                      " must be a number from 1 to 65535 "
                                      "(form: [HOST_ADDR:]HOST_PORT:GUEST_PORT)");
    for (char c : s) {
        if (c < '0' || c > '9')
            return make_error(EINVAL, "-p " + std::string(whole) + ": " + which + " '" + std::string(s) +
                                          "' is not a number (form: [HOST_ADDR:]HOST_PORT:GUEST_PORT)");
        v = v * 10 + static_cast<uint32_t>(c - '0');
    }
    if (v == 0 || v > 65535)
        return make_error(EINVAL, "-p " + std::string(whole) + ": " + which + " " + std::string(s) +
                                      " is out of range (1 to 65535)");
    return static_cast<uint16_t>(v);
}

} // namespace

Result<PublishedPort> parse_published_port(std::string_view text) {
    PublishedPort p;
    std::string_view rest = text;
    if (size_t slash = rest.rfind('/'); slash != std::string_view::npos) {
        std::string_view proto = rest.substr(slash + 1);
        if (proto == "udp")
            p.udp = true;
        else if (proto != "tcp")
            return make_error(EINVAL, "-p " + std::string(text) + ": unknown protocol '" + std::string(proto) +
                                          "' (form: [HOST_ADDR:]HOST_PORT:GUEST_PORT[/tcp|/udp])");
        rest = rest.substr(0, slash);
    }
    std::string host = "127.0.0.1";
    if (!rest.empty() && rest.front() == '[') {
        size_t close = rest.find(']');
        if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
            return make_error(EINVAL, "-p " + std::string(text) +
                                          ": an IPv6 host address goes in brackets, followed by ':' "
                                          "(form: [ADDR]:HOST_PORT:GUEST_PORT)");
        host = std::string(rest.substr(1, close - 1));
        rest = rest.substr(close + 2);
        p.host_ipv4 = false;
    } else if (std::count(rest.begin(), rest.end(), ':') == 2) {
        size_t colon = rest.find(':');
        host = std::string(rest.substr(0, colon));
        rest = rest.substr(colon + 1);
    } else if (std::count(rest.begin(), rest.end(), ':') != 1) {
        return make_error(EINVAL, "-p " + std::string(text) +
                                      ": expected [HOST_ADDR:]HOST_PORT:GUEST_PORT, e.g. 8080:80 or "
                                      "0.0.0.0:8080:80");
    }
    size_t colon = rest.find(':');
    if (colon == std::string_view::npos)
        return make_error(EINVAL, "-p " + std::string(text) + ": expected HOST_PORT:GUEST_PORT after the address");
    p.host_port = KOS_TRY(parse_port(rest.substr(0, colon), "HOST_PORT", text));
    p.guest_port = KOS_TRY(parse_port(rest.substr(colon + 1), "GUEST_PORT", text));
    if (p.host_ipv4) {
        in_addr v4{};
        if (::inet_pton(AF_INET, host.c_str(), &v4) != 1)
            return make_error(EINVAL, "-p " + std::string(text) + ": '" + host +
                                          "' is not an IPv4 address (IPv6 goes in brackets: [::1]:8080:80)");
        p.host_ip[10] = p.host_ip[11] = 0xff;
        std::memcpy(p.host_ip.data() + 12, &v4, 4);
    } else if (::inet_pton(AF_INET6, host.c_str(), p.host_ip.data()) != 1) {
        return make_error(EINVAL, "-p " + std::string(text) + ": '" + host + "' is not an IPv6 address");
    }
    return p;
}

} // namespace kos
