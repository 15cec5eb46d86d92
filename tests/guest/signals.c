/* Signal delivery: a SIGCHLD handler runs with a Linux signal frame
 * (siginfo, ucontext), the interrupted call returns EINTR, the signal mask
 * and the vector registers come back as they were after rt_sigreturn; kill
 * between processes ends a process by default, runs its handler, or is
 * ignored; raise runs a handler before it returns; SIGCHLD arrives without
 * sigsuspend; sigsuspend waits for a signal from another process; handlers
 * with SA_ONSTACK run on the sigaltstack, even after a stack overflow;
 * SIGSTOP stops a process (wait reports it with WUNTRACED), SIGCONT lets it
 * go on (WCONTINUED), SIGKILL ends a stopped one.
 * Prints "signals: N failures" and returns N; runs natively and under kos. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <time.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static volatile int handled;
static volatile int seen_signo, seen_code;
static volatile pid_t seen_pid;
static volatile int uc_ok;

static volatile int got_usr1, got_usr2;
static void on_usr1(int sig) { got_usr1 = sig; }
static void on_usr2(int sig) { got_usr2 = sig; }

/* A child that waits (making system calls, where signals are delivered)
 * until a handler sets `got_usr1`, then exits 3. */
static pid_t spawn(int mode, int ready_fd) {
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    if (mode == 1)
        signal(SIGUSR1, on_usr1);
    if (mode == 2)
        signal(SIGTERM, SIG_IGN);
    char c = 'r';
    if (write(ready_fd, &c, 1) != 1)
        _exit(90);
    for (long i = 0; i < 200000000 && !got_usr1; ++i)
        getppid();
    _exit(got_usr1 ? 3 : 91);
}

static void test_kill(void) {
    int ready[2];
    char c;
    int status = 0;
    CHECK(pipe(ready) == 0);

    /* No handler: SIGTERM ends the child; its status says so. */
    pid_t a = spawn(0, ready[1]);
    CHECK(read(ready[0], &c, 1) == 1);
    CHECK(kill(a, SIGTERM) == 0);
    CHECK(waitpid(a, &status, 0) == a);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);

    /* A handler: it runs in the child, which then exits 3. */
    pid_t b = spawn(1, ready[1]);
    CHECK(read(ready[0], &c, 1) == 1);
    CHECK(kill(b, SIGUSR1) == 0);
    CHECK(waitpid(b, &status, 0) == b);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3);

    /* Ignored: SIGTERM does nothing; SIGKILL still ends it. */
    pid_t d = spawn(2, ready[1]);
    CHECK(read(ready[0], &c, 1) == 1);
    CHECK(kill(d, SIGTERM) == 0);
    CHECK(waitpid(d, &status, WNOHANG) == 0);
    CHECK(kill(d, SIGKILL) == 0);
    CHECK(waitpid(d, &status, 0) == d);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* Existence checks; a handler for raise runs before it returns. */
    CHECK(kill(getpid(), 0) == 0);
    CHECK(kill(a, 0) == -1 && errno == ESRCH); /* reaped */
    signal(SIGUSR2, on_usr2);
    CHECK(raise(SIGUSR2) == 0);
    CHECK(got_usr2 == SIGUSR2);
    close(ready[0]);
    close(ready[1]);

    /* Writing to a pipe nobody reads: SIGPIPE ends the writer; ignored, the
     * write fails with EPIPE. */
    int p[2];
    CHECK(pipe(p) == 0);
    close(p[0]);
    pid_t w = fork();
    if (w == 0) {
        ssize_t n = write(p[1], "x", 1);
        _exit(n < 0 && errno == EPIPE ? 4 : 5);
    }
    CHECK(waitpid(w, &status, 0) == w);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE);
    signal(SIGPIPE, SIG_IGN);
    CHECK(write(p[1], "x", 1) == -1 && errno == EPIPE);
    signal(SIGPIPE, SIG_DFL);
    close(p[1]);
}

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

