// Networking for programs in the VM: the guest's sockets are sockets of the
// VMM's network service (kvm-host/net_service.h), reached through one
// native call and one hypercall that carry the same NetCall page.
//
//   runtime --native net_call(NetCall*)--> kernel --hc::Op::Net(gpa)--> VMM
//
// The runtime fills a NetCall in its memory. The kernel copies it into a
// kernel page, replaces the socket handle by the VMM's socket id (handles are
// kernel objects: forged or stale ones fail, fork shares them), asks the
// security engine about Connect, Bind and SendTo as net.kidl requests from
// the caller's label to the network label `net_t` (proto 6 or 17 by the
// socket's type, which the kernel records when the socket is made; denials
// are audited and return EACCES), turns the caller's data buffer into guest-physical
// segments, stamps the caller's policy label into `subject`, and makes the
// hypercall. The VMM checks the same request against the same compiled
// policy again, does the work, and writes the results into the page; the
// kernel turns a new socket id into a new handle and copies the page back.
//
// No call waits on the host: Connect, Accept, Send(To) and Recv answer EAGAIN
// (Connect: EINPROGRESS) when they would block, and Poll tells when to try
// again (it may wait up to its timeout when the kernel has nothing else to
// run).
//
// Addresses are IPv6 as in net.kidl; IPv4 travels as ::ffff:a.b.c.d.
// Loopback (127.0.0.0/8, ::1) is the bundle's own: connections to it reach
// the bundle's listeners only, never the host's, and datagrams to it the
// bundle's datagram socket bound to that port. TCP and UDP, and AF_UNIX
// stream sockets with names, which never leave the VM: their bind and
// connect are not network requests for the policy.
//
// Datagram sockets (kTypeDgram, UDP): Connect sets the default peer (a
// policy decision with proto 17, as TCP's with proto 6; an address of
// family 0, AF_UNSPEC, dissolves it and is no request); SendTo carries its
// destination in `address` and is the same decision, made for every
// datagram by the kernel and again by the VMM (no verdict is remembered).
// One Send or SendTo is one datagram, all of `length` or nothing
// (EMSGSIZE); one Recv takes one datagram, its source in `address`, and
// sets kMsgTrunc in `flags` when the buffer was too small for it.
#pragma once

#include "kos/types.h"

