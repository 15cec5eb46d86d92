#include "commands.h"

namespace kos::cli {
// `kos pack/keygen/verify/inspect/import` are registered here by the pkg work.
void add_bundle_commands(CLI::App&, Context&) {}
} // namespace kos::cli
