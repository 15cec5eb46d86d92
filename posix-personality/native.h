// Native kos system calls from the runtime (abi/kos/syscall.h).
#pragma once

#include "kos/syscall.h"

namespace kos::rt {

using abi::i64;
using abi::u64;
using abi::sys::Sys;

inline i64 native(Sys n, u64 a0 = 0, u64 a1 = 0, u64 a2 = 0, u64 a3 = 0, u64 a4 = 0) {
    i64 ret;
    register u64 r10 asm("r10") = a3;
    register u64 r8 asm("r8") = a4;
    asm volatile("syscall"
                 : "=a"(ret)
                 : "a"(static_cast<u64>(n)), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8)
                 : "rcx", "r11", "memory");
    return ret;
}

[[noreturn]] inline void native_exit(u64 kind, u64 value) {
    native(Sys::exit, kind, value);
    __builtin_unreachable();
}

} // namespace kos::rt
