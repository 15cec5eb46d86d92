#include "pkg/bundle.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "kos/rootfs_image.h"
#include "pkg/bundle_format.h"
#include "pkg/testing/temp_dir.h"

using namespace kos::pkg;
using kos::pkg::testing::make_bundle_dir;
using kos::pkg::testing::read_all;
using kos::pkg::testing::TempDir;
using kos::pkg::testing::write_all;
namespace rfs = kos::abi::rootfs;

namespace {

struct Keys {
    PublicKey pub;
    SecretKey sec;
    Keys() {
        (void)init_crypto();
        auto kp = generate_keypair();
        pub = kp.first;
        sec = kp.second;
    }
};

PackOptions signed_by(const SecretKey& key, int64_t created = 0, int64_t expires = 0) {
    PackOptions o;
    o.key = &key;
    o.created = created;
    o.expires = expires;
    return o;
}

TrustOptions trusting(const PublicKey& k) {
    TrustOptions t;
    t.keys = {k};
    return t;
}

bool exists(const std::string& p) {
    struct stat st{};
    return ::lstat(p.c_str(), &st) == 0;
}

PackedHeader header_of(const std::string& file) {
    PackedHeader h{};
    std::memcpy(&h, file.data(), sizeof h);
    return h;
}

void set_header(std::string& file, const PackedHeader& h) { std::memcpy(file.data(), &h, sizeof h); }

// Every entry's path, mode, label, size and digest.
std::map<std::string, std::string> describe(std::span<const uint8_t> image) {
    rfs::RootfsView v(image.data(), image.size());
    std::map<std::string, std::string> out;
    for (uint32_t i = 0; i < v.count(); ++i) {
        const auto& e = v.entry(i);
        out[v.path(e)] = std::to_string(e.mode) + " " + v.label(e) + " " + std::to_string(e.size) + " " +
                         to_hex({e.digest, 32}) + " " + std::to_string(e.mtime_sec);
    }
    return out;
}

} // namespace

TEST(Bundle, OpensADirectoryWithLabelsAndPolicy) {
    TempDir t;
    make_bundle_dir(t, "b");
    auto b = open_bundle_for_run(t / "b", {});
    ASSERT_TRUE(b) << b.error().message;
    EXPECT_FALSE(b->packed);
    EXPECT_EQ(b->config.app.name, "demo");
    ASSERT_EQ(b->policy_sources.size(), 1u);
    EXPECT_EQ(b->policy_sources[0].name, "policy/app.kpol");
    rfs::RootfsView v(b->rootfs.data(), b->rootfs.size());
    ASSERT_EQ(v.validate(), rfs::Error::None);
    int64_t app = v.find("/bin/app", 8);
    ASSERT_GE(app, 0);
    EXPECT_STREQ(v.label(v.entry(uint32_t(app))), "app_exec_t");
    EXPECT_STREQ(v.label(v.entry(uint32_t(v.find("/etc/config", 11)))), "app_file_t");
    EXPECT_STREQ(v.label(v.entry(0)), "app_file_t");
}

