// Address-space bookkeeping on the host: the kernel's vm.cc, paging.cc and
// pmm.cc built against a buffer that stands in for physical memory.
#include "vm.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <set>

#include "../arch/x86_64/paging.h"
#include "kos/syscall.h"
#include "pmm.h"
#include "tlb.h"

namespace kos::arch {
std::set<abi::u64> g_flushed;
void flush_tlb_page(abi::u64 va) { g_flushed.insert(va); }
void flush_tlb_all() {}
abi::u64 tlb_this_cpu_bit() { return 1; }
abi::u64 g_shootdowns = 0;
void tlb_shootdown(abi::u64 mask) { g_shootdowns |= mask; }
} // namespace kos::arch

namespace kos::platform {
void copy_frame(abi::u64 dst, abi::u64 src) {
    std::memcpy(kos::pmm::phys_to_virt(dst), kos::pmm::phys_to_virt(src), 4096);
}
void zero_frame(abi::u64 pa) { std::memset(kos::pmm::phys_to_virt(pa), 0, 4096); }
} // namespace kos::platform

namespace {

namespace sys = kos::abi::sys;
namespace pg = kos::arch::paging;
using kos::vm::AddressSpace;
constexpr uint64_t kPage = 4096;
constexpr uint64_t kPhysSize = 64ull << 20;

// One physical memory for the whole test binary (the allocator is global).
struct PhysMemory {
    PhysMemory() {
        base = static_cast<uint8_t*>(::mmap(nullptr, kPhysSize, PROT_READ | PROT_WRITE,
                                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        kos::pmm::set_direct_map_base(reinterpret_cast<uint64_t>(base));
        kos::pmm::add_range(0x100000, kPhysSize);
        kos::pmm::reserve(0x200000, 0x300000);
        kos::pmm::set_fresh_frames_zero(true);
        pg::set_nx(true);
        kernel_pml4 = kos::pmm::alloc_frame(true);
    }
    uint8_t* base;
    uint64_t kernel_pml4;
};

PhysMemory& phys() {
    static PhysMemory m;
    return m;
}

uint64_t* pte_of(AddressSpace& as, uint64_t va) {
    uint64_t* pte = nullptr;
    if (pg::walk(as.pml4(), va, false, &pte) != pg::WalkResult::Ok)
        return nullptr;
    return pte;
}

bool present(AddressSpace& as, uint64_t va) {
    uint64_t* p = pte_of(as, va);
    return p && (*p & pg::kPresent);
}

class Vm : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_TRUE(as.init(phys().kernel_pml4)); }
    AddressSpace as;
};

} // namespace

TEST_F(Vm, AnonymousMappingIsBackedOnFirstTouch) {
    int64_t a = as.map_anon(0, 4 * kPage, kos::vm::kRead | kos::vm::kWrite, 0, 0);
    ASSERT_GT(a, 0);
    uint64_t addr = static_cast<uint64_t>(a);
    EXPECT_EQ(addr % kPage, 0u);
    EXPECT_LT(addr, sys::kMmapTop);
    EXPECT_FALSE(present(as, addr));
    EXPECT_TRUE(as.handle_fault(addr + 5, true, false));
    ASSERT_TRUE(present(as, addr));
    uint64_t pte = *pte_of(as, addr);
    EXPECT_TRUE(pte & pg::kUser);
    EXPECT_TRUE(pte & pg::kWrite);
    EXPECT_TRUE(pte & pg::kNoExecute);
    EXPECT_FALSE(present(as, addr + kPage));
    // Not executable, and nothing outside the mapping.
    EXPECT_FALSE(as.handle_fault(addr + kPage, false, true));
    EXPECT_FALSE(as.handle_fault(addr + 4 * kPage, false, false));
}

