// Fuzzes ELF validation and the accessors that loaders use after it: the
// VMM (guest image), the kernel (runtime) and the runtime (programs from a
// bundle, which are untrusted) all go through kos::elf::Image.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kos/base/elf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // Copy into an 8-byte aligned buffer, as loaders see page-aligned data.
    std::vector<uint64_t> buf((size + 7) / 8 + 1);
    std::memcpy(buf.data(), data, size);
    kos::elf::Image img(reinterpret_cast<const uint8_t*>(buf.data()), size);
    for (bool interp : {false, true}) {
        if (img.validate(interp) != kos::elf::Error::None)
            continue;
        uint64_t sum = 0;
        for (uint16_t i = 0; i < img.phnum(); ++i) {
            const auto& ph = img.phdr(i);
            if (ph.type == kos::elf::kPtLoad && ph.filesz)
                sum += img.data()[ph.offset] + img.data()[ph.offset + ph.filesz - 1];
        }
        uint32_t desc = 0;
        if (const uint8_t* d = img.find_note("Xen", 18, &desc); d && desc)
            sum += d[desc - 1];
        if (sum == 0xdeadbeef)
            return 1;
    }
    return 0;
}
