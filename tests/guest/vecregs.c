/* Vector registers belong to their thread: four processes and two threads
 * each fill xmm0-xmm7 with their own pattern and check them for about a
 * second while the timer preempts them. Prints "vecregs: N failures". */
#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* 1 if any of xmm0-xmm7 stopped holding `pattern` during `iters` rounds. */
static int clobbered(uint32_t pattern, long iters) {
    uint32_t expect[4] __attribute__((aligned(16))) = {pattern, pattern, pattern, pattern};
    int bad = 0;
    __asm__ volatile(
        "movdqa (%[e]), %%xmm0\n movdqa %%xmm0, %%xmm1\n movdqa %%xmm0, %%xmm2\n"
        "movdqa %%xmm0, %%xmm3\n movdqa %%xmm0, %%xmm4\n movdqa %%xmm0, %%xmm5\n"
        "movdqa %%xmm0, %%xmm6\n movdqa %%xmm0, %%xmm7\n"
        "1:\n"
#define CHECK_REG(r) "movdqa %%" r ", %%xmm8\n pcmpeqd (%[e]), %%xmm8\n pmovmskb %%xmm8, %%eax\n cmp $0xffff, %%eax\n jne 2f\n"
        CHECK_REG("xmm0") CHECK_REG("xmm1") CHECK_REG("xmm2") CHECK_REG("xmm3")
        CHECK_REG("xmm4") CHECK_REG("xmm5") CHECK_REG("xmm6") CHECK_REG("xmm7")
        "dec %[n]\n jnz 1b\n jmp 3f\n"
        "2: movl $1, %[bad]\n"
        "3:\n"
        : [bad] "+r"(bad), [n] "+r"(iters)
        : [e] "r"(expect)
        : "rax", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "memory", "cc");
    return bad;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int run(uint32_t pattern) {
    double end = now() + 1.0;
    int bad = 0;
    while (now() < end)
        bad |= clobbered(pattern, 2000000);
    return bad;
}

static void* thread_main(void* arg) { return (void*)(intptr_t)run((uint32_t)(uintptr_t)arg); }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t kids[3];
    for (int i = 0; i < 3; ++i) {
        kids[i] = fork();
        if (kids[i] == 0)
            _exit(run(0x11111111u * (uint32_t)(i + 1)));
    }
    pthread_t th;
    CHECK(pthread_create(&th, NULL, thread_main, (void*)(uintptr_t)0xabababab) == 0);
    CHECK(run(0x5a5a5a5a) == 0);
    void* ret = NULL;
    CHECK(pthread_join(th, &ret) == 0 && ret == NULL);
    for (int i = 0; i < 3; ++i) {
        int status = -1;
        CHECK(waitpid(kids[i], &status, 0) == kids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    printf("vecregs: %d failures\n", failures);
    return failures;
}
