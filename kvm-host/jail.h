// The VMM's jail: what the VMM process gives up after setup and before it
// runs any guest code (ATTACKS.md 24, 25). From then on it can only run the
// vCPU, read its input, write the guest's output and, with networking, let
// its network service's I/O thread move the guest's socket data.
//
// - all capabilities dropped (bounding, effective, permitted, inheritable,
//   ambient), no_new_privs, not dumpable, no core files, few descriptors;
// - Landlock with every access right the kernel knows handled and none
//   granted: no path can be opened, no TCP port bound, no signal sent or
//   abstract socket reached outside the process; no TCP port connected
//   either, unless the bundle's policy can allow outbound connections
//   (then the network service re-checks each one against the policy);
//   with volumes, one path-beneath rule per volume's root directory: read
//   files and list directories, and for a writable volume also write,
//   create, remove, rename (REFER) and truncate there; never execute;
// - a seccomp filter (libseccomp) per kind of thread, allowing only the
//   system calls listed in jail.cc, each with its reason; anything else
//   kills the process. The vCPU thread's filter has no socket calls; the
//   network I/O thread's has io_uring_enter and the few socket calls the
//   proxy makes, and nothing that opens a path or runs a program; the file
//   service's I/O thread has io_uring_enter and the few file calls its
//   ring has no opcode for, none of which opens a path.
//
// Credentials, no_new_privs, Landlock domains and seccomp filters belong to
// a thread and are inherited by the threads it creates afterwards. So the
// order is: the process-wide parts on the main thread, then the I/O thread
// is started (it inherits them and installs its own filter first thing),
// then the vCPU (main) thread's filter. io_uring work runs with the I/O
// thread's credentials (Landlock applies) but outside seccomp: the ring is
// restricted to its opcodes when it is created (net_service.h).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "kos/support/result.h"

namespace kos::vmm {

// A volume's root directory (an O_PATH descriptor) and whether the guest
// may change what is beneath it.
struct JailVolume {
    int fd = -1;
    bool writable = false;
};

struct JailOptions {
    int vcpu_fd = -1;  // the first vCPU: the descriptors that may receive ioctls are
    std::vector<int> more_vcpu_fds = {}; // its and those of the further vCPUs
    int stdin_fd = 0;  // read for the guest's console input
    int stdout_fd = 1; // guest output
    int stderr_fd = 2; // guest output and kos's own messages
    int audit_fd = -1; // the audit log (JSON lines), if any
    // Networking: the eventfd the vCPU thread writes to wake the network
    // service's I/O thread (-1: no network), the host descriptors the
    // service may hold (added to RLIMIT_NOFILE), and whether Landlock
    // leaves TCP connect (outbound connections the policy may allow).
    int net_wake_fd = -1;
    unsigned net_fds = 0;
    bool net_connect = false;
    // Volumes: whether the file service's I/O thread runs (it installs
    // install_file_thread_filter()), the volumes' root directories
    // Landlock gives it, and the host descriptors it may hold (added to
    // RLIMIT_NOFILE). The vCPU thread hands it work with a futex only.
    bool files = false;
    std::vector<JailVolume> volumes = {};
    unsigned file_fds = 0;
};

struct JailReport {
    std::string namespaces; // the new namespaces entered ("" when none could be)
    std::string namespaces_refused; // why not, then
    int landlock_abi = 0; // 0: Landlock unavailable on this kernel
    bool network = false; // the network I/O thread has its own filter
    bool files = false;   // the file service's I/O thread has its own filter
    size_t volumes = 0;   // Landlock rules for volumes
    std::string summary() const;
};

// New namespaces for the calling (single-threaded) process: mount (all
// mounts private), IPC, UTS and, unless `keep_network`, network (the
// sockets made before, such as published listeners, keep working; nothing
// new reaches the host's network). Without CAP_SYS_ADMIN a user namespace
// (the caller's own ids mapped) comes first. Returns what was entered, or
// "" with `*why` set when the kernel refuses (a container without user
// namespaces): the rest of the jail still applies.
Result<std::string> enter_namespaces(bool keep_network, std::string* why);

// Applies the whole jail to the calling process, which must be
// single-threaded when called. `start_threads` (may be empty) runs after
// the process-wide parts and before the calling thread's filter: it starts
// the network I/O thread, which calls install_io_thread_filter() before
// anything else, and the file service's, which calls
// install_file_thread_filter(). Fails (and the caller must not run the guest) if a part
// cannot be applied.
Result<JailReport> enter_jail(const JailOptions& options,
                              const std::function<Result<void>()>& start_threads = {});

// The filter of the network service's I/O thread, installed by that thread
// on itself (filters are per thread).
Result<void> install_io_thread_filter();

// The filter of the file service's I/O thread, installed by that thread on
// itself.
Result<void> install_file_thread_filter();

// The parts, for tests.
Result<void> drop_privileges(unsigned extra_fds = 0);
// Returns the ABI in use (0: unavailable). `allow_connect`: TCP connect is
// not handled (outbound connections stay possible). `volumes`: the
// directories beneath which files may be read (and written when writable).
Result<int> restrict_with_landlock(bool allow_connect = false, const std::vector<JailVolume>& volumes = {});
Result<void> install_seccomp_filter(const JailOptions& options); // the vCPU thread's

} // namespace kos::vmm
