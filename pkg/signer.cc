#include "signer.h"

#include <sodium.h>

#include <cstring>

namespace kos::pkg {
namespace {

constexpr const char* kUntrusted = "untrusted comment: ";
constexpr const char* kTrusted = "trusted comment: ";

std::string b64(const uint8_t* data, size_t len) {
    std::string out(sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(out.data(), out.size(), data, len, sodium_base64_VARIANT_ORIGINAL);
    out.resize(std::strlen(out.c_str()));
    return out;
}

// Decodes exactly `len` bytes, or fails.
bool unb64(const std::string& text, uint8_t* out, size_t len) {
    size_t got = 0;
    const char* end = nullptr;
    if (sodium_base642bin(out, len, text.data(), text.size(), nullptr, &got, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return false;
    // Canonical encoding only: unused trailing bits must be zero, so no two
    // texts decode to the same bytes.
    return got == len && end == text.data() + text.size() && b64(out, len) == text;
}

// Splits into lines; each line must end with '\n'. Accepts a final line
// without '\n' only when `lenient_last` (key files edited by hand).
std::vector<std::string> lines_of(const std::string& text, bool* complete) {
    std::vector<std::string> out;
    size_t start = 0;
    *complete = true;
    while (start < text.size()) {
        size_t nl = text.find('\n', start);
        if (nl == std::string::npos) {
            out.push_back(text.substr(start));
            *complete = false;
            break;
        }
        out.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    return out;
}

std::string untrusted_line(const KeyId& id);

void blake2b512(std::span<const uint8_t> msg, uint8_t out[64]) {
    crypto_generichash(out, 64, msg.data(), msg.size(), nullptr, 0);
}

} // namespace

namespace {
std::string untrusted_line(const KeyId& id) {
    return std::string(kUntrusted) + "signature from kos secret key " + key_id_hex(id);
}
} // namespace

std::string key_id_hex(const KeyId& id) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
        v = (v << 8) | id[static_cast<size_t>(i)];
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llX", static_cast<unsigned long long>(v));
    return buf;
}

Result<void> init_crypto() {
    if (sodium_init() < 0)
        return make_error(EIO, "libsodium failed to initialize");
    return {};
}

std::pair<PublicKey, SecretKey> generate_keypair() {
    PublicKey pub;
    SecretKey sec;
    randombytes_buf(sec.key_id.data(), sec.key_id.size());
    crypto_sign_keypair(pub.key.data(), sec.key.data());
    pub.key_id = sec.key_id;
    return {pub, sec};
}

std::string format_public_key(const PublicKey& key) {
    uint8_t raw[2 + 8 + 32];
    std::memcpy(raw, "Ed", 2);
    std::memcpy(raw + 2, key.key_id.data(), 8);
    std::memcpy(raw + 10, key.key.data(), 32);
    return std::string(kUntrusted) + "minisign public key " + key_id_hex(key.key_id) + "\n" +
           b64(raw, sizeof raw) + "\n";
}

// minisign's SeckeyStruct: sig_alg, kdf_alg, chk_alg, kdf_salt[32],
// opslimit, memlimit, then key id, secret key and a BLAKE2b-256 checksum of
// (sig_alg | key id | secret key).
std::string format_secret_key(const SecretKey& key) {
    uint8_t raw[2 + 2 + 2 + 32 + 8 + 8 + 8 + 64 + 32] = {};
    std::memcpy(raw, "Ed", 2);
    // kdf_alg {0,0}: not encrypted.
    std::memcpy(raw + 4, "B2", 2);
    uint8_t* ks = raw + 6 + 32 + 16;
    std::memcpy(ks, key.key_id.data(), 8);
    std::memcpy(ks + 8, key.key.data(), 64);
    crypto_generichash_state st;
    crypto_generichash_init(&st, nullptr, 0, 32);
    crypto_generichash_update(&st, raw, 2);
    crypto_generichash_update(&st, ks, 8);
    crypto_generichash_update(&st, ks + 8, 64);
    crypto_generichash_final(&st, ks + 72, 32);
    std::string out = std::string(kUntrusted) + "minisign secret key (kos, unencrypted)\n" +
                      b64(raw, sizeof raw) + "\n";
    sodium_memzero(raw, sizeof raw);
    return out;
}

Result<PublicKey> parse_public_key(const std::string& text, const std::string& origin) {
    bool complete = false;
    std::vector<std::string> lines = lines_of(text, &complete);
    uint8_t raw[42];
    if (lines.size() != 2 || !lines[0].starts_with(kUntrusted) || !unb64(lines[1], raw, sizeof raw) ||
        std::memcmp(raw, "Ed", 2) != 0)
        return make_error(EINVAL, origin + ": not a minisign public key (expected an "
                                           "\"untrusted comment:\" line and one base64 line)");
    PublicKey k;
    std::memcpy(k.key_id.data(), raw + 2, 8);
    std::memcpy(k.key.data(), raw + 10, 32);
    k.origin = origin;
    return k;
}

Result<SecretKey> parse_secret_key(const std::string& text, const std::string& origin) {
    bool complete = false;
    std::vector<std::string> lines = lines_of(text, &complete);
    uint8_t raw[2 + 2 + 2 + 32 + 8 + 8 + 8 + 64 + 32];
    if (lines.size() != 2 || !lines[0].starts_with(kUntrusted) || !unb64(lines[1], raw, sizeof raw) ||
        std::memcmp(raw, "Ed", 2) != 0 || std::memcmp(raw + 4, "B2", 2) != 0)
        return make_error(EINVAL, origin + ": not a minisign secret key");
    if (raw[2] != 0 || raw[3] != 0)
        return make_error(EINVAL, origin + ": encrypted minisign secret keys are not supported; "
                                           "create one with `kos keygen` (or `minisign -G -W`)");
    const uint8_t* ks = raw + 6 + 32 + 16;
    uint8_t chk[32];
    crypto_generichash_state st;
    crypto_generichash_init(&st, nullptr, 0, 32);
    crypto_generichash_update(&st, raw, 2);
    crypto_generichash_update(&st, ks, 8);
    crypto_generichash_update(&st, ks + 8, 64);
    crypto_generichash_final(&st, chk, 32);
    if (sodium_memcmp(chk, ks + 72, 32) != 0)
        return make_error(EINVAL, origin + ": secret key checksum mismatch (corrupted key file)");
    SecretKey k;
    std::memcpy(k.key_id.data(), ks, 8);
    std::memcpy(k.key.data(), ks + 8, 64);
    sodium_memzero(raw, sizeof raw);
    return k;
}

Result<MinisignSignature> parse_signature(const std::string& text) {
    if (text.size() > 4096)
        return make_error(EINVAL, "signature: larger than 4096 bytes (trailing garbage?)");
    bool complete = false;
    std::vector<std::string> lines = lines_of(text, &complete);
    if (lines.size() < 4 || (lines.size() == 4 && !complete))
        return make_error(EINVAL, "signature: truncated (a minisign signature has four lines)");
    if (lines.size() > 4)
        return make_error(EINVAL, "signature: trailing data after the four minisign lines");
    uint8_t raw[2 + 8 + 64];
    if (!unb64(lines[1], raw, sizeof raw))
        return make_error(EINVAL, "signature: line 2 is not a base64 minisign signature");
    // The untrusted comment is not covered by any signature, so kos accepts
    // only the exact line it writes: no byte of a bundle goes unchecked.
    KeyId id;
    std::memcpy(id.data(), raw + 2, 8);
    if (lines[0] != untrusted_line(id))
        return make_error(EINVAL, "signature: line 1 must be \"" + untrusted_line(id) + "\"");
    if (std::memcmp(raw, "ED", 2) != 0)
        return make_error(EINVAL, "signature: unsupported algorithm (kos accepts prehashed \"ED\" "
                                  "signatures)");
    if (!lines[2].starts_with(kTrusted))
        return make_error(EINVAL, "signature: line 3 must start with \"trusted comment: \"");
    MinisignSignature sig;
    std::memcpy(sig.key_id.data(), raw + 2, 8);
    std::memcpy(sig.signature.data(), raw + 10, 64);
    sig.trusted_comment = lines[2].substr(std::strlen(kTrusted));
    if (!unb64(lines[3], sig.global_signature.data(), 64))
        return make_error(EINVAL, "signature: line 4 is not a base64 global signature");
    return sig;
}

std::string sign_message(const SecretKey& key, std::span<const uint8_t> message,
                         const std::string& trusted_comment) {
    uint8_t hash[64];
    blake2b512(message, hash);
    uint8_t raw[2 + 8 + 64];
    std::memcpy(raw, "ED", 2);
    std::memcpy(raw + 2, key.key_id.data(), 8);
    crypto_sign_detached(raw + 10, nullptr, hash, sizeof hash, key.key.data());
    std::vector<uint8_t> global(raw + 10, raw + 74);
    global.insert(global.end(), trusted_comment.begin(), trusted_comment.end());
    uint8_t gsig[64];
    crypto_sign_detached(gsig, nullptr, global.data(), global.size(), key.key.data());
    return untrusted_line(key.key_id) + "\n" + b64(raw, sizeof raw) + "\n" + kTrusted + trusted_comment + "\n" +
           b64(gsig, sizeof gsig) + "\n";
}

Result<MinisignSignature> verify_message(std::span<const uint8_t> message, const std::string& sig_text,
                                         const std::vector<PublicKey>& keys,
                                         const std::vector<std::string>& revoked_key_ids) {
    MinisignSignature sig = KOS_TRY(parse_signature(sig_text));
    std::string id = key_id_hex(sig.key_id);
    for (const std::string& r : revoked_key_ids)
        if (r == id)
            return make_error(EKEYREJECTED, "signature: signing key " + id + " is revoked");
    const PublicKey* key = nullptr;
    for (const PublicKey& k : keys)
        if (k.key_id == sig.key_id)
            key = &k;
    if (!key)
        return make_error(EKEYREJECTED, "signature: signed by unknown key " + id +
                                            " (not among the trusted keys)");
    uint8_t hash[64];
    blake2b512(message, hash);
    if (crypto_sign_verify_detached(sig.signature.data(), hash, sizeof hash, key->key.data()) != 0)
        return make_error(EBADMSG, "signature: does not match the manifest (key " + id + ")");
    std::vector<uint8_t> global(sig.signature.begin(), sig.signature.end());
    global.insert(global.end(), sig.trusted_comment.begin(), sig.trusted_comment.end());
    if (crypto_sign_verify_detached(sig.global_signature.data(), global.data(), global.size(),
                                    key->key.data()) != 0)
        return make_error(EBADMSG, "signature: trusted comment signature is invalid (key " + id + ")");
    return sig;
}

} // namespace kos::pkg
