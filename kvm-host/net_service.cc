#include "net_service.h"
#include "service_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <string>
#include <unordered_map>

#include "kos/security/engine.h"
#include "kos/security/net_request.h"
#include "kos/support/file.h"

namespace kos::vmm {

namespace net = abi::net;
namespace sec = security;

namespace {

constexpr uint32_t kMaxBacklog = 256;
constexpr uint16_t kFirstEphemeralPort = 49152;
constexpr unsigned kRingEntries = 256;
constexpr unsigned kCqEntries = 4096;
constexpr size_t kMaxQueuedDatagrams = 256; // per datagram socket and direction
constexpr size_t kDatagramStage = 65536;    // a host receive: any UDP datagram fits
constexpr size_t kMaxOutsidePeers = 64;     // published UDP: sources replies go back to

// The opcodes the loop submits; the ring refuses every other one.
constexpr uint8_t kRingOps[] = {
    IORING_OP_READ,         // the wake-up eventfd
    IORING_OP_ACCEPT,       // published listeners
    IORING_OP_CONNECT,      // outbound connections
    IORING_OP_RECV,         // data from the peer
    IORING_OP_SEND,         // data to the peer
    IORING_OP_ASYNC_CANCEL, // Close and shutdown of the service
    IORING_OP_SENDMSG,      // a datagram to its destination (UDP)
    IORING_OP_RECVMSG,      // a datagram and its source (UDP)
};

// What a completion is for: the low bits of user_data (the rest is a
// pointer to the Socket or Published it concerns, 16-byte aligned).
enum class Tag : uint64_t { Wake = 1, Accept = 2, Connect = 3, Recv = 4, Send = 5, Cancel = 6 };
constexpr uint64_t kTagMask = 15;

uint64_t now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

bool is_v4_mapped(const uint8_t ip[16]) {
    static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(ip, kPrefix, 12) == 0;
}

// The bundle's own addresses: 127.0.0.0/8, ::1, and the unspecified
// address (a connect to 0.0.0.0 reaches the local host on Linux).
bool is_loopback(const uint8_t ip[16]) {
    if (is_v4_mapped(ip))
        return ip[12] == 127 || (ip[12] == 0 && ip[13] == 0 && ip[14] == 0 && ip[15] == 0);
    for (int i = 0; i < 15; ++i)
        if (ip[i] != 0)
            return false;
    return ip[15] <= 1;
}

void set_v4(uint8_t ip[16], const void* v4) {
    std::memset(ip, 0, 10);
    ip[10] = ip[11] = 0xff;
    std::memcpy(ip + 12, v4, 4);
}

// A host socket address as the guest sees it (`family`: the guest socket's).
net::NetAddress from_sockaddr(const sockaddr_storage& ss, uint32_t family) {
    net::NetAddress a{};
    a.family = static_cast<uint16_t>(family);
    if (ss.ss_family == AF_INET) {
        const auto& in = reinterpret_cast<const sockaddr_in&>(ss);
        set_v4(a.ip, &in.sin_addr);
        a.port = ntohs(in.sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const auto& in6 = reinterpret_cast<const sockaddr_in6&>(ss);
        std::memcpy(a.ip, &in6.sin6_addr, 16);
        a.port = ntohs(in6.sin6_port);
    }
    return a;
}

socklen_t to_sockaddr(const uint8_t ip[16], uint16_t port, sockaddr_storage& ss) {
    std::memset(&ss, 0, sizeof ss);
    if (is_v4_mapped(ip)) {
        auto& in = reinterpret_cast<sockaddr_in&>(ss);
        in.sin_family = AF_INET;
        in.sin_port = htons(port);
        std::memcpy(&in.sin_addr, ip + 12, 4);
        return sizeof in;
    }
    auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(port);
    std::memcpy(&in6.sin6_addr, ip, 16);
    return sizeof in6;
}

net::NetAddress loopback_address(uint32_t family, uint16_t port) {
    net::NetAddress a{};
    a.family = static_cast<uint16_t>(family);
    a.port = port;
    if (family == net::kFamilyInet) {
        const uint8_t v4[4] = {127, 0, 0, 1};
        set_v4(a.ip, v4);
    } else {
        a.ip[15] = 1;
    }
    return a;
}

std::string address_string(const uint8_t ip[16], uint16_t port) {
    char text[INET6_ADDRSTRLEN] = {};
    if (is_v4_mapped(ip))
        ::inet_ntop(AF_INET, ip + 12, text, sizeof text);
    else
        ::inet_ntop(AF_INET6, ip, text, sizeof text);
    std::string s = is_v4_mapped(ip) ? text : "[" + std::string(text) + "]";
    return s + ":" + std::to_string(port);
}


bool same_endpoint(const net::NetAddress& a, const net::NetAddress& b) {
    return a.port == b.port && std::memcmp(a.ip, b.ip, 16) == 0;
}

bool is_unspecified(const uint8_t ip[16]) {
    static constexpr uint8_t kZero[16] = {};
    return std::memcmp(ip, kZero, 16) == 0 || (is_v4_mapped(ip) && std::memcmp(ip + 12, kZero, 4) == 0);
}

// A destination for a host socket of `family` (an AF_INET6 socket takes
// IPv4 destinations in their mapped form).
socklen_t to_host_sockaddr(int family, const uint8_t ip[16], uint16_t port, sockaddr_storage& ss) {
    if (family == AF_INET || !is_v4_mapped(ip))
        return to_sockaddr(ip, port, ss);
    std::memset(&ss, 0, sizeof ss);
    auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(port);
    std::memcpy(&in6.sin6_addr, ip, 16);
    return sizeof in6;
}

enum class State : uint8_t { Fresh, Bound, Listening, Connecting, Connected };

struct Datagram {
    net::NetAddress peer{}; // its source (received) or destination (to send)
    std::vector<uint8_t> data;
};

} // namespace


// One guest socket. Fields above `fd` are guarded by Impl::mu; the I/O
// side (fd, staging buffers, pending flags) is touched by the I/O thread
// only, also under mu except for the kernel's own writes into the staging
// buffers while an operation is in flight.
struct alignas(16) NetSocket {
    uint32_t id = 0;
    uint32_t family = net::kFamilyInet;
    State state = State::Fresh;
    bool visible = false; // the guest holds it (false: queued for Accept, or closing)
    bool closing = false;
    bool dirty = false;   // on Impl::dirty
    net::NetAddress local{};
    net::NetAddress peer{};
    bool has_local = false;
    std::string unix_name; // kFamilyUnix: its bound name
    uint32_t unix_label = 0; // kFamilyUnix, bound: the label of the process that bound it
    bool dgram = false;    // kTypeDgram (UDP); `peer` is the default destination when has_peer
    bool has_peer = false;
    bool local_ip_from_peer = false; // Connect chose `local`'s address (AF_UNSPEC forgets it)
    struct Published* published = nullptr; // dgram: the published UDP port it is bound to
    std::deque<net::NetAddress> outside_peers; // ... and sources seen there (replies go back out)

    // Listening.
    uint32_t backlog = 0;
    uint32_t pending_pairs = 0; // loopback connects not yet paired
    std::deque<NetSocket*> accept_queue;

    // Connecting.
    bool loopback = false;
    bool pair_reserved = false; // counts in Impl::reserved until the pair exists
    uint32_t listener_id = 0;   // loopback: the listener to pair with
    sockaddr_storage target{};
    socklen_t target_len = 0;
    bool connect_requested = false;

    // Data.
    std::vector<uint8_t> rx;
    size_t rx_head = 0;
    bool rx_eof = false;
    std::vector<uint8_t> tx;
    size_t tx_inflight = 0;
    int error = 0;             // SO_ERROR
    bool write_broken = false; // the peer is gone: Send fails with EPIPE
    bool shut_rd = false, shut_wr = false, shut_wr_done = false;

    // Datagrams (dgram): received ones for the guest, outbound ones for
    // the I/O thread, each queue bounded in bytes and count.
    std::deque<Datagram> drx, dtx;
    size_t drx_bytes = 0, dtx_bytes = 0;

    // Options (NetOption values 1..5).
    uint64_t options[6] = {};
    bool options_dirty = false;

