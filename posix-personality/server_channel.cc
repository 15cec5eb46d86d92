#include "server_channel.h"

#include "kos/base/string.h"
#include "native.h"

namespace kos::rt {

abi::i32 ServerChannel::call(const abi::ipc::MessageHeader& h, const u8* payload, u8* reply, u32 reply_cap,
                             abi::ipc::MessageHeader& reply_h) {
    if (*handle == 0)
        return no_server;
    if (h.payload_size > sizeof out - sizeof h)
        return -kENAMETOOLONG;
    memcpy(out, &h, sizeof h);
    memcpy(out + sizeof h, payload, h.payload_size);
    i64 n = native(Sys::ipc_call, *handle, reinterpret_cast<u64>(out), sizeof h + h.payload_size,
                   reinterpret_cast<u64>(in), sizeof in);
    if (n == -kEPIPE)
        return -kEIO; // the server ended
    if (n < 0)
        return static_cast<abi::i32>(n);
    if (static_cast<u64>(n) < sizeof reply_h)
        return -kEIO;
    memcpy(&reply_h, in, sizeof reply_h);
    if (reply_h.payload_size != static_cast<u64>(n) - sizeof reply_h || reply_h.payload_size > reply_cap)
        return -kEIO;
    memcpy(reply, in + sizeof reply_h, reply_h.payload_size);
    return 0;
}

} // namespace kos::rt
