// Kernel entry: from the PVH start info to the first user program.
#include "../arch/x86_64/apic.h"
#include "../arch/x86_64/cpu.h"
#include "../arch/x86_64/paging.h"
#include "../arch/x86_64/platform.h"
#include "kos/boot.h"
#include "kos/pvh.h"
#include "kos/base/string.h"
#include "panic.h"
#include "security_hook.h"
#include "pmm.h"
#include "init.h"
#include "file.h"
#include "rootfs_access.h"
#include "loader.h"
#include "smp.h"
#include "task.h"

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

// The value of `word=N` on the command line (0 when absent or malformed).
u64 cmdline_number(const char* cmdline, const char* word) {
    if (!cmdline)
        return 0;
    size_t n = strlen(word);
    for (const char* p = cmdline; *p; ++p) {
        if ((p != cmdline && p[-1] != ' ') || strncmp(p, word, n) != 0 || p[n] != '=')
            continue;
        u64 v = 0;
        const char* d = p + n + 1;
        for (; *d >= '0' && *d <= '9' && v < 1000; ++d)
            v = v * 10 + static_cast<u64>(*d - '0');
        return (*d == 0 || *d == ' ') ? v : 0;
    }
    return 0;
}

u64 alloc_table() {
    u64 pa = pmm::alloc_frame(true);
    if (pa == pmm::kNoFrame)
        panic("kos kernel: out of memory building page tables\n");
    return pa;
}

// The kernel's own page tables: a direct map at kDirectMapBase of the
// physical ranges the kernel touches (RAM and the boot image), and the
// kernel image at -2 GiB. Only what exists is mapped: on nested KVM every
// ring-0 store is emulated, so thousands of unused entries would cost tens
// of milliseconds at boot. The direct map's PD for the first GiB doubles as
// the kernel image map. Built while the boot identity map is active.
struct PhysRange {
    u64 start, end;
};

void map_direct_range(u64* pml4v, const arch::CpuFeatures& f, PhysRange r) {
    u64* pdptv = nullptr;
    u64& l4 = pml4v[pg::index(boot::kDirectMapBase, 3)];
    if (!(l4 & pg::kPresent))
        l4 = alloc_table() | pg::kPresent | pg::kWrite;
    pdptv = static_cast<u64*>(pmm::phys_to_virt(l4 & pg::kAddrMask));
    constexpr u64 k2M = 2 * kMiB;
    for (u64 pa = r.start & ~(k2M - 1); pa < r.end && pa < 512 * kGiB;) {
        u64& l3 = pdptv[pa / kGiB];
        if (f.page_1g && !(l3 & pg::kPresent) && pa % kGiB == 0 && r.end - pa >= kGiB) {
            l3 = pa | pg::kPresent | pg::kWrite | pg::kHuge | pg::kGlobal | pg::nx_bit();
            pa += kGiB;
            continue;
        }
        if (!(l3 & pg::kPresent))
            l3 = alloc_table() | pg::kPresent | pg::kWrite;
        auto* pdv = static_cast<u64*>(pmm::phys_to_virt(l3 & pg::kAddrMask));
        pdv[(pa / k2M) % 512] = pa | pg::kPresent | pg::kWrite | pg::kHuge | pg::kGlobal;
        pa += k2M;
    }
}

u64 build_kernel_tables(const arch::CpuFeatures& f, const PhysRange* ranges, int count) {
    u64 pml4 = alloc_table();
    auto* pml4v = static_cast<u64*>(pmm::phys_to_virt(pml4));
    // The kernel image's 2 MiB pages must be in the first GiB's PD.
    u64 kernel_end_pa = reinterpret_cast<u64>(kernel_end) - boot::kKernelVirtBase;
    map_direct_range(pml4v, arch::CpuFeatures{}, {0, kernel_end_pa});
    for (int i = 0; i < count; ++i)
        map_direct_range(pml4v, f, ranges[i]);
    u64 pdpt = pml4v[pg::index(boot::kDirectMapBase, 3)] & pg::kAddrMask;
    u64 pd0 = static_cast<u64*>(pmm::phys_to_virt(pdpt))[0] & pg::kAddrMask;
    u64 kpdpt = alloc_table();
    static_cast<u64*>(pmm::phys_to_virt(kpdpt))[pg::index(boot::kKernelVirtBase, 2)] =
        pd0 | pg::kPresent | pg::kWrite;
    pml4v[pg::index(boot::kKernelVirtBase, 3)] = kpdpt | pg::kPresent | pg::kWrite;
    return pml4;
}

} // namespace

extern bool g_stats;
void stats_start();
void stats_user();