static volatile pid_t chld_pid;
static volatile int chld_count;
static void on_chld_plain(int sig, siginfo_t* info, void* uc) {
    (void)sig, (void)uc;
    ++chld_count;
    chld_pid = info->si_pid;
}

/* SIGCHLD reaches a handler while the parent goes on making calls. */
static void test_sigchld_without_suspend(void) {
    struct sigaction sa;
    /* Earlier children's SIGCHLD may be pending (blocked above): ignoring
     * the signal drops it. */
    signal(SIGCHLD, SIG_IGN);
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_chld_plain;
    sa.sa_flags = SA_SIGINFO;
    CHECK(sigaction(SIGCHLD, &sa, 0) == 0);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    CHECK(sigprocmask(SIG_UNBLOCK, &chld, 0) == 0);
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    for (long i = 0; i < 200000000 && !chld_count; ++i)
        getppid();
    CHECK(chld_count == 1);
    CHECK(chld_pid == child);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    signal(SIGCHLD, SIG_DFL);
}

/* sigsuspend returns when another process's signal arrives, after its
 * handler; the mask from before is back. */
static void test_sigsuspend_for_kill(void) {
    got_usr2 = 0;
    signal(SIGUSR2, on_usr2);
    sigset_t block, old, none, now;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    CHECK(sigprocmask(SIG_BLOCK, &block, &old) == 0);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0)
        _exit(kill(parent, SIGUSR2) == 0 ? 0 : 1);
    sigfillset(&none); /* everything but SIGUSR2 (the child's SIGCHLD waits) */
    sigdelset(&none, SIGUSR2);
    int r = sigsuspend(&none);
    CHECK(r == -1 && errno == EINTR);
    CHECK(got_usr2 == SIGUSR2);
    CHECK(sigprocmask(SIG_SETMASK, 0, &now) == 0);
    CHECK(sigismember(&now, SIGUSR2) == 1);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(sigprocmask(SIG_SETMASK, &old, 0) == 0);
    signal(SIGUSR2, SIG_DFL);
}

static char* alt_base;
static size_t alt_size = 64 * 1024;
static volatile int on_alt;
static sigjmp_buf overflow_jump;
static void on_alt_usr1(int sig) {
    char here;
    (void)sig;
    on_alt = &here >= alt_base && &here < alt_base + alt_size;
}
static void on_overflow(int sig) {
    char here;
    (void)sig;
    on_alt = &here >= alt_base && &here < alt_base + alt_size;
    siglongjmp(overflow_jump, 1);
}
static volatile long depth_left = 1L << 40;
static __attribute__((noinline)) int recurse(volatile char* p) {
    volatile char buf[4096];
    buf[0] = p ? p[0] : 1;
    if (--depth_left == 0)
        return 0;
    return recurse(buf) + buf[1];
}

/* SA_ONSTACK handlers run on the alternate stack: after raise, and after
 * a stack overflow (whose SIGSEGV could not run on the full stack). The
 * overflow runs in a child whose stack is limited. */
static void test_sigaltstack(void) {
    alt_base = malloc(alt_size);
    stack_t ss = {.ss_sp = alt_base, .ss_size = alt_size, .ss_flags = 0}, cur;
    CHECK(sigaltstack(&ss, 0) == 0);
    CHECK(sigaltstack(0, &cur) == 0 && cur.ss_sp == alt_base && cur.ss_size == alt_size && cur.ss_flags == 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alt_usr1;
    sa.sa_flags = SA_ONSTACK;
    CHECK(sigaction(SIGUSR1, &sa, 0) == 0);
    on_alt = 0;
    CHECK(raise(SIGUSR1) == 0);
    CHECK(on_alt == 1);
    signal(SIGUSR1, SIG_DFL);

    pid_t child = fork();
    if (child == 0) {
        struct sigaction so;
        memset(&so, 0, sizeof so);
        so.sa_handler = on_overflow;
        so.sa_flags = SA_ONSTACK | SA_NODEFER;
        sigaction(SIGSEGV, &so, 0);
        on_alt = 0;
        if (sigsetjmp(overflow_jump, 1) == 0)
            recurse(0);
        _exit(on_alt ? 0 : 2);
    }
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ss.ss_flags = SS_DISABLE;
    CHECK(sigaltstack(&ss, 0) == 0);
}

/* A child that writes a byte to `fd` again and again: it is running while
 * bytes arrive. */
static int bytes_arrive(int fd, int want) {
    char buf[256];
    struct timespec pause = {0, 20 * 1000 * 1000};
    int got = 0;
    for (int i = 0; i < 50; ++i) { /* up to about a second */
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0)
            got += (int)n;
        if (got >= want)
            return 1;
        nanosleep(&pause, 0);
    }
    return 0;
}

