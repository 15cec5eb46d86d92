// The process backend's verdicts from a compiled policy: the supervisor's
// decision functions against a plain engine (as the guest kernel uses it),
// and what spec_from_bundle_dir derives from the policy (executables,
// label-narrowed reads, refusals).
#include "sandbox_policy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "kos/policy/audit_json.h"
#include "kos/policy/compiler.h"
#include "sandbox_spec.h"
#include "supervisor.h"

namespace kos::proc {
namespace {

namespace sec = security;

const char* kPolicy = R"(# the process backend's unit-test policy
idl "net.kidl"
domain app_t, net_t
resource bin_t, data_t, secret_t
class file { read: read, write: write, execute: read }

allow execute app_t -> app_t where program glob "/bin/*"
deny execute app_t -> app_t where program == "/bin/forbidden"
allow request app_t -> net_t net.Socket.connect where address in 127.0.0.0/8 and proto == 6
deny request app_t -> net_t net.Socket.connect where port == 9
allow request app_t -> net_t net.Socket.connect where address in 2001:db8::/32 and port == 443
allow request app_t -> net_t net.Socket.bind where port == 8000
audit allow request app_t -> net_t net.Socket.connect where address == 192.0.2.1 and port == 53 and proto == 17
allow security app_t -> { bin_t, data_t } file.read

test "loopback, not port 9" {
    expect allow request app_t -> net_t net.Socket.connect address=127.0.0.1 port=80 proto=6
    expect deny request app_t -> net_t net.Socket.connect address=127.0.0.1 port=9 proto=6
}
)";

std::vector<uint8_t> compile(const std::string& text) {
    auto blob = policy::compile_bundle_policy("app_t", {{"policy/app.kpol", text}});
    EXPECT_TRUE(blob) << (blob ? "" : blob.error().message);
    return blob ? *blob : std::vector<uint8_t>{};
}

IpEndpoint endpoint(const char* text, uint16_t port) {
    IpEndpoint ep{};
    ep.port = port;
    if (::inet_pton(AF_INET, text, ep.addr) == 1) {
        ep.family = AF_INET;
    } else {
        ep.family = AF_INET6;
        EXPECT_EQ(::inet_pton(AF_INET6, text, ep.addr), 1) << text;
    }
    return ep;
}

// The guest kernel's side: a plain engine and requests built by hand from
// net.kidl (connect 0x200/2: address, port, proto; bind 0x200/3: socket,
// address, port) and the execute kind (one string).
struct GuestEngine {
    sec::Engine engine;
    std::vector<uint64_t> state;
    explicit GuestEngine(const std::vector<uint8_t>& blob) {
        state.assign(sec::Engine::required_state_size(blob.data(), blob.size()) / 8 + 8, 0);
        EXPECT_EQ(engine.load(blob.data(), blob.size(), state.data(), state.size() * 8),
                  sec::LoadError::None);
    }
    uint32_t label(const char* name) const {
        return engine.find_label(name, static_cast<uint32_t>(std::strlen(name)));
    }
    static void mapped(const char* text, uint8_t out[16]) {
        uint8_t v4[4];
        if (::inet_pton(AF_INET, text, v4) == 1) {
            std::memset(out, 0, 16);
            out[10] = out[11] = 0xff;
            std::memcpy(out + 12, v4, 4);
        } else {
            ::inet_pton(AF_INET6, text, out);
        }
    }
    sec::Verdict connect(const char* addr, uint16_t port, uint8_t proto) {
        uint8_t a[16];
        mapped(addr, a);
        sec::FieldValue f[3] = {{0, a, 16}, {port, nullptr, 0}, {proto, nullptr, 0}};
        return engine.decide(
            {sec::Kind::Request, label("app_t"), label("net_t"), 0x200, 2, f, 3, 0});
    }
    sec::Verdict bind(const char* addr, uint16_t port) {
        uint8_t a[16];
        mapped(addr, a);
        sec::FieldValue f[3] = {{0, nullptr, 0}, {0, a, 16}, {port, nullptr, 0}};
        return engine.decide(
            {sec::Kind::Request, label("app_t"), label("net_t"), 0x200, 3, f, 3, 0});
    }
    sec::Verdict execute(const std::string& program) {
        sec::FieldValue f{0, reinterpret_cast<const uint8_t*>(program.data()),
                          static_cast<uint32_t>(program.size())};
        return engine.decide({sec::Kind::Execute, label("app_t"), label("app_t"), 0, 0, &f, 1, 0});
    }
};

struct Case {
    enum { Connect, Bind, Execute } op;
    const char* what; // address or program
    uint16_t port;
    uint8_t proto;
    bool allow; // what the policy says, so the table itself is checked too
};

// The same compiled policy, the same requests: the supervisor's decision
// functions and the guest kernel's engine give the same verdict and rule.
TEST(SandboxPolicy, SameVerdictsAsAPlainEngineForTheSameRequests) {
    auto blob = compile(kPolicy);
    ASSERT_FALSE(blob.empty());
    auto sup = SandboxPolicy::load(blob, "app_t");
    ASSERT_TRUE(sup) << sup.error().message;
    GuestEngine guest(blob);
    const Case cases[] = {
        {Case::Connect, "127.0.0.1", 80, 6, true},
        {Case::Connect, "127.0.0.1", 8000, 6, true},
        {Case::Connect, "127.1.2.3", 22, 6, true},
        {Case::Connect, "127.0.0.1", 9, 6, false},   // the explicit deny beats the allow
        {Case::Connect, "127.0.0.1", 80, 17, false}, // UDP
        {Case::Connect, "10.1.2.3", 80, 6, false},
        {Case::Connect, "::1", 80, 6, false},
        {Case::Connect, "2001:db8::5", 443, 6, true},
        {Case::Connect, "2001:db8::5", 444, 6, false},
        {Case::Connect, "2001:db9::5", 443, 6, false},
        {Case::Connect, "192.0.2.1", 53, 17, true}, // audited allow
        {Case::Connect, "192.0.2.1", 53, 6, false},
        {Case::Bind, "0.0.0.0", 8000, 6, true},
        {Case::Bind, "127.0.0.1", 8000, 6, true},
        {Case::Bind, "::", 8000, 6, true},
        {Case::Bind, "127.0.0.1", 8001, 6, false},
        {Case::Execute, "/bin/sbx_probe", 0, 0, true},
        {Case::Execute, "/bin/sh", 0, 0, true},
        {Case::Execute, "/bin/forbidden", 0, 0, false}, // explicit deny
        {Case::Execute, "/usr/bin/python3", 0, 0, false},
        {Case::Execute, "/bin/sub/x", 0, 0, false},
        {Case::Execute, "", 0, 0, false},
    };
    int allowed = 0;
    for (const Case& c : cases) {
        PolicyDecision s;
        sec::Verdict g;
        switch (c.op) {
        case Case::Connect:
            s = (*sup)->decide_connect(endpoint(c.what, c.port), c.proto, 0);
            g = guest.connect(c.what, c.port, c.proto);
            break;
        case Case::Bind:
            s = (*sup)->decide_bind(endpoint(c.what, c.port), 0);
            g = guest.bind(c.what, c.port);
            break;
        case Case::Execute:
            s = (*sup)->decide_execute(c.what, 0);
            g = guest.execute(c.what);
            break;
        }
        std::string what = std::string(c.op == Case::Connect ? "connect "
                                       : c.op == Case::Bind  ? "bind "
                                                             : "execute ") +
                           c.what + ":" + std::to_string(c.port) + "/" + std::to_string(c.proto);
        EXPECT_EQ(s.verdict.allow, g.allow) << what;
        EXPECT_EQ(s.verdict.rule, g.rule) << what;
        EXPECT_EQ(s.verdict.audit, g.audit) << what;
        EXPECT_EQ(s.verdict.allow, c.allow)
            << what << " by " << policy::describe_rule((*sup)->engine(), s.verdict.rule);
        allowed += s.verdict.allow;
    }
    EXPECT_EQ(allowed, 10);

    // The explicit deny is named by its place in the source.
    PolicyDecision d = (*sup)->decide_connect(endpoint("127.0.0.1", 9), 6, 0);
    ASSERT_TRUE(d.audited);
    EXPECT_EQ(
        policy::render_audit_human((*sup)->engine(), d.record),
        "kos: denied request app_t -> net_t net.Socket.connect address=127.0.0.1 port=9 proto=6 "
        "[rule policy/app.kpol:10:1]");
    std::string json = policy::render_audit_json((*sup)->engine(), d.record);
    EXPECT_NE(json.find("\"rule\":\"policy/app.kpol:10:1\""), std::string::npos) << json;
    d = (*sup)->decide_execute("/bin/forbidden", 0);
    ASSERT_TRUE(d.audited);
    EXPECT_NE(
        policy::render_audit_human((*sup)->engine(), d.record).find("[rule policy/app.kpol:8:1]"),
        std::string::npos);
}

TEST(SandboxPolicy, LoadRefusesAnUndeclaredDomainAndABrokenBlob) {
    auto blob = compile(kPolicy);
    auto other = SandboxPolicy::load(blob, "web_t");
    ASSERT_FALSE(other);
    EXPECT_EQ(other.error().message,
              "the program's label web_t ([policy] domain) is not declared by the bundle's policy");
    blob[blob.size() / 2] ^= 0xff;
    auto bad = SandboxPolicy::load(blob, "app_t");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("the compiled policy cannot be loaded"), std::string::npos);
}