    // I/O thread.
    int fd = -1;
    bool tcp = false; // a host TCP socket (socketpair ends are not)
    bool recv_pending = false, send_pending = false, connect_pending = false;
    bool cancel_sent = false;
    bool fd_borrowed = false; // a published UDP port's descriptor (not closed with the socket)
    bool recv_failed = false; // dgram: the host socket's receive failed; no more receives
    std::unique_ptr<uint8_t[]> rx_stage;
    Datagram dtx_stage;       // dgram: the datagram SENDMSG is sending
    sockaddr_storage msg_addr[2]{}; // dgram: RECVMSG's source, SENDMSG's destination
    msghdr msg[2]{};
    iovec iov[2]{};
    std::vector<uint8_t> tx_stage;
    size_t tx_stage_off = 0;

    size_t rx_avail() const { return rx.size() - rx_head; }
    bool ops_pending() const { return recv_pending || send_pending || connect_pending; }
    bool owns_fd() const { return fd >= 0 && !fd_borrowed; }
};

struct alignas(16) Published {
    PublishedPort port;
    UniqueFd fd; // a listener, or (port.udp) the datagram socket the attached guest socket uses
    uint16_t bound_port = 0;
    uint32_t listener_id = 0; // the guest listener attached (0: none)
    bool accept_pending = false;
    sockaddr_storage peer{};
    socklen_t peer_len = 0;
};

struct NetService::Impl {
    NetServiceOptions opts;
    std::vector<uint8_t> blob;
    std::vector<uint64_t> engine_state;
    sec::Engine engine;
    uint32_t net_label = sec::kNone;

    UniqueFd wake;
    io_uring ring{};
    bool ring_ready = false;
    std::thread io_thread;
    uint64_t wake_value = 0;

    std::mutex mu;
    std::condition_variable changed; // readiness may have changed (Poll waits on it)
    bool stop = false;
    std::unordered_map<uint32_t, std::unique_ptr<NetSocket>> sockets; // alive, not closing
    std::vector<std::unique_ptr<NetSocket>> closing;
    std::vector<NetSocket*> dirty;
    std::unordered_map<uint16_t, uint32_t> ports; // guest port -> bound/listening socket id
    std::unordered_map<uint16_t, uint32_t> udp_ports; // guest UDP port -> bound datagram socket id
    // AF_UNIX (label, name) -> bound/listening socket id. Each label has its
    // own names: no policy request speaks of Unix names, so processes of
    // different labels never meet through one (between labels: a loopback
    // port the policy allows).
    std::map<std::pair<uint32_t, std::string>, uint32_t> unix_names;
    std::vector<std::unique_ptr<Published>> published;
    std::vector<std::function<void()>> test_fns;
    uint32_t reserved = 0; // sockets promised to pending loopback connects
    uint32_t next_id = 1;
    uint16_t next_port = kFirstEphemeralPort;
    uint64_t inflight = 0; // ring operations not completed

    ~Impl();

    // ---- vCPU side (mu held) ----
    int64_t dispatch(net::NetCall& c, NetGuestMemory ram);
    NetSocket* find(uint32_t id);
    uint32_t live_count() const { return static_cast<uint32_t>(sockets.size() + closing.size()) + reserved; }
    NetSocket* create(uint32_t family);
    void mark_dirty(NetSocket& s);
    void kick();
    uint16_t ephemeral_port(bool udp = false);
    int64_t bind_dgram(NetSocket& s, net::NetAddress a);
    // A datagram socket without a local address gets the unspecified one
    // of its family and an ephemeral port (before a connect or a send).
    int64_t bind_if_unbound(NetSocket& s);
    int64_t op_send_dgram(net::NetCall& c, NetSocket& s, NetGuestMemory ram, bool to_address);
    int64_t op_recv_dgram(net::NetCall& c, NetSocket& s, NetGuestMemory ram);
    void deliver_local(NetSocket& from, const net::NetAddress& to, std::vector<uint8_t>&& data);
    bool allowed(sec::NetRequest& r);
    uint16_t readiness(NetSocket& s);
    void close_socket(NetSocket& s);

    int64_t op_socket(net::NetCall& c);
    int64_t op_connect(net::NetCall& c, NetSocket& s);
    int64_t op_bind(net::NetCall& c, NetSocket& s);
    int64_t op_listen(net::NetCall& c, NetSocket& s);
    int64_t op_accept(net::NetCall& c, NetSocket& s);
    int64_t op_send(net::NetCall& c, NetSocket& s, NetGuestMemory ram);
    int64_t op_recv(net::NetCall& c, NetSocket& s, NetGuestMemory ram);
    int64_t op_poll(net::NetCall& c, std::unique_lock<std::mutex>& lock);
    int64_t op_shutdown(net::NetCall& c, NetSocket& s);
    int64_t op_set_option(net::NetCall& c, NetSocket& s);
    int64_t op_get_option(net::NetCall& c, NetSocket& s);

    // ---- I/O thread (mu held unless said) ----
    void io_loop();
    io_uring_sqe* sqe();
    void submit(io_uring_sqe* e, void* object, Tag tag);
    void post_wake_read();
    void complete(io_uring_cqe* cqe);
    void pump(NetSocket& s);
    void pump_dgram(NetSocket& s);
    void complete_dgram(NetSocket& s, Tag tag, int res);
    void pump_published(Published& p);
    void start_connect(NetSocket& s);
    void make_pair(NetSocket& s);
    void apply_options(NetSocket& s);
    void on_connected(NetSocket& s, int fd, bool tcp);
    void finish_closing();
    void cancel_everything();
};

// ---------------------------------------------------------------- setup

namespace {

Result<void> create_ring(io_uring& ring) {
    // Room for a receive and a send per socket completing at once (the
    // kernel keeps overflowing completions anyway, but slowly).
    return create_restricted_ring(ring, kRingEntries, kCqEntries, kRingOps, "the network service");
}

Result<void> open_published(Published& p) {
    sockaddr_storage ss;
    socklen_t len = to_sockaddr(p.port.host_ip.data(), p.port.host_port, ss);
    std::string where = address_string(p.port.host_ip.data(), p.port.host_port);
    if (p.port.udp)
        where += "/udp";
    UniqueFd fd(::socket(ss.ss_family, (p.port.udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd)
        return make_error(errno, "publishing " + where + ": socket: " + errno_string(errno));
    int one = 1;
    if (!p.port.udp)
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
        return make_error(errno, "publishing " + where + ": cannot bind the host address: " + errno_string(errno) +
                                     " (is the port in use, or below 1024 without the right?)");
    if (!p.port.udp && ::listen(fd.get(), 128) != 0)
        return make_error(errno, "publishing " + where + ": listen: " + errno_string(errno));
    sockaddr_storage bound{};
    socklen_t blen = sizeof bound;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &blen);
    p.bound_port = from_sockaddr(bound, net::kFamilyInet6).port;
    p.fd = std::move(fd);
    return {};
}

// Whether any user rule could allow a request: then some Connect may be
// allowed, and the jail must leave the I/O thread its TCP connect right.
bool policy_may_allow_requests(const sec::Engine& e) {
    const sec::PolicyHeader* h = e.header();
    if (!h)
        return false;
    for (uint32_t i = sec::kFirstUserRule; i < h->rule_count; ++i) {
        const sec::Rule* r = e.rule(i);
        if (r && r->effect == static_cast<uint8_t>(sec::Effect::Allow) &&
            r->kind == static_cast<uint8_t>(sec::Kind::Request))
            return true;
    }
    return false;
}

} // namespace

Result<std::unique_ptr<NetService>> NetService::start(NetServiceOptions options) {
    auto impl = std::make_unique<Impl>();
    impl->opts = std::move(options);
    impl->blob.assign(impl->opts.policy.begin(), impl->opts.policy.end());
    impl->opts.policy = {};
    if (impl->opts.max_sockets == 0 || impl->opts.buffer_bytes == 0)
        return make_error(EINVAL, "the network service needs max_sockets and buffer_bytes above 0");
    // Fail closed: without a policy that loads, there is no network.
    if (impl->blob.empty())
        return make_error(EINVAL, "networking (published ports or a policy declaring net_t) needs the "
                                  "bundle's compiled policy, and the bundle has none: add [policy] sources "
                                  "that allow the connections and binds it needs");
    uint64_t need = sec::Engine::required_state_size(impl->blob.data(), impl->blob.size());
    impl->engine_state.assign(need / 8 + 8, 0);
    sec::LoadError le = impl->engine.load(impl->blob.data(), impl->blob.size(), impl->engine_state.data(),
                                          impl->engine_state.size() * 8);
    if (le != sec::LoadError::None)
        return make_error(EINVAL, std::string("the network service cannot load the bundle's compiled policy: ") +
                                      sec::describe(le) + " (networking needs the policy the guest enforces)");
    impl->net_label = impl->engine.find_label(sec::kNetLabel, sizeof sec::kNetLabel - 1);

    for (const PublishedPort& p : impl->opts.publish) {
        auto pub = std::make_unique<Published>();
        pub->port = p;
        KOS_TRY(open_published(*pub));
        impl->published.push_back(std::move(pub));
    }
    impl->wake = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!impl->wake)
        return make_error(errno, "the network service cannot create its eventfd: " + errno_string(errno));
    KOS_TRY(create_ring(impl->ring));
    impl->ring_ready = true;

