// Runs a command with captured output and a timeout, for integration tests.
#pragma once

#include <cstdint>
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

// Starts a command in the background (stdin, stdout and stderr inherited,
// or stderr to /dev/null with `quiet`); its pid, or -1.
int spawn_process(const std::vector<std::string>& argv, bool quiet = false);

// A TCP port of the host's loopback that was free a moment ago.
uint16_t free_loopback_port();

// One HTTP/1.0 GET of `path` from 127.0.0.1:port: the whole response, or ""
// if none came. Retries the connection for up to `wait_ms` while the server
// starts, and waits up to 30 s for a connected server to answer.
std::string http_get(uint16_t port, const std::string& path, int wait_ms);

// A child process of `pid` (scanning /proc), waiting up to `timeout_ms`
// for one to appear; 0 if none did. `kos run` runs the VMM or the process
// backend's supervisor in a child (its runner, cli/instances.h).
int child_of(int pid, int timeout_ms = 4000);

} // namespace kos::test
