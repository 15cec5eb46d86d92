#include "commands.h"

namespace kos::cli {
void add_run_commands(CLI::App&, Context&) {}
} // namespace kos::cli