namespace kos::abi::net {

enum class NetOp : u32 {
    Socket = 1,      // in: family, type -> socket (a new one, unbound)
    Connect = 2,     // in: socket, address -> 0, EINPROGRESS (check with GetError), errno
    Bind = 3,        // in: socket, address (port 0: the service picks one)
    Listen = 4,      // in: socket, arg = backlog
    Accept = 5,      // in: socket -> new socket in `socket`, peer in `address`; EAGAIN
    Send = 6,        // in: socket, segments, arg = MSG_* flags -> bytes; EAGAIN, EPIPE
                     //   (datagram: to the connected peer, EDESTADDRREQ without one)
    Recv = 7,        // in: socket, segments, arg = MSG_* flags (MSG_PEEK) -> bytes, 0 at end
                     //   (datagram: one datagram, its source in `address`, kMsgTrunc in
                     //   `flags` if cut; with MSG_TRUNC in arg: its full length)
    Close = 8,       // in: socket (the kernel sends it when the last handle goes)
    Poll = 9,        // in: poll[poll_count], arg = timeout ns -> sockets with revents != 0
    Shutdown = 10,   // in: socket, arg = SHUT_RD/SHUT_WR/SHUT_RDWR
    LocalName = 11,  // in: socket -> address (getsockname)
    PeerName = 12,   // in: socket -> address (getpeername); ENOTCONN
    GetError = 13,   // in: socket -> the pending error (SO_ERROR), cleared
    SetOption = 14,  // in: socket, option, arg = value (NetOption)
    GetOption = 15,  // in: socket, option -> value in `arg`
    SendTo = 16,     // in: socket (datagram), address, segments, length, arg = MSG_* flags -> bytes
};

// Socket options the service keeps (others are accepted and ignored by the
// runtime where Linux programs only tune performance with them).
enum class NetOption : u32 {
    ReuseAddress = 1, // SO_REUSEADDR (accepted, listeners are virtual)
    KeepAlive = 2,    // SO_KEEPALIVE
    NoDelay = 3,      // TCP_NODELAY
    ReceiveBuffer = 4,// SO_RCVBUF
    SendBuffer = 5,   // SO_SNDBUF
    Type = 6,         // SO_TYPE (get only)
    AcceptConn = 7,   // SO_ACCEPTCONN (get only)
};

inline constexpr u32 kFamilyUnix = 1;   // AF_UNIX: named stream sockets within the bundle
inline constexpr u32 kFamilyInet = 2;   // AF_INET
inline constexpr u32 kFamilyInet6 = 10; // AF_INET6
inline constexpr u32 kTypeStream = 1;   // SOCK_STREAM (TCP)
inline constexpr u32 kTypeDgram = 2;    // SOCK_DGRAM (UDP; kFamilyInet/kFamilyInet6 only)

inline constexpr u32 kMsgTrunc = 0x20;  // NetCall::flags after a Recv: the datagram was cut
inline constexpr u64 kMaxDatagram = 65507; // a larger Send/SendTo on a datagram socket: EMSGSIZE

// Poll events, as Linux's poll(2) bits.
inline constexpr u16 kPollIn = 0x001;
inline constexpr u16 kPollOut = 0x004;
inline constexpr u16 kPollErr = 0x008;
inline constexpr u16 kPollHup = 0x010;
inline constexpr u16 kPollRdHup = 0x2000;

struct NetAddress {
    u8 ip[16];    // IPv6, or ::ffff:a.b.c.d
    u16 port;     // host byte order
    u16 family;   // kFamilyInet or kFamilyInet6: how the program sees it
    u32 reserved;
};
static_assert(sizeof(NetAddress) == 24);

struct NetSegment {
    u64 addr; // runtime -> kernel: unused; kernel -> VMM: guest-physical address
    u64 len;
};

struct NetPollEntry {
    u32 socket;  // handle (runtime), socket id (VMM)
    u16 events;
    u16 revents; // out
};

inline constexpr u32 kMaxNetSegments = 32;    // a call moves at most kMaxNetData bytes
inline constexpr u64 kMaxNetData = 64 * 1024;
inline constexpr u32 kMaxNetPoll = 256;
inline constexpr u64 kMaxNetPollWaitNs = 50'000'000; // the VMM waits no longer per Poll

// One page, shared layout for both hops.
struct NetCall {
    u32 op;        // NetOp
    u32 subject;   // kernel -> VMM: the caller's label index in the compiled policy
    u32 socket;    // handle (runtime <-> kernel), socket id (kernel <-> VMM); Socket/Accept: out
    u32 family;    // Socket: kFamilyInet/kFamilyInet6
    u32 type;      // Socket: kTypeStream or kTypeDgram
    u32 option;    // SetOption/GetOption: NetOption
    u64 arg;       // see NetOp
    NetAddress address;
    u64 buffer;    // runtime -> kernel: Send/SendTo/Recv data in the caller's memory
    u64 length;    //   and its length (at most kMaxNetData; a datagram's whole size)
    u32 path_len;  // kFamilyUnix Bind/Connect: the name's bytes in path (an abstract
    char path[108];//   name starts with a 0 byte); names live in the VM's service only
    u32 segment_count; // kernel -> VMM: segments of `buffer`
    u32 poll_count;    // Poll: entries in poll[]
    u32 flags;         // out: Recv on a datagram socket: kMsgTrunc
    u32 reserved;
    NetSegment segments[kMaxNetSegments];
    NetPollEntry poll[kMaxNetPoll];
};
static_assert(sizeof(NetCall) <= 4096);

} // namespace kos::abi::net
