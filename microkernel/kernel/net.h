// Sockets: the kernel's side of the network (abi/kos/net.h). A socket is a
// kernel object holding the VMM network service's id for it; programs hold
// handles to it, so sockets are shared by fork and closed when the last
// handle goes, and a made-up or stale handle never reaches another socket.
// The kernel asks the policy about every connect and bind, and about each
// UDP datagram's destination (net.kidl, from the caller's label to `net_t`,
// proto 6 or 17 by the socket's type) before the VMM sees the call.
#pragma once

#include "handle_table.h"
#include "kos/types.h"
#include "task.h"

namespace kos {

// net_call (abi/kos/syscall.h): the NetCall at user address `call_va`.
abi::i64 net_call(Thread* self, abi::u64 call_va);

// A handle to a socket went away: the last one closes it in the VMM.
void net_socket_released(KernelObject* object);

} // namespace kos
