// `kos run`: start a bundle in a KVM virtual machine.
#include <algorithm>
#include <unistd.h>

#include <sys/stat.h>

#include <fcntl.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <cstdio>

#include "commands.h"
#include "instances.h"
#include "kos/base/elf.h"
#include "kos/policy/audit_json.h"
#include "kos/security/engine.h"
#include "kos/security/net_request.h"
#include "kos/security/vfs_request.h"
#include "kos/boot.h"
#include "kos/rootfs_image.h"
#include "kos/syscall.h"
#include "kos/support/file.h"
#include "kvm-host/boot_image.h"
#include "kvm-host/kvm.h"
#include "kvm-host/net_service.h"
#include "kvm-host/vmm.h"
#include "pkg/bundle.h"
#include "pkg/bundle_config.h"
#include "pkg/label_matcher.h"
#include "pkg/rootfs_builder.h"
#include "pkg/volumes.h"
#include "scratch.h"
#include "process-host/process_backend.h"

namespace kos::cli {
namespace {

namespace rfs = abi::rootfs;

// Exit statuses of `kos run` itself, as container runtimes use them; a
// program's own status passes through unchanged.
constexpr int kExitKosError = 125;
// The personality servers' labels and interfaces (vfs_request.h,
// abi/idl/proc.kidl, abi/idl/pipe.kidl).
using security::kVfsLabel;
using security::kVfsInterface;
constexpr char kProcLabel[] = "proc_t";
constexpr uint32_t kProcInterface = 0x300;
constexpr char kPipeLabel[] = "pipe_t";
constexpr uint32_t kPipeInterface = 0x500;
constexpr int kExitCannotExecute = 126;
constexpr int kExitNotFound = 127;

// The VM's vCPUs: --cpus, else the bundle's [limits] vcpus (the VM runs at
// most abi::boot::kMaxCpus), else 2; never more than the host's CPUs, which
// would only add contention.
uint32_t vm_cpus(uint32_t option, uint32_t bundle_vcpus) {
    uint32_t want = option ? option : bundle_vcpus ? std::min<uint32_t>(bundle_vcpus, abi::boot::kMaxCpus) : 2;
    long host = ::sysconf(_SC_NPROCESSORS_ONLN);
    if (host > 0 && want > static_cast<uint32_t>(host))
        want = static_cast<uint32_t>(host);
    return want ? want : 1;
}

struct RunArgs {
    std::string bundle;
    std::vector<std::string> args;
    bool trace = false;
    bool stats = false;
    uint64_t memory_mib = 0;       // 0: the bundle's [limits] memory, else 256 MiB
    uint64_t output_limit_mib = 0; // 0: the bundle's [limits] output, else 1 GiB
    double timeout_s = -1;         // < 0: the bundle's [limits] wall_time, else none
    double cpu_time_s = -1;        // < 0: the bundle's [limits] cpu_time, else none
    uint32_t cpus = 0;             // 0: the bundle's [limits] vcpus, else the default
    std::vector<std::string> env;  // -e KEY=VALUE, after the bundle's [app] env
    std::vector<std::string> publish; // -p [HOST_ADDR:]HOST_PORT:GUEST_PORT
    std::vector<std::string> volumes; // -v HOST_DIR:GUEST_PATH[:ro|rw][,label=L] or NAME=HOST_DIR
    std::string backend = "vm"; // vm | process | auto
    bool best_effort = false;   // process backend: run without full Landlock/cgroups
    std::string audit_log;      // JSON lines of audit records; empty: the default location
    bool no_audit_log = false;
};

struct Failure {
    int status;
    std::string message;
};

// Where audit records go: --audit-log, else $XDG_STATE_HOME/kos/audit.jsonl
// (~/.local/state/kos/audit.jsonl, its directory created); "" for none
// (--no-audit-log, or no home to put it in).
std::string audit_log_path(const RunArgs& a) {
    if (a.no_audit_log)
        return "";
    if (!a.audit_log.empty())
        return a.audit_log;
    std::string base = xdg_base_dir("XDG_STATE_HOME", ".local/state");
    if (base.empty())
        return "";
    std::error_code ec;
    std::filesystem::create_directories(base + "/kos", ec);
    return ec ? "" : base + "/kos/audit.jsonl";
}

// Follows symlinks of the program path inside the rootfs image, as the guest
// will, so that a missing or non-executable program is reported before boot.
std::expected<int64_t, Failure> find_program(const rfs::RootfsView& view, std::string path) {
    for (int depth = 0; depth < 40; ++depth) {
        int64_t idx = view.find(path.data(), path.size());
        if (idx < 0)
            return std::unexpected(Failure{kExitNotFound, path + ": no such file in the bundle's rootfs"});
        const auto& e = view.entry(static_cast<uint32_t>(idx));
        if ((e.mode & rfs::kTypeMask) != rfs::kTypeSymlink)
            return idx;
        std::string target(view.symlink_target(e), e.size);
        if (target.front() != '/')
            target = path.substr(0, path.rfind('/') + 1) + target;
        // Normalize "." and ".." components.
        std::vector<std::string> parts;
        size_t pos = 0;
        while (pos <= target.size()) {
            size_t next = target.find('/', pos);
            if (next == std::string::npos)
                next = target.size();
            std::string c = target.substr(pos, next - pos);
            if (c == "..") {
                if (!parts.empty())
                    parts.pop_back();
            } else if (!c.empty() && c != ".") {
                parts.push_back(c);
            }
            pos = next + 1;
        }
        path.clear();
        for (const auto& p : parts)
            path += "/" + p;
        if (path.empty())
            path = "/";
    }
    return std::unexpected(Failure{kExitCannotExecute, path + ": too many levels of symbolic links"});
}

// Returns the program's path with its symlinks resolved: what the policy's
// execute rule judges, in the VM as in the process backend.
std::expected<std::string, Failure> check_program(const rfs::RootfsView& view, const std::string& path) {
    if (path.empty() || path.front() != '/')
        return std::unexpected(Failure{kExitNotFound, "program path \"" + path +
                                                          "\" must be absolute inside the rootfs"});
    auto idx = find_program(view, path);
    if (!idx)
        return std::unexpected(idx.error());
    const auto& e = view.entry(static_cast<uint32_t>(*idx));
    if ((e.mode & rfs::kTypeMask) != rfs::kTypeFile || !(e.mode & 0111))
        return std::unexpected(Failure{kExitCannotExecute, path + ": not an executable file"});
    elf::Image img(view.file_data(e), e.size);
    if (elf::Error err = img.validate(); err != elf::Error::None)
        return std::unexpected(Failure{kExitCannotExecute, path + ": " + elf::error_string(err)});
    return std::string(view.path(e), e.path_len);
}

void report(const Failure& f) {
    std::fprintf(stderr, "kos: %s\n", f.message.c_str());
    instances::note_error(f.message);
}

struct Prepared {
    std::vector<uint8_t> boot_image;
    pkg::LimitsConfig limits;
    std::vector<uint8_t> policy; // the compiled policy in the boot image (empty: none)
    // The volume table's entries in order: the -v volumes, then (when
    // `scratch`) the VM's private /tmp, one per label of its Linux
    // processes (`scratch_labels`; "" when the run has no init description).
    std::vector<pkg::VolumeMount> volumes;
    bool scratch = false;
    std::vector<std::string> scratch_labels;
};

// A compiled policy loaded on the host: to check labels and programs before
// boot, and to render the guest's audit records.
struct HostPolicy {
    security::Engine engine;
    std::vector<uint64_t> state;

