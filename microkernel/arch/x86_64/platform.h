// How the kernel reaches the outside: the console and the end of the run.
//
// Under the kos VMM, requests go through the hypercall port (one exit per
// request, whole buffers). Under other VMMs (QEMU with PVH), output goes to
// COM1 and the exit status to isa-debug-exit, so the same image runs there.
#pragma once

#include "kos/hypercall.h"
#include "kos/types.h"

namespace kos::platform {

using abi::i64;
using abi::u64;

void init(bool kos_vmm);
bool is_kos_vmm();

// Starts CPU `cpu` (1 ..) in 64-bit mode at `rip` with `rsp` and `cr3`,
// rdi = `cpu` (kos VMM only; ENOSYS elsewhere).
i64 start_cpu(abi::u32 cpu, u64 rip, u64 rsp, u64 cr3);

// Writes a physically contiguous buffer to stdout (1) or stderr (2).
i64 console_write_phys(int stream, u64 paddr, u64 len);
// Reads into a physically contiguous buffer; 0 at end of input.
i64 console_read_phys(u64 paddr, u64 len);
// Writes kernel memory (kernel image or direct map).
void console_write_kernel(int stream, const char* s, u64 len);

[[noreturn]] void exit(abi::hc::ExitKind kind, u64 value);

// Saves the vCPU's user FPU state to `save_pa` and loads it from `load_pa`
// (4 KiB XSAVE-format areas, either may be 0) through the kos VMM.
void fpu_switch_via_vmm(u64 save_pa, u64 load_pa);
[[noreturn]] void panic_stop(const char* msg, u64 len);

// Wall clock and TSC rate for VMMs that do not pass them in the boot image
// (kos passes both): the CMOS RTC and a PIT-calibrated TSC.
struct Clock {
    u64 tsc_khz;
    u64 realtime_at_tsc0_ns;
};
Clock read_platform_clock();

// Copies one 4 KiB frame (through the kos VMM where ring-0 copies are slow).
void copy_frame(u64 dst_pa, u64 src_pa);
// Zeroes one 4 KiB frame, the same way.
void zero_frame(u64 pa);

// Hands one audit record (abi::hc::kAuditRecordSize bytes at `pa`) to the
// kos VMM.
void audit_record(u64 pa);

// A socket call (abi/kos/net.h) for the kos VMM's network service: the
// NetCall page at `pa`. ENOSYS under other VMMs.
i64 net_call(u64 pa);
// The VMM's file service (hc::Op::File); ENOSYS under other VMMs.
i64 file_call(u64 pa);

// Physical address of kernel memory (kernel image or direct map).
u64 kernel_virt_to_phys(const void* p);

} // namespace kos::platform
