#include "kos/policy/address.h"

#include <cerrno>
#include <cstring>
#include <vector>

#include "kos/support/text.h"

namespace kos::policy {
namespace {

std::unexpected<Error> bad(std::string_view text, const std::string& why) {
    return make_error(EINVAL, "invalid IP address \"" + std::string(text) + "\": " + why);
}

// A dotted quad into out[0..3]; `whole` is the text named in errors.
Result<void> parse_ipv4(std::string_view s, std::string_view whole, uint8_t out[4]) {
    size_t i = 0;
    for (int part = 0; part < 4; ++part) {
        if (part > 0) {
            if (i >= s.size() || s[i] != '.')
                return bad(whole, "an IPv4 address has four parts (a.b.c.d)");
            ++i;
        }
        size_t start = i;
        unsigned v = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - start < 4)
            v = v * 10 + static_cast<unsigned>(s[i++] - '0');
        if (i == start)
            return bad(whole, "expected a decimal number at offset " + std::to_string(start));
        if (i - start > 1 && s[start] == '0')
            return bad(whole, "leading zero in \"" + std::string(s.substr(start, i - start)) +
                                  "\" (octal is not supported)");
        if (v > 255 || (i < s.size() && s[i] >= '0' && s[i] <= '9'))
            return bad(whole, "part \"" + std::string(s.substr(start, s.find('.', start) - start)) +
                                  "\" is not in 0..255");
        out[part] = static_cast<uint8_t>(v);
    }
    if (i != s.size())
        return bad(whole, "unexpected '" + std::string(1, s[i]) + "' at offset " +
                              std::to_string(i) + " after four parts");
    return {};
}

// Groups separated by ':' (no "::" inside); the last may be a dotted quad
// when `tail_v4` allows it. Appends 16-bit groups.
Result<void> parse_groups(std::string_view s, std::string_view whole, bool tail_v4,
                          std::vector<uint16_t>& groups) {
    if (s.empty())
        return {};
    size_t i = 0;
    for (;;) {
        size_t end = s.find(':', i);
        std::string_view g = s.substr(i, end == std::string_view::npos ? end : end - i);
        if (g.empty())
            return bad(whole, "empty group (a single ':' at the start or end, or ':::')");
        if (g.find('.') != std::string_view::npos) {
            if (!tail_v4 || end != std::string_view::npos)
                return bad(whole, "an embedded IPv4 address may only be the last part");
            uint8_t v4[4];
            KOS_TRY(parse_ipv4(g, whole, v4));
            groups.push_back(static_cast<uint16_t>(v4[0] << 8 | v4[1]));
            groups.push_back(static_cast<uint16_t>(v4[2] << 8 | v4[3]));
        } else {
            unsigned v = 0;
            for (char c : g) {
                int d = kos::hex_value(c);
                if (d < 0)
                    return bad(whole, "'" + std::string(1, c) + "' is not a hex digit");
                v = v * 16 + static_cast<unsigned>(d);
            }
            if (g.size() > 4)
                return bad(whole, "group \"" + std::string(g) + "\" has more than 4 hex digits");
            groups.push_back(static_cast<uint16_t>(v));
        }
        if (end == std::string_view::npos)
            return {};
        i = end + 1;
    }
}

Result<std::array<uint8_t, 16>> parse_ipv6(std::string_view s) {
    size_t gap = s.find("::");
    std::vector<uint16_t> head, tail;
    if (gap == std::string_view::npos) {
        KOS_TRY(parse_groups(s, s, true, head));
        if (head.size() != 8)
            return bad(s, "an IPv6 address has 8 groups (or \"::\" for a run of zeros)");
    } else {
        if (s.find("::", gap + 1) != std::string_view::npos)
            return bad(s, "\"::\" may appear only once");
        KOS_TRY(parse_groups(s.substr(0, gap), s, false, head));
        KOS_TRY(parse_groups(s.substr(gap + 2), s, true, tail));
        if (head.size() + tail.size() > 7)
            return bad(s, "too many groups for \"::\" (at most 7 besides it)");
    }
    std::array<uint8_t, 16> out{};
    auto put = [&](size_t index, uint16_t g) {
        out[2 * index] = static_cast<uint8_t>(g >> 8);
        out[2 * index + 1] = static_cast<uint8_t>(g);
    };
    for (size_t x = 0; x < head.size(); ++x)
        put(x, head[x]);
    for (size_t x = 0; x < tail.size(); ++x)
        put(8 - tail.size() + x, tail[x]);
    return out;
}

bool is_v4_mapped(const uint8_t a[16]) {
    for (int i = 0; i < 10; ++i)
        if (a[i] != 0)
            return false;
    return a[10] == 0xff && a[11] == 0xff;
}

} // namespace