    bool may_connect = impl->net_label != sec::kNone && policy_may_allow_requests(impl->engine);
    std::unique_ptr<NetService> service(new NetService(std::move(impl)));
    service->m_may_connect_out = may_connect;
    return service;
}

NetService::NetService(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

Result<int> NetService::ring_result_for_test(uint8_t opcode) {
    io_uring ring{};
    KOS_TRY(create_ring(ring));
    return submit_one_and_exit(ring, opcode);
}

NetService::~NetService() {
    if (m_impl->io_thread.joinable()) {
        {
            std::lock_guard lock(m_impl->mu);
            m_impl->stop = true;
        }
        m_impl->kick();
        m_impl->io_thread.join();
    }
}

NetService::Impl::~Impl() {
    // The I/O thread drained the ring before it ended: no operation still
    // points into a socket's buffers.
    if (ring_ready)
        ::io_uring_queue_exit(&ring);
    for (auto& [id, s] : sockets)
        if (s->owns_fd())
            ::close(s->fd);
    for (auto& s : closing)
        if (s->owns_fd())
            ::close(s->fd);
}

int NetService::wake_fd() const { return m_impl->wake.get(); }

uint32_t NetService::max_host_fds() const {
    // Each guest socket holds at most one host descriptor; plus the
    // listeners, the eventfd and the ring.
    return m_impl->opts.max_sockets + static_cast<uint32_t>(m_impl->published.size()) + 2;
}

uint16_t NetService::published_host_port(size_t i) const {
    return i < m_impl->published.size() ? m_impl->published[i]->bound_port : 0;
}

void NetService::run_on_io_thread_for_test(std::function<void()> fn) {
    {
        std::lock_guard lock(m_impl->mu);
        m_impl->test_fns.push_back(std::move(fn));
    }
    m_impl->kick();
}

Result<void> NetService::launch(std::function<Result<void>()> on_thread_start) {
    if (m_impl->io_thread.joinable())
        return make_error(EINVAL, "internal error: the network service's I/O thread was launched twice");
    // Sends use MSG_NOSIGNAL: the thread needs no signal.
    m_impl->io_thread = KOS_TRY(launch_io_thread(std::move(on_thread_start), [this] { m_impl->io_loop(); }));
    return {};
}

// ---------------------------------------------------------------- vCPU side

int64_t NetService::handle(net::NetCall& call, NetGuestMemory ram) {
    std::unique_lock lock(m_impl->mu);
    if (static_cast<net::NetOp>(call.op) == net::NetOp::Poll)
        return m_impl->op_poll(call, lock);
    return m_impl->dispatch(call, ram);
}

NetSocket* NetService::Impl::find(uint32_t id) {
    auto it = sockets.find(id);
    return it != sockets.end() && it->second->visible ? it->second.get() : nullptr;
}

NetSocket* NetService::Impl::create(uint32_t family) {
    if (live_count() >= opts.max_sockets)
        return nullptr;
    while (next_id == 0 || sockets.contains(next_id))
        ++next_id;
    auto s = std::make_unique<NetSocket>();
    s->id = next_id++;
    s->family = family;
    s->options[static_cast<int>(net::NetOption::ReceiveBuffer)] = opts.buffer_bytes;
    s->options[static_cast<int>(net::NetOption::SendBuffer)] = opts.buffer_bytes;
    NetSocket* p = s.get();
    sockets.emplace(p->id, std::move(s));
    return p;
}

void NetService::Impl::mark_dirty(NetSocket& s) {
    if (!s.dirty) {
        s.dirty = true;
        dirty.push_back(&s);
    }
}

void NetService::Impl::kick() {
    uint64_t one = 1;
    // Non-blocking eventfd: a full counter already means "wake up".
    [[maybe_unused]] ssize_t n = ::write(wake.get(), &one, sizeof one);
}

uint16_t NetService::Impl::ephemeral_port(bool udp) {
    const auto& used = udp ? udp_ports : ports;
    for (int tries = 0; tries < 65536 - kFirstEphemeralPort; ++tries) {
        uint16_t p = next_port;
        next_port = next_port == 65535 ? kFirstEphemeralPort : static_cast<uint16_t>(next_port + 1);
        if (!used.contains(p))
            return p;
    }
    return 0;
}

// The same question the guest kernel asked, of the same policy. A denial
// is reported with the engine's record when the policy audits it.
bool NetService::Impl::allowed(sec::NetRequest& r) {
    sec::Verdict v = engine.decide(r.request);
    if (!v.allow && v.audit && opts.audit) {
        sec::AuditRecord rec{};
        if (engine.make_audit_record(r.request, v, rec))
            opts.audit(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&rec), sizeof rec));
    }
    return v.allow;
}

int64_t NetService::Impl::dispatch(net::NetCall& c, NetGuestMemory ram) {
    auto op = static_cast<net::NetOp>(c.op);
    if (op == net::NetOp::Socket)
        return op_socket(c);
    if (c.op < static_cast<uint32_t>(net::NetOp::Connect) || c.op > static_cast<uint32_t>(net::NetOp::SendTo))
        return -EINVAL;
    NetSocket* s = find(c.socket);
    if (!s)
        return -EBADF;
    c.flags = 0;
    if (s->dgram) {
        switch (op) {
        case net::NetOp::Send: return op_send_dgram(c, *s, ram, false);
        case net::NetOp::SendTo: return op_send_dgram(c, *s, ram, true);
        case net::NetOp::Recv: return op_recv_dgram(c, *s, ram);
        case net::NetOp::Listen:
        case net::NetOp::Accept: return -EOPNOTSUPP;
        case net::NetOp::Shutdown: return c.arg > SHUT_RDWR ? -EINVAL : s->has_peer ? 0 : -ENOTCONN;
        case net::NetOp::PeerName:
            if (!s->has_peer)
                return -ENOTCONN;
            c.address = s->peer;
            return 0;
        default: break;
        }
    } else if (op == net::NetOp::SendTo) {
        return -EOPNOTSUPP; // a stream socket sends to its connected peer
    }
    switch (op) {
    case net::NetOp::Connect: return op_connect(c, *s);
    case net::NetOp::Bind: return op_bind(c, *s);
    case net::NetOp::Listen: return op_listen(c, *s);
    case net::NetOp::Accept: return op_accept(c, *s);
    case net::NetOp::Send: return op_send(c, *s, ram);
    case net::NetOp::Recv: return op_recv(c, *s, ram);
    case net::NetOp::Close: close_socket(*s); return 0;
    case net::NetOp::Shutdown: return op_shutdown(c, *s);
    case net::NetOp::LocalName:
        c.address = s->local;
        if (!s->has_local) {
            c.address = net::NetAddress{};
            if (s->family == net::kFamilyInet) {
                const uint8_t any[4] = {};
                set_v4(c.address.ip, any);
            }
        }
        c.address.family = static_cast<uint16_t>(s->family);
        return 0;
    case net::NetOp::PeerName:
        if (s->state != State::Connected)
            return -ENOTCONN;
        c.address = s->peer;
        return 0;
    case net::NetOp::GetError: {
        int e = std::exchange(s->error, 0);
        c.arg = static_cast<uint64_t>(e);
        return e;
    }
    case net::NetOp::SetOption: return op_set_option(c, *s);
    case net::NetOp::GetOption: return op_get_option(c, *s);
    default: return -EINVAL;
    }
}

int64_t NetService::Impl::op_socket(net::NetCall& c) {
    if ((c.family != net::kFamilyInet && c.family != net::kFamilyInet6 && c.family != net::kFamilyUnix) ||
        (c.type != net::kTypeStream && c.type != net::kTypeDgram) ||
        (c.type == net::kTypeDgram && c.family == net::kFamilyUnix))
        return -EINVAL;
    NetSocket* s = create(c.family);
    if (!s)
        return -EMFILE;
    s->visible = true;
    s->dgram = c.type == net::kTypeDgram;
    c.socket = s->id;
    return 0;
}

namespace {
bool valid_address(const net::NetAddress& a, uint32_t socket_family) {
    if (a.family != net::kFamilyInet && a.family != net::kFamilyInet6)
        return false;
    // An IPv4 socket reaches IPv4 addresses only.
    return socket_family == net::kFamilyInet6 || is_v4_mapped(a.ip);
}
} // namespace

int64_t NetService::Impl::op_connect(net::NetCall& c, NetSocket& s) {
    if (s.dgram) {
        if (c.address.family == 0) {
            // AF_UNSPEC: no default peer any more (the port stays bound).
            s.has_peer = false;
            if (s.local_ip_from_peer) {
                std::memset(s.local.ip, 0, 16);
                if (s.family == net::kFamilyInet) {
                    const uint8_t zero[4] = {};
                    set_v4(s.local.ip, zero);
                }
                s.local_ip_from_peer = false;
            }
            return 0;
        }
        // The default destination: the same decision as each SendTo's.
        if (!valid_address(c.address, s.family))
            return -EAFNOSUPPORT;
        sec::NetRequest r;
        sec::make_net_connect(r, c.subject, net_label, c.address.ip, c.address.port, sec::kProtoUdp, now_ns());
        if (!allowed(r))
            return -EACCES;
        if (int64_t rc = bind_if_unbound(s); rc < 0)
            return rc;
        s.peer = c.address;
        s.peer.family = static_cast<uint16_t>(s.family);
        s.has_peer = true;
        s.error = 0;
        // As Linux's connected UDP socket: its local address is the source
        // the route picks (for the bundle's loopback, its loopback address).
        if (is_unspecified(s.local.ip) && is_loopback(c.address.ip)) {
            net::NetAddress lo = loopback_address(is_v4_mapped(c.address.ip) ? net::kFamilyInet : net::kFamilyInet6, 0);
            std::memcpy(s.local.ip, lo.ip, 16);
            s.local_ip_from_peer = true;
        }
        return 0;
    }
    switch (s.state) {
    case State::Connecting: return -EALREADY;
    case State::Connected: return -EISCONN;
    case State::Listening: return -EINVAL;
    default: break;
    }
    bool unix_socket = s.family == net::kFamilyUnix;
    if (unix_socket ? c.address.family != net::kFamilyUnix : !valid_address(c.address, s.family))
        return -EAFNOSUPPORT;
    if (unix_socket && (c.path_len == 0 || c.path_len > sizeof c.path))
        return -EINVAL;
    if (unix_socket || is_loopback(c.address.ip)) {
        // The bundle's own listener on that port (or name), never the host's.
        NetSocket* l = nullptr;
        if (unix_socket) {
            auto it = unix_names.find({c.subject, std::string(c.path, c.path_len)});
            l = it != unix_names.end() ? find(it->second) : nullptr;
        } else {
            auto it = ports.find(c.address.port);
            l = it != ports.end() ? find(it->second) : nullptr;
        }
        if (!l || l->state != State::Listening)
            return -ECONNREFUSED;
        if (l->accept_queue.size() + l->pending_pairs >= l->backlog)
            return -ECONNREFUSED;
        if (live_count() >= opts.max_sockets)
            return -ENOBUFS; // no room for the listener's end
        ++reserved;
        ++l->pending_pairs;
        s.pair_reserved = true;
        s.loopback = true;
        s.listener_id = l->id;
        if (unix_socket) {
            s.local = net::NetAddress{};
            s.local.family = net::kFamilyUnix;
            s.peer = s.local;
        } else {
            s.local = loopback_address(s.family, ephemeral_port());
            s.peer = c.address;
        }
        s.has_local = true;
        s.peer.family = static_cast<uint16_t>(s.family);
    } else {
        sec::NetRequest r;
        sec::make_net_connect(r, c.subject, net_label, c.address.ip, c.address.port, sec::kProtoTcp, now_ns());
        if (!allowed(r))
            return -EACCES;
        s.loopback = false;
        s.target_len = to_sockaddr(c.address.ip, c.address.port, s.target);
        s.peer = c.address;
        s.peer.family = static_cast<uint16_t>(s.family);
    }
    s.state = State::Connecting;
    s.connect_requested = true;
    s.error = 0;
    mark_dirty(s);
    kick();
    return -EINPROGRESS;
}

int64_t NetService::Impl::op_bind(net::NetCall& c, NetSocket& s) {
    if (s.state != State::Fresh || s.has_local)
        return -EINVAL;
    if (s.family == net::kFamilyUnix) {
        // A name among the bundle's own: no host path, no network request.
        if (c.address.family != net::kFamilyUnix)
            return -EAFNOSUPPORT;
        if (c.path_len == 0 || c.path_len > sizeof c.path)
            return -EINVAL;
        std::string name(c.path, c.path_len);
        if (unix_names.contains({c.subject, name}))
            return -EADDRINUSE;
        unix_names.emplace(std::pair{c.subject, name}, s.id);
        s.unix_name = std::move(name);
        s.unix_label = c.subject;
        s.local = net::NetAddress{};
        s.local.family = net::kFamilyUnix;
        s.has_local = true;
        s.state = State::Bound;
        return 0;
    }
    if (!valid_address(c.address, s.family))
        return -EAFNOSUPPORT;
    sec::NetRequest r;
    sec::make_net_bind(r, c.subject, net_label, c.address.ip, c.address.port, now_ns());
    if (!allowed(r))
        return -EACCES;
    if (s.dgram)
        return bind_dgram(s, c.address);
    uint16_t port = c.address.port ? c.address.port : ephemeral_port();
    if (port == 0 || ports.contains(port))
        return -EADDRINUSE;
    ports.emplace(port, s.id);
    s.local = c.address;
    s.local.port = port;
    s.local.family = static_cast<uint16_t>(s.family);
    s.has_local = true;
    s.state = State::Bound;
    return 0;
}

int64_t NetService::Impl::op_listen(net::NetCall& c, NetSocket& s) {
    uint32_t backlog = static_cast<uint32_t>(std::clamp<uint64_t>(c.arg, 1, kMaxBacklog));
    if (s.state == State::Listening) {
        s.backlog = backlog;
        return 0;
    }
    if (s.state != State::Fresh && s.state != State::Bound)
        return -EINVAL;
    if (s.state == State::Fresh && s.family == net::kFamilyUnix)
        return -EINVAL; // no automatic names for Unix listeners
    if (s.state == State::Fresh) {
        // Linux binds an unbound socket to an ephemeral port on listen.
        uint16_t port = ephemeral_port();
        if (port == 0)
            return -EADDRINUSE;
        ports.emplace(port, s.id);
        s.local = net::NetAddress{};
        if (s.family == net::kFamilyInet) {
            const uint8_t any[4] = {};
            set_v4(s.local.ip, any);
        }
        s.local.port = port;
        s.local.family = static_cast<uint16_t>(s.family);
        s.has_local = true;
    }
    s.state = State::Listening;
    s.backlog = backlog;
    // A published port: the host listener's connections come here.
    bool attached = false;
    for (auto& p : published)
        if (p->port.guest_port == s.local.port && p->listener_id == 0) {
            p->listener_id = s.id;
            attached = true;
        }
    if (attached) {
        mark_dirty(s);
        kick();
    }
    return 0;
}

int64_t NetService::Impl::op_accept(net::NetCall& c, NetSocket& s) {
    if (s.state != State::Listening)
        return -EINVAL;
    if (s.accept_queue.empty())
        return -EAGAIN;
    NetSocket* a = s.accept_queue.front();
    s.accept_queue.pop_front();
    a->visible = true;
    c.socket = a->id;
    c.address = a->peer;
    if (!published.empty()) {
        mark_dirty(s); // room in the queue: accept more from the host
        kick();
    }
    return 0;
}

namespace {
// The call's segments, each in guest RAM (or, for a Send, readable in the
// boot image), at most kMaxNetData in total; -EFAULT/-EINVAL otherwise.
int64_t check_segments(const net::NetCall& c, NetGuestMemory ram, bool write) {
    if (c.segment_count > net::kMaxNetSegments)
        return -EINVAL;
    uint64_t total = 0;
    for (uint32_t i = 0; i < c.segment_count; ++i) {
        const net::NetSegment& g = c.segments[i];
        if (g.len > net::kMaxNetData || !(write ? ram.contains(g.addr, g.len) : ram.readable(g.addr, g.len) != nullptr))
            return -EFAULT;
        total += g.len;
        if (total > net::kMaxNetData)
            return -EINVAL;
    }
    return static_cast<int64_t>(total);
}
} // namespace

int64_t NetService::Impl::op_send(net::NetCall& c, NetSocket& s, NetGuestMemory ram) {
    int64_t total = check_segments(c, ram, false);
    if (total < 0)
        return total;
    if (s.state == State::Connecting)
        return -EAGAIN;
    if (s.state != State::Connected)
        return s.error ? -std::exchange(s.error, 0) : -ENOTCONN;
    if (s.error)
        return -std::exchange(s.error, 0);
    if (s.write_broken || s.shut_wr)
        return -EPIPE;
    size_t used = s.tx.size() + s.tx_inflight;
    if (used >= opts.buffer_bytes)
        return -EAGAIN;
    size_t room = std::min<size_t>(opts.buffer_bytes - used, static_cast<size_t>(total));
    size_t done = 0;
    for (uint32_t i = 0; i < c.segment_count && done < room; ++i) {
        size_t n = std::min<size_t>(c.segments[i].len, room - done);
        const uint8_t* src = ram.readable(c.segments[i].addr, n);
        s.tx.insert(s.tx.end(), src, src + n);
        done += n;
    }
    if (done) {
        mark_dirty(s);
        kick();
    }
    return static_cast<int64_t>(done);
}

int64_t NetService::Impl::op_recv(net::NetCall& c, NetSocket& s, NetGuestMemory ram) {
    constexpr uint64_t kMsgPeek = 0x2;
    int64_t total = check_segments(c, ram, true);
    if (total < 0)
        return total;
    if (s.state == State::Connecting)
        return -EAGAIN;
    if (s.state != State::Connected)
        return -ENOTCONN;
    if (s.shut_rd)
        return 0;
    size_t avail = s.rx_avail();
    if (avail == 0) {
        if (s.error)
            return -std::exchange(s.error, 0);
        return s.rx_eof ? 0 : -EAGAIN;
    }
    size_t want = std::min<size_t>(avail, static_cast<size_t>(total));
    size_t done = 0;
    for (uint32_t i = 0; i < c.segment_count && done < want; ++i) {
        size_t n = std::min<size_t>(c.segments[i].len, want - done);
        std::memcpy(ram.base + c.segments[i].addr, s.rx.data() + s.rx_head + done, n);
        done += n;
    }
    if (!(c.arg & kMsgPeek)) {
        s.rx_head += done;
        if (s.rx_head == s.rx.size()) {
            s.rx.clear();
            s.rx_head = 0;
        }
        // Room again: the I/O thread may receive more.
        if (!s.recv_pending && !s.rx_eof) {
            mark_dirty(s);
            kick();
        }
    }
    return static_cast<int64_t>(done);
}

// ---------------------------------------------------------------- datagrams (vCPU side)

// Binds a datagram socket to `a` (port 0: an ephemeral one); UDP ports are
// their own namespace, as on Linux. A published UDP port's guest socket
// uses the published host socket (the I/O thread takes it in pump).
int64_t NetService::Impl::bind_if_unbound(NetSocket& s) {
    if (s.has_local)
        return 0;
    net::NetAddress any{};
    if (s.family == net::kFamilyInet) {
        const uint8_t zero[4] = {};
        set_v4(any.ip, zero);
    }
    return bind_dgram(s, any);
}

int64_t NetService::Impl::bind_dgram(NetSocket& s, net::NetAddress a) {
    if (s.has_local)
        return -EINVAL;
    uint16_t port = a.port ? a.port : ephemeral_port(true);
    if (port == 0 || udp_ports.contains(port))
        return -EADDRINUSE;
    udp_ports.emplace(port, s.id);
    s.local = a;
    s.local.port = port;
    s.local.family = static_cast<uint16_t>(s.family);
    s.has_local = true;
    s.state = State::Bound;
    for (auto& p : published)
        if (p->port.udp && p->port.guest_port == port && p->listener_id == 0) {
            p->listener_id = s.id;
            s.published = p.get();
            mark_dirty(s);
            kick();
            break;
        }
    return 0;
}

// One datagram to `c.address` (SendTo) or the connected peer (Send): the
// bundle's own socket on that port for loopback, else out through the
// I/O thread's host socket. Every destination is decided by the policy
// here as in the guest kernel (the peer was decided at Connect).
int64_t NetService::Impl::op_send_dgram(net::NetCall& c, NetSocket& s, NetGuestMemory ram, bool to_address) {
    int64_t total = check_segments(c, ram, false);
    if (total < 0)
        return total;
    // All of it or nothing: segments that do not cover the datagram (the
    // kernel ran out of them) would cut it.
    if (c.length > static_cast<uint64_t>(total) || static_cast<uint64_t>(total) > net::kMaxDatagram)
        return -EMSGSIZE;
    if (s.error)
        return -std::exchange(s.error, 0);
    net::NetAddress to{};
    if (to_address) {
        if (!valid_address(c.address, s.family))
            return -EAFNOSUPPORT;
        sec::NetRequest r;
        sec::make_net_connect(r, c.subject, net_label, c.address.ip, c.address.port, sec::kProtoUdp, now_ns());
        if (!allowed(r))
            return -EACCES;
        to = c.address;
    } else {
        if (!s.has_peer)
            return -EDESTADDRREQ;
        to = s.peer;
    }
    if (to.port == 0)
        return -EINVAL;
    // Sources the published port received from go back out there, even
    // when they are the host's loopback addresses.
    bool outside = s.published && std::any_of(s.outside_peers.begin(), s.outside_peers.end(),
                                              [&](const net::NetAddress& p) { return same_endpoint(p, to); });
    bool local = !outside && is_loopback(to.ip);
    if (!local && (s.dtx_bytes + static_cast<size_t>(total) > opts.buffer_bytes || s.dtx.size() >= kMaxQueuedDatagrams))
        return -EAGAIN;
    // Linux binds an unbound socket to an ephemeral port on its first send.
    if (int64_t rc = bind_if_unbound(s); rc < 0)
        return rc;
    std::vector<uint8_t> data;
    data.reserve(static_cast<size_t>(total));
    for (uint32_t i = 0; i < c.segment_count; ++i) {
        const uint8_t* src = ram.readable(c.segments[i].addr, c.segments[i].len);
        data.insert(data.end(), src, src + c.segments[i].len);
    }
    if (local) {
        deliver_local(s, to, std::move(data));
        return total;
    }
    s.dtx_bytes += data.size();
    s.dtx.push_back(Datagram{to, std::move(data)});
    mark_dirty(s);
    kick();
    return total;
}

// A datagram over the bundle's loopback: queued on the datagram socket
// bound to that port, or dropped (no such socket, a full queue, a
// connected receiver whose peer is another), as UDP drops.
void NetService::Impl::deliver_local(NetSocket& from, const net::NetAddress& to, std::vector<uint8_t>&& data) {
    auto it = udp_ports.find(to.port);
    NetSocket* r = it != udp_ports.end() ? find(it->second) : nullptr;
    if (!r || !r->dgram) {
        // A connected sender learns it as Linux's ICMP port unreachable.
        if (from.has_peer && same_endpoint(from.peer, to))
            from.error = ECONNREFUSED;
        return;
    }
    net::NetAddress src = from.local;
    if (is_unspecified(src.ip)) {
        // The source the host would pick: the loopback of the destination's family.
        net::NetAddress lo = loopback_address(is_v4_mapped(to.ip) ? net::kFamilyInet : net::kFamilyInet6, 0);
        std::memcpy(src.ip, lo.ip, 16);
    }
    src.family = static_cast<uint16_t>(r->family);
    if (r->family == net::kFamilyInet && !is_v4_mapped(src.ip))
        return;
    if (r->has_peer && !same_endpoint(r->peer, src))
        return;
    if (r->drx_bytes + data.size() > opts.buffer_bytes || r->drx.size() >= kMaxQueuedDatagrams)
        return;
    r->drx_bytes += data.size();
    r->drx.push_back(Datagram{src, std::move(data)});
    changed.notify_all();
}

// One datagram, never merged with the next: what does not fit the buffer
// is cut (kMsgTrunc in flags) and the rest of it dropped.
int64_t NetService::Impl::op_recv_dgram(net::NetCall& c, NetSocket& s, NetGuestMemory ram) {
    constexpr uint64_t kMsgPeek = 0x2, kMsgTruncArg = 0x20;
    int64_t total = check_segments(c, ram, true);
    if (total < 0)
        return total;
    if (s.error)
        return -std::exchange(s.error, 0);
    if (s.drx.empty())
        return -EAGAIN;
    Datagram& d = s.drx.front();
    size_t want = std::min<size_t>(d.data.size(), static_cast<size_t>(total));
    size_t done = 0;
    for (uint32_t i = 0; i < c.segment_count && done < want; ++i) {
        size_t n = std::min<size_t>(c.segments[i].len, want - done);
        std::memcpy(ram.base + c.segments[i].addr, d.data.data() + done, n);
        done += n;
    }
    c.address = d.peer;
    c.address.family = static_cast<uint16_t>(s.family);
    size_t full = d.data.size();
    if (full > done)
        c.flags = net::kMsgTrunc;
    if (!(c.arg & kMsgPeek)) {
        s.drx_bytes -= full;
        s.drx.pop_front();
        // Room again: the I/O thread may receive more.
        if (s.fd >= 0 && !s.recv_pending) {
            mark_dirty(s);
            kick();
        }
    }
    return static_cast<int64_t>((c.arg & kMsgTruncArg) ? full : done);
}

uint16_t NetService::Impl::readiness(NetSocket& s) {
    uint16_t ev = 0;
    if (s.error)
        ev |= net::kPollErr;
    if (s.dgram) {
        if (!s.drx.empty())
            ev |= net::kPollIn;
        if (s.dtx_bytes < opts.buffer_bytes && s.dtx.size() < kMaxQueuedDatagrams)
            ev |= net::kPollOut;
        return ev;
    }
    switch (s.state) {
    case State::Listening:
        if (!s.accept_queue.empty())
            ev |= net::kPollIn;
        break;
    case State::Connecting:
        break;
    case State::Connected:
        if (s.rx_avail() || s.rx_eof || s.shut_rd)
            ev |= net::kPollIn;
        if (s.rx_eof)
            ev |= net::kPollRdHup;
        if (!s.write_broken && !s.shut_wr && s.tx.size() + s.tx_inflight < opts.buffer_bytes)
            ev |= net::kPollOut;
        if (s.write_broken || (s.rx_eof && s.shut_wr))
            ev |= net::kPollHup;
        break;
    case State::Fresh:
    case State::Bound:
        // As Linux's tcp_poll for a closed socket: hung up and writable
        // (after a failed connect the program then reads SO_ERROR).
        ev |= net::kPollHup | net::kPollOut;
        break;
    }
    return ev;
}

int64_t NetService::Impl::op_poll(net::NetCall& c, std::unique_lock<std::mutex>& lock) {
    if (c.poll_count > net::kMaxNetPoll)
        return -EINVAL;
    for (uint32_t i = 0; i < c.poll_count; ++i)
        if (!find(c.poll[i].socket))
            return -EBADF;
    auto report = [&] {
        int64_t ready = 0;
        for (uint32_t i = 0; i < c.poll_count; ++i) {
            NetSocket* s = find(c.poll[i].socket);
            uint16_t want = c.poll[i].events | net::kPollErr | net::kPollHup;
            c.poll[i].revents = s ? static_cast<uint16_t>(readiness(*s) & want) : 0;
            ready += c.poll[i].revents != 0;
        }
        return ready;
    };
    int64_t ready = report();
    uint64_t wait_ns = std::min<uint64_t>(c.arg, net::kMaxNetPollWaitNs);
    if (ready || wait_ns == 0)
        return ready;
    // Sockets may be closed while the lock is released: report() looks
    // every id up again.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(wait_ns);
    changed.wait_until(lock, deadline, [&] { return stop || (ready = report()) != 0; });
    return ready;
}

int64_t NetService::Impl::op_shutdown(net::NetCall& c, NetSocket& s) {
    if (c.arg > SHUT_RDWR)
        return -EINVAL;
    if (s.state != State::Connected)
        return -ENOTCONN;
    if (c.arg == SHUT_RD || c.arg == SHUT_RDWR) {
        s.shut_rd = true;
        s.rx.clear();
        s.rx_head = 0;
    }
    if (c.arg == SHUT_WR || c.arg == SHUT_RDWR) {
        s.shut_wr = true;
        mark_dirty(s);
        kick();
    }
    return 0;
}

int64_t NetService::Impl::op_set_option(net::NetCall& c, NetSocket& s) {
    auto o = static_cast<net::NetOption>(c.option);
    switch (o) {
    case net::NetOption::ReuseAddress:
    case net::NetOption::ReceiveBuffer:
    case net::NetOption::SendBuffer:
        s.options[c.option] = c.arg;
        return 0;
    case net::NetOption::KeepAlive:
    case net::NetOption::NoDelay:
        s.options[c.option] = c.arg != 0;
        s.options_dirty = true;
        mark_dirty(s);
        kick();
        return 0;
    default:
        return -ENOPROTOOPT; // Type and AcceptConn are read-only
    }
}

int64_t NetService::Impl::op_get_option(net::NetCall& c, NetSocket& s) {
    auto o = static_cast<net::NetOption>(c.option);
    switch (o) {
    case net::NetOption::ReuseAddress:
    case net::NetOption::KeepAlive:
    case net::NetOption::NoDelay:
    case net::NetOption::ReceiveBuffer:
    case net::NetOption::SendBuffer:
        c.arg = s.options[c.option];
        return 0;
    case net::NetOption::Type:
        c.arg = s.dgram ? net::kTypeDgram : net::kTypeStream;
        return 0;
    case net::NetOption::AcceptConn:
        c.arg = s.state == State::Listening;
        return 0;
    default:
        return -ENOPROTOOPT;
    }
}

// The guest's id is gone at once; the I/O thread lets queued output go
// out, cancels what is pending and closes the host descriptor.
void NetService::Impl::close_socket(NetSocket& s) {
    if (s.dgram) {
        if (s.has_local) {
            auto it = udp_ports.find(s.local.port);
            if (it != udp_ports.end() && it->second == s.id)
                udp_ports.erase(it);
        }
        s.drx.clear();
        s.drx_bytes = 0;
    } else if (!s.unix_name.empty()) {
        auto it = unix_names.find({s.unix_label, s.unix_name});
        if (it != unix_names.end() && it->second == s.id)
            unix_names.erase(it);
    } else if (s.state == State::Listening || s.state == State::Bound) {
        auto it = ports.find(s.local.port);
        if (it != ports.end() && it->second == s.id)
            ports.erase(it);
    }
    for (auto& p : published)
        if (p->listener_id == s.id)
            p->listener_id = 0;
    std::vector<NetSocket*> victims{&s};
    for (NetSocket* q : s.accept_queue)
        victims.push_back(q);
    s.accept_queue.clear();
    for (NetSocket* v : victims) {
        if (v->pair_reserved) {
            v->pair_reserved = false;
            --reserved;
            if (NetSocket* l = find(v->listener_id); l && l->pending_pairs)
                --l->pending_pairs;
        }
        v->visible = false;
        v->closing = true;
        auto node = sockets.extract(v->id);
        closing.push_back(std::move(node.mapped()));
        mark_dirty(*v);
    }
    kick();
    changed.notify_all();
}

// ---------------------------------------------------------------- I/O thread

io_uring_sqe* NetService::Impl::sqe() {
    io_uring_sqe* e = ::io_uring_get_sqe(&ring);
    while (!e) {
        ::io_uring_submit(&ring);
        e = ::io_uring_get_sqe(&ring);
    }
    return e;
}

void NetService::Impl::submit(io_uring_sqe* e, void* object, Tag tag) {
    ::io_uring_sqe_set_data64(e, reinterpret_cast<uint64_t>(object) | static_cast<uint64_t>(tag));
    ++inflight;
}

void NetService::Impl::post_wake_read() {
    io_uring_sqe* e = sqe();
    ::io_uring_prep_read(e, wake.get(), &wake_value, sizeof wake_value, 0);
    submit(e, nullptr, Tag::Wake);
}

void NetService::Impl::io_loop() {
    std::unique_lock lock(mu);
    post_wake_read();
    for (auto& p : published)
        pump_published(*p);
    while (true) {
        lock.unlock();
        int rc = ::io_uring_submit_and_wait(&ring, 1);
        lock.lock();
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            break; // the ring is unusable; Poll waiters time out, calls see EAGAIN
        io_uring_cqe* cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            complete(cqe);
            ++seen;
        }
        ::io_uring_cq_advance(&ring, seen);
        if (!test_fns.empty()) {
            auto fns = std::move(test_fns);
            test_fns.clear();
            lock.unlock();
            for (auto& fn : fns)
                fn();
            lock.lock();
        }
        if (stop)
            break;
        auto work = std::move(dirty);
        dirty.clear();
        for (NetSocket* s : work) {
            s->dirty = false;
            pump(*s);
        }
        for (auto& p : published)
            pump_published(*p);
        finish_closing();
        changed.notify_all();
    }
    cancel_everything();
    changed.notify_all();
}

