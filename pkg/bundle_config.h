// The bundle config (bundle.toml): what the app is and how it starts, and
// (as the format grows) its behavior: labels, policy, limits, network.
// See docs/bundle-format.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kos/support/result.h"

namespace kos::pkg {

struct AppConfig {
    std::string name;
    std::string version;
    std::vector<std::string> entrypoint; // program path inside rootfs, then fixed args
    std::vector<std::string> args;       // default args, replaced by `kos run DIR -- ARGS`
    std::vector<std::string> env;        // KEY=VALUE
    std::string workdir = "/";
    uint32_t uid = 0;
    uint32_t gid = 0;
    std::string hostname = "kos";
};

struct BundleConfig {
    AppConfig app;
};

inline constexpr const char* kConfigFileName = "bundle.toml";

// Parses bundle.toml text; `origin` names the file in error messages
// ("bundle.toml:3:7: ...").
Result<BundleConfig> parse_bundle_config(const std::string& text, const std::string& origin);

} // namespace kos::pkg
