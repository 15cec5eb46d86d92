#include "kos/support/file.h"

#include <cstdlib>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace kos {

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
        if (m_fd >= 0)
            ::close(m_fd);
        m_fd = std::exchange(o.m_fd, -1);
    }
    return *this;
}

UniqueFd::~UniqueFd() {
    if (m_fd >= 0)
        ::close(m_fd);
}

std::string errno_string(int err) { return std::strerror(err); }

Result<std::vector<uint8_t>> read_fd(int fd, const std::string& what, uint64_t max_size) {
    struct stat st{};
    if (::fstat(fd, &st) != 0)
        return make_error(errno, what + ": " + errno_string(errno));
    if (!S_ISREG(st.st_mode))
        return make_error(EINVAL, what + ": not a regular file");
    if (static_cast<uint64_t>(st.st_size) > max_size)
        return make_error(EFBIG, what + ": file is larger than the limit of " +
                                     std::to_string(max_size) + " bytes");
    std::vector<uint8_t> data(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::pread(fd, data.data() + done, data.size() - done, static_cast<off_t>(done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return make_error(errno, what + ": read failed: " + errno_string(errno));
        }
        if (n == 0)
            return make_error(EIO, what + ": file shrank while being read");
        done += static_cast<size_t>(n);
    }
    return data;
}

Result<std::vector<uint8_t>> read_file(const std::string& path, uint64_t max_size) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd)
        return make_error(errno, path + ": " + errno_string(errno));
    return read_fd(fd.get(), path, max_size);
}

std::string xdg_base_dir(const char* variable, const char* home_relative) {
    if (const char* v = ::getenv(variable); v && *v)
        return v;
    if (const char* home = ::getenv("HOME"); home && *home)
        return std::string(home) + "/" + home_relative;
    return "";
}

Result<std::string> read_text_file(const std::string& path, uint64_t max_size) {
    auto data = KOS_TRY(read_file(path, max_size));
    return std::string(data.begin(), data.end());
}

Result<void> write_all(int fd, const void* data, size_t size, const std::string& what) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (size) {
        ssize_t n = ::write(fd, p, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return make_error(n < 0 ? errno : EIO, what + ": write failed: " + errno_string(n < 0 ? errno : EIO));
        p += n;
        size -= static_cast<size_t>(n);
    }
    return {};
}

Result<void> write_file_atomic(const std::string& path, const void* data, size_t size, int mode) {
    std::string tmp = path + ".tmp." + std::to_string(::getpid());
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd)
        return make_error(errno, tmp + ": " + errno_string(errno));
    const auto* p = static_cast<const uint8_t*>(data);
    size_t done = 0;
    while (done < size) {
        ssize_t n = ::write(fd.get(), p + done, size - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            ::unlink(tmp.c_str());
            return make_error(err, tmp + ": write failed: " + errno_string(err));
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd.get()) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        return make_error(err, path + ": " + errno_string(err));
    }
    return {};
}

} // namespace kos