// At the end of the service: every operation is cancelled and completed
// before the thread ends, so no buffer is written after it is freed.
void NetService::Impl::cancel_everything() {
    io_uring_sqe* e = sqe();
    ::io_uring_prep_cancel64(e, 0, IORING_ASYNC_CANCEL_ANY);
    submit(e, nullptr, Tag::Cancel);
    while (inflight) {
        io_uring_cqe* cqe = nullptr;
        if (::io_uring_submit_and_wait(&ring, 1) < 0)
            break;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            --inflight;
            ++seen;
        }
        ::io_uring_cq_advance(&ring, seen);
    }
}

void NetService::Impl::complete(io_uring_cqe* cqe) {
    --inflight;
    uint64_t ud = ::io_uring_cqe_get_data64(cqe);
    auto tag = static_cast<Tag>(ud & kTagMask);
    // NOLINTNEXTLINE(performance-no-int-to-ptr): the pointer submit() put there
    void* object = reinterpret_cast<void*>(ud & ~kTagMask);
    int res = cqe->res;
    switch (tag) {
    case Tag::Wake:
        if (!stop)
            post_wake_read();
        return;
    case Tag::Cancel:
        return;
    case Tag::Accept: {
        auto& p = *static_cast<Published*>(object);
        p.accept_pending = false;
        if (res < 0)
            return;
        NetSocket* l = find(p.listener_id);
        NetSocket* a = l && l->state == State::Listening && l->accept_queue.size() < l->backlog
                           ? create(l->family)
                           : nullptr;
        if (!a) {
            ::close(res); // no guest listener or no room: the host client sees a reset
            return;
        }
        a->local = l->local;
        a->has_local = true;
        a->peer = from_sockaddr(p.peer, l->family);
        on_connected(*a, res, true);
        l->accept_queue.push_back(a);
        return;
    }
    default:
        break;
    }
    auto& s = *static_cast<NetSocket*>(object);
    if (s.dgram) {
        complete_dgram(s, tag, res);
        return;
    }
    switch (tag) {
    case Tag::Connect:
        s.connect_pending = false;
        if (s.closing)
            break;
        if (res < 0) {
            ::close(s.fd);
            s.fd = -1;
            s.state = State::Fresh;
            s.error = -res;
        } else {
            sockaddr_storage local{};
            socklen_t len = sizeof local;
            ::getsockname(s.fd, reinterpret_cast<sockaddr*>(&local), &len);
            s.local = from_sockaddr(local, s.family);
            s.has_local = true;
            on_connected(s, s.fd, true);
        }
        break;
    case Tag::Recv:
        s.recv_pending = false;
        if (s.closing || s.shut_rd)
            break;
        if (res > 0) {
            if (s.rx_head) {
                s.rx.erase(s.rx.begin(), s.rx.begin() + static_cast<ptrdiff_t>(s.rx_head));
                s.rx_head = 0;
            }
            s.rx.insert(s.rx.end(), s.rx_stage.get(), s.rx_stage.get() + res);
        } else if (res == 0) {
            s.rx_eof = true;
        } else if (res != -ECANCELED) {
            s.error = -res;
            s.rx_eof = true;
            s.write_broken = true;
        }
        break;
    case Tag::Send:
        s.send_pending = false;
        if (res > 0) {
            s.tx_stage_off += static_cast<size_t>(res);
            s.tx_inflight -= static_cast<size_t>(res);
        } else {
            // The peer is gone (EPIPE, ECONNRESET): what was queued is lost.
            if (res != -EPIPE && res != -ECANCELED)
                s.error = -res;
            s.write_broken = true;
            s.tx.clear();
            s.tx_stage.clear();
            s.tx_stage_off = 0;
            s.tx_inflight = 0;
        }
        if (s.tx_stage_off >= s.tx_stage.size()) {
            s.tx_stage.clear();
            s.tx_stage_off = 0;
        }
        break;
    default:
        break;
    }
    pump(s);
}

