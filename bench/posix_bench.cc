// POSIX personality benchmark: getpid and a 4 KiB read through the
// personality vs the same static binary on Linux, a busybox shell loop
// under kos vs natively (in a chroot of the same rootfs), and file
// throughput on a volume (-v) and on the VM's /tmp vs the same host
// directory used natively, from one run.
#include <chrono>
#include <cstdio>
#include <string>
#include <tuple>
#include <unistd.h>
#include <vector>

#include "../tests/integration/process.h"
#include "kvm-host/kvm.h"
#include "platform.h"

namespace {

double value(const std::string& out, const char* key) {
    auto at = out.find(key);
    return at == std::string::npos ? 0 : std::stod(out.substr(at + std::string(key).size()));
}

double time_ms(const std::vector<std::string>& argv, int runs) {
    double best = 1e18;
    for (int i = 0; i < runs; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        kos::test::run_process(argv, 120);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        best = ms < best ? ms : best;
    }
    return best;
}

} // namespace

int main(int argc, char** argv) {
    std::string kos = argc > 1 ? argv[1] : KOS_BINARY;
    std::printf("kos POSIX personality benchmark\nplatform: %s\n\n", kos::bench::platform_line().c_str());
    std::string why;
    if (!kos::vmm::kvm_usable(&why)) {
        std::printf("SKIPPED: /dev/kvm is not usable: %s\n", why.c_str());
        return 0;
    }
    std::string apps = KOS_TEST_BUNDLE;
    auto in_kos = kos::test::run_process({kos, "run", apps, "--", "/bin/syscall_bench"}, 120);
    auto native = kos::test::run_process({apps + "/rootfs/bin/syscall_bench", apps + "/rootfs/data/greeting.txt"}, 120);
    double kg = value(in_kos.out, "getpid_ns "), ng = value(native.out, "getpid_ns ");
    double kr = value(in_kos.out, "read4k_ns "), nr = value(native.out, "read4k_ns ");
    std::string loop = "for i in $(seq 100); do :; done";
    std::string compat = COMPAT_BUNDLE;
    double kl = time_ms({kos, "run", compat, "--", "/bin/busybox", "sh", "-c", loop}, 3);
    double nl = time_ms({"/usr/sbin/chroot", compat + "/rootfs", "/bin/busybox", "sh", "-c", loop}, 3);
    // 100 subshells: 100 forks, exits and waits.
    std::string forks = "i=0; while [ $i -lt 100 ]; do (:); i=$((i+1)); done";
    double kf = time_ms({kos, "run", compat, "--", "/bin/busybox", "sh", "-c", forks}, 2);
    double nf = time_ms({"/usr/sbin/chroot", compat + "/rootfs", "/bin/busybox", "sh", "-c", forks}, 2);
    // Files: a volume and the VM's /tmp (both served by the VMM's file
    // service) vs the same program on a host directory.
    char tmpl[] = "/tmp/kos-file-bench-XXXXXX";
    std::string dir = ::mkdtemp(tmpl);
    auto kv = kos::test::run_process({kos, "run", "-v", "vol=" + dir, apps, "--", "/bin/file_bench", "/vol"}, 300);
    auto kt = kos::test::run_process({kos, "run", apps, "--", "/bin/file_bench", "/tmp"}, 300);
    auto nv = kos::test::run_process({apps + "/rootfs/bin/file_bench", dir}, 300);
    ::rmdir(dir.c_str());
    // Two CPU-bound threads: with one vCPU, with two, and natively (best of 3).
    auto cpu_ms = [&](const std::vector<std::string>& argv) {
        double best = 1e18;
        for (int i = 0; i < 3; ++i) {
            double ms = value(kos::test::run_process(argv, 120).out, "wall_ms ");
            best = ms > 0 && ms < best ? ms : best;
        }
        return best;
    };
    double c1 = cpu_ms({apps + "/rootfs/bin/cpu_bench", "1"});
    double c2 = cpu_ms({apps + "/rootfs/bin/cpu_bench", "2"});
    double k11 = cpu_ms({kos, "run", "--cpus", "1", apps, "--", "/bin/cpu_bench", "1"});
    double k12 = cpu_ms({kos, "run", "--cpus", "1", apps, "--", "/bin/cpu_bench", "2"});
    double k22 = cpu_ms({kos, "run", "--cpus", "2", apps, "--", "/bin/cpu_bench", "2"});
    std::printf("%-52s %12s %12s %8s\n", "measure", "kos", "native", "ratio");
    std::printf("%-52s %10.0fns %10.0fns %7.1fx\n", "getpid through the personality", kg, ng, ng > 0 ? kg / ng : 0);
    std::printf("%-52s %10.0fns %10.0fns %7.1fx\n", "4 KiB pread through the personality", kr, nr, nr > 0 ? kr / nr : 0);
    std::printf("%-52s %10.1fms %10.1fms %7.1fx\n", "sh -c 'for i in $(seq 100); do :; done' (whole run)", kl, nl, nl > 0 ? kl / nl : 0);
    std::printf("%-52s %10.1fms %10.1fms %7.1fx\n", "sh -c with 100 subshells (:) (whole run)", kf, nf, nf > 0 ? kf / nf : 0);
    for (auto [name, key, unit] : {std::tuple{"32 MiB written in 64 KiB writes, volume", "write_mbps ", "MiB/s"},
                                   std::tuple{"32 MiB read in 64 KiB reads, volume", "read_mbps ", "MiB/s"},
                                   std::tuple{"open+fstat+close, volume", "open_us ", "us"}}) {
        double k = value(kv.out, key), n = value(nv.out, key);
        bool rate = std::string(unit) == "MiB/s";
        std::printf("%-52s %8.1f%-4s %8.1f%-4s %7.2fx\n", name, k, unit, n, unit, rate ? (k > 0 ? n / k : 0) : (n > 0 ? k / n : 0));
    }
    for (auto [name, key] : {std::pair{"32 MiB written, the VM's /tmp", "write_mbps "}, std::pair{"32 MiB read, the VM's /tmp", "read_mbps "}}) {
        double k = value(kt.out, key), n = value(nv.out, key);
        std::printf("%-52s %8.1f%-4s %8.1f%-4s %7.2fx\n", name, k, "MiB/s", n, "MiB/s", k > 0 ? n / k : 0);
    }
    std::printf("%-52s %10.1fms %10.1fms %7.2fx\n", "1 CPU-bound thread, 1 vCPU", k11, c1, c1 > 0 ? k11 / c1 : 0);
    std::printf("%-52s %10.1fms %10.1fms %7.2fx\n", "2 CPU-bound threads, 1 vCPU", k12, c2, c2 > 0 ? k12 / c2 : 0);
    std::printf("%-52s %10.1fms %10.1fms %7.2fx\n", "2 CPU-bound threads, 2 vCPUs", k22, c2, c2 > 0 ? k22 / c2 : 0);
    std::printf("%-52s %10.2fx\n", "  speedup of 2 vCPUs over 1 (2 threads)", k22 > 0 ? k12 / k22 : 0);
    std::printf("\nFile ratios are native / kos for rates (how many times slower kos is) and kos / native for "
                "latency.\n");
    std::printf("\nThe shell loop forks once for $(seq 100); under kos the run includes booting the VM.\n");
    return 0;
}
