#include "pkg/bundle_config.h"

#include <gtest/gtest.h>

using kos::pkg::parse_bundle_config;

TEST(BundleConfig, ParsesApp) {
    auto cfg = parse_bundle_config(R"(
[app]
name = "hello"
entrypoint = ["/bin/hello", "-v"]
args = ["world"]
env = ["PATH=/bin", "X=1"]
workdir = "/data"
user = "1000:100"
)", "bundle.toml");
    ASSERT_TRUE(cfg) << cfg.error().message;
    EXPECT_EQ(cfg->app.name, "hello");
    EXPECT_EQ(cfg->app.entrypoint, (std::vector<std::string>{"/bin/hello", "-v"}));
    EXPECT_EQ(cfg->app.args, (std::vector<std::string>{"world"}));
    EXPECT_EQ(cfg->app.uid, 1000u);
    EXPECT_EQ(cfg->app.gid, 100u);
    EXPECT_EQ(cfg->app.workdir, "/data");
}

TEST(BundleConfig, SyntaxErrorNamesLineAndColumn) {
    auto cfg = parse_bundle_config("[app]\nname = \"x\"\nentrypoint = [\"/a\",\n", "b.toml");
    ASSERT_FALSE(cfg);
    EXPECT_NE(cfg.error().message.find("b.toml:"), std::string::npos) << cfg.error().message;
}

TEST(BundleConfig, RejectsUnknownSectionKeyAndBadValues) {
    auto a = parse_bundle_config("[ap]\nname='x'\n", "b.toml");
    ASSERT_FALSE(a);
    EXPECT_NE(a.error().message.find("unknown section [ap]"), std::string::npos);
    auto b = parse_bundle_config("[app]\nname='x'\nentrypont=['/a']\n", "b.toml");
    ASSERT_FALSE(b);
    EXPECT_NE(b.error().message.find("b.toml:3:1: unknown key [app] entrypont"), std::string::npos)
        << b.error().message;
    auto c = parse_bundle_config("[app]\nname='x'\nentrypoint='/a'\n", "b.toml");
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("must be an array of strings"), std::string::npos);
    auto d = parse_bundle_config("[app]\nname='x'\nuser='root'\n", "b.toml");
    ASSERT_FALSE(d);
    EXPECT_NE(d.error().message.find("UID:GID"), std::string::npos);
    auto e = parse_bundle_config("[app]\nname='x'\nentrypoint=['bin/a']\n", "b.toml");
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message.find("absolute path"), std::string::npos);
    auto f = parse_bundle_config("", "b.toml");
    ASSERT_FALSE(f);
    EXPECT_NE(f.error().message.find("missing [app]"), std::string::npos);
}

TEST(BundleConfig, ParsesBehaviorSections) {
    auto cfg = parse_bundle_config(R"(
[app]
name = "web"
version = "2.1"
entrypoint = ["/bin/web"]

[labels]
"/**" = "web_file_t"
"/bin/**" = "web_exec_t"

[policy]
domain = "web_t"
sources = ["policy/web.kpol"]

[limits]
memory = "256MiB"
vcpus = 2
cpu_time = "30s"
wall_time = 600
output = "1MiB"
pids = 64
open_files = 256

[network]
listen = [{ proto = "tcp", port = 8080, label = "http_port_t" }]
connect = [{ proto = "udp", host = "10.0.0.0/8", port = 53, label = "dns_port_t" }]

[volumes.data]
path = "/data"
access = "rw"
label = "web_data_t"
)", "bundle.toml");
    ASSERT_TRUE(cfg) << cfg.error().message;
    ASSERT_EQ(cfg->labels.size(), 2u);
    EXPECT_EQ(cfg->labels[1].pattern, "/bin/**");
    EXPECT_EQ(cfg->labels[1].label, "web_exec_t");
    EXPECT_EQ(cfg->policy.domain, "web_t");
    EXPECT_EQ(cfg->policy.sources, std::vector<std::string>{"policy/web.kpol"});
    EXPECT_EQ(cfg->limits.memory_bytes, 256ull << 20);
    EXPECT_EQ(cfg->limits.vcpus, 2u);
    EXPECT_EQ(cfg->limits.cpu_time_ms, 30000u);
    EXPECT_EQ(cfg->limits.wall_time_ms, 600000u);
    EXPECT_EQ(cfg->limits.output_bytes, 1u << 20);
    EXPECT_EQ(cfg->limits.pids, 64u);
    EXPECT_EQ(cfg->limits.open_files, 256u);
    ASSERT_EQ(cfg->network.listen.size(), 1u);
    EXPECT_EQ(cfg->network.listen[0].port, 8080);
    EXPECT_EQ(cfg->network.connect[0].host, "10.0.0.0/8");
    EXPECT_EQ(cfg->network.connect[0].label, "dns_port_t");
    ASSERT_EQ(cfg->volumes.size(), 1u);
    EXPECT_TRUE(cfg->volumes[0].writable);
    EXPECT_EQ(cfg->volumes[0].label, "web_data_t");
    EXPECT_TRUE(kos::pkg::require_behavior_config(*cfg, "b"));
}