void NetService::Impl::on_connected(NetSocket& s, int fd, bool tcp) {
    s.fd = fd;
    s.tcp = tcp;
    s.state = State::Connected;
    s.options_dirty = true;
    pump(s);
}

void NetService::Impl::apply_options(NetSocket& s) {
    s.options_dirty = false;
    if (!s.tcp || s.fd < 0)
        return;
    int nodelay = s.options[static_cast<int>(net::NetOption::NoDelay)] != 0;
    int keepalive = s.options[static_cast<int>(net::NetOption::KeepAlive)] != 0;
    ::setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay);
    ::setsockopt(s.fd, SOL_SOCKET, SO_KEEPALIVE, &keepalive, sizeof keepalive);
}

void NetService::Impl::start_connect(NetSocket& s) {
    s.connect_requested = false;
    if (s.loopback) {
        make_pair(s);
        return;
    }
    int fd = ::socket(s.target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        s.state = State::Fresh;
        s.error = errno;
        return;
    }
    s.fd = fd;
    s.tcp = true;
    s.connect_pending = true;
    io_uring_sqe* e = sqe();
    ::io_uring_prep_connect(e, fd, reinterpret_cast<sockaddr*>(&s.target), s.target_len);
    submit(e, &s, Tag::Connect);
}

// A loopback connect: one end of a socketpair for the connecting socket,
// the other queued on the bundle's listener.
void NetService::Impl::make_pair(NetSocket& s) {
    auto fail = [&](int err) {
        s.state = State::Fresh;
        s.error = err;
    };
    NetSocket* l = find(s.listener_id);
    if (s.pair_reserved) {
        s.pair_reserved = false;
        --reserved;
        if (l && l->pending_pairs)
            --l->pending_pairs;
    }
    if (!l || l->state != State::Listening || (l->family != net::kFamilyUnix && l->local.port != s.peer.port))
        return fail(ECONNREFUSED);
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return fail(errno);
    NetSocket* a = create(l->family);
    if (!a) {
        ::close(sv[0]);
        ::close(sv[1]);
        return fail(ENOBUFS);
    }
    a->local = l->local;
    a->local.family = static_cast<uint16_t>(l->family);
    a->has_local = true;
    a->peer = s.local;
    a->peer.family = static_cast<uint16_t>(l->family);
    on_connected(*a, sv[1], false);
    l->accept_queue.push_back(a);
    on_connected(s, sv[0], false);
}

