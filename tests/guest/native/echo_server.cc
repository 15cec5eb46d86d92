// The native server of the IPC tests, on channel "echo" (ipctest.kidl,
// dispatched by the generated code): echo replies with the data in upper
// case, crash faults (the kernel kills this task and its clients get
// EPIPE), store answers level * 10. Also answers ipctest.Bench.
#include "kos/idl/ipctest.h"
#include "kos/native.h"

namespace {

namespace E = kos::idl::ipctest::Echo;
namespace B = kos::idl::ipctest::Bench;

struct Echo {
    kos::abi::u8 upper[1024];

    int32_t echo(const E::echo::Request& req, E::echo::Response& resp) {
        for (kn::u32 i = 0; i < req.data.size; ++i) {
            kos::abi::u8 c = req.data.data[i];
            upper[i] = (c >= 'a' && c <= 'z') ? static_cast<kos::abi::u8>(c - 32) : c;
        }
        resp.data = {upper, req.data.size};
        return 0;
    }
    int32_t crash(const E::crash::Request&, E::crash::Response&) { __builtin_trap(); }
    // The handle arrives as this task's own handle; it goes back the same way.
    int32_t pass(const E::pass::Request& req, E::pass::Response& resp) {
        resp.channel = req.channel;
        return 0;
    }
    // Large payloads through the caller's grant, a page at a time.
    static int32_t grant_sum(kn::u32 size, kn::u64& total) {
        static kos::abi::u8 page[4096];
        total = 0;
        for (kn::u32 done = 0; done < size;) {
            kn::u32 n = size - done < sizeof page ? size - done : sizeof page;
            kn::i64 r = kn::sys(kn::Sys::ipc_grant_read, done, reinterpret_cast<kn::u64>(page), n);
            if (r < 0)
                return static_cast<int32_t>(r);
            for (kn::u32 i = 0; i < n; ++i)
                total += page[i];
            done += n;
        }
        return 0;
    }
    int32_t sum(const E::sum::Request& req, E::sum::Response& resp) { return grant_sum(req.size, resp.total); }
    int32_t peek(const E::peek::Request& req, E::peek::Response& resp) { return grant_sum(req.size, resp.total); }
    int32_t fill(const E::fill::Request& req, E::fill::Response&) {
        static kos::abi::u8 page[4096];
        for (kn::u32 i = 0; i < sizeof page; ++i)
            page[i] = req.value;
        for (kn::u32 done = 0; done < req.size;) {
            kn::u32 n = req.size - done < sizeof page ? req.size - done : sizeof page;
            kn::i64 r = kn::sys(kn::Sys::ipc_grant_write, done, reinterpret_cast<kn::u64>(page), n);
            if (r < 0)
                return static_cast<int32_t>(r);
            done += n;
        }
        return 0;
    }

    // The vault is a labeled object this server manages: it asks the
    // policy whether the caller may write to it (or lock it) first.
    int32_t store(const E::store::Request& req, E::store::Response& resp) {
        using kos::abi::sys::SecurityName;
        bool lock = req.key.size >= 13 && memcmp(req.key.data, "public/locked", 13) == 0;
        kn::i64 vault = kn::security_id(SecurityName::Label, "vault_t");
        kn::i64 cls = kn::security_id(SecurityName::Class, "vault");
        kn::i64 perm = cls < 0 ? cls : kn::security_id(SecurityName::Permission, lock ? "lock" : "write",
                                                       static_cast<kn::u64>(cls));
        if (vault < 0 || perm < 0)
            return -22;
        kn::i64 ok = kn::sys(kn::Sys::security_query, kn::g_sender.sender_task, static_cast<kn::u64>(vault),
                             static_cast<kn::u64>(cls), static_cast<kn::u64>(perm));
        if (ok < 0)
            return static_cast<int32_t>(ok);
        resp.stored = req.level * 10;
        return 0;
    }
};

struct Bench {
    int32_t ping(const B::ping::Request&, B::ping::Response&) { return 0; }
    int32_t ping_checked(const B::ping_checked::Request&, B::ping_checked::Response&) { return 0; }
};

} // namespace

int main(const kn::NativeStartInfo* info) {
    kn::u32 h = kn::handle(info, "echo");
    if (!h)
        h = kn::handle(info, "bench");
    if (!h) {
        kn::print("echo_server: no 'echo' or 'bench' channel\n");
        return 1;
    }
    static Echo echo;
    static Bench bench;
    kn::i64 r = kn::serve(h, [](const kn::ipc::MessageHeader& req, const kos::abi::u8* payload, kos::abi::u8* reply,
                                kn::u32 cap, kn::ipc::MessageHeader& reply_h) {
        if (req.interface_id == B::kInterfaceId)
            B::dispatch(bench, req, payload, reply, cap, reply_h);
        else
            E::dispatch(echo, req, payload, reply, cap, reply_h);
    });
    kn::printf("echo_server: receive failed: %ld\n", r);
    return 2;
}
