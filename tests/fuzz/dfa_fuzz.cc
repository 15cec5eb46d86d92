// Fuzzes the policy compiler's pattern compilers (security-server/policy,
// kos/policy/dfa.h) and address parser (kos/policy/address.h) on arbitrary
// bytes. The first byte picks the front end; the rest is the pattern. Small
// limits keep every input fast; a compiled DFA must be well formed and
// walkable on inputs derived from the pattern.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "kos/policy/address.h"
#include "kos/policy/dfa.h"

namespace {

void check(const kos::policy::Dfa& d, std::string_view pattern) {
    if (d.state_count < 2 || d.class_count == 0 || d.class_count > 256 ||
        d.next.size() != size_t{d.state_count} * d.class_count ||
        d.accepting.size() != d.state_count || d.accepting[0] != 0)
        __builtin_trap();
    for (uint8_t c : d.byte_class)
        if (c >= d.class_count)
            __builtin_trap();
    for (uint16_t t : d.next)
        if (t >= d.state_count)
            __builtin_trap();
    for (uint32_t c = 0; c < d.class_count; ++c)
        if (d.next[c] != 0)
            __builtin_trap();
    size_t half = pattern.size() / 2;
    bool sink = false;
    for (std::string_view s : {pattern, pattern.substr(0, half), pattern.substr(half),
                               std::string_view(), std::string_view("/"), std::string_view("a/b")})
        sink ^= d.matches(s);
    std::string doubled = std::string(pattern) + std::string(pattern);
    sink ^= d.matches(doubled);
    (void)sink;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0)
        return 0;
    std::string_view pattern(reinterpret_cast<const char*>(data) + 1, size - 1);
    kos::policy::DfaLimits limits;
    limits.max_pattern_bytes = 256;
    limits.max_states = 64;
    limits.max_repeat = 16;
    switch (data[0] % 4) {
    case 0:
        if (auto d = kos::policy::compile_regex(pattern, limits)) {
            check(*d, pattern);
        } else if (d.error().message.rfind("regex: ", 0) != 0) {
            __builtin_trap();
        }
        break;
    case 1:
        if (auto d = kos::policy::compile_glob(pattern, limits)) {
            check(*d, pattern);
        } else if (d.error().message.rfind("glob: ", 0) != 0) {
            __builtin_trap();
        }
        break;
    case 2: {
        // Newline-separated strings: each must match its own DFA.
        std::vector<std::string> values;
        size_t start = 0;
        for (size_t i = 0; i <= pattern.size(); ++i)
            if (i == pattern.size() || pattern[i] == '\n') {
                values.emplace_back(pattern.substr(start, i - start));
                start = i + 1;
            }
        if (auto d = kos::policy::compile_literals(values, limits)) {
            check(*d, pattern);
            for (const std::string& v : values)
                if (!d->matches(v))
                    __builtin_trap();
        }
        break;
    }
    default: {
        // Addresses round-trip through their canonical form.
        if (auto a = kos::policy::parse_ip(pattern)) {
            std::string text = kos::policy::format_ip(a->data());
            auto b = kos::policy::parse_ip(text);
            if (!b || *b != *a)
                __builtin_trap();
        }
        if (auto c = kos::policy::parse_cidr(pattern)) {
            if (!kos::policy::cidr_contains(*c, c->address))
                __builtin_trap();
            auto again = kos::policy::parse_cidr(kos::policy::format_cidr(*c));
            if (!again || std::memcmp(again->address, c->address, 16) != 0 ||
                again->prefix != c->prefix)
                __builtin_trap();
        }
        break;
    }
    }
    return 0;
}
