// The rootfs image: a bundle's files in a form the guest reads in place.
//
// Layout (all integers little-endian, all offsets from the image start):
//   RootfsHeader
//   RootfsEntry[entry_count]   sorted by path_compare(), so lookups are a
//                              binary search and every directory's
//                              descendants follow it contiguously
//   string table               NUL-terminated paths, labels, symlink targets
//   file data                  each regular file starts on a page boundary,
//                              so the VM can map file pages read-only
//                              without copying
//
// Every entry carries its mode, owner, label and the SHA-256 of its
// contents, so the image alone is enough to verify and to enforce labels.
//
// RootfsView validates an untrusted image once (bounds, ordering, tree
// shape); after validate() succeeds, every accessor is safe. This header is
// freestanding: the guest runtime, the kernel and host tools share it.
#pragma once

#include "kos/types.h"

namespace kos::abi::rootfs {

inline constexpr u64 kMagic = 0x31544f4f52534f4bull; // "KOSROOT1"
inline constexpr u32 kVersion = 1;
inline constexpr u64 kPageSize = 4096;
inline constexpr u32 kMaxPath = 4096;

// st_mode type bits (Linux values).
inline constexpr u32 kTypeMask = 0170000;
inline constexpr u32 kTypeDir = 0040000;
inline constexpr u32 kTypeFile = 0100000;
inline constexpr u32 kTypeSymlink = 0120000;

struct RootfsHeader {
    u64 magic;
    u32 version;
    u32 entry_size; // sizeof(RootfsEntry), for forward compatibility
    u64 image_size;
    u32 entry_count;
    u32 reserved0;
    u64 entries_offset;
    u64 strings_offset;
    u64 strings_size;
    u64 data_offset;
    u64 data_size;
    u64 reserved[2];
};
static_assert(sizeof(RootfsHeader) == 88);

struct RootfsEntry {
    u32 path_offset;  // absolute path in the string table ("/" is the root)
    u32 path_len;     // without the NUL
    u32 label_offset; // label in the string table
    u32 label_len;
    u32 mode;         // Linux st_mode: type and permission bits
    u32 uid;
    u32 gid;
    u32 subtree_end;  // index one past this entry's last descendant
    u64 size;         // file: content bytes; symlink: target length; dir: 0
    u64 data_offset;  // file: page-aligned content offset; symlink: target
                      // offset in the string table; dir: 0
    i64 mtime_sec;
    u8 digest[32];    // SHA-256 of the content (file) or target (symlink)
};
static_assert(sizeof(RootfsEntry) == 88);

// Orders paths component by component ("/a" < "/a/b" < "/a-c"), which keeps
// a directory's descendants contiguous. Returns <0, 0, >0.
constexpr int path_compare(const char* a, u64 alen, const char* b, u64 blen) {
    u64 i = 0;
    for (; i < alen && i < blen; ++i) {
        unsigned char ca = static_cast<unsigned char>(a[i]);
        unsigned char cb = static_cast<unsigned char>(b[i]);
        if (ca == cb)
            continue;
        // '/' sorts before every other byte.
        if (ca == '/')
            return -1;
        if (cb == '/')
            return 1;
        return ca < cb ? -1 : 1;
    }
    if (alen == blen)
        return 0;
    return alen < blen ? -1 : 1;
}

enum class Error : u32 {
    None = 0,
    TooSmall,
    BadMagic,
    BadVersion,
    BadEntrySize,
    SizeMismatch,
    TableOutOfBounds,
    PathOutOfBounds,
    LabelOutOfBounds,
    BadPath,
    NotSorted,
    BadRoot,
    BadTree,
    DataOutOfBounds,
    DataMisaligned,
    BadType,
};

constexpr const char* error_string(Error e) {
    switch (e) {
    case Error::None: return "ok";
    case Error::TooSmall: return "image smaller than its header";
    case Error::BadMagic: return "bad magic (not a kos rootfs image)";
    case Error::BadVersion: return "unsupported rootfs image version";
    case Error::BadEntrySize: return "unexpected entry size";
    case Error::SizeMismatch: return "header size does not match the image size";
    case Error::TableOutOfBounds: return "entry table or string table out of bounds";
    case Error::PathOutOfBounds: return "entry path out of bounds";
    case Error::LabelOutOfBounds: return "entry label out of bounds";
    case Error::BadPath: return "entry path is not absolute, not normalized or not NUL-terminated";
    case Error::NotSorted: return "entries are not sorted or contain duplicates";
    case Error::BadRoot: return "first entry is not the root directory";
    case Error::BadTree: return "entry is not inside its parent directory or subtree bounds are wrong";
    case Error::DataOutOfBounds: return "file data out of bounds";
    case Error::DataMisaligned: return "file data not page-aligned";
    case Error::BadType: return "entry is not a file, directory or symlink";
    }
    return "unknown error";
}

class RootfsView {
public:
    constexpr RootfsView() = default;
    constexpr RootfsView(const u8* base, u64 size) : m_base(base), m_size(size) {}

