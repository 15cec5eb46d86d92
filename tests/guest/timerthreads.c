/* Timers that notify threads, and signals between threads: SIGEV_THREAD
 * (the C library's helper thread, which waits with sigwaitinfo for a
 * SIGEV_THREAD_ID signal), SIGEV_THREAD_ID itself with sigtimedwait,
 * si_code/si_value/timer_getoverrun, per-thread signal masks, process
 * signals reaching a thread that does not block them, pthread_kill.
 * Prints "timerthreads: N failures". */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static pid_t tid(void) { return (pid_t)syscall(SYS_gettid); }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0) {
    }
}

/* Waits (sleeping) until *v >= want or `seconds` pass. */
static int wait_for(atomic_int* v, int want, double seconds) {
    double end = now() + seconds;
    while (atomic_load(v) < want && now() < end)
        sleep_ms(5);
    return atomic_load(v) >= want;
}

/* --- SIGEV_THREAD ------------------------------------------------------- */

static atomic_int calls, once_calls;
static atomic_int callback_tid;
static atomic_long callback_value;

static void on_timer(union sigval v) {
    atomic_store(&callback_tid, tid());
    atomic_store(&callback_value, (long)v.sival_int);
    atomic_fetch_add(&calls, 1);
}

static void on_once(union sigval v) {
    (void)v;
    atomic_fetch_add(&once_calls, 1);
}

static void sigev_thread(void) {
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = on_timer;
    ev.sigev_value.sival_int = 42;
    timer_t t;
    CHECK(timer_create(CLOCK_MONOTONIC, &ev, &t) == 0);
    struct itimerspec every = {{0, 20000000}, {0, 20000000}}; /* every 20 ms */
    CHECK(timer_settime(t, 0, &every, NULL) == 0);
    /* The callback runs again and again, in another thread. */
    CHECK(wait_for(&calls, 5, 10.0));
    CHECK(atomic_load(&callback_value) == 42);
    CHECK(atomic_load(&callback_tid) != 0 && atomic_load(&callback_tid) != tid());
    struct itimerspec cur;
    CHECK(timer_gettime(t, &cur) == 0 && cur.it_interval.tv_nsec == 20000000 && cur.it_value.tv_sec == 0);
    CHECK(timer_getoverrun(t) >= 0);
    int at_delete = atomic_load(&calls);
    CHECK(timer_delete(t) == 0);
    /* Deleted: no more calls, but for a callback under way and one for an
     * expiration already pending (the helper thread ends the kernel's timer
     * when it sees the deletion, which may take a while on a loaded host). */
    sleep_ms(300);
    int seen = atomic_load(&calls);
    CHECK(seen <= at_delete + 2);
    sleep_ms(200);
    CHECK(atomic_load(&calls) == seen);

    /* A one-shot timer calls once. */
    ev.sigev_notify_function = on_once;
    timer_t once;
    CHECK(timer_create(CLOCK_REALTIME, &ev, &once) == 0);
    struct itimerspec later = {{0, 0}, {0, 30000000}};
    CHECK(timer_settime(once, 0, &later, NULL) == 0);
    CHECK(wait_for(&once_calls, 1, 10.0));
    sleep_ms(100);
    CHECK(atomic_load(&once_calls) == 1);
    CHECK(timer_delete(once) == 0);
}

/* --- SIGEV_THREAD_ID, sigtimedwait, overruns ----------------------------- */

#define TSIG (SIGRTMIN + 2)
static atomic_int main_hits;
static void on_tsig(int sig) { main_hits += sig == TSIG; }

static atomic_int worker_tid, worker_ready, worker_done;
static timer_t thread_timer;
static atomic_int taken, good_info, overrun_seen;

static void* timer_worker(void* arg) {
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, TSIG);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    atomic_store(&worker_tid, tid());
    atomic_store(&worker_ready, 1);
    /* Three expirations, taken with sigtimedwait. */
    for (int i = 0; i < 3; ++i) {
        siginfo_t si;
        struct timespec limit = {5, 0};
        int sig = sigtimedwait(&set, &si, &limit);
        if (sig == TSIG) {
            atomic_fetch_add(&taken, 1);
            if (si.si_code == SI_TIMER && si.si_value.sival_int == 7)
                atomic_fetch_add(&good_info, 1);
        }
    }
    /* Then not taking them for a while: the expirations meanwhile are
     * overruns of the one signal left pending. */
    sleep_ms(250);
    siginfo_t si;
    if (sigwaitinfo(&set, &si) == TSIG && si.si_code == SI_TIMER) {
        atomic_store(&overrun_seen, si.si_overrun);
        CHECK(timer_getoverrun(thread_timer) == si.si_overrun);
    }
    atomic_store(&worker_done, 1);
    return NULL;
}

