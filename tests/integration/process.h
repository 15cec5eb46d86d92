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

} // namespace kos::test
