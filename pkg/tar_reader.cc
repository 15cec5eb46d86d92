#include "tar_reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <algorithm>

namespace kos::pkg {

const char* tar_type_name(TarEntry::Type type) {
    switch (type) {
    case TarEntry::Type::File: return "file";
    case TarEntry::Type::Dir: return "directory";
    case TarEntry::Type::Symlink: return "symlink";
    case TarEntry::Type::Hardlink: return "hardlink";
    case TarEntry::Type::CharDevice: return "character device";
    case TarEntry::Type::BlockDevice: return "block device";
    case TarEntry::Type::Fifo: return "fifo";
    case TarEntry::Type::Socket: return "socket";
    case TarEntry::Type::Unknown: return "unknown entry type";
    }
    return "?";
}

Result<std::unique_ptr<TarReader>> TarReader::open(std::span<const uint8_t> bytes, const TarLimits& limits,
                                                   const std::string& what) {
    std::unique_ptr<TarReader> r(new TarReader());
    r->m_limits = limits;
    r->m_what = what;
    r->m_compressed = bytes.size();
    r->m_archive = archive_read_new();
    if (!r->m_archive)
        return make_error(ENOMEM, what + ": cannot allocate a tar reader");
    archive_read_support_filter_gzip(r->m_archive);
    archive_read_support_filter_zstd(r->m_archive);
    archive_read_support_filter_xz(r->m_archive);
    archive_read_support_filter_none(r->m_archive);
    archive_read_support_format_tar(r->m_archive);
    if (archive_read_open_memory(r->m_archive, bytes.data(), bytes.size()) != ARCHIVE_OK)
        return make_error(EINVAL, what + ": not a tar archive: " +
                                      (archive_error_string(r->m_archive) ? archive_error_string(r->m_archive)
                                                                          : "unknown format"));
    return r;
}

TarReader::~TarReader() {
    if (m_archive)
        archive_read_free(m_archive);
}

uint64_t TarReader::uncompressed_bytes() const {
    int64_t n = archive_filter_bytes(m_archive, 0);
    return n > 0 ? static_cast<uint64_t>(n) : 0;
}

Result<void> TarReader::check_volume(const std::string& at) {
    uint64_t out = std::max(uncompressed_bytes(), m_data);
    if (out > m_limits.max_total_bytes)
        return make_error(EFBIG, m_what + ": " + at + ": more than " + std::to_string(m_limits.max_total_bytes) +
                                     " bytes uncompressed (limit; a decompression bomb?)");
    if (out > m_limits.ratio_floor && out / std::max<uint64_t>(m_compressed, 1) > m_limits.max_ratio)
        return make_error(EFBIG, m_what + ": " + at + ": expands more than " +
                                     std::to_string(m_limits.max_ratio) +
                                     "x (limit; a decompression bomb?)");
    return {};
}

Result<bool> TarReader::next(TarEntry& out) {
    archive_entry* e = nullptr;
    int rc = archive_read_next_header(m_archive, &e);
    if (rc == ARCHIVE_EOF)
        return false;
    if (rc < ARCHIVE_WARN) {
        const char* msg = archive_error_string(m_archive);
        return make_error(EINVAL, m_what + ": entry " + std::to_string(m_entries + 1) + ": " +
                                      (msg ? msg : "damaged tar header"));
    }
    if (++m_entries > m_limits.max_entries)
        return make_error(E2BIG, m_what + ": more than " + std::to_string(m_limits.max_entries) +
                                     " entries (limit)");
    const char* p = archive_entry_pathname(e);
    out = TarEntry();
    out.path = p ? p : "";
    std::string shown = out.path.substr(0, 64) + (out.path.size() > 64 ? "..." : "");
    if (out.path.empty())
        return make_error(EINVAL, m_what + ": entry " + std::to_string(m_entries) + " has an empty name");
    if (out.path.size() > m_limits.max_path)
        return make_error(ENAMETOOLONG, m_what + ": " + shown + ": path longer than " +
                                            std::to_string(m_limits.max_path) + " bytes (limit)");
    uint32_t depth = 0;
    for (size_t start = 0; start < out.path.size();) {
        size_t slash = out.path.find('/', start);
        if (slash == std::string::npos)
            slash = out.path.size();
        if (slash - start > m_limits.max_name)
            return make_error(ENAMETOOLONG, m_what + ": " + shown + ": a name is longer than " +
                                                std::to_string(m_limits.max_name) + " bytes (limit)");
        if (slash > start && ++depth > m_limits.max_depth)
            return make_error(ELOOP, m_what + ": " + shown + ": nested deeper than " +
                                         std::to_string(m_limits.max_depth) + " directories (limit)");
        start = slash + 1;
    }
    out.mode = static_cast<uint32_t>(archive_entry_perm(e)) & 07777;
    out.uid = archive_entry_uid(e);
    out.gid = archive_entry_gid(e);
    out.mtime = archive_entry_mtime(e);
    if (const char* h = archive_entry_hardlink(e)) {
        out.type = TarEntry::Type::Hardlink;
        out.link_target = h;
    } else {
        switch (archive_entry_filetype(e)) {
        case AE_IFREG: out.type = TarEntry::Type::File; break;
        case AE_IFDIR: out.type = TarEntry::Type::Dir; break;
        case AE_IFLNK:
            out.type = TarEntry::Type::Symlink;
            out.link_target = archive_entry_symlink(e) ? archive_entry_symlink(e) : "";
            break;
        case AE_IFCHR: out.type = TarEntry::Type::CharDevice; break;
        case AE_IFBLK: out.type = TarEntry::Type::BlockDevice; break;
        case AE_IFIFO: out.type = TarEntry::Type::Fifo; break;
        case AE_IFSOCK: out.type = TarEntry::Type::Socket; break;
        default: out.type = TarEntry::Type::Unknown; break;
        }
    }
    if (out.link_target.size() > m_limits.max_path)
        return make_error(ENAMETOOLONG, m_what + ": " + shown + ": link target longer than " +
                                            std::to_string(m_limits.max_path) + " bytes (limit)");
    archive_entry_xattr_reset(e);
    const char* xname = nullptr;
    const void* xval = nullptr;
    size_t xsize = 0;
    while (archive_entry_xattr_next(e, &xname, &xval, &xsize) == ARCHIVE_OK)
        if (xname && out.xattrs.size() < 64 &&
            std::find(out.xattrs.begin(), out.xattrs.end(), xname) == out.xattrs.end())
            out.xattrs.emplace_back(xname);
    if (out.type == TarEntry::Type::File) {
        int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
        if (size < 0 || static_cast<uint64_t>(size) > m_limits.max_file_bytes)
            return make_error(EFBIG, m_what + ": " + shown + ": file larger than " +
                                         std::to_string(m_limits.max_file_bytes) + " bytes (limit)");
        if (m_data + static_cast<uint64_t>(size) > m_limits.max_total_bytes)
            return make_error(EFBIG, m_what + ": " + shown + ": more than " +
                                         std::to_string(m_limits.max_total_bytes) +
                                         " bytes uncompressed (limit; a decompression bomb?)");
        // Grow as data arrives (never allocate what the header merely
        // claims), checking the caps after every chunk.
        uint64_t want = static_cast<uint64_t>(size), done = 0;
        while (done < want) {
            size_t chunk = static_cast<size_t>(std::min<uint64_t>(want - done, 1 << 20));
            out.data.resize(static_cast<size_t>(done) + chunk);
            la_ssize_t n = archive_read_data(m_archive, out.data.data() + done, chunk);
            if (n < 0) {
                const char* msg = archive_error_string(m_archive);
                return make_error(EINVAL, m_what + ": " + shown + ": " + (msg ? msg : "read error"));
            }
            if (n == 0)
                return make_error(EINVAL, m_what + ": " + shown + ": truncated file data");
            done += static_cast<uint64_t>(n);
            m_data += static_cast<uint64_t>(n);
            out.data.resize(static_cast<size_t>(done));
            KOS_TRY(check_volume(shown));
        }
    }
    KOS_TRY(check_volume(shown));
    return true;
}

} // namespace kos::pkg