    Result<void> load(const std::vector<uint8_t>& blob) {
        state.assign(security::Engine::required_state_size(blob.data(), blob.size()) / 8 + 8, 0);
        security::LoadError e = engine.load(blob.data(), blob.size(), state.data(), state.size() * 8);
        if (e != security::LoadError::None)
            return make_error(EINVAL, std::string("the compiled policy cannot be loaded: ") + security::describe(e));
        return {};
    }
};

// The bundle directory's policy sources, compiled (empty without [policy]).
Result<std::vector<uint8_t>> compile_dir_policy(const std::string& dir, const pkg::BundleConfig& config) {
    if (!config.has_policy)
        return std::vector<uint8_t>{};
    std::vector<pkg::PolicySource> sources = KOS_TRY(pkg::read_policy_sources(dir, config));
    return bundle_policy_compiler()(config, sources);
}

// Everything before the VM: the bundle's config and rootfs, the program
// check, and the boot image. A packed bundle (a file) is opened and
// verified by pkg (digests always, the signature when a trust key is
// configured) and only its verified bytes are used; a bundle directory is
// read as it is.
// `scratch`: give the VM a private writable /tmp (kos run; not for images
// other VMMs boot, which have no file service).
std::expected<Prepared, Failure> prepare_boot_image(const RunArgs& a, bool scratch) {
    auto fail = [](int status, std::string msg) { return std::unexpected(Failure{status, std::move(msg)}); };
    std::string config_path = a.bundle + "/" + pkg::kConfigFileName;
    std::optional<pkg::BundleConfig> config;
    std::vector<uint8_t> rootfs_bytes;
    std::span<const uint8_t> rootfs;
    std::optional<pkg::RunnableBundle> packed;
    std::vector<uint8_t> policy;
    struct stat st{};
    if (::stat(a.bundle.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        pkg::TrustOptions trust = pkg::default_trust_options();
        trust.policy_compiler = bundle_policy_compiler();
        auto rb = pkg::open_bundle_for_run(a.bundle, trust);
        if (!rb)
            return fail(kExitKosError, rb.error().message);
        packed = std::move(*rb);
        config = packed->config;
        config_path = a.bundle + ":" + pkg::kConfigFileName;
        rootfs = packed->rootfs;
        policy = packed->compiled_policy;
    } else {
        auto text = read_text_file(config_path);
        if (!text) {
            if (text.error().code == ENOENT || text.error().code == ENOTDIR)
                return fail(kExitKosError, a.bundle + ": not a bundle directory (no " +
                                               pkg::kConfigFileName + "; see docs/bundle-format.md)");
            return fail(kExitKosError, text.error().message);
        }
        auto parsed = pkg::parse_bundle_config(*text, config_path);
        if (!parsed)
            return fail(kExitKosError, parsed.error().message);
        config = std::move(*parsed);
        // No bundle runs without its behavior config (DESIGN.md principle 9).
        if (auto ok = pkg::require_behavior_config(*config, config_path); !ok)
            return fail(kExitKosError, ok.error().message);
        pkg::RootfsBuildOptions opts;
        // With [labels], every file gets its label in the image, and a file
        // no rule matches refuses the run (ATTACKS.md 12).
        std::optional<pkg::LabelMatcher> matcher;
        if (config->has_labels) {
            matcher.emplace(config->labels);
            opts.labeler = [&](const std::string& path, uint32_t) { return matcher->label_for(path); };
        }
        auto built = pkg::build_rootfs_image(a.bundle + "/rootfs", opts);
        if (!built)
            return fail(kExitKosError, "bundle " + a.bundle + ": " + built.error().message);
        rootfs_bytes = std::move(*built);
        rootfs = rootfs_bytes;
        auto compiled = compile_dir_policy(a.bundle, *config);
        if (!compiled)
            return fail(kExitKosError, "bundle " + a.bundle + ": " + compiled.error().message);
        policy = std::move(*compiled);
    }

    vmm::LaunchSpec launch;
    const pkg::AppConfig& app = config->app;
    if (!a.args.empty()) {
        launch.argv = a.args;
    } else {
        launch.argv = app.entrypoint;
        launch.argv.insert(launch.argv.end(), app.args.begin(), app.args.end());
    }
    if (launch.argv.empty())
        return fail(kExitKosError, "nothing to run: " + config_path +
                                       " has no [app] entrypoint and no program was given after --");
    launch.env = app.env;
    for (const std::string& e : a.env) {
        // -e KEY=VALUE replaces the bundle's KEY.
        std::string key = e.substr(0, e.find('='));
        std::erase_if(launch.env, [&](const std::string& x) { return x.substr(0, x.find('=')) == key; });
        launch.env.push_back(e);
    }
    launch.cwd = app.workdir;
    launch.hostname = app.hostname;
    launch.uid = app.uid;
    launch.gid = app.gid;
    launch.flags = (a.trace ? abi::boot::kBootTrace : 0) | (a.stats ? abi::boot::kBootStats : 0);

    rfs::RootfsView view(rootfs.data(), rootfs.size());
    auto app_program = check_program(view, launch.argv[0]);
    if (!app_program)
        return fail(app_program.error().status, "cannot run " + app_program.error().message);

    // The init description: the app, then every [[process]], and the
    // [[channel]]s between them; nothing else will exist in the VM.
    // With a policy, the app's label (its [policy] domain) is in the init
    // description too, so the kernel mediates it like every other process.
    if (app.native || !config->processes.empty() || !config->channels.empty() || !policy.empty()) {
        std::string app_label = config->has_policy && !config->policy.domain.empty()
                                    ? config->policy.domain
                                    : std::string("app_t");
        launch.init.processes.push_back({"app", app_label, app.native, launch.argv, *app_program});
        for (const pkg::ProcessConfig& p : config->processes) {
            auto program = check_program(view, p.program[0]);
            if (!program)
                return fail(program.error().status, "cannot run process " + p.name + ": " + program.error().message);
            launch.init.processes.push_back({p.name, p.label, p.native, p.program, *program});
        }
        auto index_of = [&](const std::string& name) {
            for (uint32_t i = 0; i < launch.init.processes.size(); ++i)
                if (launch.init.processes[i].name == name)
                    return i;
            return 0u;
        };
        for (const pkg::ChannelConfig& c : config->channels) {
            uint32_t rights = 0;
            for (const std::string& r : c.rights)
                rights |= r == "call" ? abi::sys::kRightCall
                          : r == "transfer" ? abi::sys::kRightTransfer
                                            : abi::sys::kRightDuplicate;
            launch.init.channels.push_back(
                {c.name, index_of(c.client), index_of(c.server), c.interface_id, rights});
        }
    }

    // The kernel enforces the policy; checking labels and programs here too
    // turns a refused boot into an error that names the rule.
    HostPolicy host;
    if (!policy.empty()) {
        if (auto ok = host.load(policy); !ok)
            return fail(kExitKosError, ok.error().message);
        for (const vmm::InitProcessSpec& p : launch.init.processes) {
            uint32_t label = host.engine.find_label(p.label.data(), static_cast<uint32_t>(p.label.size()));
            if (label == security::kNone)
                return fail(kExitKosError, config_path + ": process " + p.name + " has label " + p.label +
                                               ", which the bundle's policy does not declare");
            const std::string& program = p.program.empty() ? p.argv.at(0) : p.program;
            security::FieldValue fv{0, reinterpret_cast<const uint8_t*>(program.data()),
                                    static_cast<uint32_t>(program.size())};
            security::Verdict v =
                host.engine.decide(security::Request{security::Kind::Execute, label, label, 0, 0, &fv, 1, 0});
            if (!v.allow)
                return fail(kExitCannotExecute, "the bundle's policy does not allow " + p.name + " (" + p.label +
                                                    ") to execute " + program + " [rule " +
                                                    policy::describe_rule(host.engine, v.rule) + "]");
        }
    }
    launch.policy = policy;

    // Volumes: -v resolved against the bundle's [volumes], then /tmp.
    auto volumes = pkg::resolve_volumes(*config, a.volumes);
    if (!volumes)
        return fail(kExitKosError, volumes.error().message);
    for (const pkg::VolumeMount& v : *volumes) {
        if (v.guest == "/tmp" || v.guest.starts_with("/tmp/"))
            return fail(kExitKosError, "volume " + pkg::describe(v) + ": /tmp is the VM's own scratch directory; "
                                       "choose a guest path outside /tmp");
        launch.volumes.push_back({v.guest, v.label, v.writable, false});
    }
    // The VM's /tmp: each label of its Linux processes gets its own, so /tmp
    // is no channel between domains.
    std::vector<std::string> scratch_labels;
    if (scratch) {
        for (const vmm::InitProcessSpec& p : launch.init.processes)
            if (!p.native && std::find(scratch_labels.begin(), scratch_labels.end(), p.label) == scratch_labels.end())
                scratch_labels.push_back(p.label);
        if (launch.init.processes.empty())
            scratch_labels.push_back("");
        for (const std::string& label : scratch_labels)
            launch.volumes.push_back({"/tmp", label, true, true});
    }
    // A personality server (posix-personality/servers): one task of the
    // kernel image's program, with a channel `channel` from each Linux
    // process of the init description.
    auto add_server = [&](const char* name, const char* label, std::vector<std::string> argv, const char* channel,
                          uint32_t interface_id) {
        uint32_t server = static_cast<uint32_t>(launch.init.processes.size());
        for (uint32_t i = 0; i < server; ++i)
            if (!launch.init.processes[i].native)
                launch.init.channels.push_back({channel, i, server, interface_id, abi::sys::kRightCall});
        launch.init.processes.push_back({name, label, true, std::move(argv), ""});
    };
    // Labeled volumes are the VFS server's (posix-personality/servers): the
    // app's calls that name a path in one are vfs.File requests to vfs_t,
    // judged by the policy, over a channel "vfs". Without vfs_t in the
    // policy there is no server and every such call is refused.
    if (!volumes->empty() && !policy.empty()) {
        if (host.engine.find_label(kVfsLabel, sizeof kVfsLabel - 1) == security::kNone) {
            std::fprintf(stderr, "kos: note: %s\n",
                         pkg::no_vfs_server_note(volumes->front(), volumes->size(), launch.init.processes[0].label,
                                                 kVfsLabel)
                             .c_str());
        } else {
            add_server("vfs-server", kVfsLabel, {abi::sys::kVfsServerProgram}, "vfs", kVfsInterface);
        }
    }
    // The bundle's declared pipes: entries of the volume table after the
    // volumes, served by the pipe server (pipe_t) over a channel "pipe".
    if (!config->pipes.empty()) {
        auto nests = [](const std::string& a, const std::string& b) {
            return a == b || a.starts_with(b + "/") || b.starts_with(a + "/");
        };
        for (const pkg::PipeConfig& p : config->pipes) {
            // Its directory is the rootfs's; the name is the pipe's alone.
            std::string parent = p.path.substr(0, p.path.rfind('/'));
            if (parent.empty())
                parent = "/";
            int64_t dir = view.find(parent.data(), parent.size());
            if (dir < 0 || (view.entry(static_cast<uint32_t>(dir)).mode & rfs::kTypeMask) != rfs::kTypeDir)
                return fail(kExitKosError, p.where + ": [[pipe]] " + p.path + ": its directory " + parent +
                                               " is not a directory of the rootfs; add it to the bundle");
            if (view.find(p.path.data(), p.path.size()) >= 0)
                return fail(kExitKosError, p.where + ": [[pipe]] " + p.path +
                                               " is a file of the rootfs too; give the pipe a path of its own");
            for (const vmm::LaunchVolume& v : launch.volumes)
                if (nests(p.path, v.path))
                    return fail(kExitKosError, p.where + ": [[pipe]] " + p.path + " and the volume at " + v.path +
                                                   " overlap; give the pipe a path of its own");
        }
        if (launch.volumes.size() + config->pipes.size() > abi::file::kMaxVolumes || config->pipes.size() > 31)
            return fail(kExitKosError, config_path + ": too many volumes and pipes (at most " +
                                           std::to_string(abi::file::kMaxVolumes) + " together, 31 pipes)");
        // In the table either way: without the server, opening one is EACCES.
        std::vector<std::string> argv = {abi::sys::kPipeServerProgram};
        for (const pkg::PipeConfig& p : config->pipes) {
            launch.volumes.push_back({p.path, p.label, false, false, true});
            argv.push_back(p.path + " " + p.label);
        }
        if (policy.empty() || host.engine.find_label(kPipeLabel, sizeof kPipeLabel - 1) == security::kNone) {
            std::fprintf(stderr,
                         "kos: note: the bundle's policy declares no %s, the label of the pipe server, so opening "
                         "%s fails (EACCES); declare `domain %s` and allow `request DOMAIN -> %s pipe.Pipe.open`, "
                         "`response %s -> DOMAIN pipe.Pipe.open` and `security DOMAIN -> LABEL pipe.{read, write}`\n",
                         kPipeLabel, config->pipes.front().path.c_str(), kPipeLabel, kPipeLabel, kPipeLabel);
        } else {
            add_server("pipe-server", kPipeLabel, std::move(argv), "pipe", kPipeInterface);
        }
    }
    // Signals between the bundle's Linux processes of different labels are
    // the process server's: proc.Process.kill requests to proc_t, then
    // `security SENDER -> TARGET process.signal`. Without proc_t they stay
    // within each process's own tree (EPERM across).
    size_t linux_processes = std::count_if(launch.init.processes.begin(), launch.init.processes.end(),
                                           [](const vmm::InitProcessSpec& p) { return !p.native; });
    if (linux_processes > 1 && !policy.empty() &&
        host.engine.find_label(kProcLabel, sizeof kProcLabel - 1) != security::kNone)
        add_server("proc-server", kProcLabel, {abi::sys::kProcServerProgram}, "proc", kProcInterface);
    // A volume the policy lets the program neither read nor write is
    // attached but useless: say so, and what rule would change that (the
    // process backend says the same).
    if (!volumes->empty() && !policy.empty()) {
        const std::string& domain = config->policy.domain;
        uint32_t subject = host.engine.find_label(domain.data(), static_cast<uint32_t>(domain.size()));
        uint32_t cls = host.engine.find_class("file", 4);
        auto allows = [&](const std::string& label, const char* perm) {
            uint32_t p = cls == security::kNone ? security::kNone
                                                : host.engine.find_perm(cls, perm, static_cast<uint32_t>(std::strlen(perm)));
            uint32_t l = host.engine.find_label(label.data(), static_cast<uint32_t>(label.size()));
            return p != security::kNone && l != security::kNone && subject != security::kNone &&
                   host.engine.decide(security::Request{security::Kind::Security, subject, l, cls, p, nullptr, 0, 0}).allow;
        };
        for (const pkg::VolumeMount& v : *volumes)
            if (!allows(v.label, "read") && !allows(v.label, "write"))
                std::fprintf(stderr,
                             "kos: note: volume %s: the bundle's policy lets %s neither read nor write it, so "
                             "every access fails (EACCES); to use it, add `allow security %s -> %s file.read`%s "
                             "to the bundle's policy%s\n",
                             pkg::describe(v).c_str(), domain.c_str(), domain.c_str(), v.label.c_str(),
                             v.writable ? " (and `file.write` to write)" : "",
                             cls == security::kNone ? "; it declares no class file, so also declare "
                                                      "class file { read: read, write: write }"
                                                    : "");
    }

    auto image = vmm::build_boot_image(launch, rootfs);
    if (!image)
        return fail(kExitKosError, image.error().message);
    return Prepared{std::move(*image), config->limits, std::move(policy), std::move(*volumes), scratch,
                    std::move(scratch_labels)};
}

int run_command(const RunArgs& a) {
    // auto: the VM when /dev/kvm is usable, else the host-process backend.
    if (a.backend == "process" || (a.backend == "auto" && !vmm::kvm_usable())) {
        proc::BackendRequest req;
        req.bundle = a.bundle;
        req.args = a.args;
        req.stats = a.stats;
        req.best_effort = a.best_effort;
        req.timeout_s = a.timeout_s < 0 ? 0 : a.timeout_s;
        req.publish = a.publish;
        req.audit_log = audit_log_path(a);
        if (!a.volumes.empty()) { // -v, resolved against the bundle's [volumes] (pkg/volumes.h)
            auto volumes = [&]() -> Result<std::vector<pkg::VolumeMount>> {
                std::string path = a.bundle + "/" + pkg::kConfigFileName;
                std::string text = KOS_TRY(read_text_file(path));
                return pkg::resolve_volumes(KOS_TRY(pkg::parse_bundle_config(text, path)), a.volumes);
            }();
            if (!volumes) {
                report(Failure{kExitKosError, volumes.error().message});
                return kExitKosError;
            }
            req.volumes = std::move(*volumes);
        }
        proc::BackendResult result;
        req.result = &result;
        if (!a.env.empty() || a.memory_mib || a.output_limit_mib || a.cpu_time_s >= 0 || a.cpus) {
            std::fprintf(stderr, "kos: -e, --memory, --output-limit, --cpu-time and --cpus apply to the VM backend only; "
                                 "the process backend takes them from the bundle's config\n");
            return kExitKosError;
        }
        int status = proc::run_bundle(req);
        instances::note_limit(result.limit_hit);
        if (result.signaled)
            instances::note_program_signal(result.value);
        return status;
    }
    std::vector<vmm::PublishedPort> publish;
    for (const std::string& p : a.publish) {
        auto port = vmm::parse_published_port(p);
        if (!port) {
            std::fprintf(stderr, "kos: %s\n", port.error().message.c_str()); // names the -p value
            return kExitKosError;
        }
        publish.push_back(*port);
    }
    auto start = std::chrono::steady_clock::now();
    auto prepared = prepare_boot_image(a, true);
    if (!prepared) {
        report(prepared.error());
        return prepared.error().status;
    }
    uint64_t prepare_ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count());
    // Limits: the command line, else the bundle's [limits], else defaults.
    const pkg::LimitsConfig& limits = prepared->limits;
    vmm::VmOptions vm;
    vm.kernel_elf = vmm::embedded_guest_image();
    vm.boot_image = std::move(prepared->boot_image);
    vm.ram_bytes = a.memory_mib ? a.memory_mib << 20
                   : limits.memory_bytes ? (limits.memory_bytes + 0xfffff) & ~uint64_t{0xfffff}
                                         : 256ull << 20;
    vm.output_limit = a.output_limit_mib ? a.output_limit_mib << 20
                      : limits.output_bytes ? limits.output_bytes
                                            : 1ull << 30;
    vm.wall_timeout_ms = a.timeout_s >= 0 ? static_cast<uint64_t>(a.timeout_s * 1000) : limits.wall_time_ms;
    vm.cpu_time_ms = a.cpu_time_s >= 0 ? static_cast<uint64_t>(a.cpu_time_s * 1000) : limits.cpu_time_ms;
    vm.cpus = vm_cpus(a.cpus, limits.vcpus);
    vm.jail = true;

    // Audit records from the guest: one line each on stderr (the first 100),
    // every record as a JSON line in the audit log.
    HostPolicy host;
    int audit_fd = -1;
    if (!prepared->policy.empty()) {
        if (auto ok = host.load(prepared->policy); !ok) {
            report({kExitKosError, ok.error().message});
            return kExitKosError;
        }
        std::string path = audit_log_path(a);
        if (!path.empty()) {
            audit_fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
            if (audit_fd < 0)
                std::fprintf(stderr, "kos: warning: cannot open the audit log %s: %s; records go to stderr only\n",
                             path.c_str(), std::strerror(errno));
        }
        vm.audit_fd = audit_fd;
        vm.audit = [&host, audit_fd, lines = 0](std::span<const uint8_t> bytes) mutable {
            security::AuditRecord rec;
            std::memcpy(&rec, bytes.data(), sizeof rec);
            if (lines < 100)
                std::fprintf(stderr, "%s\n", policy::render_audit_human(host.engine, rec).c_str());
            else if (lines == 100)
                std::fprintf(stderr, "kos: more audit records than shown; all are in the audit log\n");
            ++lines;
            if (audit_fd >= 0) {
                std::string line = policy::render_audit_json(host.engine, rec) + "\n";
                (void)write_all(audit_fd, line.data(), line.size(), "audit log");
            }
        };
    }
    // The network service runs when the policy can allow a socket (it
    // declares the network's label) or ports are published; it checks every
    // connect and bind against the same policy as the guest kernel.
    vm.publish = std::move(publish);
    vm.network = !vm.publish.empty() ||
                 (!prepared->policy.empty() &&
                  host.engine.find_label(security::kNetLabel, sizeof security::kNetLabel - 1) != security::kNone);
    vm.policy = prepared->policy;
    // Volumes: each host directory opened now, without following symlinks
    // (ATTACKS.md 26); the file service works beneath these descriptors only.
    for (const pkg::VolumeMount& v : prepared->volumes) {
        auto fd = pkg::open_volume_host_dir(v);
        if (!fd) {
            report({kExitKosError, fd.error().message});
            return kExitKosError;
        }
        vm.volumes.push_back({std::move(*fd), v.guest, v.label, v.writable, false, 0});
    }
    if (prepared->scratch) {
        auto dir = cli::make_scratch_dir();
        for (const std::string& label : prepared->scratch_labels) {
            // One directory per label (labels are [A-Za-z_][A-Za-z0-9_.:-]*).
            std::string path = dir ? (label.empty() ? *dir : *dir + "/" + label) : std::string();
            int fd = dir && (label.empty() || ::mkdir(path.c_str(), 0700) == 0)
                         ? ::open(path.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                         : -1;
            if (fd < 0) {
                report({kExitKosError, dir ? "cannot make the VM's /tmp " + path + ": " + std::strerror(errno)
                                           : dir.error().message});
                return kExitKosError;
            }
            vm.volumes.push_back({UniqueFd(fd), "/tmp", label, true, true, cli::kScratchQuotaBytes});
        }
    }
    auto outcome = vmm::run_vm(std::move(vm));
    if (audit_fd >= 0)
        ::close(audit_fd);
    if (!outcome) {
        report({kExitKosError, outcome.error().message});
        // The VMM's limit errors (kvm-host/vmm.cc), for the instance record,
        // worded as the process backend's.
        if (outcome.error().code == ETIMEDOUT)
            instances::note_limit(a.timeout_s >= 0 ? "wall-time limit (--timeout)" : "wall-time limit ([limits] wall_time)");
        else if (outcome.error().code == EDQUOT)
            instances::note_limit(a.cpu_time_s >= 0 ? "CPU-time limit (--cpu-time)" : "CPU-time limit ([limits] cpu_time)");
        else if (outcome.error().code == EFBIG)
            instances::note_limit(a.output_limit_mib ? "output limit (--output-limit)"
                                  : limits.output_bytes ? "output limit ([limits] output)"
                                                        : "output limit (1 GiB by default)");
        return kExitKosError;
    }
    if (a.stats)
        std::fprintf(stderr, "kos: bundle prepared in %.2f ms, VM set up in %.2f ms, ran %.2f ms, %llu VM exits; VMM jail: %s\n",
                     static_cast<double>(prepare_ns) / 1e6, static_cast<double>(outcome->setup_ns) / 1e6,
                     static_cast<double>(outcome->run_ns) / 1e6,
                     static_cast<unsigned long long>(outcome->exits), outcome->jail.c_str());
    if (outcome->out_of_memory)
        instances::note_limit(a.memory_mib         ? "memory limit (--memory)"
                              : limits.memory_bytes ? "memory limit ([limits] memory)"
                                                    : "memory limit (256 MiB by default)");
    if (outcome->kind == vmm::RunOutcome::Kind::Signaled) {
        instances::note_program_signal(outcome->value);
        return 128 + outcome->value;
    }
    return outcome->value;
}

// `kos image`: the guest image and a bundle's boot image as files, for
// standard VMMs: qemu-system-x86_64 -kernel DIR/kos-guest.elf -initrd
// DIR/boot.img (PVH boot).
int image_command(const RunArgs& a, const std::string& out_dir) {
    auto prepared = prepare_boot_image(a, false);
    if (!prepared) {
        report(prepared.error());
        return prepared.error().status;
    }
    const std::vector<uint8_t>* image = &prepared->boot_image;
    auto kernel = vmm::embedded_guest_image();
    if (auto r = write_file_atomic(out_dir + "/kos-guest.elf", kernel.data(), kernel.size(), 0644); !r) {
        report({kExitKosError, r.error().message});
        return kExitKosError;
    }
    if (auto r = write_file_atomic(out_dir + "/boot.img", image->data(), image->size(), 0644); !r) {
        report({kExitKosError, r.error().message});
        return kExitKosError;
    }
    std::printf("%s/kos-guest.elf\n%s/boot.img\n", out_dir.c_str(), out_dir.c_str());
    return 0;
}

} // namespace

void add_run_commands(CLI::App& app, Context& ctx) {
    auto args = std::make_shared<RunArgs>();
    CLI::App* run = app.add_subcommand("run", "Run a bundle in a KVM virtual machine");
    run->add_option("bundle", args->bundle,
                    "Bundle: a directory (bundle.toml + rootfs/) or a packed bundle file (kos pack)")
        ->required();
    run->add_option("args", args->args,
                    "Program path inside the rootfs and its arguments (after --); "
                    "default: the bundle's [app] entrypoint and args");
    run->add_flag("--trace", args->trace, "Print each Linux system call of the program to stderr");
    run->add_flag("--stats", args->stats, "Print timing and VM exit counts to stderr");
    run->add_option("--memory", args->memory_mib,
                    "Guest memory in MiB (default: the bundle's [limits] memory, else 256)")
        ->check(CLI::Range(16, 65536));
    run->add_option("-p,--publish", args->publish,
                    "Publish a port: [HOST_ADDR:]HOST_PORT:GUEST_PORT[/udp] (TCP unless /udp, which the VM "
                    "backend only takes; repeatable)")
        ->allow_extra_args(false);
    run->add_option("-v,--volume", args->volumes,
                    "Attach a host directory: HOST_DIR:GUEST_PATH[:ro|rw][,label=LABEL] or NAME=HOST_DIR for a "
                    "[volumes.NAME] of the bundle (repeatable)")
        ->allow_extra_args(false);
    run->add_option("-e,--env", args->env, "Set KEY=VALUE in the program's environment (repeatable)")
        ->allow_extra_args(false)
        ->check([](const std::string& v) {
            return v.find('=') == std::string::npos || v.front() == '='
                       ? std::string("must be KEY=VALUE")
                       : std::string();
        });
    run->add_option("--timeout", args->timeout_s,
                    "Stop the run after this many seconds of wall time (0: no limit; default: the "
                    "bundle's [limits] wall_time)")
        ->check(CLI::Range(0.0, 1e7));
    run->add_option("--cpus", args->cpus,
                    "Virtual CPUs of the VM, 1 to 8 (default: the bundle's [limits] vcpus, at most 8, "
                    "else 2, never more than the host has)")
        ->check(CLI::Range(1, 8));
    run->add_option("--cpu-time", args->cpu_time_s,
                    "Stop the run once the VM has used this many seconds of CPU time (0: no limit; "
                    "default: the bundle's [limits] cpu_time; checked every 0.5 s)")
        ->check(CLI::Range(0.0, 1e7));
    run->add_option("--output-limit", args->output_limit_mib,
                    "Stop the run when the program has written this many MiB (default: the "
                    "bundle's [limits] output, else 1024)")
        ->check(CLI::Range(1, 1 << 20));
    run->add_option("--backend", args->backend,
                    "vm: a KVM virtual machine; process: a sandboxed host process "
                    "(docs/process-backend.md); auto: vm when /dev/kvm is usable")
        ->check(CLI::IsMember({"vm", "process", "auto"}))
        ->capture_default_str();
    run->add_flag("--best-effort", args->best_effort,
                  "Process backend: run even when Landlock or cgroups cannot enforce everything");
    run->add_option("--audit-log", args->audit_log,
                    "Append the policy's audit records to FILE as JSON lines (default: "
                    "$XDG_STATE_HOME/kos/audit.jsonl, i.e. ~/.local/state/kos/audit.jsonl)");
    run->add_flag("--no-audit-log", args->no_audit_log, "Show audit records on stderr only");
    auto instance = std::make_shared<instances::RunOptions>();
    instances::add_run_options(run, *instance);
    run->callback([args, instance, &ctx] {
        if (ctx.has_passthrough)
            args->args.insert(args->args.end(), ctx.passthrough.begin(), ctx.passthrough.end());
        bool vm = args->backend == "vm" || (args->backend == "auto" && vmm::kvm_usable());
        instances::RunDescription d{args->bundle, vm ? "vm" : "process", args->args, audit_log_path(*args)};
        ctx.exit_status = instances::run(*instance, d, [&] { return run_command(*args); });
    });

    auto img_args = std::make_shared<RunArgs>();
    auto out_dir = std::make_shared<std::string>();
    CLI::App* image = app.add_subcommand(
        "image", "Write the guest image and a bundle's boot image for other VMMs (PVH boot)");
    image->add_option("bundle", img_args->bundle, "Bundle directory")->required();
    image->add_option("args", img_args->args, "Program and arguments (after --)");
    image->add_option("-o,--output", *out_dir, "Directory for kos-guest.elf and boot.img")
        ->required()
        ->check(CLI::ExistingDirectory);
    image->callback([img_args, out_dir, &ctx] {
        if (ctx.has_passthrough)
            img_args->args.insert(img_args->args.end(), ctx.passthrough.begin(), ctx.passthrough.end());
        ctx.exit_status = image_command(*img_args, *out_dir);
    });
}

} // namespace kos::cli
