#include "pkg/bundle_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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
    auto e2 = parse_bundle_config("[app]\nname='x'\nentrypoint=['']\n", "b.toml");
    ASSERT_FALSE(e2);
    EXPECT_NE(e2.error().message.find("entrypoint[0] must be an absolute path"), std::string::npos);
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
    expect_err("[limits]\nmemory='999999999999TiB'\n", "\"999999999999TiB\" is too large");
    // The bundle's own text in a message cannot drive the terminal.
    expect_err("[limits]\nmemory=\"1\\u001b[2J\"\n", "unknown unit \"\\x1b[2J\"");
    expect_err("[limits]\nmemory=\"1\\u009b2J\"\n", "unknown unit \"\\x9b2J\"");
    expect_err("[limits]\nvcpu=2\n", "unknown key [limits] vcpu");
    expect_err("[network]\nlisten=[{port=80}]\n", "[network.listen] label is required");
    expect_err("[network]\nlisten=[{port=0, label='p_t'}]\n", "port must be an integer from 1 to 65535");
    expect_err("[volumes.d]\npath='data'\nlabel='d_t'\n", "path must be a normalized absolute path");
}

// [[process]] runs a Linux program unless native = true; channels connect
// native programs only; [[pipe]] declares a named pipe with its label.
TEST(BundleConfig, ProcessesPipesAndTheirErrors) {
    auto cfg = parse_bundle_config("[app]\nname='x'\n"
                                   "[[process]]\nname='w'\nlabel='w_t'\nprogram=['/bin/sh', '-c', 'x']\n"
                                   "[[process]]\nname='n'\nlabel='n_t'\nprogram=['/bin/srv']\nnative=true\n"
                                   "[[pipe]]\npath='/run/jobs'\nlabel='jobs_t'\n",
                                   "b.toml");
    ASSERT_TRUE(cfg) << cfg.error().message;
    ASSERT_EQ(cfg->processes.size(), 2u);
    EXPECT_FALSE(cfg->processes[0].native);
    EXPECT_TRUE(cfg->processes[1].native);
    ASSERT_EQ(cfg->pipes.size(), 1u);
    EXPECT_EQ(cfg->pipes[0].path, "/run/jobs");
    EXPECT_EQ(cfg->pipes[0].label, "jobs_t");
    auto expect_err = [](const std::string& text, const std::string& needle) {
        auto c = parse_bundle_config("[app]\nname='x'\n" + text, "b.toml");
        ASSERT_FALSE(c) << text;
        EXPECT_NE(c.error().message.find(needle), std::string::npos) << c.error().message;
    };
    expect_err("[[process]]\nname='w'\nlabel='w_t'\nprogram=['/p']\nnative='yes'\n",
               "b.toml:7:8: [[process]] native must be true or false");
    expect_err("[[process]]\nname='w'\nlabel='w_t'\nprogram=['/p']\n"
               "[[channel]]\nname='c'\nclient='app'\nserver='w'\ninterface=7\n",
               "[[channel]] c: app is a Linux program, and channels connect native kos programs");
    expect_err("[[pipe]]\npath='run/jobs'\nlabel='j_t'\n", "[[pipe]] path must be a normalized absolute path");
    expect_err("[[pipe]]\npath='/tmp/jobs'\nlabel='j_t'\n", "/tmp is private to each label");
    expect_err("[[pipe]]\npath='/a b'\nlabel='j_t'\n", "without spaces");
    expect_err("[[pipe]]\npath='/p'\nlabel='1'\n", "[[pipe]] /p needs a label");
    expect_err("[[pipe]]\npath='/p'\nlabel='j_t'\n[[pipe]]\npath='/p'\nlabel='k_t'\n", "[[pipe]] /p is declared twice");
    expect_err("[[pipe]]\npath='/p'\nlabel='j_t'\nmode=1\n", "unknown key [[pipe]] mode");
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

// Inputs that crashed toml++ 3.3, which parsed bundle.toml before pkg/toml.h
// (found by tests/fuzz/pkg_config_fuzz.cc): refused with their position.
// pkg/toml_test.cc covers the parser itself.
TEST(BundleConfig, RefusesMalformedToml) {
    struct Case {
        std::string text, message;
    } cases[] = {
        {"[`app]\n", "b.toml:1:2: expected a key"},
        {"[app]\nname = \"x" + std::string(1, '\0') + "y\"\n", "b.toml:2:10: control character U+0000 in a string"},
        {"[app]\nname = 5\xc5\xbb\n",
         "b.toml:2:9: expected a new line or a comment after the value, found character U+017B"},
        {"x = " + std::string(40, '[') + "\n", "b.toml:2:1: expected a value"},
        {"x = " + std::string(70, '[') + "\n", "b.toml:1:69: tables and arrays nested deeper than 64"},
        {"x = [{ a = [ }]\n", "b.toml:1:14: expected a value"},
        {"\ne = 33/I------ 5 5", "b.toml:2:7: expected a new line or a comment after the value, found '/'"},
        {"e = 2024-01-01 5 ", "b.toml:1:5: dates and times are not supported"},
        {"[app]\nname = 'x'\n[app]\n", "b.toml:3:1: table [app] is defined twice (first at 1:1)"},
    };
    for (const Case& c : cases) {
        auto cfg = parse_bundle_config(c.text, "b.toml");
        ASSERT_FALSE(cfg) << c.text;
        EXPECT_EQ(cfg.error().message.substr(0, c.message.size()), c.message) << cfg.error().message;
    }
    // Numbers with signs and underscores are no dates.
    auto numbers = parse_bundle_config(
        "[app]\nname = \"x\"\nentrypoint = [\"/a\"]\n[limits]\npids = +64\nopen_files = 1_024\n", "b.toml");
    ASSERT_TRUE(numbers) << numbers.error().message;
    EXPECT_EQ(numbers->limits.open_files, 1024u);
    // Brackets and non-header lines inside strings are fine.
    auto ok = parse_bundle_config("[app]\nname = \"x\"\nargs = [\"[`]\", '''\n[`not a header]\n''']\n", "b.toml");
    EXPECT_TRUE(ok) << ok.error().message;
    // The text is bounded whoever read it.
    auto big = parse_bundle_config(std::string(kos::pkg::kMaxConfigBytes + 1, '#'), "b.toml");
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error().message, "b.toml:1:1: the file has 1048577 bytes; at most 1048576 are accepted");
}

