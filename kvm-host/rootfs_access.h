// The boot image's rootfs access section (abi/kos/rootfs_access.h): which
// rootfs files each label may read, decided on the host by the bundle's
// compiled policy (the guest kernel maps only those files' pages).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kos/support/result.h"

namespace kos::vmm {

// Encodes the section for `labels` (the labels of the Linux processes of
// the init description). Empty when the policy has no class `file` with a
// permission `read`, or when every label may read every file: then the
// whole rootfs stays readable, as in the process backend. Errors: the
// policy does not load, a label is unknown to it, too many labels.
Result<std::vector<uint8_t>> encode_rootfs_access(std::span<const uint8_t> rootfs_image,
                                                  std::span<const uint8_t> policy,
                                                  const std::vector<std::string>& labels);

} // namespace kos::vmm
