#pragma once

#include "kos/types.h"

namespace kos {
[[noreturn]] void panic(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void kprintf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
} // namespace kos
