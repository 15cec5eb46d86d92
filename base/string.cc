// Freestanding memory and string functions: no SSE (see cmake/KosGuest.cmake).
// Ring 3 (the runtime) uses the `rep` string instructions; ring 0 (the
// kernel, KOS_RING0) uses word loops, see memcpy.
#include "kos/base/string.h"

#include <stdint.h>

extern "C" {

#if KOS_RING0
// Ring 0 copies word by word: on nested KVM, where guest kernel code is
// emulated, `rep movsb` costs one emulation step per byte (3.6 ms per 4 KiB
// page measured, against 1.3 ms for this loop); on hardware the loop is as
// fast as the copies the kernel makes need.
__attribute__((no_builtin)) void* memcpy(void* dst, const void* src, size_t n) {
    auto* d = static_cast<unsigned char*>(dst);
    const auto* s = static_cast<const unsigned char*>(src);
    for (; n >= 8; n -= 8, d += 8, s += 8) {
        uint64_t w;
        __builtin_memcpy_inline(&w, s, 8);
        __builtin_memcpy_inline(d, &w, 8);
    }
    for (; n; --n)
        *d++ = *s++;
    return dst;
}
#else
void* memcpy(void* dst, const void* src, size_t n) {
    void* ret = dst;
    asm volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
    return ret;
}
#endif

void* memmove(void* dst, const void* src, size_t n) {
    auto* d = static_cast<unsigned char*>(dst);
    const auto* s = static_cast<const unsigned char*>(src);
    if (d == s || n == 0)
        return dst;
    if (d < s || d >= s + n)
        return memcpy(dst, src, n);
    // Overlapping with dst above src: copy backwards.
    d += n - 1;
    s += n - 1;
    asm volatile("std\n rep movsb\n cld" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    return dst;
}

#if KOS_RING0
__attribute__((no_builtin)) void* memset(void* dst, int c, size_t n) {
    auto* d = static_cast<unsigned char*>(dst);
    uint64_t w = 0x0101010101010101ull * static_cast<unsigned char>(c);
    for (; n >= 8; n -= 8, d += 8)
        __builtin_memcpy_inline(d, &w, 8);
    for (; n; --n)
        *d++ = static_cast<unsigned char>(c);
    return dst;
}
#else
void* memset(void* dst, int c, size_t n) {
    void* ret = dst;
    asm volatile("rep stosb" : "+D"(dst), "+c"(n) : "a"(c) : "memory");
    return ret;
}
#endif

int memcmp(const void* a, const void* b, size_t n) {
    const auto* x = static_cast<const unsigned char*>(a);
    const auto* y = static_cast<const unsigned char*>(b);
    for (size_t i = 0; i < n; ++i)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

size_t strlen(const char* s) {
    size_t n = 0;
    while (s[n])
        ++n;
    return n;
}

int strcmp(const char* a, const char* b) {
    while (*a && *a == *b) {
        ++a;
        ++b;
    }
    return static_cast<unsigned char>(*a) - static_cast<unsigned char>(*b);
}

int strncmp(const char* a, const char* b, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        if (a[i] != b[i] || !a[i])
            return static_cast<unsigned char>(a[i]) - static_cast<unsigned char>(b[i]);
    }
    return 0;
}
}