// Posts what a socket needs now: its connect, a receive when there is
// room, a send when there is output, the deferred shutdown, options.
void NetService::Impl::pump(NetSocket& s) {
    if (s.dgram)
        return pump_dgram(s);
    if (s.closing) {
        // Output the program queued before it closed still goes out; input
        // and a pending connect are cancelled.
        if (s.fd >= 0 && !s.cancel_sent && (s.recv_pending || s.connect_pending)) {
            s.cancel_sent = true;
            for (auto [pending, tag] :
                 {std::pair{s.recv_pending, Tag::Recv}, std::pair{s.connect_pending, Tag::Connect}})
                if (pending) {
                    io_uring_sqe* e = sqe();
                    ::io_uring_prep_cancel64(e, reinterpret_cast<uint64_t>(&s) | static_cast<uint64_t>(tag), 0);
                    submit(e, nullptr, Tag::Cancel);
                }
        }
    } else {
        if (s.state == State::Connecting && s.connect_requested)
            start_connect(s);
        if (s.state != State::Connected || s.fd < 0)
            return;
        if (s.options_dirty)
            apply_options(s);
        size_t room = opts.buffer_bytes - std::min<size_t>(opts.buffer_bytes, s.rx_avail());
        if (!s.recv_pending && !s.rx_eof && !s.shut_rd && room > 0) {
            if (!s.rx_stage)
                s.rx_stage = std::make_unique<uint8_t[]>(opts.buffer_bytes);
            s.recv_pending = true;
            io_uring_sqe* e = sqe();
            ::io_uring_prep_recv(e, s.fd, s.rx_stage.get(), room, 0);
            submit(e, &s, Tag::Recv);
        }
    }
    if (s.fd < 0 || s.state != State::Connected)
        return;
    if (!s.send_pending && s.tx_stage.empty() && !s.tx.empty() && !s.write_broken) {
        s.tx_inflight += s.tx.size();
        std::swap(s.tx, s.tx_stage);
        s.tx_stage_off = 0;
    }
    if (!s.send_pending && s.tx_stage_off < s.tx_stage.size()) {
        s.send_pending = true;
        io_uring_sqe* e = sqe();
        ::io_uring_prep_send(e, s.fd, s.tx_stage.data() + s.tx_stage_off, s.tx_stage.size() - s.tx_stage_off,
                             MSG_NOSIGNAL);
        submit(e, &s, Tag::Send);
        return;
    }
    if (s.shut_wr && !s.shut_wr_done && !s.send_pending && s.tx.empty() && s.tx_stage.empty()) {
        s.shut_wr_done = true;
        ::shutdown(s.fd, SHUT_WR);
    }
}

