#include "kos/policy/address.h"

#include <gtest/gtest.h>

#include <cstring>

using kos::policy::cidr_contains;
using kos::policy::format_cidr;
using kos::policy::format_ip;
using kos::policy::parse_cidr;
using kos::policy::parse_ip;

namespace {

std::array<uint8_t, 16> ip(std::string_view s) {
    auto r = parse_ip(s);
    EXPECT_TRUE(r) << s << ": " << (r ? "" : r.error().message);
    return r ? *r : std::array<uint8_t, 16>{};
}

} // namespace

TEST(Address, ParsesAndFormatsCanonically) {
    // text, canonical form
    const std::vector<std::pair<const char*, const char*>> cases = {
        {"0.0.0.0", "0.0.0.0"},
        {"192.0.2.10", "192.0.2.10"},
        {"255.255.255.255", "255.255.255.255"},
        {"::", "::"},
        {"::1", "::1"},
        {"1::", "1::"},
        {"2001:db8::1", "2001:db8::1"},
        {"2001:DB8:0:0:0:0:0:1", "2001:db8::1"},
        {"2001:0db8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"},
        {"1:0:0:2:0:0:0:3", "1:0:0:2::3"},
        {"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"},
        {"1:0:3:4:5:6:7:8", "1:0:3:4:5:6:7:8"}, // a single zero group stays
        {"::ffff:192.0.2.1", "192.0.2.1"},
        {"::ffff:c000:0201", "192.0.2.1"},
        {"64:ff9b::192.0.2.33", "64:ff9b::c000:221"},
        {"1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"},
        {"fe80::", "fe80::"},
    };
    for (const auto& [text, canonical] : cases) {
        auto a = ip(text);
        EXPECT_EQ(format_ip(a.data()), canonical) << text;
        EXPECT_EQ(ip(canonical), a) << text;
    }
    auto v4 = ip("192.0.2.10");
    const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 10};
    EXPECT_EQ(std::memcmp(v4.data(), mapped, 16), 0);
}

TEST(Address, RejectsMalformedAddresses) {
    const std::vector<std::pair<const char*, const char*>> cases = {
        {"", "invalid IP address \"\": empty"},
        {"1.2.3", "invalid IP address \"1.2.3\": an IPv4 address has four parts (a.b.c.d)"},
        {"1.2.3.4.5",
         "invalid IP address \"1.2.3.4.5\": unexpected '.' at offset 7 after four parts"},
        {"1.2.3.256", "invalid IP address \"1.2.3.256\": part \"256\" is not in 0..255"},
        {"1.2.3.1000", "invalid IP address \"1.2.3.1000\": part \"1000\" is not in 0..255"},
        {"1.2.3.04",
         "invalid IP address \"1.2.3.04\": leading zero in \"04\" (octal is not supported)"},
        {"1..2.3", "invalid IP address \"1..2.3\": expected a decimal number at offset 2"},
        {"1.2.3.4 ",
         "invalid IP address \"1.2.3.4 \": unexpected ' ' at offset 7 after four parts"},
        {"a.b.c.d", "invalid IP address \"a.b.c.d\": expected a decimal number at offset 0"},
        {"1:2:3:4:5:6:7", "invalid IP address \"1:2:3:4:5:6:7\": an IPv6 address has 8 groups (or "
                          "\"::\" for a run of zeros)"},
        {"1:2:3:4:5:6:7:8:9", "invalid IP address \"1:2:3:4:5:6:7:8:9\": an IPv6 address has 8 "
                              "groups (or \"::\" for a run of zeros)"},
        {"1::2::3", "invalid IP address \"1::2::3\": \"::\" may appear only once"},
        {":::", "invalid IP address \":::\": \"::\" may appear only once"},
        {":1::",
         "invalid IP address \":1::\": empty group (a single ':' at the start or end, or ':::')"},
        {"1:",
         "invalid IP address \"1:\": empty group (a single ':' at the start or end, or ':::')"},
        {"12345::", "invalid IP address \"12345::\": group \"12345\" has more than 4 hex digits"},
        {"g::", "invalid IP address \"g::\": 'g' is not a hex digit"},
        {"1:2:3:4:5:6:7::8", "invalid IP address \"1:2:3:4:5:6:7::8\": too many groups for \"::\" "
                             "(at most 7 besides it)"},
        {"1.2.3.4::",
         "invalid IP address \"1.2.3.4::\": an embedded IPv4 address may only be the last part"},
        {"::1.2.3.4:5",
         "invalid IP address \"::1.2.3.4:5\": an embedded IPv4 address may only be the last part"},
        {"::1.2.3", "invalid IP address \"::1.2.3\": an IPv4 address has four parts (a.b.c.d)"},
        {"fe80::1%eth0", "invalid IP address \"fe80::1%eth0\": '%' is not a hex digit"},
        {"[::1]", "invalid IP address \"[::1]\": '[' is not a hex digit"},
    };
    for (const auto& [text, message] : cases) {
        auto r = parse_ip(text);
        ASSERT_FALSE(r) << text;
        EXPECT_EQ(r.error().code, EINVAL);
        EXPECT_EQ(r.error().message, message);
    }
}

