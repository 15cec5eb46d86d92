// The sandbox spec: everything the host-process backend enforces for one
// run, in one plain struct. Landlock rules, the seccomp filter, the
// supervisor's connect/bind/execve verdicts, rlimits and the cgroup are all
// generated from it. With a compiled bundle policy ([policy] sources) the
// verdicts come from the security engine instead (sandbox_policy.h), and
// the policy also decides which files Landlock lets the program execute
// and, with [labels], read (spec_from_bundle_dir).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kos/support/result.h"
#include "pkg/volumes.h"

namespace kos::proc {

enum class Proto : uint8_t { Tcp, Udp };

// One allowed endpoint, from a [network] entry of bundle.toml: listen
// entries allow bind(2) on their port (any address); connect entries allow
// connect(2) to their host (an address or CIDR) and port.
struct NetRule {
    Proto proto = Proto::Tcp;
    bool any_addr = false;
    int family = 0;        // AF_INET or AF_INET6 when !any_addr
    uint8_t addr[16] = {}; // network byte order
    int prefix = 0;        // CIDR prefix length (32 or 128 for one address)
    bool any_port = false;
    uint16_t port = 0;
    std::string text; // "tcp 127.0.0.1:8000 (label http_t)", for messages
};

// Parses a connect host: "127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8", "*";
// "localhost" is 127.0.0.0/8 (IPv6 ::1 gets a second rule). Other host names
// are not resolved (ENOENT).
Result<std::vector<NetRule>> parse_host_rule(const std::string& host, const std::string& where);
bool net_rule_matches(const NetRule& r, Proto proto, int family, const uint8_t* addr, uint16_t port);

// A published port (`kos run -p HOST:GUEST`): the supervisor listens on
// host_addr:host_port in the host network namespace and forwards each
// connection to 127.0.0.1:guest_port inside the sandbox's network namespace.
struct Publish {
    std::string host_addr = "127.0.0.1";
    uint16_t host_port = 0;
    uint16_t guest_port = 0;
};
// "[HOST_ADDR:]HOST_PORT:GUEST_PORT"
Result<Publish> parse_publish(const std::string& text, const std::string& where);

// Resource limits; 0 means "not limited by the bundle".
struct Limits {
    uint64_t memory_bytes = 0;   // cgroup memory.max (v1: memory.limit_in_bytes)
    uint64_t pids = 0;           // cgroup pids.max
    uint32_t cpu_percent = 0;    // cgroup cpu.max (v1: cfs quota), 100 = one CPU
    uint64_t nofile = 1024;      // RLIMIT_NOFILE
    uint64_t cpu_seconds = 0;    // RLIMIT_CPU
    uint64_t file_size_bytes = 0;// RLIMIT_FSIZE
    uint64_t wall_ms = 0;        // wall-time limit (the supervisor kills the sandbox)
    uint64_t tmp_bytes = 64ull << 20; // size of the private /tmp
};

// A host directory attached with `kos run -v` (pkg::VolumeMount) and what
// the bundle's policy lets the program do with it (add_volumes).
struct SandboxVolume {
    pkg::VolumeMount mount;
    bool readable = false; // security DOMAIN -> label file.read
    bool writable = false; // mount.writable and security DOMAIN -> label file.write
    // The guest path's top-level directory is not in the rootfs: its
    // directories are created in the root tmpfs. Otherwise the guest path is
    // a directory of the rootfs, and the volume is mounted over it.
    bool create_mount_point = false;
};

struct SandboxSpec {
    // What runs. Paths are inside the sandbox's root.
    std::vector<std::string> argv;
    std::vector<std::string> env;
    std::string workdir = "/";
    std::string hostname = "kos";
    std::string domain = "app"; // the program's label ([policy] domain), for audit lines
    uint32_t uid = 0; // inside the sandbox's user namespace
    uint32_t gid = 0;

    std::string rootfs; // host directory that becomes "/" (read-only)

