// The process server: signals between processes of different labels.
//
// A Linux process signals the processes of its own tree (its init process
// and everything forked from it, one label) through the kernel directly.
// A signal to a process of another label arrives here as a proc.Process
// request (abi/idl/proc.kidl) over the channel "proc": the kernel's
// security hook has judged `request DOMAIN -> proc_t proc.Process.kill{pid,
// signal}` against the policy; the server then asks the kernel to deliver
// it for that client, and the kernel asks `security CLIENT -> TARGET
// process.signal` about the target's label. The request says what (which
// signal), the label check says to whom.
#include "kos/idl/proc.h"
#include "servers.h"

namespace {

namespace P = kos::idl::proc::Process;
using kos::abi::i64;
using kos::abi::u32;
using kos::abi::u64;
using kos::abi::u8;

constexpr int32_t kEopnotsupp = 95;

struct Server {
    int32_t kill(const P::kill::Request& req, P::kill::Response&) {
        return static_cast<int32_t>(kn::sys(kn::Sys::process_kill_for_client, req.pid, req.signal));
    }
    // Processes start from the init description and by fork; waiting is
    // for one's own children, in the kernel.
    int32_t spawn(const P::spawn::Request&, P::spawn::Response&) { return -kEopnotsupp; }
    int32_t wait(const P::wait::Request&, P::wait::Response&) { return -kEopnotsupp; }
};

} // namespace

int proc_server_main(const kn::NativeStartInfo* info) {
    u32 h = kn::handle(info, "proc");
    if (!h) {
        kn::print("kos: process server: no channel 'proc' in its init description\n");
        return 1;
    }
    static Server server;
    i64 r = kn::serve(h, [](const kn::ipc::MessageHeader& req, const u8* payload, u8* reply, u32 cap,
                            kn::ipc::MessageHeader& reply_h) { P::dispatch(server, req, payload, reply, cap, reply_h); });
    kn::printf("kos: process server: receive failed: %ld\n", r);
    return 2;
}
