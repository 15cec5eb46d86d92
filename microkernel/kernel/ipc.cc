#include "ipc.h"

#include "errno.h"
#include "kos/base/string.h"
#include "kos/ipc.h"
#include "object_pool.h"
#include "pmm.h"
#include "panic.h"
#include "security_hook.h"

namespace kos {
namespace {

using abi::i64;
using abi::u32;
using abi::u64;
namespace ipc = abi::ipc;

constexpr i64 kEpipe = 32, kEmsgsize = 90, kEbusy = 16;
constexpr u32 kMaxChannels = 256;

Channel g_channels[kMaxChannels];
u32 g_channel_count = 0;

bool copy_user(Task* task, u64 va, void* kernel, u64 len, bool to_user) {
    return to_user ? task->as.copy_out(va, kernel, len) : task->as.copy_in(va, kernel, len);
}

void* msg_of(Thread* t) { return pmm::phys_to_virt(t->msg_pa); }

// What a handle field may carry besides a channel's client end; these move
// with a reply (channel handles are copied).
constexpr ObjectType kMovingTypes[] = {ObjectType::VolumeFile, ObjectType::PipeRead, ObjectType::PipeWrite};

// Sets the result a blocked thread sees when it runs again.
void wake(Thread* t, i64 result) {
    if (t->state == ThreadState::Dead || t->task->dead)
        return;
    t->frame.rax = static_cast<u64>(result);
    t->channel = nullptr;
    make_runnable(t);
}

// Passes the handles a message carries (its `handle` fields, by the IDL
// layout) from `from` to `to`: each non-zero value must be a handle of
// `from` with the transfer right, of a channel's client end, of a volume
// file (what the VFS server opened for its client) or of a pipe's end (what
// the pipe server hands out); `to` gets a handle to
// the same object with the same rights (never more), and the field is
// rewritten to it. The sender keeps a channel handle; a volume file or pipe
// end in a reply moves (the server that opened it keeps no copy, so the
// client's last close is the object's). 0, or a negated errno with nothing
// transferred. The personality servers take no handles from
// their clients (they would fill the server's handle table): a request to
// one that carries a handle is EINVAL.
i64 transfer_handles(bool request, void* msg, Task* from, Task* to) {
    auto* h = static_cast<ipc::MessageHeader*>(msg);
    if (!request && h->status != 0)
        return 0; // an error reply carries no fields
    constexpr u32 kMax = 16;
    u32 offsets[kMax];
    u32 n = handle_field_offsets(request, *h, offsets, kMax);
    auto* payload = reinterpret_cast<abi::u8*>(h + 1);
    HandleEntry entries[kMax] = {};
    for (u32 i = 0; i < n; ++i) {
        if (u64{offsets[i]} + 4 > h->payload_size)
            return -err::kInval;
        u32 value;
        memcpy(&value, payload + offsets[i], 4);
        if (value == kInvalidHandle)
            continue;
        if (request && to->server != PersonalityServer::None)
            return -err::kInval;
        auto e = from->handles.get(value, ObjectType::ChannelClient, kRightTransfer);
        for (ObjectType other : kMovingTypes)
            if (e.is_error() && e.error() != 1) // not of this type
                e = from->handles.get(value, other, kRightTransfer);
        if (e.is_error())
            return -e.error();
        entries[i] = *e;
    }
    Handle given[kMax] = {};
    for (u32 i = 0; i < n; ++i) {
        if (!entries[i].object)
            continue;
        auto nh = to->handles.insert(entries[i].object, entries[i].type, entries[i].rights);
        if (nh.is_error()) {
            for (u32 j = 0; j < i; ++j)
                if (given[j])
                    (void)to->handles.remove(given[j]);
            return -nh.error();
        }
        given[i] = *nh;
    }
    for (u32 i = 0; i < n; ++i)
        if (given[i]) {
            if (!request && entries[i].type != ObjectType::ChannelClient) {
                u32 value;
                memcpy(&value, payload + offsets[i], 4);
                (void)from->handles.remove(value);
            }
            memcpy(payload + offsets[i], &given[i], 4);
        }
    return 0;
}

// Hands `client`'s pending request to `server` (blocked or calling
// receive now). Returns the server's result: the message size or an error.
i64 deliver(Channel* ch, Thread* client, Thread* server) {
    if (client->msg_size > server->recv_cap) {
        wake(client, -kEmsgsize);
        return -kEmsgsize;
    }
    ipc::ReceiveInfo info{};
    info.sender_label = client->task->label;
    info.sender_task = client->task->index;
    const auto* h = static_cast<const ipc::MessageHeader*>(msg_of(client));
    info.interface_id = h->interface_id;
    info.method_id = h->method_id;
    if (!copy_user(server->task, server->recv_buf, msg_of(client), client->msg_size, true) ||
        (server->recv_info && !copy_user(server->task, server->recv_info, &info, sizeof info, true))) {
        wake(client, -kEpipe);
        return -err::kFault;
    }
    client->state = ThreadState::BlockedReply;
    client->channel = ch;
    server->reply_to = client;
    server->reply_channel = ch;
    return client->msg_size;
}

// A reply that does not reach its client: the volume files and pipe ends
// it would have moved are closed (their server keeps no copy of them).
void drop_moving_handles(void* msg, Task* server) {
    auto* h = static_cast<ipc::MessageHeader*>(msg);
    if (h->status != 0)
        return;
    constexpr u32 kMax = 16;
    u32 offsets[kMax];
    u32 n = handle_field_offsets(false, *h, offsets, kMax);
    const auto* payload = reinterpret_cast<const abi::u8*>(h + 1);
    for (u32 i = 0; i < n; ++i) {
        if (u64{offsets[i]} + 4 > h->payload_size)
            continue;
        u32 value;
        memcpy(&value, payload + offsets[i], 4);
        for (ObjectType type : kMovingTypes)
            if (!server->handles.get(value, type, 0).is_error()) {
                auto r = server->handles.remove(value);
                if (!r.is_error())
                    handle_released((*r).object);
                break;
            }
    }
}

Thread* dequeue(Channel* ch) {
    while (Thread* t = ch->send_head) {
        ch->send_head = t->next;
        if (!ch->send_head)
            ch->send_tail = nullptr;
        t->next = nullptr;
        if (t->state == ThreadState::BlockedSend && !t->task->dead)
            return t;
    }
    return nullptr;
}

} // namespace

Channel* alloc_channel() {
    if (g_channel_count == kMaxChannels)
        return nullptr;
    return &g_channels[g_channel_count++];
}

i64 ipc_call(Thread* self, u64 handle, u64 req, u64 req_size, u64 reply, u64 reply_cap) {
    Task* t = self->task;
    auto e = t->handles.get(static_cast<Handle>(handle), ObjectType::ChannelClient, kRightCall);
    if (e.is_error() || handle > 0xffffffffu) {
        audit_denied("call on an undeclared, closed or insufficient handle", *t, nullptr, nullptr,
                     nullptr, Verdict{false, true, e.error() == 1 ? "handle-rights" : "handle-unknown", 0});
        return e.is_error() ? -e.error() : -9;
    }
    auto* ch = static_cast<Channel*>((*e).object);
    if (req_size < sizeof(ipc::MessageHeader) || req_size > ipc::kMaxMessage ||
        reply_cap > ipc::kMaxMessage)
        return -err::kInval;
    if (!copy_user(t, req, msg_of(self), req_size, false))
        return -err::kFault;
    const auto* h = static_cast<const ipc::MessageHeader*>(msg_of(self));
    if (h->payload_size != req_size - sizeof(ipc::MessageHeader))
        return -err::kInval;
    // The grant (if any) is part of the question: its declaration, then the policy.
    Verdict v = check_request(*t, *ch, *h, self->grant_size, self->grant_write);
    if (!v.allow) {
        ++ch->denied;
        audit_denied("request", *t, ch->server, ch, h, v);
        return -err::kAccess;
    }
    ++ch->calls;
    if (ch->server_dead)
        return -kEpipe;
    if (i64 r = transfer_handles(true, msg_of(self), t, ch->server); r < 0)
        return r;
    self->msg_size = static_cast<u32>(req_size);
    self->reply_buf = reply;
    self->reply_cap = reply_cap;
    self->channel = ch;
    if (Thread* server = ch->receiver) {
        ch->receiver = nullptr;
        i64 r = deliver(ch, self, server);
        wake(server, r);
        return kBlocked;
    }
    self->state = ThreadState::BlockedSend;
    self->next = nullptr;
    if (ch->send_tail)
        ch->send_tail->next = self;
    else
        ch->send_head = self;
    ch->send_tail = self;
    return kBlocked;
}

i64 ipc_call_grant(Thread* self, u64 handle, u64 req, u64 req_size, u64 reply, u64 reply_cap, u64 grant) {
    abi::sys::Grant g{};
    if (!copy_user(self->task, grant, &g, sizeof g, false))
        return -err::kFault;
    if (g.size > abi::sys::kMaxGrant || g.addr >= abi::sys::kUserTop || g.size > abi::sys::kUserTop - g.addr ||
        (g.flags & ~abi::sys::kGrantWrite) || g.reserved)
        return -err::kInval;
    self->grant_addr = g.addr;
    self->grant_size = g.size;
    self->grant_write = (g.flags & abi::sys::kGrantWrite) != 0;
    i64 r = ipc_call(self, handle, req, req_size, reply, reply_cap);
    if (r != kBlocked) // refused before anything was queued: no grant outstanding
        self->grant_size = 0;
    return r;
}

// Copies between the server's buffer and the grant of the call it serves,
// through a kernel bounce buffer, a page at a time.
i64 ipc_grant_copy(Thread* self, u64 offset, u64 buf, u64 len, bool write) {
    Thread* client = self->reply_to;
    if (!client)
        return -err::kInval;
    if (client->task->dead)
        return -kEpipe;
    if (offset > client->grant_size || len > client->grant_size - offset)
        return -err::kFault;
    if (write && !client->grant_write)
        return -err::kAccess;
    static abi::u8 bounce[4096];
    u64 done = 0;
    while (done < len) {
        u64 n = len - done < sizeof bounce ? len - done : sizeof bounce;
        bool ok = write ? copy_user(self->task, buf + done, bounce, n, false) &&
                              copy_user(client->task, client->grant_addr + offset + done, bounce, n, true)
                        : copy_user(client->task, client->grant_addr + offset + done, bounce, n, false) &&
                              copy_user(self->task, buf + done, bounce, n, true);
        if (!ok)
            return -err::kFault;
        done += n;
    }
    return static_cast<i64>(done);
}

i64 ipc_receive(Thread* self, u64 handle, u64 buf, u64 cap, u64 info) {
    Task* t = self->task;
    auto e = t->handles.get(static_cast<Handle>(handle), ObjectType::ChannelServer, kRightReceive);
    if (e.is_error() || handle > 0xffffffffu)
        return e.is_error() ? -e.error() : -9;
    if (self->reply_to)
        return -kEbusy; // reply to the pending call first
    auto* ch = static_cast<Channel*>((*e).object);
    self->recv_buf = buf;
    self->recv_cap = cap;
    self->recv_info = info;
    if (Thread* client = dequeue(ch))
        return deliver(ch, client, self);
    ch->receiver = self;
    self->state = ThreadState::BlockedReceive;
    self->channel = ch;
    return kBlocked;
}

i64 ipc_reply(Thread* self, u64 reply, u64 size) {
    Thread* client = self->reply_to;
    Channel* ch = self->reply_channel;
    if (!client)
        return -err::kInval;
    if (size < sizeof(ipc::MessageHeader) || size > ipc::kMaxMessage)
        return -err::kInval;
    if (!copy_user(self->task, reply, msg_of(self), size, false))
        return -err::kFault;
    const auto* h = static_cast<const ipc::MessageHeader*>(msg_of(self));
    if (h->payload_size != size - sizeof(ipc::MessageHeader))
        return -err::kInval;
    self->reply_to = nullptr;
    self->reply_channel = nullptr;
    client->grant_size = 0; // the grant ends with the call
    Verdict v = check_response(*self->task, *client->task, *ch, *h);
    if (!v.allow) {
        audit_denied("response", *self->task, client->task, ch, h, v);
        drop_moving_handles(msg_of(self), self->task);
        wake(client, -err::kAccess);
        return -err::kAccess;
    }
    if (client->task->dead) {
        drop_moving_handles(msg_of(self), self->task);
        return 0;
    }
    if (size > client->reply_cap) {
        drop_moving_handles(msg_of(self), self->task);
        wake(client, -kEmsgsize);
        return 0;
    }
    if (i64 r = transfer_handles(false, msg_of(self), self->task, client->task); r < 0) {
        drop_moving_handles(msg_of(self), self->task);
        wake(client, r);
        return r;
    }
    if (!copy_user(client->task, client->reply_buf, msg_of(self), size, true)) {
        wake(client, -err::kFault);
        return 0;
    }
    wake(client, static_cast<i64>(size));
    return 0;
}

void ipc_print_stats() {
    for (u32 i = 0; i < g_channel_count; ++i) {
        const Channel& ch = g_channels[i];
        if (ch.calls || ch.denied)
            kprintf("kos kernel: channel %s to %s (%s): %lu requests, %lu denied\n", ch.name, ch.server->name,
                    ch.server->label_name, ch.calls, ch.denied);
    }
}

void ipc_task_died(Task* task) {
    for (u32 i = 0; i < g_channel_count; ++i) {
        Channel* ch = &g_channels[i];
        if (ch->server != task)
            continue;
        ch->server_dead = true;
        ch->receiver = nullptr;
        while (Thread* c = dequeue(ch))
            wake(c, -kEpipe);
    }
    // A call the dead task had received but not answered.
    if (Thread* t = task->thread; t && t->reply_to) {
        wake(t->reply_to, -kEpipe);
        t->reply_to = nullptr;
    }
}

} // namespace kos
