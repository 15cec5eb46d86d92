#include "pkg/signer.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "pkg/testing/temp_dir.h"

using namespace kos::pkg;
using kos::pkg::testing::TempDir;

namespace {
std::span<const uint8_t> bytes_of(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
} // namespace

TEST(Signer, KeysRoundTripThroughTheirFileFormats) {
    ASSERT_TRUE(init_crypto());
    auto [pub, sec] = generate_keypair();
    auto p = parse_public_key(format_public_key(pub), "k.pub");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->key, pub.key);
    EXPECT_EQ(p->key_id, pub.key_id);
    auto s = parse_secret_key(format_secret_key(sec), "k.key");
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->key, sec.key);
    std::string bad = format_secret_key(sec);
    bad[bad.size() - 10] = bad[bad.size() - 10] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(parse_secret_key(bad, "k.key"));
}

TEST(Signer, SignsAndVerifies) {
    ASSERT_TRUE(init_crypto());
    auto [pub, sec] = generate_keypair();
    std::string msg = "kos-bundle-manifest 1\n";
    std::string sig = sign_message(sec, bytes_of(msg), "kos bundle demo version 1");
    auto ok = verify_message(bytes_of(msg), sig, {pub}, {});
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(ok->trusted_comment, "kos bundle demo version 1");
    auto bad = verify_message(bytes_of(msg + "x"), sig, {pub}, {});
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, EBADMSG);
}

// Attack 11: unknown key, revoked key, truncated or trailing-garbage
// signature, forged trusted comment.
TEST(Signer, Attack11RejectsUnknownRevokedTruncatedAndTrailing) {
    ASSERT_TRUE(init_crypto());
    auto [pub, sec] = generate_keypair();
    auto [other, other_sec] = generate_keypair();
    std::string msg = "manifest";
    std::string sig = sign_message(sec, bytes_of(msg), "c");

    auto unknown = verify_message(bytes_of(msg), sig, {other}, {});
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().code, EKEYREJECTED);
    EXPECT_EQ(unknown.error().message,
              "signature: signed by unknown key " + key_id_hex(pub.key_id) + " (not among the trusted keys)");

    auto revoked = verify_message(bytes_of(msg), sig, {pub}, {key_id_hex(pub.key_id)});
    ASSERT_FALSE(revoked);
    EXPECT_EQ(revoked.error().message, "signature: signing key " + key_id_hex(pub.key_id) + " is revoked");

    auto truncated = verify_message(bytes_of(msg), sig.substr(0, sig.size() - 1), {pub}, {});
    ASSERT_FALSE(truncated);
    EXPECT_EQ(truncated.error().message, "signature: truncated (a minisign signature has four lines)");
    auto cut = verify_message(bytes_of(msg), sig.substr(0, sig.size() / 2), {pub}, {});
    ASSERT_FALSE(cut);

    auto trailing = verify_message(bytes_of(msg), sig + "garbage\n", {pub}, {});
    ASSERT_FALSE(trailing);
    EXPECT_EQ(trailing.error().message, "signature: trailing data after the four minisign lines");

    // Changing the trusted comment breaks the global signature.
    std::string forged = sig;
    size_t at = forged.find("trusted comment: c");
    forged.replace(at, 18, "trusted comment: d");
    auto tc = verify_message(bytes_of(msg), forged, {pub}, {});
    ASSERT_FALSE(tc);
    EXPECT_EQ(tc.error().message,
              "signature: trusted comment signature is invalid (key " + key_id_hex(pub.key_id) + ")");
}

// minisign itself (Debian's package) accepts our keys and signatures.
TEST(Signer, MinisignVerifiesOurSignature) {
    if (std::system("command -v minisign >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "minisign not installed";
    ASSERT_TRUE(init_crypto());
    TempDir t;
    auto [pub, sec] = generate_keypair();
    std::string msg = "kos-bundle-manifest 1\nname demo\n";
    t.write("m", msg);
    t.write("m.minisig", sign_message(sec, bytes_of(msg), "kos bundle demo"));
    t.write("k.pub", format_public_key(pub));
    std::string cmd = "minisign -Vm " + (t / "m") + " -x " + (t / "m.minisig") + " -p " + (t / "k.pub") +
                      " >/dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    t.write("m", msg + "x");
    EXPECT_NE(std::system(cmd.c_str()), 0);
}