// ---------------------------------------------------------------- datagrams (I/O thread)

// A datagram socket's host side: the published port's socket, or its own
// host UDP socket made at its first outbound datagram (its replies come
// back on it). One RECVMSG while the receive queue has room, one SENDMSG
// at a time; queued datagrams still go out after Close.
void NetService::Impl::pump_dgram(NetSocket& s) {
    if (s.closing) {
        if (s.fd >= 0 && !s.cancel_sent && s.recv_pending) {
            s.cancel_sent = true;
            io_uring_sqe* e = sqe();
            ::io_uring_prep_cancel64(e, reinterpret_cast<uint64_t>(&s) | static_cast<uint64_t>(Tag::Recv), 0);
            submit(e, nullptr, Tag::Cancel);
        }
        if (s.fd < 0) {
            s.dtx.clear();
            s.dtx_bytes = 0;
        }
    } else if (s.fd < 0) {
        if (s.published) {
            s.fd = s.published->fd.get();
            s.fd_borrowed = true;
        } else if (!s.dtx.empty()) {
            int fd = ::socket(s.family == net::kFamilyInet ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                s.error = errno; // the next call reports it; what was queued is lost
                s.dtx.clear();
                s.dtx_bytes = 0;
                return;
            }
            s.fd = fd;
        }
    }
    if (s.fd < 0)
        return;
    int host_family = s.fd_borrowed ? (s.published->port.host_ipv4 ? AF_INET : AF_INET6)
                                    : (s.family == net::kFamilyInet ? AF_INET : AF_INET6);
    if (!s.closing && !s.recv_pending && !s.recv_failed && s.drx_bytes < opts.buffer_bytes &&
        s.drx.size() < kMaxQueuedDatagrams) {
        if (!s.rx_stage)
            s.rx_stage = std::make_unique<uint8_t[]>(kDatagramStage);
        s.iov[0] = {s.rx_stage.get(), kDatagramStage};
        s.msg[0] = msghdr{};
        s.msg[0].msg_name = &s.msg_addr[0];
        s.msg[0].msg_namelen = sizeof s.msg_addr[0];
        s.msg[0].msg_iov = &s.iov[0];
        s.msg[0].msg_iovlen = 1;
        s.recv_pending = true;
        io_uring_sqe* e = sqe();
        ::io_uring_prep_recvmsg(e, s.fd, &s.msg[0], 0);
        submit(e, &s, Tag::Recv);
    }
    if (!s.send_pending && !s.dtx.empty()) {
        s.dtx_stage = std::move(s.dtx.front());
        s.dtx.pop_front();
        socklen_t len = to_host_sockaddr(host_family, s.dtx_stage.peer.ip, s.dtx_stage.peer.port, s.msg_addr[1]);
        s.iov[1] = {s.dtx_stage.data.data(), s.dtx_stage.data.size()};
        s.msg[1] = msghdr{};
        s.msg[1].msg_name = &s.msg_addr[1];
        s.msg[1].msg_namelen = len;
        s.msg[1].msg_iov = &s.iov[1];
        s.msg[1].msg_iovlen = 1;
        s.send_pending = true;
        io_uring_sqe* e = sqe();
        ::io_uring_prep_sendmsg(e, s.fd, &s.msg[1], MSG_NOSIGNAL);
        submit(e, &s, Tag::Send);
    }
}