TEST(SandboxPolicy, FileLabelsAndTheNetLabel) {
    auto sup = SandboxPolicy::load(compile(kPolicy), "app_t");
    ASSERT_TRUE(sup);
    EXPECT_TRUE((*sup)->has_file_class());
    EXPECT_TRUE((*sup)->declares_net_label());
    EXPECT_TRUE((*sup)->allows_file("bin_t", "read"));
    EXPECT_FALSE((*sup)->allows_file("secret_t", "read"));
    EXPECT_FALSE((*sup)->allows_file("bin_t", "write"));
    EXPECT_FALSE((*sup)->allows_file("nope_t", "read"));
    EXPECT_FALSE((*sup)->allows_file("bin_t", "chmod"));
    // Without net_t every IP request is unknown, hence denied.
    auto bare =
        SandboxPolicy::load(compile("domain app_t\nallow execute app_t -> app_t\n"), "app_t");
    ASSERT_TRUE(bare);
    EXPECT_FALSE((*bare)->declares_net_label());
    EXPECT_FALSE((*bare)->has_file_class());
    PolicyDecision d = (*bare)->decide_connect(endpoint("127.0.0.1", 80), 6, 0);
    EXPECT_FALSE(d.verdict.allow);
    EXPECT_EQ(d.verdict.rule, sec::kRuleUnknown);
}

