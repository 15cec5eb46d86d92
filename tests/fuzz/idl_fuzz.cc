// The .kidl parser on arbitrary text. For an accepted module it checks the
// layout invariants (aligned offsets in declaration order, fixed sizes a
// multiple of 8, every message within kMaxMessage) and runs the payload
// check the generated decoders implement (check_payload) over the same
// input bytes as a payload for every method, with a bounds-checked copy so
// ASan catches any read past the payload.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "kos/idl/generator.h"
#include "kos/idl/model.h"
#include "kos/ipc.h"

namespace {

void check_layout(const std::vector<kos::idl::Field>& fields, uint32_t fixed) {
    uint32_t end = 0;
    for (const kos::idl::Field& f : fields) {
        if (f.offset % kos::idl::type_align(f.type) != 0 || f.offset < end)
            std::abort();
        end = f.offset + kos::idl::type_size(f.type);
    }
    if (fixed % 8 != 0 || end > fixed || fixed - end >= 8)
        std::abort();
    if (16 + kos::idl::max_payload_size(fields, fixed) > kos::abi::ipc::kMaxMessage)
        std::abort();
}

void check_payload_on(const std::vector<kos::idl::Field>& fields, uint32_t fixed, const uint8_t* data,
                      size_t size) {
    // An exact-size heap copy: any read past the payload is an ASan report.
    std::vector<uint8_t> payload(data, data + size);
    auto r = kos::idl::check_payload(fields, fixed, payload.data(), payload.size());
    if (r && size < fixed)
        std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto m = kos::idl::parse_idl(text, "fuzz.kidl");
    if (!m)
        return 0;
    for (const kos::idl::Interface& itf : m->interfaces) {
        for (const kos::idl::Method& me : itf.methods) {
            check_layout(me.request, me.request_fixed_size);
            check_layout(me.response, me.response_fixed_size);
            check_payload_on(me.request, me.request_fixed_size, data, size);
            check_payload_on(me.response, me.response_fixed_size, data, size);
            // The input's tail as a payload too (a different alignment).
            if (size > 8) {
                check_payload_on(me.request, me.request_fixed_size, data + size / 2, size - size / 2);
            }
        }
    }
    // The generator must cope with whatever the parser accepts.
    std::string h = kos::idl::generate_header(*m, "fuzz.kidl");
    if (h.empty())
        std::abort();
    return 0;
}