void NetService::Impl::complete_dgram(NetSocket& s, Tag tag, int res) {
    if (tag == Tag::Recv) {
        s.recv_pending = false;
        if (s.closing)
            return pump_dgram(s);
        if (res >= 0) {
            sockaddr_storage from{};
            std::memcpy(&from, &s.msg_addr[0], std::min<size_t>(s.msg[0].msg_namelen, sizeof from));
            Datagram d{from_sockaddr(from, s.family), {}};
            d.data.assign(s.rx_stage.get(), s.rx_stage.get() + res);
            bool v4_ok = s.family != net::kFamilyInet || is_v4_mapped(d.peer.ip);
            if (v4_ok && (!s.has_peer || same_endpoint(s.peer, d.peer))) {
                if (s.published && std::none_of(s.outside_peers.begin(), s.outside_peers.end(),
                                                [&](const net::NetAddress& p) { return same_endpoint(p, d.peer); })) {
                    if (s.outside_peers.size() >= kMaxOutsidePeers)
                        s.outside_peers.pop_front();
                    s.outside_peers.push_back(d.peer);
                }
                s.drx_bytes += d.data.size();
                s.drx.push_back(std::move(d));
            }
        } else if (res != -ECANCELED) {
            s.error = -res;
            s.recv_failed = true;
        }
    } else if (tag == Tag::Send) {
        s.send_pending = false;
        s.dtx_bytes -= std::min(s.dtx_bytes, s.dtx_stage.data.size());
        s.dtx_stage = Datagram{};
        if (res < 0 && res != -ECANCELED && !s.closing)
            s.error = -res; // the next call reports it, as Linux's asynchronous UDP errors
    }
    pump_dgram(s);
}

void NetService::Impl::pump_published(Published& p) {
    if (p.port.udp || p.accept_pending || p.listener_id == 0)
        return;
    NetSocket* l = find(p.listener_id);
    if (!l || l->accept_queue.size() >= l->backlog || live_count() >= opts.max_sockets)
        return;
    p.accept_pending = true;
    p.peer_len = sizeof p.peer;
    io_uring_sqe* e = sqe();
    ::io_uring_prep_accept(e, p.fd.get(), reinterpret_cast<sockaddr*>(&p.peer), &p.peer_len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
    submit(e, &p, Tag::Accept);
}

// Frees closed sockets whose operations have all completed and whose
// output has gone to the host kernel (which sends it after close(2)).
void NetService::Impl::finish_closing() {
    std::erase_if(closing, [&](std::unique_ptr<NetSocket>& s) {
        if (s->dirty || s->ops_pending())
            return false;
        bool output_left = !s->write_broken && s->fd >= 0 &&
                           (!s->tx.empty() || !s->tx_stage.empty() || !s->dtx.empty());
        if (output_left)
            return false;
        if (s->owns_fd())
            ::close(s->fd);
        return true;
    });
}

} // namespace kos::vmm
