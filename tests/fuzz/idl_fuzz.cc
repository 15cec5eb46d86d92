// The .kidl parser on arbitrary text. For an accepted module it checks the
// layout invariants (aligned offsets in declaration order, fixed sizes a
// multiple of 8, every message within kMaxMessage) and runs the payload
// check the generated decoders implement (check_payload) over the same
// input bytes as a payload for every method, with a bounds-checked copy so
// ASan catches any read past the payload.
//
// Differentially, every input is also a payload for each method of
// security-server/idl/testdata/all_types.kidl: the decoders kos-idlc
// generated for it (kos/idl/alltypes.h) must accept exactly what
// check_payload accepts, and what they accept must re-encode to a payload
// that decodes to the same values.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "kos/idl/alltypes.h"
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

void check_payload_on(const std::vector<kos::idl::Field>& fields, uint32_t fixed,
                      const uint8_t* data, size_t size) {
    // An exact-size heap copy: any read past the payload is an ASan report.
    std::vector<uint8_t> payload(data, data + size);
    auto r = kos::idl::check_payload(fields, fixed, payload.data(), payload.size());
    if (r && size < fixed)
        std::abort();
}

const kos::idl::Interface& all_types() {
    static const kos::idl::Module m = [] {
        auto r = kos::idl::load_idl_files({KOS_IDL_ALL_TYPES});
        if (!r)
            std::abort();
        return *r;
    }();
    return m.interfaces[0];
}

template <class T>
void differential(const std::vector<kos::idl::Field>& fields, uint32_t fixed, const uint8_t* data,
                  size_t size) {
    std::vector<uint8_t> payload(data, data + size);
    T out{};
    bool generated = kos::idl::alltypes::All::decode(payload.data(), uint32_t(payload.size()), out);
    bool model = bool(kos::idl::check_payload(fields, fixed, payload.data(), payload.size()));
    if (generated != model)
        std::abort();
    if (!generated)
        return;
    // Re-encode what was decoded: it must fit a message and decode again.
    std::vector<uint8_t> again(kos::abi::ipc::kMaxMessage);
    int32_t n = kos::idl::alltypes::All::encode(static_cast<const T&>(out), again.data(),
                                                uint32_t(again.size()));
    if (n < 0)
        std::abort();
    again.resize(size_t(n));
    T out2{};
    if (!kos::idl::alltypes::All::decode(again.data(), uint32_t(again.size()), out2))
        std::abort();
}

template <class M> void differential_method(const char* name, const uint8_t* data, size_t size) {
    const kos::idl::Method* m = all_types().find_method(name);
    if (!m)
        std::abort();
    differential<typename M::Request>(m->request, m->request_fixed_size, data, size);
    differential<typename M::Response>(m->response, m->response_fixed_size, data, size);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size <= kos::abi::ipc::kMaxMessage) {
        namespace all = kos::idl::alltypes::All;
        differential_method<all::mixed>("mixed", data, size);
        differential_method<all::every>("every", data, size);
        differential_method<all::nothing>("nothing", data, size);
        differential_method<all::fail>("fail", data, size);
    }
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
                check_payload_on(me.request, me.request_fixed_size, data + size / 2,
                                 size - size / 2);
            }
        }
    }
    // The generator must cope with whatever the parser accepts.
    std::string h = kos::idl::generate_header(*m, "fuzz.kidl");
    if (h.empty())
        std::abort();
    return 0;
}
