// End to end through the `kos` binary: keygen, pack --sign, verify,
// inspect --json, minisign on the exported manifest, unpack, and refusal
// of a tampered bundle.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "pkg/testing/temp_dir.h"

using kos::pkg::testing::make_bundle_dir;
using kos::pkg::testing::read_all;
using kos::pkg::testing::TempDir;
using kos::pkg::testing::write_all;

namespace {
struct CmdResult {
    int status;
    std::string out;
};
CmdResult run(const std::string& args) {
    std::string cmd = std::string(KOS_BINARY) + " " + args + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    std::string out;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
        out.append(buf.data(), n);
    int st = ::pclose(p);
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}
} // namespace

TEST(Cli, KeygenPackVerifyInspectUnpack) {
    TempDir t;
    make_bundle_dir(t, "src");
    ASSERT_EQ(run("keygen -o " + (t / "k")).status, 0);
    CmdResult pack = run("pack " + (t / "src") + " -o " + (t / "a.kos") + " --sign " + (t / "k.key") + " --expires 30d");
    ASSERT_EQ(pack.status, 0) << pack.out;
    std::string trust = " --key " + (t / "k.pub") + " --no-rollback-state";
    CmdResult verify = run("verify " + (t / "a.kos") + trust);
    EXPECT_EQ(verify.status, 0) << verify.out;
    EXPECT_NE(verify.out.find("ok: demo 1, all digests match, signature verified"), std::string::npos) << verify.out;

    CmdResult inspect = run("inspect --json " + (t / "a.kos") + trust + " --export-manifest " + (t / "m"));
    ASSERT_EQ(inspect.status, 0) << inspect.out;
    auto j = nlohmann::json::parse(inspect.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << inspect.out;
    EXPECT_EQ(j["manifest"]["name"], "demo");
    EXPECT_EQ(j["signature"]["verified"], true);
    EXPECT_EQ(j["policy"]["domain"], "app_t");
    EXPECT_EQ(j["labels"]["entries_per_label"]["app_exec_t"], 3); // /bin, /bin/app, /bin/cfg
    if (std::system("command -v minisign >/dev/null 2>&1") == 0) {
        std::string cmd = "minisign -Vm " + (t / "m") + " -p " + (t / "k.pub") + " >/dev/null 2>&1";
        EXPECT_EQ(std::system(cmd.c_str()), 0);
    }

    CmdResult unpack = run("unpack " + (t / "a.kos") + " " + (t / "out") + trust);
    ASSERT_EQ(unpack.status, 0) << unpack.out;
    EXPECT_EQ(read_all(t / "out/rootfs/bin/app"), "APP-BINARY-1");

    std::string bytes = read_all(t / "a.kos");
    bytes[bytes.size() / 2] ^= 1;
    write_all(t / "b.kos", bytes);
    CmdResult bad = run("verify " + (t / "b.kos") + trust);
    EXPECT_EQ(bad.status, 1);
    EXPECT_NE(bad.out.find("kos: verify: "), std::string::npos) << bad.out;
}

TEST(Cli, PackRefusesMissingBehaviorConfig) {
    TempDir t;
    make_bundle_dir(t, "src");
    write_all(t / "src/bundle.toml", kos::pkg::testing::bundle_toml("demo", "1", "", true));
    CmdResult r = run("pack " + (t / "src") + " -o " + (t / "a.kos"));
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.out.find("no behavior config: missing [labels] section"), std::string::npos) << r.out;
}

TEST(Cli, PackIsReproducibleWithSourceDateEpoch) {
    TempDir t;
    make_bundle_dir(t, "src");
    std::string env = "SOURCE_DATE_EPOCH=1700000000 ";
    std::string kos = KOS_BINARY;
    ASSERT_EQ(std::system((env + kos + " pack " + (t / "src") + " -o " + (t / "a.kos") + " >/dev/null").c_str()), 0);
    ASSERT_EQ(std::system((env + kos + " pack " + (t / "src") + " -o " + (t / "b.kos") + " >/dev/null").c_str()), 0);
    EXPECT_EQ(read_all(t / "a.kos"), read_all(t / "b.kos"));
}