    // Landlock: paths inside the sandbox. Readable trees get READ_FILE and
    // READ_DIR (a readable file: READ_FILE); listable trees READ_DIR only;
    // writable trees get every right except EXECUTE and device creation;
    // programs in `execs` get EXECUTE (without a policy they are the only
    // files execve may start; with one, `execs` holds every rootfs file the
    // policy allows to execute, whole directories where all their files
    // are, and the ELF interpreters of those programs).
    std::vector<std::string> read_paths;
    std::vector<std::string> list_paths;
    std::vector<std::string> write_paths;
    std::vector<std::string> execs;
    // Volumes (`kos run -v`), mounted nosuid, nodev, noexec (and read-only
    // unless writable) at their guest paths; Landlock gives each READ_FILE
    // and READ_DIR beneath when readable and the write rights when writable,
    // and no rule above may reach into them (add_volumes).
    std::vector<SandboxVolume> volumes;
    // With a compiled policy: every call naming a path in a volume is judged
    // by the supervisor (request DOMAIN -> vfs_t vfs.File.*, then the label)
    // and performed by it; Landlock then grants nothing beneath any volume
    // (supervisor_vfs.cc).
    bool volumes_by_supervisor = false;
    // Then: the directories above a mount point (outside every volume)
    // that the rootfs's read or list rules let the program list before
    // they were split around the volumes. The supervisor opens these for
    // reading itself, so they stay listable (supervisor_vfs.cc).
    std::vector<std::string> listable_dirs;

    // Supervisor verdicts for connect(2) and bind(2) on IP sockets.
    std::vector<NetRule> connect;
    std::vector<NetRule> bind;
    std::vector<Publish> publish;

    Limits limits;

    // The compiled bundle policy (kos::policy::compile_bundle_policy of the
    // [policy] sources): when not empty, the supervisor's connect, bind and
    // execve verdicts come from a security engine loaded with it, and
    // `connect` and `bind` above are empty. Empty: a bundle without policy
    // sources, judged by the spec's own rules.
    std::vector<uint8_t> policy;
    std::string policy_files; // its [policy] sources, "policy/sbx.kpol", for messages

    // Where each part came from, for messages ("examples/x/bundle.toml").
    std::string origin;
    // How the verdicts and the Landlock rules were derived, one line each,
    // printed by `kos run --stats`.
    std::vector<std::string> report;
    // Parts of the config this backend could not enforce or map, one line
    // each, printed as notes by `kos run`.
    std::vector<std::string> notes;
};

// Builds the spec of a bundle directory (DIR/bundle.toml + DIR/rootfs/).
// Everything comes from pkg::parse_bundle_config: [app], [limits] and
// [network] (how each key maps: docs/process-backend.md), and with [policy]
// sources the compiled policy (which then replaces [network] as the source
// of verdicts). `argv_override` (from `kos run DIR -- ARGS`) replaces the
// entrypoint when not empty. Errors: ENOENT for a missing program (message
// "cannot run ..."), EACCES "the bundle's policy does not allow ..." when
// the policy does not let the program start, EINVAL for a policy that does
// not compile or whose tests fail, EFBIG when the policy's Landlock rules
// would exceed kMaxLandlockPathRules.
inline constexpr size_t kMaxLandlockPathRules = 4096;
Result<SandboxSpec> spec_from_bundle_dir(const std::string& dir,
                                         const std::vector<std::string>& argv_override);

// Attaches `volumes` (pkg::resolve_volumes) to a spec of spec_from_bundle_dir:
// with a compiled policy each label is judged as the rootfs's labels are
// (readable iff `security DOMAIN -> LABEL file.read`, writable iff the
// volume is rw and `file.write` is allowed); without one, the spec decides
// (readable, writable when rw). A mount point must be a directory of the
// rootfs (reached without symlinks) or lie under a top-level name the
// rootfs does not have (then it is created in the root tmpfs); /tmp is the
// sandbox's own. Rules of the rootfs that would reach into a volume (a
// readable "/", a directory above it) are split into rules for their other
// entries, and rules at or beneath a mount point are dropped (the volume
// hides those entries). Adds report lines, and a note for each volume the
// program may neither read nor write. Errors: EINVAL for a mount point the
// rootfs cannot offer, EFBIG past kMaxLandlockPathRules.
Result<void> add_volumes(SandboxSpec& spec, const std::vector<pkg::VolumeMount>& volumes);

// Resolves `path` (absolute, inside `rootfs`) following symlinks without
// leaving `rootfs`; returns the resolved path inside rootfs.
Result<std::string> resolve_in_rootfs(const std::string& rootfs, const std::string& path);

// The ELF interpreter (PT_INTERP) of a program inside rootfs, if any.
Result<std::optional<std::string>> elf_interpreter(const std::string& rootfs, const std::string& path);

} // namespace kos::proc
