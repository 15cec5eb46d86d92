#include "scratch.h"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kos::cli {
namespace {

int remove_entry(const char* path, const struct stat*, int type, struct FTW*) {
    return type == FTW_DP ? ::rmdir(path) : ::unlink(path);
}

[[noreturn]] void reap_when_parent_ends(int read_fd, const std::string& dir) {
    // The reaper outlives Ctrl-C and `kos stop`'s SIGTERM to the group: it
    // only ever waits and removes.
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    // No descriptor of the parent's but the pipe (a test reading the
    // parent's stdout to its end must not wait for the reaper).
    int null = ::open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; ++fd)
        ::dup2(null, fd);
    if (::dup2(read_fd, 3) < 0)
        ::_exit(1);
    ::close_range(4, ~0u, 0);
    char c;
    while (::read(3, &c, 1) < 0 && errno == EINTR) {
    }
    ::nftw(dir.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    ::_exit(0);
}

} // namespace

Result<std::string> make_scratch_dir() {
    std::string base = "/tmp";
    if (const char* rt = std::getenv("XDG_RUNTIME_DIR"); rt && rt[0] == '/') {
        std::string k = std::string(rt) + "/kos";
        std::string s = k + "/scratch";
        ::mkdir(k.c_str(), 0700);
        ::mkdir(s.c_str(), 0700);
        struct stat st {};
        if (::lstat(s.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid())
            base = s;
    }
    std::string tmpl = base + "/kos-tmp-XXXXXX";
    if (!::mkdtemp(tmpl.data()))
        return make_error(errno, "cannot make the VM's /tmp under " + base + ": " + std::strerror(errno));
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
        int e = errno;
        ::rmdir(tmpl.c_str());
        return make_error(e, std::string("cannot make the VM's /tmp: pipe: ") + std::strerror(e));
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        int e = errno;
        ::close(p[0]);
        ::close(p[1]);
        ::rmdir(tmpl.c_str());
        return make_error(e, std::string("cannot make the VM's /tmp: fork: ") + std::strerror(e));
    }
    if (pid == 0) {
        ::close(p[1]);
        reap_when_parent_ends(p[0], tmpl);
    }
    ::close(p[0]);
    // p[1] stays open (close-on-exec) until this process ends.
    return tmpl;
}

} // namespace kos::cli