// ---- spec_from_bundle_dir with a policy -----------------------------------

class PolicyBundle {
  public:
    PolicyBundle(const std::string& policy, const std::string& extra_toml) {
        char tmpl[] = "/tmp/kos-polspec-XXXXXX";
        m_dir = ::mkdtemp(tmpl);
        for (const char* d : {"/rootfs", "/rootfs/bin", "/rootfs/bin/sub", "/rootfs/data",
                              "/rootfs/etc", "/policy"})
            ::mkdir((m_dir + d).c_str(), 0755);
        for (const char* f : {"/bin/app", "/bin/tool", "/bin/forbidden", "/bin/sub/x",
                              "/data/public.txt", "/data/secret.txt", "/etc/conf"})
            file(std::string("/rootfs") + f, "x");
        file("/policy/app.kpol", policy);
        file("/bundle.toml",
             "[app]\nname = \"t\"\nentrypoint = [\"/bin/app\"]\n[policy]\ndomain = \"app_t\"\n"
             "sources = [\"policy/app.kpol\"]\n" +
                 extra_toml);
    }
    ~PolicyBundle() { [[maybe_unused]] int rc = std::system(("rm -rf " + m_dir).c_str()); }
    void file(const std::string& rel, const std::string& text) {
        std::ofstream(m_dir + rel) << text;
    }
    const std::string& dir() const { return m_dir; }

