// What the VMM's host services (net_service, file_service) share: the
// restricted io_uring each owns and the I/O thread that runs its loop.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <functional>
#include <span>
#include <thread>

#include "kos/support/result.h"

namespace kos::vmm {

// Creates `ring` disabled, restricts it to `ops` (IORING_REGISTER_RESTRICTIONS:
// io_uring work is not seen by seccomp, so the ring itself must be unable to
// do anything else), then enables it. `cq_entries` 0: the default. `who`
// names the service in errors ("the network service").
Result<void> create_restricted_ring(io_uring& ring, unsigned entries, unsigned cq_entries,
                                    std::span<const uint8_t> ops, const char* who);

// For the services' ring tests: submits one `opcode` SQE (an OPENAT of "/"
// when asked for that) to `ring`, returns its result and tears the ring
// down. A restricted ring answers -EACCES for every opcode it was not given.
int submit_one_and_exit(io_uring& ring, uint8_t opcode);

// Starts a service's I/O thread: it blocks every signal (they belong to the
// vCPU thread's watchdog), runs `setup` first (the jail installs the
// thread's seccomp filter there) and then `loop`. Returns once `setup` has
// run; its error is returned (the thread then ends without the loop).
Result<std::thread> launch_io_thread(std::function<Result<void>()> setup, std::function<void()> loop);

} // namespace kos::vmm
