#include "task.h"

#include "../arch/x86_64/platform.h"
#include "ipc.h"
#include "kos/base/string.h"
#include "kos/hypercall.h"
#include "panic.h"
#include "pmm.h"

namespace kos {

Thread* g_current = nullptr;

namespace {

using abi::u64;

Task g_tasks[kMaxTasks];
Thread g_threads[kMaxTasks];
abi::u32 g_task_count = 0;
Thread* g_run_head = nullptr;
Thread* g_run_tail = nullptr;
bool g_xsave = false;
u64 g_xcr0 = 0;

bool g_ring0_fpu = true;

// Switches the user FPU/SSE/AVX state: `save_pa` receives the running
// thread's state, `load_pa` provides the next one's (either may be 0).
// Where ring-0 FXRSTOR/XRSTOR do not work (nested kvm_pvm), the kos VMM
// does it with KVM_GET_XSAVE/KVM_SET_XSAVE: one exit per switch there.
void fpu_switch(u64 save_pa, u64 load_pa) {
    if (!g_ring0_fpu) {
        platform::fpu_switch_via_vmm(save_pa, load_pa);
        return;
    }
    if (save_pa) {
        void* p = pmm::phys_to_virt(save_pa);
        if (g_xsave)
            asm volatile("xsave64 (%0)" : : "r"(p), "a"(u32(g_xcr0)), "d"(u32(g_xcr0 >> 32)) : "memory");
        else
            asm volatile("fxsave64 (%0)" : : "r"(p) : "memory");
    }
    if (load_pa) {
        void* p = pmm::phys_to_virt(load_pa);
        if (g_xsave)
            asm volatile("xrstor64 (%0)" : : "r"(p), "a"(u32(g_xcr0)), "d"(u32(g_xcr0 >> 32)) : "memory");
        else
            asm volatile("fxrstor64 (%0)" : : "r"(p) : "memory");
    }
}

Thread* pop_runnable() {
    Thread* t = g_run_head;
    if (t) {
        g_run_head = t->next;
        if (!g_run_head)
            g_run_tail = nullptr;
        t->next = nullptr;
    }
    return t;
}

} // namespace

extern "C" int probe_fxrstor(void* area);

void fpu_init(bool xsave, u64 xcr0) {
    g_xsave = xsave;
    g_xcr0 = xcr0;
    // Probe with a valid initial-state image (a fresh thread's).
    u64 pa = pmm::alloc_frame(true);
    if (pa == pmm::kNoFrame)
        return;
    fpu_init_area(pa);
    g_ring0_fpu = probe_fxrstor(pmm::phys_to_virt(pa)) != 0;
    pmm::free_frame(pa);
    if (!g_ring0_fpu && !platform::is_kos_vmm())
        platform::panic_stop("kos kernel: this CPU cannot restore FPU state in ring 0 and the VMM "
                             "offers no other way\n", 89);
}

void fpu_init_area(u64 pa) {
    // The state a fresh Linux thread has: x87 control word 0x37f, MXCSR
    // 0x1f80 (all exceptions masked), everything else zero (SDM vol. 1
    // §10.5.1). The frame is zeroed by the allocator.
    auto* area = static_cast<abi::u8*>(pmm::phys_to_virt(pa));
    area[0] = 0x7f;
    area[1] = 0x03;
    area[24] = 0x80;
    area[25] = 0x1f;
}

Task* task_at(abi::u32 index) { return index < g_task_count ? &g_tasks[index] : nullptr; }

Task* alloc_task() {
    if (g_task_count == kMaxTasks)
        return nullptr;
    Task* t = &g_tasks[g_task_count];
    t->index = g_task_count++;
    return t;
}

Thread* alloc_thread(Task* task) {
    for (Thread& t : g_threads) {
        if (t.state != ThreadState::Free)
            continue;
        u64 fpu = pmm::alloc_frame(true);
        u64 msg = pmm::alloc_frame(false);
        if (fpu == pmm::kNoFrame || msg == pmm::kNoFrame)
            return nullptr;
        fpu_init_area(fpu);
        t = Thread{};
        t.fpu_pa = fpu;
        t.msg_pa = msg;
        t.task = task;
        t.state = ThreadState::Dead; // runnable once started
        task->thread = &t;
        return &t;
    }
    return nullptr;
}

void make_runnable(Thread* t) {
    t->state = ThreadState::Runnable;
    t->next = nullptr;
    if (g_run_tail)
        g_run_tail->next = t;
    else
        g_run_head = t;
    g_run_tail = t;
}

void load_thread(Thread* t, arch::TrapFrame* f) {
    Task* task = t->task;
    if (!g_current || g_current->task != task)
        arch::write_cr3(task->as.pml4());
    *f = t->frame;
    arch::wrmsr(arch::kMsrFsBase, t->fs_base);
    arch::wrmsr(arch::kMsrGsBase, t->gs_base);
    g_current = t;
}

void schedule(arch::TrapFrame* f, bool save) {
    Thread* cur = g_current;
    Thread* next = pop_runnable();
    if (!next) {
        if (cur && cur->state == ThreadState::Runnable)
            return;
        platform::panic_stop("kos: every task is blocked (each waits for another): the "
                             "program deadlocked\n",
                             71);
    }
    u64 save_pa = 0;
    if (cur && save) {
        cur->frame = *f;
        save_pa = cur->fpu_pa;
        cur->fs_base = arch::rdmsr(arch::kMsrFsBase);
        cur->gs_base = arch::rdmsr(arch::kMsrGsBase);
        if (cur->state == ThreadState::Runnable)
            make_runnable(cur);
    }
    fpu_switch(save_pa, next->fpu_pa);
    load_thread(next, f);
}

void task_exit(Task* task) {
    if (task->dead)
        return;
    task->dead = true;
    if (task->thread)
        task->thread->state = ThreadState::Dead;
    ipc_task_died(task);
    // Address space teardown waits for a later change (frames of a dead
    // task stay allocated until the run ends).
}

} // namespace kos