  private:
    std::string m_dir;
};

const char* kLabels = "[labels]\n\"/**\" = \"bin_t\"\n\"/data/**\" = "
                      "\"data_t\"\n\"/data/secret.txt\" = \"secret_t\"\n"
                      "\"/etc/**\" = \"secret_t\"\n";

std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

TEST(SandboxPolicySpec, ExecutablesAndReadsComeFromThePolicy) {
    PolicyBundle b(kPolicy, kLabels);
    auto s = spec_from_bundle_dir(b.dir(), {});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_FALSE(s->policy.empty());
    EXPECT_TRUE(s->connect.empty());
    // /bin/app and /bin/tool (glob "/bin/*"), not /bin/forbidden (denied)
    // nor /bin/sub/x (`*` stops at '/').
    EXPECT_EQ(sorted(s->execs), (std::vector<std::string>{"/bin/app", "/bin/tool"}));
    // Readable: bin_t and data_t, not secret_t; directories whose whole
    // tree is readable get one rule.
    EXPECT_EQ(sorted(s->read_paths),
              (std::vector<std::string>{"/bin", "/data/public.txt", "/proc"}));
    // Listing: "/" has a readable label but /etc (secret_t) does not, so
    // only /data (readable, with an unreadable file) is listable alone.
    EXPECT_EQ(sorted(s->list_paths), (std::vector<std::string>{"/data"}));
    ASSERT_FALSE(s->report.empty());
    EXPECT_EQ(s->report[0].rfind("verdicts: the compiled bundle policy (policy/app.kpol)", 0), 0u)
        << s->report[0];
    // With volumes, the directories above their mount points that these
    // rules let the program list stay listable: /bin, not "/" (/etc is
    // secret_t) nor /srv (created, under no rule).
    pkg::VolumeMount sub{b.dir() + "/policy", "/bin/sub", false, "bin_t", ""};
    pkg::VolumeMount srv{b.dir() + "/policy", "/srv/x", false, "bin_t", ""};
    auto ok = add_volumes(*s, {sub, srv});
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(s->listable_dirs, (std::vector<std::string>{"/bin"}));
}

TEST(SandboxPolicySpec, AWholeDirectoryOfAllowedProgramsIsOneRule) {
    PolicyBundle b("domain app_t\nallow execute app_t -> app_t where program glob \"/bin/**\"\n",
                   "");
    auto s = spec_from_bundle_dir(b.dir(), {});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->execs, (std::vector<std::string>{"/bin"}));
    EXPECT_EQ(s->read_paths,
              (std::vector<std::string>{"/"})); // no class file: today's read-only rootfs
    bool said = false;
    for (const auto& l : s->report)
        said = said || l.find("declares no class file") != std::string::npos;
    EXPECT_TRUE(said);
}

