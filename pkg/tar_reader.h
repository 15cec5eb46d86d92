// A bounded reader for tar archives (plain, gzip, zstd or xz compressed) in
// memory, built on libarchive's parser. It never touches the filesystem:
// callers get each entry's metadata and contents and decide what to do.
//
// Every resource is capped (ATTACKS.md 7): entry count, path and name
// length, nesting depth, file size, total uncompressed bytes, and the
// compression ratio. Exceeding a cap is an error naming the cap.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kos/support/result.h"

struct archive;

namespace kos::pkg {

struct TarLimits {
    uint64_t max_entries = 1'000'000;
    uint64_t max_total_bytes = 8ull << 30; // uncompressed, including headers
    uint64_t max_file_bytes = 4ull << 30;
    uint32_t max_path = 4096;              // bytes
    uint32_t max_name = 255;               // bytes per component
    uint32_t max_depth = 128;              // components
    uint64_t max_ratio = 200;              // uncompressed / compressed ...
    uint64_t ratio_floor = 64ull << 20;    // ... checked once this much is out
};

struct TarEntry {
    enum class Type { File, Dir, Symlink, Hardlink, CharDevice, BlockDevice, Fifo, Socket, Unknown };
    std::string path; // as stored in the archive
    Type type = Type::Unknown;
    uint32_t mode = 0; // permission bits (07777)
    int64_t uid = 0;
    int64_t gid = 0;
    int64_t mtime = 0;
    std::string link_target; // symlink or hardlink target
    std::vector<uint8_t> data;
    std::vector<std::string> xattrs; // names only (security.capability, ...)
};

const char* tar_type_name(TarEntry::Type type);

class TarReader {
public:
    // `bytes` must outlive the reader; `what` names it in errors.
    static Result<std::unique_ptr<TarReader>> open(std::span<const uint8_t> bytes, const TarLimits& limits,
                                                   const std::string& what);
    ~TarReader();
    TarReader(const TarReader&) = delete;
    TarReader& operator=(const TarReader&) = delete;

    // Reads the next entry into `out`; returns false at the end.
    Result<bool> next(TarEntry& out);

    uint64_t entries() const { return m_entries; }
    uint64_t uncompressed_bytes() const;

private:
    TarReader() = default;
    Result<void> check_volume(const std::string& at);

    archive* m_archive = nullptr;
    TarLimits m_limits;
    std::string m_what;
    uint64_t m_compressed = 0;
    uint64_t m_entries = 0;
    uint64_t m_data = 0;
};

} // namespace kos::pkg