Result<std::array<uint8_t, 16>> parse_ip(std::string_view text) {
    if (text.empty())
        return bad(text, "empty");
    if (text.find(':') != std::string_view::npos)
        return parse_ipv6(text);
    std::array<uint8_t, 16> out{};
    out[10] = 0xff;
    out[11] = 0xff;
    KOS_TRY(parse_ipv4(text, text, out.data() + 12));
    return out;
}

Result<security::Cidr> parse_cidr(std::string_view text) {
    size_t slash = text.rfind('/');
    std::string_view addr = text.substr(0, slash);
    bool v6 = addr.find(':') != std::string_view::npos;
    security::Cidr cidr{};
    auto ip = parse_ip(addr);
    if (!ip)
        return std::unexpected(ip.error());
    std::memcpy(cidr.address, ip->data(), 16);
    uint32_t max = v6 ? 128 : 32;
    uint32_t n = max;
    if (slash != std::string_view::npos) {
        std::string_view len = text.substr(slash + 1);
        bool ok = !len.empty() && len.size() <= 3 && (len.size() == 1 || len[0] != '0');
        n = 0;
        for (char c : len) {
            ok = ok && c >= '0' && c <= '9';
            n = n * 10 + static_cast<uint32_t>(c - '0');
        }
        if (!ok || n > max)
            return make_error(EINVAL, "invalid CIDR block \"" + std::string(text) +
                                          "\": the prefix length must be a decimal 0.." +
                                          std::to_string(max));
    }
    cidr.prefix = v6 ? n : 96 + n;
    security::Cidr net = cidr;
    for (uint32_t bit = cidr.prefix; bit < 128; ++bit)
        net.address[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
    if (std::memcmp(net.address, cidr.address, 16) != 0)
        return make_error(EINVAL, "invalid CIDR block \"" + std::string(text) +
                                      "\": host bits are set after the prefix; the network is " +
                                      format_cidr(net));
    return cidr;
}

bool cidr_contains(const security::Cidr& cidr, const uint8_t address[16]) {
    if (cidr.prefix > 128)
        return false;
    uint32_t full = cidr.prefix / 8, rest = cidr.prefix % 8;
    if (std::memcmp(cidr.address, address, full) != 0)
        return false;
    if (rest == 0)
        return true;
    auto mask = static_cast<uint8_t>(0xff00u >> rest);
    return ((cidr.address[full] ^ address[full]) & mask) == 0;
}

std::string format_ip(const uint8_t a[16]) {
    if (is_v4_mapped(a))
        return std::to_string(a[12]) + "." + std::to_string(a[13]) + "." + std::to_string(a[14]) +
               "." + std::to_string(a[15]);
    uint16_t g[8];
    for (size_t i = 0; i < 8; ++i)
        g[i] = static_cast<uint16_t>(a[2 * i] << 8 | a[2 * i + 1]);
    // The longest run of at least two zero groups (the first on a tie).
    int best = -1, best_len = 1;
    for (int i = 0; i < 8;) {
        if (g[i] != 0) {
            ++i;
            continue;
        }
        int j = i;
        while (j < 8 && g[j] == 0)
            ++j;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j;
    }
    static const char kHex[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 8; ++i) {
        if (i == best) {
            out += "::";
            i += best_len - 1;
            continue;
        }
        if (!out.empty() && out.back() != ':')
            out += ':';
        bool started = false;
        for (int shift = 12; shift >= 0; shift -= 4) {
            int d = (g[i] >> shift) & 15;
            if (d || started || shift == 0) {
                out += kHex[d];
                started = true;
            }
        }
    }
    return out;
}

std::string format_cidr(const security::Cidr& cidr) {
    if (is_v4_mapped(cidr.address) && cidr.prefix >= 96)
        return format_ip(cidr.address) + "/" + std::to_string(cidr.prefix - 96);
    return format_ip(cidr.address) + "/" + std::to_string(cidr.prefix);
}

} // namespace kos::policy
