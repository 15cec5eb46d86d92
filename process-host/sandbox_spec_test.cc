#include "sandbox_spec.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace kos::proc {
namespace {

TEST(NetRule, AddressesCidrsAndWildcards) {
    auto r = parse_host_rule("127.0.0.1", "x");
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->size(), 1u);
    NetRule rule = (*r)[0];
    rule.port = 8000;
    uint8_t lo[4] = {127, 0, 0, 1};
    uint8_t other[4] = {127, 0, 0, 2};
    EXPECT_TRUE(net_rule_matches(rule, Proto::Tcp, AF_INET, lo, 8000));
    EXPECT_FALSE(net_rule_matches(rule, Proto::Tcp, AF_INET, lo, 8001));
    EXPECT_FALSE(net_rule_matches(rule, Proto::Udp, AF_INET, lo, 8000));
    EXPECT_FALSE(net_rule_matches(rule, Proto::Tcp, AF_INET, other, 8000));

    auto net = parse_host_rule("10.1.0.0/17", "x");
    ASSERT_TRUE(net);
    NetRule n = (*net)[0];
    n.port = 53;
    uint8_t in[4] = {10, 1, 127, 9}, out[4] = {10, 1, 128, 9};
    EXPECT_TRUE(net_rule_matches(n, Proto::Tcp, AF_INET, in, 53));
    EXPECT_FALSE(net_rule_matches(n, Proto::Tcp, AF_INET, out, 53));

    auto local = parse_host_rule("localhost", "x");
    ASSERT_TRUE(local);
    ASSERT_EQ(local->size(), 2u);
    uint8_t one6[16] = {};
    one6[15] = 1;
    NetRule v6 = (*local)[1];
    v6.port = 1;
    EXPECT_TRUE(net_rule_matches(v6, Proto::Tcp, AF_INET6, one6, 1));
    EXPECT_FALSE(net_rule_matches(v6, Proto::Tcp, AF_INET, lo, 1));
}

TEST(NetRule, RejectsMalformedHostsWithThePlace) {
    for (const char* bad : {"1.2.3.4/33", "::1/129", "1.2.3.4/x", "1.2.3.4/"}) {
        auto r = parse_host_rule(bad, "bundle.toml: [network] connect");
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error().code, EINVAL);
        EXPECT_EQ(r.error().message.rfind("bundle.toml: [network] connect: \"", 0), 0u) << r.error().message;
    }
    auto name = parse_host_rule("example.org", "x");
    ASSERT_FALSE(name);
    EXPECT_EQ(name.error().code, ENOENT);
}

TEST(Publish, Parses) {
    auto p = parse_publish("8080:8000", "x");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->host_addr, "127.0.0.1");
    EXPECT_EQ(p->host_port, 8080);
    EXPECT_EQ(p->guest_port, 8000);
    auto q = parse_publish("0.0.0.0:80:8000", "x");
    ASSERT_TRUE(q);
    EXPECT_EQ(q->host_addr, "0.0.0.0");
    EXPECT_FALSE(parse_publish("80", "x"));
    EXPECT_FALSE(parse_publish("host:80:90", "x"));
    EXPECT_TRUE(parse_publish("8080:8000/tcp", "x"));
    // UDP ports are the VM backend's: refused with a clear error.
    auto udp = parse_publish("5353:53/udp", "x");
    ASSERT_FALSE(udp);
    EXPECT_NE(udp.error().message.find("TCP ports only"), std::string::npos) << udp.error().message;
}

class TempDir {
public:
    TempDir() {
        char t[] = "/tmp/kos-spec-XXXXXX";
        m_dir = ::mkdtemp(t);
    }
    ~TempDir() { [[maybe_unused]] int rc = std::system(("rm -rf " + m_dir).c_str()); }
    std::string path(const std::string& rel) const { return m_dir + "/" + rel; }
    void write(const std::string& rel, const std::string& text) {
        [[maybe_unused]] int rc = std::system(("mkdir -p $(dirname " + path(rel) + ")").c_str());
        std::ofstream(path(rel)) << text;
    }
    const std::string& dir() const { return m_dir; }

private:
    std::string m_dir;
};

TEST(ResolveInRootfs, FollowsSymlinksWithoutLeavingTheRoot) {
    TempDir t;
    t.write("rootfs/usr/bin/prog", "x");
    ASSERT_EQ(::symlink("usr/bin", t.path("rootfs/bin").c_str()), 0);
    ASSERT_EQ(::symlink("/../../../../usr/bin/prog", t.path("rootfs/usr/bin/up").c_str()), 0);
    ASSERT_EQ(::symlink("prog", t.path("rootfs/usr/bin/rel").c_str()), 0);
    std::string root = t.path("rootfs");
    EXPECT_EQ(*resolve_in_rootfs(root, "/bin/prog"), "/usr/bin/prog");
    EXPECT_EQ(*resolve_in_rootfs(root, "/bin/up"), "/usr/bin/prog");
    EXPECT_EQ(*resolve_in_rootfs(root, "/bin/rel"), "/usr/bin/prog");
    EXPECT_FALSE(resolve_in_rootfs(root, "/bin/missing"));
    EXPECT_FALSE(resolve_in_rootfs(root, "bin/prog"));
}

