// Spins forever without a system call: only preemption lets others run.
#include "kos/native.h"

int main(const kn::NativeStartInfo*) {
    for (;;)
        asm volatile("" ::: "memory");
}
