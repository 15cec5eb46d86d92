#include "bundle_config.h"

#include <cctype>
#include <initializer_list>
#include <span>

#include "kos/rootfs_image.h"
#include "label_matcher.h"
#include "toml.h"

namespace kos::pkg {
namespace {

std::string where(const std::string& origin, toml::Position at) {
    return origin + ':' + std::to_string(at.line) + ':' + std::to_string(at.column);
}

Result<std::vector<std::string>> string_array(const toml::Table& t, const char* key,
                                              const std::string& origin, const char* section) {
    std::vector<std::string> out;
    const toml::Value* n = t.find(key);
    if (!n)
        return out;
    const toml::Array* arr = n->as_array();
    if (!arr)
        return make_error(EINVAL, where(origin, n->position()) + ": [" + section + "] " + key +
                                      " must be an array of strings, e.g. " + key +
                                      " = [\"/bin/app\"]");
    for (const toml::Value& item : *arr) {
        const std::string* s = item.as_string();
        if (!s)
            return make_error(EINVAL, where(origin, item.position()) + ": [" + section + "] " + key +
                                          " must contain only strings");
        out.push_back(*s);
    }
    return out;
}

Result<std::string> string_field(const toml::Table& t, const char* key, const std::string& def,
                                 const std::string& origin, const char* section) {
    const toml::Value* n = t.find(key);
    if (!n)
        return def;
    const std::string* s = n->as_string();
    if (!s)
        return make_error(EINVAL, where(origin, n->position()) + ": [" + section + "] " + key +
                                      " must be a string");
    return *s;
}

Result<bool> bool_field(const toml::Table& t, const char* key, bool def, const std::string& origin,
                        const char* section) {
    const toml::Value* n = t.find(key);
    if (!n)
        return def;
    const bool* v = n->as_boolean();
    if (!v)
        return make_error(EINVAL, where(origin, n->position()) + ": [" + section + "] " + key +
                                      " must be true or false");
    return *v;
}

Result<void> parse_user(const std::string& user, const std::string& at, AppConfig& app) {
    // "UID" or "UID:GID", numeric: names need a passwd file we do not trust.
    auto colon = user.find(':');
    std::string u = user.substr(0, colon);
    std::string g = colon == std::string::npos ? u : user.substr(colon + 1);
    auto parse = [](const std::string& s, uint32_t& out) {
        if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos)
            return false;
        uint64_t v = std::stoull(s);
        if (v > 0xfffffffeu)
            return false;
        out = static_cast<uint32_t>(v);
        return true;
    };
    if (!parse(u, app.uid) || !parse(g, app.gid))
        return make_error(EINVAL, at + ": [app] user must be \"UID\" or \"UID:GID\" (numbers), got \"" +
                                      user + "\"");
    return {};
}

Result<void> check_keys(const toml::Table& t, std::initializer_list<const char*> known,
                        const std::string& origin, const std::string& section) {
    for (const toml::Entry& e : t.entries()) {
        bool ok = false;
        for (const char* k : known)
            ok = ok || e.key == k;
        if (!ok) {
            std::string list;
            for (const char* k : known)
                list += (list.empty() ? "" : ", ") + std::string(k);
            return make_error(EINVAL, where(origin, e.key_position) + ": unknown key [" + section +
                                          "] " + e.key + " (known: " + list + ")");
        }
    }
    return {};
}

struct Unit {
    const char* name;
    uint64_t multiplier;
};

// "<digits><unit>" times the unit's multiplier (`bare`: the unit of plain
// digits). `what` and `unit_list` go into the errors.
Result<uint64_t> scaled(const std::string& s, const char* bare, std::span<const Unit> units,
                        const std::string& at, const char* what, const char* unit_list) {
    size_t digits = s.find_first_not_of("0123456789");
    std::string num = s.substr(0, digits), unit = digits == std::string::npos ? bare : s.substr(digits);
    if (num.empty() || num.size() > 12)
        return make_error(EINVAL, at + ": \"" + s + "\" is not " + what);
    for (const Unit& u : units) {
        if (unit != u.name)
            continue;
        uint64_t v = std::stoull(num);
        if (v > UINT64_MAX / u.multiplier)
            return make_error(EINVAL, at + ": \"" + s + "\" is too large");
        return v * u.multiplier;
    }
    return make_error(EINVAL, at + ": unknown unit \"" + unit + "\" (use " + unit_list + ")");
}

// "256MiB", "1G", "4096" or an integer: bytes.
Result<uint64_t> size_field(const toml::Table& t, const char* key, const std::string& origin,
                            const char* section) {
    const toml::Value* n = t.find(key);
    if (!n)
        return 0;
    std::string at = where(origin, n->position()) + ": [" + section + "] " + key;
    if (const int64_t* i = n->as_integer()) {
        if (*i < 0)
            return make_error(EINVAL, at + " must not be negative");
        return static_cast<uint64_t>(*i);
    }
    const std::string* s = n->as_string();
    if (!s)
        return make_error(EINVAL, at + " must be a size such as \"256MiB\" or a number of bytes");
    static constexpr Unit units[] = {
        {"", 1}, {"B", 1}, {"K", 1ull << 10}, {"KiB", 1ull << 10}, {"M", 1ull << 20},
        {"MiB", 1ull << 20}, {"G", 1ull << 30}, {"GiB", 1ull << 30}, {"T", 1ull << 40},
        {"TiB", 1ull << 40}};
    return scaled(*s, "", units, at, "a size (e.g. \"256MiB\")", "B, KiB, MiB, GiB, TiB");
}

// "500ms", "10s", "2m", "1h" or an integer number of seconds: milliseconds.
Result<uint64_t> duration_field(const toml::Table& t, const char* key, const std::string& origin,
                                const char* section) {
    const toml::Value* n = t.find(key);
    if (!n)
        return 0;
    std::string at = where(origin, n->position()) + ": [" + section + "] " + key;
    if (const int64_t* i = n->as_integer()) {
        if (*i < 0 || *i > (int64_t(1) << 40))
            return make_error(EINVAL, at + " is out of range");
        return static_cast<uint64_t>(*i) * 1000;
    }
    const std::string* s = n->as_string();
    if (!s)
        return make_error(EINVAL, at + " must be a duration such as \"30s\" or a number of seconds");
    static constexpr Unit units[] = {{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}};
    return scaled(*s, "s", units, at, "a duration (e.g. \"30s\")", "ms, s, m, h");
}

Result<uint32_t> count_field(const toml::Table& t, const char* key, uint32_t max,
                             const std::string& origin, const char* section) {
    const toml::Value* n = t.find(key);
    if (!n)
        return 0;
    const int64_t* i = n->as_integer();
    if (!i || *i < 0 || *i > int64_t(max))
        return make_error(EINVAL, where(origin, n->position()) + ": [" + section + "] " + key +
                                      " must be an integer from 0 to " + std::to_string(max));
    return static_cast<uint32_t>(*i);
}

// `table_at`: where the table starts, for a missing label.
Result<std::string> label_field(const toml::Table& t, toml::Position table_at, const char* key,
                                const std::string& origin, const std::string& section) {
    const toml::Value* n = t.find(key);
    std::string at = where(origin, (n ? n->position() : table_at)) + ": [" + section + "] " + key;
    if (!n)
        return make_error(EINVAL, at + " is required (every resource carries a label)");
    const std::string* s = n->as_string();
    if (!s || !valid_label(*s))
        return make_error(EINVAL, at + " must be a label ([A-Za-z_][A-Za-z0-9_.:-]*, at most 128 bytes)");
    return *s;
}

bool valid_rootfs_path(const std::string& p) {
    return !p.empty() && p.size() <= 4096 &&
           kos::abi::rootfs::RootfsView::path_normalized(p.data(), p.size());
}

Result<void> parse_labels(const toml::Table& t, toml::Position, const std::string& origin,
                          BundleConfig& cfg) {
    cfg.has_labels = true;
    for (const toml::Entry& e : t.entries()) {
        const std::string& pattern = e.key;
        std::string at = where(origin, e.key_position);
        const std::string* label = e.value.as_string();
        if (!label || !valid_label(*label))
            return make_error(EINVAL, at + ": [labels] \"" + pattern +
                                          "\" must map to a label string ([A-Za-z_][A-Za-z0-9_.:-]*)");
        if (auto err = validate_label_pattern(pattern); !err.empty())
            return make_error(EINVAL, at + ": [labels] pattern \"" + pattern + "\": " + err);
        cfg.labels.push_back({pattern, *label, at});
    }
    return {};
}

Result<void> parse_policy(const toml::Table& t, toml::Position table_at, const std::string& origin,
                          BundleConfig& cfg) {
    KOS_TRY(check_keys(t, {"domain", "sources"}, origin, "policy"));
    cfg.has_policy = true;
    if (t.find("domain"))
        cfg.policy.domain = KOS_TRY(label_field(t, table_at, "domain", origin, "policy"));
    cfg.policy.sources = KOS_TRY(string_array(t, "sources", origin, "policy"));
    for (const std::string& src : cfg.policy.sources)
        if (!valid_bundle_relpath(src) || src == kConfigFileName || src.starts_with("rootfs/") ||
            src == "rootfs")
            return make_error(EINVAL, where(origin, table_at) + ": [policy] source \"" + src +
                                          "\" must be a relative path inside the bundle directory, "
                                          "outside rootfs/ (components of A-Z a-z 0-9 . _ -)");
    return {};
}

Result<void> parse_limits(const toml::Table& t, toml::Position, const std::string& origin,
                          BundleConfig& cfg) {
    KOS_TRY(check_keys(t, {"memory", "vcpus", "cpu_time", "wall_time", "output", "pids", "open_files"},
                       origin, "limits"));
    LimitsConfig& l = cfg.limits;
    l.memory_bytes = KOS_TRY(size_field(t, "memory", origin, "limits"));
    l.vcpus = KOS_TRY(count_field(t, "vcpus", 256, origin, "limits"));
    l.cpu_time_ms = KOS_TRY(duration_field(t, "cpu_time", origin, "limits"));
    l.wall_time_ms = KOS_TRY(duration_field(t, "wall_time", origin, "limits"));
    l.output_bytes = KOS_TRY(size_field(t, "output", origin, "limits"));
    l.pids = KOS_TRY(count_field(t, "pids", 1u << 22, origin, "limits"));
    l.open_files = KOS_TRY(count_field(t, "open_files", 1u << 20, origin, "limits"));
    return {};
}

Result<void> parse_endpoints(const toml::Table& t, const char* key, bool with_host,
                             const std::string& origin, std::vector<NetworkEndpoint>& out) {
    const toml::Value* n = t.find(key);
    if (!n)
        return {};
    const toml::Array* arr = n->as_array();
    std::string sec = std::string("network.") + key;
    if (!arr)
        return make_error(EINVAL, where(origin, n->position()) + ": [network] " + key +
                                      " must be an array of tables, e.g. " + key +
                                      " = [{ proto = \"tcp\", port = 8080, label = \"http_port_t\" }]");
    for (const toml::Value& item : *arr) {
        const toml::Table* e = item.as_table();
        std::string at = where(origin, item.position());
        if (!e)
            return make_error(EINVAL, at + ": [network] " + key + " entries must be tables");
        if (with_host)
            KOS_TRY(check_keys(*e, {"proto", "host", "port", "label"}, origin, sec));
        else
            KOS_TRY(check_keys(*e, {"proto", "port", "label"}, origin, sec));
        NetworkEndpoint ep;
        ep.proto = KOS_TRY(string_field(*e, "proto", "tcp", origin, sec.c_str()));
        if (ep.proto != "tcp" && ep.proto != "udp")
            return make_error(EINVAL, at + ": [" + sec + "] proto must be \"tcp\" or \"udp\"");
        const int64_t* port = e->find("port") ? e->find("port")->as_integer() : nullptr;
        if (!port || *port < 1 || *port > 65535)
            return make_error(EINVAL, at + ": [" + sec + "] port must be an integer from 1 to 65535");
        ep.port = static_cast<uint16_t>(*port);
        if (with_host) {
            ep.host = KOS_TRY(string_field(*e, "host", "", origin, sec.c_str()));
            if (ep.host.empty() || ep.host.size() > 253 ||
                ep.host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789.-:/") != std::string::npos)
                return make_error(EINVAL, at + ": [" + sec + "] host must be an address, CIDR "
                                               "or host name");
        }
        ep.label = KOS_TRY(label_field(*e, item.position(), "label", origin, sec));
        out.push_back(std::move(ep));
    }
    return {};
}

Result<void> parse_network(const toml::Table& t, toml::Position, const std::string& origin,
                           BundleConfig& cfg) {
    KOS_TRY(check_keys(t, {"listen", "connect"}, origin, "network"));
    KOS_TRY(parse_endpoints(t, "listen", false, origin, cfg.network.listen));
    KOS_TRY(parse_endpoints(t, "connect", true, origin, cfg.network.connect));
    return {};
}

Result<void> parse_volumes(const toml::Table& t, toml::Position, const std::string& origin,
                           BundleConfig& cfg) {
    for (const toml::Entry& e : t.entries()) {
        const std::string& name = e.key;
        std::string at = where(origin, e.key_position);
        const toml::Table* v = e.value.as_table();
        if (!v)
            return make_error(EINVAL, at + ": [volumes] " + name +
                                          " must be a table: [volumes." + name +
                                          "] path = \"/data\", access = \"ro\", label = \"data_t\"");
        if (name.empty() || name.size() > 64 ||
            name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
                std::string::npos)
            return make_error(EINVAL, at + ": volume name \"" + name + "\" must be 1-64 of A-Z a-z 0-9 _ -");
        std::string sec = "volumes." + name;
        KOS_TRY(check_keys(*v, {"path", "access", "label"}, origin, sec));
        VolumeConfig vol;
        vol.name = name;
        vol.path = KOS_TRY(string_field(*v, "path", "", origin, sec.c_str()));
        if (!valid_rootfs_path(vol.path) || vol.path == "/")
            return make_error(EINVAL, at + ": [" + sec + "] path must be a normalized absolute "
                                           "path other than /, e.g. \"/data\"");
        std::string access = KOS_TRY(string_field(*v, "access", "ro", origin, sec.c_str()));
        if (access != "ro" && access != "rw")
            return make_error(EINVAL, at + ": [" + sec + "] access must be \"ro\" or \"rw\"");
        vol.writable = access == "rw";
        vol.label = KOS_TRY(label_field(*v, e.value.position(), "label", origin, sec));
        cfg.volumes.push_back(std::move(vol));
    }
    return {};
}

} // namespace

bool valid_label(const std::string& label) {
    if (label.empty() || label.size() > 128)
        return false;
    auto c0 = static_cast<unsigned char>(label[0]);
    if (!(std::isalpha(c0) || c0 == '_'))
        return false;
    for (char c : label) {
        auto u = static_cast<unsigned char>(c);
        if (!(std::isalnum(u) || c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

bool valid_bundle_relpath(const std::string& path) {
    if (path.empty() || path.size() > 255 || path.front() == '/' || path.back() == '/')
        return false;
    size_t start = 0;
    while (start <= path.size()) {
        size_t end = path.find('/', start);
        if (end == std::string::npos)
            end = path.size();
        std::string comp = path.substr(start, end - start);
        if (comp.empty() || comp == "." || comp == "..")
            return false;
        for (char c : comp) {
            auto u = static_cast<unsigned char>(c);
            if (!(std::isalnum(u) || c == '.' || c == '_' || c == '-'))
                return false;
        }
        start = end + 1;
    }
    return true;
}

Result<void> require_behavior_config(const BundleConfig& config, const std::string& origin) {
    if (!config.has_labels || config.labels.empty())
        return make_error(EINVAL, origin + ": no behavior config: missing [labels] section (every "
                                           "file needs a label, e.g. [labels] \"/**\" = \"app_file_t\"); "
                                           "see docs/bundle-format.md");
    if (!config.has_policy)
        return make_error(EINVAL, origin + ": no behavior config: missing [policy] section (e.g. "
                                           "[policy] domain = \"app_t\", sources = [\"policy/app.kpol\"]); "
                                           "see docs/bundle-format.md");
    if (config.policy.domain.empty())
        return make_error(EINVAL, origin + ": [policy] domain is required (the label of the app's "
                                           "processes, e.g. \"app_t\")");
    if (config.policy.sources.empty())
        return make_error(EINVAL, origin + ": [policy] sources is empty: name at least one policy "
                                           "file inside the bundle");
    return {};
}

// [[process]] and [[channel]]: the bundle's init description.
Result<void> parse_processes_and_channels(const toml::Table& root, const std::string& origin,
                                          BundleConfig& cfg) {
    // Each table with where it starts.
    auto tables = [&](const char* key) -> Result<std::vector<const toml::Value*>> {
        std::vector<const toml::Value*> out;
        const toml::Value* n = root.find(key);
        if (!n)
            return out;
        const toml::Array* arr = n->as_array();
        if (!arr)
            return make_error(EINVAL, where(origin, n->position()) + ": [[" + key +
                                          "]] must be an array of tables (write [[" + key + "]])");
        for (const toml::Value& item : *arr) {
            if (!item.as_table())
                return make_error(EINVAL, where(origin, item.position()) + ": [[" + key + "]] entries must be tables");
            out.push_back(&item);
        }
        return out;
    };
    auto check_keys = [&](const toml::Table& t, const char* section,
                          std::initializer_list<const char*> known) -> Result<void> {
        for (const toml::Entry& e : t.entries()) {
            bool ok = false;
            for (const char* kk : known)
                ok = ok || e.key == kk;
            if (!ok)
                return make_error(EINVAL, where(origin, e.key_position) + ": unknown key [[" + section +
                                              "]] " + e.key);
        }
        return {};
    };
    std::vector<std::string> names = {"app"};
    for (const toml::Value* node : KOS_TRY(tables("process"))) {
        const toml::Table* t = node->as_table();
        KOS_TRY(check_keys(*t, "process", {"name", "label", "program", "native"}));
        ProcessConfig p;
        p.where = where(origin, node->position());
        p.name = KOS_TRY(string_field(*t, "name", "", origin, "[process]"));
        p.label = KOS_TRY(string_field(*t, "label", "", origin, "[process]"));
        p.program = KOS_TRY(string_array(*t, "program", origin, "[process]"));
        p.native = KOS_TRY(bool_field(*t, "native", false, origin, "[process]"));
        if (p.name.empty() || p.name.size() > 39)
            return make_error(EINVAL, p.where + ": [[process]] name must have 1 to 39 characters");
        for (const std::string& n : names)
            if (n == p.name)
                return make_error(EINVAL, p.where + ": [[process]] name \"" + p.name + "\" is used twice (\"app\" is the [app] program)");
        if (!valid_label(p.label))
            return make_error(EINVAL, p.where + ": [[process]] " + p.name + " needs a label like \"server_t\"");
        if (p.program.empty() || p.program[0].empty() || p.program[0].front() != '/')
            return make_error(EINVAL, p.where + ": [[process]] " + p.name +
                                          ": program must start with an absolute path inside rootfs");
        names.push_back(p.name);
        cfg.processes.push_back(std::move(p));
    }
    for (const toml::Value* node : KOS_TRY(tables("channel"))) {
        const toml::Table* t = node->as_table();
        KOS_TRY(check_keys(*t, "channel", {"name", "client", "server", "interface", "rights"}));
        ChannelConfig c;
        c.where = where(origin, node->position());
        c.name = KOS_TRY(string_field(*t, "name", "", origin, "[channel]"));
        c.client = KOS_TRY(string_field(*t, "client", "", origin, "[channel]"));
        c.server = KOS_TRY(string_field(*t, "server", "", origin, "[channel]"));
        c.rights = KOS_TRY(string_array(*t, "rights", origin, "[channel]"));
        if (c.rights.empty())
            c.rights = {"call"};
        const toml::Value* iface = t->find("interface");
        const int64_t* id = iface ? iface->as_integer() : nullptr;
        if (!id || *id <= 0 || *id > 0xffffffffll)
            return make_error(EINVAL, c.where + ": [[channel]] " + c.name +
                                          ": interface must be a positive interface id");
        c.interface_id = static_cast<uint32_t>(*id);
        if (c.name.empty() || c.name.size() > 39)
            return make_error(EINVAL, c.where + ": [[channel]] name must have 1 to 39 characters");
        for (const ChannelConfig& other : cfg.channels)
            if (other.name == c.name)
                return make_error(EINVAL, c.where + ": [[channel]] name \"" + c.name + "\" is used twice");
        auto declared = [&](const std::string& n) {
            for (const std::string& d : names)
                if (d == n)
                    return true;
            return false;
        };
        if (!declared(c.client) || !declared(c.server) || c.client == c.server)
            return make_error(EINVAL, c.where + ": [[channel]] " + c.name +
                                          ": client and server must be two different declared processes "
                                          "(\"app\" or a [[process]] name)");
        auto native = [&](const std::string& n) {
            if (n == "app")
                return cfg.app.native;
            for (const ProcessConfig& p : cfg.processes)
                if (p.name == n)
                    return p.native;
            return false;
        };
        for (const std::string& end : {c.client, c.server})
            if (!native(end))
                return make_error(EINVAL, c.where + ": [[channel]] " + c.name + ": " + end +
                                              " is a Linux program, and channels connect native kos programs "
                                              "(native = true); Linux programs reach each other through files, "
                                              "pipes and signals, under the policy");
        for (const std::string& r : c.rights)
            if (r != "call" && r != "transfer" && r != "duplicate")
                return make_error(EINVAL, c.where + ": [[channel]] " + c.name + ": unknown right \"" + r +
                                              "\" (call, transfer, duplicate)");
        cfg.channels.push_back(std::move(c));
    }
    for (const toml::Value* node : KOS_TRY(tables("pipe"))) {
        const toml::Table* t = node->as_table();
        KOS_TRY(check_keys(*t, "pipe", {"path", "label"}));
        PipeConfig p;
        p.where = where(origin, node->position());
        p.path = KOS_TRY(string_field(*t, "path", "", origin, "[pipe]"));
        p.label = KOS_TRY(string_field(*t, "label", "", origin, "[pipe]"));
        if (!valid_rootfs_path(p.path) || p.path == "/" || p.path.size() >= 255 || p.path.find(' ') != std::string::npos)
            return make_error(EINVAL, p.where + ": [[pipe]] path must be a normalized absolute path other than /, "
                                                "without spaces, shorter than 255 bytes, e.g. \"/run/jobs\"");
        if (p.path == "/tmp" || p.path.starts_with("/tmp/"))
            return make_error(EINVAL, p.where + ": [[pipe]] " + p.path + ": /tmp is private to each label; "
                                                "choose a path outside /tmp");
        if (!valid_label(p.label))
            return make_error(EINVAL, p.where + ": [[pipe]] " + p.path + " needs a label like \"jobs_t\"");
        for (const PipeConfig& other : cfg.pipes)
            if (other.path == p.path)
                return make_error(EINVAL, p.where + ": [[pipe]] " + p.path + " is declared twice");
        cfg.pipes.push_back(std::move(p));
    }
    return {};
}

namespace {

// Error messages quote the bundle's own keys and values: control characters
// (C0, DEL, and C1 as UTF-8) become \xNN so an untrusted bundle.toml cannot
// drive the terminal that shows the error.
std::string printable(const std::string& msg) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(msg.size());
    for (size_t i = 0; i < msg.size(); ++i) {
        auto c = static_cast<unsigned char>(msg[i]);
        bool c1 = c == 0xc2 && i + 1 < msg.size() && static_cast<unsigned char>(msg[i + 1]) >= 0x80 &&
                  static_cast<unsigned char>(msg[i + 1]) <= 0x9f;
        if ((c < 0x20 && c != '\n') || c == 0x7f || c1) {
            if (c1)
                c = static_cast<unsigned char>(msg[++i]);
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

Result<BundleConfig> parse_bundle_config_unescaped(const std::string& text, const std::string& origin);

} // namespace

Result<BundleConfig> parse_bundle_config(const std::string& text, const std::string& origin) {
    auto r = parse_bundle_config_unescaped(text, origin);
    if (!r)
        r.error().message = printable(r.error().message);
    return r;
}

namespace {

Result<BundleConfig> parse_bundle_config_unescaped(const std::string& text, const std::string& origin) {
    // bundle.toml is read whole by every caller, some without a size limit
    // of their own; the parser's limits bound the text, keys, strings and
    // nesting (toml.h).
    toml::Limits limits;
    limits.max_input_bytes = kMaxConfigBytes;
    const toml::Table root = KOS_TRY(toml::parse(text, origin, limits));
    BundleConfig cfg;

    for (const toml::Entry& e : root.entries()) {
        const std::string& k = e.key;
        if (k != "app" && k != "labels" && k != "policy" && k != "limits" && k != "network" &&
            k != "volumes" && k != "process" && k != "channel" && k != "pipe")
            return make_error(EINVAL, where(origin, e.key_position) + ": unknown section [" + k +
                                          "]; known sections: app, labels, policy, limits, "
                                          "network, volumes, [[process]], [[channel]], [[pipe]]");
    }

    const toml::Value* app_node = root.find("app");
    const toml::Table* app = app_node ? app_node->as_table() : nullptr;
    if (!app)
        return make_error(EINVAL, origin + ": missing [app] section (it names the entrypoint: "
                                           "[app] entrypoint = [\"/bin/program\"])");
    for (const toml::Entry& e : app->entries()) {
        static const char* known[] = {"name", "version", "entrypoint", "args", "env",
                                      "workdir", "user", "hostname", "native"};
        bool ok = false;
        for (const char* kk : known)
            ok = ok || e.key == kk;
        if (!ok)
            return make_error(EINVAL, where(origin, e.key_position) + ": unknown key [app] " + e.key);
    }
    AppConfig& a = cfg.app;
    a.name = KOS_TRY(string_field(*app, "name", "", origin, "app"));
    a.version = KOS_TRY(string_field(*app, "version", "0", origin, "app"));
    a.entrypoint = KOS_TRY(string_array(*app, "entrypoint", origin, "app"));
    a.args = KOS_TRY(string_array(*app, "args", origin, "app"));
    a.env = KOS_TRY(string_array(*app, "env", origin, "app"));
    a.workdir = KOS_TRY(string_field(*app, "workdir", "/", origin, "app"));
    a.hostname = KOS_TRY(string_field(*app, "hostname", "kos", origin, "app"));
    std::string user = KOS_TRY(string_field(*app, "user", "0:0", origin, "app"));
    a.native = KOS_TRY(bool_field(*app, "native", false, origin, "app"));
    std::string at = where(origin, app_node->position());
    KOS_TRY(parse_user(user, at, a));
    if (a.name.empty())
        return make_error(EINVAL, at + ": [app] name is required");
    for (const std::string& e : a.env)
        if (e.find('=') == std::string::npos || e.front() == '=')
            return make_error(EINVAL, at + ": [app] env entry \"" + e + "\" must be KEY=VALUE");
    if (!a.entrypoint.empty() && (a.entrypoint[0].empty() || a.entrypoint[0].front() != '/'))
        return make_error(EINVAL, at + ": [app] entrypoint[0] must be an absolute path inside "
                                       "rootfs, got \"" + a.entrypoint[0] + "\"");
    if (a.workdir.empty() || a.workdir.front() != '/')
        return make_error(EINVAL, at + ": [app] workdir must be an absolute path");

    // The table sections, each with its parser.
    using SectionParser = Result<void> (*)(const toml::Table&, toml::Position, const std::string&,
                                           BundleConfig&);
    static const std::pair<const char*, SectionParser> kSections[] = {
        {"labels", parse_labels},   {"policy", parse_policy},   {"limits", parse_limits},
        {"network", parse_network}, {"volumes", parse_volumes},
    };
    for (const auto& [name, parse] : kSections) {
        const toml::Value* n = root.find(name);
        if (!n)
            continue;
        if (!n->as_table())
            return make_error(EINVAL, where(origin, n->position()) + ": [" + name + "] must be a table");
        KOS_TRY(parse(*n->as_table(), n->position(), origin, cfg));
    }
    KOS_TRY(parse_processes_and_channels(root, origin, cfg));
    return cfg;
}

} // namespace

} // namespace kos::pkg