extern "C" [[noreturn]] void kernel_main(u64 start_info_pa) {
    stats_start();
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
    // Tests: leave Linux threads' vector state to their runtime alone, as
    // on nested KVM where the kernel's switch does nothing (QEMU runs).
    bool ring3_fpu_only = cmdline_has(cmdline, "kos.ring3_fpu");
    u64 cpus = kos_vmm ? cmdline_number(cmdline, "kos.cpus") : 1; // before the boot tables go
    platform::init(kos_vmm);
    // Other CPUs wait for the lock until this one enters ring 3.
    kernel_lock();
    arch::CpuFeatures features =
        arch::cpu_init(0, reinterpret_cast<u64>(boot_stack_top));
    pg::set_nx(features.nx);

    if (si->version < 1 || si->memmap_entries == 0 || si->memmap_paddr >= kGiB)
        panic("kos kernel: the boot loader passed no memory map (PVH start info version %u)\n",
              si->version);
    if (si->nr_modules < 1 || si->modlist_paddr >= kGiB)
        panic("kos kernel: no boot image module was passed (use kos run, or QEMU -initrd)\n");
    const auto* mod = static_cast<const pvh::ModlistEntry*>(pmm::phys_to_virt(si->modlist_paddr));
    u64 image_pa = mod[0].paddr;
    u64 image_size = mod[0].size;

    const auto* mm = static_cast<const pvh::MemmapEntry*>(pmm::phys_to_virt(si->memmap_paddr));
    PhysRange direct[34];
    int direct_count = 0;
    direct[direct_count++] = {image_pa, image_pa + image_size};
    direct[direct_count++] = {arch::kXapicPhys, arch::kXapicPhys + 4096}; // local APIC registers
    for (abi::u32 i = 0; i < si->memmap_entries && i < 128; ++i) {
        if (mm[i].type != pvh::kMemmapRam)
            continue;
        if (direct_count < 34)
            direct[direct_count++] = {mm[i].addr, mm[i].addr + mm[i].size};
        u64 start = mm[i].addr < kMiB ? kMiB : mm[i].addr;
        // Early page tables must come from identity-mapped memory.
        pmm::add_range(start, mm[i].addr + mm[i].size);
    }
    pmm::reserve(0, kMiB);
    pmm::reserve(reinterpret_cast<u64>(kernel_start) - boot::kKernelVirtBase,
                 reinterpret_cast<u64>(kernel_end) - boot::kKernelVirtBase);
    pmm::reserve(image_pa, image_pa + image_size);
    pmm::set_fresh_frames_zero(kos_vmm);

    u64 kernel_pml4 = build_kernel_tables(features, direct, direct_count);
    arch::write_cr3(kernel_pml4);
    pmm::set_direct_map_base(boot::kDirectMapBase);

    const auto* bh = static_cast<const boot::BootImageHeader*>(pmm::phys_to_virt(image_pa));
    if (image_size < sizeof(boot::BootImageHeader) || bh->magic != boot::kBootImageMagic ||
        bh->version != boot::kBootImageVersion || bh->total_size > image_size ||
        bh->rootfs_offset > bh->total_size || bh->rootfs_size > bh->total_size - bh->rootfs_offset ||
        bh->launch_offset > bh->total_size || bh->launch_size > bh->total_size - bh->launch_offset ||
        bh->rootfs_offset % boot::kPageSize != 0 || image_pa % boot::kPageSize != 0)
        panic("kos kernel: the boot image is malformed (bad magic, version or section bounds)\n");

    g_stats = bh->flags & boot::kBootStats;
    g_boot_image = {image_pa, bh->total_size, bh};
    fpu_init(features.xsave, features.xcr0, ring3_fpu_only);
    // Preemption every 10 ms. Without an x2APIC the threads still run, each
    // until it blocks or exits.
    if (!arch::apic_timer_start(10000, boot::kDirectMapBase + arch::kXapicPhys))
        kprintf("kos kernel: no x2APIC timer: tasks are not preempted\n");
    if (const char* error = security_init())
        panic("kos kernel: the compiled policy cannot be loaded: %s\n", error);
    if (const char* error = volumes_init())
        panic("kos kernel: %s\n", error);
    if (const char* error = rootfs_access_init())
        panic("kos kernel: %s\n", error);
    // The other CPUs wait for the lock (this CPU holds it) until the
    // first thread runs; the programs' start info says how many there are.
    smp_start(cpus ? static_cast<abi::u32>(cpus) : 1, kernel_pml4);
    if (const char* error = start_tasks(kernel_pml4))
        panic("kos kernel: %s\n", error);

    // First entry to ring 3: the first runnable thread.
    static arch::TrapFrame frame;
    schedule(&frame, false);
    stats_user();
    kernel_unlock();
    enter_user(&frame);
}

} // namespace kos
