// The network service driven as the guest kernel drives it: NetCalls into
// handle(), guest memory a host buffer (gpa = offset), real host sockets on
// the other side.
#include "kvm-host/net_service.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <liburing.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "kos/policy/compiler.h"
#include "kos/security/engine.h"
#include "kos/security/net_request.h"
#include "kos/support/file.h"

namespace kos::vmm {
namespace {

namespace net = abi::net;
namespace sec = security;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kSendGpa = 0x10000;
constexpr uint64_t kRecvGpa = 0x40000;
constexpr uint64_t kRamSize = 1 << 20;

std::string policy_text(const std::string& extra = "") {
    return R"(idl "net.kidl"
domain app_t, net_t
allow request app_t -> net_t net.Socket.bind where port in { 0, 8080, 9000 }
allow request app_t -> net_t net.Socket.connect where address in 127.0.0.0/8
)" + extra;
}

std::vector<uint8_t> compile(const std::string& text) {
    auto blob = policy::compile_bundle_policy("app_t", {{"policy/app.kpol", text}});
    EXPECT_TRUE(blob) << (blob ? "" : blob.error().message);
    return blob ? *blob : std::vector<uint8_t>{};
}

uint32_t label_of(const std::vector<uint8_t>& blob, const char* name) {
    std::vector<uint64_t> state(sec::Engine::required_state_size(blob.data(), blob.size()) / 8 + 8);
    sec::Engine e;
    if (e.load(blob.data(), blob.size(), state.data(), state.size() * 8) != sec::LoadError::None)
        return sec::kNone;
    return e.find_label(name, static_cast<uint32_t>(std::strlen(name)));
}

net::NetAddress v4(const char* text, uint16_t port) {
    net::NetAddress a{};
    in_addr in{};
    ::inet_pton(AF_INET, text, &in);
    a.ip[10] = a.ip[11] = 0xff;
    std::memcpy(a.ip + 12, &in, 4);
    a.port = port;
    a.family = net::kFamilyInet;
    return a;
}

// A host TCP client of 127.0.0.1:port (blocking).
UniqueFd host_connect(uint16_t port, const char* ip = "127.0.0.1") {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    ::inet_pton(AF_INET, ip, &sa.sin_addr);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << errno_string(errno);
    return fd;
}

// A host listener on ip:0; returns its port.
UniqueFd host_listener(const char* ip, uint16_t& port) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    ::inet_pton(AF_INET, ip, &sa.sin_addr);
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << errno_string(errno);
    EXPECT_EQ(::listen(fd.get(), 8), 0);
    socklen_t len = sizeof sa;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len);
    port = ntohs(sa.sin_port);
    return fd;
}

// This host's first non-loopback IPv4 address, if any ("" otherwise).
std::string host_ipv4() {
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0)
        return "";
    std::string out;
    for (ifaddrs* i = list; i && out.empty(); i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        auto* in = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
        if ((ntohl(in->sin_addr.s_addr) >> 24) == 127)
            continue;
        char text[INET_ADDRSTRLEN];
        out = ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    }
    ::freeifaddrs(list);
    return out;
}

class NetServiceTest : public ::testing::Test {
protected:
    std::vector<uint8_t> ram = std::vector<uint8_t>(kRamSize);
    std::vector<uint8_t> blob;
    uint32_t subject = 0;
    std::vector<std::vector<uint8_t>> audits;
    std::unique_ptr<NetService> svc;

    void start(const std::string& policy = policy_text(), std::vector<PublishedPort> publish = {},
               uint32_t max_sockets = 1024) {
        blob = compile(policy);
        subject = label_of(blob, "app_t");
        NetServiceOptions o;
        o.policy = blob;
        o.publish = std::move(publish);
        o.audit = [this](std::span<const uint8_t> r) { audits.emplace_back(r.begin(), r.end()); };
        o.max_sockets = max_sockets;
        auto s = NetService::start(std::move(o));
        ASSERT_TRUE(s) << s.error().message;
        svc = std::move(*s);
        auto l = svc->launch();
        ASSERT_TRUE(l) << l.error().message;
    }

    NetGuestMemory mem() { return {ram.data(), ram.size()}; }

    net::NetCall make(net::NetOp op, uint32_t socket = 0) {
        net::NetCall c{};
        c.op = static_cast<uint32_t>(op);
        c.subject = subject;
        c.socket = socket;
        return c;
    }
    int64_t call(net::NetCall& c) { return svc->handle(c, mem()); }

    uint32_t socket() {
        auto c = make(net::NetOp::Socket);
        c.family = net::kFamilyInet;
        c.type = net::kTypeStream;
        EXPECT_EQ(call(c), 0);
        return c.socket;
    }
    int64_t simple(net::NetOp op, uint32_t s, uint64_t arg = 0) {
        auto c = make(op, s);
        c.arg = arg;
        return call(c);
    }
    int64_t with_address(net::NetOp op, uint32_t s, net::NetAddress a) {
        auto c = make(op, s);
        c.address = a;
        return call(c);
    }
    uint32_t listener(const char* ip, uint16_t port) {
        uint32_t l = socket();
        EXPECT_EQ(with_address(net::NetOp::Bind, l, v4(ip, port)), 0);
        EXPECT_EQ(simple(net::NetOp::Listen, l, 16), 0);
        return l;
    }
    int64_t send(uint32_t s, const std::string& data) {
        std::memcpy(ram.data() + kSendGpa, data.data(), data.size());
        auto c = make(net::NetOp::Send, s);
        c.segment_count = 1;
        c.segments[0] = {kSendGpa, data.size()};
        return call(c);
    }
    int64_t recv(uint32_t s, std::string& out, uint64_t max = 4096) {
        auto c = make(net::NetOp::Recv, s);
        c.segment_count = 1;
        c.segments[0] = {kRecvGpa, max};
        int64_t n = call(c);
        if (n > 0)
            out.assign(reinterpret_cast<char*>(ram.data() + kRecvGpa), static_cast<size_t>(n));
        return n;
    }
    // Polls `s` for `events` until some are ready (at most 5 s).
    uint16_t wait_for(uint32_t s, uint16_t events) {
        auto end = Clock::now() + std::chrono::seconds(5);
        while (Clock::now() < end) {
            auto c = make(net::NetOp::Poll);
            c.poll_count = 1;
            c.poll[0] = {s, events, 0};
            c.arg = net::kMaxNetPollWaitNs;
            int64_t n = call(c);
            EXPECT_GE(n, 0);
            if (n > 0 && (c.poll[0].revents & events))
                return c.poll[0].revents;
        }
        ADD_FAILURE() << "socket " << s << " never became ready for " << events;
        return 0;
    }
    // Receives until `want` bytes, EOF or 5 s.
    std::string recv_all(uint32_t s, size_t want) {
        std::string all;
        auto end = Clock::now() + std::chrono::seconds(5);
        while (all.size() < want && Clock::now() < end) {
            std::string part;
            int64_t n = recv(s, part);
            if (n == -EAGAIN) {
                wait_for(s, net::kPollIn);
                continue;
            }
            if (n <= 0)
                break;
            all += part;
        }
        return all;
    }
    // UDP: a datagram socket, a datagram to `to` (nullptr: the connected
    // peer), one datagram received with its source and flags.
    uint32_t dgram_socket(uint32_t family = net::kFamilyInet) {
        auto c = make(net::NetOp::Socket);
        c.family = family;
        c.type = net::kTypeDgram;
        EXPECT_EQ(call(c), 0);
        return c.socket;
    }
    int64_t send_to(uint32_t s, const std::string& data, const net::NetAddress* to) {
        std::memcpy(ram.data() + kSendGpa, data.data(), data.size());
        auto c = make(to ? net::NetOp::SendTo : net::NetOp::Send, s);
        if (to)
            c.address = *to;
        c.length = data.size();
        c.segment_count = 1;
        c.segments[0] = {kSendGpa, data.size()};
        return call(c);
    }
    struct Received {
        int64_t n = 0;
        std::string data;
        net::NetAddress from{};
        uint32_t flags = 0;
    };
    Received recv_from(uint32_t s, uint64_t max = 4096, uint64_t msg_flags = 0) {
        auto c = make(net::NetOp::Recv, s);
        c.segment_count = 1;
        c.segments[0] = {kRecvGpa, max};
        c.arg = msg_flags;
        Received r;
        r.n = call(c);
        if (r.n >= 0)
            r.data.assign(reinterpret_cast<char*>(ram.data() + kRecvGpa),
                          static_cast<size_t>(std::min<int64_t>(r.n, static_cast<int64_t>(max))));
        r.from = c.address;
        r.flags = c.flags;
        return r;
    }
    // Waits (at most 5 s) for a datagram.
    Received recv_wait(uint32_t s, uint64_t max = 4096) {
        wait_for(s, net::kPollIn);
        return recv_from(s, max);
    }
    net::NetAddress local_name(uint32_t s) {
        auto c = make(net::NetOp::LocalName, s);
        EXPECT_EQ(call(c), 0);
        return c.address;
    }
    uint32_t accept(uint32_t l, net::NetAddress* peer = nullptr) {
        wait_for(l, net::kPollIn);
        auto c = make(net::NetOp::Accept, l);
        EXPECT_EQ(call(c), 0);
        if (peer)
            *peer = c.address;
        return c.socket;
    }
};

