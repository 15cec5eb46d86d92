// Import an OCI image (an OCI image layout directory, or a `docker save` /
// `podman save` tarball) as a bundle directory: the layers applied with OCI
// whiteout semantics, the image's entrypoint, cmd, env, workdir and user in
// bundle.toml, and a draft behavior config the user must review.
//
// Everything untrusted is checked before anything is written (ATTACKS.md
// 1-7): blob digests and sizes, descriptors confined to blobs/sha256/,
// entry paths ("../x", "/x"), entries under symlinks, hardlinks outside the
// tree, malformed whiteouts, special files, setuid/setgid bits, capability
// xattrs and foreign owners, and resource caps. The layers are applied to an
// in-memory tree; only the final tree is written, into a fresh staging
// directory through descriptors that never follow a symlink, then renamed
// into place. On any error nothing is left behind.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kos/support/result.h"
#include "tar_reader.h"

namespace kos::pkg {

struct ImportOptions {
    TarLimits limits;
    uint32_t max_layers = 128;
    uint64_t max_json_bytes = 4 << 20;
    uint64_t max_blob_bytes = 4ull << 30;
    std::function<void(uint64_t entries, uint64_t bytes)> progress = {};
};

struct ImportResult {
    uint32_t layers = 0;
    uint64_t entries = 0;
    std::vector<std::string> notes; // what was dropped or clamped, one line each
};

Result<ImportResult> import_oci_layout(const std::string& layout_dir, const std::string& out_dir,
                                       const ImportOptions& options);
Result<ImportResult> import_docker_archive(const std::string& tar_file, const std::string& out_dir,
                                           const ImportOptions& options);

// The layer engine, exposed for tests and fuzzing: applies layers (tar
// bytes, possibly compressed) in order to an in-memory tree and returns
// the resulting entries ("/a/b" -> description) without writing anything.
class LayerTree;
Result<std::vector<std::string>> apply_layers_for_test(const std::vector<std::vector<uint8_t>>& layers,
                                                       const ImportOptions& options,
                                                       std::vector<std::string>* notes);

} // namespace kos::pkg
