#include "platform.h"

#include "cpu.h"
#include "kos/boot.h"

namespace kos::platform {
namespace {

namespace hc = abi::hc;

bool g_kos_vmm = false;
hc::HypercallBlock g_block;

i64 hypercall(hc::Op op, u64 a0 = 0, u64 a1 = 0, u64 a2 = 0) {
    g_block.op = static_cast<abi::u32>(op);
    g_block.args[0] = a0;
    g_block.args[1] = a1;
    g_block.args[2] = a2;
    g_block.result = 0;
    arch::outl(hc::kPort, static_cast<abi::u32>(kernel_virt_to_phys(&g_block)));
    return g_block.result;
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

void init(bool kos_vmm) { g_kos_vmm = kos_vmm; }
bool is_kos_vmm() { return g_kos_vmm; }

i64 console_write_phys(int stream, u64 paddr, u64 len) {
    if (g_kos_vmm)
        return hypercall(hc::Op::ConsoleWrite, u64(stream), paddr, len);
    serial_write(reinterpret_cast<const char*>(abi::boot::kDirectMapBase + paddr), len);
    return static_cast<i64>(len);
}

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

} // namespace kos::platform
