// `kos run` as a recorded instance (--name, -d, --rm), and the commands that
// look after instances: ps, logs, stop, rm, and inspect of an instance.
//
// Every run is recorded (instance_store.h). A run has two processes: the
// *monitor*, which records the instance, starts the *runner*, forwards
// termination signals to it, waits for it and records how it ended; and
// the runner, which is `kos run`'s body unchanged (the VMM, or the
// process backend's supervisor). The split is needed because the VMM
// jails itself (no file can be opened after setup), so the process that
// runs the guest can never write the end of the record itself.
//
// Attached, the monitor is the `kos run` process the user started, and
// the runner shares its terminal and process group; `kos run`'s exit
// status is the runner's. Detached (-d), `kos run` forks, the child
// starts a new session (setsid) and forks the monitor, stdin is
// /dev/null and stdout and stderr go to output.log in the instance
// directory; `kos run -d` prints the id once the run is recorded as
// running and returns. Both ways run the very same runner code.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "commands.h"

namespace kos::cli::instances {

struct RunOptions {
    std::string name;
    bool name_given = false; // --name "" is an error, not "no name"
    bool detach = false;
    bool remove = false;
};

// What the record says about the run.
struct RunDescription {
    std::string bundle;  // as given; recorded as an absolute path
    std::string backend; // vm | process, resolved
    std::vector<std::string> args;
    std::string audit_log;
};

void add_run_options(CLI::App* run, RunOptions& options);

// Runs `body` (kos run's work; returns its exit status) as a recorded
// instance. Returns kos run's exit status.
int run(const RunOptions& options, const RunDescription& description,
        const std::function<int()>& body);

// Called by the runner when it knows how the run ended; no-ops outside a
// recorded run. They write only to memory shared with the monitor, so
// they work inside the VMM's jail.
void note_error(const std::string& message);
void note_limit(const std::string& limit);
void note_program_signal(int signal);

// `kos inspect X` shows an instance when X is not an existing path.
bool inspect_wants_instance(const std::string& argument);
int inspect_command(const std::string& name_or_id);

void add_commands(CLI::App& app, Context& ctx); // ps, logs, stop, rm

} // namespace kos::cli::instances
