#include "kos/base/format.h"

namespace kos {
namespace {

struct Out {
    char* buf;
    size_t size;
    size_t len = 0;
    void put(char c) {
        if (len + 1 < size)
            buf[len] = c;
        ++len;
    }
};

void put_unsigned(Out& o, unsigned long long v, unsigned base, bool upper, int width, char pad) {
    char tmp[24];
    int n = 0;
    const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    for (int i = n; i < width; ++i)
        o.put(pad);
    while (n)
        o.put(tmp[--n]);
}

} // namespace

size_t vformat(char* buf, size_t size, const char* fmt, va_list ap) {
    Out o{buf, size};
    for (const char* p = fmt; *p; ++p) {
        if (*p != '%') {
            o.put(*p);
            continue;
        }
        ++p;
        char pad = ' ';
        int width = 0;
        int precision = -1;
        bool alt = false;
        if (*p == '#') {
            alt = true;
            ++p;
        }
        if (*p == '0') {
            pad = '0';
            ++p;
        }
        while (*p >= '0' && *p <= '9')
            width = width * 10 + (*p++ - '0');
        if (*p == '.' && p[1] == '*') {
            precision = va_arg(ap, int);
            p += 2;
        }
        int longs = 0;
        while (*p == 'l') {
            ++longs;
            ++p;
        }
        if (*p == 'z') {
            longs = 1;
            ++p;
        }
        switch (*p) {
        case 's': {
            const char* s = va_arg(ap, const char*);
            if (!s)
                s = "(null)";
            for (int i = 0; s[i] && (precision < 0 || i < precision); ++i)
                o.put(s[i]);
            break;
        }
        case 'c':
            o.put(static_cast<char>(va_arg(ap, int)));
            break;
        case 'd':
        case 'i': {
            long long v = longs ? va_arg(ap, long long) : va_arg(ap, int);
            unsigned long long u = static_cast<unsigned long long>(v);
            if (v < 0) {
                o.put('-');
                u = 0ull - u;
                if (width)
                    --width;
            }
            put_unsigned(o, u, 10, false, width, pad);
            break;
        }
        case 'u':
            put_unsigned(o, longs ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned), 10,
                         false, width, pad);
            break;
        case 'x':
        case 'X':
            if (alt) {
                o.put('0');
                o.put(*p);
            }
            put_unsigned(o, longs ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned), 16,
                         *p == 'X', width, pad);
            break;
        case 'p':
            o.put('0');
            o.put('x');
            put_unsigned(o, reinterpret_cast<unsigned long long>(va_arg(ap, void*)), 16, false,
                         width, pad);
            break;
        case '%':
            o.put('%');
            break;
        case 0:
            --p;
            break;
        default:
            o.put('%');
            o.put(*p);
        }
    }
    if (size)
        buf[o.len < size ? o.len : size - 1] = 0;
    return o.len;
}

size_t format(char* buf, size_t size, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = vformat(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

} // namespace kos
