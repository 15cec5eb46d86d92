/* CPU time: the CPU-time clocks of the process and of threads (and those
 * clock_getcpuclockid and pthread_getcpuclockid make), getrusage and
 * times, ITIMER_VIRTUAL and ITIMER_PROF, and POSIX timers on CPU-time
 * clocks; sleeping is not CPU time. Prints "cputime: N failures". */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static double clock_s(clockid_t c) {
    struct timespec t;
    if (clock_gettime(c, &t) != 0)
        return -1;
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0) {
    }
}

static volatile unsigned long sink;
/* Computes (no system calls in the loop) for `seconds` of this thread's CPU time. */
static void spin_cpu(double seconds) {
    double end = clock_s(CLOCK_THREAD_CPUTIME_ID) + seconds;
    while (clock_s(CLOCK_THREAD_CPUTIME_ID) < end)
        for (int i = 0; i < 100000; ++i)
            sink += (unsigned long)i;
}
/* Computes until *flag >= value or `seconds` of wall time pass. */
static int spin_until(volatile sig_atomic_t* flag, int value, double seconds) {
    double end = now() + seconds;
    while (*flag < value && now() < end)
        for (int i = 0; i < 100000 && *flag < value; ++i)
            sink += (unsigned long)i;
    return *flag >= value;
}

static void clocks(void) {
    struct timespec res;
    CHECK(clock_getres(CLOCK_PROCESS_CPUTIME_ID, &res) == 0 && res.tv_sec == 0 && res.tv_nsec > 0);
    CHECK(clock_getres(CLOCK_THREAD_CPUTIME_ID, &res) == 0 && res.tv_sec == 0 && res.tv_nsec > 0);
    double p0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), t0 = clock_s(CLOCK_THREAD_CPUTIME_ID), w0 = now();
    spin_cpu(0.2);
    double p1 = clock_s(CLOCK_PROCESS_CPUTIME_ID), t1 = clock_s(CLOCK_THREAD_CPUTIME_ID), w1 = now();
    CHECK(t1 - t0 >= 0.2);
    CHECK(p1 - p0 >= 0.19);
    CHECK(p1 - p0 <= w1 - w0 + 0.02); /* one thread: no more than the time that passed */
    /* Sleeping is not CPU time. */
    sleep_ms(300);
    double p2 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    CHECK(p2 - p1 < 0.1);
    /* The clock clock_getcpuclockid gives for this process is the same. */
    clockid_t mine;
    CHECK(clock_getcpuclockid(getpid(), &mine) == 0);
    double a = clock_s(mine), b = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    CHECK(a >= p2 && a <= b);
}

static atomic_int spun, stop;
static void* spinner(void* arg) {
    (void)arg;
    spin_cpu(0.3);
    atomic_store(&spun, 1);
    while (!atomic_load(&stop))
        for (int i = 0; i < 100000; ++i)
            sink += (unsigned long)i;
    return NULL;
}

static void thread_clocks(void) {
    double mine0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, spinner, NULL) == 0);
    while (!atomic_load(&spun))
        sleep_ms(5);
    clockid_t c;
    CHECK(pthread_getcpuclockid(th, &c) == 0);
    double theirs = clock_s(c);
    CHECK(theirs >= 0.3);
    atomic_store(&stop, 1);
    CHECK(pthread_join(th, NULL) == 0);
    /* This thread slept meanwhile (in a VM, time the host took its vCPU
     * away while it ran counts too: a margin). */
    CHECK(clock_s(CLOCK_THREAD_CPUTIME_ID) - mine0 < 0.5 * theirs);
    CHECK(clock_s(CLOCK_PROCESS_CPUTIME_ID) >= theirs);
}

