// x86-64 CPU state, control registers and instructions used by the kernel.
// Intel SDM vol. 3 ch. 2 (control registers), ch. 3 (segments), ch. 6
// (interrupts), ch. 7 (TSS).
#pragma once

#include "kos/types.h"

namespace kos::arch {

using abi::u16;
using abi::u32;
using abi::u64;
using abi::u8;

// Segment selectors (GDT layout in cpu.cc; user data before user code so
// SYSRET's CS/SS arithmetic works).
inline constexpr u16 kKernelCs = 0x08;
inline constexpr u16 kKernelDs = 0x10;
inline constexpr u16 kUserDs = 0x18 | 3;
inline constexpr u16 kUserCs = 0x20 | 3;
inline constexpr u16 kTss = 0x28;

inline constexpr u64 kVecSyscall = 256;
inline constexpr u64 kVecPageFault = 14;
inline constexpr u64 kVecTimer = 32;    // local APIC timer (apic.h)
inline constexpr u64 kVecReschedule = 33; // IPI: a thread became runnable, or yours must stop
inline constexpr u64 kVecTlbFlush = 34;   // IPI: flush your TLB (an address space you run changed)
inline constexpr u64 kVecSpurious = 255;

// Each CPU's kernel stack is kKernelStackSize bytes aligned to its size,
// with the CPU's index in its lowest word: the kernel finds its CPU from
// rsp without a segment register or an MSR read (both trap on nested KVM).
inline constexpr u64 kKernelStackSize = 32768;
inline constexpr u32 kMaxCpus = 8; // abi::boot::kMaxCpus
inline u32 cpu_index() {
    u64 rsp;
    asm volatile("mov %%rsp, %0" : "=r"(rsp));
    u64 index = *reinterpret_cast<const u64*>(rsp & ~(kKernelStackSize - 1));
    return index < kMaxCpus ? static_cast<u32>(index) : 0; // 0 on the double-fault stack
}

// Saved by entry.S; field order matches the pushes there.
struct TrapFrame {
    u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    u64 vector, error;
    u64 rip, cs, rflags, rsp, ss;
};
static_assert(sizeof(TrapFrame) == 22 * 8);

inline constexpr u32 kMsrEfer = 0xc0000080;
inline constexpr u32 kMsrStar = 0xc0000081;
inline constexpr u32 kMsrLstar = 0xc0000082;
inline constexpr u32 kMsrSfmask = 0xc0000084;
inline constexpr u32 kMsrFsBase = 0xc0000100;
inline constexpr u32 kMsrGsBase = 0xc0000101;

inline u64 read_cr0() { u64 v; asm volatile("mov %%cr0, %0" : "=r"(v)); return v; }
inline u64 read_cr2() { u64 v; asm volatile("mov %%cr2, %0" : "=r"(v)); return v; }
inline u64 read_cr3() { u64 v; asm volatile("mov %%cr3, %0" : "=r"(v)); return v; }
inline u64 read_cr4() { u64 v; asm volatile("mov %%cr4, %0" : "=r"(v)); return v; }
inline void write_cr0(u64 v) { asm volatile("mov %0, %%cr0" : : "r"(v) : "memory"); }
inline void write_cr3(u64 v) { asm volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
inline void write_cr4(u64 v) { asm volatile("mov %0, %%cr4" : : "r"(v) : "memory"); }

inline u64 rdmsr(u32 msr) {
    u32 lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (u64(hi) << 32) | lo;
}
inline void wrmsr(u32 msr, u64 v) {
    asm volatile("wrmsr" : : "c"(msr), "a"(u32(v)), "d"(u32(v >> 32)) : "memory");
}
inline u64 rdtsc() {
    u32 lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (u64(hi) << 32) | lo;
}
inline void outb(u16 port, u8 v) { asm volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
inline void outl(u16 port, u32 v) { asm volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory"); }
inline u8 inb(u16 port) { u8 v; asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
inline void invlpg(u64 va) { asm volatile("invlpg (%0)" : : "r"(va) : "memory"); }
[[noreturn]] inline void halt_forever() {
    for (;;)
        asm volatile("cli; hlt");
}

struct CpuidResult {
    u32 eax, ebx, ecx, edx;
};
// CPUID traps to the hypervisor (microseconds on nested KVM): call it at boot
// and cache what is needed.
inline CpuidResult cpuid(u32 leaf, u32 sub = 0) {
    CpuidResult r;
    asm volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(sub));
    return r;
}

struct CpuFeatures {
    bool page_1g = false;
    bool nx = false;
    bool xsave = false;
    bool fsgsbase = false;
    bool syscall = false; // SYSCALL/SYSRET (CPUID 0x80000001 EDX.11)
    u64 xcr0 = 0; // state components enabled for user code
};

// Loads CPU `cpu`'s GDT and TSS (its kernel stack: `kernel_stack_top`, whose
// lowest word must hold `cpu`) and the IDT, enables the FPU/SSE/AVX state
// for ring-3 code (the kernel itself never touches it), and points the
// syscall MSRs at the CPU's syscall stub. Returns the features found.
CpuFeatures cpu_init(u32 cpu, u64 kernel_stack_top);

// Whether `va` is one of the CPUs' LSTAR stubs: the #PF path recognises a
// `syscall` on nested KVM by it (one compare, no lookup of the CPU).
bool is_syscall_entry(u64 va);

} // namespace kos::arch
