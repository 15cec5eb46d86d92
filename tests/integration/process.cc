#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

extern char** environ;

namespace kos::test {

ProcessResult run_process(const std::vector<std::string>& argv, int timeout_seconds,
                          const std::string& input) {
    ProcessResult r;
    // A child that exits without reading its input must not kill us.
    ::signal(SIGPIPE, SIG_IGN);
    int out[2], err[2], in[2];
    if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(in, O_CLOEXEC))
        return r;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    close(err[1]);
    close(in[0]);
    if (rc != 0) {
        close(out[0]);
        close(err[0]);
        close(in[1]);
        r.err = "spawn failed";
        return r;
    }
    if (!input.empty())
        (void)!write(in[1], input.data(), input.size());
    close(in[1]);
    timespec start{};
    clock_gettime(CLOCK_MONOTONIC, &start);
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open_fds = 2;
    char buf[65536];
    while (open_fds > 0) {
        timespec now{};
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left_ms = timeout_seconds * 1000L - ((now.tv_sec - start.tv_sec) * 1000L +
                                                  (now.tv_nsec - start.tv_nsec) / 1000000L);
        if (left_ms <= 0) {
            r.timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        int n = poll(fds, 2, static_cast<int>(left_ms));
        if (n < 0 && errno == EINTR)
            continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t got = read(fds[i].fd, buf, sizeof buf);
            if (got <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            } else {
                (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(got));
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0)
            close(f.fd);
    int status = 0;
    waitpid(pid, &status, 0);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

int spawn_process(const std::vector<std::string>& argv, bool quiet) {
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (quiet)
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    return rc == 0 ? pid : -1;
}

uint16_t free_loopback_port() {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        a.sin_port = 0;
    ::close(s);
    return ntohs(a.sin_port);
}

std::string http_get(uint16_t port, const std::string& path, int wait_ms) {
    for (int waited = 0;; waited += 50) {
        int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
            std::string req = "GET " + path + " HTTP/1.0\r\nHost: kos\r\n\r\n";
            std::string resp;
            if (::write(s, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
                pollfd p{s, POLLIN, 0};
                char buf[4096];
                while (::poll(&p, 1, 30000) == 1) {
                    ssize_t n = ::read(s, buf, sizeof buf);
                    if (n <= 0)
                        break;
                    resp.append(buf, static_cast<size_t>(n));
                }
            }
            ::close(s);
            if (!resp.empty() || waited >= wait_ms)
                return resp;
        } else {
            ::close(s);
            if (waited >= wait_ms)
                return "";
        }
        ::usleep(50'000);
    }
}

int child_of(int pid, int timeout_ms) {
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        std::error_code ec;
        for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
            std::ifstream f(entry.path() / "stat");
            std::string line;
            if (!std::getline(f, line) || line.rfind(')') == std::string::npos)
                continue;
            char state = 0;
            int ppid = 0;
            if (std::sscanf(line.c_str() + line.rfind(')') + 1, " %c %d", &state, &ppid) == 2 && ppid == pid)
                return std::atoi(entry.path().filename().c_str());
        }
        usleep(20000);
    }
    return 0;
}

} // namespace kos::test
