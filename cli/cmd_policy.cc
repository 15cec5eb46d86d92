#include "commands.h"

namespace kos::cli {
// `kos policy ...` is registered here by the security-server work.
void add_policy_commands(CLI::App&, Context&) {}
} // namespace kos::cli
