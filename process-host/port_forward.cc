#include "port_forward.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>

namespace kos::proc {

Result<void> PortForwarder::listen(const std::vector<Publish>& publish) {
    for (const Publish& p : publish) {
        std::string what = "publishing " + p.host_addr + ":" + std::to_string(p.host_port) + " -> " +
                           std::to_string(p.guest_port);
        UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (!fd)
            return make_error(errno, what + ": socket: " + errno_string(errno));
        int one = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(p.host_port);
        if (::inet_pton(AF_INET, p.host_addr.c_str(), &a.sin_addr) != 1)
            return make_error(EINVAL, what + ": bad host address");
        if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
            return make_error(errno, what + ": bind: " + errno_string(errno));
        if (::listen(fd.get(), 64) != 0)
            return make_error(errno, what + ": listen: " + errno_string(errno));
        m_listeners.push_back({std::move(fd), p});
    }
    return {};
}

Result<void> PortForwarder::attach(int child_pid) {
    if (m_listeners.empty())
        return {};
    m_host_ns = UniqueFd(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
    m_guest_ns = UniqueFd(::open(("/proc/" + std::to_string(child_pid) + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC));
    if (!m_host_ns || !m_guest_ns)
        return make_error(errno, "publishing ports: opening network namespaces: " + errno_string(errno));
    // Check once that switching works (it needs CAP_SYS_ADMIN here).
    if (::setns(m_guest_ns.get(), CLONE_NEWNET) != 0)
        return make_error(errno, "publishing ports needs kos to run as root (setns into the sandbox's network "
                                 "namespace: " + errno_string(errno) + ")");
    if (::setns(m_host_ns.get(), CLONE_NEWNET) != 0)
        return make_error(errno, "publishing ports: returning to the host network namespace: " + errno_string(errno));
    return {};
}

void PortForwarder::add_pollfds(std::vector<pollfd>& fds) const {
    for (const auto& l : m_listeners)
        fds.push_back({m_stopped ? -1 : l.fd.get(), POLLIN, 0});
    // A source is read only when its direction has nothing pending; a
    // destination is watched for room only when it has.
    auto want = [](const Pipe& out_of, const Pipe& into) {
        short ev = 0;
        if (!out_of.done && !out_of.eof && out_of.pending.empty())
            ev |= POLLIN;
        if (!into.done && !into.pending.empty())
            ev |= POLLOUT;
        return ev;
    };
    for (const auto& c : m_conns) {
        if (c.connecting) {
            fds.push_back({-1, 0, 0});
            fds.push_back({c.guest.get(), POLLOUT, 0});
            continue;
        }
        fds.push_back({c.host.get(), want(c.up, c.down), 0});
        fds.push_back({c.guest.get(), want(c.down, c.up), 0});
    }
}

void PortForwarder::accept_one(Listener& l) {
    UniqueFd host(::accept4(l.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!host)
        return;
    // A socket created while in the sandbox's namespace stays in it.
    if (::setns(m_guest_ns.get(), CLONE_NEWNET) != 0)
        return;
    UniqueFd guest(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (::setns(m_host_ns.get(), CLONE_NEWNET) != 0) {
        std::fprintf(stderr, "kos: cannot return to the host network namespace; stopping port forwarding\n");
        m_stopped = true;
        return;
    }
    if (!guest)
        return;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(l.publish.guest_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // Non-blocking: a program that never accepts cannot stall the loop.
    bool connected = ::connect(guest.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    if (!connected && errno != EINPROGRESS)
        return; // nothing listens there yet: the client sees its connection closed
    ::fcntl(host.get(), F_SETFL, ::fcntl(host.get(), F_GETFL) | O_NONBLOCK);
    Conn c;
    c.connecting = !connected;
    c.up.from = c.down.to = host.get();
    c.down.from = c.up.to = guest.get();
    c.host = std::move(host);
    c.guest = std::move(guest);
    m_conns.push_back(std::move(c));
}

void PortForwarder::flush(Pipe& p) {
    while (!p.pending.empty()) {
        ssize_t w = ::send(p.to, p.pending.data(), p.pending.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; // later, on POLLOUT
        if (w <= 0) {
            p.done = true;
            p.pending.clear();
            ::shutdown(p.from, SHUT_RD);
            return;
        }
        p.pending.erase(0, static_cast<size_t>(w));
    }
    if (p.eof && !p.done) {
        ::shutdown(p.to, SHUT_WR); // pass the half-close on
        p.done = true;
    }
}

void PortForwarder::pump(Pipe& p, short from_events, short to_events) {
    if (p.done)
        return;
    if (!p.pending.empty()) {
        if (to_events & (POLLOUT | POLLERR | POLLHUP))
            flush(p);
        return;
    }
    if (!(from_events & (POLLIN | POLLHUP | POLLERR)))
        return;
    char buf[65536];
    ssize_t n = ::recv(p.from, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0)
        p.eof = true;
    else
        p.pending.assign(buf, static_cast<size_t>(n));
    flush(p);
}

void PortForwarder::handle(const pollfd* fds, size_t count) {
    size_t i = 0;
    for (auto& l : m_listeners) {
        if (i < count && (fds[i].revents & POLLIN))
            accept_one(l);
        ++i;
    }
    size_t nconns = (count - i) / 2;
    for (size_t k = 0; k < nconns && k < m_conns.size(); ++k) {
        Conn& c = m_conns[k];
        short host_ev = fds[i].revents, guest_ev = fds[i + 1].revents;
        if (c.connecting) {
            if (guest_ev & (POLLOUT | POLLERR | POLLHUP)) {
                int err = 0;
                socklen_t len = sizeof err;
                ::getsockopt(c.guest.get(), SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0)
                    c.up.done = c.down.done = true; // closes both ends below
                c.connecting = false;
            }
            i += 2;
            continue;
        }
        pump(c.up, host_ev, guest_ev);
        pump(c.down, guest_ev, host_ev);
        i += 2;
    }
    std::erase_if(m_conns, [](const Conn& c) { return c.up.done && c.down.done; });
}

} // namespace kos::proc
