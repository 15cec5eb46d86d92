// The app of the IPC test bundle: exercises the native IPC API and the
// policy (ipc.kpol) against the echo server and prints one line per check
// (ATTACKS.md 18).
#include "kos/file.h"
#include "kos/idl/ipctest.h"
#include "kos/native.h"

namespace {

namespace E = kos::idl::ipctest::Echo;

int failures = 0;
void check(bool ok, const char* what, kn::i64 got) {
    kn::printf("%s %s (%ld)\n", ok ? "ok" : "FAIL", what, got);
    failures += !ok;
}
constexpr kn::i64 kEperm = -1, kEbadf = -9, kEacces = -13, kEpipe = -32;

kos::idl::Span text(const char* s) { return {reinterpret_cast<const kos::abi::u8*>(s), static_cast<kn::u32>(strlen(s))}; }

// A raw call, outside the generated code: any header and payload.
kn::i64 raw_call(kn::u32 h, kn::u32 interface_id, kn::u32 method, const void* payload, kn::u32 size) {
    alignas(8) kos::abi::u8 msg[256];
    alignas(8) kos::abi::u8 reply[kos::abi::ipc::kMaxMessage];
    kn::ipc::MessageHeader hdr{interface_id, method, size, 0};
    memcpy(msg, &hdr, sizeof hdr);
    memcpy(msg + sizeof hdr, payload, size);
    return kn::sys(kn::Sys::ipc_call, h, reinterpret_cast<kn::u64>(msg), sizeof hdr + size,
                   reinterpret_cast<kn::u64>(reply), sizeof reply);
}

} // namespace

