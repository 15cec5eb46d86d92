#include "bundle_config.h"

// Errors as values, not exceptions (see support/kos/support/result.h).
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include <sstream>

namespace kos::pkg {
namespace {

std::string where(const std::string& origin, const toml::source_region& src) {
    std::ostringstream out;
    out << origin << ':' << src.begin.line << ':' << src.begin.column;
    return out.str();
}

Result<std::vector<std::string>> string_array(const toml::table& t, const char* key,
                                              const std::string& origin, const char* section) {
    std::vector<std::string> out;
    const toml::node* n = t.get(key);
    if (!n)
        return out;
    const toml::array* arr = n->as_array();
    if (!arr)
        return make_error(EINVAL, where(origin, n->source()) + ": [" + section + "] " + key +
                                      " must be an array of strings, e.g. " + key +
                                      " = [\"/bin/app\"]");
    for (const toml::node& item : *arr) {
        auto s = item.value<std::string>();
        if (!s)
            return make_error(EINVAL, where(origin, item.source()) + ": [" + section + "] " + key +
                                          " must contain only strings");
        out.push_back(*s);
    }
    return out;
}

Result<std::string> string_field(const toml::table& t, const char* key, const std::string& def,
                                 const std::string& origin, const char* section) {
    const toml::node* n = t.get(key);
    if (!n)
        return def;
    auto s = n->value<std::string>();
    if (!s)
        return make_error(EINVAL, where(origin, n->source()) + ": [" + section + "] " + key +
                                      " must be a string");
    return *s;
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

} // namespace

Result<BundleConfig> parse_bundle_config(const std::string& text, const std::string& origin) {
    toml::parse_result parsed = toml::parse(text, origin);
    if (!parsed) {
        const toml::parse_error& err = parsed.error();
        return make_error(EINVAL, where(origin, err.source()) + ": " + std::string(err.description()));
    }
    const toml::table& root = parsed.table();
    BundleConfig cfg;

    for (auto&& [key, node] : root) {
        std::string k(key.str());
        if (k != "app" && k != "labels" && k != "policy" && k != "limits" && k != "network" &&
            k != "volumes")
            return make_error(EINVAL, where(origin, key.source()) + ": unknown section [" + k +
                                          "]; known sections: app, labels, policy, limits, "
                                          "network, volumes");
    }

    const toml::table* app = root["app"].as_table();
    if (!app)
        return make_error(EINVAL, origin + ": missing [app] section (it names the entrypoint: "
                                           "[app] entrypoint = [\"/bin/program\"])");
    for (auto&& [key, node] : *app) {
        static const char* known[] = {"name", "version", "entrypoint", "args", "env",
                                      "workdir", "user", "hostname"};
        bool ok = false;
        for (const char* kk : known)
            ok = ok || key.str() == kk;
        if (!ok)
            return make_error(EINVAL, where(origin, key.source()) + ": unknown key [app] " +
                                          std::string(key.str()));
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
    std::string at = where(origin, app->source());
    KOS_TRY(parse_user(user, at, a));
    if (a.name.empty())
        return make_error(EINVAL, at + ": [app] name is required");
    for (const std::string& e : a.env)
        if (e.find('=') == std::string::npos || e.front() == '=')
            return make_error(EINVAL, at + ": [app] env entry \"" + e + "\" must be KEY=VALUE");
    if (!a.entrypoint.empty() && a.entrypoint[0].front() != '/')
        return make_error(EINVAL, at + ": [app] entrypoint[0] must be an absolute path inside "
                                       "rootfs, got \"" + a.entrypoint[0] + "\"");
    if (a.workdir.empty() || a.workdir.front() != '/')
        return make_error(EINVAL, at + ": [app] workdir must be an absolute path");
    return cfg;
}

} // namespace kos::pkg