TEST(SpecFromBundle, ReadsLimitsAndNetwork) {
    TempDir t;
    t.write("rootfs/bin/prog", "#!/bin/sh\n");
    t.write("bundle.toml", "[app]\nname = \"t\"\nentrypoint = [\"/bin/prog\", \"a\"]\nhostname = \"h\"\n"
                           "[limits]\nmemory = \"64M\"\npids = 32\nopen_files = 256\ncpu_time = \"2500ms\"\n"
                           "[network]\nconnect = [{ proto = \"tcp\", host = \"127.0.0.1\", port = 80, label = \"web_t\" },\n"
                           "  { proto = \"tcp\", host = \"db.example\", port = 5432, label = \"db_t\" }]\n"
                           "listen = [{ proto = \"tcp\", port = 8000, label = \"http_t\" }]\n");
    auto s = spec_from_bundle_dir(t.dir(), {});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->argv, (std::vector<std::string>{"/bin/prog", "a"}));
    EXPECT_EQ(s->hostname, "h");
    EXPECT_EQ(s->limits.memory_bytes, 64ull << 20);
    EXPECT_EQ(s->limits.pids, 32u);
    EXPECT_EQ(s->limits.nofile, 256u);
    EXPECT_EQ(s->limits.cpu_seconds, 3u);
    ASSERT_EQ(s->connect.size(), 1u);
    EXPECT_EQ(s->connect[0].port, 80);
    ASSERT_EQ(s->bind.size(), 1u);
    EXPECT_TRUE(s->bind[0].any_addr);
    ASSERT_EQ(s->notes.size(), 1u);
    EXPECT_NE(s->notes[0].find("db.example"), std::string::npos);
    EXPECT_EQ(s->execs, (std::vector<std::string>{"/bin/prog"}));
}

TEST(SpecFromBundle, WithLabelsEveryRootfsEntryNeedsOne) {
    TempDir t;
    t.write("rootfs/bin/prog", "x");
    t.write("rootfs/bin/other", "x");
    t.write("bundle.toml", "[app]\nname = \"t\"\nentrypoint = [\"/bin/prog\"]\n[labels]\n"
                           "\"/bin\" = \"bin_t\"\n\"/bin/prog\" = \"prog_t\"\n");
    auto s = spec_from_bundle_dir(t.dir(), {});
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().message, "cannot run: /bin/other in the bundle's rootfs has no label (no rule of "
                                 "[labels] in " + t.dir() + "/bundle.toml matches it)");
    t.write("bundle.toml", "[app]\nname = \"t\"\nentrypoint = [\"/bin/prog\"]\n[labels]\n\"/**\" = \"app_t\"\n");
    auto ok = spec_from_bundle_dir(t.dir(), {});
    EXPECT_TRUE(ok) << ok.error().message;
}

TEST(SpecFromBundle, MissingProgramIsReported) {
    TempDir t;
    t.write("rootfs/x", "x");
    t.write("bundle.toml", "[app]\nname = \"t\"\nentrypoint = [\"/bin/nope\"]\n");
    auto s = spec_from_bundle_dir(t.dir(), {});
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().message, "cannot run /bin/nope: no such file in the bundle's rootfs");
}

TEST(SpecFromBundle, DynamicProgramAddsItsInterpreter) {
    struct stat st{};
    if (::stat("/usr/bin/true", &st) != 0)
        GTEST_SKIP() << "no /usr/bin/true";
    TempDir t;
    [[maybe_unused]] int rc = std::system(("mkdir -p " + t.path("rootfs/usr/bin") + " " + t.path("rootfs/lib64") +
                                           " && cp /usr/bin/true " + t.path("rootfs/usr/bin/") +
                                           " && cp /lib64/ld-linux-x86-64.so.2 " + t.path("rootfs/lib64/"))
                                              .c_str());
    t.write("bundle.toml", "[app]\nname = \"t\"\nentrypoint = [\"/usr/bin/true\"]\n");
    auto s = spec_from_bundle_dir(t.dir(), {});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->execs, (std::vector<std::string>{"/usr/bin/true", "/lib64/ld-linux-x86-64.so.2"}));
}

} // namespace
} // namespace kos::proc