std::string host_read(int fd, size_t want) {
    std::string out;
    char buf[4096];
    while (out.size() < want) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

TEST(PublishedPortParse, FormsAndErrors) {
    auto p = parse_published_port("8080:80");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->host_port, 8080);
    EXPECT_EQ(p->guest_port, 80);
    EXPECT_TRUE(p->host_ipv4);
    EXPECT_EQ(p->host_ip[12], 127); // loopback unless an address is given

    p = parse_published_port("0.0.0.0:8443:443");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->host_ip[12], 0);
    EXPECT_EQ(p->host_ip[10], 0xff);

    p = parse_published_port("[::1]:8080:80");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_FALSE(p->host_ipv4);
    EXPECT_EQ(p->host_ip[15], 1);

    for (const char* bad : {"80", "a:80", "8080:0", "8080:70000", "1.2.3:8080:80", "[::1:8080:80", "1:2:3:4",
                            "", ":80", "::1:80:80"}) {
        auto r = parse_published_port(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error().code, EINVAL);
        EXPECT_NE(r.error().message.find("-p "), std::string::npos) << r.error().message;
    }
    auto r = parse_published_port("8080:99999");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("GUEST_PORT"), std::string::npos) << r.error().message;

    // `/udp` as docker's -p; `/tcp` is the default.
    p = parse_published_port("5353:53/udp");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_TRUE(p->udp);
    EXPECT_EQ(p->host_port, 5353);
    EXPECT_EQ(p->guest_port, 53);
    p = parse_published_port("[::1]:8080:80/tcp");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_FALSE(p->udp);
    EXPECT_FALSE(parse_published_port("8080:80").value().udp);
    r = parse_published_port("8080:80/sctp");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("sctp"), std::string::npos) << r.error().message;
    EXPECT_FALSE(parse_published_port("8080:80/"));
}

// io_uring work escapes seccomp: the ring itself refuses what the
// service does not use.
TEST(NetServiceRing, RefusesOpcodesTheServiceDoesNotUse) {
    for (uint8_t op : {uint8_t{IORING_OP_OPENAT}, uint8_t{IORING_OP_NOP}, uint8_t{IORING_OP_WRITE},
                       uint8_t{IORING_OP_SOCKET}, uint8_t{IORING_OP_POLL_ADD}}) {
        auto r = NetService::ring_result_for_test(op);
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(*r, -EACCES) << "opcode " << int(op);
    }
    // An opcode it uses gets through to the descriptor check (fd -1).
    auto r = NetService::ring_result_for_test(IORING_OP_RECV);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, -EBADF);
}

TEST_F(NetServiceTest, PolicyThatDoesNotLoadFailsClosed) {
    std::vector<uint8_t> junk(64, 0x5a);
    NetServiceOptions o;
    o.policy = junk;
    auto s = NetService::start(std::move(o));
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, EINVAL);
    EXPECT_NE(s.error().message.find("cannot load the bundle's compiled policy"), std::string::npos);

    auto none = NetService::start(NetServiceOptions{});
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code, EINVAL);
    EXPECT_NE(none.error().message.find("the bundle has none"), std::string::npos) << none.error().message;
}

TEST_F(NetServiceTest, PublishedPortEchoesThroughTheGuestListener) {
    PublishedPort p = *parse_published_port("127.0.0.1:1:8080");
    p.host_port = 0; // let the host pick a free port
    start(policy_text(), {p});
    uint16_t host_port = svc->published_host_port(0);
    ASSERT_NE(host_port, 0);

    uint32_t l = listener("0.0.0.0", 8080);
    UniqueFd client = host_connect(host_port);
    net::NetAddress peer{};
    uint32_t a = accept(l, &peer);
    ASSERT_NE(a, 0u);
    EXPECT_EQ(peer.ip[12], 127);
    EXPECT_EQ(peer.family, net::kFamilyInet);

    ASSERT_EQ(::write(client.get(), "hello", 5), 5);
    EXPECT_EQ(recv_all(a, 5), "hello");
    wait_for(a, net::kPollOut);
    EXPECT_EQ(send(a, "HELLO"), 5);
    EXPECT_EQ(host_read(client.get(), 5), "HELLO");

    // The host client's end of output: the guest reads 0.
    ::shutdown(client.get(), SHUT_WR);
    EXPECT_TRUE(wait_for(a, net::kPollIn | net::kPollRdHup) & net::kPollRdHup);
    std::string rest;
    EXPECT_EQ(recv(a, rest), 0);

    // Output queued before Close still reaches the host.
    EXPECT_EQ(send(a, "bye"), 3);
    EXPECT_EQ(simple(net::NetOp::Close, a), 0);
    EXPECT_EQ(host_read(client.get(), 100), "bye");
    EXPECT_EQ(simple(net::NetOp::Close, l), 0);
}

