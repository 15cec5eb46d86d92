// Loading a static Linux ELF program from the rootfs and building its
// initial stack (System V AMD64 ABI §3.4.1; Linux fs/binfmt_elf.c layout).
#include "kos/base/elf.h"
#include "kos/base/string.h"
#include "fs.h"
#include "runtime.h"

namespace kos::rt {
namespace {

namespace rfs = abi::rootfs;
namespace sys = abi::sys;

constexpr u64 kPage = 4096;
constexpr u64 kStaticPieBase = 0x0000555555554000ull;

u64 page_down(u64 v) { return v & ~(kPage - 1); }
u64 page_up(u64 v) { return (v + kPage - 1) & ~(kPage - 1); }

enum Aux : u64 {
    AT_NULL = 0, AT_PHDR = 3, AT_PHENT = 4, AT_PHNUM = 5, AT_PAGESZ = 6, AT_BASE = 7,
    AT_FLAGS = 8, AT_ENTRY = 9, AT_UID = 11, AT_EUID = 12, AT_GID = 13, AT_EGID = 14,
    AT_PLATFORM = 15, AT_HWCAP = 16, AT_CLKTCK = 17, AT_SECURE = 23, AT_RANDOM = 25,
    AT_HWCAP2 = 26, AT_EXECFN = 31, AT_MINSIGSTKSZ = 51,
};

u64 prot_of(u32 flags) {
    return ((flags & elf::kPfR) ? sys::kProtRead : 0) | ((flags & elf::kPfW) ? sys::kProtWrite : 0) |
           ((flags & elf::kPfX) ? sys::kProtExec : 0);
}

i64 load_segment(const rfs::RootfsEntry& file, const elf::Phdr& ph, u64 bias) {
    u64 vaddr = ph.vaddr + bias;
    u64 start = page_down(vaddr);
    u64 file_end = vaddr + ph.filesz;
    u64 mem_end = page_up(vaddr + ph.memsz);
    u64 prot = prot_of(ph.flags);
    bool aligned = (ph.offset % kPage) == (ph.vaddr % kPage);
    if (!(ph.flags & elf::kPfW) && aligned && ph.filesz == ph.memsz && ph.filesz > 0) {
        // Read-only segment: map the rootfs image's pages, no copy.
        u64 image_off = file.data_offset + page_down(ph.offset);
        return native(Sys::vm_map_image, start, page_up(file_end) - start, image_off, prot);
    }
    i64 r = native(Sys::vm_map, start, mem_end - start, sys::kProtRead | sys::kProtWrite,
                   sys::kMapFixed | sys::kMapPopulate);
    if (r < 0)
        return r;
    memcpy(reinterpret_cast<void*>(vaddr), g_rt.rootfs.file_data(file) + ph.offset, ph.filesz);
    if (!(prot & sys::kProtWrite))
        return native(Sys::vm_protect, start, mem_end - start, prot);
    return 0;
}

} // namespace

i64 exec_program(const char* path, const char* const* argv, const char* const* envp,
                 sys::LinuxSyscallFrame* frame, bool replace) {
    i64 idx = fs_resolve(-100, path, true);
    if (idx < 0)
        return idx;
    const rfs::RootfsEntry& file = g_rt.rootfs.entry(static_cast<u32>(idx));
    if ((file.mode & rfs::kTypeMask) == rfs::kTypeDir)
        return -kEACCES;
    if (!(file.mode & 0111) || !rootfs_readable(static_cast<u32>(idx)))
        return -kEACCES;
    elf::Image img(g_rt.rootfs.file_data(file), file.size);
    if (elf::Error err = img.validate(); err != elf::Error::None) {
        // execve of a script or a foreign binary fails with ENOEXEC (shells
        // then run scripts themselves); the first program gets a message.
        if (!replace)
            printf(2, "kos: cannot execute %s: %s\n", path, elf::error_string(err));
        return -8; // ENOEXEC
    }
    // execve is the policy's decision (execute, from the process's label
    // to itself), on the program's resolved path as the process backend
    // asks it; the kernel audits the verdict as the policy says.
    if (replace) {
        const char* resolved = g_rt.rootfs.path(file);
        if (i64 r = native(Sys::exec_check, reinterpret_cast<u64>(resolved), cstr_len(resolved, rfs::kMaxPath));
            r < 0)
            return r;
    }
    // Everything is checked: from here the old image goes away.
    if (replace) {
        i64 r = native(Sys::vm_reset);
        if (r < 0)
            return r;
    }
    u64 bias = img.ehdr().type == elf::kTypeDyn ? kStaticPieBase : 0;
    u64 brk = 0;
    u64 phdr_addr = 0;
    for (u16 i = 0; i < img.phnum(); ++i) {
        const elf::Phdr& ph = img.phdr(i);
        if (ph.type == elf::kPtPhdr)
            phdr_addr = ph.vaddr + bias;
        if (ph.type != elf::kPtLoad || ph.memsz == 0)
            continue;
        if (ph.vaddr + bias < sys::kMinUserAddr || ph.vaddr + bias + ph.memsz > sys::kMmapTop) {
            printf(2, "kos: cannot execute %s: segment at %#lx is outside the user address range\n",
                   path, ph.vaddr);
            return -8;
        }
        if (!phdr_addr && ph.offset <= img.ehdr().phoff &&
            img.ehdr().phoff + img.phnum() * sizeof(elf::Phdr) <= ph.offset + ph.filesz)
            phdr_addr = ph.vaddr + bias + (img.ehdr().phoff - ph.offset);
        i64 r = load_segment(file, ph, bias);
        if (r < 0) {
            printf(2, "kos: cannot execute %s: mapping segment at %#lx failed (error %ld)\n", path,
                   ph.vaddr + bias, -r);
            return r;
        }
        if (page_up(ph.vaddr + bias + ph.memsz) > brk)
            brk = page_up(ph.vaddr + bias + ph.memsz);
    }
    g_rt.brk_start = g_rt.brk_cur = g_rt.brk_mapped = brk;

    // Stack: mapped whole, backed on first touch.
    u64 stack_lo = sys::kAppStackTop - sys::kAppStackSize;
    i64 r = native(Sys::vm_map, stack_lo, sys::kAppStackSize, sys::kProtRead | sys::kProtWrite,
                   sys::kMapFixed);
    if (r < 0)
        return r;

    // Strings at the top, then the vectors below, 16-byte aligned at argc.
    u64 sp = sys::kAppStackTop;
    auto push_bytes = [&](const void* data, u64 len) {
        sp -= len;
        memcpy(reinterpret_cast<void*>(sp), data, len);
        return sp;
    };
    u64 argc = 0, envc = 0;
    while (argv[argc])
        ++argc;
    while (envp[envc])
        ++envc;
    if (argc > 4096 || envc > 4096)
        return -7; // E2BIG
    u64 execfn = push_bytes(path, cstr_len(path, rfs::kMaxPath) + 1);
    u64 platform = push_bytes("x86_64", 7);
    u8 random[16];
    random_fill(random, sizeof random);
    sp &= ~15ull;
    u64 random_addr = push_bytes(random, sizeof random);
    // Pointers to the strings (bounded above; static: one exec at a time).
    static u64 arg_ptrs[4097], env_ptrs[4097];
    for (u64 i = argc; i-- > 0;)
        arg_ptrs[i] = push_bytes(argv[i], cstr_len(argv[i], 1 << 20) + 1);
    for (u64 i = envc; i-- > 0;)
        env_ptrs[i] = push_bytes(envp[i], cstr_len(envp[i], 1 << 20) + 1);
    if (sp < sys::kAppStackTop - 256 * 1024)
        return -7; // E2BIG: arguments larger than 256 KiB
    sp &= ~15ull;

    u64 aux[][2] = {
        {AT_PHDR, phdr_addr},        {AT_PHENT, sizeof(elf::Phdr)}, {AT_PHNUM, img.phnum()},
        {AT_PAGESZ, kPage},          {AT_BASE, 0},                  {AT_FLAGS, 0},
        {AT_ENTRY, img.ehdr().entry + bias}, {AT_UID, g_rt.launch.uid}, {AT_EUID, g_rt.launch.uid},
        {AT_GID, g_rt.launch.gid},   {AT_EGID, g_rt.launch.gid},    {AT_SECURE, 0},
        {AT_RANDOM, random_addr},    {AT_CLKTCK, 100},              {AT_PLATFORM, platform},
        {AT_EXECFN, execfn},         {AT_HWCAP, 0},                 {AT_HWCAP2, 0},
        {AT_MINSIGSTKSZ, 2048},      {AT_NULL, 0},
    };
    u64 words = 1 + argc + 1 + envc + 1 + sizeof aux / sizeof(u64);
    sp -= words * 8;
    sp &= ~15ull;
    auto* w = reinterpret_cast<u64*>(sp);
    *w++ = argc;
    for (u64 i = 0; i < argc; ++i)
        *w++ = arg_ptrs[i];
    *w++ = 0;
    for (u64 i = 0; i < envc; ++i)
        *w++ = env_ptrs[i];
    *w++ = 0;
    memcpy(w, aux, sizeof aux);

    memset(frame, 0, sizeof *frame);
    frame->rsp = sp;
    frame->rip = img.ehdr().entry + bias;
    frame->rflags = 0x202;
    proc_set_program(path, argv);
    return 0;
}

} // namespace kos::rt
