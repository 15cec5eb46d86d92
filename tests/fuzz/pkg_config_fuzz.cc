// Fuzzes the bundle config parser (bundle.toml, with the behavior config
// sections), label matching with the parsed rules, and the manifest parser:
// all read bytes that come from a bundle.
#include <cstddef>
#include <cstdint>
#include <string>

#include "pkg/bundle_config.h"
#include "pkg/label_matcher.h"
#include "pkg/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    if (auto cfg = kos::pkg::parse_bundle_config(text, "fuzz.toml")) {
        (void)kos::pkg::require_behavior_config(*cfg, "fuzz.toml");
        kos::pkg::LabelMatcher m(cfg->labels);
        for (const char* p : {"/", "/bin/sh", "/etc/a/b/c.conf", "/usr/lib/x86_64-linux-gnu/libc.so.6"})
            (void)m.label_for(p);
    }
    if (auto man = kos::pkg::parse_manifest({data, size})) {
        // Canonical: what parses serializes back to the same bytes.
        if (kos::pkg::serialize_manifest(*man) != text)
            __builtin_trap();
    }
    return 0;
}
