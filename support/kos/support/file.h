// File helpers with precise errors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kos/support/result.h"

namespace kos {

// Closes the descriptor on destruction.
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : m_fd(fd) {}
    UniqueFd(UniqueFd&& o) noexcept : m_fd(std::exchange(o.m_fd, -1)) {}
    UniqueFd& operator=(UniqueFd&& o) noexcept;
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd();
    int get() const { return m_fd; }
    int release() { return std::exchange(m_fd, -1); }
    explicit operator bool() const { return m_fd >= 0; }

private:
    int m_fd = -1;
};

// Reads a whole regular file (at most max_size bytes).
Result<std::vector<uint8_t>> read_file(const std::string& path, uint64_t max_size = 1ull << 32);
Result<std::string> read_text_file(const std::string& path, uint64_t max_size = 16u << 20);
// Reads from an already-open descriptor.
Result<std::vector<uint8_t>> read_fd(int fd, const std::string& what, uint64_t max_size);
// Writes all `size` bytes to `fd` (retrying short writes and EINTR); `what`
// names the destination in the error.
Result<void> write_all(int fd, const void* data, size_t size, const std::string& what);
// An XDG base directory: $`variable` if set and non-empty, else
// $HOME/`home_relative` (e.g. "XDG_STATE_HOME", ".local/state"); "" when
// neither is known.
std::string xdg_base_dir(const char* variable, const char* home_relative);
// Writes via a temporary file and rename, so readers never see a partial file.
Result<void> write_file_atomic(const std::string& path, const void* data, size_t size, int mode = 0644);

std::string errno_string(int err);

} // namespace kos
