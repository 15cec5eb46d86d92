// Ed25519 signing in minisign's formats (https://jedisct1.github.io/minisign/),
// so `minisign -V` can check a kos manifest signature independently.
//
// Key files:   "untrusted comment: ...\n" + base64(alg "Ed" | key id (8) | key)
// Signatures:  untrusted comment line, base64("ED" | key id | Ed25519 signature
//              of BLAKE2b-512(message)), "trusted comment: TEXT" line, and
//              base64(Ed25519 signature of signature || TEXT).
// kos writes secret keys unencrypted (minisign's kdf "none", as `minisign -W`);
// protect them with file permissions (keygen creates them 0600).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kos/support/result.h"

namespace kos::pkg {

using KeyId = std::array<uint8_t, 8>;

struct PublicKey {
    KeyId key_id{};
    std::array<uint8_t, 32> key{};
    std::string origin; // file it came from, for messages
};

struct SecretKey {
    KeyId key_id{};
    std::array<uint8_t, 64> key{}; // libsodium Ed25519 secret key (seed | public key)
};

// The key id as minisign prints it: 16 upper-case hex digits of the
// little-endian 64-bit number.
std::string key_id_hex(const KeyId& id);

Result<void> init_crypto();
std::pair<PublicKey, SecretKey> generate_keypair();
std::string format_public_key(const PublicKey& key);
std::string format_secret_key(const SecretKey& key);
Result<PublicKey> parse_public_key(const std::string& text, const std::string& origin);
Result<SecretKey> parse_secret_key(const std::string& text, const std::string& origin);

struct MinisignSignature {
    KeyId key_id{};
    std::array<uint8_t, 64> signature{};
    std::string trusted_comment;
    std::array<uint8_t, 64> global_signature{};
};

// Parses a signature file strictly: exactly four lines, each ending in '\n';
// nothing before or after (truncated or trailing-garbage files are refused).
Result<MinisignSignature> parse_signature(const std::string& text);

// Signs `message` (prehashed, algorithm "ED").
std::string sign_message(const SecretKey& key, std::span<const uint8_t> message,
                         const std::string& trusted_comment);

// Verifies `sig_text` over `message` with the key whose id matches. Errors:
// EKEYREJECTED for an unknown or revoked key id, EBADMSG for a bad signature.
Result<MinisignSignature> verify_message(std::span<const uint8_t> message, const std::string& sig_text,
                                         const std::vector<PublicKey>& keys,
                                         const std::vector<std::string>& revoked_key_ids);

} // namespace kos::pkg