static volatile int stop_codes; /* bit 0: CLD_STOPPED seen, bit 1: CLD_CONTINUED seen */
static void on_chld_stop(int sig, siginfo_t* info, void* uc) {
    (void)sig, (void)uc;
    if (info->si_code == CLD_STOPPED && info->si_status == SIGSTOP)
        stop_codes |= 1;
    if (info->si_code == CLD_CONTINUED)
        stop_codes |= 2;
}

/* Waits (making calls, where signals arrive) until `bits` are in stop_codes. */
static int codes_arrive(int bits) {
    struct timespec pause = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 100 && (stop_codes & bits) != bits; ++i)
        nanosleep(&pause, 0);
    return (stop_codes & bits) == bits;
}

static void test_stop_and_continue(void) {
    /* SIGCHLD tells of stops and continuations (no SA_NOCLDSTOP). */
    signal(SIGCHLD, SIG_IGN); /* drop what earlier children left pending */
    struct sigaction sc;
    memset(&sc, 0, sizeof sc);
    sc.sa_sigaction = on_chld_stop;
    sc.sa_flags = SA_SIGINFO;
    CHECK(sigaction(SIGCHLD, &sc, 0) == 0);
    stop_codes = 0;
    int p[2];
    CHECK(pipe(p) == 0);
    CHECK(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0);
    pid_t child = fork();
    if (child == 0) {
        close(p[0]);
        for (;;) {
            if (write(p[1], "x", 1) != 1)
                _exit(1);
            struct timespec t = {0, 5 * 1000 * 1000};
            nanosleep(&t, 0);
        }
    }
    close(p[1]);
    CHECK(bytes_arrive(p[0], 1));
    int status = 0;
    CHECK(kill(child, SIGSTOP) == 0);
    CHECK(waitpid(child, &status, WUNTRACED) == child);
    CHECK(WIFSTOPPED(status) && WSTOPSIG(status) == SIGSTOP);
    CHECK(codes_arrive(1));
    /* Stopped: nothing more arrives (after what was on its way). */
    char buf[256];
    while (read(p[0], buf, sizeof buf) > 0) {
    }
    struct timespec t = {0, 200 * 1000 * 1000};
    nanosleep(&t, 0);
    CHECK(read(p[0], buf, sizeof buf) < 0 && errno == EAGAIN);
    /* Nothing more to report until it changes. */
    CHECK(waitpid(child, &status, WUNTRACED | WNOHANG) == 0);
    CHECK(kill(child, SIGCONT) == 0);
    CHECK(waitpid(child, &status, WCONTINUED) == child);
    CHECK(WIFCONTINUED(status));
    CHECK(codes_arrive(2));
    CHECK(bytes_arrive(p[0], 1));
    /* With SA_NOCLDSTOP, stops are not told. */
    sc.sa_flags = SA_SIGINFO | SA_NOCLDSTOP;
    CHECK(sigaction(SIGCHLD, &sc, 0) == 0);
    stop_codes = 0;
    /* SIGKILL ends a stopped process. */
    CHECK(kill(child, SIGSTOP) == 0);
    CHECK(waitpid(child, &status, WUNTRACED) == child && WIFSTOPPED(status));
    CHECK(kill(child, SIGKILL) == 0);
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK(stop_codes == 0);
    close(p[0]);
    signal(SIGCHLD, SIG_DFL);
}