TEST(Bundle, RoundTripPackVerifyUnpackKeepsContentsModesAndLabels) {
    TempDir t;
    Keys k;
    make_bundle_dir(t, "src");
    auto packed = pack_bundle(t / "src", t / "demo.kos", signed_by(k.sec));
    ASSERT_TRUE(packed) << packed.error().message;
    auto b = open_bundle_for_run(t / "demo.kos", trusting(k.pub));
    ASSERT_TRUE(b) << b.error().message;
    EXPECT_TRUE(b->packed);
    EXPECT_TRUE(b->signature.verified);
    EXPECT_EQ(b->signature.key_id, key_id_hex(k.pub.key_id));
    EXPECT_EQ(b->rootfs_offset % 4096, 0u);
    auto src = open_bundle_for_run(t / "src", {});
    ASSERT_TRUE(src);
    EXPECT_EQ(describe(b->rootfs), describe(src->rootfs));

    std::vector<std::string> notes;
    auto un = unpack_bundle(t / "demo.kos", t / "out", trusting(k.pub), &notes);
    ASSERT_TRUE(un) << un.error().message;
    EXPECT_EQ(read_all(t / "out/rootfs/bin/app"), "APP-BINARY-1");
    EXPECT_EQ(read_all(t / "out/policy/app.kpol"), read_all(t / "src/policy/app.kpol"));
    EXPECT_EQ(read_all(t / "out/bundle.toml"), read_all(t / "src/bundle.toml"));
    struct stat st{};
    ASSERT_EQ(::stat((t / "out/rootfs/etc/config").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    auto again = open_bundle_for_run(t / "out", {});
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(describe(again->rootfs), describe(b->rootfs));

    // minisign checks the manifest's signature independently.
    if (std::system("command -v minisign >/dev/null 2>&1") == 0) {
        auto ms = read_manifest_and_signature(t / "demo.kos");
        ASSERT_TRUE(ms);
        write_all(t / "manifest", ms->first);
        write_all(t / "manifest.minisig", ms->second);
        write_all(t / "k.pub", format_public_key(k.pub));
        std::string cmd = "minisign -Vm " + (t / "manifest") + " -p " + (t / "k.pub") + " >/dev/null 2>&1";
        EXPECT_EQ(std::system(cmd.c_str()), 0);
    }
}

// Attack 8: any flipped byte in a signed bundle is refused.
TEST(Bundle, Attack8EveryFlippedByteIsRefused) {
    TempDir t;
    Keys k;
    make_bundle_dir(t, "src");
    ASSERT_TRUE(pack_bundle(t / "src", t / "a.kos", signed_by(k.sec)));
    const std::string orig = read_all(t / "a.kos");
    TrustOptions trust = trusting(k.pub);
    trust.state_dir = t / "state";
    ASSERT_TRUE(open_bundle_for_run(t / "a.kos", trust));
    std::string state_before = read_all(t / "state/demo.version");
    size_t accepted = 0;
    // Every byte that is not zero padding, and every 61st padding byte.
    size_t tried = 0;
    for (size_t i = 0; i < orig.size(); ++i) {
        if (orig[i] == 0 && i % 61 != 0)
            continue;
        ++tried;
        std::string f = orig;
        f[i] ^= 0x01;
        write_all(t / "b.kos", f);
        if (open_bundle_for_run(t / "b.kos", trust))
            ++accepted;
    }
    EXPECT_EQ(accepted, 0u) << "of " << tried;
    EXPECT_EQ(read_all(t / "state/demo.version"), state_before);

    // The error names what does not match.
    auto flip_at = [&](size_t off) {
        std::string f = orig;
        f[off] ^= 0x20;
        write_all(t / "b.kos", f);
        auto r = open_bundle_for_run(t / "b.kos", trust);
        EXPECT_FALSE(r);
        return r ? std::string() : r.error().message;
    };
    auto b = open_bundle_for_run(t / "a.kos", trust);
    ASSERT_TRUE(b);
    rfs::RootfsView v(b->rootfs.data(), b->rootfs.size());
    const auto& app = v.entry(uint32_t(v.find("/bin/app", 8)));
    EXPECT_EQ(flip_at(b->rootfs_offset + app.data_offset),
              t / "b.kos" + ": rootfs file /bin/app: content does not match its SHA-256 digest "
                            "(rootfs SHA-256 does not match the manifest)");
    const ManifestSection* pol = b->manifest.find(SectionKind::Policy);
    EXPECT_EQ(flip_at(pol->offset),
              t / "b.kos" + ": policy policy/app.kpol: SHA-256 does not match the manifest");
    const ManifestSection* cfg = b->manifest.find(SectionKind::Config);
    EXPECT_EQ(flip_at(cfg->offset + 3),
              t / "b.kos" + ": config bundle.toml: SHA-256 does not match the manifest");
    PackedHeader h = header_of(orig);
    EXPECT_EQ(flip_at(h.manifest_offset + 30),
              t / "b.kos" + ": manifest does not match its digest in the header (modified manifest)");
    EXPECT_EQ(flip_at(2000), t / "b.kos" + ": header: reserved byte at offset 2000 is not zero (modified header)");
}

// Attack 9: parts of two validly signed bundles swapped.
TEST(Bundle, Attack9SwappedPartsBetweenSignedBundlesAreRejected) {
    TempDir t;
    Keys k;
    make_bundle_dir(t, "a", "demo", "1", "APP-BINARY-1");
    make_bundle_dir(t, "b", "demo", "1", "APP-BINARY-2");
    PackOptions po = signed_by(k.sec, 1000);
    ASSERT_TRUE(pack_bundle(t / "a", t / "a.kos", po));
    ASSERT_TRUE(pack_bundle(t / "b", t / "b.kos", po));
    std::string a = read_all(t / "a.kos"), b = read_all(t / "b.kos");
    ASSERT_EQ(a.size(), b.size());
    PackedHeader ha = header_of(a), hb = header_of(b);
    TrustOptions trust = trusting(k.pub);

    // B's signature on A's manifest.
    std::string x = a;
    x.replace(ha.signature_offset, ha.signature_size, b.substr(hb.signature_offset, hb.signature_size));
    write_all(t / "x.kos", x);
    auto r1 = open_bundle_for_run(t / "x.kos", trust);
    ASSERT_FALSE(r1);
    EXPECT_EQ(r1.error().message,
              t / "x.kos" + ": signature: does not match the manifest (key " + key_id_hex(k.pub.key_id) + ")");

    // B's manifest and signature (and header digest) over A's sections.
    x = a;
    x.replace(ha.manifest_offset, ha.manifest_size + ha.signature_size,
              b.substr(hb.manifest_offset, hb.manifest_size + hb.signature_size));
    std::memcpy(ha.manifest_sha256, hb.manifest_sha256, 32);
    set_header(x, ha);
    write_all(t / "x.kos", x);
    auto r2 = open_bundle_for_run(t / "x.kos", trust);
    ASSERT_FALSE(r2);
    EXPECT_EQ(r2.error().message, t / "x.kos" + ": rootfs rootfs.img: SHA-256 does not match the manifest "
                                                "(the rootfs index or metadata was modified)");

    // B's whole rootfs section inside A.
    auto ob = open_bundle_for_run(t / "b.kos", trust);
    ASSERT_TRUE(ob);
    const ManifestSection* rs = ob->manifest.find(SectionKind::Rootfs);
    x = a;
    x.replace(rs->offset, rs->size, b.substr(rs->offset, rs->size));
    write_all(t / "x.kos", x);
    auto r3 = open_bundle_for_run(t / "x.kos", trust);
    ASSERT_FALSE(r3);
    EXPECT_EQ(r3.error().code, EBADMSG);
    EXPECT_NE(r3.error().message.find("rootfs rootfs.img: SHA-256 does not match the manifest"),
              std::string::npos)
        << r3.error().message;
}

// Attack 10: rollback and expiry.
TEST(Bundle, Attack10RollbackAndExpiryAreRefused) {
    TempDir t;
    Keys k;
    make_bundle_dir(t, "v1", "demo", "1.9");
    make_bundle_dir(t, "v2", "demo", "1.10");
    ASSERT_TRUE(pack_bundle(t / "v1", t / "v1.kos", signed_by(k.sec)));
    ASSERT_TRUE(pack_bundle(t / "v2", t / "v2.kos", signed_by(k.sec)));
    TrustOptions trust = trusting(k.pub);
    trust.state_dir = t / "state";
    ASSERT_TRUE(open_bundle_for_run(t / "v1.kos", trust));
    ASSERT_TRUE(open_bundle_for_run(t / "v2.kos", trust));
    EXPECT_EQ(read_all(t / "state/demo.version"), "1.10\n");
    auto old = open_bundle_for_run(t / "v1.kos", trust);
    ASSERT_FALSE(old);
    EXPECT_EQ(old.error().code, ESTALE);
    EXPECT_EQ(old.error().message, t / "v1.kos" + ": rollback refused: version 1.9 of demo is older than "
                                                  "version 1.10, already accepted on this host (" +
                                       t / "state/demo.version" + ")");
    EXPECT_EQ(read_all(t / "state/demo.version"), "1.10\n");

    ASSERT_TRUE(pack_bundle(t / "v2", t / "exp.kos", signed_by(k.sec, 0, 2'000'000'000)));
    trust.now = 1'999'999'999;
    EXPECT_TRUE(open_bundle_for_run(t / "exp.kos", trust));
    trust.now = 2'000'000'000;
    auto expired = open_bundle_for_run(t / "exp.kos", trust);
    ASSERT_FALSE(expired);
    EXPECT_EQ(expired.error().code, EKEYEXPIRED);
    EXPECT_EQ(expired.error().message, t / "exp.kos" + ": expired: the manifest of demo version 1.10 expired "
                                                       "at 2033-05-18T03:33:20Z; ask its publisher for a newer version");
}

// Attack 11 at the bundle level: unknown and revoked keys, unsigned
// bundles, truncated and trailing-garbage signatures.
TEST(Bundle, Attack11KeyAndSignatureProblemsAreRejected) {
    TempDir t;
    Keys k, other;
    make_bundle_dir(t, "src");
    ASSERT_TRUE(pack_bundle(t / "src", t / "a.kos", signed_by(k.sec)));
    ASSERT_TRUE(pack_bundle(t / "src", t / "u.kos", {}));
    auto unknown = open_bundle_for_run(t / "a.kos", trusting(other.pub));
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().code, EKEYREJECTED);
    EXPECT_NE(unknown.error().message.find("signed by unknown key " + key_id_hex(k.pub.key_id)),
              std::string::npos);

    t.write("trust/k.pub", format_public_key(k.pub));
    TrustOptions dir_trust;
    dir_trust.trust_dir = t / "trust";
    EXPECT_TRUE(open_bundle_for_run(t / "a.kos", dir_trust));
    t.write("trust/revoked", "# revoked keys\n" + key_id_hex(k.pub.key_id) + "\n");
    auto revoked = open_bundle_for_run(t / "a.kos", dir_trust);
    ASSERT_FALSE(revoked);
    EXPECT_EQ(revoked.error().message,
              t / "a.kos" + ": signature: signing key " + key_id_hex(k.pub.key_id) + " is revoked");

    auto unsigned_ = open_bundle_for_run(t / "u.kos", trusting(k.pub));
    ASSERT_FALSE(unsigned_);
    EXPECT_NE(unsigned_.error().message.find("unsigned bundle"), std::string::npos);
    EXPECT_TRUE(open_bundle_for_run(t / "u.kos", {})); // digests still checked, no key configured

    std::string a = read_all(t / "a.kos");
    PackedHeader h = header_of(a);
    std::string trunc = a.substr(0, a.size() - 5);
    h.signature_size -= 5;
    h.file_size -= 5;
    set_header(trunc, h);
    write_all(t / "x.kos", trunc);
    auto r1 = open_bundle_for_run(t / "x.kos", trusting(k.pub));
    ASSERT_FALSE(r1);
    EXPECT_EQ(r1.error().message, t / "x.kos" + ": signature: truncated (a minisign signature has four lines)");

    h = header_of(a);
    std::string trail = a + "trailing\n";
    h.signature_size += 9;
    h.file_size += 9;
    set_header(trail, h);
    write_all(t / "x.kos", trail);
    auto r2 = open_bundle_for_run(t / "x.kos", trusting(k.pub));
    ASSERT_FALSE(r2);
    EXPECT_EQ(r2.error().message, t / "x.kos" + ": signature: trailing data after the four minisign lines");

    write_all(t / "x.kos", a + "x"); // header not adjusted
    auto r3 = open_bundle_for_run(t / "x.kos", trusting(k.pub));
    ASSERT_FALSE(r3);
    EXPECT_NE(r3.error().message.find("(truncated or trailing data)"), std::string::npos);
}

// Attack 12: no behavior config, or an unlabeled file: refused at pack and
// at run; nothing written.
TEST(Bundle, Attack12MissingBehaviorConfigOrUnlabeledFileIsRefused) {
    TempDir t;
    make_bundle_dir(t, "nolabels");
    t.write("nolabels/bundle.toml", kos::pkg::testing::bundle_toml("demo", "1", ""));
    make_bundle_dir(t, "nopolicy");
    t.write("nopolicy/bundle.toml",
            kos::pkg::testing::bundle_toml("demo", "1", "\"/**\" = \"app_file_t\"\n", false));
    make_bundle_dir(t, "unlabeled");
    t.write("unlabeled/bundle.toml",
            kos::pkg::testing::bundle_toml("demo", "1", "\"/\" = \"root_t\"\n\"/bin/**\" = \"app_exec_t\"\n"
                                                        "\"/etc/**\" = \"etc_t\"\n\"/empty\" = \"e_t\"\n"));
    make_bundle_dir(t, "noconfig");
    ::unlink((t / "noconfig/bundle.toml").c_str());

    struct Case {
        const char* dir;
        std::string message;
    } cases[] = {
        {"nolabels", t / "nolabels/bundle.toml" + ": no behavior config: missing [labels] section"},
        {"nopolicy", t / "nopolicy/bundle.toml" + ": no behavior config: missing [policy] section"},
        {"unlabeled", t / "unlabeled/rootfs: /data: unlabeled file: no [labels] rule matches it"},
        {"noconfig", t / "noconfig" + ": no behavior config: bundle.toml is missing"},
    };
    for (const Case& c : cases) {
        auto p = pack_bundle(t / c.dir, t / "out.kos", {});
        ASSERT_FALSE(p) << c.dir;
        EXPECT_EQ(p.error().message.substr(0, c.message.size()), c.message) << p.error().message;
        EXPECT_FALSE(exists(t / "out.kos"));
        auto r = open_bundle_for_run(t / c.dir, {});
        ASSERT_FALSE(r) << c.dir;
        EXPECT_EQ(r.error().message.substr(0, c.message.size()), c.message) << r.error().message;
    }

    // A packed bundle whose rootfs index carries an empty label (not made
    // by kos pack) is refused at run.
    RootfsBuildOptions opts;
    opts.labeler = [](const std::string& p, uint32_t) -> kos::Result<std::string> {
        return p == "/etc/config" ? "" : "app_file_t";
    };
    make_bundle_dir(t, "ok");
    auto image = build_rootfs_image(t / "ok/rootfs", opts);
    ASSERT_TRUE(image);
    BundleParts parts{read_all(t / "ok/bundle.toml"), {{"policy/app.kpol", {'x'}}}, {}, *image};
    auto bytes = assemble_bundle(parts, {});
    ASSERT_TRUE(bytes) << bytes.error().message;
    write_all(t / "crafted.kos", std::string(bytes->begin(), bytes->end()));
    auto r = open_bundle_for_run(t / "crafted.kos", {});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message,
              t / "crafted.kos" + ": /etc/config: unlabeled file (no valid label in the rootfs index)");
}

// Attack 13: the file replaced or rewritten after verification does not
// change the bytes handed to the runtime.
TEST(Bundle, Attack13OnlyVerifiedBytesAreUsed) {
    TempDir t;
    Keys k;
    make_bundle_dir(t, "a", "demo", "1", "APP-BINARY-1");
    make_bundle_dir(t, "b", "demo", "1", "APP-BINARY-2");
    ASSERT_TRUE(pack_bundle(t / "a", t / "a.kos", signed_by(k.sec, 1)));
    ASSERT_TRUE(pack_bundle(t / "b", t / "b.kos", signed_by(k.sec, 1)));
    auto bundle = open_bundle_for_run(t / "a.kos", trusting(k.pub));
    ASSERT_TRUE(bundle) << bundle.error().message;
    Sha256 verified = bundle->manifest.find(SectionKind::Rootfs)->digest;

    // Rewrite the file in place with the other bundle's bytes, then replace
    // it by rename.
    std::string other = read_all(t / "b.kos");
    int fd = ::open((t / "a.kos").c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, other.data(), other.size(), 0), ssize_t(other.size()));
    ::close(fd);
    ASSERT_EQ(::rename((t / "b.kos").c_str(), (t / "a.kos").c_str()), 0);

    EXPECT_EQ(sha256(bundle->rootfs), verified);
    rfs::RootfsView v(bundle->rootfs.data(), bundle->rootfs.size());
    const auto& e = v.entry(uint32_t(v.find("/bin/app", 8)));
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(v.file_data(e)), e.size), "APP-BINARY-1");

    // The memfd behind the mapping is sealed against every change.
    int seals = ::fcntl(bundle->memory->fd(), F_GET_SEALS);
    EXPECT_EQ(seals & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
              F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    EXPECT_EQ(::pwrite(bundle->memory->fd(), "x", 1, int64_t(bundle->rootfs_offset)), -1);
    EXPECT_EQ(errno, EPERM);
    EXPECT_EQ(::ftruncate(bundle->memory->fd(), 0), -1);
}

TEST(Bundle, DirectoryIsRefusedWhenASignatureIsRequired) {
    TempDir t;
    Keys k;
    make_bundle_dir(t, "b");
    auto r = open_bundle_for_run(t / "b", trusting(k.pub));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, EKEYREJECTED);
}

