// The app of the IPC test bundle: exercises the native IPC API against the
// echo server and prints one line per check (ATTACKS.md 18).
#include "kos_native.h"

namespace {
int failures = 0;
void check(bool ok, const char* what, kn::i64 got) {
    kn::printf("%s %s (%ld)\n", ok ? "ok" : "FAIL", what, got);
    failures += !ok;
}
constexpr kn::i64 kEperm = -1, kEbadf = -9, kEacces = -13, kEpipe = -32;
constexpr kn::u32 kEcho = 7;
} // namespace

int main(const kn::NativeStartInfo* info) {
    kn::u32 echo = kn::handle(info, "echo");
    check(echo != 0, "the init description gave a handle for channel 'echo'", echo);

    kn::Message reply{};
    kn::i64 r = kn::call(echo, kEcho, 1, "hello kos", &reply);
    bool upper = r == 16 + 9 && memcmp(reply.payload, "HELLO KOS", 9) == 0;
    check(upper, "an allowed call gets the server's reply", r);

    // A request for an interface the channel was not declared for.
    r = kn::call(echo, 99, 1, "x", &reply);
    check(r == kEacces, "a call for another interface is denied", r);

    // Forged, undeclared and stale handles.
    r = kn::call(echo + 64, kEcho, 1, "x", &reply);
    check(r == kEbadf, "a forged handle fails", r);
    r = kn::call(0, kEcho, 1, "x", &reply);
    check(r == kEbadf, "an undeclared handle fails", r);

    // Rights only shrink: a duplicate without the call right cannot call,
    // and cannot be turned back into one that can.
    kn::i64 weak = kn::sys(kn::Sys::handle_duplicate, echo, kos::abi::sys::kRightTransfer);
    check(weak > 0, "a handle can be duplicated with fewer rights", weak);
    r = kn::call(static_cast<kn::u32>(weak), kEcho, 1, "x", &reply);
    check(r == kEperm, "a handle with fewer rights cannot call", r);
    kn::i64 regain = kn::sys(kn::Sys::handle_duplicate, static_cast<kn::u64>(weak), kos::abi::sys::kRightCall);
    check(regain == kEperm, "rights cannot grow back", regain);
    check(kn::sys(kn::Sys::handle_close, static_cast<kn::u64>(weak)) == 0, "close", 0);
    r = kn::call(static_cast<kn::u32>(weak), kEcho, 1, "x", &reply);
    check(r == kEbadf, "a closed handle is stale", r);

    // A client handle cannot receive.
    kn::Message m{};
    kn::i64 rr = kn::sys(kn::Sys::ipc_receive, echo, reinterpret_cast<kn::u64>(&m), sizeof m, 0);
    check(rr == kEbadf, "a client handle cannot receive", rr);

    // The server crashes while handling a call: the caller gets EPIPE, and
    // so does every later call.
    r = kn::call(echo, kEcho, 2, "crash", &reply);
    check(r == kEpipe, "a server crash is reported to its client", r);
    r = kn::call(echo, kEcho, 1, "again", &reply);
    check(r == kEpipe, "calls to a dead server fail", r);

    kn::printf("ipc_client: %d failures\n", failures);
    return failures;
}
