// The VMM's jail: what the VMM process gives up after setup and before it
// runs any guest code (ATTACKS.md 24, 25). From then on it can only run the
// vCPU, read its input and write the guest's output.
//
// - all capabilities dropped (bounding, effective, permitted, inheritable,
//   ambient), no_new_privs, not dumpable, no core files, few descriptors;
// - Landlock with every access right the kernel knows handled and none
//   granted: no path can be opened, no TCP port bound or connected, no
//   signal sent or abstract socket reached outside the process;
// - a seccomp filter (libseccomp) allowing only the system calls listed in
//   jail.cc, each with its reason; anything else kills the process.
#pragma once

#include <string>

#include "kos/support/result.h"

namespace kos::vmm {

struct JailOptions {
    int vcpu_fd = -1;  // the only descriptor that may receive ioctls
    int stdin_fd = 0;  // read for the guest's console input
    int stdout_fd = 1; // guest output
    int stderr_fd = 2; // guest output and kos's own messages
    int audit_fd = -1; // the audit log (JSON lines), if any
};

struct JailReport {
    int landlock_abi = 0; // 0: Landlock unavailable on this kernel
    std::string summary() const;
};

// Applies the whole jail to the calling process, which must be
// single-threaded. Fails (and the caller must not run the guest) if
// seccomp cannot be installed.
Result<JailReport> enter_jail(const JailOptions& options);

// The parts, for tests.
Result<void> drop_privileges();
Result<int> restrict_with_landlock(); // returns the ABI in use (0: unavailable)
Result<void> install_seccomp_filter(const JailOptions& options);

} // namespace kos::vmm
