// The VMM network service's data path, driven as the guest kernel drives it
// (NetCalls into NetService::handle, guest memory a host buffer), against
// the same transfer on bare host sockets:
//
//   stream  in-bundle loopback (guest socket -> socketpair -> guest socket)
//   inbound host TCP client -> published port -> guest Recv
//   rtt     1-byte ping-pong, host TCP client <-> guest via a published port
//   udp     64-byte datagram ping-pong between two guest sockets over the
//           bundle's loopback, and host UDP client <-> guest via `-p .../udp`
//
// Not part of ctest. Run the release build: bin/kos_net_bench
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "kos/policy/compiler.h"
#include "kvm-host/net_service.h"

namespace net = kos::abi::net;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint64_t kTotal = 256ull << 20;
constexpr uint64_t kChunk = 64 * 1024;
constexpr int kRoundTrips = 20000;

struct Guest {
    std::vector<uint8_t> ram = std::vector<uint8_t>(1 << 20);
    std::unique_ptr<kos::vmm::NetService> svc;

    int64_t call(net::NetCall& c) { return svc->handle(c, {ram.data(), ram.size()}); }
    net::NetCall make(net::NetOp op, uint32_t s = 0) {
        net::NetCall c{};
        c.op = static_cast<uint32_t>(op);
        c.socket = s;
        c.family = net::kFamilyInet;
        c.type = net::kTypeStream;
        return c;
    }
    uint32_t socket() {
        auto c = make(net::NetOp::Socket);
        call(c);
        return c.socket;
    }
    int64_t with_port(net::NetOp op, uint32_t s, uint16_t port, uint64_t arg = 0) {
        auto c = make(op, s);
        c.address.ip[10] = c.address.ip[11] = 0xff;
        c.address.ip[12] = 127;
        c.address.ip[15] = 1;
        c.address.port = port;
        c.address.family = net::kFamilyInet;
        c.arg = arg;
        return call(c);
    }
    void wait(uint32_t s, uint16_t ev) {
        auto c = make(net::NetOp::Poll);
        c.poll_count = 1;
        c.poll[0] = {s, ev, 0};
        c.arg = net::kMaxNetPollWaitNs;
        call(c);
    }
    int64_t data(net::NetOp op, uint32_t s, uint64_t gpa, uint64_t len) {
        auto c = make(op, s);
        c.segment_count = 1;
        c.segments[0] = {gpa, len};
        return call(c);
    }
    uint32_t accept(uint32_t l) {
        while (true) {
            auto c = make(net::NetOp::Accept, l);
            if (call(c) == 0)
                return c.socket;
            wait(l, net::kPollIn);
        }
    }
};

std::unique_ptr<kos::vmm::NetService> start(std::vector<kos::vmm::PublishedPort> publish) {
    static std::vector<uint8_t> blob = *kos::policy::compile_bundle_policy(
        "app_t", {{"policy/app.kpol", "idl \"net.kidl\"\ndomain app_t, net_t\n"
                                      "allow request app_t -> net_t net.Socket.bind\n"
                                      "allow request app_t -> net_t net.Socket.connect where address in "
                                      "127.0.0.0/8 and proto == 17\n"}});
    kos::vmm::NetServiceOptions o;
    o.policy = blob;
    o.publish = std::move(publish);
    auto s = kos::vmm::NetService::start(std::move(o));
    if (!s || !(*s)->launch()) {
        std::fprintf(stderr, "cannot start the network service: %s\n", s ? "launch" : s.error().message.c_str());
        std::exit(1);
    }
    return std::move(*s);
}

double mib_per_s(uint64_t bytes, Clock::duration d) {
    return static_cast<double>(bytes) / (1 << 20) / std::chrono::duration<double>(d).count();
}

