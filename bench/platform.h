// Describes the machine a benchmark ran on, for the header of its output.
#pragma once

#include <linux/kvm.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

namespace kos::bench {

inline std::string cpu_model() {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("model name", 0) == 0)
            return line.substr(line.find(':') + 2);
    return "unknown CPU";
}

// "hardware KVM" or the nested kind described in DESIGN.md, whose /dev/kvm
// cannot report or set CPUID (kvm_pvm).
inline std::string kvm_kind() {
    int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return "no usable /dev/kvm";
    std::vector<char> buf(sizeof(kvm_cpuid2) + 256 * sizeof(kvm_cpuid_entry2));
    auto* c = reinterpret_cast<kvm_cpuid2*>(buf.data());
    c->nent = 256;
    bool cpuid = ::ioctl(fd, KVM_GET_SUPPORTED_CPUID, c) == 0;
    ::close(fd);
    return cpuid ? "KVM with CPUID support (hardware-assisted)"
                 : "nested KVM without CPUID support (kvm_pvm-style: guest ring 0 emulated)";
}

inline std::string platform_line() {
    utsname u{};
    ::uname(&u);
    return cpu_model() + ", " + std::to_string(::sysconf(_SC_NPROCESSORS_ONLN)) + " CPUs, Linux " +
           u.release + ", " + kvm_kind();
}

} // namespace kos::bench
