// Pipes: a byte stream between the processes of a bundle (the Linux pipe
// personality call maps onto it). Each end is a kernel object reached by
// handles; an end's handle count is its number of readers or writers, so a
// pipe reports end of data once no writer handle is left and EPIPE once no
// reader handle is left.
#pragma once

#include "handle_table.h"
#include "task.h"

namespace kos {

struct Pipe {
    KernelObject read_end;
    KernelObject write_end;
    abi::u64 buffer_pa = 0; // one frame, a ring
    abi::u32 head = 0;
    abi::u32 size = 0;
    bool used = false;
};

abi::i64 pipe_create(Thread* self, abi::u64 handles_out);
abi::i64 pipe_read(Thread* self, abi::u64 handle, abi::u64 buf, abi::u64 len);
abi::i64 pipe_write(Thread* self, abi::u64 handle, abi::u64 buf, abi::u64 len);
// Readiness of the pipe behind either end (abi/kos/syscall.h, pipe_poll).
abi::i64 pipe_poll(Thread* self, abi::u64 handle);
// A handle to a pipe end went away: readers or writers may need waking.
void pipe_end_released(KernelObject* end);

// Returned by a call whose caller must wait and then execute it again.
inline constexpr abi::i64 kRestart = kBlocked + 2;

} // namespace kos
