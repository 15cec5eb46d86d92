#include "net.h"

#include "../arch/x86_64/platform.h"
#include "errno.h"
#include "kos/base/string.h"
#include "kos/net.h"
#include "security_hook.h"
#include "user_buffer.h"

namespace kos {
namespace {

namespace net = abi::net;
using abi::i64;
using abi::u32;
using abi::u64;

constexpr i64 kBadf = 9;
constexpr i64 kMfile = 24;
constexpr i64 kMsgSize = 90;
constexpr abi::u8 kProtoTcp = 6, kProtoUdp = 17;

struct NetSocket {
    KernelObject object; // first: handles point here
    u32 id = 0;          // the VMM's socket id; 0: slot free
    u32 type = 0;        // kTypeStream or kTypeDgram, as the VMM made it
};

constexpr u32 kMaxSockets = 1024;
NetSocket g_sockets[kMaxSockets];

// The page handed to the VMM: one call at a time (the kernel runs one call
// to completion on its one vCPU).
alignas(4096) net::NetCall g_call;

// The part of a NetCall before the segments: what the runtime sends and
// gets back (plus poll entries for Poll).
constexpr u64 kHeaderBytes = offsetof(net::NetCall, segments);

NetSocket* socket_of(KernelObject* o) { return reinterpret_cast<NetSocket*>(o); }

i64 lookup(Task& t, u32 handle, u32* id, u32* type = nullptr) {
    auto r = t.handles.get(handle, ObjectType::NetSocket, 0);
    if (r.is_error())
        return -kBadf;
    *id = socket_of((*r).object)->id;
    if (type)
        *type = socket_of((*r).object)->type;
    return 0;
}

// Closes the VMM's socket `id` (its last handle went, or none was made).
void close_in_vmm(u32 id) {
    memset(&g_call, 0, kHeaderBytes);
    g_call.op = static_cast<u32>(net::NetOp::Close);
    g_call.socket = id;
    platform::net_call(platform::kernel_virt_to_phys(&g_call));
}

// A new socket id from the VMM becomes a handle of the caller; the VMM's
// socket is closed again if the caller cannot hold it.
i64 adopt(Task& t, u32 id, u32 type) {
    NetSocket* s = nullptr;
    for (NetSocket& c : g_sockets)
        if (c.id == 0) {
            s = &c;
            break;
        }
    i64 result = -kMfile;
    if (s) {
        s->object = {ObjectType::NetSocket, 0};
        s->id = id;
        s->type = type;
        auto h = t.handles.insert(&s->object, ObjectType::NetSocket, kRightTransfer | kRightDuplicate);
        if (!h.is_error())
            return *h;
        s->id = 0;
        result = -h.error();
    }
    close_in_vmm(id);
    return result;
}

// The caller's buffer as guest-physical segments (pages faulted in as
// their mappings allow); EFAULT if any byte is not accessible. Returns the
// bytes the segments cover (fewer than `len` when they ran out).
i64 build_segments(Task& t, u64 va, u64 len, bool write) {
    static_assert(sizeof(net::NetSegment) == sizeof(PhysSegment));
    if (len > net::kMaxNetData)
        len = net::kMaxNetData;
    return user_segments(t, va, len, write, reinterpret_cast<PhysSegment*>(g_call.segments), net::kMaxNetSegments,
                         &g_call.segment_count);
}

} // namespace

void net_socket_released(KernelObject* object) {
    if (object->type != ObjectType::NetSocket || object->refcount != 0)
        return;
    NetSocket* s = socket_of(object);
    if (s->id == 0)
        return;
    u32 id = s->id;
    s->id = 0;
    close_in_vmm(id);
}

i64 net_call(Thread* self, u64 call_va) {
    Task& t = *self->task;
    if (!t.as.copy_in(call_va, &g_call, kHeaderBytes))
        return -err::kFault;
    auto op = static_cast<net::NetOp>(g_call.op);
    u32 handle = g_call.socket;
    u64 buffer = g_call.buffer;
    g_call.subject = t.policy_label;
    g_call.segment_count = 0;
    u32 polls = 0;
    switch (op) {
    case net::NetOp::Socket:
        break;
    case net::NetOp::Poll: {
        polls = g_call.poll_count;
        if (polls > net::kMaxNetPoll)
            return -err::kInval;
        if (!t.as.copy_in(call_va + offsetof(net::NetCall, poll), g_call.poll, polls * sizeof(net::NetPollEntry)))
            return -err::kFault;
        for (u32 i = 0; i < polls; ++i) {
            u32 id = 0;
            if (lookup(t, g_call.poll[i].socket, &id) < 0)
                return -kBadf;
            g_call.poll[i].socket = id;
            g_call.poll[i].revents = 0;
        }
        // Wait in the VMM only when nothing else here could run meanwhile.
        if (other_threads_runnable())
            g_call.arg = 0;
        break;
    }
    case net::NetOp::Connect:
    case net::NetOp::Bind:
    case net::NetOp::Listen:
    case net::NetOp::Accept:
    case net::NetOp::Send:
    case net::NetOp::SendTo:
    case net::NetOp::Recv:
    case net::NetOp::Shutdown:
    case net::NetOp::LocalName:
    case net::NetOp::PeerName:
    case net::NetOp::GetError:
    case net::NetOp::SetOption:
    case net::NetOp::GetOption: {
        u32 id = 0, type = 0;
        if (lookup(t, handle, &id, &type) < 0)
            return -kBadf;
        g_call.socket = id;
        bool dgram = type == net::kTypeDgram;
        // Every datagram's destination is a decision (nothing remembered).
        if (op == net::NetOp::SendTo ||
            ((op == net::NetOp::Connect || op == net::NetOp::Bind) && g_call.address.family != net::kFamilyUnix &&
             !(op == net::NetOp::Connect && dgram && g_call.address.family == 0))) {
            // A Unix name of the bundle is no network request, nor is a
            // datagram socket's AF_UNSPEC connect (it forgets its peer);
            // the VMM refuses such addresses where they do not belong.
            Verdict v = check_net(t, op != net::NetOp::Bind, g_call.address.ip, g_call.address.port,
                                  dgram ? kProtoUdp : kProtoTcp);
            if (!v.allow)
                return -err::kAccess;
        }
        if (op == net::NetOp::Send || op == net::NetOp::SendTo || op == net::NetOp::Recv) {
            i64 r = build_segments(t, buffer, g_call.length, op == net::NetOp::Recv);
            if (r < 0)
                return r;
            // A datagram goes whole or not at all.
            if (dgram && op != net::NetOp::Recv && static_cast<u64>(r) < g_call.length)
                return -kMsgSize;
        }
        break;
    }
    default:
        return -err::kInval; // Close goes with the last handle (handle_close)
    }
    i64 result = platform::net_call(platform::kernel_virt_to_phys(&g_call));
    if (result >= 0 && (op == net::NetOp::Socket || op == net::NetOp::Accept)) {
        i64 h = adopt(t, g_call.socket, op == net::NetOp::Socket ? g_call.type : net::kTypeStream);
        if (h < 0)
            return h;
        g_call.socket = static_cast<u32>(h);
        if (op == net::NetOp::Socket)
            result = h;
    } else {
        g_call.socket = handle;
    }
    // Back to the caller: the header (kernel-only fields cleared) and the
    // poll results.
    g_call.subject = 0;
    g_call.buffer = buffer;
    g_call.segment_count = 0;
    if (!t.as.copy_out(call_va, &g_call, kHeaderBytes))
        return -err::kFault;
    if (polls) {
        for (u32 i = 0; i < polls; ++i)
            g_call.poll[i].socket = 0;
        if (!t.as.copy_out(call_va + offsetof(net::NetCall, poll), g_call.poll, polls * sizeof(net::NetPollEntry)))
            return -err::kFault;
    }
    return result;
}

} // namespace kos
