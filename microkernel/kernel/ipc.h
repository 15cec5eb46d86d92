// Channels and synchronous typed IPC (call / receive / reply).
//
// Every channel is declared in the init description with its client task,
// its server task and the one interface it carries; tasks cannot create
// channels. Each request and each reply passes the security hook before it
// is delivered (complete mediation); a denied request returns EACCES to the
// sender and is reported.
#pragma once

#include "handle_table.h"
#include "kos/types.h"
#include "task.h"

namespace kos {

struct Channel : KernelObject {
    const char* name = "";
    abi::u32 interface_id = 0;
    Task* client = nullptr;       // the first declared client
    // Every declared client: bit i is process i of the init description.
    // Channels declared with the same name, server and interface are one
    // channel with several clients (each Linux process's channel to a
    // personality server); the server receives them all on one handle.
    abi::u64 clients = 0;
    Task* server = nullptr;
    Thread* receiver = nullptr;   // server thread blocked in receive
    Thread* send_head = nullptr;  // clients waiting for the server
    Thread* send_tail = nullptr;
    bool server_dead = false;
    abi::u64 calls = 0;  // requests delivered (kos run --stats)
    abi::u64 denied = 0; // requests the security hook refused
};

Channel* alloc_channel();

// Native calls. Each returns the value for the caller's rax, or kBlocked
// (task.h) when the caller now waits (the scheduler then runs another
// thread).
abi::i64 ipc_call(Thread* self, abi::u64 handle, abi::u64 req, abi::u64 req_size, abi::u64 reply,
                  abi::u64 reply_cap);
abi::i64 ipc_receive(Thread* self, abi::u64 handle, abi::u64 buf, abi::u64 cap, abi::u64 info);
abi::i64 ipc_reply(Thread* self, abi::u64 reply, abi::u64 size);
// ipc_call with a Grant (abi/kos/syscall.h); the server's access to it.
abi::i64 ipc_call_grant(Thread* self, abi::u64 handle, abi::u64 req, abi::u64 req_size, abi::u64 reply,
                        abi::u64 reply_cap, abi::u64 grant);
abi::i64 ipc_grant_copy(Thread* self, abi::u64 offset, abi::u64 buf, abi::u64 len, bool write);

// A task ended: fail everything waiting on its channels.
void ipc_task_died(Task* task);

// kos run --stats: each channel that carried requests, with its server,
// how many and how many were denied.
void ipc_print_stats();

} // namespace kos
