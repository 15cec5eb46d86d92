// The kernel's IPC security hook: every request and every reply is judged
// before delivery (complete mediation, DESIGN.md principle 2).
//
// Today's rules come from the init description itself: a channel carries
// only the interface it was declared with (typed communications), between
// the two tasks it was declared for (no anonymous messaging); anything else
// is denied. The compiled policy of the security server plugs in here for
// per-method and per-field decisions.
#pragma once

#include "ipc.h"
#include "kos/ipc.h"

namespace kos {

struct Verdict {
    bool allow;
    const char* rule; // which rule decided, for the audit line
};

Verdict check_request(const Task& src, const Channel& ch, const abi::ipc::MessageHeader& h);
Verdict check_response(const Task& server, const Channel& ch, const abi::ipc::MessageHeader& h);

// One readable line on the console's stderr per denial (kos run shows it).
void audit_denied(const char* what, const Task& src, const Task* dst, const Channel* ch,
                  const abi::ipc::MessageHeader* h, const char* rule);

} // namespace kos