TEST(Bundle, PolicySourceSymlinkOutsideTheBundleIsRefused) {
    TempDir t;
    make_bundle_dir(t, "b");
    ::unlink((t / "b/policy/app.kpol").c_str());
    ::symlink("/etc/passwd", (t / "b/policy/app.kpol").c_str());
    auto r = open_bundle_for_run(t / "b", {});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("symlinks are not followed"), std::string::npos) << r.error().message;
}

TEST(Bundle, PolicyCompilerHookOutputIsSignedAndReturned) {
    TempDir t;
    Keys k;
    make_bundle_dir(t, "src");
    PackOptions po = signed_by(k.sec);
    po.policy_compiler = [](const BundleConfig& c, const std::vector<PolicySource>& s)
        -> kos::Result<std::vector<uint8_t>> {
        std::string out = "compiled:" + c.policy.domain + ":" + std::to_string(s.size());
        return std::vector<uint8_t>(out.begin(), out.end());
    };
    ASSERT_TRUE(pack_bundle(t / "src", t / "a.kos", po));
    auto b = open_bundle_for_run(t / "a.kos", trusting(k.pub));
    ASSERT_TRUE(b) << b.error().message;
    EXPECT_EQ(std::string(b->compiled_policy.begin(), b->compiled_policy.end()), "compiled:app_t:1");
    ASSERT_NE(b->manifest.find(SectionKind::CompiledPolicy), nullptr);
}

