// Kernel entry: from the PVH start info to the first user program.
#include "../arch/x86_64/cpu.h"
#include "../arch/x86_64/paging.h"
#include "../arch/x86_64/platform.h"
#include "kos/boot.h"
#include "kos/pvh.h"
#include "kos/base/string.h"
#include "panic.h"
#include "pmm.h"
#include "process.h"

extern "C" char kernel_start[];
extern "C" char kernel_end[];
extern "C" char boot_stack_top[];
extern "C" [[noreturn]] void enter_user(kos::arch::TrapFrame* frame);

namespace kos {
namespace {

using abi::u64;
namespace boot = abi::boot;
namespace pvh = abi::pvh;
namespace pg = arch::paging;

constexpr u64 kGiB = 1ull << 30;
constexpr u64 kMiB = 1ull << 20;

bool cmdline_has(const char* cmdline, const char* word) {
    if (!cmdline)
        return false;
    size_t n = strlen(word);
    for (const char* p = cmdline; *p; ++p) {
        if ((p == cmdline || p[-1] == ' ') && strncmp(p, word, n) == 0 &&
            (p[n] == 0 || p[n] == ' ' || p[n] == '='))
            return true;
    }
    return false;
}

u64 alloc_table() {
    u64 pa = pmm::alloc_frame(true);
    if (pa == pmm::kNoFrame)
        panic("kos kernel: out of memory building page tables\n");
    return pa;
}

// The kernel's own page tables: a direct map of physical memory at
// kDirectMapBase (1 GiB pages where supported, else 2 MiB) and the kernel
// image at -2 GiB. The user half stays empty. Built while the boot identity
// map is still active, so physical addresses are directly usable.
u64 build_kernel_tables(const arch::CpuFeatures& f, u64 direct_map_end) {
    u64 pml4 = alloc_table();
    auto* pml4v = static_cast<u64*>(pmm::phys_to_virt(pml4));
    u64 gib_count = (direct_map_end + kGiB - 1) / kGiB;
    if (gib_count > 512)
        gib_count = 512;
    u64 pdpt = alloc_table();
    auto* pdptv = static_cast<u64*>(pmm::phys_to_virt(pdpt));
    for (u64 g = 0; g < gib_count; ++g) {
        if (f.page_1g) {
            pdptv[g] = (g * kGiB) | pg::kPresent | pg::kWrite | pg::kHuge | pg::kGlobal | pg::nx_bit();
        } else {
            u64 pd = alloc_table();
            auto* pdv = static_cast<u64*>(pmm::phys_to_virt(pd));
            for (u64 i = 0; i < 512; ++i)
                pdv[i] = (g * kGiB + i * 2 * kMiB) | pg::kPresent | pg::kWrite | pg::kHuge |
                         pg::kGlobal | pg::nx_bit();
            pdptv[g] = pd | pg::kPresent | pg::kWrite;
        }
    }
    pml4v[pg::index(boot::kDirectMapBase, 3)] = pdpt | pg::kPresent | pg::kWrite;

    // Kernel image: the first GiB of physical memory at -2 GiB.
    u64 kpdpt = alloc_table();
    u64 kpd = alloc_table();
    auto* kpdv = static_cast<u64*>(pmm::phys_to_virt(kpd));
    for (u64 i = 0; i < 512; ++i)
        kpdv[i] = (i * 2 * kMiB) | pg::kPresent | pg::kWrite | pg::kHuge | pg::kGlobal;
    static_cast<u64*>(pmm::phys_to_virt(kpdpt))[pg::index(boot::kKernelVirtBase, 2)] =
        kpd | pg::kPresent | pg::kWrite;
    pml4v[pg::index(boot::kKernelVirtBase, 3)] = kpdpt | pg::kPresent | pg::kWrite;
    return pml4;
}

} // namespace

extern "C" [[noreturn]] void kernel_main(u64 start_info_pa) {
    pmm::set_direct_map_base(0); // the boot identity map covers the first GiB
    const auto* si = static_cast<const pvh::StartInfo*>(pmm::phys_to_virt(start_info_pa));
    if (start_info_pa == 0 || start_info_pa >= kGiB || si->magic != pvh::kStartInfoMagic) {
        platform::init(false);
        panic("kos kernel: no PVH start info (booted without a PVH-capable loader?)\n");
    }
    const char* cmdline = si->cmdline_paddr && si->cmdline_paddr < kGiB
                              ? static_cast<const char*>(pmm::phys_to_virt(si->cmdline_paddr))
                              : nullptr;
    bool kos_vmm = cmdline_has(cmdline, "kos.vmm");
    platform::init(kos_vmm);
    arch::CpuFeatures features =
        arch::cpu_init(reinterpret_cast<u64>(boot_stack_top));
    pg::set_nx(features.nx);
    {
        auto l1 = arch::cpuid(1);
        auto e1 = arch::cpuid(0x80000001);
        auto l0 = arch::cpuid(0);
        kprintf("cpuid: max %x l1 ecx=%08x edx=%08x e1 ecx=%08x edx=%08x xsave=%d nx=%d 1g=%d\n", l0.eax, l1.ecx, l1.edx, e1.ecx, e1.edx, features.xsave, features.nx, features.page_1g);
    }

    if (si->version < 1 || si->memmap_entries == 0 || si->memmap_paddr >= kGiB)
        panic("kos kernel: the boot loader passed no memory map (PVH start info version %u)\n",
              si->version);
    if (si->nr_modules < 1 || si->modlist_paddr >= kGiB)
        panic("kos kernel: no boot image module was passed (use kos run, or QEMU -initrd)\n");
    const auto* mod = static_cast<const pvh::ModlistEntry*>(pmm::phys_to_virt(si->modlist_paddr));
    u64 image_pa = mod[0].paddr;
    u64 image_size = mod[0].size;

    const auto* mm = static_cast<const pvh::MemmapEntry*>(pmm::phys_to_virt(si->memmap_paddr));
    u64 direct_map_end = image_pa + image_size;
    for (abi::u32 i = 0; i < si->memmap_entries && i < 128; ++i) {
        if (mm[i].addr + mm[i].size > direct_map_end)
            direct_map_end = mm[i].addr + mm[i].size;
        if (mm[i].type != pvh::kMemmapRam)
            continue;
        u64 start = mm[i].addr < kMiB ? kMiB : mm[i].addr;
        // Early page tables must come from identity-mapped memory.
        pmm::add_range(start, mm[i].addr + mm[i].size);
    }
    pmm::reserve(0, kMiB);
    pmm::reserve(reinterpret_cast<u64>(kernel_start) - boot::kKernelVirtBase,
                 reinterpret_cast<u64>(kernel_end) - boot::kKernelVirtBase);
    pmm::reserve(image_pa, image_pa + image_size);
    pmm::set_fresh_frames_zero(kos_vmm);

    u64 kernel_pml4 = build_kernel_tables(features, direct_map_end);
    arch::write_cr3(kernel_pml4);
    pmm::set_direct_map_base(boot::kDirectMapBase);

    const auto* bh = static_cast<const boot::BootImageHeader*>(pmm::phys_to_virt(image_pa));
    if (image_size < sizeof(boot::BootImageHeader) || bh->magic != boot::kBootImageMagic ||
        bh->version != boot::kBootImageVersion || bh->total_size > image_size ||
        bh->rootfs_offset > bh->total_size || bh->rootfs_size > bh->total_size - bh->rootfs_offset ||
        bh->launch_offset > bh->total_size || bh->launch_size > bh->total_size - bh->launch_offset ||
        bh->rootfs_offset % boot::kPageSize != 0 || image_pa % boot::kPageSize != 0)
        panic("kos kernel: the boot image is malformed (bad magic, version or section bounds)\n");

    const char* error = nullptr;
    Process* p = create_first_process(kernel_pml4, image_pa, bh->total_size, &error);
    if (!p)
        panic("kos kernel: cannot start the first program: %s\n", error);

    arch::write_cr3(p->as.pml4());
    arch::wrmsr(arch::kMsrGsBase, p->main_thread.thread_block_va);
    arch::wrmsr(arch::kMsrFsBase, 0);

    // First entry to ring 3: the runtime's start entry on its own stack.
    static arch::TrapFrame frame;
    memset(&frame, 0, sizeof frame);
    frame.rip = p->runtime_start_entry;
    frame.cs = arch::kUserCs;
    frame.rflags = 0x202;
    frame.rsp = p->main_thread.runtime_stack_top;
    frame.ss = arch::kUserDs;
    frame.rdi = p->start_info_va;
    enter_user(&frame);
}

} // namespace kos