int main(const kn::NativeStartInfo* info) {
    kn::u32 echo = kn::handle(info, "echo");
    check(echo != 0, "the init description gave a handle for channel 'echo'", echo);
    kn::Channel channel{echo};
    static E::Client<kn::Channel> client(channel);

    E::echo::Response er{};
    kn::i64 r = client.echo({text("hello kos")}, er);
    bool upper = r == 0 && er.data.size == 9 && memcmp(er.data.data, "HELLO KOS", 9) == 0;
    check(upper, "an allowed call gets the server's reply", r);

    // The policy judges typed fields: key and level of store.
    E::store::Response sr{};
    r = client.store({text("public/a"), 2}, sr);
    check(r == 0 && sr.stored == 20, "a store the policy allows succeeds", r);
    r = client.store({text("secret/a"), 2}, sr);
    check(r == kEacces, "a store of a key the policy does not allow is denied", r);
    r = client.store({text("public/a"), 4}, sr);
    check(r == kEacces, "a store above the allowed level is denied", r);
    r = client.store({text("public/audited"), 1}, sr);
    check(r == 0 && sr.stored == 10, "an audited store succeeds", r);
    // The server is an object manager: it asks the policy about its vault.
    r = client.store({text("public/locked"), 1}, sr);
    check(r == kEacces, "the object manager refuses what the policy does not allow on its object", r);
    // The reply is judged too: the server may not answer LEAK.
    r = client.echo({text("leak")}, er);
    check(r == kEacces, "a reply the policy denies does not reach the client", r);

    // A message that does not fit its layout: store's key descriptor points
    // past the payload.
    kn::u32 bad[4] = {16, 200, 1, 0};
    r = raw_call(echo, E::kInterfaceId, E::store::kId, bad, sizeof bad);
    check(r == kEacces, "a malformed message is denied", r);

    // A request for an interface the channel was not declared for.
    r = raw_call(echo, 99, 1, "x", 1);
    check(r == kEacces, "a call for another interface is denied", r);

    // Handles travel in messages: only with the transfer right, and they
    // come back as a new handle of this task to the same channel.
    E::pass::Response pr{};
    kn::i64 no_transfer = kn::sys(kn::Sys::handle_duplicate, echo, kos::abi::sys::kRightCall);
    r = client.pass({static_cast<kn::u32>(no_transfer)}, pr);
    check(r == kEperm, "a handle without the transfer right cannot be passed", r);
    r = client.pass({echo}, pr);
    check(r == 0 && pr.channel != 0 && pr.channel != echo, "a passed handle comes back as a new handle", pr.channel);
    kn::Channel passed{pr.channel};
    static E::Client<kn::Channel> via(passed);
    r = via.echo({text("via")}, er);
    check(r == 0 && er.data.size == 3 && memcmp(er.data.data, "VIA", 3) == 0,
          "the handle that went through the server still calls the channel", r);
    kn::sys(kn::Sys::handle_close, static_cast<kn::u64>(no_transfer));

    // Large payloads: 64 KiB lent with the call, read and written by the server.
    {
        static kos::abi::u8 big[64 * 1024];
        kn::u64 expect = 0;
        for (kn::u32 i = 0; i < sizeof big; ++i) {
            big[i] = static_cast<kos::abi::u8>(i % 251);
            expect += big[i];
        }
        kos::abi::sys::Grant ro{reinterpret_cast<kn::u64>(big), sizeof big, 0, 0};
        kos::abi::sys::Grant rw{reinterpret_cast<kn::u64>(big), sizeof big, kos::abi::sys::kGrantWrite, 0};
        kn::Channel lend{echo, &ro};
        static E::Client<kn::Channel> lender(lend);
        E::sum::Response sum{};
        r = lender.sum({sizeof big}, sum);
        check(r == 0 && sum.total == expect, "the server reads a 64 KiB grant", static_cast<kn::i64>(sum.total));
        r = lender.sum({sizeof big + 1}, sum);
        check(r == -14, "reading past the grant fails", r);
        E::fill::Response fr{};
        r = lender.fill({sizeof big, 0x5a}, fr);
        check(r == kEacces, "a read-only grant cannot be written", r);
        lend.grant = &rw;
        r = lender.fill({sizeof big, 0x5a}, fr);
        bool filled = r == 0;
        for (kn::u32 i = 0; i < sizeof big && filled; ++i)
            filled = big[i] == 0x5a;
        check(filled, "the server writes a writable grant", r);
        // Without a grant, the server has nothing to read.
        r = client.sum({16}, sum);
        check(r == -14, "a call without a grant lends nothing", r);
        // The IDL declares each method's grant: sum reads up to 64 KiB.
        r = lender.sum({16}, sum); // lend is read-write now
        check(r == kEacces, "a writable grant to a method that only reads one is refused", r);
        kos::abi::sys::Grant huge{reinterpret_cast<kn::u64>(big), 2 * sizeof big, 0, 0};
        lend.grant = &huge;
        r = lender.sum({16}, sum);
        check(r == kEacces, "a grant larger than the method declares is refused", r);
        lend.grant = &ro;
        E::echo::Response echoed{};
        r = lender.echo({text("lent")}, echoed);
        check(r == kEacces, "a grant to a method that declares none is refused", r);

        // The policy narrows what the IDL declares: peek may borrow at most
        // 4 KiB, read-only (ipc.kpol). The kernel passes the real grant.
        kn::u64 page_sum = 0;
        for (kn::u32 i = 0; i < 4096; ++i)
            page_sum += big[i];
        kos::abi::sys::Grant page{reinterpret_cast<kn::u64>(big), 4096, 0, 0};
        kos::abi::sys::Grant page_rw{reinterpret_cast<kn::u64>(big), 4096, kos::abi::sys::kGrantWrite, 0};
        E::peek::Response pk{};
        lend.grant = &page;
        r = lender.peek({4096}, pk);
        check(r == 0 && pk.total == page_sum, "the policy lets a 4 KiB read-only grant through",
              r == 0 ? static_cast<kn::i64>(pk.total) : r);
        lend.grant = &ro;
        r = lender.peek({16}, pk);
        check(r == kEacces, "the same call with a 64 KiB grant is denied by the policy", r);
        lend.grant = &page;
        pk.total = 0;
        r = lender.peek({4096}, pk);
        check(r == 0 && pk.total == page_sum, "the small grant still passes after the large one was denied",
              r == 0 ? static_cast<kn::i64>(pk.total) : r);
        lend.grant = &page_rw;
        r = lender.peek({16}, pk);
        check(r == kEacces, "a writable grant the policy does not allow is denied", r);
        lend.grant = &ro;
    }

    // Forged, undeclared and stale handles.
    r = raw_call(echo + 64, E::kInterfaceId, E::echo::kId, "x", 1);
    check(r == kEbadf, "a forged handle fails", r);
    r = raw_call(0, E::kInterfaceId, E::echo::kId, "x", 1);
    check(r == kEbadf, "an undeclared handle fails", r);

    // Rights only shrink: a duplicate without the call right cannot call,
    // and cannot be turned back into one that can.
    kn::i64 weak = kn::sys(kn::Sys::handle_duplicate, echo, kos::abi::sys::kRightTransfer);
    check(weak > 0, "a handle can be duplicated with fewer rights", weak);
    r = raw_call(static_cast<kn::u32>(weak), E::kInterfaceId, E::echo::kId, "x", 1);
    check(r == kEperm, "a handle with fewer rights cannot call", r);
    kn::i64 regain = kn::sys(kn::Sys::handle_duplicate, static_cast<kn::u64>(weak), kos::abi::sys::kRightCall);
    check(regain == kEperm, "rights cannot grow back", regain);
    check(kn::sys(kn::Sys::handle_close, static_cast<kn::u64>(weak)) == 0, "close", 0);
    r = raw_call(static_cast<kn::u32>(weak), E::kInterfaceId, E::echo::kId, "x", 1);
    check(r == kEbadf, "a closed handle is stale", r);

    // A client handle cannot receive.
    alignas(8) kos::abi::u8 m[64];
    kn::i64 rr = kn::sys(kn::Sys::ipc_receive, echo, reinterpret_cast<kn::u64>(m), sizeof m, 0);
    check(rr == kEbadf, "a client handle cannot receive", rr);

    // The personality servers' authority is theirs alone: a task that is
    // not the VFS server cannot have the kernel open a path in a labeled
    // volume (EPERM; ENOENT when the run has no volume at /data), and one
    // that is not the process server cannot signal for a client.
    static kos::abi::file::FileCall fc{};
    fc.op = static_cast<kn::u32>(kos::abi::file::FileOp::Open);
    memcpy(fc.path, "/data/x", 7);
    fc.path_len = 7;
    kn::i64 fr = kn::sys(kn::Sys::file_call, reinterpret_cast<kn::u64>(&fc));
    check(fr == kEperm || fr == -2, "only the VFS server opens paths of a labeled volume", fr);
    if (fr == kEperm)
        kn::print("ipc_client: volume path refused\n");
    kn::i64 kr = kn::sys(kn::Sys::process_kill_for_client, 1, 0);
    check(kr == kEperm, "only the process server signals for a client", kr);

    // The server crashes while handling a call: the caller gets EPIPE, and
    // so does every later call.
    E::crash::Response cr{};
    r = client.crash({}, cr);
    check(r == kEpipe, "a server crash is reported to its client", r);
    r = client.echo({text("again")}, er);
    check(r == kEpipe, "calls to a dead server fail", r);

    kn::printf("ipc_client: %d failures\n", failures);
    return failures;
}
