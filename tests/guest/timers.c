/* Alarms and interval timers, signals reaching code that makes no system
 * calls, and handlers for faults. Prints "timers: N failures". */
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static volatile sig_atomic_t alarms, usr1;
static void on_alarm(int sig) { alarms += sig == SIGALRM; }
static void on_usr1(int sig) { usr1 += sig == SIGUSR1; }

static sigjmp_buf fault_jump;
static void* volatile fault_addr;
static void on_segv(int sig, siginfo_t* si, void* uc) {
    fault_addr = si->si_addr;
    siglongjmp(fault_jump, sig);
}

/* Spins without system calls until *flag changes or ~2^34 iterations. */
static int spin_until(volatile sig_atomic_t* flag, int value) {
    for (unsigned long i = 0; i < (1ul << 34); ++i)
        if (*flag >= value)
            return 1;
    return 0;
}

static void interval_timer(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
    struct itimerval it = {{0, 20000}, {0, 20000}}; /* every 20 ms */
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
    struct itimerval cur;
    CHECK(getitimer(ITIMER_REAL, &cur) == 0);
    CHECK(cur.it_interval.tv_usec == 20000 && cur.it_value.tv_sec == 0 && cur.it_value.tv_usec <= 20000);
    /* A pure loop sees the handler run, three times. */
    CHECK(spin_until(&alarms, 3));
    struct itimerval off = {{0, 0}, {0, 0}};
    CHECK(setitimer(ITIMER_REAL, &off, NULL) == 0);
    int seen = alarms;
    usleep(100000);
    CHECK(alarms == seen); /* stopped */
}

static void alarm_calls(void) {
    CHECK(alarm(5) == 0);
    CHECK(alarm(0) == 5);
    CHECK(alarm(0) == 0);
    /* pause() returns once the alarm's handler ran. */
    alarms = 0;
    struct itimerval once = {{0, 0}, {0, 30000}};
    CHECK(setitimer(ITIMER_REAL, &once, NULL) == 0);
    CHECK(pause() == -1 && errno == EINTR);
    CHECK(alarms == 1);
}

static void signal_from_child(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        kill(parent, SIGUSR1);
        _exit(0);
    }
    CHECK(spin_until(&usr1, 1)); /* arrives while the parent computes */
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
}

static void fault_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
    int sig = sigsetjmp(fault_jump, 1);
    if (sig == 0) {
        *(volatile int*)0x1234 = 1;
        CHECK(!"the write faulted");
    }
    CHECK(sig == SIGSEGV);
    CHECK(fault_addr == (void*)0x1234);
    /* Again: the mask was restored by siglongjmp. */
    sig = sigsetjmp(fault_jump, 1);
    if (sig == 0)
        (void)*(volatile int*)16;
    CHECK(sig == SIGSEGV && fault_addr == (void*)16);
}

static volatile sig_atomic_t usr2;
static void on_usr2(int sig) { usr2 += sig == SIGUSR2; }

/* POSIX timers: a periodic SIGEV_SIGNAL one, a SIGEV_NONE one read with
 * timer_gettime, an absolute one-shot, deletion. */
static void posix_timers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    CHECK(sigaction(SIGUSR2, &sa, NULL) == 0);
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGUSR2;
    timer_t periodic;
    CHECK(timer_create(CLOCK_MONOTONIC, &ev, &periodic) == 0);
    struct itimerspec every = {{0, 20000000}, {0, 20000000}};
    CHECK(timer_settime(periodic, 0, &every, NULL) == 0);
    CHECK(spin_until(&usr2, 3));
    struct itimerspec cur;
    CHECK(timer_gettime(periodic, &cur) == 0 && cur.it_interval.tv_nsec == 20000000);
    CHECK(timer_delete(periodic) == 0);
    int seen = usr2;
    usleep(100000);
    CHECK(usr2 == seen);

    ev.sigev_notify = SIGEV_NONE;
    timer_t quiet;
    CHECK(timer_create(CLOCK_REALTIME, &ev, &quiet) == 0);
    struct itimerspec later = {{0, 0}, {5, 0}};
    CHECK(timer_settime(quiet, 0, &later, NULL) == 0);
    CHECK(timer_gettime(quiet, &cur) == 0 && cur.it_value.tv_sec <= 5 && cur.it_value.tv_sec >= 4);
    CHECK(timer_delete(quiet) == 0);
    CHECK(timer_gettime(quiet, &cur) == -1 && errno == EINVAL);

    ev.sigev_notify = SIGEV_SIGNAL;
    timer_t once;
    CHECK(timer_create(CLOCK_MONOTONIC, &ev, &once) == 0);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    now.tv_nsec += 30000000;
    if (now.tv_nsec >= 1000000000) {
        now.tv_nsec -= 1000000000;
        now.tv_sec += 1;
    }
    struct itimerspec at = {{0, 0}, now};
    usr2 = 0;
    CHECK(timer_settime(once, TIMER_ABSTIME, &at, NULL) == 0);
    CHECK(spin_until(&usr2, 1));
    CHECK(timer_delete(once) == 0);
}

static void default_actions(void) {
    /* An alarm without a handler ends the process with SIGALRM. */
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGALRM, SIG_DFL);
        alarm(1);
        for (;;) {
        }
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM);
    /* A fault while its signal is blocked ends the process with it. */
    pid = fork();
    if (pid == 0) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGSEGV);
        sigprocmask(SIG_BLOCK, &set, NULL);
        *(volatile int*)8 = 1;
        _exit(0);
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    interval_timer();
    alarm_calls();
    signal_from_child();
    fault_handler();
    posix_timers();
    default_actions();
    printf("timers: %d failures\n", failures);
    return failures;
}
