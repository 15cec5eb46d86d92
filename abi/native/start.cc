// Entry of native kos programs: rdi = NativeStartInfo*, no return address.
#include "kos/native.h"

extern "C" [[noreturn]] void _start(const kn::NativeStartInfo* info) {
    if (info->magic != kos::abi::sys::kNativeStartMagic)
        kn::exit(120);
    kn::exit(main(info));
}
