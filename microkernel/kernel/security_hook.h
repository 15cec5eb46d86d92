// The kernel's security hook: every execute, every request and every reply
// is judged before it happens (complete mediation, DESIGN.md principle 2).
//
// Two layers, both always applied:
//  - the init description's structure: a channel carries only the interface
//    it was declared with, between the two tasks it was declared for (no
//    anonymous messaging);
//  - the compiled policy from the boot image, asked through the security
//    engine (security-server/engine) with the tasks' labels and the typed
//    fields of the kernel's own copy of the message. Without a policy every
//    request and reply is denied (fail closed).
//
// The policy lives in the boot image outside the rootfs section, which is
// the only part of it a task can map.
#pragma once

#include "ipc.h"
#include "kos/ipc.h"
#include "task.h"

namespace kos {

struct Verdict {
    bool allow;
    bool audit;
    const char* rule; // structural rule, or nullptr when the policy decided
    abi::u32 policy_rule;
};

// Loads the boot image's compiled policy, if any. nullptr, or what is wrong
// (the kernel then stops: it never runs with a partial policy).
const char* security_init();
bool security_enforcing();

// Resolves a task's label in the policy; what is wrong if it is not declared.
const char* security_bind(Task& t);

// May `subject` start `program` as `target`? (Processes of the init
// description are checked as execute L -> L.)
Verdict check_execute(const Task& subject, const Task& target, const char* program);
// A request with the memory its caller lends (ipc_call_grant; size 0:
// none): the grant must be one the method declares (check_grant), then the
// engine judges the request with the grant's size and writability (the
// policy's `grant.size` and `grant.write` conditions).
Verdict check_request(const Task& src, const Channel& ch, const abi::ipc::MessageHeader& h,
                      abi::u64 grant_size, bool grant_write);
Verdict check_response(const Task& server, const Task& client, const Channel& ch,
                       const abi::ipc::MessageHeader& h);

// A grant lent with a request (ipc_call_grant) must be one the method
// declares in the IDL ([grant read|write BYTES]): declared, no larger, and
// writable only if declared `write`. Structural: denied with rule
// undeclared-grant, grant-direction or grant-size.
Verdict check_grant(const abi::ipc::MessageHeader& h, abi::u64 size, bool write);

// May `subject` connect to (or bind) ip:port? net.kidl's Socket.connect
// (with `proto`: 6 TCP, 17 UDP, for a connect or a datagram's destination)
// or Socket.bind from its label to `net_t`; denied without a policy.
// Audited as the policy says.
Verdict check_net(const Task& subject, bool connect, const abi::u8* ip, abi::u16 port, abi::u8 proto);

// A volume's label (abi/kos/file.h) as the policy's label id; kNone (~0)
// when the policy does not know it (every check on it is then denied).
abi::u32 security_label_id(const char* name, abi::u32 len);
// May `subject` read (or write) objects labeled `label`: `security subject
// -> label file.read` (file.write). Denied without a policy. Audited as the
// policy says.
Verdict check_file(const Task& subject, abi::u32 label, bool write);

// May `subject` signal `target`, a process of another label's tree?
// `security subject -> target process.signal`. Denied without a policy or
// without class process. Audited as the policy says.
Verdict check_signal(const Task& subject, const Task& target);

// Payload offsets of a message's `handle` fields, by the policy's layout
// (request fields, or response fields): how many, at most `max`. 0 without
// a policy or for an unknown method.
abi::u32 handle_field_offsets(bool request, const abi::ipc::MessageHeader& h, abi::u32* offsets, abi::u32 max);

// The object managers' calls (abi/kos/syscall.h): ids by name, and
// `security` questions about a subject task and a labeled object.
abi::i64 security_resolve(Task& caller, abi::u64 what, abi::u64 name, abi::u64 len, abi::u64 cls);
abi::i64 security_query(Task& caller, abi::u64 subject_task, abi::u64 object, abi::u64 cls, abi::u64 perm);

// One readable line on the console's stderr per structural denial. Policy
// verdicts marked for audit are reported by check_* themselves: the record
// goes to the host (kos run prints the line and logs the JSON).
void audit_denied(const char* what, const Task& src, const Task* dst, const Channel* ch,
                  const abi::ipc::MessageHeader* h, const Verdict& v);

} // namespace kos
