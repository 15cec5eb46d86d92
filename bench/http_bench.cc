// The service example end to end: Debian's busybox httpd serving
// examples/httpd/rootfs/www, run natively and under `kos run -p` (VM
// backend), each fetched from the host the same way:
//
//   latency     sequential GET / over a new connection each (median, p90)
//   throughput  GET / from 4 clients at once for a few seconds (requests/s)
//   memory      resident memory of the server side: kos (VMM + guest RAM it
//               touched) vs the native httpd
//
// Not part of ctest. Run: bin/kos_http_bench [seconds]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "platform.h"
#include "tests/integration/process.h"

using Clock = std::chrono::steady_clock;

namespace {

// One GET /; true with a complete 200 response.
bool get(uint16_t port) {
    std::string out = kos::test::http_get(port, "/", 0);
    return out.rfind("HTTP/1.1 200 OK", 0) == 0 && out.find("</p>") != std::string::npos;
}


// Resident memory of a process and its descendants, in KiB.
long rss_kib(pid_t pid) {
    long total = 0;
    std::ifstream st("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(st, line))
        if (line.rfind("VmRSS:", 0) == 0)
            total += std::atol(line.c_str() + 6);
    std::ifstream ch("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    pid_t c;
    while (ch >> c)
        total += rss_kib(c);
    return total;
}

struct Result {
    double median_ms = 0, p90_ms = 0, rps = 0;
    long rss = 0;
    int failures = 0;
};

Result measure(uint16_t port, pid_t server, double seconds) {
    Result r;
    // Wait for the server (the VM boots first).
    for (int i = 0; i < 600 && !get(port); ++i)
        ::usleep(100'000);
    std::vector<double> lat;
    for (int i = 0; i < 40; ++i) {
        auto t = Clock::now();
        if (!get(port))
            ++r.failures;
        lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t).count());
    }
    std::sort(lat.begin(), lat.end());
    r.median_ms = lat[lat.size() / 2];
    r.p90_ms = lat[lat.size() * 9 / 10];
    std::atomic<long> done{0}, failed{0};
    auto until = Clock::now() + std::chrono::duration<double>(seconds);
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c)
        clients.emplace_back([&] {
            while (Clock::now() < until)
                (get(port) ? done : failed)++;
        });
    for (auto& t : clients)
        t.join();
    r.rps = static_cast<double>(done) / seconds;
    r.failures += static_cast<int>(failed);
    r.rss = rss_kib(server);
    return r;
}

void stop(pid_t pid) {
    ::kill(pid, SIGTERM);
    int st;
    ::waitpid(pid, &st, 0);
}

} // namespace

int main(int argc, char** argv) {
    double seconds = argc > 1 ? std::atof(argv[1]) : 5.0;
    std::string src = KOS_SOURCE_DIR;
    std::string busybox = src + "/examples/httpd/rootfs/bin/busybox";
    std::printf("kos_http_bench: busybox httpd, GET / (%s/examples/httpd)\n%s\n\n", src.c_str(),
                kos::bench::platform_line().c_str());

    uint16_t native_port = kos::test::free_loopback_port();
    pid_t native = kos::test::spawn_process({busybox, "httpd", "-f", "-p", "127.0.0.1:" + std::to_string(native_port), "-h",
                          src + "/examples/httpd/rootfs/www"}, true);
    Result n = measure(native_port, native, seconds);
    stop(native);

    uint16_t kos_port = kos::test::free_loopback_port();
    pid_t vm = kos::test::spawn_process({KOS_BINARY, "run", "--no-audit-log", "-p", std::to_string(kos_port) + ":8080",
                      src + "/examples/httpd"}, true);
    Result k = measure(kos_port, vm, seconds);
    stop(vm);

    std::printf("%-34s %12s %12s %10s\n", "", "kos (VM)", "native", "ratio");
    std::printf("%-34s %9.2f ms %9.2f ms %9.1fx\n", "latency, median (new connection)", k.median_ms, n.median_ms,
                k.median_ms / n.median_ms);
    std::printf("%-34s %9.2f ms %9.2f ms %9.1fx\n", "latency, p90", k.p90_ms, n.p90_ms, k.p90_ms / n.p90_ms);
    std::printf("%-34s %8.0f r/s %8.0f r/s %9.2fx\n", "throughput, 4 clients", k.rps, n.rps,
                n.rps > 0 ? k.rps / n.rps : 0.0);
    std::printf("%-34s %8ld KiB %8ld KiB %9.1fx\n", "resident memory (server side)", k.rss, n.rss,
                n.rss > 0 ? static_cast<double>(k.rss) / static_cast<double>(n.rss) : 0.0);
    if (k.failures || n.failures)
        std::printf("failed requests: kos %d, native %d\n", k.failures, n.failures);
    return k.failures || n.failures ? 1 : 0;
}
