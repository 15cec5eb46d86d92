// The bundle config (bundle.toml): what the app is and how it starts, and
// (as the format grows) its behavior: labels, policy, limits, network.
// See docs/bundle-format.md.
#pragma once

#include <cstddef>
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
    bool native = false; // a native kos program (the kos IPC API) instead of a Linux one
};

// [[process]]: a further process of the bundle, started with the app. Native
// kos programs for now (servers the app calls over declared channels).
struct ProcessConfig {
    std::string name;
    std::string label;
    std::vector<std::string> program; // path inside rootfs, then arguments
    bool native = false;              // a native kos program; else Linux, on the POSIX personality
    std::string where;
};

// [[channel]]: the only way two processes talk. `client` and `server` name
// processes ("app" is the [app] program); `interface` is the IDL interface id
// the channel carries; `rights` those of the client's handle.
struct ChannelConfig {
    std::string name;
    std::string client;
    std::string server;
    uint32_t interface_id = 0;
    std::vector<std::string> rights; // "call", "transfer", "duplicate"
    std::string where;
};

// [labels]: "PATTERN" = "LABEL". Patterns are absolute rootfs paths whose
// components may use `*` and `?` (never matching '/'), and `**` as a whole
// component (zero or more components: "/usr/**" covers "/usr" and all
// below it). The most specific matching rule wins (see label_matcher.h).
struct LabelRule {
    std::string pattern;
    std::string label;
    std::string where; // "bundle.toml:12:1", for messages
};

// [policy]: the app's domain and its policy source files (paths relative to
// the bundle directory). The sources are opaque bytes to pkg: they are bound
// by the signature and handed to the policy compiler (see bundle.h,
// PolicyCompiler).
struct PolicyConfig {
    std::string domain;               // label of the app's processes, e.g. "app_t"
    std::vector<std::string> sources; // e.g. "policy/app.kpol"
};

// [limits]: 0 means "the runtime's default".
struct LimitsConfig {
    uint64_t memory_bytes = 0;
    uint32_t vcpus = 0;
    uint64_t cpu_time_ms = 0;
    uint64_t wall_time_ms = 0;
    uint64_t output_bytes = 0;
    uint32_t pids = 0;
    uint32_t open_files = 0;
};

// [network]: every port the app may use, each with a label. Empty: no network.
struct NetworkEndpoint {
    std::string proto; // "tcp" or "udp"
    std::string host;  // connect only: address, CIDR or host name
    uint16_t port = 0;
    std::string label;
};
struct NetworkConfig {
    std::vector<NetworkEndpoint> listen;
    std::vector<NetworkEndpoint> connect;
};

// [volumes.NAME]: a host directory the user may attach at run time
// (`kos run -v NAME=HOSTDIR`), mounted at `path` with `label`.
struct VolumeConfig {
    std::string name;
    std::string path;
    bool writable = false;
    std::string label;
};

// [[pipe]]: a named pipe at `path` between the bundle's processes of
// different labels; its ends are handed out by the pipe server, the policy
// decides who opens which (`request D -> pipe_t pipe.Pipe.open`, then
// `security D -> label pipe.read|write`).
struct PipeConfig {
    std::string path;  // absolute, normalized, not "/", not in /tmp
    std::string label;
    std::string where;
};

struct BundleConfig {
    AppConfig app;
    // The behavior config. A bundle is runnable only with both [labels]
    // (non-empty) and [policy] (see require_behavior_config).
    bool has_labels = false;
    std::vector<LabelRule> labels;
    bool has_policy = false;
    PolicyConfig policy;
    LimitsConfig limits;
    NetworkConfig network;
    std::vector<VolumeConfig> volumes;
    std::vector<ProcessConfig> processes;
    std::vector<ChannelConfig> channels;
    std::vector<PipeConfig> pipes;
};

inline constexpr const char* kConfigFileName = "bundle.toml";
// The largest bundle.toml accepted (parse_bundle_config refuses more).
inline constexpr size_t kMaxConfigBytes = 1 << 20;

// Parses bundle.toml text; `origin` names the file in error messages
// ("bundle.toml:3:7: ...").
Result<BundleConfig> parse_bundle_config(const std::string& text, const std::string& origin);

// Fails (naming the missing section) unless the config carries a behavior
// config: a non-empty [labels] section and a [policy] section with a domain
// and at least one source. pack, open_bundle_for_run and verify require it.
Result<void> require_behavior_config(const BundleConfig& config, const std::string& origin);

// A label: [A-Za-z_][A-Za-z0-9_.:-]*, at most 128 bytes.
bool valid_label(const std::string& label);
// A bundle-relative file name: components of [A-Za-z0-9._-], no "." or "..",
// at most 255 bytes.
bool valid_bundle_relpath(const std::string& path);

} // namespace kos::pkg
