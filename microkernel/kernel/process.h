// The running program: one address space with its personality runtime and,
// for now, one thread. (Many tasks and threads come with the IPC work.)
#pragma once

#include "kos/syscall.h"
#include "vm.h"

namespace kos {

struct Thread {
    abi::u64 thread_block_va = 0; // runtime's ThreadBlock (user-visible, pinned)
    abi::u64 thread_block_pa = 0;
    abi::u64 runtime_stack_top = 0;
    abi::u64 fs_base = 0;
};

struct Process {
    vm::AddressSpace as;
    Thread main_thread;
    abi::u64 runtime_text_start = 0; // `syscall` from here is a native call
    abi::u64 runtime_text_end = 0;
    abi::u64 runtime_linux_entry = 0;
    abi::u64 runtime_start_entry = 0;
    abi::u64 start_info_va = 0;
    abi::u64 image_pa = 0; // boot image (read-only)
    abi::u64 image_size = 0;
    abi::u64 rootfs_offset = 0;
    abi::u64 rootfs_size = 0;
};

extern Process* g_current;

// Loads the embedded personality runtime and the boot image into a fresh
// address space. Returns nullptr with `error` set on failure.
Process* create_first_process(abi::u64 kernel_pml4, abi::u64 image_pa, abi::u64 image_size,
                              const char** error);

} // namespace kos
