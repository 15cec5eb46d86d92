// 4-level x86-64 page tables (Intel SDM vol. 3 §4.5).
#pragma once

#include "kos/types.h"

namespace kos::arch::paging {

using abi::u64;

inline constexpr u64 kPresent = 1ull << 0;
inline constexpr u64 kWrite = 1ull << 1;
inline constexpr u64 kUser = 1ull << 2;
inline constexpr u64 kAccessed = 1ull << 5;
inline constexpr u64 kDirty = 1ull << 6;
inline constexpr u64 kHuge = 1ull << 7;
inline constexpr u64 kGlobal = 1ull << 8;
inline constexpr u64 kNoExecute = 1ull << 63;
inline constexpr u64 kAddrMask = 0x000ffffffffff000ull;

constexpr unsigned index(u64 va, int level) { return (va >> (12 + 9 * level)) & 511; }

enum class WalkResult { Ok, Missing, OutOfMemory };

// The page-table frames created for one address space, so that freeing
// them visits no empty entries (scanning 512 entries per table costs
// milliseconds where ring 0 is emulated). Past kMax, `overflow` says to
// scan instead.
struct TableLog {
    static constexpr unsigned kMax = 96;
    u64 frames[kMax] = {};
    unsigned count = 0;
    bool overflow = false;
};

// Finds the level-0 (4 KiB) entry for `va` under `pml4_pa`. With `create`,
// missing intermediate tables are allocated (user-accessible, writable: the
// leaf decides the real permissions) and recorded in `log` if given. Fails
// on a huge-page mapping.
WalkResult walk(u64 pml4_pa, u64 va, bool create, u64** pte, TableLog* log = nullptr);

// Frees the user-half page tables recorded in `log`, or every one under
// `pml4_pa` if the log overflowed, and clears the top table's user half.
void free_logged_tables(u64 pml4_pa, TableLog& log);

// Frees every user-half page table under `pml4_pa` (not the mapped frames).
void free_user_tables(u64 pml4_pa);

void set_nx(bool supported);
u64 nx_bit(); // kNoExecute when NX is supported, else 0

} // namespace kos::arch::paging
