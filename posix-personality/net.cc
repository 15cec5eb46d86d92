#include "net.h"

#include "kos/base/string.h"
#include "kos/net.h"

namespace kos::rt {
namespace {

namespace net = abi::net;
using net::NetOp;

constexpr long kEINTR = 4, kEAGAIN = 11, kENODEV = 19, kENOTSOCK = 88, kEMSGSIZE = 90, kENOPROTOOPT = 92, kEPROTONOSUPPORT = 93,
               kESOCKTNOSUPPORT = 94, kEOPNOTSUPP = 95, kEAFNOSUPPORT = 97,
               kEINPROGRESS = 115;
constexpr int kAfUnix = 1, kAfInet = 2, kAfInet6 = 10;
constexpr int kSockStream = 1, kSockDgram = 2, kSockNonblock = 0x800, kSockCloexec = 0x80000;
constexpr int kMsgPeek = 0x2, kMsgTrunc = 0x20, kMsgDontwait = 0x40, kMsgWaitall = 0x100;
constexpr int kSolSocket = 1, kIpprotoTcp = 6, kIpprotoUdp = 17, kIpprotoIpv6 = 41, kIpprotoIp = 0;

i64 call(net::NetCall& c) { return native(Sys::net_call, reinterpret_cast<u64>(&c)); }

bool range_ok(u64 addr, u64 len) { return addr < abi::sys::kUserTop && len <= abi::sys::kUserTop - addr; }

// The socket behind `fd`, or nullptr with the error in *err.
Fd* socket_fd(int fd, i64* err) {
    Fd* f = fd_get(fd);
    if (!f) {
        *err = -kEBADF;
        return nullptr;
    }
    if (f->kind != FdKind::Socket) {
        *err = -kENOTSOCK;
        return nullptr;
    }
    return f;
}

u16 be16(const u8* p) { return static_cast<u16>(p[0] << 8 | p[1]); }

// sockaddr_in / sockaddr_in6 / sockaddr_un from the program -> the call's
// address (and, for AF_UNIX, its name).
i64 read_sockaddr(u64 addr, u64 len, net::NetCall& c) {
    net::NetAddress& out = c.address;
    if (len < 2 || len > 128)
        return -kEINVAL;
    if (!range_ok(addr, len))
        return -kEFAULT;
    const auto* p = reinterpret_cast<const u8*>(addr);
    u16 family = static_cast<u16>(p[0] | p[1] << 8);
    memset(&out, 0, sizeof out);
    if (family == kAfUnix) {
        // A path name ends at its first 0 byte; an abstract one (leading 0)
        // takes the whole length.
        u64 n = len - 2;
        if (n > sizeof c.path)
            return -kEINVAL;
        if (n && p[2] != 0)
            n = cstr_len(reinterpret_cast<const char*>(p + 2), n);
        if (n == 0)
            return -kEINVAL;
        memcpy(c.path, p + 2, n);
        c.path_len = static_cast<u32>(n);
        out.family = kAfUnix;
        return 0;
    }
    if (family == kAfInet) {
        if (len < 16)
            return -kEINVAL;
        out.ip[10] = out.ip[11] = 0xff;
        memcpy(out.ip + 12, p + 4, 4);
    } else if (family == kAfInet6) {
        if (len < 24)
            return -kEINVAL;
        memcpy(out.ip, p + 8, 16);
    } else {
        return -kEAFNOSUPPORT;
    }
    out.port = be16(p + 2);
    out.family = family;
    return 0;
}

// NetAddress -> the program's sockaddr (cut to its buffer, as Linux does;
// *lenp gets the full size).
i64 write_sockaddr(const net::NetAddress& a, int family, u64 addr, u64 lenp) {
    if (!addr)
        return 0;
    if (!range_ok(lenp, 4))
        return -kEFAULT;
    u32 cap;
    memcpy(&cap, reinterpret_cast<const void*>(lenp), 4);
    u8 buf[28] = {};
    u32 size;
    if (family == kAfUnix) { // unnamed, or a name the service does not report back
        u16 f = kAfUnix;
        if (cap >= 2 && range_ok(addr, 2))
            memcpy(reinterpret_cast<void*>(addr), &f, 2);
        size = 2;
        memcpy(reinterpret_cast<void*>(lenp), &size, 4);
        return 0;
    }
    bool mapped = a.ip[10] == 0xff && a.ip[11] == 0xff && !a.ip[0] && !a.ip[8] && !a.ip[9];
    if (family == kAfInet && mapped) {
        size = 16;
        buf[0] = kAfInet;
        memcpy(buf + 4, a.ip + 12, 4);
    } else {
        size = 28;
        buf[0] = kAfInet6;
        memcpy(buf + 8, a.ip, 16);
    }
    buf[2] = static_cast<u8>(a.port >> 8);
    buf[3] = static_cast<u8>(a.port);
    u32 n = cap < size ? cap : size;
    if (!range_ok(addr, n))
        return -kEFAULT;
    memcpy(reinterpret_cast<void*>(addr), buf, n);
    memcpy(reinterpret_cast<void*>(lenp), &size, 4);
    return 0;
}

net::NetCall make(NetOp op, u32 handle) {
    net::NetCall c;
    memset(&c, 0, offsetof(net::NetCall, segments));
    c.op = static_cast<u32>(op);
    c.socket = handle;
    return c;
}

// Waits, without the runtime lock, until the socket reports one of
// `events` (or an error or hang-up), at most one service wait.
void wait_socket(u32 handle, u16 events) {
    net::NetCall c = make(NetOp::Poll, 0);
    c.poll_count = 1;
    c.poll[0] = {handle, static_cast<u16>(events | net::kPollErr | net::kPollHup), 0};
    c.arg = net::kMaxNetPollWaitNs;
    runtime_unlock();
    i64 r = call(c);
    if (r <= 0)
        native(Sys::thread_yield); // others ran instead of a wait, or the socket is gone
    runtime_lock();
}

// Signals posted to this thread end a blocking socket call with EINTR.
bool signal_pending() {
    u64 tb;
    asm volatile("mov %%gs:%c1, %0" : "=r"(tb) : "i"(offsetof(abi::sys::ThreadBlock, self)));
    return __atomic_load_n(&reinterpret_cast<abi::sys::ThreadBlock*>(tb)->pending_signals, __ATOMIC_RELAXED) != 0;
}

// Runs `attempt` until it does not answer EAGAIN, waiting for `events`
// in between, unless the socket or the call is non-blocking.
template <class Attempt> i64 blocking(int fd, u16 events, bool dontwait, Attempt attempt) {
    u64 deadline = 0; // SO_RCVTIMEO / SO_SNDTIMEO, from the first wait
    for (;;) {
        i64 err = 0;
        Fd* f = socket_fd(fd, &err);
        if (!f)
            return err;
        i64 r = attempt(*f);
        if (r != -kEAGAIN || dontwait || (f->flags & kONonblock))
            return r;
        u32 timeout_ms = (events & net::kPollIn) ? f->recv_timeout_ms : f->send_timeout_ms;
        if (timeout_ms) {
            u64 now = monotonic_ns();
            if (!deadline)
                deadline = now + u64{timeout_ms} * 1'000'000;
            else if (now >= deadline)
                return -kEAGAIN; // the timeout passed, as Linux reports it
        }
        wait_socket(f->handle, events);
        if (signal_pending())
            return -kEINTR;
    }
}

bool is_dgram(int fd) {
    Fd* f = fd_get(fd);
    return f && f->kind == FdKind::Socket && f->stream == kSockDgram;
}

i64 transfer(int fd, u64 buf, u64 len, int flags, bool send) {
    if (!range_ok(buf, len))
        return -kEFAULT;
    if (send && len > net::kMaxDatagram && is_dgram(fd))
        return -kEMSGSIZE; // a datagram is never split
    if (len > net::kMaxNetData)
        len = net::kMaxNetData;
    return blocking(fd, send ? net::kPollOut : net::kPollIn, flags & kMsgDontwait, [&](Fd& f) {
        net::NetCall c = make(send ? NetOp::Send : NetOp::Recv, f.handle);
        c.buffer = buf;
        c.length = len;
        c.arg = static_cast<u64>(flags & kMsgPeek);
        return call(c);
    });
}

struct Iovec {
    u64 base, len;
};

// sendmsg/recvmsg with several buffers on a datagram socket: the datagram
// goes through this one, filled and read under the runtime lock within one
// attempt (a wait drops the lock, and another thread may use it then).
alignas(16) u8 g_dgram_bounce[net::kMaxDatagram];

// A datagram socket: one datagram to `to` (nullptr: the connected peer)
// from `buf` (or gathered from `gather[0..gather_n)` into the bounce
// buffer), or one received into `buf` with its source and MSG_TRUNC.
i64 dgram_send(int fd, u64 buf, u64 len, int flags, const net::NetCall* to, const Iovec* gather = nullptr,
               u64 gather_n = 0) {
    if (to && to->address.family == kAfUnix)
        return -kEAFNOSUPPORT; // as Linux's UDP for a non-IP address
    if (!range_ok(buf, len))
        return -kEFAULT;
    if (len > net::kMaxDatagram)
        return -kEMSGSIZE;
    return blocking(fd, net::kPollOut, flags & kMsgDontwait, [&](Fd& f) {
        net::NetCall c = make(to ? NetOp::SendTo : NetOp::Send, f.handle);
        if (to)
            c.address = to->address;
        c.buffer = buf;
        if (gather) {
            for (u64 i = 0, off = 0; i < gather_n; off += gather[i].len, ++i)
                memcpy(g_dgram_bounce + off, reinterpret_cast<const void*>(gather[i].base), gather[i].len);
            c.buffer = reinterpret_cast<u64>(g_dgram_bounce);
        }
        c.length = len;
        return call(c);
    });
}

i64 dgram_recv(int fd, u64 buf, u64 len, int flags, net::NetAddress* from, u32* msg_flags) {
    if (!range_ok(buf, len))
        return -kEFAULT;
    if (len > net::kMaxNetData)
        len = net::kMaxNetData;
    return blocking(fd, net::kPollIn, flags & kMsgDontwait, [&](Fd& f) {
        net::NetCall c = make(NetOp::Recv, f.handle);
        c.buffer = buf;
        c.length = len;
        c.arg = static_cast<u64>(flags & (kMsgPeek | kMsgTrunc));
        i64 r = call(c);
        if (r >= 0) {
            if (from)
                *from = c.address;
            if (msg_flags)
                *msg_flags = (c.flags & net::kMsgTrunc) ? kMsgTrunc : 0;
        }
        return r;
    });
}

// A blocking send returns once every byte is queued (Linux's stream
// semantics); a non-blocking one what fit.
i64 send_all(int fd, u64 buf, u64 len, int flags) {
    u64 done = 0;
    while (done < len) {
        i64 r = transfer(fd, buf + done, len - done, flags, true);
        if (r < 0) // EPIPE raises SIGPIPE as the call returns (runtime.cc)
            return done ? static_cast<i64>(done) : r;
        done += static_cast<u64>(r);
        Fd* f = fd_get(fd);
        if (!f || (f->flags & kONonblock) || (flags & kMsgDontwait))
            break;
    }
    return static_cast<i64>(done);
}

i64 recv_some(int fd, u64 buf, u64 len, int flags) {
    if (is_dgram(fd))
        return dgram_recv(fd, buf, len, flags, nullptr, nullptr);
    if (!(flags & kMsgWaitall))
        return transfer(fd, buf, len, flags, false);
    u64 done = 0;
    while (done < len) {
        i64 r = transfer(fd, buf + done, len - done, flags, false);
        if (r <= 0)
            return done ? static_cast<i64>(done) : r;
        done += static_cast<u64>(r);
    }
    return static_cast<i64>(done);
}

int family_of(const Fd& f) { return static_cast<int>(f.entry); }

bool is_unix_pair(int fd) {
    Fd* f = fd_get(fd);
    return f && f->kind == FdKind::UnixPair;
}
short socket_ready_any(int fd);

// Sockets the last readiness check looked at, and what they lacked.
net::NetPollEntry g_noted[net::kMaxNetPoll];
u32 g_noted_count = 0;

struct MsgHdr {
    u64 name;
    u32 namelen, pad0;
    u64 iov, iovlen, control, controllen;
    int flags, pad1;
};

} // namespace

i64 sys_socket(int family, int type, int protocol) {
    if (family != kAfInet && family != kAfInet6 && family != kAfUnix)
        return -kEAFNOSUPPORT;
    int kind = type & ~(kSockNonblock | kSockCloexec);
    if (kind != kSockStream && (kind != kSockDgram || family == kAfUnix))
        return -kESOCKTNOSUPPORT; // Unix datagram, seqpacket and raw sockets: not yet
    if (protocol != 0 && (family == kAfUnix || protocol != (kind == kSockDgram ? kIpprotoUdp : kIpprotoTcp)))
        return -kEPROTONOSUPPORT;
    int fd = fd_alloc();
    if (fd < 0)
        return fd;
    net::NetCall c = make(NetOp::Socket, 0);
    c.family = static_cast<u32>(family);
    c.type = kind == kSockDgram ? net::kTypeDgram : net::kTypeStream;
    i64 h = call(c);
    if (h < 0)
        return h;
    Fd& f = g_fds[fd];
    f = Fd{};
    f.kind = FdKind::Socket;
    f.handle = static_cast<u32>(h);
    f.flags = 2 /* O_RDWR */ | ((type & kSockNonblock) ? kONonblock : 0);
    f.cloexec = type & kSockCloexec;
    f.entry = static_cast<u32>(family);
    f.stream = kind;
    fd_ref(f);
    return fd;
}

i64 sys_socketpair(int family, int type, int protocol, u64 fds) {
    if (family != kAfUnix)
        return -kEOPNOTSUPP; // as Linux for AF_INET
    if ((type & ~(kSockNonblock | kSockCloexec)) != kSockStream)
        return -kESOCKTNOSUPPORT; // datagram and seqpacket pairs: not yet
    if (protocol != 0)
        return -kEPROTONOSUPPORT;
    return unix_pair(fds, (type & kSockCloexec) ? 02000000 /* O_CLOEXEC */ : 0);
}

i64 sys_bind(int fd, u64 addr, u64 len) {
    i64 err = 0;
    Fd* f = socket_fd(fd, &err);
    if (!f)
        return err;
    net::NetCall c = make(NetOp::Bind, f->handle);
    if (i64 r = read_sockaddr(addr, len, c); r < 0)
        return r;
    return call(c);
}

i64 sys_listen(int fd, int backlog) {
    i64 err = 0;
    Fd* f = socket_fd(fd, &err);
    if (!f)
        return err;
    net::NetCall c = make(NetOp::Listen, f->handle);
    c.arg = backlog < 0 ? 0 : static_cast<u64>(backlog);
    return call(c);
}

i64 sys_accept4(int fd, u64 addr, u64 lenp, int flags) {
    if (flags & ~(kSockNonblock | kSockCloexec))
        return -kEINVAL;
    int nfd = fd_alloc();
    if (nfd < 0)
        return nfd;
    net::NetCall c;
    int family = kAfInet;
    i64 r = blocking(fd, net::kPollIn, false, [&](Fd& f) {
        c = make(NetOp::Accept, f.handle);
        family = family_of(f);
        return call(c);
    });
    if (r < 0)
        return r;
    nfd = fd_alloc(); // the wait dropped the lock: take a descriptor free now
    if (nfd < 0) {
        native(Sys::handle_close, c.socket);
        return nfd;
    }
    Fd& f = g_fds[nfd];
    f = Fd{};
    f.kind = FdKind::Socket;
    f.handle = c.socket;
    f.flags = 2 | ((flags & kSockNonblock) ? kONonblock : 0);
    f.cloexec = flags & kSockCloexec;
    f.entry = static_cast<u32>(family);
    f.stream = kSockStream;
    fd_ref(f);
    write_sockaddr(c.address, family, addr, lenp);
    return nfd;
}

i64 sys_connect(int fd, u64 addr, u64 len) {
    i64 err = 0;
    Fd* f = socket_fd(fd, &err);
    if (!f)
        return err;
    net::NetCall c = make(NetOp::Connect, f->handle);
    if (f->stream == kSockDgram && len >= 2 && range_ok(addr, 2) && *reinterpret_cast<const u16*>(addr) == 0)
        return call(c); // AF_UNSPEC: the socket forgets its peer (address family 0)
    if (i64 r = read_sockaddr(addr, len, c); r < 0)
        return r;
    i64 r = call(c);
    if (f->stream == kSockDgram)
        return r; // a datagram socket's default peer: set at once
    if (r != -kEINPROGRESS || (f->flags & kONonblock))
        return r;
    // A blocking connect waits for the outcome.
    r = blocking(fd, net::kPollOut, false, [&](Fd& s) {
        net::NetCall p = make(NetOp::Poll, 0);
        p.poll_count = 1;
        p.poll[0] = {s.handle, net::kPollOut, 0};
        i64 n = call(p);
        if (n < 0)
            return n;
        return n == 0 ? -kEAGAIN : 0;
    });
    if (r < 0)
        return r;
    if (!(f = socket_fd(fd, &err)))
        return err;
    net::NetCall e = make(NetOp::GetError, f->handle);
    r = call(e);
    return r < 0 ? r : -static_cast<i64>(e.arg);
}

i64 sys_sendto(int fd, u64 buf, u64 len, int flags, u64 addr, u64 alen) {
    if (is_unix_pair(fd))
        return sys_write(fd, buf, len);
    if (is_dgram(fd)) {
        if (!addr)
            return dgram_send(fd, buf, len, flags, nullptr);
        net::NetCall to = make(NetOp::SendTo, 0);
        if (i64 r = read_sockaddr(addr, alen, to); r < 0)
            return r;
        return dgram_send(fd, buf, len, flags, &to);
    }
    // A stream socket is connected: the address, if any, is ignored.
    return send_all(fd, buf, len, flags);
}

i64 sys_recvfrom(int fd, u64 buf, u64 len, int flags, u64 addr, u64 alenp) {
    if (is_unix_pair(fd)) {
        if (addr && range_ok(alenp, 4))
            memset(reinterpret_cast<void*>(alenp), 0, 4); // an unnamed peer
        return sys_read(fd, buf, len);
    }
    if (is_dgram(fd)) {
        net::NetAddress from{};
        i64 r = dgram_recv(fd, buf, len, flags, &from, nullptr);
        if (r >= 0 && addr) {
            i64 err = 0;
            if (Fd* f = socket_fd(fd, &err))
                write_sockaddr(from, family_of(*f), addr, alenp);
        }
        return r;
    }
    i64 r = recv_some(fd, buf, len, flags);
    if (r >= 0 && addr) {
        i64 err = 0;
        Fd* f = socket_fd(fd, &err);
        if (f) {
            net::NetCall c = make(NetOp::PeerName, f->handle);
            if (call(c) == 0)
                write_sockaddr(c.address, family_of(*f), addr, alenp);
        }
    }
    return r;
}

// A message's buffers: their total length, how many are not empty and the
// last such one's address (a datagram of one buffer needs no bounce); false
// if one lies outside user memory.
static bool sum_buffers(const Iovec* v, u64 count, u64* total, u64* used, u64* single) {
    for (u64 i = 0; i < count; ++i) {
        if (!range_ok(v[i].base, v[i].len))
            return false;
        *total += v[i].len;
        if (v[i].len) {
            ++*used;
            *single = v[i].base;
        }
    }
    return true;
}

i64 sys_sendmsg(int fd, u64 msg, int flags) {
    if (!range_ok(msg, sizeof(MsgHdr)))
        return -kEFAULT;
    const auto* m = reinterpret_cast<const MsgHdr*>(msg);
    if (m->iovlen > 1024 || !range_ok(m->iov, m->iovlen * sizeof(Iovec)))
        return m->iovlen > 1024 ? -kEINVAL : -kEFAULT;
    const auto* v = reinterpret_cast<const Iovec*>(m->iov);
    if (is_dgram(fd)) {
        // One datagram of every buffer, to msg_name or the connected peer.
        u64 total = 0, used = 0, single = 0;
        if (!sum_buffers(v, m->iovlen, &total, &used, &single))
            return -kEFAULT;
        if (total > net::kMaxDatagram)
            return -kEMSGSIZE;
        const Iovec* gather = used > 1 ? v : nullptr;
        u64 buf = used > 1 ? reinterpret_cast<u64>(g_dgram_bounce) : single;
        if (!m->name || !m->namelen) // as Linux: no name without a length
            return dgram_send(fd, buf, total, flags, nullptr, gather, m->iovlen);
        net::NetCall to = make(NetOp::SendTo, 0);
        if (i64 r = read_sockaddr(m->name, m->namelen, to); r < 0)
            return r;
        return dgram_send(fd, buf, total, flags, &to, gather, m->iovlen);
    }
    u64 done = 0;
    for (u64 i = 0; i < m->iovlen; ++i) {
        if (!v[i].len)
            continue;
        i64 r = sys_sendto(fd, v[i].base, v[i].len, flags, 0, 0);
        if (r < 0)
            return done ? static_cast<i64>(done) : r;
        done += static_cast<u64>(r);
        if (static_cast<u64>(r) < v[i].len)
            break;
    }
    return static_cast<i64>(done);
}

i64 sys_recvmsg(int fd, u64 msg, int flags) {
    if (!range_ok(msg, sizeof(MsgHdr)))
        return -kEFAULT;
    auto* m = reinterpret_cast<MsgHdr*>(msg);
    if (m->iovlen > 1024 || !range_ok(m->iov, m->iovlen * sizeof(Iovec)))
        return m->iovlen > 1024 ? -kEINVAL : -kEFAULT;
    const auto* v = reinterpret_cast<const Iovec*>(m->iov);
    if (is_dgram(fd)) {
        // One datagram scattered over the buffers; its source in msg_name.
        u64 total = 0, used = 0, single = 0;
        if (!sum_buffers(v, m->iovlen, &total, &used, &single))
            return -kEFAULT;
        if (total > net::kMaxDatagram)
            total = net::kMaxDatagram;
        net::NetAddress from{};
        u32 out_flags = 0;
        // The bounce buffer is filled and read under the runtime lock: the
        // receive itself does not wait.
        i64 r = used > 1 ? dgram_recv(fd, reinterpret_cast<u64>(g_dgram_bounce), total, flags, &from, &out_flags)
                         : dgram_recv(fd, single, total, flags, &from, &out_flags);
        if (r < 0)
            return r;
        if (used > 1) {
            u64 copied = static_cast<u64>(r) < total ? static_cast<u64>(r) : total;
            for (u64 i = 0, off = 0; i < m->iovlen && off < copied; off += v[i].len, ++i) {
                u64 n = copied - off < v[i].len ? copied - off : v[i].len;
                memcpy(reinterpret_cast<void*>(v[i].base), g_dgram_bounce + off, n);
            }
        }
        if (m->name) {
            i64 err = 0;
            Fd* f = socket_fd(fd, &err);
            u64 lenp = msg + offsetof(MsgHdr, namelen);
            if (f)
                write_sockaddr(from, family_of(*f), m->name, lenp);
        }
        m->controllen = 0;
        m->flags = static_cast<int>(out_flags);
        return r;
    }
    u64 done = 0;
    for (u64 i = 0; i < m->iovlen; ++i) {
        if (!v[i].len)
            continue;
        // Only the first transfer may wait.
        if (done && is_unix_pair(fd) && !(socket_ready_any(fd) & net::kPollIn))
            break; // only the first transfer may wait
        i64 r = sys_recvfrom(fd, v[i].base, v[i].len, done ? (flags | kMsgDontwait) : flags, 0, 0);
        if (r < 0) {
            if (done)
                break;
            return r;
        }
        done += static_cast<u64>(r);
        if (static_cast<u64>(r) < v[i].len)
            break;
    }
    m->namelen = 0;
    m->controllen = 0;
    m->flags = 0;
    return static_cast<i64>(done);
}

i64 sys_shutdown(int fd, int how) {
    if (Fd* u = fd_get(fd); u && u->kind == FdKind::UnixPair) {
        if (how < 0 || how > 2)
            return -kEINVAL;
        return how == 0 ? 0 : unix_pair_shutdown_write(*u); // SHUT_RD: reads still drain
    }
    i64 err = 0;
    Fd* f = socket_fd(fd, &err);
    if (!f)
        return err;
    if (how < 0 || how > 2)
        return -kEINVAL;
    net::NetCall c = make(NetOp::Shutdown, f->handle);
    c.arg = static_cast<u64>(how);
    return call(c);
}

i64 sys_sockname(int fd, u64 addr, u64 lenp, bool peer) {
    if (is_unix_pair(fd)) { // unnamed: just the family
        if (!range_ok(lenp, 4))
            return -kEFAULT;
        u32 cap;
        memcpy(&cap, reinterpret_cast<const void*>(lenp), 4);
        u16 family = kAfUnix;
        if (cap >= 2 && range_ok(addr, 2))
            memcpy(reinterpret_cast<void*>(addr), &family, 2);
        u32 size = 2;
        memcpy(reinterpret_cast<void*>(lenp), &size, 4);
        return 0;
    }
    i64 err = 0;
    Fd* f = socket_fd(fd, &err);
    if (!f)
        return err;
    net::NetCall c = make(peer ? NetOp::PeerName : NetOp::LocalName, f->handle);
    i64 r = call(c);
    if (r < 0)
        return r;
    return write_sockaddr(c.address, family_of(*f), addr, lenp);
}

i64 sys_setsockopt(int fd, int level, int name, u64 val, u64 len) {
    i64 err = 0;
    Fd* f = socket_fd(fd, &err);
    if (!f)
        return err;
    u32 value = 0;
    if (len >= 4) {
        if (!range_ok(val, 4))
            return -kEFAULT;
        memcpy(&value, reinterpret_cast<const void*>(val), 4);
    }
    net::NetOption opt{};
    if (level == kSolSocket) {
        switch (name) {
        case 2: opt = net::NetOption::ReuseAddress; break; // SO_REUSEADDR
        case 9: opt = net::NetOption::KeepAlive; break;    // SO_KEEPALIVE
        case 7: opt = net::NetOption::SendBuffer; break;   // SO_SNDBUF
        case 8: opt = net::NetOption::ReceiveBuffer; break; // SO_RCVBUF
        // SO_REUSEPORT, SO_LINGER, SO_RCVTIMEO, SO_SNDTIMEO, SO_PRIORITY:
        // tuning only, accepted.
        case 20: // SO_RCVTIMEO
        case 21: { // SO_SNDTIMEO: struct timeval
            if (len < 16 || !range_ok(val, 16))
                return len < 16 ? -kEINVAL : -kEFAULT;
            abi::i64 tv[2];
            memcpy(tv, reinterpret_cast<const void*>(val), 16);
            if (tv[0] < 0 || tv[1] < 0 || tv[1] >= 1'000'000)
                return -33; // EDOM, as Linux
            u64 ms = static_cast<u64>(tv[0]) * 1000 + static_cast<u64>(tv[1] + 999) / 1000;
            (name == 20 ? f->recv_timeout_ms : f->send_timeout_ms) = ms > 0xffffffffu ? 0xffffffffu : static_cast<u32>(ms);
            return 0;
        }
        case 15: case 13: case 12: return 0;
        default: return -kENOPROTOOPT;
        }
    } else if (level == kIpprotoTcp) {
        if (name != 1) // TCP_NODELAY; other TCP tuning is accepted
            return 0;
        opt = net::NetOption::NoDelay;
    } else if (level == kIpprotoIpv6 || level == kIpprotoIp || level == kIpprotoUdp) {
        // Joining a multicast group: the service has no multicast, say so
        // (ENODEV, as Linux without a multicast interface).
        bool join = level == kIpprotoIp ? (name == 35 || name == 39 || name == 42 || name == 46)
                                        : level == kIpprotoIpv6 && (name == 20 || name == 42 || name == 46);
        if (join)
            return -kENODEV;
        return 0; // IPV6_V6ONLY, IP_TOS, UDP_CORK...: accepted
    } else {
        return -kENOPROTOOPT;
    }
    net::NetCall c = make(NetOp::SetOption, f->handle);
    c.option = static_cast<u32>(opt);
    c.arg = value;
    return call(c);
}

i64 sys_getsockopt(int fd, int level, int name, u64 val, u64 lenp) {
    i64 err = 0;
    Fd* f = socket_fd(fd, &err);
    if (!f)
        return err;
    if (!range_ok(lenp, 4))
        return -kEFAULT;
    u32 cap;
    memcpy(&cap, reinterpret_cast<const void*>(lenp), 4);
    u32 value = 0;
    if (level == kSolSocket && name == 4) { // SO_ERROR
        net::NetCall c = make(NetOp::GetError, f->handle);
        i64 r = call(c);
        if (r < 0)
            return r;
        value = static_cast<u32>(c.arg);
    } else if (level == kSolSocket && name == 3) { // SO_TYPE
        value = static_cast<u32>(f->stream == kSockDgram ? kSockDgram : kSockStream);
    } else if (level == kSolSocket && name == 38) { // SO_PROTOCOL
        value = static_cast<u32>(f->stream == kSockDgram ? kIpprotoUdp : family_of(*f) == kAfUnix ? 0 : kIpprotoTcp);
    } else if (level == kSolSocket && name == 39) { // SO_DOMAIN
        value = static_cast<u32>(family_of(*f));
    } else if (level == kSolSocket && (name == 20 || name == 21)) { // SO_RCVTIMEO, SO_SNDTIMEO
        u32 ms = name == 20 ? f->recv_timeout_ms : f->send_timeout_ms;
        abi::i64 tv[2] = {ms / 1000, (ms % 1000) * 1000};
        u32 n = cap < 16 ? cap : 16;
        if (!range_ok(val, n))
            return -kEFAULT;
        memcpy(reinterpret_cast<void*>(val), tv, n);
        memcpy(reinterpret_cast<void*>(lenp), &n, 4);
        return 0;
    } else {
        net::NetOption opt{};
        if (level == kSolSocket && name == 30)
            opt = net::NetOption::AcceptConn;
        else if (level == kSolSocket && name == 7)
            opt = net::NetOption::SendBuffer;
        else if (level == kSolSocket && name == 8)
            opt = net::NetOption::ReceiveBuffer;
        else if (level == kSolSocket && name == 2)
            opt = net::NetOption::ReuseAddress;
        else if (level == kSolSocket && name == 9)
            opt = net::NetOption::KeepAlive;
        else if (level == kIpprotoTcp && name == 1)
            opt = net::NetOption::NoDelay;
        else
            return -kENOPROTOOPT;
        net::NetCall c = make(NetOp::GetOption, f->handle);
        c.option = static_cast<u32>(opt);
        i64 r = call(c);
        if (r < 0)
            return r;
        value = static_cast<u32>(c.arg);
    }
    u32 n = cap < 4 ? cap : 4;
    if (!range_ok(val, n))
        return -kEFAULT;
    memcpy(reinterpret_cast<void*>(val), &value, n);
    u32 four = 4;
    memcpy(reinterpret_cast<void*>(lenp), &four, 4);
    return 0;
}

i64 socket_read(int fd, u64 buf, u64 len) { return recv_some(fd, buf, len, 0); }

i64 socket_write(int fd, u64 buf, u64 len) { return send_all(fd, buf, len, 0); }

short socket_ready(const Fd& f) {
    net::NetCall c = make(NetOp::Poll, 0);
    c.poll_count = 1;
    c.poll[0] = {f.handle, static_cast<u16>(net::kPollIn | net::kPollOut | net::kPollRdHup), 0};
    if (call(c) < 0)
        return 0x20; // POLLNVAL
    u16 ready = c.poll[0].revents;
    // Remember what it lacked: a wait ends when that comes.
    u16 missing = static_cast<u16>((net::kPollIn | net::kPollOut) & ~ready);
    if (missing && g_noted_count < net::kMaxNetPoll)
        g_noted[g_noted_count++] = {f.handle, missing, 0};
    return static_cast<short>(ready);
}

void socket_forget_noted() { g_noted_count = 0; }

namespace {
// Whether a read of the socket pair would not wait (the caller holds the
// runtime lock, so no poll here).
short socket_ready_any(int fd) {
    Fd* f = fd_get(fd);
    if (!f || f->kind != FdKind::UnixPair)
        return 0;
    return (native(Sys::pipe_poll, f->handle) & 1) ? net::kPollIn : 0;
}
} // namespace

bool socket_wait_noted(u64 deadline_ns) {
    runtime_lock();
    net::NetCall c = make(NetOp::Poll, 0);
    c.poll_count = g_noted_count;
    memcpy(c.poll, g_noted, g_noted_count * sizeof(net::NetPollEntry));
    runtime_unlock();
    if (c.poll_count == 0)
        return false;
    u64 now = monotonic_ns();
    u64 wait = net::kMaxNetPollWaitNs;
    if (deadline_ns != kNoDeadline)
        wait = deadline_ns <= now ? 0 : (deadline_ns - now < wait ? deadline_ns - now : wait);
    c.arg = wait;
    i64 r = call(c);
    return r > 0 || (r == 0 && wait > 0 && monotonic_ns() - now >= wait / 2);
}

} // namespace kos::rt
