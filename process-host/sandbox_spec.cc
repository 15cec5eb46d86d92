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

#include "kos/support/file.h"
#include "pkg/bundle_config.h"
#include "pkg/label_matcher.h"

namespace kos::proc {
namespace {

bool parse_port(const std::string& s, uint16_t& out) {
    if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos)
        return false;
    unsigned long v = std::stoul(s);
    if (v == 0 || v > 65535)
        return false;
    out = static_cast<uint16_t>(v);
    return true;
}

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

} // namespace

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
    // [HOST_ADDR:]HOST_PORT:GUEST_PORT
    Publish p;
    auto last = text.rfind(':');
    if (last == std::string::npos)
        return make_error(EINVAL, at + ": \"" + text + "\": expected [HOST_ADDR:]HOST_PORT:GUEST_PORT");
    std::string head = text.substr(0, last);
    std::string guest = text.substr(last + 1);
    auto mid = head.rfind(':');
    std::string host_port = mid == std::string::npos ? head : head.substr(mid + 1);
    if (mid != std::string::npos) {
        p.host_addr = head.substr(0, mid);
        in_addr a{};
        if (inet_pton(AF_INET, p.host_addr.c_str(), &a) != 1)
            return make_error(EINVAL, at + ": \"" + text + "\": host address must be IPv4");
    }
    if (!parse_port(host_port, p.host_port) || !parse_port(guest, p.guest_port))
        return make_error(EINVAL, at + ": \"" + text + "\": ports must be 1-65535");
    return p;
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

    // Until the compiled bundle policy labels files, the whole rootfs is
    // readable, /tmp is the only writable tree, and the program itself (and
    // its ELF interpreter) is the only executable.
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

    // [network]: listen -> bind on the port, connect -> connect to host:port.
    for (const pkg::NetworkEndpoint& e : config.network.listen) {
        NetRule r;
        r.proto = e.proto == "udp" ? Proto::Udp : Proto::Tcp;
        r.any_addr = true;
        r.port = e.port;
        r.text = e.proto + " *:" + std::to_string(e.port) + " (listen, label " + e.label + ")";
        s.bind.push_back(r);
    }
    for (const pkg::NetworkEndpoint& e : config.network.connect) {
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
    return s;
}

} // namespace kos::proc
