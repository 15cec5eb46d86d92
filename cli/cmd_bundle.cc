// `kos keygen / pack / verify / inspect / unpack / import`: bundle commands.
// Thin: parse options, call pkg/, print.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "instances.h"
#include "kos/rootfs_image.h"
#include "kos/support/file.h"
#include "pkg/bundle.h"
#include "pkg/oci_import.h"

namespace kos::cli {
namespace {

namespace rfs = kos::abi::rootfs;
using nlohmann::json;

int fail(const std::string& message) {
    std::fprintf(stderr, "kos: %s\n", message.c_str());
    return 1;
}

struct TrustArgs {
    std::vector<std::string> keys;
    std::string trust_dir;
    bool no_state = false;

    pkg::TrustOptions options() const {
        pkg::TrustOptions t = pkg::default_trust_options();
        if (!keys.empty() || !trust_dir.empty()) {
            t.key_files = keys;
            t.trust_dir = trust_dir;
        }
        if (no_state)
            t.state_dir.clear();
        t.policy_compiler = bundle_policy_compiler();
        return t;
    }
    void add_to(CLI::App* cmd) {
        cmd->add_option("--key", keys, "Trusted minisign public key file (repeatable)");
        cmd->add_option("--trust-dir", trust_dir,
                        "Directory of trusted *.pub keys (and a 'revoked' list of key ids); "
                        "default $KOS_TRUST_DIR or ~/.config/kos/trusted-keys");
        cmd->add_flag("--no-rollback-state", no_state,
                      "Do not check or record the highest accepted version on this host");
    }
};

std::string format_time(int64_t t) {
    if (t == 0)
        return "never";
    time_t tt = static_cast<time_t>(t);
    struct tm tm{};
    ::gmtime_r(&tt, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// "30d", "12h", "90m", "3600s" from now; "@UNIX"; or "YYYY-MM-DD" (UTC).
Result<int64_t> parse_expiry(const std::string& s) {
    if (s.empty())
        return 0;
    if (s[0] == '@' && s.size() > 1 && s.find_first_not_of("0123456789", 1) == std::string::npos)
        return std::stoll(s.substr(1));
    struct tm tm{};
    if (s.size() == 10 && ::strptime(s.c_str(), "%Y-%m-%d", &tm))
        return static_cast<int64_t>(::timegm(&tm));
    size_t digits = s.find_first_not_of("0123456789");
    if (digits != 0 && digits != std::string::npos && digits < 10 && digits + 1 == s.size()) {
        int64_t n = std::stoll(s.substr(0, digits));
        int64_t unit = s.back() == 'd' ? 86400 : s.back() == 'h' ? 3600 : s.back() == 'm' ? 60 : s.back() == 's' ? 1 : 0;
        if (unit)
            return static_cast<int64_t>(::time(nullptr)) + n * unit;
    }
    return make_error(EINVAL, "--expires \"" + s + "\": use a duration (30d, 12h), a date (2027-01-31) "
                                                   "or @UNIX_SECONDS");
}

class Progress {
public:
    explicit Progress(const char* what) : m_what(what), m_tty(::isatty(STDOUT_FILENO) == 1) {}
    ~Progress() {
        if (m_tty && m_shown)
            std::printf("\r\033[K");
        std::fflush(stdout);
    }
    std::function<void(uint64_t, uint64_t)> callback() {
        if (!m_tty)
            return {};
        return [this](uint64_t files, uint64_t bytes) {
            time_t now = ::time(nullptr);
            if (now == m_last)
                return;
            m_last = now;
            m_shown = true;
            std::printf("\r\033[K%s: %llu files, %.1f MiB", m_what, static_cast<unsigned long long>(files),
                        static_cast<double>(bytes) / (1 << 20));
            std::fflush(stdout);
        };
    }

private:
    const char* m_what;
    bool m_tty;
    bool m_shown = false;
    time_t m_last = 0;
};

int keygen_command(const std::string& prefix, bool force) {
    if (auto r = pkg::init_crypto(); !r)
        return fail(r.error().message);
    std::string pub_path = prefix + ".pub", key_path = prefix + ".key";
    struct stat st{};
    if (!force && (::stat(pub_path.c_str(), &st) == 0 || ::stat(key_path.c_str(), &st) == 0))
        return fail(prefix + ".key or .pub already exists (use --force to overwrite)");
    auto [pub, sec] = pkg::generate_keypair();
    std::string sec_text = pkg::format_secret_key(sec), pub_text = pkg::format_public_key(pub);
    if (auto r = write_file_atomic(key_path, sec_text.data(), sec_text.size(), 0600); !r)
        return fail(r.error().message);
    if (auto r = write_file_atomic(pub_path, pub_text.data(), pub_text.size(), 0644); !r)
        return fail(r.error().message);
    std::printf("key id %s\nsecret key: %s (keep it private)\npublic key: %s\n",
                pkg::key_id_hex(pub.key_id).c_str(), key_path.c_str(), pub_path.c_str());
    return 0;
}

struct PackArgs {
    std::string dir, out, key, expires;
};

int pack_command(const PackArgs& a) {
    pkg::PackOptions opts;
    opts.policy_compiler = bundle_policy_compiler();
    pkg::SecretKey sec;
    if (!a.key.empty()) {
        auto text = read_text_file(a.key, 4096);
        if (!text)
            return fail(text.error().message);
        auto k = pkg::parse_secret_key(*text, a.key);
        if (!k)
            return fail(k.error().message);
        sec = *k;
        opts.key = &sec;
    }
    auto exp = parse_expiry(a.expires);
    if (!exp)
        return fail(exp.error().message);
    opts.expires = *exp;
    // Reproducible builds: SOURCE_DATE_EPOCH fixes the manifest's creation time.
    if (const char* sde = ::getenv("SOURCE_DATE_EPOCH"); sde && *sde) {
        std::string v = sde;
        if (v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
            return fail("SOURCE_DATE_EPOCH must be a number of seconds");
        opts.created = std::stoll(v);
    }
    Progress progress("packing");
    opts.progress = progress.callback();
    auto r = pkg::pack_bundle(a.dir, a.out, opts);
    if (!r)
        return fail("pack " + a.dir + ": " + r.error().message);
    for (const std::string& s : r->report.skipped)
        std::fprintf(stderr, "kos: note: %s\n", s.c_str());
    std::printf("%s: %s %s, %u entries, %llu bytes, %s\n", a.out.c_str(), r->manifest.name.c_str(),
                r->manifest.version.c_str(), r->entries, static_cast<unsigned long long>(r->file_size),
                opts.key ? ("signed by " + pkg::key_id_hex(sec.key_id)).c_str() : "unsigned");
    return 0;
}

int verify_command(const std::string& bundle, const TrustArgs& ta) {
    pkg::TrustOptions t = ta.options();
    t.check_file_digests = true;
    auto b = pkg::open_bundle_for_run(bundle, t);
    if (!b)
        return fail("verify: " + b.error().message);
    std::string sig = b->signature.verified  ? "signature verified (key " + b->signature.key_id + ")"
                      : b->signature.present ? "signature NOT checked (no trusted key configured)"
                                             : "unsigned";
    std::printf("%s: ok: %s %s, all digests match, %s\n", bundle.c_str(), b->manifest.name.c_str(),
                b->manifest.version.c_str(), sig.c_str());
    return 0;
}

json inspect_json(const pkg::RunnableBundle& b) {
    const pkg::BundleConfig& c = b.config;
    json j;
    j["bundle"] = b.path;
    j["form"] = b.packed ? "packed" : "directory";
    j["manifest"] = {{"name", b.manifest.name},       {"version", b.manifest.version},
                     {"created", b.manifest.created}, {"expires", b.manifest.expires},
                     {"domain", b.manifest.domain}};
    json sections = json::array();
    for (const pkg::ManifestSection& s : b.manifest.sections)
        sections.push_back({{"kind", pkg::section_kind_name(s.kind)},
                            {"name", s.name},
                            {"offset", s.offset},
                            {"size", s.size},
                            {"sha256", pkg::to_hex(s.digest)}});
    j["manifest"]["sections"] = sections;
    j["signature"] = {{"present", b.signature.present},
                      {"verified", b.signature.verified},
                      {"key_id", b.signature.key_id},
                      {"trusted_comment", b.signature.trusted_comment}};
    j["app"] = {{"entrypoint", c.app.entrypoint}, {"args", c.app.args},   {"env", c.app.env},
                {"workdir", c.app.workdir},       {"uid", c.app.uid},     {"gid", c.app.gid},
                {"hostname", c.app.hostname}};
    j["policy"] = {{"domain", c.policy.domain},
                   {"sources", c.policy.sources},
                   {"compiled_bytes", b.compiled_policy.size()}};
    const pkg::LimitsConfig& l = c.limits;
    j["limits"] = {{"memory_bytes", l.memory_bytes}, {"vcpus", l.vcpus},
                   {"cpu_time_ms", l.cpu_time_ms},   {"wall_time_ms", l.wall_time_ms},
                   {"output_bytes", l.output_bytes}, {"pids", l.pids},
                   {"open_files", l.open_files}};
    auto eps = [](const std::vector<pkg::NetworkEndpoint>& v) {
        json a = json::array();
        for (const auto& e : v)
            a.push_back({{"proto", e.proto}, {"host", e.host}, {"port", e.port}, {"label", e.label}});
        return a;
    };
    j["network"] = {{"listen", eps(c.network.listen)}, {"connect", eps(c.network.connect)}};
    json vols = json::array();
    for (const auto& v : c.volumes)
        vols.push_back({{"name", v.name}, {"path", v.path}, {"writable", v.writable}, {"label", v.label}});
    j["volumes"] = vols;
    json procs = json::array();
    for (const auto& p : c.processes)
        procs.push_back({{"name", p.name}, {"label", p.label}, {"program", p.program}, {"native", p.native}});
    j["processes"] = procs;
    json pipes = json::array();
    for (const auto& p : c.pipes)
        pipes.push_back({{"path", p.path}, {"label", p.label}});
    j["pipes"] = pipes;
    json rules = json::array();
    for (const auto& r : c.labels)
        rules.push_back({{"pattern", r.pattern}, {"label", r.label}});
    j["labels"]["rules"] = rules;
    rfs::RootfsView v(b.rootfs.data(), b.rootfs.size());
    std::map<std::string, uint64_t> per_label;
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < v.count(); ++i) {
        ++per_label[v.label(v.entry(i))];
        if ((v.entry(i).mode & rfs::kTypeMask) == rfs::kTypeFile)
            bytes += v.entry(i).size;
    }
    j["labels"]["entries_per_label"] = per_label;
    j["rootfs"] = {{"entries", v.count()}, {"file_bytes", bytes}, {"image_bytes", b.rootfs.size()}};
    return j;
}

void print_human(const json& j) {
    auto line = [](const char* k, const std::string& v) { std::printf("%-12s %s\n", k, v.c_str()); };
    auto str = [](const json& x) { return x.is_string() ? x.get<std::string>() : x.dump(); };
    const json& m = j["manifest"];
    line("bundle", str(j["bundle"]) + " (" + str(j["form"]) + ")");
    line("name", str(m["name"]));
    line("version", str(m["version"]));
    if (j["form"] == "packed") {
        line("created", format_time(m["created"].get<int64_t>()));
        line("expires", format_time(m["expires"].get<int64_t>()));
    }
    const json& s = j["signature"];
    line("signature", s["verified"].get<bool>() ? "verified, key " + str(s["key_id"])
                      : s["present"].get<bool>()
                          ? "present, NOT verified (key " + str(s["key_id"]) + "; give --key or --trust-dir)"
                          : "none (unsigned)");
    std::string cmd;
    for (const auto& a : j["app"]["entrypoint"])
        cmd += (cmd.empty() ? "" : " ") + a.get<std::string>();
    for (const auto& a : j["app"]["args"])
        cmd += " " + a.get<std::string>();
    line("command", cmd);
    line("workdir", str(j["app"]["workdir"]));
    line("user", str(j["app"]["uid"]) + ":" + str(j["app"]["gid"]));
    for (const auto& e : j["app"]["env"])
        line("env", e.get<std::string>());
    line("domain", str(j["policy"]["domain"]));
    for (const auto& src : j["policy"]["sources"])
        line("policy", src.get<std::string>());
    line("compiled", j["policy"]["compiled_bytes"].get<uint64_t>()
                         ? str(j["policy"]["compiled_bytes"]) + " bytes"
                         : "none (compiled at run time when the compiler is available)");
    std::string limits;
    for (auto& [k, v] : j["limits"].items())
        if (v.get<uint64_t>())
            limits += (limits.empty() ? "" : ", ") + k + "=" + v.dump();
    line("limits", limits.empty() ? "runtime defaults" : limits);
    for (const auto& e : j["network"]["listen"])
        line("listen", str(e["proto"]) + "/" + str(e["port"]) + " as " + str(e["label"]));
    for (const auto& e : j["network"]["connect"])
        line("connect", str(e["proto"]) + " " + str(e["host"]) + ":" + str(e["port"]) + " as " + str(e["label"]));
    if (j["network"]["listen"].empty() && j["network"]["connect"].empty())
        line("network", "none");
    for (const auto& v : j["volumes"])
        line("volume", str(v["name"]) + " at " + str(v["path"]) + (v["writable"].get<bool>() ? " rw" : " ro") +
                           " as " + str(v["label"]));
    for (const auto& p : j["processes"]) {
        std::string program;
        for (const auto& a : p["program"])
            program += (program.empty() ? "" : " ") + str(a);
        line("process", str(p["name"]) + " as " + str(p["label"]) + ": " + program +
                            (p["native"].get<bool>() ? " (native)" : ""));
    }
    for (const auto& p : j["pipes"])
        line("pipe", str(p["path"]) + " as " + str(p["label"]));
    for (const auto& r : j["labels"]["rules"])
        line("label rule", str(r["pattern"]) + " -> " + str(r["label"]));
    for (auto& [k, v] : j["labels"]["entries_per_label"].items())
        line("labeled", k + ": " + v.dump() + " entries");
    line("rootfs", str(j["rootfs"]["entries"]) + " entries, " + str(j["rootfs"]["file_bytes"]) +
                       " bytes of file data");
    for (const auto& sec : m["sections"])
        if (j["form"] == "packed")
            line("section", str(sec["kind"]) + " " + str(sec["name"]) + " " + str(sec["size"]) + " bytes sha256 " +
                                str(sec["sha256"]));
}

int inspect_command(const std::string& bundle, const TrustArgs& ta, bool as_json,
                    const std::string& export_prefix) {
    pkg::TrustOptions t = ta.options();
    // Inspect checks a signature only when asked to (it is for looking);
    // digests are always checked.
    if (ta.keys.empty() && ta.trust_dir.empty())
        t = pkg::TrustOptions{};
    t.state_dir.clear();
    t.policy_compiler = bundle_policy_compiler();
    auto b = pkg::open_bundle_for_run(bundle, t);
    if (!b)
        return fail("inspect: " + b.error().message);
    if (!export_prefix.empty()) {
        auto ms = pkg::read_manifest_and_signature(bundle);
        if (!ms)
            return fail(ms.error().message);
        if (auto r = write_file_atomic(export_prefix, ms->first.data(), ms->first.size()); !r)
            return fail(r.error().message);
        if (!ms->second.empty())
            if (auto r = write_file_atomic(export_prefix + ".minisig", ms->second.data(), ms->second.size()); !r)
                return fail(r.error().message);
    }
    json j = inspect_json(*b);
    if (as_json)
        std::printf("%s\n", j.dump(2, ' ', false, json::error_handler_t::replace).c_str());
    else
        print_human(j);
    return 0;
}

int unpack_command(const std::string& bundle, const std::string& out, const TrustArgs& ta) {
    std::vector<std::string> notes;
    auto r = pkg::unpack_bundle(bundle, out, ta.options(), &notes);
    if (!r)
        return fail("unpack: " + r.error().message);
    for (const std::string& n : notes)
        std::fprintf(stderr, "kos: note: %s\n", n.c_str());
    std::printf("%s\n", out.c_str());
    return 0;
}

int import_command(const std::string& kind, const std::string& src, const std::string& out) {
    pkg::ImportOptions opts;
    Progress progress("importing");
    opts.progress = progress.callback();
    auto r = kind == "oci-layout" ? pkg::import_oci_layout(src, out, opts)
                                  : pkg::import_docker_archive(src, out, opts);
    if (!r)
        return fail("import " + src + ": " + r.error().message);
    for (const std::string& n : r->notes)
        std::fprintf(stderr, "kos: note: %s\n", n.c_str());
    std::printf("%s: %u layers, %llu entries; review the draft behavior config in %s/bundle.toml and "
                "%s/policy/ before packing\n",
                out.c_str(), r->layers, static_cast<unsigned long long>(r->entries), out.c_str(), out.c_str());
    return 0;
}

} // namespace

void add_bundle_commands(CLI::App& app, Context& ctx) {
    auto prefix = std::make_shared<std::string>();
    auto force = std::make_shared<bool>(false);
    CLI::App* keygen = app.add_subcommand("keygen", "Create an Ed25519 signing key pair (minisign format)");
    keygen->add_option("-o,--output", *prefix, "Writes PREFIX.key (0600) and PREFIX.pub")->required();
    keygen->add_flag("--force", *force, "Overwrite existing key files");
    keygen->callback([prefix, force, &ctx] { ctx.exit_status = keygen_command(*prefix, *force); });

    auto pa = std::make_shared<PackArgs>();
    CLI::App* pack = app.add_subcommand("pack", "Pack a bundle directory into a single signed file");
    pack->add_option("dir", pa->dir, "Bundle directory (bundle.toml, rootfs/, policy sources)")->required();
    pack->add_option("-o,--output", pa->out, "Output file (e.g. app.kos)")->required();
    pack->add_option("--sign", pa->key, "Secret key file from kos keygen");
    pack->add_option("--expires", pa->expires, "Expiry: 30d, 12h, 2027-01-31 or @UNIX_SECONDS");
    pack->callback([pa, &ctx] { ctx.exit_status = pack_command(*pa); });

    auto vb = std::make_shared<std::string>();
    auto vt = std::make_shared<TrustArgs>();
    CLI::App* verify = app.add_subcommand("verify", "Verify a bundle: every digest, and its signature");
    verify->add_option("bundle", *vb, "Packed bundle file or bundle directory")->required();
    vt->add_to(verify);
    verify->callback([vb, vt, &ctx] { ctx.exit_status = verify_command(*vb, *vt); });

    auto ib = std::make_shared<std::string>();
    auto it = std::make_shared<TrustArgs>();
    auto ij = std::make_shared<bool>(false);
    auto ie = std::make_shared<std::string>();
    CLI::App* inspect = app.add_subcommand(
        "inspect", "Show a bundle's manifest, policy, labels and signature, or an instance's state (JSON)");
    inspect->add_option("bundle", *ib,
                        "Packed bundle file or bundle directory; or, when no such path exists, an "
                        "instance's name or id (kos ps)")
        ->required();
    inspect->add_flag("--json", *ij, "Machine-readable output");
    inspect->add_option("--export-manifest", *ie,
                        "Also write the signed manifest to FILE and its signature to FILE.minisig "
                        "(check with: minisign -Vm FILE -p KEY.pub)");
    it->add_to(inspect);
    inspect->callback([ib, it, ij, ie, &ctx] {
        ctx.exit_status = instances::inspect_wants_instance(*ib) ? instances::inspect_command(*ib)
                                                                 : inspect_command(*ib, *it, *ij, *ie);
    });

    auto ub = std::make_shared<std::string>();
    auto uo = std::make_shared<std::string>();
    auto ut = std::make_shared<TrustArgs>();
    CLI::App* unpack = app.add_subcommand("unpack", "Verify a packed bundle and write it as a directory");
    unpack->add_option("bundle", *ub, "Packed bundle file")->required();
    unpack->add_option("dir", *uo, "New directory to create")->required();
    ut->add_to(unpack);
    unpack->callback([ub, uo, ut, &ctx] { ctx.exit_status = unpack_command(*ub, *uo, *ut); });

    CLI::App* import = app.add_subcommand("import", "Import an OCI image as a bundle directory");
    import->require_subcommand(1);
    for (const char* kind : {"oci-layout", "docker-archive"}) {
        auto src = std::make_shared<std::string>();
        auto out = std::make_shared<std::string>();
        CLI::App* sub = import->add_subcommand(
            kind, std::string(kind) == "oci-layout" ? "Import an OCI image layout directory"
                                                    : "Import a docker save / podman save tarball");
        sub->add_option("source", *src, std::string(kind) == "oci-layout" ? "OCI layout directory" : "Tarball")
            ->required();
        sub->add_option("-o,--output", *out, "Bundle directory to create")->required();
        std::string k = kind;
        sub->callback([k, src, out, &ctx] { ctx.exit_status = import_command(k, *src, *out); });
    }
}

} // namespace kos::cli
