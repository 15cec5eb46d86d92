// Runs one program as a sandboxed Linux process (docs/process-backend.md):
// new user, mount, PID, IPC, UTS and network namespaces; the bundle's rootfs
// read-only as "/", a private /tmp, a minimal /dev, its own /proc; every
// capability dropped, no_new_privs, rlimits and a cgroup; a Landlock
// ruleset; a deny-by-default seccomp filter whose connect/bind/execve
// notifications this process (the supervisor) answers.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kos/support/result.h"
#include "sandbox_spec.h"

namespace kos::proc {

struct RunOptions {
    bool best_effort = false; // run even when Landlock/cgroups cannot enforce the spec
    bool stats = false;       // print the setup report and timings to stderr
    double timeout_s = 0;     // wall-time limit, 0 = none
    bool notify = true;       // seccomp user notification for connect/bind/execve
    std::vector<Publish> publish; // `-p HOST:GUEST`, besides the spec's own
    // With a compiled policy: append every audit record as a JSON line
    // (render_audit_json) to this file, created 0600 if missing; empty: none.
    std::string audit_log;
    // Jail the calling process once the program runs (supervisor_jail.h).
    // Irreversible: only for a process that starts one sandbox and exits.
    bool jail_supervisor = false;
};

// One supervisor decision, for audit lines and tests.
struct Verdict {
    bool allow = false;
    std::string reason; // "no [network] connect entry in x/bundle.toml allows it"
    std::string rule;   // "network.connect", "network.listen", "exec.undeclared"
};

struct RunOutcome {
    enum class Kind { Exited, Signaled, ExecFailed } kind = Kind::Exited;
    int value = 0;          // exit status, signal number, or errno of the failed execve
    std::string limit_hit;  // which limit ended the run, if one did
    uint64_t setup_ns = 0;  // start to the program's first instruction
    // Where setup time went, cumulative from the start: filter and plan
    // built, namespaces created (and cgroup joined), mounts done (user namespace entered),
    // child confined (seccomp listener received).
    uint64_t prepared_ns = 0, cloned_ns = 0, mounted_ns = 0, confined_ns = 0;
    uint64_t run_ns = 0;
    uint64_t notifications = 0;
    uint64_t denials = 0;
    int landlock_abi = 0;
};

// Whether Landlock ABI `abi` can enforce `spec` (ABI 1 for the file system
// rules, 4 when [network] declares endpoints); with `best_effort`, always.
Result<void> check_landlock(const SandboxSpec& spec, int abi, bool best_effort);

// Runs the spec and waits for the program (and its PID namespace) to end.
// Precondition: the calling process is single-threaded (the sandbox is
// started with a raw clone). Errors are setup failures, reported before
// the program ran.
Result<RunOutcome> run_sandbox(const SandboxSpec& spec, const RunOptions& options);

} // namespace kos::proc
