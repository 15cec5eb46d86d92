#include "supervisor.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

namespace kos::proc {
namespace {

TEST(DecodeSockaddr, Ipv4Ipv6AndMappedAddresses) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(80);
    inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
    IpEndpoint ep{};
    ASSERT_TRUE(decode_ip_sockaddr(&in, sizeof in, &ep));
    EXPECT_EQ(ep.family, AF_INET);
    EXPECT_EQ(ep.port, 80);
    EXPECT_EQ(ep.addr[0], 10);
    EXPECT_FALSE(decode_ip_sockaddr(&in, sizeof in - 1, &ep)); // short

    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(443);
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
    ASSERT_TRUE(decode_ip_sockaddr(&in6, sizeof in6, &ep));
    EXPECT_EQ(ep.family, AF_INET); // judged as the IPv4 address it carries
    EXPECT_EQ(ep.addr[0], 127);
    EXPECT_EQ(ep.addr[3], 1);
    EXPECT_EQ(ep.port, 443);

    sa_family_t unix_family = AF_UNIX;
    EXPECT_FALSE(decode_ip_sockaddr(&unix_family, sizeof unix_family, &ep));
    EXPECT_FALSE(decode_ip_sockaddr(&in, 1, &ep));
}

// The guest path a volume call is judged by: joined, normalized, never
// resolved (docs/process-backend.md, "Paths in volumes").
TEST(NormalizeGuestPath, JoinsAndNormalizesLexically) {
    EXPECT_EQ(normalize_guest_path("/", "/data/x"), "/data/x");
    EXPECT_EQ(normalize_guest_path("/ignored", "/data//./x/"), "/data/x");
    EXPECT_EQ(normalize_guest_path("/data/ok", "../no/secret"), "/data/no/secret");
    EXPECT_EQ(normalize_guest_path("/data", "."), "/data");
    EXPECT_EQ(normalize_guest_path("/", "../../.."), "/");
    EXPECT_EQ(normalize_guest_path("/data", "../../../etc/passwd"), "/etc/passwd");
    EXPECT_EQ(normalize_guest_path("/data/a", "b/../../c"), "/data/c");
    EXPECT_EQ(normalize_guest_path("/", "data..x/..y"), "/data..x/..y");
}

TEST(DecideNet, OnlyDeclaredEndpointsAndTheRuleIsNamed) {
    SandboxSpec spec;
    spec.origin = "b/bundle.toml";
    auto rules = parse_host_rule("127.0.0.1", "x");
    ASSERT_TRUE(rules);
    NetRule r = (*rules)[0];
    r.port = 8000;
    r.text = "tcp 127.0.0.1:8000";
    spec.connect.push_back(r);
    uint8_t lo[4] = {127, 0, 0, 1};
    Verdict ok = decide_net(spec, NetOp::Connect, Proto::Tcp, AF_INET, lo, 8000);
    EXPECT_TRUE(ok.allow);
    EXPECT_EQ(ok.rule, "network.connect");
    Verdict port = decide_net(spec, NetOp::Connect, Proto::Tcp, AF_INET, lo, 8001);
    EXPECT_FALSE(port.allow);
    EXPECT_EQ(port.reason, "no [network] connect entry in b/bundle.toml allows it");
    EXPECT_FALSE(decide_net(spec, NetOp::Connect, Proto::Udp, AF_INET, lo, 8000).allow);
    Verdict bind = decide_net(spec, NetOp::Bind, Proto::Tcp, AF_INET, lo, 8000);
    EXPECT_FALSE(bind.allow); // connect entries allow no bind
    EXPECT_EQ(bind.rule, "network.listen");
}

} // namespace
} // namespace kos::proc