// Many host clients at once through one published port: the guest echoes
// every byte and closes right after its last Send; each client must get
// back exactly what it sent (buffers full both ways, output drained after
// Close).
TEST_F(NetServiceTest, ManyConnectionsEchoThroughAPublishedPort) {
    PublishedPort p = *parse_published_port("127.0.0.1:1:8080");
    p.host_port = 0;
    start(policy_text(), {p});
    uint32_t l = listener("0.0.0.0", 8080);
    constexpr int kClients = 16;
    constexpr size_t kBytes = 200 * 1024;
    std::vector<std::string> echoed(kClients);
    std::vector<std::thread> clients;
    for (int i = 0; i < kClients; ++i)
        clients.emplace_back([&, i] {
            UniqueFd fd = host_connect(svc->published_host_port(0));
            std::string data(kBytes, static_cast<char>('a' + i));
            for (size_t k = 0; k < data.size(); k += 7)
                data[k] = static_cast<char>(k);
            std::thread writer([&] {
                for (size_t done = 0; done < data.size();) {
                    ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
                    if (n <= 0)
                        return;
                    done += static_cast<size_t>(n);
                }
                ::shutdown(fd.get(), SHUT_WR);
            });
            std::string got = host_read(fd.get(), SIZE_MAX);
            writer.join();
            echoed[i] = got == data ? "ok" : "mismatch: " + std::to_string(got.size()) + " bytes";
        });

    struct Conn {
        uint32_t id;
        std::string pending;
        bool eof = false;
    };
    std::vector<Conn> open;
    int closed = 0;
    auto end = Clock::now() + std::chrono::seconds(30);
    while (closed < kClients && Clock::now() < end) {
        bool progress = false;
        for (;;) {
            auto c = make(net::NetOp::Accept, l);
            if (call(c) != 0)
                break;
            open.push_back({c.socket, {}, false});
            progress = true;
        }
        for (auto it = open.begin(); it != open.end();) {
            Conn& c = *it;
            if (!c.pending.empty()) {
                int64_t n = send(c.id, c.pending.substr(0, 32 * 1024));
                if (n > 0) {
                    c.pending.erase(0, static_cast<size_t>(n));
                    progress = true;
                }
            }
            if (!c.eof && c.pending.size() < 256 * 1024) {
                std::string part;
                int64_t n = recv(c.id, part, 32 * 1024);
                if (n > 0)
                    c.pending += part;
                else if (n == 0)
                    c.eof = true;
                progress |= n >= 0;
            }
            if (c.eof && c.pending.empty()) {
                EXPECT_EQ(simple(net::NetOp::Close, c.id), 0);
                ++closed;
                it = open.erase(it);
                progress = true;
                continue;
            }
            ++it;
        }
        if (!progress) {
            auto poll = make(net::NetOp::Poll);
            poll.poll[poll.poll_count++] = {l, net::kPollIn, 0};
            for (Conn& c : open)
                poll.poll[poll.poll_count++] = {
                    c.id, static_cast<uint16_t>(net::kPollIn | (c.pending.empty() ? 0 : net::kPollOut)), 0};
            poll.arg = net::kMaxNetPollWaitNs;
            EXPECT_GE(call(poll), 0);
        }
    }
    EXPECT_EQ(closed, kClients);
    for (auto& t : clients)
        t.join();
    for (int i = 0; i < kClients; ++i)
        EXPECT_EQ(echoed[i], "ok") << "client " << i;
}

TEST_F(NetServiceTest, LoopbackConnectReachesTheBundlesOwnListener) {
    start();
    uint32_t l = listener("127.0.0.1", 9000);
    uint32_t c = socket();
    EXPECT_EQ(with_address(net::NetOp::Connect, c, v4("127.0.0.1", 9000)), -EINPROGRESS);
    int64_t again = with_address(net::NetOp::Connect, c, v4("127.0.0.1", 9000));
    EXPECT_TRUE(again == -EALREADY || again == -EISCONN) << again; // the I/O thread may be done
    EXPECT_TRUE(wait_for(c, net::kPollOut) & net::kPollOut);
    EXPECT_EQ(with_address(net::NetOp::Connect, c, v4("127.0.0.1", 9000)), -EISCONN);
    EXPECT_EQ(simple(net::NetOp::GetError, c), 0);
    net::NetAddress peer{};
    uint32_t a = accept(l, &peer);

    auto names = make(net::NetOp::LocalName, c);
    ASSERT_EQ(call(names), 0);
    EXPECT_EQ(names.address.ip[12], 127);
    EXPECT_EQ(names.address.port, peer.port); // the listener sees the client's address
    names = make(net::NetOp::PeerName, c);
    ASSERT_EQ(call(names), 0);
    EXPECT_EQ(names.address.port, 9000);

    EXPECT_EQ(send(c, "ping"), 4);
    EXPECT_EQ(recv_all(a, 4), "ping");
    EXPECT_EQ(send(a, "pong"), 4);
    EXPECT_EQ(recv_all(c, 4), "pong");

    // The accepting end closes: the client reads EOF, then sends fail.
    EXPECT_EQ(simple(net::NetOp::Close, a), 0);
    wait_for(c, net::kPollIn);
    std::string out;
    EXPECT_EQ(recv(c, out), 0);
    int64_t r = 0;
    for (int i = 0; i < 100 && r >= 0; ++i) {
        r = send(c, "x");
        if (r >= 0)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(r, -EPIPE);
}

// IPv6: a listener on [::] takes IPv4 and IPv6 loopback connections (as a
// dual-stack Linux socket does); a published IPv6 address works; the
// guest's Shutdown(SHUT_WR) reaches the host client as end of input.
TEST_F(NetServiceTest, Ipv6ListenersAndShutdown) {
    UniqueFd probe(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in6 six{};
    six.sin6_family = AF_INET6;
    six.sin6_addr = in6addr_loopback;
    if (!probe || ::bind(probe.get(), reinterpret_cast<sockaddr*>(&six), sizeof six) != 0)
        GTEST_SKIP() << "no IPv6 loopback on this host";
    probe = UniqueFd();
    PublishedPort p = *parse_published_port("[::1]:1:9000");
    p.host_port = 0;
    start(policy_text(), {p});

    auto c6 = make(net::NetOp::Socket);
    c6.family = net::kFamilyInet6;
    c6.type = net::kTypeStream;
    ASSERT_EQ(call(c6), 0);
    uint32_t l = c6.socket;
    net::NetAddress any{};
    any.family = net::kFamilyInet6;
    any.port = 9000;
    ASSERT_EQ(with_address(net::NetOp::Bind, l, any), 0);
    ASSERT_EQ(simple(net::NetOp::Listen, l, 8), 0);

    // An IPv6 client of ::1 and an IPv4 client of 127.0.0.1.
    ASSERT_EQ(call(c6), 0);
    uint32_t v6 = c6.socket;
    net::NetAddress lo6{};
    lo6.ip[15] = 1;
    lo6.port = 9000;
    lo6.family = net::kFamilyInet6;
    EXPECT_EQ(with_address(net::NetOp::Connect, v6, lo6), -EINPROGRESS);
    uint32_t v4s = socket();
    EXPECT_EQ(with_address(net::NetOp::Connect, v4s, v4("127.0.0.1", 9000)), -EINPROGRESS);
    net::NetAddress peer{};
    uint32_t a1 = accept(l, &peer);
    EXPECT_EQ(peer.family, net::kFamilyInet6);
    uint32_t a2 = accept(l, &peer);
    EXPECT_EQ(peer.family, net::kFamilyInet6);
    EXPECT_EQ(send(v6, "six"), 3);
    EXPECT_EQ(send(v4s, "four"), 4);
    std::string got = recv_all(a1, 3) + "|" + recv_all(a2, 4);
    EXPECT_EQ(got, "six|four"); // loopback connects are paired, and queued, in order

    // The published [::1] port, and the guest's end of output.
    UniqueFd client(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    six.sin6_port = htons(svc->published_host_port(0));
    ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&six), sizeof six), 0);
    uint32_t a3 = accept(l);
    EXPECT_EQ(send(a3, "last"), 4);
    EXPECT_EQ(simple(net::NetOp::Shutdown, a3, SHUT_WR), 0);
    EXPECT_EQ(send(a3, "more"), -EPIPE);
    EXPECT_EQ(host_read(client.get(), 100), "last"); // then EOF
    ASSERT_EQ(::write(client.get(), "still", 5), 5); // the other direction stays open
    EXPECT_EQ(recv_all(a3, 5), "still");
}

