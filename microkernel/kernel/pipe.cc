#include "pipe.h"

#include "errno.h"
#include "kos/base/string.h"
#include "pmm.h"

namespace kos {
namespace {

using abi::i64;
using abi::u32;
using abi::u64;

constexpr u32 kPipeSize = 4096;
constexpr u32 kMaxPipes = 128;
constexpr i64 kEpipe = 32;
Pipe g_pipes[kMaxPipes];

Pipe* pipe_of(KernelObject* end, bool write) {
    auto* base = reinterpret_cast<abi::u8*>(end) - (write ? offsetof(Pipe, write_end) : offsetof(Pipe, read_end));
    return reinterpret_cast<Pipe*>(base);
}

bool copy(Task* task, u64 va, abi::u8* k, u64 len, bool to_user) {
    return to_user ? task->as.copy_out(va, k, len) : task->as.copy_in(va, k, len);
}

void wake_waiters(Pipe* p);

} // namespace

void pipe_end_released(KernelObject* end) {
    if (end->type == ObjectType::PipeRead)
        wake_waiters(pipe_of(end, false));
    else if (end->type == ObjectType::PipeWrite)
        wake_waiters(pipe_of(end, true));
}

i64 pipe_create(Thread* self, u64 handles_out) {
    Pipe* p = nullptr;
    for (Pipe& c : g_pipes)
        if (!c.used || (c.read_end.refcount == 0 && c.write_end.refcount == 0)) {
            p = &c;
            break;
        }
    if (!p)
        return -23; // ENFILE
    if (!p->buffer_pa) {
        p->buffer_pa = pmm::alloc_frame(false);
        if (p->buffer_pa == pmm::kNoFrame) {
            p->buffer_pa = 0;
            return -err::kNoMem;
        }
    }
    p->used = true;
    p->head = p->size = 0;
    p->read_end = {ObjectType::PipeRead, 0};
    p->write_end = {ObjectType::PipeWrite, 0};
    Task* t = self->task;
    auto r = t->handles.insert(&p->read_end, ObjectType::PipeRead, kRightTransfer | kRightDuplicate);
    if (r.is_error())
        return -r.error();
    auto w = t->handles.insert(&p->write_end, ObjectType::PipeWrite, kRightTransfer | kRightDuplicate);
    if (w.is_error()) {
        (void)t->handles.remove(*r);
        return -w.error();
    }
    u32 out[2] = {*r, *w};
    if (!copy(t, handles_out, reinterpret_cast<abi::u8*>(out), sizeof out, true)) {
        (void)t->handles.remove(*r);
        (void)t->handles.remove(*w);
        return -err::kFault;
    }
    return 0;
}

i64 pipe_poll(Thread* self, u64 handle) {
    if (handle > 0xffffffffu)
        return -9;
    auto r = self->task->handles.get(static_cast<Handle>(handle), ObjectType::PipeRead, 0);
    bool write_end = false;
    if (r.is_error()) {
        r = self->task->handles.get(static_cast<Handle>(handle), ObjectType::PipeWrite, 0);
        if (r.is_error())
            return -9;
        write_end = true;
    }
    Pipe* p = pipe_of((*r).object, write_end);
    i64 ready = 0;
    if (p->size > 0 || p->write_end.refcount == 0)
        ready |= 1;
    if (p->size < kPipeSize || p->read_end.refcount == 0)
        ready |= 2;
    return ready;
}

i64 pipe_read(Thread* self, u64 handle, u64 buf, u64 len) {
    auto e = self->task->handles.get(static_cast<Handle>(handle), ObjectType::PipeRead, 0);
    if (e.is_error() || handle > 0xffffffffu)
        return -9;
    Pipe* p = pipe_of((*e).object, false);
    if (len == 0)
        return 0;
    if (p->size == 0) {
        if (p->write_end.refcount == 0)
            return 0; // every writer is gone: end of data
        self->state = ThreadState::BlockedPipe;
        self->pipe = p;
        return kRestart;
    }
    u32 n = len < p->size ? static_cast<u32>(len) : p->size;
    auto* ring = static_cast<abi::u8*>(pmm::phys_to_virt(p->buffer_pa));
    u32 first = kPipeSize - p->head < n ? kPipeSize - p->head : n;
    if (!copy(self->task, buf, ring + p->head, first, true) ||
        (n > first && !copy(self->task, buf + first, ring, n - first, true)))
        return -err::kFault;
    p->head = (p->head + n) % kPipeSize;
    p->size -= n;
    wake_waiters(p);
    return n;
}

i64 pipe_write(Thread* self, u64 handle, u64 buf, u64 len) {
    auto e = self->task->handles.get(static_cast<Handle>(handle), ObjectType::PipeWrite, 0);
    if (e.is_error() || handle > 0xffffffffu)
        return -9;
    Pipe* p = pipe_of((*e).object, true);
    if (p->read_end.refcount == 0)
        return -kEpipe;
    if (len == 0)
        return 0;
    // Writes of up to the pipe's size are atomic (POSIX PIPE_BUF): they wait
    // until all of it fits. Larger ones write what fits; the caller loops.
    u32 space = kPipeSize - p->size;
    if (space == 0 || (len <= kPipeSize && space < len)) {
        self->state = ThreadState::BlockedPipe;
        self->pipe = p;
        return kRestart;
    }
    u32 n = len < space ? static_cast<u32>(len) : space;
    auto* ring = static_cast<abi::u8*>(pmm::phys_to_virt(p->buffer_pa));
    u32 tail = (p->head + p->size) % kPipeSize;
    u32 first = kPipeSize - tail < n ? kPipeSize - tail : n;
    if (!copy(self->task, buf, ring + tail, first, false) ||
        (n > first && !copy(self->task, buf + first, ring, n - first, false)))
        return -err::kFault;
    p->size += n;
    wake_waiters(p);
    return n;
}

namespace {
void wake_waiters(Pipe* p) { wake_pipe_waiters(p); }
} // namespace

} // namespace kos
