#include "manifest.h"

#include <openssl/evp.h>

#include <cctype>
#include <charconv>

#include "bundle_config.h"

namespace kos::pkg {
namespace {

bool parse_i64(std::string_view s, int64_t& out) {
    if (s.empty() || s.size() > 19 || (s.size() > 1 && s[0] == '0'))
        return false;
    for (char c : s)
        if (c < '0' || c > '9')
            return false;
    auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool parse_u64(std::string_view s, uint64_t& out) {
    int64_t v = 0;
    if (!parse_i64(s, v) || v < 0)
        return false;
    out = static_cast<uint64_t>(v);
    return true;
}

bool parse_hex32(std::string_view s, Sha256& out) {
    if (s.size() != 64)
        return false;
    for (size_t i = 0; i < 32; ++i) {
        auto nib = [](char c) -> int {
            if (c >= '0' && c <= '9')
                return c - '0';
            if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
            return -1;
        };
        int hi = nib(s[2 * i]), lo = nib(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return true;
}

std::vector<std::string_view> words(std::string_view line) {
    std::vector<std::string_view> out;
    size_t start = 0;
    while (start <= line.size()) {
        size_t sp = line.find(' ', start);
        if (sp == std::string_view::npos)
            sp = line.size();
        out.push_back(line.substr(start, sp - start));
        start = sp + 1;
    }
    return out;
}

} // namespace

std::string to_hex(std::span<const uint8_t> bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (uint8_t b : bytes) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 15]);
    }
    return out;
}

// OpenSSL's SHA-256 uses the CPU's SHA extensions where present (about
// twice libsodium's portable code on the benchmark machine).
Sha256 sha256(std::span<const uint8_t> bytes) {
    Sha256 d{};
    unsigned int len = 0;
    EVP_Digest(bytes.data(), bytes.size(), d.data(), &len, EVP_sha256(), nullptr);
    return d;
}

const char* section_kind_name(SectionKind kind) {
    switch (kind) {
    case SectionKind::Config: return "config";
    case SectionKind::Policy: return "policy";
    case SectionKind::CompiledPolicy: return "compiled-policy";
    case SectionKind::Rootfs: return "rootfs";
    }
    return "?";
}

const ManifestSection* Manifest::find(SectionKind kind) const {
    for (const ManifestSection& s : sections)
        if (s.kind == kind)
            return &s;
    return nullptr;
}

bool valid_version(const std::string& v) {
    if (v.empty() || v.size() > 64 || v.front() == '.' || v.back() == '.')
        return false;
    size_t run = 0;
    for (char c : v) {
        if (c == '.') {
            if (run == 0)
                return false;
            run = 0;
        } else if (c >= '0' && c <= '9') {
            if (++run > 18)
                return false;
        } else {
            return false;
        }
    }
    return true;
}

int compare_versions(const std::string& a, const std::string& b) {
    size_t i = 0, j = 0;
    while (i < a.size() || j < b.size()) {
        uint64_t x = 0, y = 0;
        while (i < a.size() && a[i] != '.')
            x = x * 10 + static_cast<uint64_t>(a[i++] - '0');
        while (j < b.size() && b[j] != '.')
            y = y * 10 + static_cast<uint64_t>(b[j++] - '0');
        if (x != y)
            return x < y ? -1 : 1;
        ++i;
        ++j;
    }
    return 0;
}

bool valid_bundle_name(const std::string& name) {
    if (name.empty() || name.size() > 128)
        return false;
    for (char c : name)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
            return false;
    return true;
}

std::string serialize_manifest(const Manifest& m) {
    std::string out = "kos-bundle-manifest 1\n";
    out += "name " + m.name + "\n";
    out += "version " + m.version + "\n";
    out += "created " + std::to_string(m.created) + "\n";
    out += "expires " + std::to_string(m.expires) + "\n";
    out += "domain " + m.domain + "\n";
    for (const ManifestSection& s : m.sections)
        out += std::string("section ") + section_kind_name(s.kind) + " " + s.name + " " +
               std::to_string(s.offset) + " " + std::to_string(s.size) + " " + to_hex(s.digest) + "\n";
    return out;
}

Result<Manifest> parse_manifest(std::span<const uint8_t> bytes) {
    if (bytes.size() > kMaxManifestSize)
        return make_error(EINVAL, "manifest: larger than " + std::to_string(kMaxManifestSize) + " bytes");
    std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (text.empty() || text.back() != '\n')
        return make_error(EINVAL, "manifest: truncated (does not end with a newline)");
    std::vector<std::string_view> lines;
    for (size_t start = 0; start < text.size();) {
        size_t nl = text.find('\n', start);
        lines.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    auto bad = [&](size_t line, const std::string& what) {
        return make_error(EINVAL, "manifest:" + std::to_string(line + 1) + ": " + what);
    };
    if (lines.size() < 6 || lines[0] != "kos-bundle-manifest 1")
        return bad(0, "not a kos bundle manifest (version 1)");
    Manifest m;
    auto field = [&](size_t i, std::string_view key) -> Result<std::string> {
        std::vector<std::string_view> w = words(lines[i]);
        if (w.size() != 2 || w[0] != key)
            return bad(i, "expected \"" + std::string(key) + " VALUE\"");
        return std::string(w[1]);
    };
    m.name = KOS_TRY(field(1, "name"));
    if (!valid_bundle_name(m.name))
        return bad(1, "invalid bundle name");
    m.version = KOS_TRY(field(2, "version"));
    if (m.version.empty() || m.version.size() > 64)
        return bad(2, "invalid version");
    if (!parse_i64(KOS_TRY(field(3, "created")), m.created))
        return bad(3, "invalid creation time");
    if (!parse_i64(KOS_TRY(field(4, "expires")), m.expires))
        return bad(4, "invalid expiry time");
    m.domain = KOS_TRY(field(5, "domain"));
    if (!valid_label(m.domain))
        return bad(5, "invalid domain label");
    if (lines.size() - 6 > kMaxSections)
        return bad(6, "more than " + std::to_string(kMaxSections) + " sections");
    for (size_t i = 6; i < lines.size(); ++i) {
        std::vector<std::string_view> w = words(lines[i]);
        if (w.size() != 6 || w[0] != "section")
            return bad(i, "expected \"section KIND NAME OFFSET SIZE SHA256\"");
        ManifestSection s;
        if (w[1] == "config")
            s.kind = SectionKind::Config;
        else if (w[1] == "policy")
            s.kind = SectionKind::Policy;
        else if (w[1] == "compiled-policy")
            s.kind = SectionKind::CompiledPolicy;
        else if (w[1] == "rootfs")
            s.kind = SectionKind::Rootfs;
        else
            return bad(i, "unknown section kind \"" + std::string(w[1]) + "\"");
        s.name = std::string(w[2]);
        if (!valid_bundle_relpath(s.name))
            return bad(i, "invalid section name");
        if (!parse_u64(w[3], s.offset) || !parse_u64(w[4], s.size))
            return bad(i, "invalid section offset or size");
        if (!parse_hex32(w[5], s.digest))
            return bad(i, "invalid SHA-256 (64 lower-case hex digits)");
        m.sections.push_back(std::move(s));
    }
    // Canonical: what we accept must serialize back to the same bytes.
    if (serialize_manifest(m) != text)
        return make_error(EINVAL, "manifest: not in canonical form");
    return m;
}

} // namespace kos::pkg