static void usage(void) {
    struct rusage ru;
    CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
    double self = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                  ru.ru_stime.tv_usec / 1e6;
    CHECK(self >= 0.3); /* clocks() and thread_clocks() computed this much */
    CHECK(getrusage(RUSAGE_THREAD, &ru) == 0);
    CHECK(ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6 >= 0.19);
    struct tms t;
    CHECK(times(&t) != (clock_t)-1);
    long hz = sysconf(_SC_CLK_TCK);
    CHECK(hz > 0 && (double)(t.tms_utime + t.tms_stime) / (double)hz >= 0.25);
    /* A child's CPU time, once waited for. */
    pid_t pid = fork();
    if (pid == 0) {
        spin_cpu(0.2);
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
    CHECK(getrusage(RUSAGE_CHILDREN, &ru) == 0);
    CHECK(ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6 >= 0.19);
    CHECK(times(&t) != (clock_t)-1 && (double)(t.tms_cutime + t.tms_cstime) / (double)hz >= 0.15);
    /* wait4 reports the child it reaped. */
    pid = fork();
    if (pid == 0) {
        spin_cpu(0.1);
        _exit(0);
    }
    CHECK(wait4(pid, &status, 0, &ru) == pid && WIFEXITED(status));
    double child = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                   ru.ru_stime.tv_usec / 1e6;
    CHECK(child >= 0.09 && child < 1.0);
}

static volatile sig_atomic_t vtalrm, prof, usr1;
static void on_signal(int sig) {
    vtalrm += sig == SIGVTALRM;
    prof += sig == SIGPROF;
    usr1 += sig == SIGUSR1;
}

static void interval_timers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGVTALRM, &sa, NULL) == 0);
    CHECK(sigaction(SIGPROF, &sa, NULL) == 0);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    struct itimerval every = {{0, 20000}, {0, 20000}}, off = {{0, 0}, {0, 0}}, cur;
    for (int which = ITIMER_VIRTUAL; which <= ITIMER_PROF; ++which) {
        volatile sig_atomic_t* count = which == ITIMER_VIRTUAL ? &vtalrm : &prof;
        CHECK(setitimer(which, &every, NULL) == 0);
        /* Linux rounds a CPU timer up to its tick (4 ms at 250 Hz). */
        CHECK(getitimer(which, &cur) == 0 && cur.it_interval.tv_usec == 20000 && cur.it_value.tv_sec == 0 &&
              cur.it_value.tv_usec > 0 && cur.it_value.tv_usec <= 30000);
        CHECK(spin_until(count, 3, 10.0));
        CHECK(setitimer(which, &off, &cur) == 0 && cur.it_interval.tv_usec == 20000);
        CHECK(getitimer(which, &cur) == 0 && cur.it_value.tv_sec == 0 && cur.it_value.tv_usec == 0);
    }
    /* Sleeping does not advance ITIMER_VIRTUAL; computing does. */
    vtalrm = 0;
    struct itimerval once = {{0, 0}, {0, 50000}};
    CHECK(setitimer(ITIMER_VIRTUAL, &once, NULL) == 0);
    sleep_ms(300);
    CHECK(vtalrm == 0);
    CHECK(spin_until(&vtalrm, 1, 10.0));
}

static void cpu_posix_timers(void) {
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGUSR1;
    for (int i = 0; i < 2; ++i) {
        clockid_t c = i == 0 ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_THREAD_CPUTIME_ID;
        timer_t t;
        CHECK(timer_create(c, &ev, &t) == 0);
        struct itimerspec once = {{0, 0}, {0, 50000000}}, cur;
        usr1 = 0;
        CHECK(timer_settime(t, 0, &once, NULL) == 0);
        sleep_ms(300);
        CHECK(usr1 == 0); /* asleep: its clock did not move */
        CHECK(timer_gettime(t, &cur) == 0 && cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 20000000);
        CHECK(spin_until(&usr1, 1, 10.0));
        CHECK(timer_delete(t) == 0);
    }
    /* An absolute expiration on the process's CPU clock. */
    timer_t t;
    CHECK(timer_create(CLOCK_PROCESS_CPUTIME_ID, &ev, &t) == 0);
    struct timespec at;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &at);
    at.tv_nsec += 30000000;
    if (at.tv_nsec >= 1000000000) {
        at.tv_nsec -= 1000000000;
        at.tv_sec += 1;
    }
    struct itimerspec abs = {{0, 0}, at};
    usr1 = 0;
    CHECK(timer_settime(t, TIMER_ABSTIME, &abs, NULL) == 0);
    CHECK(spin_until(&usr1, 1, 10.0));
    CHECK(timer_delete(t) == 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    clocks();
    thread_clocks();
    usage();
    interval_timers();
    cpu_posix_timers();
    printf("cputime: %d failures\n", failures);
    return failures;
}
