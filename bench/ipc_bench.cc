// IPC benchmark: a call+reply round trip between two native tasks in the
// guest (every request and reply through the kernel's security hook),
// against a pipe ping-pong between two host processes, from one run.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "kos/policy/compiler.h"
#include "kos/syscall.h"
#include "kvm-host/boot_image.h"
#include "kvm-host/kvm.h"
#include "kvm-host/vmm.h"
#include "pkg/rootfs_builder.h"
#include "platform.h"

namespace {

double pipe_ping_pong_ns(int rounds) {
    int ab[2], ba[2];
    if (::pipe(ab) || ::pipe(ba))
        return 0;
    pid_t pid = ::fork();
    char c = 0;
    if (pid == 0) {
        for (int i = 0; i < rounds; ++i)
            if (::read(ab[0], &c, 1) != 1 || ::write(ba[1], &c, 1) != 1)
                ::_exit(1);
        ::_exit(0);
    }
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < rounds; ++i)
        if (::write(ab[1], &c, 1) != 1 || ::read(ba[0], &c, 1) != 1)
            break;
    double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    ::waitpid(pid, nullptr, 0);
    return ns / rounds;
}

struct GuestTimes {
    double cached = 0, uncached = 0;
};

GuestTimes guest_round_trip_ns(const std::string& rootfs_dir, uint32_t cpus) {
    auto rootfs = kos::pkg::build_rootfs_image(rootfs_dir, {});
    if (!rootfs) {
        std::fprintf(stderr, "%s\n", rootfs.error().message.c_str());
        return {};
    }
    auto policy = kos::policy::compile_policy_files({KOS_IPC_POLICY});
    if (!policy) {
        std::fprintf(stderr, "%s\n", policy.error().message.c_str());
        return {};
    }
    kos::vmm::LaunchSpec launch;
    launch.init.processes = {{"client", "app_t", true, {"/bin/bench_client"}, ""},
                             {"server", "echo_t", true, {"/bin/echo_server"}, ""}};
    launch.init.channels = {{"bench", 0, 1, 0x7101, kos::abi::sys::kRightCall}};
    launch.policy = policy->blob;
    auto image = kos::vmm::build_boot_image(launch, *rootfs);
    int out = ::memfd_create("out", 0);
    kos::vmm::VmOptions o;
    o.kernel_elf = kos::vmm::embedded_guest_image();
    o.boot_image = std::move(*image);
    o.stdout_fd = out;
    o.wall_timeout_ms = 120000;
    o.cpus = cpus;
    auto r = kos::vmm::run_vm(std::move(o));
    if (!r) {
        std::fprintf(stderr, "%s\n", r.error().message.c_str());
        return {};
    }
    char buf[256] = {};
    ::pread(out, buf, sizeof buf - 1, 0);
    ::close(out);
    unsigned long cached = 0, uncached = 0;
    std::sscanf(buf, "ipc_round_trip_ns %lu\nipc_round_trip_uncached_ns %lu", &cached, &uncached);
    return {static_cast<double>(cached), static_cast<double>(uncached)};
}

} // namespace

int main(int argc, char** argv) {
    std::string rootfs = argc > 1 ? argv[1] : KOS_IPC_ROOTFS;
    std::printf("kos IPC benchmark\nplatform: %s\n\n", kos::bench::platform_line().c_str());
    std::string why;
    if (!kos::vmm::kvm_usable(&why)) {
        std::printf("SKIPPED: /dev/kvm is not usable: %s\n", why.c_str());
        return 0;
    }
    GuestTimes guest = guest_round_trip_ns(rootfs, 1);
    GuestTimes smp = guest_round_trip_ns(rootfs, 2);
    double host = pipe_ping_pong_ns(20000);
    std::printf("%-64s %12s\n", "measure", "ns");
    std::printf("%-64s %12.0f\n", "guest IPC call+reply, cached verdicts (ipctest.Bench.ping, 2000x)", guest.cached);
    std::printf("%-64s %12.0f\n", "guest IPC call+reply, uncached verdicts (ping_checked, 2000x)", guest.uncached);
    std::printf("%-64s %12.0f\n", "  the same with 2 vCPUs, cached (client and server may differ)", smp.cached);
    std::printf("%-64s %12.0f\n", "  the same with 2 vCPUs, uncached", smp.uncached);
    std::printf("%-64s %12.0f\n", "host pipe ping-pong between two processes (20000x)", host);
    std::printf("%-64s %11.1fx\n", "ratio cached / host", host > 0 ? guest.cached / host : 0);
    std::printf("%-64s %11.1fx\n", "ratio uncached / host", host > 0 ? guest.uncached / host : 0);
    std::printf("\nEvery request and reply is judged by the security engine in the guest kernel "
                "(tests/guest/native/ipc.kpol); ping's verdicts come from the cache, ping_checked's "
                "are computed each time (a field condition).\n");
    return (guest.cached > 0 && guest.uncached > 0) ? 0 : 1;
}