// UTF-8 is TOML's encoding: comments and strings may use it.
TEST(BundleConfig, AcceptsUtf8InCommentsAndStrings) {
    auto cfg = parse_bundle_config("# caf\xc3\xa9\n[app]\nname = \"x\" # gr\xc3\xbc\xc3\x9f\n"
                                   "env = [\"GREETING=gr\xc3\xbc\xc3\x9f\", \"E=\\u00e9\"]\n",
                                   "b.toml");
    ASSERT_TRUE(cfg) << cfg.error().message;
    EXPECT_EQ(cfg->app.env, (std::vector<std::string>{"GREETING=gr\xc3\xbc\xc3\x9f", "E=\xc3\xa9"}));
}

// A value has the type its field names: no integers as booleans, no floats
// or booleans as counts.
TEST(BundleConfig, ValuesAreNotConverted) {
    auto native = parse_bundle_config("[app]\nname = 'x'\nnative = 1\n", "b.toml");
    ASSERT_FALSE(native);
    EXPECT_EQ(native.error().message, "b.toml:3:10: [app] native must be true or false");
    auto pids = parse_bundle_config("[app]\nname = 'x'\n[limits]\npids = 64.0\n", "b.toml");
    ASSERT_FALSE(pids);
    EXPECT_EQ(pids.error().message, "b.toml:4:8: [limits] pids must be an integer from 0 to 4194304");
    auto port = parse_bundle_config("[app]\nname = 'x'\n[network]\nlisten = [{port = true, label = 'p_t'}]\n",
                                    "b.toml");
    ASSERT_FALSE(port);
    EXPECT_EQ(port.error().message, "b.toml:4:11: [network.listen] port must be an integer from 1 to 65535");
}

// The bundles in the tree parse and carry a behavior config.
TEST(BundleConfig, BundlesInTheTreeParse) {
    size_t found = 0;
    for (const char* dir : {"examples", "tests"}) {
        for (const auto& entry :
             std::filesystem::recursive_directory_iterator(std::string(KOS_SOURCE_DIR) + "/" + dir)) {
            if (entry.path().filename() != kos::pkg::kConfigFileName)
                continue;
            ++found;
            std::ifstream in(entry.path(), std::ios::binary);
            std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            auto cfg = parse_bundle_config(text, entry.path());
            ASSERT_TRUE(cfg) << cfg.error().message;
            EXPECT_TRUE(kos::pkg::require_behavior_config(*cfg, entry.path())) << entry.path();
        }
    }
    EXPECT_GE(found, 4u);
}
