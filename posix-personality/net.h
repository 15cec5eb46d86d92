// Sockets of the personality: TCP and UDP over the VMM's network service
// (abi/kos/net.h), one kernel handle per socket. The kernel asks the policy
// about every connect and bind; the runtime turns Linux's socket calls into
// NetCalls (a datagram socket's sends and receives one datagram each, a
// send with an address a SendTo) and makes blocking calls wait (with the runtime lock dropped)
// until the service reports the socket ready.
#pragma once

#include "fs.h"

namespace kos::rt {

i64 sys_socket(int family, int type, int protocol);
i64 sys_socketpair(int family, int type, int protocol, u64 fds);
i64 sys_bind(int fd, u64 addr, u64 len);
i64 sys_listen(int fd, int backlog);
i64 sys_accept4(int fd, u64 addr, u64 lenp, int flags);
i64 sys_connect(int fd, u64 addr, u64 len);
i64 sys_sendto(int fd, u64 buf, u64 len, int flags, u64 addr, u64 alen);
i64 sys_recvfrom(int fd, u64 buf, u64 len, int flags, u64 addr, u64 alenp);
i64 sys_sendmsg(int fd, u64 msg, int flags);
i64 sys_recvmsg(int fd, u64 msg, int flags);
i64 sys_shutdown(int fd, int how);
i64 sys_sockname(int fd, u64 addr, u64 lenp, bool peer);
i64 sys_setsockopt(int fd, int level, int name, u64 val, u64 len);
i64 sys_getsockopt(int fd, int level, int name, u64 val, u64 lenp);

// For the descriptor layer (fs.cc): read/write on a socket, its poll
// events, and waiting until one of the sockets a poll just looked at is
// ready (or `deadline_ns`), instead of spinning.
i64 socket_read(int fd, u64 buf, u64 len);
i64 socket_write(int fd, u64 buf, u64 len);
short socket_ready(const Fd& f);
// Returns whether it waited; if not, the caller yields the CPU instead.
bool socket_wait_noted(u64 deadline_ns);
void socket_forget_noted();

} // namespace kos::rt
