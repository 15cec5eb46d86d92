// Fuzzes the .kpol front end (attack 14): arbitrary text through the lexer,
// parser and resolver (names, sets, IDL references, conditions, levels,
// machines, limits, test steps), with the system interfaces available to
// `idl` statements. Nothing may crash, hang or allocate without bound; the
// input either resolves into a model or yields positioned errors.
#include <cstddef>
#include <cstdint>
#include <string>

#include "kos/policy/compiler.h"
#include "kos/policy/parser.h"

// A bundle's own interface with grants (the system interfaces declare
// none), so `idl "blobs.kidl"` and grant conditions resolve too.
static const char kBlobsKidl[] = "package fuzz\n"
                                 "interface Blobs 0x7f00 {\n"
                                 "    put 1 (size: u32) -> () [grant write 65536]\n"
                                 "    get 2 (size: u32) -> (total: u64) [grant read 8192]\n"
                                 "    ping 3 () -> ()\n"
                                 "}\n";

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    kos::policy::CompileOptions o;
    o.build = false;
    o.idl_path = {KOS_IDL_DIR};
    // The input is the bundle's only policy file (includes of itself are
    // cycles; anything else is outside the bundle), beside one .kidl.
    std::vector<kos::policy::MemorySource> sources = {{"policy/fuzz.kpol", text}, {"policy/blobs.kidl", kBlobsKidl}};
    auto r = kos::policy::compile_policy_sources(sources, o);
    if (!r && r.error().message.empty())
        __builtin_trap(); // every failure says what and where
    if (r) {
        // A policy that resolves also builds (within small limits) and its
        // tests run on the engine; a resolved model the builder refuses is
        // a front-end bug unless a limit was hit.
        o.build = true;
        o.limits.max_index_keys = 20000;
        o.limits.max_blob_bytes = 4u << 20;
        auto b = kos::policy::compile_policy_sources(sources, o);
        if (b && b->blob.empty())
            __builtin_trap();
    }
    // The same text as an explain request line.
    std::vector<std::string> names = {"<request>"};
    kos::policy::Diagnostics d(&names);
    (void)kos::policy::parse_request_line(text, 0, d);
    return 0;
}