TEST(BundleConfig, BehaviorSectionErrorsNameTheField) {
    auto expect_err = [](const std::string& text, const std::string& needle) {
        auto cfg = parse_bundle_config("[app]\nname='x'\n" + text, "b.toml");
        ASSERT_FALSE(cfg) << text;
        EXPECT_NE(cfg.error().message.find(needle), std::string::npos) << cfg.error().message;
    };
    expect_err("[labels]\n'bin/**' = 'a_t'\n", "b.toml:4:1: [labels] pattern \"bin/**\": must be an absolute path");
    expect_err("[labels]\n'/bin/**' = '1bad'\n", "must map to a label");
    expect_err("[policy]\ndomain='a_t'\nsources=['../x']\n", "[policy] source \"../x\"");
    expect_err("[policy]\ndomain='a_t'\nsources=['rootfs/p']\n", "outside rootfs/");
    expect_err("[limits]\nmemory='12XB'\n", "unknown unit \"XB\"");
    expect_err("[limits]\nvcpu=2\n", "unknown key [limits] vcpu");
    expect_err("[network]\nlisten=[{port=80}]\n", "[network.listen] label is required");
    expect_err("[network]\nlisten=[{port=0, label='p_t'}]\n", "port must be an integer from 1 to 65535");
    expect_err("[volumes.d]\npath='data'\nlabel='d_t'\n", "path must be a normalized absolute path");
}

TEST(BundleConfig, RequireBehaviorConfigNamesTheMissingSection) {
    auto a = parse_bundle_config("[app]\nname='x'\n", "b.toml");
    ASSERT_TRUE(a);
    auto r = kos::pkg::require_behavior_config(*a, "b.toml");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("missing [labels] section"), std::string::npos);
    auto b = parse_bundle_config("[app]\nname='x'\n[labels]\n'/**'='a_t'\n", "b.toml");
    ASSERT_TRUE(b);
    r = kos::pkg::require_behavior_config(*b, "b.toml");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("missing [policy] section"), std::string::npos);
}

// Inputs that crash toml++ 3.3 (found by tests/fuzz/pkg_config_fuzz.cc) are
// refused with a position before toml++ sees them.
TEST(BundleConfig, RefusesInputsThatBreakTheTomlLibrary) {
    struct Case {
        std::string text, message;
    } cases[] = {
        {"[`app]\n", "b.toml:1:1: invalid table header"},
        {"[app]\nname = \"x" + std::string(1, '\0') + "y\"\n", "b.toml:2:10: control character (byte 0)"},
        {"[app]\nname = 5\xc5\xbb\n", "b.toml:2:9: non-ASCII byte"},
        {"x = " + std::string(40, '[') + "\n", "b.toml:1:37: arrays or inline tables nested deeper than 32"},
        {"x = [{ a = [ }]\n", "b.toml:1:14: mismatched '}'"},
        // toml++ takes any value shaped ....-..-.. followed by " D " for a
        // date-time with a space, and asserts (pkg_config_fuzz).
        {"\ne = 33/I------ 5 5", "b.toml:2:5: dates and times are not used"},
        {"e = 2024-01-01 5 ", "b.toml:1:5: dates and times are not used"},
    };
    for (const Case& c : cases) {
        auto cfg = parse_bundle_config(c.text, "b.toml");
        ASSERT_FALSE(cfg) << c.text;
        EXPECT_EQ(cfg.error().message.substr(0, c.message.size()), c.message) << cfg.error().message;
    }
    // Numbers with signs and exponents are no dates.
    auto numbers = parse_bundle_config(
        "[app]\nname = \"x\"\nentrypoint = [\"/a\"]\n[limits]\npids = +64\nopen_files = 1_024\n", "b.toml");
    EXPECT_TRUE(numbers) << numbers.error().message;
    // Brackets and non-header lines inside strings are fine.
    auto ok = parse_bundle_config("[app]\nname = \"x\"\nargs = [\"[`]\", '''\n[`not a header]\n''']\n", "b.toml");
    EXPECT_TRUE(ok) << ok.error().message;
}
