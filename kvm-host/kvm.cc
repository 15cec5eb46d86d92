#include "kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <vector>

namespace kos::vmm {

Result<UniqueFd> open_kvm(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd) {
        int err = errno;
        if (err == ENOENT)
            return make_error(err, path + " does not exist: this host has no KVM (load the kvm_intel "
                                          "or kvm_amd module and enable virtualization in the "
                                          "firmware, or use --backend process)");
        if (err == EACCES || err == EPERM)
            return make_error(err, "permission denied opening " + path +
                                       ": add your user to the 'kvm' group (usermod -aG kvm "
                                       "$USER, then log in again), or use --backend process");
        return make_error(err, "cannot open " + path + ": " + errno_string(err));
    }
    int version = ::ioctl(fd.get(), KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION)
        return make_error(ENOTSUP, path + " speaks KVM API version " + std::to_string(version) +
                                       ", kos needs version " + std::to_string(KVM_API_VERSION));
    return fd;
}

bool kvm_usable(std::string* why) {
    auto fd = open_kvm();
    if (!fd && why)
        *why = fd.error().message;
    return fd.has_value();
}

Vcpu::Vcpu(Vcpu&& o) noexcept
    : m_fd(std::move(o.m_fd)), m_run(std::exchange(o.m_run, nullptr)),
      m_run_size(std::exchange(o.m_run_size, 0)) {}

Vcpu::~Vcpu() {
    if (m_run)
        ::munmap(m_run, m_run_size);
}

Result<kvm_regs> Vcpu::regs() const {
    kvm_regs r{};
    if (::ioctl(m_fd.get(), KVM_GET_REGS, &r) != 0)
        return make_error(errno, "KVM_GET_REGS: " + errno_string(errno));
    return r;
}

Result<kvm_sregs> Vcpu::sregs() const {
    kvm_sregs s{};
    if (::ioctl(m_fd.get(), KVM_GET_SREGS, &s) != 0)
        return make_error(errno, "KVM_GET_SREGS: " + errno_string(errno));
    return s;
}

Result<void> Vcpu::set_regs(const kvm_regs& r) {
    if (::ioctl(m_fd.get(), KVM_SET_REGS, &r) != 0)
        return make_error(errno, "KVM_SET_REGS: " + errno_string(errno));
    return {};
}

Result<void> Vcpu::set_sregs(const kvm_sregs& s) {
    if (::ioctl(m_fd.get(), KVM_SET_SREGS, &s) != 0)
        return make_error(errno, "KVM_SET_SREGS: " + errno_string(errno));
    return {};
}

std::string Vcpu::describe() const {
    auto r = regs();
    auto s = sregs();
    if (!r || !s)
        return "  (registers unavailable)";
    char buf[1024];
    std::snprintf(buf, sizeof buf,
                  "  rip=%016llx rsp=%016llx rflags=%08llx cs=%04x (cpl %u)\n"
                  "  rax=%016llx rbx=%016llx rcx=%016llx rdx=%016llx\n"
                  "  rsi=%016llx rdi=%016llx rbp=%016llx r8=%016llx\n"
                  "  cr0=%016llx cr2=%016llx cr3=%016llx cr4=%016llx efer=%llx",
                  r->rip, r->rsp, r->rflags, s->cs.selector, s->cs.selector & 3u, r->rax, r->rbx,
                  r->rcx, r->rdx, r->rsi, r->rdi, r->rbp, r->r8, s->cr0, s->cr2, s->cr3, s->cr4,
                  s->efer);
    return buf;
}

Result<Vm> Vm::create(int kvm_fd) {
    int fd = ::ioctl(kvm_fd, KVM_CREATE_VM, 0);
    if (fd < 0)
        return make_error(errno, "KVM_CREATE_VM: " + errno_string(errno));
    Vm vm(UniqueFd(fd), kvm_fd);
    // Needed on Intel VMX for real-mode emulation; harmless elsewhere.
    ::ioctl(fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
    return vm;
}

bool Vm::has_cap(long cap) const { return ::ioctl(m_fd.get(), KVM_CHECK_EXTENSION, cap) > 0; }

Result<void> Vm::add_memory(uint32_t slot, uint64_t gpa, void* host, uint64_t size, bool readonly) {
    kvm_userspace_memory_region region{};
    region.slot = slot;
    region.flags = readonly ? KVM_MEM_READONLY : 0;
    region.guest_phys_addr = gpa;
    region.memory_size = size;
    region.userspace_addr = reinterpret_cast<uint64_t>(host);
    if (::ioctl(m_fd.get(), KVM_SET_USER_MEMORY_REGION, &region) != 0)
        return make_error(errno, "KVM_SET_USER_MEMORY_REGION (slot " + std::to_string(slot) +
                                     "): " + errno_string(errno));
    return {};
}

Result<Vcpu> Vm::create_vcpu(int id) {
    int fd = ::ioctl(m_fd.get(), KVM_CREATE_VCPU, id);
    if (fd < 0)
        return make_error(errno, "KVM_CREATE_VCPU: " + errno_string(errno));
    UniqueFd vfd(fd);
    int size = ::ioctl(m_kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (size <= 0)
        return make_error(errno, "KVM_GET_VCPU_MMAP_SIZE: " + errno_string(errno));
    void* run = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (run == MAP_FAILED)
        return make_error(errno, "mmap of the vCPU run area: " + errno_string(errno));

    // CPUID: what KVM supports, as is (the guest caches what it needs).
    // Some KVM implementations (kvm_pvm on nested hosts) do not implement
    // KVM_GET_SUPPORTED_CPUID; the vCPU then keeps the CPUID KVM gives it.
    constexpr int kMaxEntries = 256;
    std::vector<uint8_t> buf(sizeof(kvm_cpuid2) + kMaxEntries * sizeof(kvm_cpuid_entry2));
    auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buf.data());
    cpuid->nent = kMaxEntries;
    if (::ioctl(m_kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) == 0 &&
        ::ioctl(fd, KVM_SET_CPUID2, cpuid) != 0) {
        int err = errno;
        ::munmap(run, static_cast<size_t>(size));
        return make_error(err, "setting the vCPU's CPUID: " + errno_string(err));
    }
    return Vcpu(std::move(vfd), static_cast<kvm_run*>(run), static_cast<size_t>(size));
}

} // namespace kos::vmm