TEST(Address, CidrBlocks) {
    auto c = parse_cidr("10.0.0.0/8");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->prefix, 96u + 8);
    EXPECT_EQ(format_cidr(*c), "10.0.0.0/8");
    EXPECT_TRUE(cidr_contains(*c, ip("10.255.1.2").data()));
    EXPECT_FALSE(cidr_contains(*c, ip("11.0.0.0").data()));
    EXPECT_FALSE(cidr_contains(*c, ip("::a00:1").data())); // not IPv4-mapped

    auto host = parse_cidr("192.0.2.10");
    ASSERT_TRUE(host);
    EXPECT_EQ(host->prefix, 128u);
    EXPECT_TRUE(cidr_contains(*host, ip("192.0.2.10").data()));
    EXPECT_FALSE(cidr_contains(*host, ip("192.0.2.11").data()));

    auto v6 = parse_cidr("2001:db8::/32");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->prefix, 32u);
    EXPECT_EQ(format_cidr(*v6), "2001:db8::/32");
    EXPECT_TRUE(cidr_contains(*v6, ip("2001:db8:ffff::1").data()));
    EXPECT_FALSE(cidr_contains(*v6, ip("2001:db9::").data()));

    auto odd = parse_cidr("192.0.2.128/25");
    ASSERT_TRUE(odd);
    EXPECT_TRUE(cidr_contains(*odd, ip("192.0.2.255").data()));
    EXPECT_FALSE(cidr_contains(*odd, ip("192.0.2.127").data()));

    auto all4 = parse_cidr("0.0.0.0/0");
    ASSERT_TRUE(all4);
    EXPECT_EQ(all4->prefix, 96u);
    EXPECT_TRUE(cidr_contains(*all4, ip("1.2.3.4").data()));
    EXPECT_FALSE(cidr_contains(*all4, ip("::1").data()));
    auto all = parse_cidr("::/0");
    ASSERT_TRUE(all);
    EXPECT_TRUE(cidr_contains(*all, ip("1.2.3.4").data()));
    EXPECT_TRUE(cidr_contains(*all, ip("::1").data()));
    EXPECT_EQ(parse_cidr("::1")->prefix, 128u);

    kos::security::Cidr bogus = *all;
    bogus.prefix = 129;
    EXPECT_FALSE(cidr_contains(bogus, ip("::").data()));
}

TEST(Address, RejectsMalformedCidrBlocks) {
    const std::vector<std::pair<const char*, const char*>> cases = {
        {"10.0.0.1/8", "invalid CIDR block \"10.0.0.1/8\": host bits are set after the prefix; the "
                       "network is 10.0.0.0/8"},
        {"192.0.2.10/24", "invalid CIDR block \"192.0.2.10/24\": host bits are set after the "
                          "prefix; the network is 192.0.2.0/24"},
        {"2001:db8::1/32", "invalid CIDR block \"2001:db8::1/32\": host bits are set after the "
                           "prefix; the network is 2001:db8::/32"},
        {"10.0.0.0/33",
         "invalid CIDR block \"10.0.0.0/33\": the prefix length must be a decimal 0..32"},
        {"::/129", "invalid CIDR block \"::/129\": the prefix length must be a decimal 0..128"},
        {"10.0.0.0/",
         "invalid CIDR block \"10.0.0.0/\": the prefix length must be a decimal 0..32"},
        {"10.0.0.0/08",
         "invalid CIDR block \"10.0.0.0/08\": the prefix length must be a decimal 0..32"},
        {"10.0.0.0/8x",
         "invalid CIDR block \"10.0.0.0/8x\": the prefix length must be a decimal 0..32"},
        {"10.0.0.0/-1",
         "invalid CIDR block \"10.0.0.0/-1\": the prefix length must be a decimal 0..32"},
        {"/8", "invalid IP address \"\": empty"},
        {"10.0.0/8", "invalid IP address \"10.0.0\": an IPv4 address has four parts (a.b.c.d)"},
    };
    for (const auto& [text, message] : cases) {
        auto r = parse_cidr(text);
        ASSERT_FALSE(r) << text;
        EXPECT_EQ(r.error().code, EINVAL);
        EXPECT_EQ(r.error().message, message);
    }
}
