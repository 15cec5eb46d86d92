/* Vector registers belong to their thread: four processes and two threads
 * each fill xmm0-xmm7 with their own pattern and check them for about a
 * second while the timer preempts them. Prints "vecregs: N failures".
 * `vecregs ymm`: two threads keep their own 256-bit values in ymm0-ymm7
 * (upper halves differing from lower ones) across preemptions and system
 * calls; prints "vecregs ymm: N failures", or "vecregs ymm: skipped: ..."
 * (and exits 0) where AVX is not enabled. */
#define _GNU_SOURCE
#include <cpuid.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
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

/* AVX usable: CPUID.1:ECX OSXSAVE and AVX, and XCR0 enabling SSE and AVX state. */
static const char* avx_missing(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return "no CPUID leaf 1";
    if (!(c & (1u << 27)))
        return "CPUID.1:ECX.OSXSAVE is clear (the kernel did not enable XSAVE)";
    if (!(c & (1u << 28)))
        return "CPUID.1:ECX.AVX is clear";
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6)
        return "XCR0 does not enable AVX state";
    return NULL;
}

/* 1 if any of ymm0-ymm7 stopped holding the 32 bytes at `expect` during
 * `iters` rounds; a getppid system call every 64 rounds, a sched_yield
 * every 4096. */
static int ymm_clobbered(const uint32_t* expect, long iters) {
    int bad = 0;
    __asm__ volatile(
        "vmovdqu (%[e]), %%ymm0\n vmovdqa %%ymm0, %%ymm1\n vmovdqa %%ymm0, %%ymm2\n"
        "vmovdqa %%ymm0, %%ymm3\n vmovdqa %%ymm0, %%ymm4\n vmovdqa %%ymm0, %%ymm5\n"
        "vmovdqa %%ymm0, %%ymm6\n vmovdqa %%ymm0, %%ymm7\n"
        "1:\n"
#define CHECK_YMM(r) "vxorps (%[e]), %%" r ", %%ymm8\n vptest %%ymm8, %%ymm8\n jnz 2f\n"
        CHECK_YMM("ymm0") CHECK_YMM("ymm1") CHECK_YMM("ymm2") CHECK_YMM("ymm3")
        CHECK_YMM("ymm4") CHECK_YMM("ymm5") CHECK_YMM("ymm6") CHECK_YMM("ymm7")
        "test $63, %[n]\n jnz 4f\n"
        "mov $110, %%eax\n"             /* getppid */
        "test $4095, %[n]\n jnz 5f\n"
        "mov $24, %%eax\n"              /* sched_yield */
        "5: syscall\n"
        "4: dec %[n]\n jnz 1b\n jmp 3f\n"
        "2: movl $1, %[bad]\n"
        "3: vzeroupper\n"
        : [bad] "+r"(bad), [n] "+r"(iters)
        : [e] "r"(expect)
        : "rax", "rcx", "r11", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "memory", "cc");
    return bad;
}

static int run_ymm(uint32_t pattern) {
    uint32_t expect[8] __attribute__((aligned(32)));
    for (int i = 0; i < 4; ++i) {
        expect[i] = pattern + (uint32_t)i;
        expect[4 + i] = ~pattern - (uint32_t)i; /* the upper half differs */
    }
    double end = now() + 1.0;
    int bad = 0;
    while (now() < end)
        bad |= ymm_clobbered(expect, 200000);
    return bad;
}

static void* ymm_thread(void* arg) { return (void*)(intptr_t)run_ymm((uint32_t)(uintptr_t)arg); }

/* A signal handler that zeroes every ymm register returns to code whose
 * ymm registers are as they were (the signal frame holds the XSAVE state,
 * marked as Linux marks it). */
static volatile int frame_marked;
static void zero_ymm(int sig, siginfo_t* si, void* ucv) {
    (void)sig;
    (void)si;
    ucontext_t* uc = ucv;
    const unsigned char* fp = (const unsigned char*)uc->uc_mcontext.fpregs;
    uint32_t magic1;
    memcpy(&magic1, fp + 464, 4);
    frame_marked = magic1 == 0x46505853u; /* FP_XSTATE_MAGIC1 */
    __asm__ volatile("vpxor %%xmm0, %%xmm0, %%xmm0\n vpxor %%xmm1, %%xmm1, %%xmm1\n vzeroall\n" ::: "xmm0", "xmm1",
                     "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8");
}

static int ymm_survive_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = zero_ymm;
    sa.sa_flags = SA_SIGINFO;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    uint32_t expect[8] __attribute__((aligned(32))) = {1, 2, 3, 4, 0xfffffff5u, 0xfffffff6u, 0xfffffff7u, 0xfffffff8u};
    long tid = syscall(SYS_gettid);
    int bad = 0;
    __asm__ volatile(
        "vmovdqu (%[e]), %%ymm0\n vmovdqa %%ymm0, %%ymm7\n"
        "mov $200, %%eax\n mov %[tid], %%rdi\n mov $10, %%esi\n syscall\n" /* tkill(tid, SIGUSR1) */
        CHECK_YMM("ymm0") CHECK_YMM("ymm7")
        "jmp 3f\n"
        "2: movl $1, %[bad]\n"
        "3: vzeroupper\n"
        : [bad] "+r"(bad)
        : [e] "r"(expect), [tid] "r"(tid)
        : "rax", "rcx", "rdi", "rsi", "r11", "xmm0", "xmm7", "xmm8", "memory", "cc");
    signal(SIGUSR1, SIG_DFL);
    CHECK(frame_marked);
    return bad;
}

static int ymm_main(void) {
    const char* missing = avx_missing();
    if (missing) {
        printf("vecregs ymm: skipped: AVX is not enabled here: %s\n", missing);
        return 0;
    }
    CHECK(ymm_survive_handler() == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, ymm_thread, (void*)(uintptr_t)0x3c3c0000u) == 0);
    CHECK(run_ymm(0x96960000u) == 0);
    void* ret = NULL;
    CHECK(pthread_join(th, &ret) == 0 && ret == NULL);
    printf("vecregs ymm: %d failures\n", failures);
    return failures;
}

int main(int argc, char** argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && strcmp(argv[1], "ymm") == 0)
        return ymm_main();
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
    /* Stopped and continued while it computes (on another CPU where there
     * is one), the child keeps its registers; this process's own vector
     * work meanwhile (the copies below) runs over the CPU's. */
    pid_t stopped = fork();
    if (stopped == 0)
        _exit(run(0x77777777u));
    static char a[1 << 16], b[1 << 16];
    for (int i = 0; i < 10; ++i) {
        usleep(30 * 1000);
        CHECK(kill(stopped, SIGSTOP) == 0);
        for (int j = 0; j < 20; ++j) {
            memset(a, j, sizeof a);
            memcpy(b, a, sizeof b);
        }
        usleep(10 * 1000);
        CHECK(kill(stopped, SIGCONT) == 0);
    }
    int status = -1;
    CHECK(waitpid(stopped, &status, 0) == stopped && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("vecregs: %d failures\n", failures);
    return failures;
}