namespace {

// Lays out a packed bundle by hand (bundle_format.h), with whatever config
// and rootfs bytes a test wants, and consistent digests: what an attacker
// without the signing key can produce.
std::string craft_packed(const std::string& config, const std::string& policy, const std::vector<uint8_t>& rootfs,
                         const std::string& name, const std::string& version, const std::string& domain) {
    Manifest m;
    m.name = name;
    m.version = version;
    m.domain = domain;
    auto b = [](const std::string& s) { return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()); };
    uint64_t cursor = kPackedHeaderSize;
    m.sections.push_back({SectionKind::Config, "bundle.toml", cursor, config.size(), sha256(b(config))});
    cursor += config.size();
    m.sections.push_back({SectionKind::Policy, "policy/app.kpol", cursor, policy.size(), sha256(b(policy))});
    cursor += policy.size();
    cursor = (cursor + 4095) / 4096 * 4096;
    m.sections.push_back({SectionKind::Rootfs, "rootfs.img", cursor, rootfs.size(), sha256(rootfs)});
    cursor += rootfs.size();
    std::string text = serialize_manifest(m);
    PackedHeader h{};
    std::memcpy(h.magic, kPackedMagic, 8);
    h.format_version = kPackedVersion;
    h.header_size = kPackedHeaderSize;
    h.manifest_offset = cursor;
    h.manifest_size = text.size();
    h.signature_offset = cursor + text.size();
    h.file_size = h.signature_offset;
    Sha256 md = sha256(b(text));
    std::memcpy(h.manifest_sha256, md.data(), 32);
    std::string out(h.file_size, '\0');
    std::memcpy(out.data(), &h, sizeof h);
    out.replace(m.sections[0].offset, config.size(), config);
    out.replace(m.sections[1].offset, policy.size(), policy);
    out.replace(m.sections[2].offset, rootfs.size(), std::string(rootfs.begin(), rootfs.end()));
    out.replace(h.manifest_offset, text.size(), text);
    return out;
}

} // namespace

