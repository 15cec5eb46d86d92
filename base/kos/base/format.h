// A small printf for freestanding code: %s %c %d %i %u %x %X %p and the
// length modifiers l, ll, z; width and '0' padding; %.*s. Always
// NUL-terminates; returns the length the full output would have.
#pragma once

#include <stdarg.h>
#include <stddef.h>

namespace kos {

size_t vformat(char* buf, size_t size, const char* fmt, va_list ap);
size_t format(char* buf, size_t size, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

} // namespace kos
