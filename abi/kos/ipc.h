// Typed synchronous IPC: the message layout every channel carries.
//
// A message is a MessageHeader followed by its payload. The header names
// the interface and method (ids assigned by the IDL compiler), so the
// kernel's security hook and the security server judge typed requests, not
// bytes. A channel is declared in the init description for one interface;
// a request for another interface is refused before delivery.
#pragma once

#include "kos/types.h"

namespace kos::abi::ipc {

inline constexpr u32 kMaxMessage = 4096; // header + payload, requests and replies

struct MessageHeader {
    u32 interface_id;
    u32 method_id;
    u32 payload_size; // bytes following the header
    i32 status;       // replies: 0 or a negated errno from the server
};
static_assert(sizeof(MessageHeader) == 16);

// Filled by ipc_receive: who is calling, by the labels the init
// description gave (a task never chooses its own label).
struct ReceiveInfo {
    u32 sender_label;  // index into the init description's labels
    u32 sender_task;   // index of the task in the init description
    u32 interface_id;
    u32 method_id;
};
static_assert(sizeof(ReceiveInfo) == 16);

} // namespace kos::abi::ipc
