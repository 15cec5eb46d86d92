#include "security_hook.h"

#include "panic.h"

namespace kos {

Verdict check_request(const Task& src, const Channel& ch, const abi::ipc::MessageHeader& h) {
    if (&src != ch.client)
        return {false, "channel-endpoints"};
    if (h.interface_id != ch.interface_id)
        return {false, "channel-interface"};
    return {true, "channel-declared"};
}

Verdict check_response(const Task& server, const Channel& ch, const abi::ipc::MessageHeader& h) {
    if (&server != ch.server)
        return {false, "channel-endpoints"};
    if (h.interface_id != ch.interface_id)
        return {false, "channel-interface"};
    return {true, "channel-declared"};
}

void audit_denied(const char* what, const Task& src, const Task* dst, const Channel* ch,
                  const abi::ipc::MessageHeader* h, const char* rule) {
    if (h && ch && dst)
        kprintf("kos: denied %s %s (%s) -> %s (%s): interface %u method %u on channel '%s' "
                "(declared for interface %u) [rule %s]\n",
                what, src.name, src.label_name, dst->name, dst->label_name, h->interface_id,
                h->method_id, ch->name, ch->interface_id, rule);
    else
        kprintf("kos: denied %s by %s (%s) [rule %s]\n", what, src.name, src.label_name, rule);
}

} // namespace kos
