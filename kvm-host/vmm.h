// The kos VMM: boots the guest image in a KVM virtual machine with one boot
// image module and serves the kernel's hypercalls until the program ends.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "kos/support/result.h"
#include "kvm-host/file_service.h"
#include "kvm-host/net_service.h"

namespace kos::vmm {

struct VmOptions {
    std::span<const uint8_t> kernel_elf;  // the guest image (ELF with a 64-bit entry)
    std::vector<uint8_t> boot_image;      // see boot_image.h
    uint64_t ram_bytes = 256ull << 20;
    // Virtual CPUs (1 .. abi::boot::kMaxCpus). The guest kernel starts the
    // further ones itself (hypercall StartCpu); each runs on its own thread.
    uint32_t cpus = 1;
    uint64_t output_limit = 1ull << 30;   // console bytes before the run is stopped
    uint64_t wall_timeout_ms = 0;         // 0: no wall-time limit
    // CPU time the VMM process may use (its vCPU and I/O threads, guest
    // code included), checked at every watchdog tick (500 ms); 0: none.
    // Reaching it ends the run with EDQUOT.
    uint64_t cpu_time_ms = 0;
    // Jail the calling process (see jail.h) before running guest code. It
    // cannot be undone: set by `kos run`, not by in-process tests.
    bool jail = false;
    int stdin_fd = 0;
    int stdout_fd = 1;
    int stderr_fd = 2;
    // Receives each audit record the guest kernel reports (the raw bytes of
    // a security::AuditRecord, kAuditRecordSize of them). Empty: dropped.
    std::function<void(std::span<const uint8_t>)> audit;
    int audit_fd = -1; // the descriptor `audit` writes to: the jail lets it
    // Networking (net_service.h): the guest kernel's hc::Op::Net calls are
    // served when set, and answered ENOSYS otherwise. Set it when the
    // bundle's policy declares `net_t` or ports are published. `policy` is
    // the compiled bundle policy (the guest's own): the service checks
    // Connect and Bind against it again and reports its denials through
    // `audit`. `publish`: the `-p` ports, bound before the jail.
    bool network = false;
    std::span<const uint8_t> policy;
    std::vector<PublishedPort> publish;
    uint32_t max_sockets = 1024;
    // Volumes (file_service.h): the guest kernel's hc::Op::File calls are
    // served when there is at least one, and answered ENOSYS otherwise.
    // Entry i is volume i of the boot image's volume table. Moved into the
    // file service, which checks the calls against `policy` again and
    // reports its denials through `audit`.
    std::vector<FileVolume> volumes;
};

struct RunOutcome {
    enum class Kind { Exited, Signaled } kind = Kind::Exited;
    int value = 0;             // exit status or signal number
    bool out_of_memory = false; // Signaled because the VM's memory was used up
    uint64_t exits = 0;        // VM exits handled
    uint64_t setup_ns = 0;     // open /dev/kvm .. first KVM_RUN
    uint64_t run_ns = 0;       // first KVM_RUN .. end
    std::string jail;          // what the jail applied (empty: no jail)
};

// The guest image linked into this binary.
std::span<const uint8_t> embedded_guest_image();

// Runs the VM to completion. Errors (KVM unusable, guest crash, limits) say
// what happened and carry the guest's registers where relevant.
Result<RunOutcome> run_vm(VmOptions options);

} // namespace kos::vmm
