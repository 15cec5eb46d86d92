// A native server on channel "echo" (interface 7): method 1 replies with the
// payload in upper case; method 2 crashes the server (a fault kills it, and
// its clients must get EPIPE).
#include "kos_native.h"

int main(const kn::NativeStartInfo* info) {
    kn::u32 h = kn::handle(info, "echo");
    if (!h) {
        kn::print("echo_server: no 'echo' channel\n");
        return 1;
    }
    for (;;) {
        kn::Message m{};
        kos::abi::ipc::ReceiveInfo who{};
        kn::i64 n = kn::sys(kn::Sys::ipc_receive, h, reinterpret_cast<kn::u64>(&m), sizeof m,
                            reinterpret_cast<kn::u64>(&who));
        if (n < 0) {
            kn::printf("echo_server: receive failed: %ld\n", n);
            return 2;
        }
        if (m.header.method_id == 2)
            __builtin_trap(); // ud2: the kernel kills this task
        kn::Message r{};
        r.header = m.header;
        r.header.status = 0;
        for (kn::u32 i = 0; i < m.header.payload_size; ++i) {
            char c = m.payload[i];
            r.payload[i] = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
        }
        kn::sys(kn::Sys::ipc_reply, reinterpret_cast<kn::u64>(&r),
                sizeof(kos::abi::ipc::MessageHeader) + r.header.payload_size);
    }
}