    // Checks everything accessors rely on. Returns the first problem and the
    // index of the offending entry (or ~0u for header problems).
    Error validate(u32* bad_entry = nullptr) const {
        if (bad_entry)
            *bad_entry = ~0u;
        if (!m_base || m_size < sizeof(RootfsHeader))
            return Error::TooSmall;
        const RootfsHeader& h = header();
        if (h.magic != kMagic)
            return Error::BadMagic;
        if (h.version != kVersion)
            return Error::BadVersion;
        if (h.entry_size != sizeof(RootfsEntry))
            return Error::BadEntrySize;
        if (h.image_size != m_size)
            return Error::SizeMismatch;
        if (!range_ok(h.entries_offset, u64(h.entry_count) * sizeof(RootfsEntry)) ||
            h.entries_offset % 8 != 0 || !range_ok(h.strings_offset, h.strings_size) ||
            !range_ok(h.data_offset, h.data_size) || h.entry_count == 0 ||
            h.strings_size == 0 || m_base[h.strings_offset + h.strings_size - 1] != 0)
            return Error::TableOutOfBounds;
        for (u32 i = 0; i < h.entry_count; ++i) {
            if (bad_entry)
                *bad_entry = i;
            const RootfsEntry& e = entry(i);
            if (u64(e.path_offset) + e.path_len >= h.strings_size || e.path_len == 0 ||
                e.path_len > kMaxPath)
                return Error::PathOutOfBounds;
            if (u64(e.label_offset) + e.label_len >= h.strings_size)
                return Error::LabelOutOfBounds;
            const char* p = path(e);
            if (p[e.path_len] != 0 || !path_normalized(p, e.path_len))
                return Error::BadPath;
            u32 type = e.mode & kTypeMask;
            if (type != kTypeDir && type != kTypeFile && type != kTypeSymlink)
                return Error::BadType;
            if (i == 0) {
                if (e.path_len != 1 || type != kTypeDir || e.subtree_end != h.entry_count)
                    return Error::BadRoot;
            } else {
                const RootfsEntry& prev = entry(i - 1);
                if (path_compare(path(prev), prev.path_len, p, e.path_len) >= 0)
                    return Error::NotSorted;
            }
            if (e.subtree_end <= i || e.subtree_end > h.entry_count ||
                (type != kTypeDir && e.subtree_end != i + 1))
                return Error::BadTree;
            if (type == kTypeFile) {
                if (e.data_offset % kPageSize != 0)
                    return Error::DataMisaligned;
                if (e.data_offset < h.data_offset ||
                    !sub_range_ok(e.data_offset - h.data_offset, e.size, h.data_size))
                    return Error::DataOutOfBounds;
            } else if (type == kTypeSymlink) {
                if (e.size == 0 || e.size > kMaxPath ||
                    !sub_range_ok(e.data_offset, e.size + 1, h.strings_size) ||
                    strings()[e.data_offset + e.size] != 0)
                    return Error::DataOutOfBounds;
            }
        }
        // Tree shape: every entry after the root lies in its parent's
        // subtree, and every subtree ends where its prefix ends.
        for (u32 i = 1; i < h.entry_count; ++i) {
            if (bad_entry)
                *bad_entry = i;
            const RootfsEntry& e = entry(i);
            u64 plen = parent_len(path(e), e.path_len);
            i64 parent = find(path(e), plen);
            if (parent < 0 || u32(parent) >= i || entry(u32(parent)).subtree_end < e.subtree_end ||
                (entry(u32(parent)).mode & kTypeMask) != kTypeDir)
                return Error::BadTree;
            if (e.subtree_end < h.entry_count) {
                const RootfsEntry& next = entry(e.subtree_end);
                if (is_descendant(path(e), e.path_len, path(next), next.path_len))
                    return Error::BadTree;
            }
            if (e.subtree_end > i + 1) {
                const RootfsEntry& last = entry(e.subtree_end - 1);
                if (!is_descendant(path(e), e.path_len, path(last), last.path_len))
                    return Error::BadTree;
            }
        }
        if (bad_entry)
            *bad_entry = ~0u;
        return Error::None;
    }

