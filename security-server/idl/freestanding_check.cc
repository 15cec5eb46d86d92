// Compiled with the guest's freestanding flags (kos_guest_library): every
// generated header of abi/idl, with the client stubs and dispatch functions
// instantiated, must build without any hosted header or runtime.
#include "kos/idl/door.h"
#include "kos/idl/net.h"
#include "kos/idl/pipe.h"
#include "kos/idl/proc.h"
#include "kos/idl/test.h"
#include "kos/idl/vfs.h"

namespace {

struct NullTransport {
    int32_t call(const kos::abi::ipc::MessageHeader&, const uint8_t*, uint8_t*, uint32_t,
                 kos::abi::ipc::MessageHeader&) {
        return -38;
    }
};

struct EchoHandler {
    int32_t echo(const kos::idl::test::Echo::echo::Request& req,
                 kos::idl::test::Echo::echo::Response& resp) {
        resp.data = req.data;
        return 0;
    }
};

struct DoorHandler {
    int32_t open(const kos::idl::door::Door::open::Request&,
                 kos::idl::door::Door::open::Response&) {
        return 0;
    }
    int32_t close(const kos::idl::door::Door::close::Request&,
                  kos::idl::door::Door::close::Response&) {
        return 0;
    }
    int32_t pass(const kos::idl::door::Door::pass::Request&,
                 kos::idl::door::Door::pass::Response&) {
        return 0;
    }
};

} // namespace

template class kos::idl::vfs::File::Client<NullTransport>;
template class kos::idl::net::Socket::Client<NullTransport>;
template class kos::idl::proc::Process::Client<NullTransport>;
template class kos::idl::door::Door::Client<NullTransport>;
template class kos::idl::test::Echo::Client<NullTransport>;

int32_t kos_idl_check_echo_dispatch(const kos::abi::ipc::MessageHeader& h, const uint8_t* payload,
                                    uint8_t* reply, uint32_t cap,
                                    kos::abi::ipc::MessageHeader& reply_h) {
    EchoHandler handler;
    return kos::idl::test::Echo::dispatch(handler, h, payload, reply, cap, reply_h);
}

int32_t kos_idl_check_door_dispatch(const kos::abi::ipc::MessageHeader& h, const uint8_t* payload,
                                    uint8_t* reply, uint32_t cap,
                                    kos::abi::ipc::MessageHeader& reply_h) {
    DoorHandler handler;
    return kos::idl::door::Door::dispatch(handler, h, payload, reply, cap, reply_h);
}

bool kos_idl_check_vfs_decode(const uint8_t* payload, uint32_t size) {
    kos::idl::vfs::File::readdir::Response r;
    return kos::idl::vfs::File::decode(payload, size, r);
}
