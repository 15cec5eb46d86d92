#include "platform.h"

#include "../../kernel/pmm.h"
#include "kos/base/string.h"

#include "cpu.h"
#include "kos/boot.h"

namespace kos::platform {
namespace {

namespace hc = abi::hc;

bool g_kos_vmm = false;
// One block per CPU: the kernel lock serializes hypercalls, but a CPU
// waiting for it may still panic.
hc::HypercallBlock g_blocks[arch::kMaxCpus];

i64 hypercall(hc::Op op, u64 a0 = 0, u64 a1 = 0, u64 a2 = 0, u64 a3 = 0) {
    hc::HypercallBlock& block = g_blocks[arch::cpu_index()];
    block.op = static_cast<abi::u32>(op);
    block.args[0] = a0;
    block.args[1] = a1;
    block.args[2] = a2;
    block.args[3] = a3;
    block.result = 0;
    arch::outl(hc::kPort, static_cast<abi::u32>(kernel_virt_to_phys(&block)));
    return block.result;
}

void serial_write(const char* s, u64 len) {
    for (u64 i = 0; i < len; ++i) {
        if (s[i] == '\n')
            arch::outb(hc::kSerialPort, '\r');
        arch::outb(hc::kSerialPort, static_cast<abi::u8>(s[i]));
    }
}

} // namespace

u64 kernel_virt_to_phys(const void* p) {
    u64 va = reinterpret_cast<u64>(p);
    if (va >= abi::boot::kKernelVirtBase)
        return va - abi::boot::kKernelVirtBase;
    return va - abi::boot::kDirectMapBase;
}

void init(bool kos_vmm) {
    g_kos_vmm = kos_vmm;
    if (!kos_vmm) {
        // Firmware leaves the legacy 8259 PICs routing IRQ0 (the PIT) to
        // vector 8, which would look like a double fault. Mask both; kos
        // interrupt sources are programmed explicitly (the kos VMM has no
        // PIC at all).
        arch::outb(0x21, 0xff);
        arch::outb(0xa1, 0xff);
    }
}
bool is_kos_vmm() { return g_kos_vmm; }

i64 start_cpu(abi::u32 cpu, u64 rip, u64 rsp, u64 cr3) {
    if (!g_kos_vmm)
        return -38; // ENOSYS: other VMMs start CPUs with INIT/SIPI, which kos does not send
    return hypercall(hc::Op::StartCpu, cpu, rip, rsp, cr3);
}

i64 console_write_phys(int stream, u64 paddr, u64 len) {
    if (g_kos_vmm)
        return hypercall(hc::Op::ConsoleWrite, u64(stream), paddr, len);
    serial_write(reinterpret_cast<const char*>(abi::boot::kDirectMapBase + paddr), len);
    return static_cast<i64>(len);
}

void copy_frame(u64 dst_pa, u64 src_pa) {
    if (g_kos_vmm && hypercall(hc::Op::CopyPage, dst_pa, src_pa) == 0)
        return;
    auto* d = reinterpret_cast<u64*>(abi::boot::kDirectMapBase + dst_pa);
    const auto* s = reinterpret_cast<const u64*>(abi::boot::kDirectMapBase + src_pa);
    for (int i = 0; i < 512; ++i)
        d[i] = s[i];
}

void zero_frame(u64 pa) {
    if (g_kos_vmm && hypercall(hc::Op::ZeroPage, pa) == 0)
        return;
    memset(pmm::phys_to_virt(pa), 0, 4096);
}

void audit_record(u64 pa) {
    if (g_kos_vmm)
        hypercall(hc::Op::Audit, pa);
}

i64 net_call(u64 pa) {
    if (!g_kos_vmm)
        return -38; // ENOSYS
    return hypercall(hc::Op::Net, pa);
}

i64 file_call(u64 pa) {
    if (!g_kos_vmm)
        return -38; // ENOSYS
    return hypercall(hc::Op::File, pa);
}

void fpu_switch_via_vmm(u64 save_pa, u64 load_pa) { hypercall(hc::Op::FpuSwitch, save_pa, load_pa); }

i64 console_read_phys(u64 paddr, u64 len) {
    if (g_kos_vmm)
        return hypercall(hc::Op::ConsoleRead, paddr, len);
    return 0; // no input under other VMMs
}

void console_write_kernel(int stream, const char* s, u64 len) {
    if (g_kos_vmm)
        hypercall(hc::Op::ConsoleWrite, u64(stream), kernel_virt_to_phys(s), len);
    else
        serial_write(s, len);
}

void exit(hc::ExitKind kind, u64 value) {
    if (g_kos_vmm)
        hypercall(hc::Op::Exit, static_cast<u64>(kind), value);
    // isa-debug-exit: QEMU exits with (value << 1) | 1.
    char msg[] = "kos: exit 000\n";
    u64 v = kind == hc::ExitKind::Exited ? value & 0xff : 128 + value;
    msg[10] = char('0' + v / 100 % 10);
    msg[11] = char('0' + v / 10 % 10);
    msg[12] = char('0' + v % 10);
    serial_write(msg, sizeof msg - 1);
    arch::outb(hc::kDebugExitPort, static_cast<abi::u8>(v));
    arch::halt_forever();
}

void panic_stop(const char* msg, u64 len) {
    if (g_kos_vmm)
        hypercall(hc::Op::Panic, kernel_virt_to_phys(msg), len);
    serial_write(msg, len);
    arch::outb(hc::kDebugExitPort, 0xff);
    arch::halt_forever();
}

namespace {

abi::u8 cmos(abi::u8 reg) {
    arch::outb(0x70, reg);
    return arch::inb(0x71);
}

// Days since 1970-01-01 of a civil date (proleptic Gregorian).
abi::i64 days_from_civil(abi::i64 y, unsigned m, unsigned d) {
    y -= m <= 2;
    abi::i64 era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = static_cast<unsigned>(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<abi::i64>(doe) - 719468;
}

} // namespace

Clock read_platform_clock() {
    // TSC against PIT channel 2 counting 10 ms (1193182 Hz input clock).
    constexpr abi::u32 kLatch = 1193182 / 100;
    arch::outb(0x61, static_cast<abi::u8>((arch::inb(0x61) & ~0x02) | 0x01));
    arch::outb(0x43, 0xb0);
    arch::outb(0x42, kLatch & 0xff);
    arch::outb(0x42, kLatch >> 8);
    u64 t0 = arch::rdtsc();
    u64 spins = 0;
    while (!(arch::inb(0x61) & 0x20) && ++spins < 100000000) {
    }
    u64 t1 = arch::rdtsc();
    Clock c{(t1 - t0) / 10, 0};

    // CMOS RTC (UTC by convention in VMs): wait out an update in progress,
    // then read BCD or binary fields per status register B.
    while (cmos(0x0a) & 0x80) {
    }
    abi::u8 sec = cmos(0x00), min = cmos(0x02), hour = cmos(0x04), day = cmos(0x07),
            mon = cmos(0x08), year = cmos(0x09), regb = cmos(0x0b);
    auto bin = [&](abi::u8 v) -> unsigned { return (regb & 0x04) ? v : (v & 0x0f) + (v >> 4) * 10; };
    bool pm = !(regb & 0x02) && (hour & 0x80);
    unsigned h = bin(hour & 0x7f) % 12 + (pm ? 12 : 0);
    if (regb & 0x02)
        h = bin(hour);
    abi::i64 days = days_from_civil(2000 + bin(year), bin(mon), bin(day));
    abi::i64 secs = days * 86400 + h * 3600 + bin(min) * 60 + bin(sec);
    u64 now_tsc = arch::rdtsc();
    u64 elapsed_ns = c.tsc_khz ? now_tsc * 1000000 / c.tsc_khz : 0;
    u64 now_ns = static_cast<u64>(secs) * 1000000000ull;
    c.realtime_at_tsc0_ns = now_ns > elapsed_ns ? now_ns - elapsed_ns : 0;
    return c;
}

} // namespace kos::platform
