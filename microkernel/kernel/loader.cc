#include "loader.h"
#include "rootfs_access.h"

#include "../arch/x86_64/platform.h"
#include "kos/base/elf.h"
#include "kos/base/string.h"
#include "kos/rootfs_image.h"
#include "pmm.h"

extern "C" const unsigned char kos_runtime_elf[];
extern "C" const unsigned char kos_runtime_elf_end[];
extern "C" const unsigned char kos_servers_elf[];
extern "C" const unsigned char kos_servers_elf_end[];

namespace kos {
abi::u64 boot_tsc(); // the TSC at the kernel's entry (trap.cc)

BootImage g_boot_image;

namespace {

namespace sys = abi::sys;
namespace rfs = abi::rootfs;
using abi::i64;
using abi::u32;
using abi::u64;

constexpr u64 kPage = pmm::kPageSize;
constexpr u64 kNativeBase = 0x400000;

u64 page_down(u64 v) { return v & ~(kPage - 1); }
u64 page_up(u64 v) { return (v + kPage - 1) & ~(kPage - 1); }

bool copy_to_user(vm::AddressSpace& as, u64 va, const void* src, u64 len) {
    return as.copy_out(va, src, len);
}

u32 prot_of(u32 flags) {
    return ((flags & elf::kPfR) ? vm::kRead : 0) | ((flags & elf::kPfW) ? vm::kWrite : 0) |
           ((flags & elf::kPfX) ? vm::kExec : 0);
}

// Maps an ELF image whose bytes live at physical `image_pa` (page-aligned):
// read-only segments show those frames, writable ones are copied.
const char* map_elf(vm::AddressSpace& as, const elf::Image& img, u64 image_pa, u32 vma_flags) {
    for (abi::u16 i = 0; i < img.phnum(); ++i) {
        const elf::Phdr& ph = img.phdr(i);
        if (ph.type != elf::kPtLoad || ph.memsz == 0)
            continue;
        u64 start = page_down(ph.vaddr);
        u64 end = page_up(ph.vaddr + ph.memsz);
        u32 prot = prot_of(ph.flags);
        if (!(ph.flags & elf::kPfW) && ph.filesz == ph.memsz && ph.offset % kPage == ph.vaddr % kPage) {
            if (as.map_image(start, end - start, image_pa + page_down(ph.offset), prot, vma_flags) < 0)
                return "cannot map a read-only segment";
            continue;
        }
        if (as.map_anon(start, end - start, prot | vm::kWrite, sys::kMapFixed, vma_flags) < 0 ||
            !copy_to_user(as, ph.vaddr, img.data() + ph.offset, ph.filesz))
            return "cannot map a writable segment";
    }
    return nullptr;
}

const rfs::RootfsHeader* rootfs_header() {
    const auto* bh = g_boot_image.header;
    return static_cast<const rfs::RootfsHeader*>(pmm::phys_to_virt(g_boot_image.pa + bh->rootfs_offset));
}

// Looks up an exact path in the rootfs image. The image was built by kos
// on the host; still, every entry touched is bounds-checked, and the whole
// image is never walked in ring 0 (which is slow where it is emulated).
const rfs::RootfsEntry* rootfs_find(const char* path) {
    const auto* bh = g_boot_image.header;
    const rfs::RootfsHeader* h = rootfs_header();
    u64 size = bh->rootfs_size;
    auto* base = reinterpret_cast<const abi::u8*>(h);
    if (size < sizeof *h || h->magic != rfs::kMagic || h->entry_size != sizeof(rfs::RootfsEntry) ||
        h->entries_offset > size || u64(h->entry_count) * sizeof(rfs::RootfsEntry) > size - h->entries_offset ||
        h->strings_offset > size || h->strings_size > size - h->strings_offset)
        return nullptr;
    const auto* entries = reinterpret_cast<const rfs::RootfsEntry*>(base + h->entries_offset);
    const char* strings = reinterpret_cast<const char*>(base + h->strings_offset);
    u64 len = strlen(path);
    u32 lo = 0, hi = h->entry_count;
    while (lo < hi) {
        u32 mid = lo + (hi - lo) / 2;
        const rfs::RootfsEntry& e = entries[mid];
        if (u64(e.path_offset) + e.path_len > h->strings_size)
            return nullptr;
        int c = rfs::path_compare(strings + e.path_offset, e.path_len, path, len);
        if (c == 0) {
            if (e.data_offset > size || e.size > size - e.data_offset || e.data_offset % kPage)
                return nullptr;
            return &e;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return nullptr;
}

} // namespace

u64 user_visible_image_size() {
    const auto* bh = g_boot_image.header;
    return page_up(bh->rootfs_offset + bh->rootfs_size);
}

namespace {

// The launch description of the `index`-th Linux process (abi/kos/boot.h):
// its offset in the launch section and its size, or false when the
// section holds no such block.
bool find_launch(u32 index, u64* offset, u64* size) {
    const auto* bh = g_boot_image.header;
    const auto* base = static_cast<const abi::u8*>(pmm::phys_to_virt(g_boot_image.pa + bh->launch_offset));
    u64 at = 0;
    for (u32 i = 0;; ++i) {
        if (at > bh->launch_size || bh->launch_size - at < sizeof(abi::boot::LaunchHeader))
            return false;
        abi::boot::LaunchHeader lh;
        memcpy(&lh, base + at, sizeof lh);
        u64 len = sizeof lh + u64{lh.strings_size};
        if (len > bh->launch_size - at)
            return false;
        if (i == index) {
            *offset = at;
            *size = len;
            return true;
        }
        if (lh.next <= at || lh.next % 8 != 0)
            return false;
        at = lh.next;
    }
}

} // namespace

const char* start_linux_task(Task* task, u32 launch_index) {
    Thread* t = task->thread;
    vm::AddressSpace& as = task->as;
    u64 size = static_cast<u64>(kos_runtime_elf_end - kos_runtime_elf);
    elf::Image img(kos_runtime_elf, size);
    if (img.validate() != elf::Error::None)
        return "the embedded runtime is not a valid ELF image";
    if (const char* err = map_elf(as, img, platform::kernel_virt_to_phys(kos_runtime_elf), vm::kPinned))
        return err;
    const auto* header = reinterpret_cast<const sys::RuntimeHeader*>(kos_runtime_elf + img.phdr(0).offset);
    if (img.phdr(0).vaddr != sys::kRuntimeBase || header->magic != sys::kRuntimeMagic)
        return "the embedded runtime has no valid header at its base address";
    task->linux_personality = true;
    task->runtime_text_start = header->text_start;
    task->runtime_text_end = header->text_end;
    task->runtime_linux_entry = header->linux_entry;
    task->runtime_fpu_saved = header->fpu_saved;
    task->runtime_resume_start = header->resume_start;
    task->runtime_resume_end = header->resume_end;

    // The header, the launch description and what of the rootfs the task's
    // label may read, read-only; never what follows the rootfs (the init
    // description and the compiled policy).
    const auto* bh = g_boot_image.header;
    if (const char* err = map_rootfs_for(as, task->label_name, &task->rootfs_access))
        return err;
    // Runtime stack (backed on first touch), then one page for the thread
    // block and one for the start info (backed now: the kernel writes
    // them), all pinned.
    u64 stack_base = sys::kRuntimeStackTop - sys::kRuntimeStackSize;
    if (as.map_anon(stack_base, sys::kRuntimeStackSize, vm::kRead | vm::kWrite, sys::kMapFixed,
                    vm::kPinned) < 0 ||
        as.map_anon(sys::kRuntimeStackTop, 2 * kPage, vm::kRead | vm::kWrite,
                    sys::kMapFixed | sys::kMapPopulate, vm::kPinned) < 0)
        return "out of memory for the runtime stack";
    t->runtime_stack_top = sys::kRuntimeStackTop;
    t->thread_block_va = sys::kRuntimeStackTop;
    t->thread_block_pa = static_cast<u64>(as.translate(t->thread_block_va, true));
    auto* tb = static_cast<sys::ThreadBlock*>(pmm::phys_to_virt(t->thread_block_pa));
    tb->self = t->thread_block_va;
    tb->runtime_stack = t->runtime_stack_top;
    tb->tid = 1;
    // The program's initial x87/SSE state, loaded by the runtime when it
    // starts the program (FCW 0x37f, MXCSR 0x1f80; the page is zero).
    auto* fpu = reinterpret_cast<abi::u8*>(tb) + sys::kFpuAreaOffset;
    fpu[0] = 0x7f;
    fpu[1] = 0x03;
    fpu[24] = 0x80;
    fpu[25] = 0x1f;

    u64 si_va = sys::kRuntimeStackTop + kPage;
    auto* si = static_cast<sys::RuntimeStartInfo*>(
        pmm::phys_to_virt(static_cast<u64>(as.translate(si_va, true))));
    si->magic = sys::kRuntimeStartMagic;
    si->rootfs_base = sys::kRootfsMapBase + bh->rootfs_offset;
    si->rootfs_size = bh->rootfs_size;
    u64 launch_at = 0, launch_size = 0;
    if (!find_launch(launch_index, &launch_at, &launch_size))
        return "the boot image has no launch description for this Linux process";
    si->launch_base = sys::kRootfsMapBase + bh->launch_offset + launch_at;
    si->launch_size = launch_size;
    si->readable_bitmap = rootfs_readable_bitmap(task->rootfs_access);
    si->thread_block = t->thread_block_va;
    si->boot_flags = bh->flags;
    si->tsc_khz = bh->tsc_khz;
    // The VMM took the time as it set the vCPU up; the TSC then should
    // read 0, but some (nested) KVMs keep the host's TSC. What it read at
    // the kernel's entry is what it read then, give or take the boot.
    u64 entry_tsc = boot_tsc();
    u64 since_tsc0 = bh->tsc_khz ? entry_tsc / bh->tsc_khz * 1'000'000 + entry_tsc % bh->tsc_khz * 1'000'000 / bh->tsc_khz
                                 : 0;
    si->realtime_at_tsc0_ns = bh->realtime_at_tsc0_ns > since_tsc0 ? bh->realtime_at_tsc0_ns - since_tsc0 : 0;
    if (!platform::is_kos_vmm() || si->tsc_khz == 0) {
        platform::Clock c = platform::read_platform_clock();
        si->tsc_khz = c.tsc_khz;
        si->realtime_at_tsc0_ns = c.realtime_at_tsc0_ns;
    }
    memcpy(si->random_seed, bh->random_seed, sizeof si->random_seed);
    si->cpus = g_cpu_count;
    si->xsave_mask = runtime_xsave_mask();
    si->xsave_size = runtime_xsave_size();
    si->vfs_channel = task->server_channel[u32(PersonalityServer::Vfs) - 1];
    si->proc_channel = task->server_channel[u32(PersonalityServer::Proc) - 1];
    si->pipe_channel = task->server_channel[u32(PersonalityServer::Pipe) - 1];

    t->frame = arch::TrapFrame{};
    t->frame.rip = header->start_entry;
    t->frame.cs = arch::kUserCs;
    t->frame.rflags = 0x202;
    t->frame.rsp = t->runtime_stack_top;
    t->frame.ss = arch::kUserDs;
    t->frame.rdi = si_va;
    t->gs_base = t->thread_block_va;
    return nullptr;
}

namespace {
struct ServerName {
    PersonalityServer server;
    const char* program;
    const char* channel;
};
constexpr ServerName kServerNames[] = {{PersonalityServer::Vfs, sys::kVfsServerProgram, "vfs"},
                                       {PersonalityServer::Proc, sys::kProcServerProgram, "proc"},
                                       {PersonalityServer::Pipe, sys::kPipeServerProgram, "pipe"}};
} // namespace

PersonalityServer personality_server(const char* program) {
    for (const ServerName& n : kServerNames)
        if (strcmp(program, n.program) == 0)
            return n.server;
    return PersonalityServer::None;
}

const char* personality_channel(PersonalityServer server) {
    for (const ServerName& n : kServerNames)
        if (n.server == server)
            return n.channel;
    return "";
}

const char* start_native_task(Task* task, const char* const* argv, u32 argc,
                              const sys::NativeHandle* handles, u32 handle_count) {
    Thread* t = task->thread;
    vm::AddressSpace& as = task->as;
    if (argc == 0 || argc > 32 || handle_count > sys::kMaxNativeHandles)
        return "too many arguments or handles for a native program";
    u64 file_pa = 0, file_size = 0;
    if (personality_server(argv[0]) != PersonalityServer::None) {
        // One program, every server: argv[0] says which it is.
        file_pa = platform::kernel_virt_to_phys(kos_servers_elf);
        file_size = static_cast<u64>(kos_servers_elf_end - kos_servers_elf);
    } else {
        const rfs::RootfsEntry* e = rootfs_find(argv[0]);
        if (!e || (e->mode & rfs::kTypeMask) != rfs::kTypeFile)
            return "the program is not a regular file in the rootfs";
        file_pa = g_boot_image.pa + g_boot_image.header->rootfs_offset + e->data_offset;
        file_size = e->size;
    }
    elf::Image img(static_cast<const abi::u8*>(pmm::phys_to_virt(file_pa)), file_size);
    if (elf::Error err = img.validate(); err != elf::Error::None)
        return elf::error_string(err);
    if (img.ehdr().type != elf::kTypeExec || img.ehdr().entry < kNativeBase)
        return "a native program must be a fixed-address executable above 4 MiB";
    if (const char* err = map_elf(as, img, file_pa, 0))
        return err;
    u64 stack_lo = sys::kAppStackTop - sys::kNativeStackSize;
    if (as.map_anon(stack_lo, sys::kNativeStackSize, vm::kRead | vm::kWrite, sys::kMapFixed, 0) < 0 ||
        as.map_anon(sys::kAppStackTop, kPage, vm::kRead | vm::kWrite,
                    sys::kMapFixed | sys::kMapPopulate, 0) < 0)
        return "out of memory for the stack";
    // Start info page: NativeStartInfo, argv pointers, then the strings.
    struct Page {
        sys::NativeStartInfo info;
        u64 argv[33];
        char strings[kPage - sizeof(sys::NativeStartInfo) - 33 * 8];
    };
    static_assert(sizeof(Page) == kPage);
    auto* page = static_cast<Page*>(pmm::phys_to_virt(static_cast<u64>(as.translate(sys::kAppStackTop, true))));
    page->info.magic = sys::kNativeStartMagic;
    page->info.argc = argc;
    page->info.handle_count = handle_count;
    page->info.argv = sys::kAppStackTop + offsetof(Page, argv);
    page->info.tsc_khz = g_boot_image.header->tsc_khz;
    if (!platform::is_kos_vmm() || page->info.tsc_khz == 0)
        page->info.tsc_khz = platform::read_platform_clock().tsc_khz;
    for (u32 i = 0; i < handle_count; ++i)
        page->info.handles[i] = handles[i];
    u64 used = 0;
    for (u32 i = 0; i < argc; ++i) {
        u64 n = strlen(argv[i]) + 1;
        if (used + n > sizeof page->strings)
            return "native program arguments are too long";
        memcpy(page->strings + used, argv[i], n);
        page->argv[i] = sys::kAppStackTop + offsetof(Page, strings) + used;
        used += n;
    }
    page->argv[argc] = 0;

    t->frame = arch::TrapFrame{};
    t->frame.rip = img.ehdr().entry;
    t->frame.cs = arch::kUserCs;
    t->frame.rflags = 0x202;
    t->frame.rsp = sys::kAppStackTop - 8; // as after a call: rsp + 8 is 16-byte aligned
    t->frame.ss = arch::kUserDs;
    t->frame.rdi = sys::kAppStackTop;
    return nullptr;
}

} // namespace kos
