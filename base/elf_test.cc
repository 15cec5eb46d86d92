#include "kos/base/elf.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

using kos::elf::Error;
using kos::elf::Image;

namespace {
std::vector<uint8_t> slurp(const char* path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), {}};
}

std::vector<uint8_t> minimal_elf() {
    std::vector<uint8_t> b(64 + 56 + 16, 0);
    kos::elf::Ehdr h{};
    std::memcpy(h.ident, "\x7f" "ELF\x02\x01\x01", 7);
    h.type = kos::elf::kTypeExec;
    h.machine = kos::elf::kMachineX86_64;
    h.phoff = 64;
    h.phentsize = 56;
    h.phnum = 1;
    h.ehsize = 64;
    std::memcpy(b.data(), &h, sizeof h);
    kos::elf::Phdr p{};
    p.type = kos::elf::kPtLoad;
    p.offset = 120;
    p.filesz = 16;
    p.memsz = 4096;
    p.vaddr = 0x400000;
    std::memcpy(b.data() + 64, &p, sizeof p);
    return b;
}
} // namespace

TEST(Elf, AcceptsMinimalAndRealStaticBinaries) {
    auto b = minimal_elf();
    EXPECT_EQ(Image(b.data(), b.size()).validate(), Error::None);
    auto bb = slurp("/bin/busybox");
    if (!bb.empty()) // busybox-static is a test dependency (scripts/deps)
        EXPECT_EQ(Image(bb.data(), bb.size()).validate(), Error::None);
}

TEST(Elf, RejectsDynamicAndForeignBinaries) {
    auto ls = slurp("/bin/ls"); // dynamically linked on Debian
    ASSERT_FALSE(ls.empty());
    EXPECT_EQ(Image(ls.data(), ls.size()).validate(), Error::Dynamic);
    auto b = minimal_elf();
    b[18] = 40; // EM_ARM
    EXPECT_EQ(Image(b.data(), b.size()).validate(), Error::WrongMachine);
    b = minimal_elf();
    b[4] = 1;
    EXPECT_EQ(Image(b.data(), b.size()).validate(), Error::Not64Bit);
    const char text[] = "#!/bin/sh\necho hi\n";
    EXPECT_EQ(Image(reinterpret_cast<const uint8_t*>(text), sizeof text).validate(), Error::TooSmall);
}

TEST(Elf, RejectsSegmentsOutsideTheFile) {
    auto b = minimal_elf();
    kos::elf::Phdr p;
    std::memcpy(&p, b.data() + 64, sizeof p);
    p.filesz = 1 << 20;
    p.memsz = 1 << 20;
    std::memcpy(b.data() + 64, &p, sizeof p);
    EXPECT_EQ(Image(b.data(), b.size()).validate(), Error::SegmentOutOfFile);
    p.filesz = 16;
    p.memsz = 8;
    std::memcpy(b.data() + 64, &p, sizeof p);
    EXPECT_EQ(Image(b.data(), b.size()).validate(), Error::SegmentBadSize);
    p.memsz = 16;
    p.vaddr = ~0ull - 4;
    std::memcpy(b.data() + 64, &p, sizeof p);
    EXPECT_EQ(Image(b.data(), b.size()).validate(), Error::SegmentOverflow);
}
