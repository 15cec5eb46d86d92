// Tiny hand-made guest images for VMM tests and benchmarks: an ELF with one
// code segment at 1 MiB (entered in 64-bit mode with the VMM's identity map)
// and one data segment at 2 MiB.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace kos::vmm::testing {

inline constexpr uint64_t kTinyCode = 0x100000;
inline constexpr uint64_t kTinyData = 0x200000;

inline std::vector<uint8_t> tiny_guest_elf(const std::vector<uint8_t>& code,
                                           const std::vector<uint8_t>& data = {}) {
    struct Ehdr {
        uint8_t ident[16];
        uint16_t type, machine;
        uint32_t version;
        uint64_t entry, phoff, shoff;
        uint32_t flags;
        uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
    } eh{};
    struct Phdr {
        uint32_t type, flags;
        uint64_t offset, vaddr, paddr, filesz, memsz, align;
    };
    std::memcpy(eh.ident, "\x7f" "ELF\x02\x01\x01", 7);
    eh.type = 2;
    eh.machine = 62;
    eh.version = 1;
    eh.entry = kTinyCode;
    eh.phoff = 64;
    eh.ehsize = 64;
    eh.phentsize = 56;
    eh.phnum = 2;
    uint64_t data_size = data.empty() ? 8 : data.size();
    std::vector<uint8_t> elf(0x2000 + data_size, 0);
    Phdr text{1, 5, 0x1000, kTinyCode, kTinyCode, code.size(), code.size(), 0x1000};
    Phdr dat{1, 6, 0x2000, kTinyData, kTinyData, data_size, data_size, 0x1000};
    std::memcpy(elf.data(), &eh, sizeof eh);
    std::memcpy(elf.data() + 64, &text, sizeof text);
    std::memcpy(elf.data() + 64 + 56, &dat, sizeof dat);
    std::memcpy(elf.data() + 0x1000, code.data(), code.size());
    if (!data.empty())
        std::memcpy(elf.data() + 0x2000, data.data(), data.size());
    return elf;
}

// mov $0x510, %dx; mov $addr, %eax; out %eax, (%dx)
inline std::vector<uint8_t> hypercall_code(uint32_t block_gpa) {
    return {0x66, 0xba, 0x10, 0x05, 0xb8, uint8_t(block_gpa), uint8_t(block_gpa >> 8),
            uint8_t(block_gpa >> 16), uint8_t(block_gpa >> 24), 0xef};
}

} // namespace kos::vmm::testing
