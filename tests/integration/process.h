// Runs a command with captured output and a timeout, for integration tests.
#pragma once

#include <string>
#include <vector>

namespace kos::test {

struct ProcessResult {
    int status = -1;      // exit status, or 128 + signal
    bool timed_out = false;
    std::string out;
    std::string err;
};

ProcessResult run_process(const std::vector<std::string>& argv, int timeout_seconds = 60,
                          const std::string& input = "");

// A child process of `pid` (scanning /proc), waiting up to `timeout_ms`
// for one to appear; 0 if none did. `kos run` runs the VMM or the process
// backend's supervisor in a child (its runner, cli/instances.h).
int child_of(int pid, int timeout_ms = 4000);

} // namespace kos::test
