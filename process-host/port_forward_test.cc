#include "port_forward.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

namespace kos::proc {
namespace {

int listen_loopback(uint16_t* port) {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(s, 4);
    socklen_t len = sizeof a;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    *port = ntohs(a.sin_port);
    return s;
}

// Relays within this process's own network namespace (attach to our own
// pid): a client's bytes reach the "guest" server and the reply comes back,
// including after the client half-closes.
TEST(PortForwarder, RelaysBothWaysWithHalfClose) {
    if (::geteuid() != 0)
        GTEST_SKIP() << "setns needs root";
    uint16_t guest_port = 0, host_port = 0;
    int server = listen_loopback(&guest_port);
    ::close(listen_loopback(&host_port)); // a free port for the host side
    PortForwarder f;
    ASSERT_TRUE(f.listen({Publish{"127.0.0.1", host_port, guest_port}}));
    ASSERT_TRUE(f.attach(::getpid()));

    pid_t client = ::fork();
    if (client == 0) {
        int c = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(host_port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
            ::_exit(1);
        if (::write(c, "ping", 4) != 4)
            ::_exit(2);
        ::shutdown(c, SHUT_WR);
        char buf[16] = {};
        ssize_t n = ::read(c, buf, sizeof buf);
        ::_exit(n == 4 && std::string(buf, 4) == "pong" ? 0 : 3);
    }
    int conn = -1;
    std::string got;
    bool replied = false;
    int status = -1;
    for (int round = 0; round < 500 && status < 0; ++round) {
        std::vector<pollfd> fds = {{server, POLLIN, 0}, {conn, POLLIN, 0}};
        f.add_pollfds(fds);
        ::poll(fds.data(), fds.size(), 10);
        f.handle(fds.data() + 2, fds.size() - 2);
        if (fds[0].revents & POLLIN)
            conn = ::accept4(server, nullptr, nullptr, SOCK_CLOEXEC);
        if (conn >= 0 && (fds[1].revents & POLLIN)) {
            char buf[16];
            ssize_t n = ::read(conn, buf, sizeof buf);
            if (n > 0)
                got.append(buf, static_cast<size_t>(n));
            if (n == 0 && !replied) { // the client's half-close arrived
                replied = ::write(conn, "pong", 4) == 4;
                ::close(conn);
                conn = -1;
            }
        }
        int st = 0;
        if (::waitpid(client, &st, WNOHANG) == client)
            status = st;
    }
    EXPECT_EQ(got, "ping");
    EXPECT_TRUE(replied);
    ASSERT_GE(status, 0) << "client did not finish";
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    ::close(server);
}

// A client that stops reading must not block the supervisor's loop (which
// also answers the sandbox's notifications): 8 MiB flow through while the
// client sleeps, and no handle() call blocks.
TEST(PortForwarder, StalledClientDoesNotBlockTheLoop) {
    if (::geteuid() != 0)
        GTEST_SKIP() << "setns needs root";
    constexpr size_t kTotal = 8u << 20;
    uint16_t guest_port = 0, host_port = 0;
    int server = listen_loopback(&guest_port);
    ::close(listen_loopback(&host_port));
    PortForwarder f;
    ASSERT_TRUE(f.listen({Publish{"127.0.0.1", host_port, guest_port}}));
    ASSERT_TRUE(f.attach(::getpid()));
    pid_t client = ::fork();
    if (client == 0) {
        int c = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(host_port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
            ::_exit(1);
        ::usleep(500'000); // stalled
        size_t got = 0;
        char buf[65536];
        ssize_t n;
        while ((n = ::read(c, buf, sizeof buf)) > 0)
            got += static_cast<size_t>(n);
        ::_exit(got == kTotal ? 0 : 2);
    }
    int conn = -1;
    size_t sent = 0;
    double worst_ms = 0;
    int status = -1;
    std::string chunk(65536, 'x');
    for (int round = 0; round < 5000 && status < 0; ++round) {
        std::vector<pollfd> fds = {{server, POLLIN, 0}, {conn, static_cast<short>(sent < kTotal ? POLLOUT : 0), 0}};
        f.add_pollfds(fds);
        ::poll(fds.data(), fds.size(), 10);
        auto t = std::chrono::steady_clock::now();
        f.handle(fds.data() + 2, fds.size() - 2);
        worst_ms = std::max(worst_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
        if (fds[0].revents & POLLIN) {
            conn = ::accept4(server, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        }
        if (conn >= 0 && sent < kTotal && (fds[1].revents & POLLOUT)) {
            ssize_t w = ::send(conn, chunk.data(), std::min(chunk.size(), kTotal - sent), MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                sent += static_cast<size_t>(w);
            if (sent == kTotal)
                ::shutdown(conn, SHUT_WR);
        }
        int st = 0;
        if (::waitpid(client, &st, WNOHANG) == client)
            status = st;
    }
    ASSERT_GE(status, 0) << "client did not finish; sent " << sent;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    EXPECT_LT(worst_ms, 50.0);
    ::close(conn);
    ::close(server);
}

// A guest that never accepts (its accept queue full) cannot stall the loop
// through the relay's own connect.
TEST(PortForwarder, GuestThatNeverAcceptsDoesNotBlockTheLoop) {
    if (::geteuid() != 0)
        GTEST_SKIP() << "setns needs root";
    uint16_t guest_port = 0, host_port = 0;
    int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(server, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(server, 0);
    socklen_t len = sizeof a;
    ::getsockname(server, reinterpret_cast<sockaddr*>(&a), &len);
    guest_port = ntohs(a.sin_port);
    std::vector<int> fillers;
    for (int i = 0; i < 3; ++i) { // fill the accept queue
        int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
        fillers.push_back(c);
    }
    ::close(listen_loopback(&host_port));
    PortForwarder f;
    ASSERT_TRUE(f.listen({Publish{"127.0.0.1", host_port, guest_port}}));
    ASSERT_TRUE(f.attach(::getpid()));
    std::vector<int> clients;
    double worst_ms = 0;
    for (int round = 0; round < 40; ++round) {
        if (round < 3) {
            int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            sockaddr_in h{};
            h.sin_family = AF_INET;
            h.sin_port = htons(host_port);
            h.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            ::connect(c, reinterpret_cast<sockaddr*>(&h), sizeof h);
            clients.push_back(c);
        }
        std::vector<pollfd> fds;
        f.add_pollfds(fds);
        ::poll(fds.data(), fds.size(), 10);
        auto t = std::chrono::steady_clock::now();
        f.handle(fds.data(), fds.size());
        worst_ms = std::max(worst_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
    }
    EXPECT_LT(worst_ms, 50.0);
    for (int c : clients)
        ::close(c);
    for (int c : fillers)
        ::close(c);
    ::close(server);
}

TEST(PortForwarder, BusyHostPortFailsBeforeAnythingRuns) {
    uint16_t port = 0;
    int taken = listen_loopback(&port);
    PortForwarder f;
    auto r = f.listen({Publish{"127.0.0.1", port, 8000}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, EADDRINUSE);
    EXPECT_NE(r.error().message.find("publishing 127.0.0.1:" + std::to_string(port) + " -> 8000: bind"),
              std::string::npos)
        << r.error().message;
    ::close(taken);
}

} // namespace
} // namespace kos::proc