// Asking about every file before the run must not spend the policy's
// limits: each question is answered as from the policy's initial state.
TEST(SandboxPolicySpec, AskingAboutTheRootfsDoesNotSpendLimits) {
    PolicyBundle b("domain app_t\nallow execute app_t -> app_t where program glob \"/bin/*\"\n"
                   "limit execute app_t -> app_t 1 per 1h\n",
                   "");
    auto s = spec_from_bundle_dir(b.dir(), {});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(sorted(s->execs), (std::vector<std::string>{"/bin/app", "/bin/forbidden", "/bin/tool"}));
    // The supervisor's engine starts fresh too: one execute, then the limit.
    auto p = SandboxPolicy::load(s->policy, "app_t");
    ASSERT_TRUE(p);
    EXPECT_TRUE((*p)->decide_execute("/bin/app", 1).verdict.allow);
    EXPECT_FALSE((*p)->decide_execute("/bin/app", 2).verdict.allow);
}

TEST(SandboxPolicySpec, AProgramThePolicyDoesNotAllowIsRefusedNamingTheRule) {
    PolicyBundle b(kPolicy, "");
    auto s = spec_from_bundle_dir(b.dir(), {"/bin/forbidden"});
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, EACCES);
    EXPECT_EQ(s.error().message.rfind(
                  "the bundle's policy does not allow app (app_t) to execute /bin/forbidden "
                  "[rule policy/app.kpol:8:1 (",
                  0),
              0u)
        << s.error().message;
}

TEST(SandboxPolicySpec, FailingPolicyTestsRefuseTheRun) {
    PolicyBundle b(std::string(kPolicy) + "test \"wrong\" {\n    expect allow execute app_t -> "
                                          "app_t program=\"/bin/forbidden\"\n}\n",
                   "");
    auto s = spec_from_bundle_dir(b.dir(), {});
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, EINVAL);
    EXPECT_NE(s.error().message.find("the policy's tests fail"), std::string::npos)
        << s.error().message;
    EXPECT_NE(s.error().message.find("policy/app.kpol:"), std::string::npos) << s.error().message;
}

TEST(SandboxPolicySpec, TooManyLandlockRulesIsAClearError) {
    PolicyBundle b(kPolicy, kLabels);
    // Alternating labels in one directory: one read rule per readable file.
    std::string labels =
        "[labels]\n\"/**\" = \"bin_t\"\n\"/data/**\" = \"data_t\"\n\"/data/s*\" = \"secret_t\"\n"
        "\"/etc/**\" = \"secret_t\"\n";
    b.file("/bundle.toml",
           "[app]\nname = \"t\"\nentrypoint = [\"/bin/app\"]\n[policy]\ndomain = \"app_t\"\n"
           "sources = [\"policy/app.kpol\"]\n" +
               labels);
    for (size_t i = 0; i < kMaxLandlockPathRules + 1; ++i) {
        b.file("/rootfs/data/p" + std::to_string(i), "");
        b.file("/rootfs/data/s" + std::to_string(i), "");
    }
    auto s = spec_from_bundle_dir(b.dir(), {});
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, EFBIG);
    EXPECT_NE(s.error().message.find("Landlock path rules (at most 4096)"), std::string::npos)
        << s.error().message;
}

TEST(SandboxPolicySpec, WithoutPolicySourcesTheSpecDecidesAndSaysSo) {
    PolicyBundle b(kPolicy, "");
    b.file("/bundle.toml",
           "[app]\nname = \"t\"\nentrypoint = [\"/bin/app\"]\n[policy]\ndomain = \"app_t\"\n");
    auto s = spec_from_bundle_dir(b.dir(), {});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_TRUE(s->policy.empty());
    EXPECT_EQ(s->execs, (std::vector<std::string>{"/bin/app"}));
    ASSERT_FALSE(s->report.empty());
    EXPECT_EQ(
        s->report[0].rfind(
            "verdicts: the sandbox spec, not the security engine ([policy] names no sources)", 0),
        0u)
        << s->report[0];
}

} // namespace
} // namespace kos::proc