TEST_F(Vm, FramesAvoidReservedMemory) {
    int64_t a = as.map_anon(0, 512 * kPage, kos::vm::kRead | kos::vm::kWrite, sys::kMapPopulate, 0);
    ASSERT_GT(a, 0);
    for (uint64_t i = 0; i < 512; ++i) {
        uint64_t pa = *pte_of(as, static_cast<uint64_t>(a) + i * kPage) & pg::kAddrMask;
        EXPECT_TRUE(pa < 0x200000 || pa >= 0x300000) << std::hex << pa;
    }
}

TEST_F(Vm, FixedMappingsDoNotSilentlyReplace) {
    uint64_t addr = 0x400000;
    ASSERT_EQ(as.map_anon(addr, 2 * kPage, kos::vm::kRead, sys::kMapFixed, 0), static_cast<int64_t>(addr));
    EXPECT_EQ(as.map_anon(addr + kPage, kPage, kos::vm::kRead, sys::kMapFixed, 0), -17); // EEXIST
    EXPECT_EQ(as.map_anon(addr + kPage, kPage, kos::vm::kRead | kos::vm::kWrite,
                          sys::kMapFixed | sys::kMapReplace, 0),
              static_cast<int64_t>(addr + kPage));
    EXPECT_FALSE(as.handle_fault(addr, true, false)); // first page stayed read-only
    EXPECT_TRUE(as.handle_fault(addr + kPage, true, false));
}

TEST_F(Vm, PinnedMappingsCannotBeUnmappedReprotectedOrReplaced) {
    uint64_t addr = 0x10000000;
    ASSERT_GT(as.map_anon(addr, 4 * kPage, kos::vm::kRead | kos::vm::kWrite, sys::kMapFixed, kos::vm::kPinned), 0);
    EXPECT_EQ(as.unmap(addr, kPage), -22);
    EXPECT_EQ(as.protect(addr, kPage, kos::vm::kRead), -22);
    EXPECT_EQ(as.map_anon(addr, kPage, kos::vm::kRead, sys::kMapFixed | sys::kMapReplace, 0), -12);
    EXPECT_TRUE(as.handle_fault(addr, true, false));
}

TEST_F(Vm, UnmapSplitsAndFreesTheMiddle) {
    uint64_t addr = 0x20000000;
    ASSERT_GT(as.map_anon(addr, 3 * kPage, kos::vm::kRead | kos::vm::kWrite,
                          sys::kMapFixed | sys::kMapPopulate, 0), 0);
    uint64_t before = kos::pmm::free_frames();
    kos::arch::g_flushed.clear();
    EXPECT_EQ(as.unmap(addr + kPage, kPage), 0);
    EXPECT_EQ(kos::pmm::free_frames(), before + 1);
    EXPECT_TRUE(kos::arch::g_flushed.count(addr + kPage));
    EXPECT_TRUE(present(as, addr));
    EXPECT_FALSE(present(as, addr + kPage));
    EXPECT_TRUE(present(as, addr + 2 * kPage));
    EXPECT_FALSE(as.handle_fault(addr + kPage, false, false));
    EXPECT_TRUE(as.handle_fault(addr + 2 * kPage, true, false));
    // Unmapping nothing is fine; bad arguments are not.
    EXPECT_EQ(as.unmap(addr + kPage, kPage), 0);
    EXPECT_EQ(as.unmap(addr + 1, kPage), -22);
    EXPECT_EQ(as.unmap(sys::kUserTop - kPage, 2 * kPage), -22);
}

