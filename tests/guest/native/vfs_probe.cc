// A native client of the VFS server (the personality's, started from the
// kernel image as "kos:vfs"): what the server answers, and what the kernel
// refuses on its way there. Prints one line per check.
#include "kos/idl/vfs.h"
#include "kos/native.h"

namespace {

namespace F = kos::idl::vfs::File;

int failures = 0;
void check(bool ok, const char* what, kn::i64 got) {
    kn::printf("%s %s (%ld)\n", ok ? "ok" : "FAIL", what, got);
    failures += !ok;
}
constexpr kn::i64 kEnoent = -2, kEacces = -13, kEinval = -22, kEopnotsupp = -95;

kos::idl::Span text(const char* s) { return {reinterpret_cast<const kos::abi::u8*>(s), static_cast<kn::u32>(strlen(s))}; }

} // namespace

int main(const kn::NativeStartInfo* info) {
    kn::u32 vfs = kn::handle(info, "vfs");
    check(vfs != 0, "the init description gave a channel to the VFS server", vfs);
    kn::Channel channel{vfs};
    static F::Client<kn::Channel> client(channel);

    // The request passes the policy; the run has no volume, so the server's
    // open finds none.
    F::open::Response open_r{};
    kn::i64 r = client.open({text("/data/x"), 0, 0}, open_r);
    check(r == kEnoent, "an open the policy allows reaches the server (no volume: ENOENT)", r);
    F::stat::Response stat_r{};
    r = client.stat({text("/data/x"), true}, stat_r);
    check(r == kEnoent, "a stat reaches it too", r);
    // The policy judges the path: the rule allows /data only.
    r = client.open({text("/etc/passwd"), 0, 0}, open_r);
    check(r == kEacces, "an open of a path the policy does not name is denied before the server", r);

    // A server takes no handle from a client: the kernel refuses the
    // request (its handle table is not the clients' to fill).
    F::close::Response close_r{};
    r = client.close({vfs}, close_r);
    check(r == kEinval, "a request carrying a handle to the server is refused", r);
    // Calls on open files are the kernel's, not the server's.
    r = client.close({0}, close_r);
    check(r == kEopnotsupp, "the server answers a call on a file handle EOPNOTSUPP", r);

    kn::printf("vfs_probe: %d failures\n", failures);
    return failures;
}
