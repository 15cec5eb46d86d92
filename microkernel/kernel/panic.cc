#include "panic.h"

#include "../arch/x86_64/platform.h"
#include "kos/base/format.h"

namespace kos {

void kprintf(const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    size_t n = vformat(buf, sizeof buf, fmt, ap);
    va_end(ap);
    platform::console_write_kernel(2, buf, n < sizeof buf ? n : sizeof buf - 1);
}

void panic(const char* fmt, ...) {
    static char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    size_t n = vformat(buf, sizeof buf, fmt, ap);
    va_end(ap);
    platform::panic_stop(buf, n < sizeof buf ? n : sizeof buf - 1);
}

} // namespace kos