TEST_F(Vm, ProtectChangesPresentPagesAndTheMapping) {
    uint64_t addr = 0x30000000;
    ASSERT_GT(as.map_anon(addr, 2 * kPage, kos::vm::kRead | kos::vm::kWrite,
                          sys::kMapFixed | sys::kMapPopulate, 0), 0);
    EXPECT_EQ(as.protect(addr, kPage, kos::vm::kRead), 0);
    EXPECT_FALSE(*pte_of(as, addr) & pg::kWrite);
    EXPECT_TRUE(*pte_of(as, addr + kPage) & pg::kWrite);
    EXPECT_FALSE(as.handle_fault(addr, true, false));
    // PROT_NONE keeps the contents but removes user access.
    EXPECT_EQ(as.protect(addr + kPage, kPage, 0), 0);
    EXPECT_FALSE(*pte_of(as, addr + kPage) & pg::kUser);
    EXPECT_FALSE(as.handle_fault(addr + kPage, false, false));
    EXPECT_EQ(as.protect(addr + kPage, kPage, kos::vm::kRead | kos::vm::kWrite), 0);
    EXPECT_TRUE(*pte_of(as, addr + kPage) & pg::kUser);
    // A hole in the range: ENOMEM, nothing changed.
    EXPECT_EQ(as.protect(addr, 3 * kPage, kos::vm::kRead), -12);
    EXPECT_TRUE(*pte_of(as, addr + kPage) & pg::kWrite);
}

TEST_F(Vm, ImageMappingsAreReadOnlyAndFaultAround) {
    uint64_t addr = 0x40000000, image_pa = 0x300000;
    ASSERT_GT(as.map_image(addr, 128 * kPage, image_pa, kos::vm::kRead | kos::vm::kExec, 0), 0);
    EXPECT_EQ(as.map_image(addr + 512 * kPage, kPage, image_pa, kos::vm::kRead | kos::vm::kWrite, 0), -22);
    EXPECT_TRUE(as.handle_fault(addr + 70 * kPage, false, true));
    // The aligned 64-page block around the fault is mapped, no more.
    EXPECT_TRUE(present(as, addr + 64 * kPage));
    EXPECT_TRUE(present(as, addr + 127 * kPage));
    EXPECT_FALSE(present(as, addr + 63 * kPage));
    EXPECT_EQ(*pte_of(as, addr + 70 * kPage) & pg::kAddrMask, image_pa + 70 * kPage);
    EXPECT_FALSE(*pte_of(as, addr + 70 * kPage) & pg::kNoExecute);
    EXPECT_FALSE(as.handle_fault(addr, true, false));
    EXPECT_EQ(as.protect(addr, kPage, kos::vm::kRead | kos::vm::kWrite), -13);
    uint64_t before = kos::pmm::free_frames();
    EXPECT_EQ(as.unmap(addr, 128 * kPage), 0);
    EXPECT_EQ(kos::pmm::free_frames(), before); // image frames are not freed
}

TEST_F(Vm, TranslateChecksAccessAndBounds) {
    uint64_t addr = 0x50000000;
    ASSERT_GT(as.map_anon(addr, kPage, kos::vm::kRead, sys::kMapFixed, 0), 0);
    int64_t pa = as.translate(addr + 12, false);
    ASSERT_GT(pa, 0);
    EXPECT_EQ(static_cast<uint64_t>(pa) & (kPage - 1), 12u);
    EXPECT_EQ(as.translate(addr, true), -14);
    EXPECT_EQ(as.translate(addr + kPage, false), -14);
    EXPECT_EQ(as.translate(0xffff800000000000ull, false), -14);
}

