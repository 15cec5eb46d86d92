/* Threads on the personality: pthread_create/join, mutex contention,
 * condition variables, thread-local storage, gettid, nanosleep. Prints one
 * line per failed check and exits with the number of failures. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

enum { kThreads = 4, kIncrements = 20000 };
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static long counter;
static int ready;
static __thread int tls_value;
static pid_t tids[kThreads];

static void* worker(void* arg) {
    long id = (long)arg;
    tls_value = (int)id * 10;
    tids[id] = (pid_t)syscall(SYS_gettid);
    for (int i = 0; i < kIncrements; ++i) {
        pthread_mutex_lock(&lock);
        ++counter;
        pthread_mutex_unlock(&lock);
        if (i % 1000 == 0)
            sched_yield();
    }
    return (void*)(long)(tls_value + 1);
}

static void* waiter(void* arg) {
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!ready)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    return (void*)42;
}

static long elapsed_ms(struct timespec a, struct timespec b) {
    return (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
}

int main(void) {
    pthread_t t[kThreads];
    tls_value = -1;
    for (long i = 0; i < kThreads; ++i)
        CHECK(pthread_create(&t[i], NULL, worker, (void*)i) == 0);
    for (long i = 0; i < kThreads; ++i) {
        void* ret = NULL;
        CHECK(pthread_join(t[i], &ret) == 0);
        CHECK((long)ret == i * 10 + 1); /* each thread saw its own TLS */
    }
    CHECK(counter == (long)kThreads * kIncrements);
    CHECK(tls_value == -1);
    pid_t main_tid = (pid_t)syscall(SYS_gettid);
    for (int i = 0; i < kThreads; ++i) {
        CHECK(tids[i] != main_tid);
        for (int j = 0; j < i; ++j)
            CHECK(tids[i] != tids[j]);
    }

    pthread_t w;
    CHECK(pthread_create(&w, NULL, waiter, NULL) == 0);
    struct timespec a, b, d = {0, 20 * 1000000};
    clock_gettime(CLOCK_MONOTONIC, &a);
    CHECK(nanosleep(&d, NULL) == 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    CHECK(elapsed_ms(a, b) >= 20);
    pthread_mutex_lock(&lock);
    ready = 1;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    void* ret = NULL;
    CHECK(pthread_join(w, &ret) == 0 && (long)ret == 42);

    printf("threads: %d failures\n", failures);
    return failures;
}
