#include "sandbox_spec.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <optional>

#include "kos/policy/audit_json.h"
#include "kos/policy/compiler.h"
#include "kos/support/file.h"
#include "pkg/bundle.h"
#include "pkg/bundle_config.h"
#include "pkg/label_matcher.h"
#include "kos/support/publish.h"
#include "sandbox_policy.h"

namespace kos::proc {
namespace {

// ATTACKS.md 12 / DESIGN.md principle 9: with [labels], every entry of the
// rootfs must have a label, or the bundle does not run. Walks without
// following symlinks; caps the walk like the packer does.
Result<size_t> check_labels(const std::string& rootfs, const std::vector<pkg::LabelRule>& rules,
                            const std::string& origin) {
    pkg::LabelMatcher matcher(rules);
    constexpr size_t kMaxEntries = 1'000'000;
    size_t count = 0;
    std::vector<std::string> todo = {""};
    while (!todo.empty()) {
        std::string rel = todo.back();
        todo.pop_back();
        DIR* d = ::opendir((rootfs + rel).c_str());
        if (!d)
            return make_error(errno, rootfs + rel + ": " + errno_string(errno));
        std::vector<std::string> subdirs;
        while (dirent* e = ::readdir(d)) {
            std::string name = e->d_name;
            if (name == "." || name == "..")
                continue;
            std::string path = rel + "/" + name;
            if (++count > kMaxEntries) {
                ::closedir(d);
                return make_error(EFBIG, "the bundle's rootfs has more than " + std::to_string(kMaxEntries) +
                                             " entries");
            }
            auto label = matcher.label_for(path);
            if (!label) {
                ::closedir(d);
                if (label.error().code == ENOENT)
                    return make_error(EACCES, "cannot run: " + path + " in the bundle's rootfs has no label "
                                              "(no rule of [labels] in " + origin + " matches it)");
                return make_error(label.error().code, origin + ": " + label.error().message);
            }
            struct stat st{};
            if (::lstat((rootfs + path).c_str(), &st) == 0 && S_ISDIR(st.st_mode))
                subdirs.push_back(path);
        }
        ::closedir(d);
        todo.insert(todo.end(), subdirs.rbegin(), subdirs.rend());
    }
    return count;
}

// The bundle directory's policy sources, read as pack and the VM backend
// read them (pkg::read_policy_sources), as the compiler takes them.
Result<std::vector<policy::MemorySource>> policy_memory_sources(const std::string& dir,
                                                                const pkg::BundleConfig& config) {
    std::vector<policy::MemorySource> out;
    for (pkg::PolicySource& s : KOS_TRY(pkg::read_policy_sources(dir, config)))
        out.push_back({std::move(s.name), std::string(s.bytes.begin(), s.bytes.end())});
    return out;
}

// One entry of the rootfs as the sandbox shows it (the top-level proc, dev
// and tmp are the sandbox's own mounts, so the rootfs's are not walked).
struct Node {
    std::string path; // inside the sandbox: "/bin/sh"
    enum class Type : uint8_t { Dir, File, Other } type = Type::Other;
    std::vector<size_t> children; // Dir: indices into the walk
    std::string label;            // with [labels]
};

Result<std::vector<Node>> walk_rootfs(const std::string& rootfs, const pkg::LabelMatcher* labels) {
    constexpr size_t kMaxEntries = 1'000'000;
    std::vector<Node> nodes;
    nodes.push_back({"/", Node::Type::Dir, {}, {}});
    for (size_t i = 0; i < nodes.size(); ++i) {
        if (labels)
            nodes[i].label = KOS_TRY(labels->label_for(nodes[i].path));
        if (nodes[i].type != Node::Type::Dir)
            continue;
        std::string dir = nodes[i].path == "/" ? "" : nodes[i].path;
        DIR* d = ::opendir((rootfs + dir).c_str());
        if (!d)
            return make_error(errno, rootfs + dir + ": " + errno_string(errno));
        std::vector<std::string> names;
        while (dirent* e = ::readdir(d)) {
            std::string name = e->d_name;
            if (name == "." || name == ".." || (dir.empty() && (name == "proc" || name == "dev" || name == "tmp")))
                continue;
            names.push_back(name);
        }
        ::closedir(d);
        std::sort(names.begin(), names.end());
        for (const std::string& name : names) {
            if (nodes.size() >= kMaxEntries)
                return make_error(EFBIG, "the bundle's rootfs has more than " + std::to_string(kMaxEntries) +
                                             " entries");
            Node n{dir + "/" + name, Node::Type::Other, {}, {}};
            struct stat st{};
            if (::lstat((rootfs + n.path).c_str(), &st) == 0)
                n.type = S_ISDIR(st.st_mode) ? Node::Type::Dir : S_ISREG(st.st_mode) ? Node::Type::File : Node::Type::Other;
            nodes[i].children.push_back(nodes.size());
            nodes.push_back(std::move(n));
        }
    }
    return nodes;
}

// Landlock rules for a per-entry property `has` (files, and directories
// themselves when `dir_counts`; other entries are neutral): one rule for a
// directory whose whole tree has it (and holds at least one entry that
// does), else one per file that has it. Fills `whole` for directories.
struct Summary {
    bool all = true;
    bool any = false;
};

Summary summarize(const std::vector<Node>& nodes, size_t i, const std::vector<char>& has, bool dir_counts,
                  std::vector<char>& whole) {
    const Node& n = nodes[i];
    if (n.type == Node::Type::Other)
        return {};
    if (n.type == Node::Type::File)
        return {has[i] != 0, has[i] != 0};
    Summary sum{!dir_counts || has[i] != 0, dir_counts && has[i] != 0};
    for (size_t c : n.children) {
        Summary t = summarize(nodes, c, has, dir_counts, whole);
        sum.all = sum.all && t.all;
        sum.any = sum.any || t.any;
    }
    whole[i] = sum.all && sum.any ? 1 : 0;
    return sum;
}

void emit_rules(const std::vector<Node>& nodes, size_t i, const std::vector<char>& has,
                const std::vector<char>& whole, std::vector<std::string>& out) {
    const Node& n = nodes[i];
    if (n.type == Node::Type::File && has[i])
        out.push_back(n.path);
    if (n.type != Node::Type::Dir)
        return;
    if (whole[i]) {
        out.push_back(n.path);
        return;
    }
    for (size_t c : n.children)
        emit_rules(nodes, c, has, whole, out);
}

// READ_DIR only, on the highest directories whose own label and every
// directory beneath are readable (listing names, not reading contents).
void emit_list_rules(const std::vector<Node>& nodes, size_t i, const std::vector<char>& dirs_ok,
                     const std::vector<char>& whole_read, std::vector<std::string>& out) {
    if (nodes[i].type != Node::Type::Dir || whole_read[i])
        return; // read rules cover it
    if (dirs_ok[i]) {
        out.push_back(nodes[i].path);
        return;
    }
    for (size_t c : nodes[i].children)
        emit_list_rules(nodes, c, dirs_ok, whole_read, out);
}

bool dirs_readable(const std::vector<Node>& nodes, size_t i, const std::vector<char>& readable,
                   std::vector<char>& dirs_ok) {
    bool all = readable[i] != 0;
    for (size_t c : nodes[i].children)
        if (nodes[c].type == Node::Type::Dir)
            all = dirs_readable(nodes, c, readable, dirs_ok) && all;
    dirs_ok[i] = all ? 1 : 0;
    return all;
}

// With a compiled policy: the entrypoint check, the executable set and the
// label-narrowed readable set (docs/process-backend.md).
Result<void> apply_policy(SandboxSpec& s, const std::string& dir, const pkg::BundleConfig& config,
                          const std::string& program) {
    auto sources = KOS_TRY(policy_memory_sources(dir, config));
    auto blob = policy::compile_bundle_policy(config.policy.domain, sources);
    if (!blob)
        return make_error(EINVAL, "bundle " + dir + ": compiling the bundle's policy: " + blob.error().message);
    auto loaded = SandboxPolicy::load(*blob, config.policy.domain);
    if (!loaded)
        return make_error(EINVAL, s.origin + ": " + loaded.error().message);
    SandboxPolicy& pol = **loaded;

    // The program itself, before anything runs (the VM backend checks it
    // before boot and names the rule the same way).
    PolicyDecision start = pol.decide_execute(program, 0);
    if (!start.verdict.allow)
        return make_error(EACCES, "the bundle's policy does not allow app (" + config.policy.domain +
                                      ") to execute " + program + " [rule " +
                                      policy::describe_rule(pol.engine(), start.verdict.rule) + "]");

    std::optional<pkg::LabelMatcher> matcher;
    if (config.has_labels)
        matcher.emplace(config.labels);
    auto nodes = KOS_TRY(walk_rootfs(s.rootfs, matcher ? &*matcher : nullptr));

    // Executable: every regular file the policy allows to execute, and the
    // ELF interpreters of those (the kernel opens them for execute too).
    std::vector<char> exec(nodes.size(), 0), whole(nodes.size(), 0);
    size_t allowed = 0;
    std::vector<std::string> interps;
    for (size_t i = 0; i < nodes.size(); ++i) {
        if (nodes[i].type != Node::Type::File)
            continue;
        pol.restart();
        if (!pol.decide_execute(nodes[i].path, 0).verdict.allow)
            continue;
        exec[i] = 1;
        ++allowed;
        // Not an ELF file (a script) or a malformed one: no interpreter.
        auto interp = elf_interpreter(s.rootfs, nodes[i].path);
        std::optional<std::string> name = interp ? *interp : std::nullopt;
        if (name)
            if (auto ri = resolve_in_rootfs(s.rootfs, *name); ri)
                interps.push_back(*ri);
    }
    summarize(nodes, 0, exec, false, whole); // a directory is executable through its files only
    s.execs.clear();
    emit_rules(nodes, 0, exec, whole, s.execs);
    for (const std::string& i : interps)
        if (std::find(s.execs.begin(), s.execs.end(), i) == s.execs.end())
            s.execs.push_back(i);
    s.report.push_back("execute: " + std::to_string(allowed) + " file(s) of the rootfs allowed by the policy, " +
                       std::to_string(s.execs.size()) + " Landlock EXECUTE rule(s) with their ELF interpreters");

    // Readable: with class file and [labels], only entries whose label the
    // policy lets the domain read (security DOMAIN -> L file.read).
    if (pol.has_file_class() && matcher) {
        std::map<std::string, bool> read_of, write_of;
        std::vector<char> readable(nodes.size(), 0), whole_read(nodes.size(), 0), dirs_ok(nodes.size(), 0);
        for (size_t i = 0; i < nodes.size(); ++i) {
            auto [it, fresh] = read_of.try_emplace(nodes[i].label, false);
            if (fresh) {
                pol.restart();
                it->second = pol.allows_file(nodes[i].label, "read");
                pol.restart();
                write_of[nodes[i].label] = pol.allows_file(nodes[i].label, "write");
            }
            readable[i] = it->second ? 1 : 0;
        }
        summarize(nodes, 0, readable, true, whole_read);
        dirs_readable(nodes, 0, readable, dirs_ok);
        s.read_paths.clear();
        emit_rules(nodes, 0, readable, whole_read, s.read_paths);
        emit_list_rules(nodes, 0, dirs_ok, whole_read, s.list_paths);
        if (!whole_read[0])
            s.read_paths.push_back("/proc"); // the sandbox's own /proc
        std::string can, cannot, writable;
        for (const auto& [label, ok] : read_of)
            (ok ? can : cannot) += (ok ? can : cannot).empty() ? label : ", " + label;
        for (const auto& [label, ok] : write_of)
            if (ok)
                writable += writable.empty() ? label : ", " + label;
        s.report.push_back("read: labels " + (can.empty() ? std::string("(none)") : can) + "; not readable: " +
                           (cannot.empty() ? std::string("(none)") : cannot) + "; " +
                           std::to_string(s.read_paths.size() + s.list_paths.size()) + " Landlock read rule(s)");
        if (!writable.empty())
            s.report.push_back("write: the policy allows file.write on " + writable +
                               ", but the rootfs is read-only in this backend");
    } else if (pol.has_file_class()) {
        s.report.push_back("read: the policy declares class file, but the bundle has no [labels]: the whole rootfs "
                           "stays readable");
    } else {
        s.report.push_back("read: the policy declares no class file with a read permission: the whole rootfs "
                           "stays readable");
    }
    size_t rules = s.execs.size() + s.read_paths.size() + s.list_paths.size();
    if (rules > kMaxLandlockPathRules)
        return make_error(EFBIG, s.origin + ": the bundle's policy and labels need " + std::to_string(rules) +
                                     " Landlock path rules (at most " + std::to_string(kMaxLandlockPathRules) +
                                     "); give whole directories one label, or allow whole directories to execute");

    if (!pol.declares_net_label())
        s.report.push_back(std::string("network: the policy does not declare ") + kNetLabel +
                           ": every IP connect and bind is denied (rule unknown)");
    if (!config.network.listen.empty() || !config.network.connect.empty())
        s.notes.push_back("[network] in " + s.origin + " is not used for verdicts: the bundle's policy decides "
                          "(request " + config.policy.domain + " -> " + kNetLabel + " net.Socket.connect/bind)");
    s.policy = std::move(*blob);
    std::string files;
    for (const auto& src : sources)
        files += (files.empty() ? "" : ", ") + src.name;
    s.policy_files = files;
    s.report.insert(s.report.begin(), "verdicts: the compiled bundle policy (" + files + ") through the security engine, "
                                      "domain " + config.policy.domain);
    return {};
}

// ---- volumes ----------------------------------------------------------------

// `path` is `dir` or lies beneath it ("/" holds everything).
bool at_or_under(const std::string& path, const std::string& dir) {
    if (dir == "/")
        return true;
    return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}

std::string child_path(const std::string& dir, const std::string& name) {
    return (dir == "/" ? "" : dir) + "/" + name;
}

// The entries of directory `dir` as the sandbox shows them before any
// volume is mounted: the rootfs's (its top-level proc, dev and tmp replaced
// by the sandbox's own) and the directories created for volume mount points.
std::vector<std::string> sandbox_children(const SandboxSpec& s, const std::string& dir) {
    std::vector<std::string> names;
    struct stat st{};
    if (::lstat((s.rootfs + (dir == "/" ? "" : dir)).c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        if (DIR* d = ::opendir((s.rootfs + (dir == "/" ? "" : dir)).c_str())) {
            while (dirent* e = ::readdir(d)) {
                std::string name = e->d_name;
                if (name == "." || name == ".." || (dir == "/" && (name == "proc" || name == "dev" || name == "tmp")))
                    continue;
                names.push_back(name);
            }
            ::closedir(d);
        }
    if (dir == "/")
        names.insert(names.end(), {"proc", "dev", "tmp"});
    for (const SandboxVolume& v : s.volumes) {
        if (!v.create_mount_point || v.mount.guest == dir || !at_or_under(v.mount.guest, dir))
            continue;
        size_t start = dir == "/" ? 1 : dir.size() + 1;
        std::string next = v.mount.guest.substr(start, v.mount.guest.find('/', start) - start);
        if (std::find(names.begin(), names.end(), next) == names.end())
            names.push_back(next);
    }
    std::sort(names.begin(), names.end());
    return names;
}

// Rewrites one rule path so that it reaches into no volume it would give
// more than the policy does: dropped at or beneath any mount point (the
// volume hides what was there, and a rule opened there would land on the
// volume), split into its entries when the mount point of a volume that
// `guards` lies beneath it (Landlock's rights reach everything beneath a
// rule, across mounts).
template <class Guards>
void carve_rule(const SandboxSpec& s, const std::string& path, const Guards& guards, std::vector<std::string>& out) {
    bool above = false;
    for (const SandboxVolume& v : s.volumes) {
        if (at_or_under(path, v.mount.guest))
            return;
        above = above || (guards(v) && at_or_under(v.mount.guest, path));
    }
    if (!above) {
        out.push_back(path);
        return;
    }
    for (const std::string& name : sandbox_children(s, path))
        carve_rule(s, child_path(path, name), guards, out);
}

template <class Guards>
void carve_rules(const SandboxSpec& s, std::vector<std::string>& rules, const Guards& guards) {
    std::vector<std::string> out;
    for (const std::string& r : rules)
        carve_rule(s, r, guards, out);
    rules = std::move(out);
}

// Where the volume is mounted: over a directory of the rootfs, or on
// directories created in the root tmpfs when its top-level name is not in
// the rootfs. Components are checked without following symlinks (the
// sandbox opens the mount point the same way, RESOLVE_NO_SYMLINKS).
Result<bool> mount_point_is_created(const SandboxSpec& s, const pkg::VolumeMount& v) {
    const std::string& g = v.guest;
    std::string top = g.substr(0, g.find('/', 1));
    if (top == "/tmp")
        return make_error(EINVAL, "volume " + pkg::describe(v) + ": /tmp is the sandbox's own tmpfs in the process "
                                  "backend; choose a guest path outside /tmp");
    struct stat st{};
    if (::lstat((s.rootfs + top).c_str(), &st) != 0) {
        if (errno == ENOENT)
            return true;
        return make_error(errno, "volume " + pkg::describe(v) + ": " + s.rootfs + top + ": " + errno_string(errno));
    }
    size_t pos = 0;
    std::string part;
    while (pos < g.size()) {
        size_t next = g.find('/', pos + 1);
        part = g.substr(0, next);
        if (::lstat((s.rootfs + part).c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
            if (::lstat((s.rootfs + part).c_str(), &st) == 0 && S_ISLNK(st.st_mode))
                return make_error(EINVAL, g + ": " + part + " is a symlink in the bundle's rootfs, and mount points "
                                          "are not reached through symlinks; mount at the directory it names, or "
                                          "choose a path outside the rootfs's directories");
            if (part == top)
                return make_error(EINVAL, g + ": " + top + " is a file of the bundle's rootfs, not a directory; "
                                          "choose a path outside the rootfs's directories");
            return make_error(EINVAL, g + ": " + top + " is part of the bundle's rootfs and has no directory " +
                                          g.substr(top.size() + 1) + "; create the mount point in the bundle or "
                                          "choose a path outside the rootfs's directories");
        }
        pos = next == std::string::npos ? g.size() : next;
    }
    return false;
}

} // namespace

Result<void> add_volumes(SandboxSpec& s, const std::vector<pkg::VolumeMount>& volumes) {
    if (volumes.empty())
        return {};
    std::unique_ptr<SandboxPolicy> pol;
    if (!s.policy.empty())
        pol = KOS_TRY(SandboxPolicy::load(s.policy, s.domain));
    for (const pkg::VolumeMount& m : volumes) {
        SandboxVolume v;
        v.mount = m;
        v.create_mount_point = KOS_TRY(mount_point_is_created(s, m));
        auto program = resolve_in_rootfs(s.rootfs, s.argv[0]);
        if (at_or_under(s.argv[0], m.guest) || (program && at_or_under(*program, m.guest)))
            return make_error(EINVAL, "volume " + pkg::describe(m) + " would hide the program " + s.argv[0] +
                                          " of the bundle's rootfs; choose another guest path");
        if (pol) {
            pol->restart();
            v.readable = pol->allows_file(m.label, "read");
            pol->restart();
            v.writable = m.writable && pol->allows_file(m.label, "write");
        } else {
            v.readable = true;
            v.writable = m.writable;
        }
        s.volumes.push_back(std::move(v));
    }
    // Read and list rules grant nothing a readable volume lacks; write rules
    // (every right but execute and devices) and execute rules grant more
    // than any volume gets.
    size_t before = s.read_paths.size() + s.list_paths.size() + s.write_paths.size() + s.execs.size();
    // Under a policy the supervisor performs every call on a volume path,
    // so no rule may reach into any volume.
    s.volumes_by_supervisor = pol != nullptr;
    // The directories above a mount point lose their read and list rules
    // below; whether each could be listed is decided here, by the rules as
    // the labels made them, before that.
    s.listable_dirs.clear();
    if (s.volumes_by_supervisor) {
        auto listed = [&](const std::string& dir) {
            for (const auto* rules : {&s.read_paths, &s.list_paths})
                for (const std::string& r : *rules)
                    if (at_or_under(dir, r))
                        return true;
            return false;
        };
        for (const SandboxVolume& v : s.volumes) {
            std::string dir = v.mount.guest;
            while (dir != "/") {
                size_t slash = dir.rfind('/');
                dir = slash == 0 ? "/" : dir.substr(0, slash);
                bool in_volume = false;
                for (const SandboxVolume& w : s.volumes)
                    in_volume = in_volume || at_or_under(dir, w.mount.guest);
                if (!in_volume && listed(dir) &&
                    std::find(s.listable_dirs.begin(), s.listable_dirs.end(), dir) == s.listable_dirs.end())
                    s.listable_dirs.push_back(dir);
            }
        }
    }
    auto unreadable = [&](const SandboxVolume& v) { return !v.readable || s.volumes_by_supervisor; };
    auto every = [](const SandboxVolume&) { return true; };
    carve_rules(s, s.read_paths, unreadable);
    carve_rules(s, s.list_paths, unreadable);
    carve_rules(s, s.write_paths, every);
    carve_rules(s, s.execs, every);
    size_t rules = s.execs.size() + s.read_paths.size() + s.list_paths.size() + s.write_paths.size() + s.volumes.size();
    if (rules - s.volumes.size() != before)
        s.report.push_back("volumes: the rootfs's Landlock rules around the mount points are now " +
                           std::to_string(rules - s.volumes.size()) + " (were " + std::to_string(before) +
                           (s.volumes_by_supervisor ? "): none reaches into a volume"
                                                    : "): none reaches into a volume the policy does not let the "
                                                      "program read"));
    if (rules > kMaxLandlockPathRules)
        return make_error(EFBIG, s.origin + ": the volumes split the rootfs's Landlock rules into " +
                                     std::to_string(rules) + " path rules (at most " +
                                     std::to_string(kMaxLandlockPathRules) + "); mount the volumes outside the "
                                     "rootfs's directories, or give whole directories one label");

    // Without vfs_t there is no VFS server to ask: every path in a volume
    // is refused, as under the VM backend, which says it in these words.
    if (pol && !pol->declares_vfs_label()) {
        s.notes.push_back(pkg::no_vfs_server_note(s.volumes.front().mount, s.volumes.size(), s.domain, kVfsLabel));
    } else if (pol && !pol->knows_vfs_interface()) {
        s.notes.push_back("the bundle's policy declares " + std::string(kVfsLabel) + " but does not include vfs.kidl, "
                          "so every path in the volumes fails (EACCES); add `idl \"vfs.kidl\"` to it (" +
                          s.policy_files + ")");
    }
    if (s.volumes_by_supervisor)
        s.report.push_back("volumes: every call naming a path in a volume is judged by the policy (request " +
                           s.domain + " -> " + kVfsLabel + " vfs.File.*, then the volume's label) and performed by "
                           "the supervisor; Landlock grants the program nothing beneath a volume");
    for (const SandboxVolume& v : s.volumes) {
        const pkg::VolumeMount& m = v.mount;
        std::string access = v.readable && v.writable ? "read and write"
                             : v.readable             ? "read"
                             : v.writable             ? "write (not read)"
                                                      : "no access";
        std::string why;
        if (pol) {
            why = std::string("file.read ") + (v.readable ? "allowed" : "denied");
            if (m.writable)
                why += std::string(", file.write ") + (v.writable ? "allowed" : "denied");
        } else {
            why = "no compiled policy: the spec allows what the volume's access allows";
        }
        s.report.push_back("volume " + pkg::describe(m) + ": " + access + " (" + why + "); mounted " +
                           (v.writable ? "" : "read-only, ") + "nosuid, nodev, noexec " +
                           (v.create_mount_point ? "on directories created in the root tmpfs"
                                                 : "over the rootfs's directory " + m.guest));
        if (!v.readable && !v.writable && pol) {
            std::string rule = "allow security " + s.domain + " -> " + m.label + " file.read";
            std::string where = "the bundle's policy (" + s.policy_files + ")";
            std::string extra;
            if (!pol->has_file_class())
                extra = "; it declares no class file, so also declare class file { read: read, write: write, "
                        "execute: read }";
            else if (!pol->declares_label(m.label))
                extra = "; it does not declare " + m.label + ", so also declare it (resource " + m.label + ")";
            s.notes.push_back("volume " + pkg::describe(m) + ": the bundle's policy lets " + s.domain +
                              " neither read nor write it, so it is mounted but inaccessible; to use it, add `" +
                              rule + "`" + (m.writable ? " (and `file.write` to write)" : "") + " to " + where +
                              extra);
        }
    }
    return {};
}

Result<std::vector<NetRule>> parse_host_rule(const std::string& host, const std::string& at) {
    std::vector<NetRule> out;
    NetRule r;
    if (host == "*") {
        r.any_addr = true;
        out.push_back(r);
        return out;
    }
    if (host == "localhost") {
        auto v4 = KOS_TRY(parse_host_rule("127.0.0.0/8", at));
        auto v6 = KOS_TRY(parse_host_rule("::1", at));
        out.push_back(v4[0]);
        out.push_back(v6[0]);
        return out;
    }
    std::string addr = host;
    int prefix = -1;
    if (auto slash = host.find('/'); slash != std::string::npos) {
        addr = host.substr(0, slash);
        std::string p = host.substr(slash + 1);
        if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos)
            return make_error(EINVAL, at + ": \"" + host + "\": bad CIDR prefix length");
        prefix = std::stoi(p);
    }
    if (inet_pton(AF_INET, addr.c_str(), r.addr) == 1) {
        r.family = AF_INET;
        r.prefix = prefix < 0 ? 32 : prefix;
        if (r.prefix > 32)
            return make_error(EINVAL, at + ": \"" + host + "\": IPv4 prefix length above 32");
    } else if (inet_pton(AF_INET6, addr.c_str(), r.addr) == 1) {
        r.family = AF_INET6;
        r.prefix = prefix < 0 ? 128 : prefix;
        if (r.prefix > 128)
            return make_error(EINVAL, at + ": \"" + host + "\": IPv6 prefix length above 128");
    } else {
        return make_error(ENOENT, at + ": \"" + host + "\" is a host name; the process backend "
                                       "matches addresses and CIDRs only");
    }
    out.push_back(r);
    return out;
}

bool net_rule_matches(const NetRule& r, Proto proto, int family, const uint8_t* addr, uint16_t port) {
    if (r.proto != proto)
        return false;
    if (!r.any_port && r.port != port)
        return false;
    if (r.any_addr)
        return true;
    if (r.family != family)
        return false;
    int full = r.prefix / 8, rest = r.prefix % 8;
    if (std::memcmp(r.addr, addr, static_cast<size_t>(full)) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
    return (r.addr[full] & mask) == (addr[full] & mask);
}

Result<Publish> parse_publish(const std::string& text, const std::string& at) {
    auto parsed = parse_published_port(text);
    if (!parsed)
        return make_error(EINVAL, parsed.error().message); // it names the -p value
    if (!parsed->host_ipv4)
        return make_error(EINVAL, at + ": \"" + text + "\": the process backend publishes on IPv4 addresses only");
    if (parsed->udp)
        return make_error(EINVAL, at + ": \"" + text +
                                      "\": the process backend publishes TCP ports only (UDP ports: the VM backend)");
    char addr[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, parsed->host_ip.data() + 12, addr, sizeof addr);
    return Publish{addr, parsed->host_port, parsed->guest_port};
}

Result<std::string> resolve_in_rootfs(const std::string& rootfs, const std::string& path) {
    if (path.empty() || path.front() != '/')
        return make_error(EINVAL, "\"" + path + "\" must be an absolute path inside the rootfs");
    std::deque<std::string> todo;
    auto split_into = [&](const std::string& p, bool front) {
        std::vector<std::string> parts;
        std::string cur;
        for (char ch : p) {
            if (ch == '/') {
                if (!cur.empty())
                    parts.push_back(cur);
                cur.clear();
            } else {
                cur += ch;
            }
        }
        if (!cur.empty())
            parts.push_back(cur);
        if (front)
            todo.insert(todo.begin(), parts.begin(), parts.end());
        else
            todo.insert(todo.end(), parts.begin(), parts.end());
    };
    split_into(path, false);
    std::vector<std::string> done;
    int links = 0;
    while (!todo.empty()) {
        std::string c = todo.front();
        todo.pop_front();
        if (c == ".")
            continue;
        if (c == "..") {
            if (!done.empty())
                done.pop_back();
            continue;
        }
        std::string sofar;
        for (const auto& d : done)
            sofar += "/" + d;
        sofar += "/" + c;
        struct stat st{};
        if (::lstat((rootfs + sofar).c_str(), &st) != 0)
            return make_error(errno, sofar + ": " + errno_string(errno) + " in the bundle's rootfs");
        if (S_ISLNK(st.st_mode)) {
            if (++links > 40)
                return make_error(ELOOP, path + ": too many levels of symbolic links");
            char buf[4096];
            ssize_t n = ::readlink((rootfs + sofar).c_str(), buf, sizeof buf - 1);
            if (n < 0)
                return make_error(errno, sofar + ": " + errno_string(errno));
            std::string target(buf, static_cast<size_t>(n));
            if (target.front() == '/')
                done.clear();
            split_into(target, true);
            continue;
        }
        done.push_back(c);
    }
    std::string out;
    for (const auto& d : done)
        out += "/" + d;
    return out.empty() ? "/" : out;
}

Result<std::optional<std::string>> elf_interpreter(const std::string& rootfs, const std::string& path) {
    std::string resolved = KOS_TRY(resolve_in_rootfs(rootfs, path));
    UniqueFd fd(::open((rootfs + resolved).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd)
        return make_error(errno, path + ": " + errno_string(errno));
    Elf64_Ehdr eh{};
    if (::pread(fd.get(), &eh, sizeof eh, 0) != static_cast<ssize_t>(sizeof eh) ||
        std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64)
        return std::optional<std::string>{}; // not a 64-bit ELF (a script): nothing to add
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 256)
        return make_error(ENOEXEC, path + ": malformed ELF program headers");
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph{};
        if (::pread(fd.get(), &ph, sizeof ph, static_cast<off_t>(eh.e_phoff + i * sizeof ph)) !=
            static_cast<ssize_t>(sizeof ph))
            return make_error(ENOEXEC, path + ": truncated ELF program headers");
        if (ph.p_type != PT_INTERP)
            continue;
        if (ph.p_filesz == 0 || ph.p_filesz > 4096)
            return make_error(ENOEXEC, path + ": bad PT_INTERP size");
        std::string interp(ph.p_filesz, '\0');
        if (::pread(fd.get(), interp.data(), interp.size(), static_cast<off_t>(ph.p_offset)) !=
            static_cast<ssize_t>(interp.size()))
            return make_error(ENOEXEC, path + ": truncated PT_INTERP");
        interp.resize(std::strlen(interp.c_str()));
        return std::optional<std::string>{interp};
    }
    return std::optional<std::string>{};
}

Result<SandboxSpec> spec_from_bundle_dir(const std::string& dir, const std::vector<std::string>& argv_override) {
    std::string config_path = dir + "/" + pkg::kConfigFileName;
    auto text = read_text_file(config_path);
    if (!text) {
        if (text.error().code == ENOENT || text.error().code == ENOTDIR)
            return make_error(ENOENT, dir + ": not a bundle directory (no " + pkg::kConfigFileName +
                                          "; see docs/bundle-format.md)");
        return std::unexpected(text.error());
    }
    auto config = KOS_TRY(pkg::parse_bundle_config(*text, config_path));
    // One sandboxed program: what needs the VM's init description (more
    // processes, channels between them, pipes between their labels, a
    // native program) is refused rather than left out.
    if (!config.processes.empty())
        return make_error(ENOTSUP, config.processes[0].where + ": [[process]] " + config.processes[0].name +
                                       ": the process backend runs the app alone; run this bundle in the VM "
                                       "(kos run --backend vm, where /dev/kvm is usable)");
    if (!config.pipes.empty())
        return make_error(ENOTSUP, config.pipes[0].where + ": [[pipe]] " + config.pipes[0].path +
                                       ": pipes between labels need the VM's pipe server; run this bundle in the "
                                       "VM (kos run --backend vm)");
    if (config.app.native)
        return make_error(ENOTSUP, config_path + ": [app] native = true: native kos programs run in the VM "
                                                 "only (kos run --backend vm)");
    SandboxSpec s;
    s.origin = config_path;
    const pkg::AppConfig& app = config.app;
    if (!argv_override.empty()) {
        s.argv = argv_override;
    } else {
        s.argv = app.entrypoint;
        s.argv.insert(s.argv.end(), app.args.begin(), app.args.end());
    }
    if (s.argv.empty())
        return make_error(EINVAL, "nothing to run: " + config_path +
                                      " has no [app] entrypoint and no program was given after --");
    s.env = app.env;
    s.workdir = app.workdir;
    s.hostname = app.hostname;
    if (!config.policy.domain.empty())
        s.domain = config.policy.domain;
    s.uid = app.uid;
    s.gid = app.gid;

    char real[PATH_MAX];
    if (!::realpath((dir + "/rootfs").c_str(), real))
        return make_error(errno, dir + "/rootfs: " + errno_string(errno) + " (a bundle directory holds rootfs/)");
    s.rootfs = real;
    struct stat st{};
    if (::stat(s.rootfs.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return make_error(ENOTDIR, s.rootfs + ": the bundle's rootfs must be a directory");

    // Without a compiled policy the whole rootfs is readable, /tmp is the
    // only writable tree, and the program itself (and its ELF interpreter)
    // is the only executable; apply_policy() narrows reads by label and
    // derives the executables from the policy.
    s.read_paths = {"/"};
    s.write_paths = {"/tmp"};

    if (config.has_labels)
        KOS_TRY(check_labels(s.rootfs, config.labels, config_path));

    // [limits] (pkg/bundle_config.h: 0 is the runtime's default).
    const pkg::LimitsConfig& l = config.limits;
    s.limits.memory_bytes = l.memory_bytes;
    s.limits.pids = l.pids;
    s.limits.cpu_percent = l.vcpus * 100; // vCPUs map to a CPU-time quota
    if (l.open_files)
        s.limits.nofile = std::max<uint64_t>(l.open_files, 16);
    s.limits.cpu_seconds = (l.cpu_time_ms + 999) / 1000;
    s.limits.wall_ms = l.wall_time_ms;
    if (l.output_bytes)
        s.notes.push_back("[limits] output is not enforced by the process backend (the program "
                          "writes to kos's own stdout and stderr)");

    // [network]: listen -> bind on the port, connect -> connect to host:port
    // (without a compiled policy; with one, the policy decides).
    bool with_policy = config.has_policy && !config.policy.sources.empty();
    for (const pkg::NetworkEndpoint& e : with_policy ? std::vector<pkg::NetworkEndpoint>{} : config.network.listen) {
        NetRule r;
        r.proto = e.proto == "udp" ? Proto::Udp : Proto::Tcp;
        r.any_addr = true;
        r.port = e.port;
        r.text = e.proto + " *:" + std::to_string(e.port) + " (listen, label " + e.label + ")";
        s.bind.push_back(r);
    }
    for (const pkg::NetworkEndpoint& e : with_policy ? std::vector<pkg::NetworkEndpoint>{} : config.network.connect) {
        auto rules = parse_host_rule(e.host, config_path + ": [network] connect");
        if (!rules) {
            if (rules.error().code != ENOENT)
                return std::unexpected(rules.error());
            s.notes.push_back(rules.error().message + ": this entry allows nothing");
            continue;
        }
        for (NetRule r : *rules) {
            r.proto = e.proto == "udp" ? Proto::Udp : Proto::Tcp;
            r.port = e.port;
            r.text = e.proto + " " + e.host + ":" + std::to_string(e.port) + " (connect, label " + e.label + ")";
            s.connect.push_back(r);
        }
    }

    // The program must exist; it and its interpreter become the allowed execs.
    std::string prog = s.argv[0];
    if (prog.empty() || prog.front() != '/')
        return make_error(ENOENT, "program path \"" + prog + "\" must be absolute inside the rootfs");
    auto resolved = resolve_in_rootfs(s.rootfs, prog);
    if (!resolved)
        return make_error(ENOENT, "cannot run " + prog + ": no such file in the bundle's rootfs");
    s.execs.push_back(*resolved);
    auto interp = elf_interpreter(s.rootfs, prog);
    if (!interp)
        return make_error(ENOEXEC, "cannot run " + interp.error().message);
    if (*interp) {
        auto ri = resolve_in_rootfs(s.rootfs, **interp);
        if (!ri)
            return make_error(ENOENT, "cannot run " + prog + ": its ELF interpreter " + **interp +
                                          " is missing from the bundle's rootfs");
        s.execs.push_back(*ri);
    }
    if (with_policy) {
        KOS_TRY(apply_policy(s, dir, config, *resolved));
    } else {
        s.report.push_back(std::string("verdicts: the sandbox spec, not the security engine (") +
                           (config.has_policy ? "[policy] names no sources" : "the bundle has no [policy]") +
                           "): connect/bind from [network], execve only the entrypoint and its interpreter");
    }
    return s;
}

} // namespace kos::proc
