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
