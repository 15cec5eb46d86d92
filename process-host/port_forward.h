// Published ports (`-p HOST:GUEST`): the supervisor listens in the host's
// network namespace and relays each connection to 127.0.0.1:GUEST inside the
// sandbox's network namespace, which has only loopback. The relay runs in
// the supervisor's poll loop (no threads); the sandboxed program sees an
// ordinary connection from 127.0.0.1.
#pragma once

#include <poll.h>

#include <vector>

#include "kos/support/file.h"
#include "kos/support/result.h"
#include "sandbox_spec.h"

namespace kos::proc {

class PortForwarder {
public:
    // Binds every host port now, so a busy port fails before the program
    // starts.
    Result<void> listen(const std::vector<Publish>& publish);
    // Joins the sandbox's network namespace for outgoing relay sockets
    // (needs CAP_SYS_ADMIN: kos running as root).
    Result<void> attach(int child_pid);
    bool active() const { return !m_listeners.empty(); }

    // Appends this forwarder's descriptors to `fds` (per connection: host
    // then guest, each polled for what its two directions need); handle()
    // takes the same range back after poll().
    void add_pollfds(std::vector<pollfd>& fds) const;
    void handle(const pollfd* fds, size_t count);

private:
    struct Listener {
        UniqueFd fd;
        Publish publish;
    };
    // One direction. Sockets are non-blocking: bytes the destination cannot
    // take yet wait in `pending`, and the source is not read until they
    // are gone, so a slow or stalled peer never blocks the supervisor.
    struct Pipe {
        int from = -1, to = -1;
        bool done = false;
        bool eof = false; // source ended; half-close once pending is flushed
        std::string pending;
    };
    struct Conn {
        UniqueFd host, guest;
        Pipe up, down;          // host -> guest, guest -> host
        bool connecting = true; // the guest side's non-blocking connect is in progress
    };
    void accept_one(Listener& l);
    static void pump(Pipe& p, short from_events, short to_events);
    static void flush(Pipe& p);

    std::vector<Listener> m_listeners;
    std::vector<Conn> m_conns;
    UniqueFd m_guest_ns, m_host_ns;
    bool m_stopped = false;
};

} // namespace kos::proc
