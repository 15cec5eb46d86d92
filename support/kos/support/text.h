// Small text helpers shared by the host parsers (bundle.toml, policies).
#pragma once

namespace kos {

// The value of hexadecimal digit `c` (0-9, a-f, A-F), or -1.
constexpr int hex_value(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

} // namespace kos
