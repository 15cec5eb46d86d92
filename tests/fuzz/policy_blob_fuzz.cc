// The compiled-policy loader and the engine on arbitrary blobs (attack 15).
//
// The input is a blob whose checksum is fixed up before loading, so the
// fuzzer gets past the checksum and exercises what a blob with a valid
// checksum but inconsistent contents can do: it must only ever produce
// verdicts. Each accepted blob is then asked requests of every kind, over
// labels, interfaces and methods taken from the blob itself, and messages
// made of the input's tail.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kos/security/engine.h"

using namespace kos::security;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < sizeof(PolicyHeader) || size > (1u << 20))
        return 0;
    std::vector<uint64_t> words(size / 8 + 1);
    auto* blob = reinterpret_cast<uint8_t*>(words.data());
    std::memcpy(blob, data, size);
    auto* h = reinterpret_cast<PolicyHeader*>(blob);
    if (h->total_size > size)
        h->total_size = size;
    h->checksum = checksum64(blob, h->total_size, offsetof(PolicyHeader, checksum));

    uint64_t state_size = Engine::required_state_size(blob, size);
    if (state_size == 0 || state_size > (64u << 20))
        return 0;
    std::vector<uint64_t> state(state_size / 8 + 1);
    Engine e;
    if (e.load(blob, size, state.data(), state.size() * 8) != LoadError::None)
        return 0;

    const uint8_t* tail = data + sizeof(PolicyHeader);
    uint32_t tail_size = static_cast<uint32_t>(size - sizeof(PolicyHeader));
    FieldValue fields[8];
    for (int i = 0; i < 8; ++i)
        fields[i] = FieldValue{static_cast<uint64_t>(i) * 0x101, tail, tail_size < 16 ? tail_size : 16};
    uint32_t labels = h->sections[static_cast<uint32_t>(Section::Labels)].size / sizeof(Label);
    uint32_t ifaces = h->sections[static_cast<uint32_t>(Section::Interfaces)].size / sizeof(Interface);
    for (uint32_t s = 0; s < labels + 1 && s < 8; ++s)
        for (uint32_t t = 0; t < labels + 1 && t < 8; ++t)
            for (uint32_t k = 0; k <= 5; ++k) {
                for (uint32_t i = 0; i < ifaces + 1 && i < 4; ++i) {
                    const Interface* in = e.interface_by_id(i < ifaces ? reinterpret_cast<const Interface*>(
                                                                   blob + h->sections[static_cast<uint32_t>(Section::Interfaces)].offset)[i].id
                                                                         : 7);
                    uint32_t iface_id = in ? in->id : 7;
                    for (uint32_t m = 0; m < 4; ++m) {
                        Request r{static_cast<Kind>(k), s, t, iface_id, m, fields, 8, 1000u * m};
                        Verdict v = e.decide(r);
                        e.decide(r);
                        AuditRecord rec;
                        e.make_audit_record(r, v, rec);
                        kos::abi::ipc::MessageHeader mh{iface_id, m, tail_size, 0};
                        e.decide_message(static_cast<Kind>(k), s, t, mh, tail, tail_size, 0);
                        // The same with a grant (sizes around a page, some writable).
                        e.decide_message(static_cast<Kind>(k), s, t, mh, tail, tail_size, 0, 4095u + m, (m & 1) != 0);
                        Request g = r;
                        g.grant_size = uint64_t{m} << 12;
                        g.grant_write = (m & 2) != 0;
                        e.decide(g);
                    }
                }
                e.decide(Request{static_cast<Kind>(k), s, t, 0, 0, fields, 8, 0});
            }
    return 0;
}