// Attack 12 for packed files made without kos pack: no behavior config, or
// a rootfs index that is invalid, is refused at run.
TEST(Bundle, Attack12CraftedPackedBundlesWithoutBehaviorConfigAreRefused) {
    TempDir t;
    make_bundle_dir(t, "ok");
    auto image = build_rootfs_image(t / "ok/rootfs", {.labeler = [](const std::string&, uint32_t) -> kos::Result<std::string> {
        return std::string("app_file_t");
    }});
    ASSERT_TRUE(image);
    std::string good = read_all(t / "ok/bundle.toml");
    write_all(t / "good.kos", craft_packed(good, "p", *image, "demo", "1", "app_t"));
    ASSERT_TRUE(open_bundle_for_run(t / "good.kos", {})) << "the crafting helper itself must be right";

    std::string no_labels = kos::pkg::testing::bundle_toml("demo", "1", "");
    write_all(t / "x.kos", craft_packed(no_labels, "p", *image, "demo", "1", "app_t"));
    auto r1 = open_bundle_for_run(t / "x.kos", {});
    ASSERT_FALSE(r1);
    EXPECT_EQ(r1.error().message.substr(0, 80),
              (t / "x.kos" + ":bundle.toml: no behavior config: missing [labels] section").substr(0, 80));

    std::string no_policy = kos::pkg::testing::bundle_toml("demo", "1", "\"/**\" = \"a_t\"\n", false);
    write_all(t / "x.kos", craft_packed(no_policy, "p", *image, "demo", "1", "app_t"));
    auto r2 = open_bundle_for_run(t / "x.kos", {});
    ASSERT_FALSE(r2);
    EXPECT_NE(r2.error().message.find("no behavior config: missing [policy] section"), std::string::npos);

    std::vector<uint8_t> broken = *image;
    broken[0] ^= 0xff; // bad magic, but the digests match
    write_all(t / "x.kos", craft_packed(good, "p", broken, "demo", "1", "app_t"));
    auto r3 = open_bundle_for_run(t / "x.kos", {});
    ASSERT_FALSE(r3);
    EXPECT_EQ(r3.error().message, t / "x.kos" + ": invalid rootfs image: bad magic (not a kos rootfs image)");

    // Manifest fields that disagree with bundle.toml.
    write_all(t / "x.kos", craft_packed(good, "p", *image, "other", "1", "app_t"));
    auto r4 = open_bundle_for_run(t / "x.kos", {});
    ASSERT_FALSE(r4);
    EXPECT_EQ(r4.error().message, t / "x.kos" + ": manifest name/version/domain do not match bundle.toml");
}
