// Thin RAII wrappers over the /dev/kvm ioctl API (Documentation/virt/kvm/api.rst).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <string>

#include "kos/support/file.h"
#include "kos/support/result.h"

namespace kos::vmm {

// Opens /dev/kvm; the error says why KVM is unusable and what to do.
Result<UniqueFd> open_kvm(const std::string& path = "/dev/kvm");

// True when /dev/kvm can be opened and speaks API version 12. `why` (if
// given) receives the reason when it cannot.
bool kvm_usable(std::string* why = nullptr);

class Vcpu {
public:
    Vcpu() = default;
    Vcpu(UniqueFd fd, kvm_run* run, size_t run_size) : m_fd(std::move(fd)), m_run(run), m_run_size(run_size) {}
    Vcpu(Vcpu&& o) noexcept;
    Vcpu& operator=(Vcpu&&) = delete;
    ~Vcpu();
    int fd() const { return m_fd.get(); }
    kvm_run* run() const { return m_run; }

    Result<kvm_regs> regs() const;
    Result<kvm_sregs> sregs() const;
    Result<void> set_regs(const kvm_regs& r);
    Result<void> set_sregs(const kvm_sregs& s);
    // One line per register group, for error reports.
    std::string describe() const;

private:
    UniqueFd m_fd;
    kvm_run* m_run = nullptr;
    size_t m_run_size = 0;
};

class Vm {
public:
    static Result<Vm> create(int kvm_fd);
    int fd() const { return m_fd.get(); }
    int kvm_fd() const { return m_kvm_fd; }
    Result<void> add_memory(uint32_t slot, uint64_t gpa, void* host, uint64_t size, bool readonly);
    Result<Vcpu> create_vcpu(int id);
    bool has_cap(long cap) const;

private:
    Vm(UniqueFd fd, int kvm_fd) : m_fd(std::move(fd)), m_kvm_fd(kvm_fd) {}
    UniqueFd m_fd;
    int m_kvm_fd = -1;
};

} // namespace kos::vmm
