// Boot benchmark: VM creation to the first guest instruction, and the hello
// bundle's cold start, each against a baseline measured in the same run.
//
//   floor      raw ioctls: open /dev/kvm, create VM, one memory slot, one
//              vCPU in 64-bit mode, KVM_RUN until the guest's first `out`.
//   kos VMM    the kos VMM path (run_vm) with the same one-instruction guest:
//              page tables, start info, boot image slot, hypercall handling.
//   hello      `kos run examples/hello` vs fork+exec of the same static binary.
#include <linux/kvm.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kos/boot.h"
#include "kos/hypercall.h"
#include "kvm-host/kvm.h"
#include "kvm-host/boot_image.h"
#include "kvm-host/testing/tiny_guest.h"
#include "kvm-host/vmm.h"
#include "platform.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
namespace boot = kos::abi::boot;
namespace hc = kos::abi::hc;

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

std::vector<uint8_t> tiny_guest_code() { return kos::vmm::testing::hypercall_code(0x200000); }

// The same instruction as a kos guest image whose hypercall block asks to
// exit, for the kos VMM path.
std::vector<uint8_t> tiny_guest_elf() {
    hc::HypercallBlock block{};
    block.op = static_cast<uint32_t>(hc::Op::Exit);
    std::vector<uint8_t> data(sizeof block);
    std::memcpy(data.data(), &block, sizeof block);
    return kos::vmm::testing::tiny_guest_elf(tiny_guest_code(), data);
}

// The raw floor: the fewest ioctls that reach the guest's first instruction.
double raw_floor_ms() {
    auto t0 = Clock::now();
    int kvm = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    int vm = ::ioctl(kvm, KVM_CREATE_VM, 0);
    size_t size = 256 << 20; // the same guest RAM as kos run's default
    auto* mem = static_cast<uint8_t*>(::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    auto code = tiny_guest_code();
    std::memcpy(mem + 0x100000, code.data(), code.size());
    // Identity map of the first 4 MiB: PML4 0x1000, PDPT 0x2000, PD 0x3000.
    auto* pt = reinterpret_cast<uint64_t*>(mem);
    pt[0x1000 / 8] = 0x2003;
    pt[0x2000 / 8] = 0x3003;
    pt[0x3000 / 8] = 0x83;
    pt[0x3000 / 8 + 1] = 0x200083;
    kvm_userspace_memory_region region{0, 0, 0, size, reinterpret_cast<uint64_t>(mem)};
    ::ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region);
    int vcpu = ::ioctl(vm, KVM_CREATE_VCPU, 0);
    int run_size = ::ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    auto* run = static_cast<kvm_run*>(::mmap(nullptr, static_cast<size_t>(run_size),
                                             PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0));
    kvm_sregs s{};
    ::ioctl(vcpu, KVM_GET_SREGS, &s);
    kvm_segment cs{};
    cs.limit = 0xffffffff;
    cs.selector = 8;
    cs.type = 11;
    cs.present = 1;
    cs.s = 1;
    cs.l = 1;
    cs.g = 1;
    kvm_segment ds = cs;
    ds.selector = 0x10; ds.type = 3; ds.l = 0; ds.db = 1;
    s.cs = cs; s.ds = s.es = s.ss = s.fs = s.gs = ds;
    s.cr3 = 0x1000; s.cr4 = 0x20; s.cr0 = 0x80050033; s.efer = 0xd01;
    ::ioctl(vcpu, KVM_SET_SREGS, &s);
    kvm_regs r{};
    r.rip = 0x100000;
    r.rflags = 2;
    ::ioctl(vcpu, KVM_SET_REGS, &r);
    ::ioctl(vcpu, KVM_RUN, 0);
    double ms = ms_since(t0);
    if (run->exit_reason != KVM_EXIT_IO)
        std::fprintf(stderr, "floor guest exited with reason %u\n", run->exit_reason);
    ::munmap(run, static_cast<size_t>(run_size));
    ::close(vcpu);
    ::munmap(mem, size);
    ::close(vm);
    ::close(kvm);
    return ms;
}

double kos_vmm_ms(const std::vector<uint8_t>& elf) {
    kos::vmm::LaunchSpec launch;
    launch.argv = {"/none"};
    auto image = kos::vmm::build_boot_image(launch, {});
    auto t0 = Clock::now();
    kos::vmm::VmOptions o;
    o.kernel_elf = elf;
    o.boot_image = std::move(*image);
    auto r = kos::vmm::run_vm(std::move(o));
    double ms = ms_since(t0);
    if (!r)
        std::fprintf(stderr, "kos VMM path failed: %s\n", r.error().message.c_str());
    return ms;
}

double spawn_ms(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    auto t0 = Clock::now();
    pid_t pid;
    // posix_spawn in glibc is vfork+exec; fork+exec below is the baseline
    // the issue names.
    posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
    int status;
    waitpid(pid, &status, 0);
    double ms = ms_since(t0);
    posix_spawn_file_actions_destroy(&fa);
    return ms;
}

double fork_exec_ms(const std::string& path) {
    auto t0 = Clock::now();
    pid_t pid = fork();
    if (pid == 0) {
        int fd = ::open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        execl(path.c_str(), path.c_str(), nullptr);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    return ms_since(t0);
}

} // namespace

int main(int argc, char** argv) {
    std::string kos_bin = argc > 1 ? argv[1] : "build/release/bin/kos";
    std::string src = argc > 2 ? argv[2] : ".";
    int n = argc > 3 ? std::atoi(argv[3]) : 20;
    std::string why;
    std::printf("kos boot benchmark\nplatform: %s\nruns: %d (median)\n\n", kos::bench::platform_line().c_str(), n);
    if (!kos::vmm::kvm_usable(&why)) {
        std::printf("SKIPPED: /dev/kvm is not usable: %s\n", why.c_str());
        return 0;
    }
    auto elf = tiny_guest_elf();
    std::vector<double> floor, vmm, hello, fe;
    for (int i = 0; i < n; ++i) {
        floor.push_back(raw_floor_ms());
        vmm.push_back(kos_vmm_ms(elf));
        hello.push_back(spawn_ms({kos_bin, "run", src + "/examples/hello"}));
        fe.push_back(fork_exec_ms(src + "/examples/hello/rootfs/hello"));
    }
    double f = median(floor), v = median(vmm), h = median(hello), b = median(fe);
    std::printf("%-52s %10s %10s %8s\n", "measure", "kos (ms)", "base (ms)", "ratio");
    std::printf("%-52s %10.3f %10.3f %7.2fx\n", "VM create -> first guest instruction (vs raw ioctls)", v, f, v / f);
    std::printf("%-52s %10.3f %10.3f %7.2fx\n", "hello cold start: kos run vs fork+exec", h, b, h / b);
    std::printf("\ntargets (hardware KVM, DESIGN.md): VM create <= 1.2x floor; hello <= 3x fork+exec\n");
    return 0;
}
