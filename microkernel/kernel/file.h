// Volumes: the kernel's side of the VMM's file service (abi/kos/file.h). An
// open file is a kernel object holding the service's id for it; programs
// hold handles to it, so fork shares it (and its position) and the last
// handle closes it. The kernel finds each path's volume in the boot image's
// volume table, asks the policy `security <caller> -> <volume label>
// file.read / file.write` before the VMM sees the call, and refuses changes
// to read-only volumes.
#pragma once

#include "handle_table.h"
#include "kos/types.h"
#include "task.h"

namespace kos {

// Reads and checks the boot image's volume table (after security_init).
// nullptr, or what is wrong with it (the kernel then stops).
const char* volumes_init();

// file_call (abi/kos/syscall.h): the FileCall at user address `call_va`.
abi::i64 file_call(Thread* self, abi::u64 call_va);

// A handle to an open volume file went away: the last one closes it in the VMM.
void volume_file_released(KernelObject* object);

} // namespace kos
