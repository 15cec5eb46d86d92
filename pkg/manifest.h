// The bundle manifest: the one small text that a bundle's signature covers.
// It names the bundle, its version and expiry, and the offset, size and
// SHA-256 of every section of the packed file (config, policy sources,
// compiled policy, rootfs image), so the signature binds every byte.
//
// Canonical form (parse_manifest accepts exactly what serialize_manifest
// writes, one field per line, '\n' endings, nothing else):
//   kos-bundle-manifest 1
//   name NAME
//   version VERSION
//   created UNIX_SECONDS
//   expires UNIX_SECONDS        (0: never)
//   domain LABEL
//   section KIND NAME OFFSET SIZE SHA256HEX      (one per section, by offset)
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kos/support/result.h"

namespace kos::pkg {

using Sha256 = std::array<uint8_t, 32>;

std::string to_hex(std::span<const uint8_t> bytes);
Sha256 sha256(std::span<const uint8_t> bytes);

enum class SectionKind { Config, Policy, CompiledPolicy, Rootfs };
const char* section_kind_name(SectionKind kind);

struct ManifestSection {
    SectionKind kind = SectionKind::Config;
    std::string name; // "bundle.toml", a policy source path, "policy.bin", "rootfs.img"
    uint64_t offset = 0;
    uint64_t size = 0;
    Sha256 digest{};
};

struct Manifest {
    std::string name;
    std::string version;
    int64_t created = 0;
    int64_t expires = 0; // 0: never
    std::string domain;
    std::vector<ManifestSection> sections;

    const ManifestSection* find(SectionKind kind) const;
};

inline constexpr size_t kMaxManifestSize = 64 * 1024;
inline constexpr size_t kMaxSections = 256;

std::string serialize_manifest(const Manifest& m);
Result<Manifest> parse_manifest(std::span<const uint8_t> bytes);

// Versions are dot-separated decimal numbers ("3", "1.12.0"), compared
// numerically component by component, so rollback can be detected.
bool valid_version(const std::string& v);
int compare_versions(const std::string& a, const std::string& b);
// A bundle name: 1-128 of [A-Za-z0-9._-].
bool valid_bundle_name(const std::string& name);

} // namespace kos::pkg