/* A handled signal ends a wait on a pipe or for a child: EINTR without
 * SA_RESTART, the call executed again after the handler with it. A child
 * signals this process while it waits, then writes one byte (or exits). */
static volatile int got_alarm;
static void on_alarm_signal(int sig) { got_alarm = sig; }

static pid_t signal_then(int pipe_w, int exit_code) {
    pid_t parent = getpid();
    pid_t c = fork();
    if (c == 0) {
        usleep(200 * 1000);
        kill(parent, SIGUSR1);
        usleep(200 * 1000);
        if (pipe_w >= 0 && write(pipe_w, "y", 1) != 1)
            _exit(100);
        _exit(exit_code);
    }
    return c;
}

static void test_interrupted_waits(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm_signal;
    sigemptyset(&sa.sa_mask);
    int p[2], status;
    char c = 0;
    for (int restart = 0; restart < 2; ++restart) {
        sa.sa_flags = restart ? SA_RESTART : 0;
        CHECK(sigaction(SIGUSR1, &sa, 0) == 0);
        CHECK(pipe(p) == 0);
        got_alarm = 0;
        pid_t w = signal_then(p[1], 0);
        ssize_t n = read(p[0], &c, 1);
        CHECK(got_alarm == SIGUSR1);
        if (restart)
            CHECK(n == 1 && c == 'y');
        else
            CHECK(n == -1 && errno == EINTR);
        CHECK(waitpid(w, &status, 0) == w);
        close(p[0]);
        close(p[1]);

        got_alarm = 0;
        w = signal_then(-1, 5);
        pid_t r = waitpid(w, &status, 0);
        CHECK(got_alarm == SIGUSR1);
        if (restart) {
            CHECK(r == w && WIFEXITED(status) && WEXITSTATUS(status) == 5);
        } else {
            CHECK(r == -1 && errno == EINTR);
            CHECK(waitpid(w, &status, 0) == w);
        }
    }
    signal(SIGUSR1, SIG_DFL);
}

/* siginfo names the sender of kill(): si_pid, si_uid, SI_USER; also for a
 * signal taken with sigwaitinfo. */
static volatile pid_t usr_sender;
static volatile int usr_code = -99;
static void on_usr_info(int sig, siginfo_t* info, void* uc) {
    (void)sig;
    (void)uc;
    usr_sender = info->si_pid;
    usr_code = info->si_code;
}

static void test_sender_pid(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr_info;
    sa.sa_flags = SA_SIGINFO | SA_RESTART; /* the wait below goes on */
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR2, &sa, 0) == 0);
    pid_t parent = getpid();
    pid_t c = fork();
    if (c == 0) {
        kill(parent, SIGUSR2);
        _exit(0);
    }
    int status;
    CHECK(waitpid(c, &status, 0) == c);
    for (int i = 0; i < 100 && usr_sender == 0; ++i)
        usleep(10 * 1000);
    CHECK(usr_sender == c);
    CHECK(usr_code == SI_USER);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    CHECK(sigprocmask(SIG_BLOCK, &set, 0) == 0);
    c = fork();
    if (c == 0) {
        kill(parent, SIGUSR2);
        _exit(0);
    }
    siginfo_t info;
    memset(&info, 0, sizeof info);
    CHECK(sigwaitinfo(&set, &info) == SIGUSR2);
    CHECK(info.si_pid == c);
    CHECK(waitpid(c, &status, 0) == c);
    CHECK(sigprocmask(SIG_UNBLOCK, &set, 0) == 0);
    signal(SIGUSR2, SIG_DFL);
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

    test_kill();
    test_sigchld_without_suspend();
    test_sigsuspend_for_kill();
    test_sigaltstack();
    test_stop_and_continue();
    test_interrupted_waits();
    test_sender_pid();

    printf("signals: %d failures\n", failures);
    return failures;
}
