// Builds tar archives (optionally gzip-compressed) in memory for tests,
// including malicious ones: any name, any type, any owner, xattrs.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kos::pkg::testing {

struct TarItem {
    std::string path = {};
    char type = 'f'; // f file, d dir, l symlink, h hardlink, c char device, p fifo
    std::string data = {}; // file content or link target
    int mode = 0644;
    int64_t uid = 0;
    int64_t gid = 0;
    std::vector<std::pair<std::string, std::string>> xattrs = {};
    int64_t size_override = -1; // file: stream this many zero bytes instead of data
};

inline std::vector<uint8_t> make_tar(const std::vector<TarItem>& items, bool gzip = false) {
    std::vector<uint8_t> out;
    archive* a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (gzip)
        archive_write_add_filter_gzip(a);
    archive_write_set_bytes_in_last_block(a, 1);
    archive_write_open(
        a, &out, nullptr,
        [](archive*, void* ctx, const void* buf, size_t n) -> la_ssize_t {
            auto* v = static_cast<std::vector<uint8_t>*>(ctx);
            v->insert(v->end(), static_cast<const uint8_t*>(buf), static_cast<const uint8_t*>(buf) + n);
            return static_cast<la_ssize_t>(n);
        },
        nullptr);
    for (const TarItem& it : items) {
        archive_entry* e = archive_entry_new();
        archive_entry_set_pathname(e, it.path.c_str());
        archive_entry_set_perm(e, static_cast<mode_t>(it.mode));
        archive_entry_set_uid(e, it.uid);
        archive_entry_set_gid(e, it.gid);
        archive_entry_set_mtime(e, 1700000000, 0);
        for (auto& [k, v] : it.xattrs)
            archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
        int64_t size = 0;
        switch (it.type) {
        case 'd': archive_entry_set_filetype(e, AE_IFDIR); break;
        case 'l':
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, it.data.c_str());
            break;
        case 'h':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, it.data.c_str());
            break;
        case 'c':
            archive_entry_set_filetype(e, AE_IFCHR);
            archive_entry_set_rdevmajor(e, 1);
            archive_entry_set_rdevminor(e, 3);
            break;
        case 'p': archive_entry_set_filetype(e, AE_IFIFO); break;
        default:
            archive_entry_set_filetype(e, AE_IFREG);
            size = it.size_override >= 0 ? it.size_override : static_cast<int64_t>(it.data.size());
        }
        archive_entry_set_size(e, size);
        archive_write_header(a, e);
        if (it.type == 'f') {
            if (it.size_override >= 0) {
                std::vector<char> zeros(1 << 20, 0);
                for (int64_t done = 0; done < size;) {
                    size_t n = static_cast<size_t>(std::min<int64_t>(size - done, 1 << 20));
                    archive_write_data(a, zeros.data(), n);
                    done += static_cast<int64_t>(n);
                }
            } else {
                archive_write_data(a, it.data.data(), it.data.size());
            }
        }
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    return out;
}

} // namespace kos::pkg::testing
