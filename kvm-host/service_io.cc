#include "service_io.h"

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <string>
#include <vector>

namespace kos::vmm {

Result<void> create_restricted_ring(io_uring& ring, unsigned entries, unsigned cq_entries,
                                    std::span<const uint8_t> ops, const char* who) {
    io_uring_params p{};
    // Disabled until restricted: a ring's restrictions can only be set
    // before it is enabled, and they cannot be lifted.
    p.flags = IORING_SETUP_R_DISABLED;
    if (cq_entries) {
        p.flags |= IORING_SETUP_CQSIZE;
        p.cq_entries = cq_entries;
    }
    int rc = ::io_uring_queue_init_params(entries, &ring, &p);
    if (rc < 0)
        return make_error(-rc, std::string(who) + " cannot create its io_uring: " + std::strerror(-rc) +
                                   " (is io_uring disabled by kernel.io_uring_disabled?)");
    std::vector<io_uring_restriction> res(ops.size());
    for (size_t i = 0; i < ops.size(); ++i) {
        res[i].opcode = IORING_RESTRICTION_SQE_OP;
        res[i].sqe_op = ops[i];
    }
    // io_uring_register(2) directly: Debian's liburing 2.3 does not export
    // its wrappers for these two.
    rc = static_cast<int>(::syscall(__NR_io_uring_register, ring.ring_fd, IORING_REGISTER_RESTRICTIONS, res.data(),
                                    static_cast<unsigned>(res.size())));
    if (rc == 0)
        rc = static_cast<int>(::syscall(__NR_io_uring_register, ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0));
    if (rc < 0)
        rc = -errno;
    if (rc < 0) {
        ::io_uring_queue_exit(&ring);
        return make_error(-rc, std::string("restricting the io_uring of ") + who + " failed: " + std::strerror(-rc));
    }
    return {};
}

int submit_one_and_exit(io_uring& ring, uint8_t opcode) {
    io_uring_sqe* e = ::io_uring_get_sqe(&ring);
    ::io_uring_prep_nop(e);
    e->opcode = opcode;
    if (opcode == IORING_OP_OPENAT)
        ::io_uring_prep_openat(e, AT_FDCWD, "/", O_RDONLY | O_DIRECTORY, 0);
    io_uring_cqe* cqe = nullptr;
    int rc = ::io_uring_submit_and_wait(&ring, 1);
    if (rc >= 0)
        rc = ::io_uring_peek_cqe(&ring, &cqe);
    int res = rc < 0 ? rc : cqe->res;
    if (res >= 0 && opcode == IORING_OP_OPENAT)
        ::close(res);
    ::io_uring_queue_exit(&ring);
    return res;
}

Result<std::thread> launch_io_thread(std::function<Result<void>()> setup, std::function<void()> loop) {
    // One malloc arena for the process: glibc gives a new thread its own
    // arena, and trimming such an arena reads /proc/sys/vm/overcommit_memory,
    // an open(2) that the jailed VMM's filters (rightly) punish.
    ::mallopt(M_ARENA_MAX, 1);
    std::promise<Result<void>> started;
    auto ready = started.get_future();
    std::thread t([&started, setup = std::move(setup), loop = std::move(loop)] {
        sigset_t all;
        sigfillset(&all);
        ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
        Result<void> r = setup ? setup() : Result<void>{};
        bool ok = r.has_value();
        started.set_value(std::move(r));
        if (ok)
            loop();
    });
    Result<void> r = ready.get();
    if (!r) {
        t.join();
        return std::unexpected(r.error());
    }
    return t;
}

} // namespace kos::vmm