namespace kos::proc {
namespace {

// Volumes are judged by their labels, and no rootfs rule reaches into one
// with rights its label does not give: rules above it are split into their
// other entries, rules at or beneath its mount point dropped.
TEST(SandboxPolicySpec, VolumesAreJudgedByLabelAndNoRootfsRuleReachesIntoThem) {
    PolicyBundle b("domain app_t\nresource bin_t, vol_t, secret_t\n"
                   "class file { read: read, write: write, execute: read }\n"
                   "allow execute app_t -> app_t where program glob \"/bin/**\"\n"
                   "allow security app_t -> { bin_t, vol_t } file.read\n"
                   "allow security app_t -> vol_t file.write\n",
                   "[labels]\n\"/**\" = \"bin_t\"\n");
    auto s = spec_from_bundle_dir(b.dir(), {});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->execs, (std::vector<std::string>{"/bin"}));
    EXPECT_EQ(s->read_paths, (std::vector<std::string>{"/"}));
    std::string host = b.dir() + "/policy"; // any directory
    pkg::VolumeMount over{host, "/bin/sub", true, "vol_t", ""};
    pkg::VolumeMount created{host, "/srv/x", false, "secret_t", ""};
    auto ok = add_volumes(*s, {over, created});
    ASSERT_TRUE(ok) << ok.error().message;
    ASSERT_EQ(s->volumes.size(), 2u);
    EXPECT_TRUE(s->volumes[0].readable);
    EXPECT_TRUE(s->volumes[0].writable);
    EXPECT_FALSE(s->volumes[0].create_mount_point);
    EXPECT_FALSE(s->volumes[1].readable);
    EXPECT_FALSE(s->volumes[1].writable);
    EXPECT_TRUE(s->volumes[1].create_mount_point);
    // EXECUTE on /bin would reach /bin/sub: split into the other files.
    EXPECT_EQ(sorted(s->execs), (std::vector<std::string>{"/bin/app", "/bin/forbidden", "/bin/tool"}));
    // Under a policy the supervisor performs every call on a volume path,
    // so no rule reaches into any volume, readable or not: read on "/" is
    // split into the root's other entries, and /bin into its other files.
    EXPECT_TRUE(s->volumes_by_supervisor);
    EXPECT_EQ(sorted(s->read_paths), (std::vector<std::string>{"/bin/app", "/bin/forbidden", "/bin/tool", "/data",
                                                               "/dev", "/etc", "/proc", "/tmp"}));
    // The directories above the mount points stay listable as "/" made
    // them: the supervisor opens them (supervisor_vfs.cc).
    EXPECT_EQ(sorted(s->listable_dirs), (std::vector<std::string>{"/", "/bin", "/srv"}));
    ASSERT_EQ(s->notes.size(), 2u);
    // The policy declares no vfs_t: every path in the volumes is refused.
    EXPECT_EQ(s->notes[0].find("the bundle's policy declares no vfs_t, the label of the VFS server that serves "
                               "volumes, so every path in " + host + " -> /bin/sub (rw, label vol_t) fails (EACCES); to "
                               "use the volumes, declare `domain vfs_t` and allow `request app_t -> vfs_t vfs.File.*`"),
              0u)
        << s->notes[0];
    EXPECT_NE(s->notes[1].find("add `allow security app_t -> secret_t file.read` to the bundle's policy "
                               "(policy/app.kpol)"),
              std::string::npos)
        << s->notes[1];

    // Mount points the rootfs cannot offer.
    auto again = spec_from_bundle_dir(b.dir(), {});
    ASSERT_TRUE(again);
    auto file = add_volumes(*again, {{host, "/data/public.txt/x", false, "vol_t", ""}});
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error().message, "/data/public.txt/x: /data is part of the bundle's rootfs and has no directory "
                                    "public.txt/x; create the mount point in the bundle or choose a path outside "
                                    "the rootfs's directories");
    auto hides = add_volumes(*again, {{host, "/bin", false, "vol_t", ""}});
    ASSERT_FALSE(hides);
    EXPECT_NE(hides.error().message.find("would hide the program /bin/app"), std::string::npos);
}

} // namespace
} // namespace kos::proc
