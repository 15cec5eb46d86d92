// Fuzzes the tar reader and the layer engine (whiteouts, hardlinks,
// symlink parents, caps) on one untrusted layer, entirely in memory.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "pkg/oci_import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    kos::pkg::ImportOptions o;
    o.limits.max_entries = 4096;
    o.limits.max_total_bytes = 16 << 20;
    o.limits.ratio_floor = 1 << 20;
    std::vector<std::vector<uint8_t>> layers{{data, data + size}};
    std::vector<std::string> notes;
    (void)kos::pkg::apply_layers_for_test(layers, o, &notes);
    // The same layer twice exercises whiteouts against a lower layer.
    layers.push_back(layers[0]);
    (void)kos::pkg::apply_layers_for_test(layers, o, &notes);
    return 0;
}
