// The VM's network service: the guest's sockets are sockets of this proxy
// (abi/kos/net.h describes the NetCall page and the path a call takes).
//
// Two threads touch it:
//
// - the vCPU thread calls handle() for each hc::Op::Net hypercall. It never
//   makes a blocking host syscall (nor any socket syscall: its seccomp
//   filter has none). It works on in-memory state under one mutex: accept
//   queues, receive buffers the I/O thread fills, send buffers the I/O
//   thread drains. What needs the host (a connect, a socketpair, a socket
//   option) is queued, and the I/O thread is woken through an eventfd.
// - the I/O thread owns every host descriptor and runs one io_uring loop:
//   accepts on the published listeners, connects, receives and sends. It
//   signals a condition variable when a socket's readiness may have
//   changed, for Poll calls that wait.
//
// Listeners are virtual (an accept queue, no host socket) except on a
// published port: `-p HOST_PORT:GUEST_PORT` binds a host listener in
// start(), before the jail, and a guest Listen on GUEST_PORT receives the
// connections it accepts. Loopback (127.0.0.0/8, ::1, and the unspecified
// address) is the bundle's own: a Connect there reaches the bundle's
// listener on that port through a host socketpair, never the host's
// loopback. Other Connects are checked against the bundle's compiled policy
// again (the guest kernel checked them first), then go out as host TCP
// connections.
//
// Datagram (UDP) sockets: every destination (Connect's peer, each SendTo)
// is checked against the policy again with proto 17, loopback included. A
// datagram to the loopback is queued on the bundle's datagram socket bound
// to that port (bounded; dropped when full, as UDP drops); others go out
// through a host UDP socket of the I/O thread (SENDMSG), whose RECVMSG
// brings replies back. `-p HOST_PORT:GUEST_PORT/udp` binds a host UDP
// socket in start() that the guest socket bound to GUEST_PORT uses.
//
// The ring is created disabled, restricted to the opcodes the loop uses
// and then enabled (IORING_REGISTER_RESTRICTIONS): io_uring work is not
// seen by seccomp, so the ring itself must be unable to open files or do
// anything else.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "kos/net.h"
#include "kos/support/publish.h"
#include "kos/support/result.h"

namespace kos::vmm {

// `-p [HOST_ADDR:]HOST_PORT:GUEST_PORT[/udp]`: host connections to
// HOST_ADDR:HOST_PORT reach the bundle's listener on GUEST_PORT (TCP), or
// host datagrams its datagram socket bound to GUEST_PORT (/udp).
using kos::PublishedPort;
using kos::parse_published_port;

struct NetServiceOptions {
    // The compiled bundle policy (the bytes the guest kernel enforces). It
    // must load: a blob that does not load fails start() (fail closed).
    // Copied by start().
    std::span<const uint8_t> policy;
    std::vector<PublishedPort> publish;
    // Receives the engine's audit record (security::AuditRecord bytes) of
    // each request the VMM denies. May be empty.
    std::function<void(std::span<const uint8_t>)> audit;
    uint32_t max_sockets = 1024;      // guest sockets alive at once (accept queues included)
    uint32_t buffer_bytes = 64 * 1024; // per socket and direction
};

// Guest RAM as the service sees it: guest-physical address = offset.
struct NetGuestMemory {
    uint8_t* base = nullptr;
    uint64_t size = 0;
    // The boot image's read-only slot: a program's read-only data can be
    // mapped from it, so Send may read there (Recv never writes there).
    const uint8_t* image = nullptr;
    uint64_t image_gpa = 0;
    uint64_t image_size = 0;
    bool contains(uint64_t gpa, uint64_t len) const { return gpa <= size && len <= size - gpa; }
    const uint8_t* readable(uint64_t gpa, uint64_t len) const {
        if (contains(gpa, len))
            return base + gpa;
        if (image && gpa >= image_gpa && gpa - image_gpa <= image_size && len <= image_size - (gpa - image_gpa))
            return image + (gpa - image_gpa);
        return nullptr;
    }
};

class NetService {
public:
    // Loads the policy, creates the published host listeners, the eventfd
    // and the restricted ring. No thread yet: launch() starts it once the
    // process-wide parts of the jail are in place, so that the I/O thread
    // inherits them. Errors: the policy does not load (EINVAL), a published
    // address cannot be bound (the errno of bind, with the address), io_uring
    // is unavailable or cannot be restricted.
    static Result<std::unique_ptr<NetService>> start(NetServiceOptions options);

    ~NetService(); // stops and joins the I/O thread, closes every descriptor

    NetService(const NetService&) = delete;
    NetService& operator=(const NetService&) = delete;

    // Starts the I/O thread. `on_thread_start` runs first on that thread
    // (the jail installs the thread's seccomp filter there); its error is
    // returned here and the thread does not run the loop. Call once.
    Result<void> launch(std::function<Result<void>()> on_thread_start = {});

    // One NetCall from the guest kernel: validates every field against
    // `ram` and the service's state, performs the call and writes its
    // outputs into `call`. Returns the call's result (>= 0, or -errno).
    // Never blocks on the host; Poll may wait on a condition variable up to
    // kMaxNetPollWaitNs. Called from the vCPU thread only.
    int64_t handle(abi::net::NetCall& call, NetGuestMemory ram);

    // Whether the policy can allow any outbound connection (the jail keeps
    // Landlock's TCP connect right for the I/O thread only then). An
    // over-approximation: some allow rule for a request to `net_t`.
    bool may_connect_out() const { return m_may_connect_out; }
    // Descriptors the jail must know: the eventfd the vCPU thread writes to
    // wake the I/O thread, and how many host descriptors the service may
    // hold at once (for RLIMIT_NOFILE).
    int wake_fd() const;
    uint32_t max_host_fds() const;
    // Host address of published listener `i` (port 0 in options: the one
    // the host picked), for tests.
    uint16_t published_host_port(size_t i) const;

    // Test hook: runs `fn` on the I/O thread at its next wake-up (the jail
    // test makes a forbidden syscall there).
    void run_on_io_thread_for_test(std::function<void()> fn);

    // Test hook: submits one `opcode` SQE (an OPENAT of "/" when asked for
    // that) to a ring set up as the service's is, and returns its result:
    // -EACCES for every opcode the service does not use.
    static Result<int> ring_result_for_test(uint8_t opcode);

    struct Impl;

private:
    explicit NetService(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
    bool m_may_connect_out = false;
};

} // namespace kos::vmm
