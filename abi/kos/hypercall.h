// The hypercall port between the kos kernel and the kos VMM.
//
// The kernel (ring 0 only) writes the guest-physical address of a
// HypercallBlock to port kPort with a 32-bit `out`. The VMM validates every
// field (addresses, lengths) against guest memory and writes `result`.
// One exit per request: console output is passed as a whole buffer.
#pragma once

#include "kos/types.h"

namespace kos::abi::hc {

inline constexpr u16 kPort = 0x0510;
// Under other VMMs the kernel falls back to COM1 and isa-debug-exit.
inline constexpr u16 kSerialPort = 0x3f8;
inline constexpr u16 kDebugExitPort = 0x501;

enum class Op : u32 {
    ConsoleWrite = 1, // a0 = stream (1 stdout, 2 stderr), a1 = gpa, a2 = len -> bytes written
    ConsoleRead = 2,  // a0 = gpa, a1 = len -> bytes read (0 = end of input)
    Exit = 3,         // a0 = ExitKind, a1 = value (exit status or signal number)
    Panic = 4,        // a0 = gpa of message, a1 = len; the VMM reports it and stops
    FpuSwitch = 5,    // a0 = gpa to save the FPU state to (0: none), a1 = gpa to load it
                      // from (0: none); 4 KiB areas in KVM_GET_XSAVE format
    CopyPage = 6,     // a0 = destination gpa, a1 = source gpa (4 KiB, in RAM): copies
                      // that ring-0 code would make slowly where it is emulated
    Audit = 7,        // a0 = gpa of a security::AuditRecord (kAuditRecordSize bytes): a
                      // verdict the policy marks for audit, for the host's audit log
    ZeroPage = 9,     // a0 = gpa (4 KiB, in RAM): zeroes it (ring-0 stores are emulated
                      // on nested KVM: 1.3 ms per page there)
    Net = 8,          // a0 = gpa of a net::NetCall page (kos/net.h) -> result of the call;
                      // the VMM's network service answers, writing into the page
    File = 10,        // a0 = gpa of a file::FileCall page (kos/file.h) -> result of the call;
                      // the VMM's file service (volumes) answers, writing into the page
    StartCpu = 11,    // a0 = CPU index (1 .. kos.cpus - 1), a1 = rip, a2 = rsp, a3 = cr3:
                      // the VMM starts that vCPU in 64-bit mode there, rdi = the index;
                      // once per CPU
};

enum class ExitKind : u64 {
    Exited = 0,   // value = exit status (0..255)
    Signaled = 1, // value = signal number that ended the program
    OutOfMemory = 2, // the program was killed (value = SIGKILL) because the VM's memory
                     // is used up: its memory limit ended the run
};

struct HypercallBlock {
    u32 op;
    u32 reserved;
    u64 args[6];
    i64 result; // >= 0 success, < 0 negated errno
};
static_assert(sizeof(HypercallBlock) == 64);

// Bounds the VMM enforces on a single request.
inline constexpr u64 kMaxConsoleChunk = 1u << 20;
inline constexpr u64 kMaxPanicMessage = 4096;
inline constexpr u64 kAuditRecordSize = 256;

} // namespace kos::abi::hc
