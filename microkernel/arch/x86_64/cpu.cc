#include "cpu.h"

#include "../../kernel/tlb.h"

extern "C" const kos::abi::u64 isr_stub_table[35];
extern "C" const kos::abi::u64 isr_spurious;
extern "C" const kos::abi::u64 syscall_entry_table[kos::arch::kMaxCpus];
extern "C" kos::abi::u64 kernel_stack_top[kos::arch::kMaxCpus];

kos::abi::u64 kernel_stack_top[kos::arch::kMaxCpus]; // used by the syscall stubs (entry.S)

namespace kos::arch {
namespace {

struct [[gnu::packed]] Tss {
    u32 reserved0;
    u64 rsp[3];
    u64 reserved1;
    u64 ist[7];
    u64 reserved2;
    u16 reserved3;
    u16 iomap_base;
};
static_assert(sizeof(Tss) == 104);

struct IdtGate {
    u16 offset_lo;
    u16 selector;
    u8 ist;
    u8 type_attr;
    u16 offset_mid;
    u32 offset_hi;
    u32 zero;
};
static_assert(sizeof(IdtGate) == 16);

struct [[gnu::packed]] DescriptorPointer {
    u16 limit;
    u64 base;
};

// Per CPU: a GDT (its TSS descriptor is marked busy once loaded, so CPUs
// cannot share one), a TSS and a double-fault stack. One IDT for all.
alignas(16) u64 g_gdt[kMaxCpus][7];
alignas(16) Tss g_tss[kMaxCpus];
alignas(16) IdtGate g_idt[256];
alignas(16) u8 g_double_fault_stack[kMaxCpus][8192];

void set_gate(int vec, u64 handler, u8 dpl, u8 ist) {
    IdtGate& g = g_idt[vec];
    g.offset_lo = u16(handler);
    g.selector = kKernelCs;
    g.ist = ist;
    g.type_attr = u8(0x8e | (dpl << 5)); // present, 64-bit interrupt gate
    g.offset_mid = u16(handler >> 16);
    g.offset_hi = u32(handler >> 32);
    g.zero = 0;
}

void load_gdt_and_tss(u32 cpu, u64 stack_top) {
    u64* gdt = g_gdt[cpu];
    Tss& tss = g_tss[cpu];
    gdt[0] = 0;
    gdt[1] = 0x00af9a000000ffffull; // kernel code, 64-bit
    gdt[2] = 0x00cf92000000ffffull; // kernel data
    gdt[3] = 0x00cff2000000ffffull; // user data (DPL 3)
    gdt[4] = 0x00affa000000ffffull; // user code, 64-bit (DPL 3)
    u64 base = reinterpret_cast<u64>(&tss);
    u64 limit = sizeof(Tss) - 1;
    // 64-bit TSS descriptor (SDM vol. 3 §8.2.3): type 9, present.
    gdt[5] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
           (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    gdt[6] = base >> 32;
    tss.rsp[0] = stack_top;
    tss.ist[0] = reinterpret_cast<u64>(g_double_fault_stack[cpu] + sizeof g_double_fault_stack[cpu]);
    tss.iomap_base = sizeof(Tss); // no I/O bitmap: ring 3 has no port access
    DescriptorPointer gdtr{sizeof g_gdt[cpu] - 1, reinterpret_cast<u64>(gdt)};
    asm volatile("lgdt %0" : : "m"(gdtr));
    asm volatile("pushq %0\n"
                 "leaq 1f(%%rip), %%rax\n"
                 "pushq %%rax\n"
                 "lretq\n"
                 "1:\n"
                 "mov %1, %%eax\n"
                 "mov %%eax, %%ds\n"
                 "mov %%eax, %%es\n"
                 "mov %%eax, %%ss\n"
                 "xor %%eax, %%eax\n"
                 "mov %%eax, %%fs\n"
                 "mov %%eax, %%gs\n"
                 :
                 : "i"(u64(kKernelCs)), "i"(u32(kKernelDs))
                 : "rax", "memory");
    asm volatile("ltr %w0" : : "r"(kTss));
}

void build_idt() {
    for (int v = 0; v < 32; ++v) {
        // #BP and #OF may be raised by ring-3 instructions (int3, into).
        u8 dpl = (v == 3 || v == 4) ? 3 : 0;
        u8 ist = v == 8 ? 1 : 0; // double fault on its own stack
        set_gate(v, isr_stub_table[v], dpl, ist);
    }
    set_gate(kVecTimer, isr_stub_table[kVecTimer], 0, 0);
    set_gate(kVecReschedule, isr_stub_table[kVecReschedule], 0, 0);
    set_gate(kVecTlbFlush, isr_stub_table[kVecTlbFlush], 0, 0);
    set_gate(kVecSpurious, isr_spurious, 0, 0);
}

void load_idt() {
    DescriptorPointer idtr{sizeof g_idt - 1, reinterpret_cast<u64>(g_idt)};
    asm volatile("lidt %0" : : "m"(idtr));
}

} // namespace

void flush_tlb_page(u64 va) { invlpg(va); }
void flush_tlb_all() { write_cr3(read_cr3()); }

extern "C" char syscall_stubs[];
bool is_syscall_entry(u64 va) {
    // The stubs are 64-byte aligned in one page (entry.S).
    u64 base = reinterpret_cast<u64>(syscall_stubs);
    return va - base < 64 * kMaxCpus && va % 64 == 0;
}

CpuFeatures cpu_init(u32 cpu, u64 stack_top) {
    kernel_stack_top[cpu] = stack_top;
    load_gdt_and_tss(cpu, stack_top);
    if (cpu == 0)
        build_idt();
    load_idt();

    CpuFeatures f;
    CpuidResult ext = cpuid(0x80000001);
    f.page_1g = ext.edx & (1u << 26);
    f.nx = ext.edx & (1u << 20);
    CpuidResult l1 = cpuid(1);
    f.xsave = l1.ecx & (1u << 26);
    CpuidResult l7 = cpuid(7, 0);
    f.fsgsbase = l7.ebx & 1u;

    // User FPU/SSE/AVX: CR0.MP|NE, clear EM and TS; CR4.OSFXSR|OSXMMEXCPT
    // (+OSXSAVE). The kernel is built without SSE, so it never clobbers
    // this state (SDM vol. 1 §13.1).
    u64 cr0 = read_cr0();
    cr0 = (cr0 | (1u << 1) | (1u << 5) | (1u << 16)) & ~u64((1u << 2) | (1u << 3));
    write_cr0(cr0);
    u64 cr4 = read_cr4() | (1u << 9) | (1u << 10);
    if (f.xsave)
        cr4 |= 1u << 18;
    write_cr4(cr4);
    if (f.xsave) {
        CpuidResult d = cpuid(0xd, 0);
        // x87, SSE and AVX; no supervisor state. Not AVX-512: Linux threads'
        // runtimes save user state in ring 3 where its 2.5 KiB do not fit
        // (abi::sys::kFpuAreaMax), and programs see through XCR0 it is off.
        f.xcr0 = d.eax & 0x7;
        asm volatile("xsetbv" : : "c"(0), "a"(u32(f.xcr0)), "d"(u32(f.xcr0 >> 32)));
    }

    // EFER: SCE and NXE. Write only when something changes: KVM validates
    // guest EFER writes against the guest's CPUID, which some nested KVMs
    // leave empty (their VMM cannot set it), while the VMM's initial EFER
    // is accepted as is.
    f.syscall = ext.edx & (1u << 11);
    u64 old_efer = rdmsr(kMsrEfer);
    u64 efer = old_efer;
    if (f.syscall)
        efer |= 1u;
    if (f.nx)
        efer |= 1u << 11;
    if (efer != old_efer)
        wrmsr(kMsrEfer, efer);
    f.nx = efer & (1u << 11);
    wrmsr(kMsrStar, (u64(kKernelDs) << 48) | (u64(kKernelCs) << 32));
    wrmsr(kMsrLstar, syscall_entry_table[cpu]);
    // Mask TF, DF, IF, IOPL, NT, AC on entry (as Linux does).
    wrmsr(kMsrSfmask, 0x47700);
    return f;
}

} // namespace kos::arch
