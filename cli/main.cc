// kos: the one command users type. Thin: parses, calls the libraries, prints.
#include <cstdio>
#include <string>

#include "commands.h"
#include "instances.h"

#ifndef KOS_VERSION
#define KOS_VERSION "0.0.0"
#endif

int main(int argc, char** argv) {
    CLI::App app{"kos: run application bundles under a default-deny security policy"};
    app.set_version_flag("--version", "kos " KOS_VERSION);
    app.require_subcommand(1);
    app.fallthrough(false);
    kos::cli::Context ctx;
    kos::cli::add_run_commands(app, ctx);
    kos::cli::add_policy_commands(app, ctx);
    kos::cli::add_bundle_commands(app, ctx);
    kos::cli::add_doctor_commands(app, ctx);
    kos::cli::instances::add_commands(app, ctx);
    // Split at the first "--" ourselves: a program's arguments (say "-e" or
    // "[") must reach it verbatim.
    int kos_argc = argc;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--") {
            kos_argc = i;
            ctx.has_passthrough = true;
            ctx.passthrough.assign(argv + i + 1, argv + argc);
            break;
        }
    }
    try {
        app.parse(kos_argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        // Usage errors are distinct from a program's own exit status.
        return rc == 0 ? 0 : 125;
    }
    return ctx.exit_status;
}
