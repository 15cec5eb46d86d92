// A minimal runtime for native kos programs (the VFS server, the IPC test
// programs): system call wrappers (abi/kos/syscall.h), console output, IPC
// client and server loops for IDL-generated code. The entry is
// abi/native/start.cc, the layout abi/native/native.ld (library
// kos_native_start).
#pragma once

#include "kos/base/format.h"
#include "kos/base/string.h"
#include "kos/ipc.h"
#include "kos/syscall.h"

namespace kn {

using kos::abi::i64;
using kos::abi::u32;
using kos::abi::u64;
using kos::abi::sys::NativeStartInfo;
using kos::abi::sys::Sys;
namespace ipc = kos::abi::ipc;

inline i64 sys(Sys n, u64 a0 = 0, u64 a1 = 0, u64 a2 = 0, u64 a3 = 0, u64 a4 = 0, u64 a5 = 0) {
    i64 ret;
    register u64 r10 asm("r10") = a3;
    register u64 r8 asm("r8") = a4;
    register u64 r9 asm("r9") = a5;
    asm volatile("syscall"
                 : "=a"(ret)
                 : "a"(static_cast<u64>(n)), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8), "r"(r9)
                 : "rcx", "r11", "memory");
    return ret;
}

inline void print(const char* s) {
    sys(Sys::console_write, 1, reinterpret_cast<u64>(s), strlen(s));
}

__attribute__((format(printf, 1, 2))) inline void printf(const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    u64 n = kos::vformat(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sys(Sys::console_write, 1, reinterpret_cast<u64>(buf), n < sizeof buf ? n : sizeof buf - 1);
}

[[noreturn]] inline void exit(int status) {
    sys(Sys::exit, 0, static_cast<u64>(status));
    for (;;) {
    }
}

// The handle the init description gave this task for channel `name`.
inline u32 handle(const NativeStartInfo* info, const char* name) {
    for (u32 i = 0; i < info->handle_count; ++i)
        if (strcmp(info->handles[i].name, name) == 0)
            return info->handles[i].handle;
    return 0;
}

// A message: header + payload, as the IDL's generated layouts are.
struct Message {
    ipc::MessageHeader header;
    char payload[256];
};

inline i64 call(u32 h, u32 interface_id, u32 method, const char* text, Message* reply) {
    Message m{};
    m.header.interface_id = interface_id;
    m.header.method_id = method;
    m.header.payload_size = static_cast<u32>(strlen(text));
    memcpy(m.payload, text, m.header.payload_size);
    return sys(Sys::ipc_call, h, reinterpret_cast<u64>(&m), sizeof(ipc::MessageHeader) + m.header.payload_size,
               reinterpret_cast<u64>(reply), sizeof *reply);
}

// Object managers: an id of the loaded policy by name (negative errno if none).
inline i64 security_id(kos::abi::sys::SecurityName what, const char* name, u64 cls = 0) {
    return sys(Sys::security_resolve, static_cast<u64>(what), reinterpret_cast<u64>(name), strlen(name), cls);
}

// A channel as the transport of an IDL-generated Client (docs/idl.md):
// one ipc_call per message.
struct Channel {
    u32 handle;
    const kos::abi::sys::Grant* grant = nullptr; // lent with every call while set

    kos::abi::i32 call(const ipc::MessageHeader& h, const kos::abi::u8* payload, kos::abi::u8* reply,
                       u32 reply_cap, ipc::MessageHeader& reply_h) {
        alignas(8) kos::abi::u8 out[ipc::kMaxMessage];
        alignas(8) kos::abi::u8 in[ipc::kMaxMessage];
        if (h.payload_size > sizeof out - sizeof h)
            return -90; // EMSGSIZE
        memcpy(out, &h, sizeof h);
        memcpy(out + sizeof h, payload, h.payload_size);
        i64 n = grant ? sys(Sys::ipc_call_grant, handle, reinterpret_cast<u64>(out), sizeof h + h.payload_size,
                            reinterpret_cast<u64>(in), sizeof in, reinterpret_cast<u64>(grant))
                      : sys(Sys::ipc_call, handle, reinterpret_cast<u64>(out), sizeof h + h.payload_size,
                            reinterpret_cast<u64>(in), sizeof in);
        if (n < 0)
            return static_cast<kos::abi::i32>(n);
        if (static_cast<u64>(n) < sizeof reply_h)
            return -71; // EPROTO
        memcpy(&reply_h, in, sizeof reply_h);
        if (reply_h.payload_size != static_cast<u64>(n) - sizeof reply_h || reply_h.payload_size > reply_cap)
            return -71;
        memcpy(reply, in + sizeof reply_h, reply_h.payload_size);
        return 0;
    }
};

// Who sent the request being served (set by serve before dispatching).
inline ipc::ReceiveInfo g_sender{};

// Serves one channel with an IDL-generated dispatch: receive, dispatch to
// `handler`, reply and receive the next request in one call; forever
// (returns only when receiving fails).
template <class Dispatch> i64 serve(u32 h, Dispatch dispatch) {
    alignas(8) static kos::abi::u8 in[ipc::kMaxMessage];
    alignas(8) static kos::abi::u8 out[ipc::kMaxMessage];
    i64 n = sys(Sys::ipc_receive, h, reinterpret_cast<u64>(in), sizeof in, reinterpret_cast<u64>(&g_sender));
    for (;;) {
        if (n < 0)
            return n;
        ipc::MessageHeader req;
        memcpy(&req, in, sizeof req);
        ipc::MessageHeader reply{};
        dispatch(req, in + sizeof req, out + sizeof reply, static_cast<u32>(sizeof out - sizeof reply), reply);
        memcpy(out, &reply, sizeof reply);
        n = sys(Sys::ipc_reply_receive, reinterpret_cast<u64>(out), sizeof reply + reply.payload_size, h,
                reinterpret_cast<u64>(in), sizeof in, reinterpret_cast<u64>(&g_sender));
    }
}

} // namespace kn

int main(const kn::NativeStartInfo* info);
