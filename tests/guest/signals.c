/* Signal delivery: a SIGCHLD handler runs with a Linux signal frame
 * (siginfo, ucontext), the interrupted call returns EINTR, the signal mask
 * and the vector registers come back as they were after rt_sigreturn.
 * Prints "signals: N failures" and returns N; runs natively and under kos. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static volatile int handled;
static volatile int seen_signo, seen_code;
static volatile pid_t seen_pid;
static volatile int uc_ok;

static void on_child(int sig, siginfo_t* info, void* ucv) {
    ucontext_t* uc = ucv;
    ++handled;
    seen_signo = info->si_signo;
    seen_code = info->si_code;
    seen_pid = info->si_pid;
    /* The frame's saved state is the interrupted call's: it returns EINTR. */
    uc_ok = uc && (long long)uc->uc_mcontext.gregs[REG_RAX] == -EINTR;
    (void)sig;
    /* Clobber a vector register the interrupted code relies on. */
    __asm__ volatile("pcmpeqd %%xmm8, %%xmm8" ::: "xmm8");
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_child;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGCHLD, &sa, 0) == 0);

    sigset_t block, old, none;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    CHECK(sigprocmask(SIG_BLOCK, &block, &old) == 0);

    pid_t child = fork();
    if (child == 0)
        _exit(7);
    CHECK(child > 0);

    uint64_t pattern = 0x1122334455667788ull, after = 0;
    __asm__ volatile("movq %0, %%xmm8" ::"r"(pattern) : "xmm8");
    sigemptyset(&none);
    int r = sigsuspend(&none);
    __asm__ volatile("movq %%xmm8, %0" : "=r"(after));
    CHECK(r == -1 && errno == EINTR);
    CHECK(handled == 1);
    CHECK(seen_signo == SIGCHLD);
    CHECK(seen_code == CLD_EXITED);
    CHECK(seen_pid == child);
    CHECK(uc_ok);
    CHECK(after == pattern);

    /* The mask from before sigsuspend is back: SIGCHLD still blocked. */
    sigset_t now;
    CHECK(sigprocmask(SIG_SETMASK, 0, &now) == 0);
    CHECK(sigismember(&now, SIGCHLD) == 1);

    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);

    printf("signals: %d failures\n", failures);
    return failures;
}
