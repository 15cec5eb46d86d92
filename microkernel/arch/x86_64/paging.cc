#include "paging.h"

#include "../../kernel/pmm.h"

namespace kos::arch::paging {
namespace {
u64 g_nx = 0;

u64* table(u64 pa) { return static_cast<u64*>(pmm::phys_to_virt(pa)); }

void free_level(u64 pa, int level) {
    if (level > 0) {
        u64* t = table(pa);
        for (int i = 0; i < 512; ++i)
            if ((t[i] & kPresent) && !(t[i] & kHuge))
                free_level(t[i] & kAddrMask, level - 1);
    }
    pmm::free_frame(pa);
}
} // namespace

void set_nx(bool supported) { g_nx = supported ? kNoExecute : 0; }
u64 nx_bit() { return g_nx; }

WalkResult walk(u64 pml4_pa, u64 va, bool create, u64** pte, TableLog* log) {
    u64* t = table(pml4_pa);
    for (int level = 3; level > 0; --level) {
        u64& e = t[index(va, level)];
        if (!(e & kPresent)) {
            if (!create)
                return WalkResult::Missing;
            u64 frame = pmm::alloc_frame(true);
            if (frame == pmm::kNoFrame)
                return WalkResult::OutOfMemory;
            e = frame | kPresent | kWrite | kUser;
            if (log) {
                if (log->count < TableLog::kMax)
                    log->frames[log->count++] = frame;
                else
                    log->overflow = true;
            }
        } else if (e & kHuge) {
            return WalkResult::Missing;
        }
        t = table(e & kAddrMask);
    }
    *pte = &t[index(va, 0)];
    return WalkResult::Ok;
}

void free_user_tables(u64 pml4_pa) {
    u64* t = table(pml4_pa);
    for (int i = 0; i < 256; ++i) {
        if (t[i] & kPresent) {
            free_level(t[i] & kAddrMask, 2);
            t[i] = 0;
        }
    }
}

void free_logged_tables(u64 pml4_pa, TableLog& log) {
    if (log.overflow) {
        free_user_tables(pml4_pa);
    } else {
        u64* t = table(pml4_pa);
        for (unsigned i = 0; i < log.count; ++i)
            pmm::free_frame(log.frames[i]);
        for (int i = 0; i < 256; ++i)
            t[i] = 0;
    }
    log.count = 0;
    log.overflow = false;
}

} // namespace kos::arch::paging