    const RootfsHeader& header() const { return *reinterpret_cast<const RootfsHeader*>(m_base); }
    u32 count() const { return header().entry_count; }
    const RootfsEntry& entry(u32 i) const {
        return reinterpret_cast<const RootfsEntry*>(m_base + header().entries_offset)[i];
    }
    const char* strings() const {
        return reinterpret_cast<const char*>(m_base + header().strings_offset);
    }
    const char* path(const RootfsEntry& e) const { return strings() + e.path_offset; }
    const char* label(const RootfsEntry& e) const { return strings() + e.label_offset; }
    const char* symlink_target(const RootfsEntry& e) const { return strings() + e.data_offset; }
    const u8* file_data(const RootfsEntry& e) const { return m_base + e.data_offset; }
    const u8* base() const { return m_base; }
    u64 size() const { return m_size; }

    // Exact lookup of a normalized absolute path; -1 if absent.
    i64 find(const char* p, u64 len) const {
        u32 lo = 0, hi = count();
        while (lo < hi) {
            u32 mid = lo + (hi - lo) / 2;
            const RootfsEntry& e = entry(mid);
            int c = path_compare(path(e), e.path_len, p, len);
            if (c == 0)
                return mid;
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        return -1;
    }

    // Iterates the direct children of directory `dir`: start with
    // first_child(dir), continue with next_sibling(i) while i < end.
    static u32 first_child(u32 dir) { return dir + 1; }
    u32 next_sibling(u32 i) const { return entry(i).subtree_end; }

    // Length of the parent's path ("/a/b" -> "/a", "/a" -> "/").
    static constexpr u64 parent_len(const char* p, u64 len) {
        u64 i = len;
        while (i > 1 && p[i - 1] != '/')
            --i;
        return i > 1 ? i - 1 : 1;
    }
    // Final component of a path.
    static constexpr const char* basename(const char* p, u64 len, u64* out_len) {
        u64 i = len;
        while (i > 0 && p[i - 1] != '/')
            --i;
        *out_len = len - i;
        return p + i;
    }
    static constexpr bool is_descendant(const char* dir, u64 dlen, const char* p, u64 plen) {
        if (dlen == 1)
            return plen > 1;
        if (plen <= dlen || p[dlen] != '/')
            return false;
        for (u64 i = 0; i < dlen; ++i)
            if (dir[i] != p[i])
                return false;
        return true;
    }
    // "/", or "/" followed by non-empty components without ".", ".." or "//".
    static constexpr bool path_normalized(const char* p, u64 len) {
        if (len == 0 || p[0] != '/')
            return false;
        if (len == 1)
            return true;
        if (p[len - 1] == '/')
            return false;
        u64 start = 1;
        for (u64 i = 1; i <= len; ++i) {
            if (i == len || p[i] == '/') {
                u64 n = i - start;
                if (n == 0 || (n == 1 && p[start] == '.') ||
                    (n == 2 && p[start] == '.' && p[start + 1] == '.'))
                    return false;
                start = i + 1;
            } else if (p[i] == 0) {
                return false;
            }
        }
        return true;
    }

private:
    bool range_ok(u64 off, u64 len) const { return off <= m_size && len <= m_size - off; }
    static bool sub_range_ok(u64 off, u64 len, u64 total) {
        return off <= total && len <= total - off;
    }

    const u8* m_base = nullptr;
    u64 m_size = 0;
};

} // namespace kos::abi::rootfs
