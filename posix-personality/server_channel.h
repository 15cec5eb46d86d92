// The runtime's side of a channel to a personality server: the transport
// of an IDL-generated Client (docs/idl.md), one ipc_call per message.
#pragma once

#include "kos/ipc.h"
#include "runtime.h"

namespace kos::rt {

struct ServerChannel {
    const u64* handle;    // RuntimeStartInfo's handle of the channel (0: none)
    abi::i32 no_server;   // the error when there is no such channel
    alignas(8) u8 out[abi::ipc::kMaxMessage] = {};
    alignas(8) u8 in[abi::ipc::kMaxMessage] = {};

    // 0 or a negated errno: the kernel's (EACCES: the policy denied the
    // request), the server's, EIO when the server ended or answered
    // something that is not a reply.
    abi::i32 call(const abi::ipc::MessageHeader& h, const u8* payload, u8* reply, u32 reply_cap,
                  abi::ipc::MessageHeader& reply_h);
};

// A client stub's result as the program sees it: a reply the stub cannot
// decode (EPROTO) is an I/O error.
inline i64 server_result(abi::i32 r) { return r == -kEPROTO ? -kEIO : r; }

} // namespace kos::rt
