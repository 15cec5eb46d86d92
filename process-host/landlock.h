// Landlock (Documentation/userspace-api/landlock.rst) through the raw
// system calls: the installed linux-libc-dev predates network rules and
// scoping, so the newer parts of the ABI are declared here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kos/support/result.h"

namespace kos::proc {

// The Landlock ABI version the running kernel offers (0: unavailable or
// disabled at boot).
int landlock_abi();

struct LandlockNeeds {
    int min_abi = 1; // fs rules
    std::string why = "file system rules";
};

// A volume (`kos run -v`): READ_FILE | READ_DIR beneath when `read`;
// WRITE_FILE, REMOVE_DIR, REMOVE_FILE, MAKE_REG, MAKE_DIR, MAKE_SYM, REFER
// and TRUNCATE (those the ABI has) when `write`; never EXECUTE, device
// nodes, sockets or FIFOs. The rule goes on `fd` (the attached mount) when
// it is >= 0, else on `path`.
struct VolumeRule {
    std::string path;
    int fd = -1;
    bool read = false;
    bool write = false;
};

struct LandlockRules {
    std::vector<std::string> read_paths;  // READ_FILE | READ_DIR beneath (a file: READ_FILE)
    std::vector<std::string> list_paths;  // READ_DIR beneath (names, not contents)
    std::vector<std::string> write_paths; // everything but EXECUTE and device nodes beneath
    std::vector<std::string> exec_files;  // EXECUTE | READ_FILE on these files
    std::vector<std::string> rw_files;    // READ_FILE | WRITE_FILE (device nodes such as /dev/null)
    std::vector<VolumeRule> volumes;
    std::vector<uint16_t> tcp_bind_ports;    // ABI >= 4
    std::vector<uint16_t> tcp_connect_ports; // ABI >= 4
    bool tcp_any_bind = false;
    bool tcp_any_connect = false;
};

// A ruleset fd built for `abi` (must be >= 1). Paths are opened in the
// caller's mount namespace; a missing path is skipped (it cannot be reached
// either). Handles every right the ABI knows (fs, TCP, scopes), so whatever
// no rule grants is denied.
Result<int> landlock_build(const LandlockRules& rules, int abi);

// no_new_privs must already be set. Closes ruleset_fd.
Result<void> landlock_restrict_self(int ruleset_fd);

} // namespace kos::proc