TEST_F(NetServiceTest, LoopbackWithoutListenerIsRefusedAndNeverReachesTheHost) {
    start();
    // A host listener on the host's loopback: the guest must not reach it.
    uint16_t port = 0;
    UniqueFd host = host_listener("127.0.0.1", port);
    uint32_t c = socket();
    EXPECT_EQ(with_address(net::NetOp::Connect, c, v4("127.0.0.1", port)), -ECONNREFUSED);
    EXPECT_EQ(with_address(net::NetOp::Connect, c, v4("0.0.0.0", port)), -ECONNREFUSED);
    net::NetAddress six{};
    six.ip[15] = 1;
    six.port = port;
    six.family = net::kFamilyInet6;
    EXPECT_EQ(with_address(net::NetOp::Connect, c, six), -EAFNOSUPPORT); // IPv4 socket
    EXPECT_TRUE(audits.empty());
}

TEST_F(NetServiceTest, ConnectDeniedByThePolicyIsAudited) {
    start();
    uint32_t c = socket();
    EXPECT_EQ(with_address(net::NetOp::Connect, c, v4("192.0.2.1", 80)), -EACCES);
    ASSERT_EQ(audits.size(), 1u);
    ASSERT_EQ(audits[0].size(), sizeof(sec::AuditRecord));
    sec::AuditRecord rec;
    std::memcpy(&rec, audits[0].data(), sizeof rec);
    EXPECT_EQ(rec.allow, 0);
    EXPECT_EQ(rec.source, subject);
    EXPECT_EQ(rec.target, label_of(blob, "net_t"));
    EXPECT_EQ(rec.a, sec::kNetInterface);
    EXPECT_EQ(rec.b, sec::kNetConnect);
    // The socket is still usable, unconnected.
    auto names = make(net::NetOp::PeerName, c);
    EXPECT_EQ(call(names), -ENOTCONN);
    // Another subject (a forged or wrong label) is denied as well.
    auto forged = make(net::NetOp::Connect, c);
    forged.subject = 12345;
    forged.address = v4("192.0.2.1", 80);
    EXPECT_EQ(call(forged), -EACCES);
    // Bind is checked too.
    EXPECT_EQ(with_address(net::NetOp::Bind, c, v4("0.0.0.0", 22)), -EACCES);
    EXPECT_EQ(audits.size(), 3u);
}