TEST_F(Vm, CloneSharesAnonymousPagesCopyOnWriteAndImagePages) {
    uint64_t anon = 0x60000000, image = 0x61000000;
    ASSERT_GT(as.map_anon(anon, 2 * kPage, kos::vm::kRead | kos::vm::kWrite,
                          sys::kMapFixed | sys::kMapPopulate, 0), 0);
    ASSERT_GT(as.map_image(image, 4 * kPage, 0x300000, kos::vm::kRead, 0), 0);
    ASSERT_TRUE(as.handle_fault(image, false, false));
    auto byte = [](uint64_t pa) { return static_cast<uint8_t*>(kos::pmm::phys_to_virt(pa)) + 7; };
    uint64_t original = *pte_of(as, anon) & pg::kAddrMask;
    *byte(original) = 42;
    AddressSpace child;
    ASSERT_TRUE(child.init(phys().kernel_pml4));
    uint64_t free_before = kos::pmm::free_frames();
    ASSERT_TRUE(child.clone_from(as));
    // One frame for both, read-only in both, until one writes.
    EXPECT_EQ(*pte_of(child, anon) & pg::kAddrMask, original);
    EXPECT_FALSE(*pte_of(as, anon) & pg::kWrite);
    EXPECT_FALSE(*pte_of(child, anon) & pg::kWrite);
    EXPECT_TRUE(*pte_of(as, anon) & kos::vm::kCow);
    EXPECT_GE(free_before - kos::pmm::free_frames(), 0u);
    // The parent writes: it gets a copy; the child keeps the original.
    ASSERT_TRUE(as.handle_fault(anon + 3, true, false));
    uint64_t parent_pa = *pte_of(as, anon) & pg::kAddrMask;
    EXPECT_NE(parent_pa, original);
    EXPECT_TRUE(*pte_of(as, anon) & pg::kWrite);
    *byte(parent_pa) = 7;
    EXPECT_EQ(*byte(original), 42);
    // The child, now the frame's only holder, takes it back writable.
    ASSERT_TRUE(child.handle_fault(anon, true, false));
    EXPECT_EQ(*pte_of(child, anon) & pg::kAddrMask, original);
    EXPECT_TRUE(*pte_of(child, anon) & pg::kWrite);
    EXPECT_FALSE(*pte_of(child, anon) & kos::vm::kCow);
    // mprotect cannot make a shared page writable behind the copy.
    ASSERT_EQ(as.protect(anon + kPage, kPage, kos::vm::kRead), 0);
    ASSERT_EQ(as.protect(anon + kPage, kPage, kos::vm::kRead | kos::vm::kWrite), 0);
    EXPECT_FALSE(*pte_of(as, anon + kPage) & pg::kWrite);
    EXPECT_EQ(*pte_of(as, anon + kPage) & pg::kAddrMask, *pte_of(child, anon + kPage) & pg::kAddrMask);
    // A translate for a kernel write breaks the sharing too.
    int64_t pa = as.translate(anon + kPage + 5, true);
    ASSERT_GE(pa, 0);
    EXPECT_NE(static_cast<uint64_t>(pa) & pg::kAddrMask, *pte_of(child, anon + kPage) & pg::kAddrMask);
    // Image frames are shared as before, and never writable.
    EXPECT_TRUE(child.handle_fault(image + 1, false, false));
    EXPECT_EQ(*pte_of(child, image) & pg::kAddrMask, 0x300000u);
    EXPECT_FALSE(child.handle_fault(image, true, false));
    // Unmapping drops one holder: the other keeps its data, and its next
    // write takes the frame back without a copy.
    AddressSpace second;
    ASSERT_TRUE(second.init(phys().kernel_pml4));
    ASSERT_TRUE(second.clone_from(as));
    EXPECT_EQ(*pte_of(second, anon) & pg::kAddrMask, parent_pa);
    ASSERT_EQ(second.unmap(anon, 2 * kPage), 0);
    EXPECT_EQ(*byte(parent_pa), 7);
    ASSERT_TRUE(as.handle_fault(anon, true, false));
    EXPECT_EQ(*pte_of(as, anon) & pg::kAddrMask, parent_pa);
}

TEST_F(Vm, AutomaticPlacementFillsGapsBelowTheMmapTop) {
    std::set<uint64_t> seen;
    for (int i = 0; i < 50; ++i) {
        int64_t a = as.map_anon(0, 3 * kPage, kos::vm::kRead, 0, 0);
        ASSERT_GT(a, 0);
        EXPECT_TRUE(seen.insert(static_cast<uint64_t>(a)).second);
        EXPECT_LE(static_cast<uint64_t>(a) + 3 * kPage, sys::kMmapTop);
    }
}
