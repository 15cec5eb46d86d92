#include "vm.h"

#include "../arch/x86_64/paging.h"
#include "errno.h"
#include "kos/base/string.h"
#include "kos/syscall.h"
#include "object_pool.h"
#include "pmm.h"
#include "tlb.h"
#include "../arch/x86_64/platform.h"

namespace kos::vm {
namespace {

namespace pg = arch::paging;
namespace sys = abi::sys;

constinit ObjectPool<Vma> g_vmas;

constexpr u64 kPage = pmm::kPageSize;
constexpr u64 kFaultAround = 64; // image pages mapped per fault (aligned block)

u64 pte_bits(u32 prot) {
    u64 bits = pg::kPresent | pg::kUser;
    if (prot & kWrite)
        bits |= pg::kWrite;
    if (!(prot & kExec))
        bits |= pg::nx_bit();
    return bits;
}

bool range_ok(u64 addr, u64 len) {
    return len != 0 && addr % kPage == 0 && len % kPage == 0 && addr >= sys::kMinUserAddr &&
           addr <= sys::kUserTop && len <= sys::kUserTop - addr;
}

} // namespace


bool AddressSpace::init(u64 kernel_pml4_pa) {
    m_pml4 = pmm::alloc_frame(true);
    if (m_pml4 == pmm::kNoFrame)
        return false;
    auto* dst = static_cast<u64*>(pmm::phys_to_virt(m_pml4));
    auto* src = static_cast<u64*>(pmm::phys_to_virt(kernel_pml4_pa));
    for (int i = 256; i < 512; ++i)
        dst[i] = src[i];
    return true;
}

Vma* AddressSpace::find(u64 addr) const {
    for (Vma* v = m_head; v && v->start <= addr; v = v->next)
        if (addr < v->end)
            return v;
    return nullptr;
}

bool AddressSpace::overlaps(u64 start, u64 end, bool* pinned) const {
    bool any = false;
    *pinned = false;
    for (Vma* v = m_head; v && v->start < end; v = v->next) {
        if (v->end > start) {
            any = true;
            if (v->flags & kPinned)
                *pinned = true;
        }
    }
    return any;
}

u64 AddressSpace::find_free(u64 len) const {
    // Highest gap below kMmapTop that fits.
    u64 best = 0;
    u64 prev_end = sys::kMinUserAddr;
    for (Vma* v = m_head;; v = v->next) {
        u64 gap_end = v ? v->start : sys::kMmapTop;
        if (gap_end > sys::kMmapTop)
            gap_end = sys::kMmapTop;
        if (gap_end > prev_end && gap_end - prev_end >= len)
            best = gap_end - len;
        if (!v || v->start >= sys::kMmapTop)
            break;
        prev_end = v->end;
    }
    return best;
}

i64 AddressSpace::insert(u64 start, u64 end, u32 prot, u32 flags, u64 image_pa) {
    Vma* n = g_vmas.alloc();
    if (!n)
        return -err::kNoMem;
    n->start = start;
    n->end = end;
    n->prot = prot;
    n->flags = flags;
    n->image_pa = image_pa;
    Vma** link = &m_head;
    while (*link && (*link)->start < start)
        link = &(*link)->next;
    n->next = *link;
    *link = n;
    return static_cast<i64>(start);
}

i64 AddressSpace::map_anon(u64 addr, u64 len, u32 prot, u64 map_flags, u32 vma_flags) {
    if (len == 0 || len > sys::kUserTop)
        return -err::kInval;
    len = (len + kPage - 1) & ~(kPage - 1);
    if (map_flags & sys::kMapFixed) {
        if (!range_ok(addr, len))
            return -err::kInval;
        bool pinned = false;
        if (overlaps(addr, addr + len, &pinned)) {
            if (pinned || !(map_flags & sys::kMapReplace))
                return pinned ? -err::kNoMem : -err::kExist;
            i64 r = unmap(addr, len);
            if (r < 0)
                return r;
        }
    } else {
        addr = find_free(len);
        if (addr == 0)
            return -err::kNoMem;
    }
    i64 r = insert(addr, addr + len, prot, vma_flags, 0);
    if (r < 0)
        return r;
    if (map_flags & sys::kMapPopulate) {
        if (!populate_range(*find(addr), addr, addr + len)) {
            unmap(addr, len);
            return -err::kNoMem;
        }
    }
    return static_cast<i64>(addr);
}

i64 AddressSpace::map_image(u64 addr, u64 len, u64 pa, u32 prot, u32 vma_flags) {
    if (!range_ok(addr, len) || pa % kPage != 0 || (prot & kWrite))
        return -err::kInval;
    bool pinned = false;
    if (overlaps(addr, addr + len, &pinned))
        return -err::kExist;
    return insert(addr, addr + len, prot, vma_flags | kImage, pa);
}

// Backs [start, end) of `v` (page-aligned, inside v), skipping pages that
// are already present. One table walk per 2 MiB: the per-page work is a
// few instructions, which matters where ring-0 code is emulated.
bool AddressSpace::populate_range(const Vma& v, u64 start, u64 end) {
    u64 page = start;
    while (page < end) {
        u64* pte = nullptr;
        if (pg::walk(m_pml4, page, true, &pte, &m_tables) != pg::WalkResult::Ok)
            return false;
        u64 table_end = (page | (512 * kPage - 1)) + 1;
        u64 stop = end < table_end ? end : table_end;
        u64 bits = pte_bits(v.prot);
        for (; page < stop; page += kPage, ++pte) {
            if (*pte & pg::kPresent)
                continue;
            u64 frame;
            if (v.flags & kImage) {
                frame = v.image_pa + (page - v.start);
            } else {
                frame = pmm::alloc_frame(true);
                if (frame == pmm::kNoFrame)
                    return false;
            }
            *pte = frame | bits;
            ++m_pages;
        }
    }
    return true;
}

bool AddressSpace::populate(const Vma& v, u64 page) { return populate_range(v, page, page + kPage); }

void AddressSpace::clear_ptes(u64 start, u64 end, bool free_frames, bool flush_each) {
    // One walk per page table (2 MiB), then its entries in order. TLB
    // entries go one by one (flush_each) or by the caller's full flush:
    // invlpg is emulated where ring 0 is.
    u64 p = start;
    while (p < end) {
        u64 table_end = (p | (512 * kPage - 1)) + 1;
        u64 stop = end < table_end ? end : table_end;
        u64* pte = nullptr;
        if (pg::walk(m_pml4, p, false, &pte) != pg::WalkResult::Ok) {
            p = stop; // no table here
            continue;
        }
        for (; p < stop; p += kPage, ++pte) {
            if (!(*pte & pg::kPresent))
                continue;
            if (free_frames)
                pmm::release_user_frame(*pte & pg::kAddrMask);
            *pte = 0;
            if (flush_each)
                flush_page(p);
            --m_pages;
        }
    }
}

void AddressSpace::flush_page(u64 va) const {
    arch::flush_tlb_page(va);
    m_stale_cpus |= m_cpus & ~arch::tlb_this_cpu_bit();
}

void AddressSpace::flush_all() const {
    arch::flush_tlb_all();
    m_stale_cpus |= m_cpus & ~arch::tlb_this_cpu_bit();
}

void AddressSpace::sync_tlbs() const {
    if (m_stale_cpus) {
        arch::tlb_shootdown(m_stale_cpus);
        m_stale_cpus = 0;
    }
}

i64 AddressSpace::split_at(u64 addr) {
    Vma* v = find(addr);
    if (!v || v->start == addr)
        return 0;
    Vma* n = g_vmas.alloc();
    if (!n)
        return -err::kNoMem;
    *n = *v;
    n->start = addr;
    if (v->flags & kImage)
        n->image_pa = v->image_pa + (addr - v->start);
    v->end = addr;
    v->next = n;
    return 0;
}

i64 AddressSpace::unmap(u64 addr, u64 len) {
    if (len == 0 || addr % kPage != 0 || addr > sys::kUserTop)
        return -err::kInval;
    len = (len + kPage - 1) & ~(kPage - 1);
    if (len > sys::kUserTop - addr)
        return -err::kInval;
    u64 end = addr + len;
    bool pinned = false;
    if (!overlaps(addr, end, &pinned))
        return 0;
    if (pinned)
        return -err::kInval;
    // Split first (may fail), then remove (cannot fail).
    if (split_at(addr) < 0 || split_at(end) < 0)
        return -err::kNoMem;
    bool flush_each = end - addr <= 16 * kPage; // else one full flush at the end
    Vma** link = &m_head;
    while (*link) {
        Vma* v = *link;
        if (v->start >= addr && v->end <= end) {
            clear_ptes(v->start, v->end, !(v->flags & kImage), flush_each);
            *link = v->next;
            g_vmas.free(v);
        } else {
            link = &v->next;
        }
    }
    if (!flush_each)
        flush_all();
    sync_tlbs();
    return 0;
}

namespace {
bool copy_user(AddressSpace& as, u64 va, abi::u8* k, u64 len, bool to_user) {
    while (len) {
        i64 pa = as.translate(va, to_user);
        if (pa < 0)
            return false;
        u64 chunk = kPage - (va & (kPage - 1));
        if (chunk > len)
            chunk = len;
        void* user = pmm::phys_to_virt(static_cast<u64>(pa));
        if (to_user)
            memcpy(user, k, chunk);
        else
            memcpy(k, user, chunk);
        va += chunk;
        k += chunk;
        len -= chunk;
    }
    return true;
}
} // namespace

bool AddressSpace::copy_in(u64 va, void* dst, u64 len) {
    return copy_user(*this, va, static_cast<abi::u8*>(dst), len, false);
}

bool AddressSpace::copy_out(u64 va, const void* src, u64 len) {
    return copy_user(*this, va, static_cast<abi::u8*>(const_cast<void*>(src)), len, true);
}

bool AddressSpace::clone_from(const AddressSpace& src) {
    bool shared_any = false;
    for (Vma* v = src.m_head; v; v = v->next) {
        if (insert(v->start, v->end, v->prot, v->flags, v->image_pa) < 0)
            return false;
        if (v->flags & kImage)
            continue; // shown again on demand from the same frames
        // One walk per page table (2 MiB), then its entries in order:
        // ring-0 instructions are expensive where they are emulated.
        u64 page = v->start;
        while (page < v->end) {
            u64 table_end = (page | (512 * kPage - 1)) + 1;
            u64 stop = v->end < table_end ? v->end : table_end;
            u64* spte = nullptr;
            if (pg::walk(src.m_pml4, page, false, &spte) != pg::WalkResult::Ok) {
                page = stop; // no table: nothing mapped here
                continue;
            }
            u64* dtable = nullptr; // the child's page table for this span
            for (; page < stop; page += kPage, ++spte) {
                if (!(*spte & pg::kPresent))
                    continue;
                u64 slot = (page >> 12) & 511;
                if (!dtable) {
                    u64* dpte = nullptr;
                    if (pg::walk(m_pml4, page, true, &dpte, &m_tables) != pg::WalkResult::Ok)
                        return false;
                    dtable = dpte - slot;
                }
                u64* d = dtable + slot;
                u64 frame = *spte & pg::kAddrMask;
                // Pinned pages (the runtime's stacks and thread blocks) are
                // written by the kernel through their physical address: each
                // process gets its own copy now. Others are shared,
                // read-only in both, until one of them writes (handle_fault).
                if (!(v->flags & kPinned) && pmm::share_frame(frame)) {
                    *spte = (*spte & ~pg::kWrite) | kCow;
                    *d = *spte;
                    shared_any = true;
                } else {
                    u64 copy = pmm::alloc_frame(false);
                    if (copy == pmm::kNoFrame)
                        return false;
                    platform::copy_frame(copy, frame);
                    *d = copy | (*spte & ~pg::kAddrMask);
                }
                ++m_pages;
            }
        }
    }
    if (shared_any) {
        src.flush_all(); // its pages became read-only
        src.sync_tlbs();
    }
    return true;
}

void AddressSpace::release() {
    while (Vma* v = m_head) {
        clear_ptes(v->start, v->end, !(v->flags & kImage), false); // not loaded: no TLB entries
        m_head = v->next;
        g_vmas.free(v);
    }
    pg::free_logged_tables(m_pml4, m_tables);
    pmm::free_frame(m_pml4);
    m_pml4 = 0;
    m_pages = 0;
}

void AddressSpace::unmap_unpinned() {
    Vma** link = &m_head;
    while (*link) {
        Vma* v = *link;
        if (v->flags & kPinned) {
            link = &v->next;
            continue;
        }
        clear_ptes(v->start, v->end, !(v->flags & kImage), false);
        *link = v->next;
        g_vmas.free(v);
    }
    flush_all();
    sync_tlbs();
}

void AddressSpace::apply_prot(u64 start, u64 end, u32 prot) {
    for (u64 p = start; p < end; p += kPage) {
        u64* pte = nullptr;
        if (pg::walk(m_pml4, p, false, &pte) != pg::WalkResult::Ok)
            continue;
        if (!(*pte & pg::kPresent))
            continue;
        u64 cow = *pte & kCow;
        if (!(prot & (kRead | kWrite | kExec))) {
            // PROT_NONE: drop the mapping but keep the frame reachable by
            // re-populating? Anonymous contents must survive, so keep the
            // frame mapped without the user bit instead.
            *pte = (*pte & pg::kAddrMask) | pg::kPresent | pg::nx_bit() | cow;
        } else if (cow) {
            // Still shared: writable only through handle_fault's copy.
            *pte = (*pte & pg::kAddrMask) | (pte_bits(prot) & ~pg::kWrite) | kCow;
        } else {
            *pte = (*pte & pg::kAddrMask) | pte_bits(prot);
        }
        flush_page(p);
    }
}

i64 AddressSpace::protect(u64 addr, u64 len, u32 prot) {
    if (len == 0 || addr % kPage != 0 || addr > sys::kUserTop)
        return -err::kInval;
    len = (len + kPage - 1) & ~(kPage - 1);
    if (len > sys::kUserTop - addr)
        return -err::kInval;
    u64 end = addr + len;
    // Every page must be mapped (Linux: ENOMEM otherwise), none pinned, and
    // image mappings never become writable.
    u64 cursor = addr;
    for (Vma* v = m_head; v && cursor < end; v = v->next) {
        if (v->end <= cursor)
            continue;
        if (v->start > cursor)
            return -err::kNoMem;
        if (v->flags & kPinned)
            return -err::kInval;
        if ((v->flags & kImage) && (prot & kWrite))
            return -err::kAccess;
        cursor = v->end;
    }
    if (cursor < end)
        return -err::kNoMem;
    if (split_at(addr) < 0 || split_at(end) < 0)
        return -err::kNoMem;
    for (Vma* v = m_head; v; v = v->next) {
        if (v->start >= addr && v->end <= end) {
            v->prot = prot;
            apply_prot(v->start, v->end, prot);
        }
    }
    sync_tlbs();
    return 0;
}

// A write to a page shared since fork: the last holder takes the frame
// back writable; the others get a copy.
bool AddressSpace::break_cow(u64* pte, u64 page) {
    u64 frame = *pte & pg::kAddrMask;
    if (pmm::shared_frame(frame)) {
        u64 copy = pmm::alloc_frame(false);
        if (copy == pmm::kNoFrame) {
            m_fault_oom = true;
            return false;
        }
        platform::copy_frame(copy, frame);
        pmm::release_user_frame(frame);
        frame = copy;
    }
    *pte = frame | ((*pte & ~pg::kAddrMask & ~kCow) | pg::kWrite);
    flush_page(page);
    sync_tlbs(); // before the other holder can write to the old frame
    return true;
}

bool AddressSpace::handle_fault(u64 addr, bool write, bool exec) {
    m_fault_oom = false;
    Vma* v = find(addr);
    if (!v)
        return false;
    if ((write && !(v->prot & kWrite)) || (exec && !(v->prot & kExec)) ||
        !(v->prot & (kRead | kWrite | kExec)))
        return false;
    u64 page = addr & ~(kPage - 1);
    u64* pte = nullptr;
    if (pg::walk(m_pml4, page, false, &pte) == pg::WalkResult::Ok && (*pte & pg::kPresent)) {
        if (write && (*pte & kCow) && (*pte & pg::kUser))
            return break_cow(pte, page);
        // Present: only a stale TLB entry after a permission upgrade can
        // fault here legitimately; the VMA allows the access.
        if ((*pte & pg::kUser) && (!write || (*pte & pg::kWrite))) {
            arch::flush_tlb_page(page); // an upgrade: other CPUs fault and flush themselves
            return true;
        }
        return false;
    }
    if (!(v->flags & kImage)) {
        if (populate(*v, page))
            return true;
        m_fault_oom = true;
        return false;
    }
    // Image pages cost no memory: map the aligned block around the fault.
    u64 block = kFaultAround * kPage;
    u64 start = page & ~(block - 1);
    u64 end = start + block;
    if (start < v->start)
        start = v->start;
    if (end > v->end)
        end = v->end;
    return populate_range(*v, start, end);
}

u32 AddressSpace::translate_pages(u64 va, u32 count, bool write, u64* frames) {
    u64 page = va & ~(kPage - 1);
    u32 done = 0;
    while (done < count) {
        if (page >= sys::kUserTop)
            return done;
        u64* pte = nullptr;
        bool table = pg::walk(m_pml4, page, false, &pte) == pg::WalkResult::Ok;
        u64 table_end = (page | (512 * kPage - 1)) + 1;
        for (; done < count && page < table_end; page += kPage) {
            bool ok = table && (*pte & pg::kPresent) && (*pte & pg::kUser) && (!write || (*pte & pg::kWrite));
            if (ok) {
                frames[done++] = *pte & pg::kAddrMask;
            } else {
                i64 pa = translate(page, write); // faults it in (or fails)
                if (pa < 0)
                    return done;
                frames[done++] = static_cast<u64>(pa);
                // The fault may have made the table: walk again for the rest.
                table = pg::walk(m_pml4, page, false, &pte) == pg::WalkResult::Ok;
            }
            if (table)
                ++pte;
        }
    }
    return done;
}

i64 AddressSpace::translate(u64 va, bool write) {
    if (va >= sys::kUserTop)
        return -err::kFault;
    u64 page = va & ~(kPage - 1);
    u64* pte = nullptr;
    bool present = pg::walk(m_pml4, page, false, &pte) == pg::WalkResult::Ok &&
                   (*pte & pg::kPresent) && (*pte & pg::kUser);
    if (!present || (write && !(*pte & pg::kWrite))) {
        if (!handle_fault(va, write, false))
            return -err::kFault;
        if (pg::walk(m_pml4, page, false, &pte) != pg::WalkResult::Ok)
            return -err::kFault;
    }
    return static_cast<i64>((*pte & pg::kAddrMask) | (va & (kPage - 1)));
}

} // namespace kos::vm
