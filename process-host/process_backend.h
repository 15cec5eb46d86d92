// The host-process backend's entry points for `kos run --backend process`
// and `kos doctor`. Prints its own messages; returns `kos run`'s exit status.
#pragma once

#include <string>
#include <vector>

#include "pkg/volumes.h"

namespace kos::proc {

// How a run ended, beyond its exit status (for kos's instance records).
struct BackendResult {
    bool signaled = false; // the program was ended by signal `value`
    int value = 0;         // its exit status or signal number
    std::string limit_hit; // which limit ended the run, if one did
};

struct BackendRequest {
    std::string bundle;            // bundle directory
    std::vector<std::string> args; // replaces the entrypoint when not empty
    bool stats = false;
    bool best_effort = false;
    double timeout_s = 0;
    std::vector<std::string> publish; // "[HOST_ADDR:]HOST_PORT:GUEST_PORT" (kos run -p)
    std::string audit_log;            // kos run --audit-log FILE: policy audit records as JSON lines ("": none)
    std::vector<pkg::VolumeMount> volumes; // kos run -v, resolved (pkg::resolve_volumes)
    BackendResult* result = nullptr;  // filled in when the program ran, if not null
};

// Exit statuses as in `kos run`: the program's own, 128 + signal, 125 when
// kos fails, 126 when the program cannot be executed, 127 when it is missing.
int run_bundle(const BackendRequest& request);

// Isolation features of this host, one "name: value" line each.
struct HostFeature {
    std::string name;
    std::string value;
    bool ok = false;
};
std::vector<HostFeature> probe_host();

// True when this host can run the process backend without --best-effort.
bool process_backend_usable(std::string* why = nullptr);

} // namespace kos::proc