static void sigev_thread_id(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_tsig; /* the main thread would run this if it got the signal */
    CHECK(sigaction(TSIG, &sa, NULL) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, timer_worker, NULL) == 0);
    while (!atomic_load(&worker_ready))
        sleep_ms(1);
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = TSIG;
    ev.sigev_value.sival_int = 7;
    ev.sigev_notify_thread_id = atomic_load(&worker_tid);
    CHECK(timer_create(CLOCK_MONOTONIC, &ev, &thread_timer) == 0);
    struct itimerspec every = {{0, 10000000}, {0, 10000000}}; /* every 10 ms */
    CHECK(timer_settime(thread_timer, 0, &every, NULL) == 0);
    CHECK(wait_for(&worker_done, 1, 20.0));
    CHECK(timer_delete(thread_timer) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    CHECK(taken == 3);
    CHECK(good_info == 3);
    /* 250 ms at 10 ms: about 24 on Linux; the kernel's 10 ms tick here. */
    CHECK(overrun_seen >= 5);
    CHECK(main_hits == 0); /* the worker's, never the process's */

    /* A thread that is gone cannot be a timer's target. */
    ev.sigev_notify_thread_id = 999999;
    timer_t bad;
    CHECK(timer_create(CLOCK_MONOTONIC, &ev, &bad) == -1 && errno == EINVAL);

    /* sigtimedwait times out with EAGAIN. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    struct timespec limit = {0, 50000000};
    double t0 = now();
    CHECK(sigtimedwait(&set, NULL, &limit) == -1 && errno == EAGAIN);
    CHECK(now() - t0 >= 0.04);
    /* and takes one already pending at once (si_code SI_USER from kill). */
    kill(getpid(), SIGUSR2);
    siginfo_t si;
    CHECK(sigtimedwait(&set, &si, &limit) == SIGUSR2 && si.si_code == SI_USER);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

/* --- masks per thread ------------------------------------------------------ */

static atomic_int handler_tid, helper_tid, helper_stop, helper_usr1;

static void on_usr2(int sig) {
    (void)sig;
    atomic_store(&handler_tid, tid());
}

static void* mask_helper(void* arg) {
    (void)arg;
    /* Blocks SIGUSR1 (for pthread_kill below), lets SIGUSR2 through. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    atomic_store(&helper_tid, tid());
    while (!atomic_load(&helper_stop))
        sched_yield();
    /* SIGUSR1 from pthread_kill waits here, pending, for sigwait. */
    sigset_t pending;
    sigpending(&pending);
    int sig = 0;
    if (sigismember(&pending, SIGUSR1) && sigwait(&set, &sig) == 0 && sig == SIGUSR1)
        atomic_store(&helper_usr1, 1);
    return NULL;
}

static void thread_masks(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    CHECK(sigaction(SIGUSR2, &sa, NULL) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, mask_helper, NULL) == 0);
    while (!atomic_load(&helper_tid))
        sleep_ms(1);
    /* The main thread blocks SIGUSR2: the process's SIGUSR2 goes to the
     * helper, which does not. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    CHECK(pthread_sigmask(SIG_BLOCK, &set, &old) == 0);
    CHECK(!sigismember(&old, SIGUSR2));
    kill(getpid(), SIGUSR2);
    double end = now() + 10.0;
    while (!atomic_load(&handler_tid) && now() < end)
        sleep_ms(2);
    CHECK(atomic_load(&handler_tid) == atomic_load(&helper_tid));
    /* This thread's mask is its own. */
    sigset_t mine;
    CHECK(pthread_sigmask(SIG_SETMASK, NULL, &mine) == 0 && sigismember(&mine, SIGUSR2) && !sigismember(&mine, SIGUSR1));
    CHECK(pthread_sigmask(SIG_UNBLOCK, &set, NULL) == 0);
    /* A signal for one thread, blocked there: pending for it alone. */
    CHECK(pthread_kill(th, SIGUSR1) == 0);
    atomic_store(&helper_stop, 1);
    CHECK(pthread_join(th, NULL) == 0);
    CHECK(atomic_load(&helper_usr1) == 1);
    sigset_t pending;
    CHECK(sigpending(&pending) == 0 && !sigismember(&pending, SIGUSR1));
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    sigev_thread();
    sigev_thread_id();
    thread_masks();
    printf("timerthreads: %d failures\n", failures);
    return failures;
}
