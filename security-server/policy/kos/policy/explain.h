// `kos policy explain`: why a compiled policy answers a request the way it
// does. The verdict shown is the engine's own (Engine::decide on a fresh
// state); the per-rule report next to it re-evaluates each rule of the
// request's index entry on the host, for reading only.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "kos/support/result.h"

namespace kos::policy {

// `request` is written like a test step without `expect`:
//   request app_t -> vfs_t vfs.File.open path="/x" flags=0
// Errors: the blob does not load, or the request does not parse/resolve
// (EINVAL, "<request>:1:column: ...").
Result<std::string> explain_request(std::span<const uint8_t> blob, std::string_view request);

} // namespace kos::policy
