// Each group of `kos` subcommands registers itself here. A command's callback
// stores its exit status in `exit_status`.
#pragma once

#include <CLI/CLI.hpp>

#include "pkg/bundle.h"

namespace kos::cli {

struct Context {
    int exit_status = 0;
    // Everything after the first "--": the program and its arguments, passed
    // through untouched (never parsed as kos options).
    bool has_passthrough = false;
    std::vector<std::string> passthrough;
};

void add_run_commands(CLI::App& app, Context& ctx);    // run (cmd_run.cc)
void add_policy_commands(CLI::App& app, Context& ctx); // policy ... (cmd_policy.cc)
void add_bundle_commands(CLI::App& app, Context& ctx); // pack, keygen, verify, inspect, import (cmd_bundle.cc)
void add_doctor_commands(CLI::App& app, Context& ctx); // doctor (cmd_doctor.cc)

// The .kpol compiler for bundles (cmd_policy.cc): compiles a bundle's
// policy sources when it is packed or opened without a compiled policy.
pkg::PolicyCompiler bundle_policy_compiler();

} // namespace kos::cli
