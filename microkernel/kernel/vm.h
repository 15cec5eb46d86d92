// User address spaces: a sorted list of mappings (VMAs) over one page table.
//
// Anonymous mappings are backed on first touch (or at once with populate);
// image mappings show physical frames of the read-only boot image without
// copying. Pinned mappings (the personality runtime, its stacks and thread
// blocks) cannot be unmapped or reprotected from user space: the kernel
// writes into them.
//
// All functions return >= 0 or a negated Linux errno; on error nothing has
// changed (validate, then perform).
#pragma once

#include "../arch/x86_64/paging.h"
#include "kos/types.h"

namespace kos::vm {

using abi::i64;
using abi::u32;
using abi::u64;

enum Prot : u32 { kRead = 1, kWrite = 2, kExec = 4 };
enum VmaFlags : u32 { kPinned = 1, kImage = 2 };
// A software bit of user PTEs: the frame is shared copy-on-write since a
// fork (mapped read-only however the VMA allows writes).
inline constexpr u64 kCow = 1ull << 9;

struct Vma {
    u64 start = 0;
    u64 end = 0;
    u32 prot = 0;
    u32 flags = 0;
    u64 image_pa = 0; // kImage: physical address backing `start`
    Vma* next = nullptr;
};

class AddressSpace {
public:
    bool init(u64 kernel_pml4_pa);
    u64 pml4() const { return m_pml4; }

    i64 map_anon(u64 addr, u64 len, u32 prot, u64 map_flags, u32 vma_flags);
    i64 map_image(u64 addr, u64 len, u64 pa, u32 prot, u32 vma_flags);
    i64 unmap(u64 addr, u64 len);
    i64 protect(u64 addr, u64 len, u32 prot);
    // Removes every mapping that is not pinned (a new program image).
    void unmap_unpinned();
    // Makes this (new, empty) address space a copy of `src` (fork): the
    // same mappings, anonymous pages copied, image pages shared.
    bool clone_from(const AddressSpace& src);
    // Frees every mapping, page table and the top table (the task is gone
    // and its address space is not loaded).
    void release();

    // Handles a user page fault; false if the access is not allowed or
    // memory ran out (then last_fault_out_of_memory() is true).
    bool handle_fault(u64 addr, bool write, bool exec);
    bool last_fault_out_of_memory() const { return m_fault_oom; }
    // Physical address of user byte `va` for a kernel access, faulting the
    // page in if its mapping allows the access; -EFAULT otherwise.
    i64 translate(u64 va, bool write);
    // translate() for `count` consecutive pages from the page of `va`:
    // their physical frame addresses in `frames` (page-aligned). One table
    // walk per 2 MiB; pages that are absent or read-only for a write are
    // faulted in one by one. Returns how many pages were translated (fewer
    // than `count` at the first inaccessible one).
    u32 translate_pages(u64 va, u32 count, bool write, u64* frames);
    // Copies between user memory of this address space and kernel memory,
    // page by page through the direct map (faulting pages in as their
    // mappings allow); false if any byte is not accessible.
    bool copy_in(u64 va, void* dst, u64 len);
    bool copy_out(u64 va, const void* src, u64 len);

    u64 mapped_pages() const { return m_pages; }

    // The CPUs whose CR3 holds this address space (bit n: CPU n). Changes
    // that take rights away (unmap, protect, copy-on-write) flush their
    // TLBs before the operation returns.
    void set_loaded_on(u32 cpu, bool loaded) {
        if (loaded)
            m_cpus |= 1ull << cpu;
        else
            m_cpus &= ~(1ull << cpu);
    }
    u64 loaded_on() const { return m_cpus; }

private:
    // A TLB entry of `va` (or all) is stale: flushed here at once, on the
    // other CPUs that have this address space loaded by sync_tlbs().
    void flush_page(u64 va) const;
    void flush_all() const;
    void sync_tlbs() const;
    Vma* find(u64 addr) const;
    bool overlaps(u64 start, u64 end, bool* pinned) const;
    u64 find_free(u64 len) const;
    i64 insert(u64 start, u64 end, u32 prot, u32 flags, u64 image_pa);
    bool populate(const Vma& v, u64 page);
    bool populate_range(const Vma& v, u64 start, u64 end);
    void clear_ptes(u64 start, u64 end, bool free_frames, bool flush_each);
    void apply_prot(u64 start, u64 end, u32 prot);
    bool break_cow(u64* pte, u64 page);
    i64 split_at(u64 addr); // ensures a VMA boundary at addr

    u64 m_pml4 = 0;
    arch::paging::TableLog m_tables;
    Vma* m_head = nullptr;
    u64 m_pages = 0;
    bool m_fault_oom = false;
    u64 m_cpus = 0;
    mutable u64 m_stale_cpus = 0; // other CPUs with stale entries, until sync_tlbs()
};


} // namespace kos::vm