int tcp_client(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
        std::exit(2);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int tcp_listener(uint16_t& port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    ::listen(fd, 4);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    port = ntohs(sa.sin_port);
    return fd;
}

void write_all(int fd, uint64_t total) {
    std::vector<char> buf(kChunk, 'x');
    for (uint64_t done = 0; done < total;) {
        ssize_t n = ::write(fd, buf.data(), std::min<uint64_t>(kChunk, total - done));
        if (n <= 0)
            return;
        done += static_cast<uint64_t>(n);
    }
}

void read_all(int fd, uint64_t total) {
    std::vector<char> buf(kChunk);
    for (uint64_t done = 0; done < total;) {
        ssize_t n = ::read(fd, buf.data(), kChunk);
        if (n <= 0)
            return;
        done += static_cast<uint64_t>(n);
    }
}

void bench_stream() {
    Guest g;
    g.svc = start({});
    uint32_t l = g.socket();
    g.with_port(net::NetOp::Bind, l, 9000);
    g.with_port(net::NetOp::Listen, l, 0, 8);
    uint32_t c = g.socket();
    g.with_port(net::NetOp::Connect, c, 9000);
    uint32_t a = g.accept(l);
    g.wait(c, net::kPollOut);
    auto t0 = Clock::now();
    uint64_t sent = 0, received = 0;
    while (received < kTotal) {
        bool progress = false;
        if (sent < kTotal) {
            int64_t n = g.data(net::NetOp::Send, c, 0, std::min(kChunk, kTotal - sent));
            if (n > 0) {
                sent += static_cast<uint64_t>(n);
                progress = true;
            }
        }
        int64_t n = g.data(net::NetOp::Recv, a, kChunk, kChunk);
        if (n > 0) {
            received += static_cast<uint64_t>(n);
            progress = true;
        }
        if (!progress)
            g.wait(a, net::kPollIn);
    }
    auto proxied = Clock::now() - t0;

    int sv[2];
    ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    t0 = Clock::now();
    std::thread w([&] { write_all(sv[0], kTotal); });
    read_all(sv[1], kTotal);
    w.join();
    auto bare = Clock::now() - t0;
    ::close(sv[0]);
    ::close(sv[1]);
    std::printf("stream   in-bundle loopback      %8.0f MiB/s   (bare socketpair %8.0f MiB/s)\n",
                mib_per_s(kTotal, proxied), mib_per_s(kTotal, bare));
}

void bench_inbound_and_rtt() {
    Guest g;
    auto p = *kos::vmm::parse_published_port("127.0.0.1:1:8080");
    p.host_port = 0;
    g.svc = start({p});
    uint32_t l = g.socket();
    g.with_port(net::NetOp::Bind, l, 8080);
    g.with_port(net::NetOp::Listen, l, 0, 8);
    int client = tcp_client(g.svc->published_host_port(0));
    uint32_t a = g.accept(l);

    auto t0 = Clock::now();
    std::thread w([&] { write_all(client, kTotal); });
    for (uint64_t received = 0; received < kTotal;) {
        int64_t n = g.data(net::NetOp::Recv, a, 0, kChunk);
        if (n > 0)
            received += static_cast<uint64_t>(n);
        else
            g.wait(a, net::kPollIn);
    }
    w.join();
    auto proxied = Clock::now() - t0;

    // Round trips: the host sends a byte, the guest echoes it.
    std::vector<double> rtt;
    std::thread echo([&] {
        for (int i = 0; i < kRoundTrips; ++i) {
            while (g.data(net::NetOp::Recv, a, 0, 1) != 1)
                g.wait(a, net::kPollIn);
            while (g.data(net::NetOp::Send, a, 0, 1) != 1)
                g.wait(a, net::kPollOut);
        }
    });
    char b = 'x';
    for (int i = 0; i < kRoundTrips; ++i) {
        auto s = Clock::now();
        if (::write(client, &b, 1) != 1 || ::read(client, &b, 1) != 1)
            break;
        rtt.push_back(std::chrono::duration<double, std::micro>(Clock::now() - s).count());
    }
    echo.join();
    ::close(client);

    // The same over bare host TCP loopback.
    uint16_t port = 0;
    int lfd = tcp_listener(port);
    int c2 = tcp_client(port);
    int s2 = ::accept(lfd, nullptr, nullptr);
    int one = 1;
    ::setsockopt(s2, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    t0 = Clock::now();
    std::thread w2([&] { write_all(c2, kTotal); });
    read_all(s2, kTotal);
    w2.join();
    auto bare = Clock::now() - t0;
    std::vector<double> bare_rtt;
    std::thread echo2([&] {
        char x;
        for (int i = 0; i < kRoundTrips; ++i)
            if (::read(s2, &x, 1) != 1 || ::write(s2, &x, 1) != 1)
                break;
    });
    for (int i = 0; i < kRoundTrips; ++i) {
        auto s = Clock::now();
        if (::write(c2, &b, 1) != 1 || ::read(c2, &b, 1) != 1)
            break;
        bare_rtt.push_back(std::chrono::duration<double, std::micro>(Clock::now() - s).count());
    }
    echo2.join();
    ::close(c2);
    ::close(s2);
    ::close(lfd);

    auto median = [](std::vector<double>& v) {
        std::sort(v.begin(), v.end());
        return v.empty() ? 0.0 : v[v.size() / 2];
    };
    std::printf("inbound  host TCP -> guest        %8.0f MiB/s   (bare TCP loopback %8.0f MiB/s)\n",
                mib_per_s(kTotal, proxied), mib_per_s(kTotal, bare));
    std::printf("rtt      1 byte, median           %8.1f us      (bare TCP loopback %8.1f us)\n", median(rtt),
                median(bare_rtt));
}

double median(std::vector<double>& v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

// UDP: a datagram socket bound to `port`, one datagram to 127.0.0.1:`to`
// (from guest offset `gpa`), one received (at `gpa`).
uint32_t udp_socket(Guest& g, uint16_t port) {
    auto c = g.make(net::NetOp::Socket);
    c.type = net::kTypeDgram;
    g.call(c);
    g.with_port(net::NetOp::Bind, c.socket, port);
    return c.socket;
}

void udp_send(Guest& g, uint32_t s, uint16_t to, uint64_t gpa, uint64_t len) {
    auto c = g.make(net::NetOp::SendTo, s);
    c.address.ip[10] = c.address.ip[11] = 0xff;
    c.address.ip[12] = 127;
    c.address.ip[15] = 1;
    c.address.port = to;
    c.address.family = net::kFamilyInet;
    c.length = len;
    c.segment_count = 1;
    c.segments[0] = {gpa, len};
    while (g.call(c) == -EAGAIN)
        g.wait(s, net::kPollOut);
}

net::NetAddress udp_recv(Guest& g, uint32_t s, uint64_t gpa) {
    while (true) {
        auto c = g.make(net::NetOp::Recv, s);
        c.segment_count = 1;
        c.segments[0] = {gpa, 2048};
        if (g.call(c) >= 0)
            return c.address;
        g.wait(s, net::kPollIn);
    }
}

void bench_udp() {
    constexpr uint64_t kSize = 64;
    Guest g;
    auto p = *kos::vmm::parse_published_port("127.0.0.1:1:7001/udp");
    p.host_port = 0;
    g.svc = start({p});
    uint32_t server = udp_socket(g, 7001), client = udp_socket(g, 7002);

    // In the bundle: two guest threads (host threads here) ping-pong.
    std::vector<double> rtt;
    std::thread echo([&] {
        for (int i = 0; i < kRoundTrips; ++i) {
            net::NetAddress from = udp_recv(g, server, 0x10000);
            udp_send(g, server, from.port, 0x10000, kSize);
        }
    });
    for (int i = 0; i < kRoundTrips; ++i) {
        auto t = Clock::now();
        udp_send(g, client, 7001, 0x20000, kSize);
        udp_recv(g, client, 0x20000);
        rtt.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
    }
    echo.join();

    // From the host through the published port.
    int hc = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(g.svc->published_host_port(0));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::connect(hc, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    std::vector<double> in_rtt;
    std::thread echo2([&] {
        for (int i = 0; i < kRoundTrips; ++i) {
            net::NetAddress from = udp_recv(g, server, 0x10000);
            udp_send(g, server, from.port, 0x10000, kSize);
        }
    });
    char buf[kSize] = {};
    for (int i = 0; i < kRoundTrips; ++i) {
        auto t = Clock::now();
        if (::send(hc, buf, kSize, 0) != kSize || ::recv(hc, buf, sizeof buf, 0) != kSize)
            break;
        in_rtt.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
    }
    echo2.join();
    ::close(hc);

    // Bare host UDP loopback.
    int a = ::socket(AF_INET, SOCK_DGRAM, 0), b = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sb{};
    sb.sin_family = AF_INET;
    sb.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(b, reinterpret_cast<sockaddr*>(&sb), sizeof sb);
    socklen_t len = sizeof sb;
    ::getsockname(b, reinterpret_cast<sockaddr*>(&sb), &len);
    ::connect(a, reinterpret_cast<sockaddr*>(&sb), sizeof sb);
    std::vector<double> bare;
    std::thread echo3([&] {
        char x[kSize];
        for (int i = 0; i < kRoundTrips; ++i) {
            sockaddr_in from{};
            socklen_t fl = sizeof from;
            ssize_t n = ::recvfrom(b, x, sizeof x, 0, reinterpret_cast<sockaddr*>(&from), &fl);
            if (n <= 0 || ::sendto(b, x, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), fl) != n)
                break;
        }
    });
    for (int i = 0; i < kRoundTrips; ++i) {
        auto t = Clock::now();
        if (::send(a, buf, kSize, 0) != kSize || ::recv(a, buf, sizeof buf, 0) != kSize)
            break;
        bare.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
    }
    echo3.join();
    ::close(a);
    ::close(b);
    std::printf("udp      64 B, bundle loopback    %8.1f us      (bare UDP loopback %8.1f us)\n", median(rtt),
                median(bare));
    std::printf("udp      64 B, host -> published  %8.1f us      (bare UDP loopback %8.1f us)\n", median(in_rtt),
                median(bare));
}

} // namespace

int main() {
    bench_stream();
    bench_inbound_and_rtt();
    bench_udp();
    return 0;
}
