// IPC benchmark server: answers every request on channel "bench" with an
// empty reply.
#include "kos_native.h"

int main(const kn::NativeStartInfo* info) {
    kn::u32 h = kn::handle(info, "bench");
    for (;;) {
        kn::Message m{};
        if (kn::sys(kn::Sys::ipc_receive, h, reinterpret_cast<kn::u64>(&m), sizeof m, 0) < 0)
            return 1;
        kn::ipc::MessageHeader r{m.header.interface_id, m.header.method_id, 0, 0};
        kn::sys(kn::Sys::ipc_reply, reinterpret_cast<kn::u64>(&r), sizeof r);
    }
}
