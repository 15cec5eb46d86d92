#include "process.h"

#include "../arch/x86_64/platform.h"
#include "kos/base/elf.h"
#include "kos/base/string.h"
#include "kos/boot.h"
#include "object_pool.h"
#include "pmm.h"

extern "C" const unsigned char kos_runtime_elf[];
extern "C" const unsigned char kos_runtime_elf_end[];

namespace kos {

Process* g_current = nullptr;

namespace {

namespace sys = abi::sys;
using abi::u64;

constexpr u64 kPage = pmm::kPageSize;
constinit Process g_first;

u64 page_down(u64 v) { return v & ~(kPage - 1); }
u64 page_up(u64 v) { return (v + kPage - 1) & ~(kPage - 1); }

// Copies kernel bytes into user memory of `as` (already mapped writable).
bool copy_to_user(vm::AddressSpace& as, u64 va, const void* src, u64 len) {
    const auto* s = static_cast<const unsigned char*>(src);
    while (len) {
        abi::i64 pa = as.translate(va, true);
        if (pa < 0)
            return false;
        u64 chunk = kPage - (va & (kPage - 1));
        if (chunk > len)
            chunk = len;
        memcpy(pmm::phys_to_virt(static_cast<u64>(pa)), s, chunk);
        va += chunk;
        s += chunk;
        len -= chunk;
    }
    return true;
}

bool load_runtime(Process& p, const char** error) {
    u64 size = static_cast<u64>(kos_runtime_elf_end - kos_runtime_elf);
    elf::Image img(kos_runtime_elf, size);
    if (img.validate() != elf::Error::None) {
        *error = "embedded runtime is not a valid ELF image";
        return false;
    }
    u64 blob_pa = platform::kernel_virt_to_phys(kos_runtime_elf);
    const sys::RuntimeHeader* header = nullptr;
    for (abi::u16 i = 0; i < img.phnum(); ++i) {
        const elf::Phdr& ph = img.phdr(i);
        if (ph.type != elf::kPtLoad)
            continue;
        u64 start = page_down(ph.vaddr);
        u64 end = page_up(ph.vaddr + ph.memsz);
        abi::u32 prot = ((ph.flags & elf::kPfR) ? vm::kRead : 0) |
                        ((ph.flags & elf::kPfW) ? vm::kWrite : 0) |
                        ((ph.flags & elf::kPfX) ? vm::kExec : 0);
        if (!header && ph.vaddr == sys::kRuntimeBase && ph.filesz >= sizeof(sys::RuntimeHeader))
            header = reinterpret_cast<const sys::RuntimeHeader*>(kos_runtime_elf + ph.offset);
        if (!(ph.flags & elf::kPfW) && ph.filesz == ph.memsz) {
            // Read-only segment: show the kernel image's frames, no copy.
            if (p.as.map_image(start, end - start, blob_pa + page_down(ph.offset), prot,
                               vm::kPinned) < 0) {
                *error = "cannot map the runtime's read-only segments";
                return false;
            }
            continue;
        }
        // Writable segment: zero-filled on first touch; only the pages
        // holding file bytes are backed now, by the copy.
        if (p.as.map_anon(start, end - start, prot | vm::kWrite, sys::kMapFixed, vm::kPinned) < 0 ||
            !copy_to_user(p.as, ph.vaddr, kos_runtime_elf + ph.offset, ph.filesz)) {
            *error = "cannot map the runtime's writable segments";
            return false;
        }
    }
    if (!header || header->magic != sys::kRuntimeMagic) {
        *error = "embedded runtime has no valid header at its base address";
        return false;
    }
    p.runtime_text_start = header->text_start;
    p.runtime_text_end = header->text_end;
    p.runtime_linux_entry = header->linux_entry;
    p.runtime_start_entry = header->start_entry;
    return true;
}

} // namespace

Process* create_first_process(u64 kernel_pml4, u64 image_pa, u64 image_size, const char** error) {
    Process& p = g_first;
    if (!p.as.init(kernel_pml4)) {
        *error = "out of memory for the first address space";
        return nullptr;
    }
    if (!load_runtime(p, error))
        return nullptr;

    const auto* bh = static_cast<const abi::boot::BootImageHeader*>(pmm::phys_to_virt(image_pa));
    p.image_pa = image_pa;
    p.image_size = image_size;
    p.rootfs_offset = bh->rootfs_offset;
    p.rootfs_size = bh->rootfs_size;
    if (p.as.map_image(sys::kRootfsMapBase, page_up(image_size), image_pa, vm::kRead,
                       vm::kPinned) < 0) {
        *error = "cannot map the boot image";
        return nullptr;
    }

    // Runtime stack (backed on first touch), then one page for the thread
    // block and one for the start info (backed now: the kernel writes
    // them), all pinned.
    u64 stack_base = sys::kRuntimeStackTop - sys::kRuntimeStackSize;
    if (p.as.map_anon(stack_base, sys::kRuntimeStackSize, vm::kRead | vm::kWrite, sys::kMapFixed,
                      vm::kPinned) < 0 ||
        p.as.map_anon(sys::kRuntimeStackTop, 2 * kPage, vm::kRead | vm::kWrite,
                      sys::kMapFixed | sys::kMapPopulate, vm::kPinned) < 0) {
        *error = "out of memory for the runtime stack";
        return nullptr;
    }
    Thread& t = p.main_thread;
    t.runtime_stack_top = sys::kRuntimeStackTop;
    t.thread_block_va = sys::kRuntimeStackTop;
    t.thread_block_pa = static_cast<u64>(p.as.translate(t.thread_block_va, true));
    auto* tb = static_cast<sys::ThreadBlock*>(pmm::phys_to_virt(t.thread_block_pa));
    tb->self = t.thread_block_va;
    tb->runtime_stack = t.runtime_stack_top;
    tb->tid = 1;

    p.start_info_va = sys::kRuntimeStackTop + kPage;
    auto* si = static_cast<sys::RuntimeStartInfo*>(
        pmm::phys_to_virt(static_cast<u64>(p.as.translate(p.start_info_va, true))));
    si->magic = sys::kRuntimeStartMagic;
    si->rootfs_base = sys::kRootfsMapBase + bh->rootfs_offset;
    si->rootfs_size = bh->rootfs_size;
    si->launch_base = sys::kRootfsMapBase + bh->launch_offset;
    si->launch_size = bh->launch_size;
    si->thread_block = t.thread_block_va;
    si->boot_flags = bh->flags;
    si->tsc_khz = bh->tsc_khz;
    si->realtime_at_tsc0_ns = bh->realtime_at_tsc0_ns;
    if (!platform::is_kos_vmm() || si->tsc_khz == 0) {
        platform::Clock c = platform::read_platform_clock();
        si->tsc_khz = c.tsc_khz;
        si->realtime_at_tsc0_ns = c.realtime_at_tsc0_ns;
    }
    memcpy(si->random_seed, bh->random_seed, sizeof si->random_seed);
    g_current = &p;
    return &p;
}

} // namespace kos
