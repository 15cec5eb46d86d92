// Bundles: pack a bundle directory into a single signed file, open either
// form for running (verifying it first), unpack.
//
// A bundle directory is DIR/bundle.toml + DIR/rootfs/ + the policy sources
// named by [policy] sources. The packed form is described in
// bundle_format.h and docs/bundle-format.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bundle_config.h"
#include "kos/support/result.h"
#include "manifest.h"
#include "rootfs_builder.h"
#include "signer.h"

namespace kos::pkg {

struct PolicySource {
    std::string name; // path relative to the bundle directory
    std::vector<uint8_t> bytes;
};

// The hook where the policy compiler (security-server) plugs in: config +
// sources -> compiled policy bytes. Empty: bundles carry the sources only
// and RunnableBundle::compiled_policy stays empty.
using PolicyCompiler =
    std::function<Result<std::vector<uint8_t>>(const BundleConfig&, const std::vector<PolicySource>&)>;

// A bundle directory's [policy] sources, read beneath `dir` without following
// any symlink (a bundle cannot point them outside itself), each a regular
// file of at most 16 MiB. pack, `kos run DIR` and the process backend read
// them here.
Result<std::vector<PolicySource>> read_policy_sources(const std::string& dir, const BundleConfig& config);

// Who is trusted to sign bundles, and the host's rollback state.
struct TrustOptions {
    std::vector<std::string> key_files; // minisign public key files
    std::vector<PublicKey> keys;        // in addition to key_files
    std::string trust_dir;              // every *.pub in it; a file "revoked" lists key ids
    std::vector<std::string> revoked_key_ids; // minisign key ids (16 hex digits)
    // Highest accepted version per bundle name is kept here (one file per
    // name); an older signed version is refused. Empty: no rollback state.
    std::string state_dir;
    int64_t now = 0;                  // for expiry; 0: the current time
    PolicyCompiler policy_compiler = {}; // used when a bundle has no compiled policy
    bool check_file_digests = false;  // also recheck every file's own digest

    // A signature is required (and checked) when any key source is given.
    bool signature_required() const {
        return !key_files.empty() || !keys.empty() || !trust_dir.empty();
    }
};

// The host's configured trust: the directory $KOS_TRUST_DIR, else
// $XDG_CONFIG_HOME/kos/trusted-keys (~/.config/kos/trusted-keys) if it
// exists; rollback state in $XDG_STATE_HOME/kos/versions
// (~/.local/state/kos/versions). With neither, no signature is required.
TrustOptions default_trust_options();

// Bytes copied into a sealed memfd (no writes, no resizing, ever), mapped
// read-only. The fd can be mapped into a VM directly.
class SealedMemory {
public:
    static Result<std::shared_ptr<SealedMemory>> copy_from_fd(int fd, uint64_t size,
                                                              const std::string& what);
    static Result<std::shared_ptr<SealedMemory>> copy_from(std::span<const uint8_t> bytes);
    ~SealedMemory();
    SealedMemory(const SealedMemory&) = delete;
    SealedMemory& operator=(const SealedMemory&) = delete;
    int fd() const { return m_fd; }
    std::span<const uint8_t> bytes() const { return {m_map, m_size}; }

private:
    SealedMemory() = default;
    int m_fd = -1;
    const uint8_t* m_map = nullptr;
    size_t m_size = 0;
};

struct SignatureStatus {
    bool present = false;  // the bundle carries a signature
    bool verified = false; // and it was checked against a trusted key
    std::string key_id;    // minisign key id of the signer
    std::string trusted_comment;
    std::string key_origin; // the trusted key file that verified it
};

struct RunnableBundle {
    std::string path;
    bool packed = false;
    BundleConfig config;
    std::string config_text;
    // For a packed bundle, the signed manifest; for a directory, one built
    // from its contents (offsets 0).
    Manifest manifest;
    std::vector<PolicySource> policy_sources;
    std::vector<uint8_t> compiled_policy; // empty until a compiler is plugged in
    SignatureStatus signature;
    // The verified bytes: the whole packed file (or, for a directory, the
    // rootfs image) in a sealed memfd. `rootfs` points into it, at
    // `rootfs_offset` (page-aligned) in memory->fd().
    std::shared_ptr<const SealedMemory> memory;
    uint64_t rootfs_offset = 0;
    std::span<const uint8_t> rootfs; // a validated rootfs image (abi/kos/rootfs_image.h)
    RootfsBuildReport report;        // directory form: special files left out
};

// Opens an unpacked bundle directory or a packed bundle file and verifies
// it before returning anything:
//   - the behavior config ([labels] and [policy]) is present, and every
//     rootfs entry has a label (EINVAL / ENOENT naming the section or file);
//   - packed: the layout covers every byte, the manifest matches its
//     digest, every section matches its digest in the manifest;
//   - if trust.signature_required(): the manifest's signature verifies
//     with a trusted, unrevoked key (a directory is refused: it cannot carry
//     a signature);
//   - not expired; not older than the version recorded in trust.state_dir.
// A packed file is first copied into a sealed memfd and verified there, so
// replacing or rewriting the file afterwards cannot change what runs.
Result<RunnableBundle> open_bundle_for_run(const std::string& path, const TrustOptions& trust);

struct PackOptions {
    const SecretKey* key = nullptr; // sign with this key; null: unsigned
    int64_t created = 0;            // 0: now
    int64_t expires = 0;            // 0: never
    PolicyCompiler policy_compiler = {};
    std::function<void(uint64_t files, uint64_t bytes)> progress = {};
};

struct PackResult {
    Manifest manifest;
    RootfsBuildReport report;
    uint64_t file_size = 0;
    uint32_t entries = 0;
};

// Packs bundle directory `dir` into the single file `out` (written
// atomically: nothing appears at `out` on failure).
Result<PackResult> pack_bundle(const std::string& dir, const std::string& out,
                               const PackOptions& options);

// Lower level: lays out already-built parts (the rootfs image must be
// valid) and returns the packed file's bytes.
struct BundleParts {
    std::string config_text;
    std::vector<PolicySource> policy_sources;
    std::vector<uint8_t> compiled_policy;
    std::vector<uint8_t> rootfs;
};
Result<std::vector<uint8_t>> assemble_bundle(const BundleParts& parts, const PackOptions& options,
                                             Manifest* manifest_out = nullptr);

// The manifest and signature text of a packed bundle, exactly as signed
// (for `minisign -V`). Does not verify anything.
Result<std::pair<std::string, std::string>> read_manifest_and_signature(const std::string& path);

// Verifies `bundle` (as open_bundle_for_run) and writes it as a bundle
// directory at `out_dir`, which must not exist (built in a temporary
// directory next to it and renamed, so nothing appears on failure).
// Setuid/setgid bits are dropped; ownership is restored only as root.
Result<void> unpack_bundle(const std::string& bundle, const std::string& out_dir,
                           const TrustOptions& trust, std::vector<std::string>* notes = nullptr);

// Removes a directory tree without following symlinks.
Result<void> remove_tree(const std::string& path);

} // namespace kos::pkg
