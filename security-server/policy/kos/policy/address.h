// IP addresses and CIDR blocks in policies (`where address in 10.0.0.0/8`,
// `address=192.0.2.10` in tests), in the engine's form: 16 bytes, IPv4 as
// the IPv4-mapped IPv6 address ::ffff:a.b.c.d (security::Cidr).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "kos/security/policy_format.h"
#include "kos/support/result.h"

namespace kos::policy {

// "192.0.2.1" (a dotted quad: four decimal parts 0..255, no leading zeros)
// or an IPv6 address ("2001:db8::1", "::", "::ffff:192.0.2.1": groups of
// 1-4 hex digits, at most one "::", an optional dotted-quad tail). No zone
// ids, no brackets. Errors (EINVAL) name the text and what is wrong.
Result<std::array<uint8_t, 16>> parse_ip(std::string_view text);

// "ADDRESS/N" or a plain ADDRESS (/32 for IPv4, /128 for IPv6). IPv4 /N
// (0..32) is stored as prefix 96 + N; IPv6 /N is 0..128. Bits set after the
// prefix are an error that names the network meant ("10.0.0.1/8 has host
// bits set; the network is 10.0.0.0/8").
Result<security::Cidr> parse_cidr(std::string_view text);

// Whether the first cidr.prefix bits of `address` equal the block's. A
// prefix above 128 contains nothing.
bool cidr_contains(const security::Cidr& cidr, const uint8_t address[16]);

// IPv4-mapped addresses as a dotted quad, others in RFC 5952 form
// (lowercase, the longest run of two or more zero groups as "::").
std::string format_ip(const uint8_t address[16]);

// "10.0.0.0/8" (IPv4-mapped blocks with prefix >= 96) or "2001:db8::/32".
std::string format_cidr(const security::Cidr& cidr);

} // namespace kos::policy