TEST_F(NetServiceTest, AllowedOutboundConnectGoesToTheHost) {
    std::string ip = host_ipv4();
    if (ip.empty())
        GTEST_SKIP() << "no non-loopback IPv4 address on this host";
    uint16_t port = 0;
    UniqueFd host = host_listener(ip.c_str(), port);
    start(policy_text("allow request app_t -> net_t net.Socket.connect where port == " + std::to_string(port) +
                      " and proto == 6\n"));
    EXPECT_TRUE(svc->may_connect_out());
    uint32_t c = socket();
    auto nd = make(net::NetOp::SetOption, c);
    nd.option = static_cast<uint32_t>(net::NetOption::NoDelay);
    nd.arg = 1;
    EXPECT_EQ(call(nd), 0);
    EXPECT_EQ(with_address(net::NetOp::Connect, c, v4(ip.c_str(), port)), -EINPROGRESS);
    UniqueFd server(::accept4(host.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(server);
    EXPECT_TRUE(wait_for(c, net::kPollOut) & net::kPollOut);
    EXPECT_EQ(simple(net::NetOp::GetError, c), 0);
    EXPECT_EQ(send(c, "out"), 3);
    EXPECT_EQ(host_read(server.get(), 3), "out");
    ASSERT_EQ(::write(server.get(), "in", 2), 2);
    EXPECT_EQ(recv_all(c, 2), "in");
    auto get = make(net::NetOp::GetOption, c);
    get.option = static_cast<uint32_t>(net::NetOption::NoDelay);
    EXPECT_EQ(call(get), 0);
    EXPECT_EQ(get.arg, 1u);
    EXPECT_EQ(simple(net::NetOp::Close, c), 0);

    // Nothing listens any more: the connect fails, and SO_ERROR says why.
    host = UniqueFd();
    uint32_t d = socket();
    EXPECT_EQ(with_address(net::NetOp::Connect, d, v4(ip.c_str(), port)), -EINPROGRESS);
    uint16_t revents = wait_for(d, net::kPollOut);
    EXPECT_TRUE(revents & net::kPollErr) << revents;
    EXPECT_EQ(simple(net::NetOp::GetError, d), ECONNREFUSED);
    EXPECT_EQ(simple(net::NetOp::GetError, d), 0); // cleared
    EXPECT_EQ(send(d, "x"), -ENOTCONN);
}

TEST_F(NetServiceTest, PollWithTimeoutWakesWhenDataArrives) {
    start();
    uint32_t l = listener("127.0.0.1", 9000);
    uint32_t c = socket();
    EXPECT_EQ(with_address(net::NetOp::Connect, c, v4("127.0.0.1", 9000)), -EINPROGRESS);
    uint32_t a = accept(l);
    wait_for(c, net::kPollOut);

    // Nothing to read: a Poll without timeout says so at once.
    auto p = make(net::NetOp::Poll);
    p.poll_count = 1;
    p.poll[0] = {a, net::kPollIn, 0};
    EXPECT_EQ(call(p), 0);
    EXPECT_EQ(p.poll[0].revents, 0);

    // Data sent while the Poll waits wakes it before its timeout.
    std::thread sender([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        net::NetCall s{};
        s.op = static_cast<uint32_t>(net::NetOp::Send);
        s.socket = c;
        s.segment_count = 1;
        s.segments[0] = {kSendGpa, 4};
        svc->handle(s, mem()); // handle() serializes callers
    });
    std::memcpy(ram.data() + kSendGpa, "wake", 4);
    auto t0 = Clock::now();
    uint16_t revents = 0;
    // One Poll waits at most kMaxNetPollWaitNs (50 ms); the send comes at 10.
    for (int i = 0; i < 3 && !revents; ++i) {
        p.poll[0].revents = 0;
        p.arg = 10'000'000'000ull; // capped by the service
        call(p);
        revents = p.poll[0].revents;
    }
    auto waited = Clock::now() - t0;
    sender.join();
    EXPECT_TRUE(revents & net::kPollIn);
    EXPECT_LT(waited, std::chrono::milliseconds(150));
    EXPECT_EQ(recv_all(a, 4), "wake");

    // A Poll with nothing ready returns after its (capped) timeout.
    p.poll[0].revents = 0;
    p.arg = 10'000'000'000ull;
    t0 = Clock::now();
    EXPECT_EQ(call(p), 0);
    waited = Clock::now() - t0;
    EXPECT_GE(waited, std::chrono::milliseconds(45));
    EXPECT_LT(waited, std::chrono::seconds(2));
}

TEST_F(NetServiceTest, MalformedCallsAreRejected) {
    start();
    uint32_t l = listener("127.0.0.1", 9000);
    uint32_t c = socket();
    EXPECT_EQ(with_address(net::NetOp::Connect, c, v4("127.0.0.1", 9000)), -EINPROGRESS);
    uint32_t a = accept(l);
    wait_for(c, net::kPollOut);

    auto unknown = make(static_cast<net::NetOp>(99), c);
    EXPECT_EQ(call(unknown), -EINVAL);
    auto zero = make(static_cast<net::NetOp>(0), c);
    EXPECT_EQ(call(zero), -EINVAL);
    EXPECT_EQ(simple(net::NetOp::Recv, 4242), -EBADF); // forged id
    EXPECT_EQ(simple(net::NetOp::Close, 0), -EBADF);

    auto bad = make(net::NetOp::Send, c);
    bad.segment_count = 1;
    bad.segments[0] = {kRamSize - 2, 4}; // crosses the end of RAM
    EXPECT_EQ(call(bad), -EFAULT);
    bad.segments[0] = {~0ull - 1, 4}; // wraps around
    EXPECT_EQ(call(bad), -EFAULT);
    bad.segments[0] = {0, ~0ull};
    EXPECT_EQ(call(bad), -EFAULT);
    bad.segment_count = net::kMaxNetSegments + 1;
    bad.segments[0] = {kSendGpa, 1};
    EXPECT_EQ(call(bad), -EINVAL);
    bad.segment_count = 2;
    bad.segments[0] = {0, net::kMaxNetData};
    bad.segments[1] = {0, 1}; // over kMaxNetData in total
    EXPECT_EQ(call(bad), -EINVAL);
    bad.op = static_cast<uint32_t>(net::NetOp::Recv);
    bad.segment_count = 1;
    bad.segments[0] = {kRamSize, 1};
    EXPECT_EQ(call(bad), -EFAULT);

    auto poll = make(net::NetOp::Poll);
    poll.poll_count = net::kMaxNetPoll + 1;
    EXPECT_EQ(call(poll), -EINVAL);
    poll.poll_count = 2;
    poll.poll[0] = {c, net::kPollIn, 0};
    poll.poll[1] = {777, net::kPollIn, 0};
    EXPECT_EQ(call(poll), -EBADF);

    auto sock = make(net::NetOp::Socket);
    sock.family = 99;
    sock.type = net::kTypeStream;
    EXPECT_EQ(call(sock), -EINVAL);
    // An AF_UNIX socket takes Unix names only, of 1 to 108 bytes.
    sock.family = net::kFamilyUnix;
    ASSERT_EQ(call(sock), 0);
    uint32_t unix_sock = sock.socket;
    EXPECT_EQ(with_address(net::NetOp::Bind, unix_sock, v4("127.0.0.1", 80)), -EAFNOSUPPORT);
    auto named = make(net::NetOp::Bind, unix_sock);
    named.address.family = net::kFamilyUnix;
    named.path_len = 0;
    EXPECT_EQ(call(named), -EINVAL);
    named.path_len = 109;
    EXPECT_EQ(call(named), -EINVAL);
    // Each label has its own Unix names: another label's connect to a name
    // finds nothing, and may bind the same name itself.
    named.path_len = 4;
    std::memcpy(named.path, "jobs", 4);
    ASSERT_EQ(call(named), 0);
    ASSERT_EQ(simple(net::NetOp::Listen, unix_sock, 4), 0);
    // A Unix stream socket, and a call on it naming "jobs".
    auto unix_socket = [&] {
        auto c = make(net::NetOp::Socket);
        c.family = net::kFamilyUnix;
        c.type = net::kTypeStream;
        EXPECT_EQ(call(c), 0);
        return c.socket;
    };
    auto named_call = [&](net::NetOp op, uint32_t s) {
        auto c = make(op, s);
        c.address.family = net::kFamilyUnix;
        c.path_len = 4;
        std::memcpy(c.path, "jobs", 4);
        return c;
    };
    auto reach = named_call(net::NetOp::Connect, unix_socket());
    reach.subject = subject + 1;
    EXPECT_EQ(call(reach), -ECONNREFUSED);
    auto bind_other = named_call(net::NetOp::Bind, unix_socket());
    EXPECT_EQ(call(bind_other), -EADDRINUSE); // the same label: taken
    bind_other.subject = subject + 1;
    EXPECT_EQ(call(bind_other), 0);           // another label: its own name
    reach.subject = subject;
    EXPECT_EQ(call(reach), -EINPROGRESS);     // the binder's own label reaches it
    sock.family = net::kFamilyInet;
    sock.type = 3; // SOCK_RAW
    EXPECT_EQ(call(sock), -EINVAL);
    sock.family = net::kFamilyUnix;
    sock.type = net::kTypeDgram; // no Unix datagram sockets
    EXPECT_EQ(call(sock), -EINVAL);
    auto addr = v4("127.0.0.1", 1);
    addr.family = 99;
    EXPECT_EQ(with_address(net::NetOp::Connect, socket(), addr), -EAFNOSUPPORT);
    EXPECT_EQ(simple(net::NetOp::Shutdown, a, 7), -EINVAL);
    auto opt = make(net::NetOp::SetOption, a);
    opt.option = 1000;
    EXPECT_EQ(call(opt), -ENOPROTOOPT);
    opt.option = static_cast<uint32_t>(net::NetOption::Type);
    EXPECT_EQ(call(opt), -ENOPROTOOPT);

    // Nothing was lost: the connection still works both ways.
    EXPECT_EQ(send(c, "ok"), 2);
    EXPECT_EQ(recv_all(a, 2), "ok");
}

TEST_F(NetServiceTest, SocketLimit) {
    start(policy_text(), {}, 4);
    uint32_t ids[4];
    for (auto& id : ids)
        id = socket();
    auto c = make(net::NetOp::Socket);
    c.family = net::kFamilyInet;
    c.type = net::kTypeStream;
    EXPECT_EQ(call(c), -EMFILE);
    EXPECT_EQ(simple(net::NetOp::Close, ids[0]), 0);
    // A closed socket's id fails; its place is free again (once the I/O
    // thread has let it go).
    EXPECT_EQ(simple(net::NetOp::Close, ids[0]), -EBADF);
    int64_t r = -EMFILE;
    for (int i = 0; i < 100 && r == -EMFILE; ++i) {
        c = make(net::NetOp::Socket);
        c.family = net::kFamilyInet;
        c.type = net::kTypeStream;
        r = call(c);
        if (r == -EMFILE)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(r, 0);
    EXPECT_NE(c.socket, ids[0]);
}

TEST_F(NetServiceTest, ListenerBacklogAndBindConflicts) {
    start();
    uint32_t l = listener("127.0.0.1", 9000);
    uint32_t other = socket();
    EXPECT_EQ(with_address(net::NetOp::Bind, other, v4("0.0.0.0", 9000)), -EADDRINUSE);
    EXPECT_EQ(simple(net::NetOp::Listen, l, 1), 0); // backlog 1
    uint32_t c1 = socket(), c2 = socket();
    EXPECT_EQ(with_address(net::NetOp::Connect, c1, v4("127.0.0.1", 9000)), -EINPROGRESS);
    EXPECT_EQ(with_address(net::NetOp::Connect, c2, v4("127.0.0.1", 9000)), -ECONNREFUSED);
    auto get = make(net::NetOp::GetOption, l);
    get.option = static_cast<uint32_t>(net::NetOption::AcceptConn);
    EXPECT_EQ(call(get), 0);
    EXPECT_EQ(get.arg, 1u);
    EXPECT_EQ(simple(net::NetOp::Accept, c1), -EINVAL);
    // Closing the listener frees the port.
    EXPECT_EQ(simple(net::NetOp::Close, l), 0);
    EXPECT_EQ(with_address(net::NetOp::Bind, other, v4("0.0.0.0", 9000)), 0);
}

} // namespace
} // namespace kos::vmm

namespace kos::vmm {
namespace {

bool same(const net::NetAddress& a, const net::NetAddress& b) {
    return a.port == b.port && std::memcmp(a.ip, b.ip, 16) == 0;
}

// Datagrams over the bundle's loopback: each one whole, in order, with its
// source; replies go back to that source.
TEST_F(NetServiceTest, UdpLoopbackRoundTripKeepsMessageBoundaries) {
    start();
    uint32_t server = dgram_socket();
    EXPECT_EQ(with_address(net::NetOp::Bind, server, v4("127.0.0.1", 9000)), 0);
    EXPECT_EQ(wait_for(server, net::kPollOut) & net::kPollIn, 0); // writable, nothing to read
    uint32_t client = dgram_socket();
    net::NetAddress to = v4("127.0.0.1", 9000);
    for (std::string d : {"one", "two-two", "", "three"})
        EXPECT_EQ(send_to(client, d, &to), static_cast<int64_t>(d.size()));
    net::NetAddress client_addr = local_name(client); // bound by its first send
    EXPECT_GE(client_addr.port, 49152);
    for (std::string want : {"one", "two-two", "", "three"}) {
        Received r = recv_wait(server);
        EXPECT_EQ(r.n, static_cast<int64_t>(want.size()));
        EXPECT_EQ(r.data, want);
        EXPECT_EQ(r.flags, 0u);
        EXPECT_EQ(r.from.port, client_addr.port);
        EXPECT_EQ(r.from.ip[12], 127);
        EXPECT_EQ(r.from.family, net::kFamilyInet);
        // The reply goes to the source.
        EXPECT_EQ(send_to(server, "re:" + want, &r.from), static_cast<int64_t>(want.size() + 3));
    }
    EXPECT_EQ(recv_from(server).n, -EAGAIN);
    for (std::string want : {"re:one", "re:two-two", "re:", "re:three"}) {
        Received r = recv_wait(client);
        EXPECT_EQ(r.data, want);
        EXPECT_TRUE(same(r.from, to));
    }
    EXPECT_EQ(simple(net::NetOp::Close, client), 0);
    EXPECT_EQ(simple(net::NetOp::Close, server), 0);
    EXPECT_TRUE(audits.empty());
}

// A buffer smaller than the datagram takes its start (kMsgTrunc) and the
// rest is gone; MSG_PEEK leaves it queued; MSG_TRUNC reports its size.
TEST_F(NetServiceTest, UdpTruncationPeekAndTruncFlag) {
    start();
    uint32_t server = dgram_socket();
    EXPECT_EQ(with_address(net::NetOp::Bind, server, v4("127.0.0.1", 9000)), 0);
    uint32_t client = dgram_socket();
    net::NetAddress to = v4("127.0.0.1", 9000);
    EXPECT_EQ(send_to(client, "0123456789", &to), 10);
    EXPECT_EQ(send_to(client, "abc", &to), 3);
    wait_for(server, net::kPollIn);
    Received peek = recv_from(server, 4096, 0x2 /* MSG_PEEK */);
    EXPECT_EQ(peek.data, "0123456789");
    Received trunc_size = recv_from(server, 4, 0x2 | 0x20 /* MSG_PEEK | MSG_TRUNC */);
    EXPECT_EQ(trunc_size.n, 10);
    EXPECT_EQ(trunc_size.data, "0123");
    EXPECT_EQ(trunc_size.flags, net::kMsgTrunc);
    Received cut = recv_from(server, 4);
    EXPECT_EQ(cut.n, 4);
    EXPECT_EQ(cut.data, "0123");
    EXPECT_EQ(cut.flags, net::kMsgTrunc);
    Received next = recv_from(server, 4);
    EXPECT_EQ(next.data, "abc"); // the rest of the first one was dropped
    EXPECT_EQ(next.flags, 0u);
    EXPECT_EQ(recv_from(server).n, -EAGAIN);
}

// Connect sets the default peer (and filters what is received); Send
// without it is EDESTADDRREQ; a connected socket learns that nobody is
// bound at its peer as ECONNREFUSED.
TEST_F(NetServiceTest, UdpConnectedSocketsAndRefusal) {
    start();
    uint32_t server = dgram_socket();
    EXPECT_EQ(with_address(net::NetOp::Bind, server, v4("127.0.0.1", 9000)), 0);
    uint32_t client = dgram_socket();
    EXPECT_EQ(send_to(client, "x", nullptr), -EDESTADDRREQ);
    EXPECT_EQ(simple(net::NetOp::PeerName, client), -ENOTCONN);
    EXPECT_EQ(with_address(net::NetOp::Connect, client, v4("127.0.0.1", 9000)), 0);
    auto peer = make(net::NetOp::PeerName, client);
    EXPECT_EQ(call(peer), 0);
    EXPECT_EQ(peer.address.port, 9000);
    EXPECT_EQ(send_to(client, "hello", nullptr), 5);
    Received r = recv_wait(server);
    EXPECT_EQ(r.data, "hello");
    EXPECT_TRUE(same(r.from, local_name(client)));
    // Another sender does not reach the connected client.
    uint32_t other = dgram_socket();
    net::NetAddress client_addr = local_name(client);
    EXPECT_EQ(send_to(other, "intruder", &client_addr), 8);
    EXPECT_EQ(send_to(server, "reply", &r.from), 5);
    Received back = recv_wait(client);
    EXPECT_EQ(back.data, "reply");
    EXPECT_EQ(recv_from(client).n, -EAGAIN);
    // AF_UNSPEC (family 0) forgets the peer: anyone may send again.
    EXPECT_EQ(with_address(net::NetOp::Connect, client, net::NetAddress{}), 0);
    EXPECT_EQ(simple(net::NetOp::PeerName, client), -ENOTCONN);
    EXPECT_EQ(send_to(client, "x", nullptr), -EDESTADDRREQ);
    EXPECT_EQ(local_name(client).port, client_addr.port);
    EXPECT_EQ(send_to(other, "welcome", &client_addr), 7);
    EXPECT_EQ(recv_wait(client).data, "welcome");
    // On a stream socket family 0 is no address.
    EXPECT_EQ(with_address(net::NetOp::Connect, socket(), net::NetAddress{}), -EAFNOSUPPORT);

    uint32_t lonely = dgram_socket();
    EXPECT_EQ(with_address(net::NetOp::Connect, lonely, v4("127.0.0.1", 8080)), 0);
    EXPECT_EQ(send_to(lonely, "anyone?", nullptr), 7);
    EXPECT_TRUE(wait_for(lonely, net::kPollErr) & net::kPollErr);
    EXPECT_EQ(recv_from(lonely).n, -ECONNREFUSED);
    EXPECT_EQ(recv_from(lonely).n, -EAGAIN);

    auto type = make(net::NetOp::GetOption, client);
    type.option = static_cast<uint32_t>(net::NetOption::Type);
    EXPECT_EQ(call(type), 0);
    EXPECT_EQ(type.arg, net::kTypeDgram);
    // UDP and TCP ports are separate: a TCP listener on 9000 is fine.
    uint32_t l = listener("127.0.0.1", 9000);
    EXPECT_NE(l, 0u);
    uint32_t dup = dgram_socket();
    EXPECT_EQ(with_address(net::NetOp::Bind, dup, v4("127.0.0.1", 9000)), -EADDRINUSE);
}

// Every destination is the policy's: a denied one is EACCES with an audit
// record, for SendTo and Connect alike, with no verdict remembered.
TEST_F(NetServiceTest, UdpDeniedDestinationIsAudited) {
    start(policy_text("allow request app_t -> net_t net.Socket.connect where address == 198.51.100.7 and "
                      "port == 53 and proto == 17\n"));
    uint32_t s = dgram_socket();
    net::NetAddress denied = v4("192.0.2.1", 53);
    EXPECT_EQ(send_to(s, "q", &denied), -EACCES);
    ASSERT_EQ(audits.size(), 1u);
    sec::AuditRecord rec;
    std::memcpy(&rec, audits[0].data(), sizeof rec);
    EXPECT_EQ(rec.allow, 0);
    EXPECT_EQ(rec.source, subject);
    EXPECT_EQ(rec.a, sec::kNetInterface);
    EXPECT_EQ(rec.b, sec::kNetConnect);
    EXPECT_EQ(with_address(net::NetOp::Connect, s, denied), -EACCES);
    EXPECT_EQ(audits.size(), 2u);
    EXPECT_EQ(simple(net::NetOp::PeerName, s), -ENOTCONN);
    // Allowed for UDP is not allowed for another port, nor asked again
    // from a remembered answer: each datagram is decided.
    net::NetAddress other_port = v4("198.51.100.7", 54);
    EXPECT_EQ(send_to(s, "q", &other_port), -EACCES);
    // A TCP connect to the UDP-allowed destination is denied (proto 6).
    uint32_t t = socket();
    EXPECT_EQ(with_address(net::NetOp::Connect, t, v4("198.51.100.7", 53)), -EACCES);
    // A forged subject is denied too.
    auto forged = make(net::NetOp::SendTo, s);
    forged.subject = 4242;
    forged.address = v4("198.51.100.7", 53);
    EXPECT_EQ(call(forged), -EACCES);
    EXPECT_EQ(audits.size(), 5u);
}

TEST_F(NetServiceTest, UdpMalformedCallsAreRejected) {
    start();
    uint32_t s = dgram_socket();
    uint32_t t = socket();
    net::NetAddress to = v4("127.0.0.1", 9000);
    auto c = make(net::NetOp::SendTo, 4242); // forged id
    c.address = to;
    EXPECT_EQ(call(c), -EBADF);
    EXPECT_EQ(send_to(t, "x", &to), -EOPNOTSUPP); // a stream socket has its peer
    EXPECT_EQ(simple(net::NetOp::Listen, s, 4), -EOPNOTSUPP);
    EXPECT_EQ(simple(net::NetOp::Accept, s), -EOPNOTSUPP);
    // Segments that do not cover the datagram, or too large a datagram.
    auto short_seg = make(net::NetOp::SendTo, s);
    short_seg.address = to;
    short_seg.length = 100;
    short_seg.segment_count = 1;
    short_seg.segments[0] = {kSendGpa, 10};
    EXPECT_EQ(call(short_seg), -EMSGSIZE);
    short_seg.length = net::kMaxDatagram + 1;
    short_seg.segments[0] = {kSendGpa, net::kMaxDatagram + 1};
    EXPECT_EQ(call(short_seg), -EMSGSIZE);
    short_seg.segments[0] = {kRamSize - 2, 4};
    short_seg.length = 4;
    EXPECT_EQ(call(short_seg), -EFAULT);
    auto v6 = to;
    std::memset(v6.ip, 0, 16);
    v6.ip[15] = 1;
    v6.family = net::kFamilyInet6;
    EXPECT_EQ(send_to(s, "x", &v6), -EAFNOSUPPORT); // an IPv4 socket
    auto port0 = v4("127.0.0.1", 0);
    EXPECT_EQ(send_to(s, "x", &port0), -EINVAL);
    auto bad = make(net::NetOp::Recv, s);
    bad.segment_count = 1;
    bad.segments[0] = {kRamSize, 1};
    EXPECT_EQ(call(bad), -EFAULT);
}

// Datagrams to a socket that does not read are dropped once its queue is
// full (bounded in bytes and count), as UDP drops; the sender never waits.
TEST_F(NetServiceTest, UdpQueueIsBoundedAndDrops) {
    start();
    uint32_t server = dgram_socket();
    EXPECT_EQ(with_address(net::NetOp::Bind, server, v4("127.0.0.1", 9000)), 0);
    uint32_t client = dgram_socket();
    net::NetAddress to = v4("127.0.0.1", 9000);
    std::string big(1000, 'b');
    for (int i = 0; i < 200; ++i)
        ASSERT_EQ(send_to(client, big, &to), 1000);
    int got = 0;
    while (recv_from(server).n == 1000)
        ++got;
    EXPECT_EQ(got, 64 * 1024 / 1000);
    for (int i = 0; i < 1000; ++i)
        ASSERT_EQ(send_to(client, "s", &to), 1);
    got = 0;
    while (recv_from(server).n == 1)
        ++got;
    EXPECT_EQ(got, 256);
}

// IPv6 datagram sockets over ::1, and an IPv4 source seen by an IPv6
// socket as ::ffff:127.0.0.1.
TEST_F(NetServiceTest, UdpIpv6Loopback) {
    start(policy_text("allow request app_t -> net_t net.Socket.connect where address == ::1\n"));
    uint32_t server = dgram_socket(net::kFamilyInet6);
    net::NetAddress any6{};
    any6.port = 9000;
    any6.family = net::kFamilyInet6;
    EXPECT_EQ(with_address(net::NetOp::Bind, server, any6), 0);
    uint32_t c6 = dgram_socket(net::kFamilyInet6);
    net::NetAddress lo6 = any6;
    lo6.ip[15] = 1;
    EXPECT_EQ(send_to(c6, "six", &lo6), 3);
    Received r = recv_wait(server);
    EXPECT_EQ(r.data, "six");
    EXPECT_EQ(r.from.ip[15], 1);
    EXPECT_EQ(r.from.family, net::kFamilyInet6);
    uint32_t c4 = dgram_socket();
    net::NetAddress lo4 = v4("127.0.0.1", 9000);
    EXPECT_EQ(send_to(c4, "four", &lo4), 4);
    r = recv_wait(server);
    EXPECT_EQ(r.data, "four");
    EXPECT_EQ(r.from.ip[10], 0xff);
    EXPECT_EQ(r.from.ip[12], 127);
    // The reply to the mapped source reaches the IPv4 socket.
    EXPECT_EQ(send_to(server, "back", &r.from), 4);
    EXPECT_EQ(recv_wait(c4).data, "back");
}

// The outbound path: a datagram to an allowed host address leaves through
// a host UDP socket of the I/O thread, and the reply comes back.
TEST_F(NetServiceTest, UdpOutboundToAHostSocketAndBack) {
    std::string ip = host_ipv4();
    if (ip.empty())
        GTEST_SKIP() << "no non-loopback IPv4 address on this host";
    UniqueFd host(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    ::inet_pton(AF_INET, ip.c_str(), &sa.sin_addr);
    ASSERT_EQ(::bind(host.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    socklen_t len = sizeof sa;
    ::getsockname(host.get(), reinterpret_cast<sockaddr*>(&sa), &len);
    uint16_t port = ntohs(sa.sin_port);
    start(policy_text("allow request app_t -> net_t net.Socket.connect where port == " + std::to_string(port) +
                      " and proto == 17\n"));
    uint32_t s = dgram_socket();
    net::NetAddress to = v4(ip.c_str(), port);
    EXPECT_EQ(send_to(s, "ping", &to), 4);
    EXPECT_EQ(send_to(s, "ping2", &to), 5);
    char buf[64];
    sockaddr_in from{};
    socklen_t flen = sizeof from;
    timeval tv{5, 0};
    ::setsockopt(host.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n = ::recvfrom(host.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &flen);
    ASSERT_EQ(n, 4);
    EXPECT_EQ(std::string(buf, 4), "ping");
    n = ::recv(host.get(), buf, sizeof buf, 0);
    EXPECT_EQ(n, 5);
    ASSERT_EQ(::sendto(host.get(), "pong", 4, 0, reinterpret_cast<sockaddr*>(&from), flen), 4);
    Received r = recv_wait(s);
    EXPECT_EQ(r.data, "pong");
    EXPECT_TRUE(same(r.from, to));
    EXPECT_TRUE(audits.empty());
    // Connected to it: Send goes there too; Close lets queued datagrams go.
    EXPECT_EQ(with_address(net::NetOp::Connect, s, to), 0);
    EXPECT_EQ(send_to(s, "last", nullptr), 4);
    EXPECT_EQ(simple(net::NetOp::Close, s), 0);
    n = ::recv(host.get(), buf, sizeof buf, 0);
    EXPECT_EQ(n, 4);
}

// `-p HOST:GUEST/udp`: host datagrams reach the guest socket bound to
// GUEST, and its replies leave from the published host port, even to the
// host's loopback addresses.
TEST_F(NetServiceTest, PublishedUdpPortEchoes) {
    PublishedPort p = *parse_published_port("127.0.0.1:1:9000/udp");
    p.host_port = 0;
    start(policy_text(), {p});
    uint16_t host_port = svc->published_host_port(0);
    ASSERT_NE(host_port, 0);
    uint32_t s = dgram_socket();
    EXPECT_EQ(with_address(net::NetOp::Bind, s, v4("0.0.0.0", 9000)), 0);
    UniqueFd client(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(host_port);
    ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::send(client.get(), "query", 5, 0), 5);
    Received r = recv_wait(s);
    EXPECT_EQ(r.data, "query");
    EXPECT_EQ(r.from.ip[12], 127);
    EXPECT_EQ(send_to(s, "answer", &r.from), 6);
    timeval tv{5, 0};
    ::setsockopt(client.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[64];
    ssize_t n = ::recv(client.get(), buf, sizeof buf, 0); // connected: from the published port only
    ASSERT_EQ(n, 6);
    EXPECT_EQ(std::string(buf, 6), "answer");
    // The bundle's loopback is still the bundle's own.
    uint32_t local = dgram_socket();
    net::NetAddress to = v4("127.0.0.1", 9000);
    EXPECT_EQ(send_to(local, "inside", &to), 6);
    EXPECT_EQ(recv_wait(s).data, "inside");
    EXPECT_EQ(simple(net::NetOp::Close, s), 0);
}

} // namespace
} // namespace kos::vmm
