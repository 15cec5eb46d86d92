/* Several CPUs: threads run at the same time, and a thread on another CPU
 * loses access to memory the moment munmap or mprotect returns (the kernel
 * flushed that CPU's TLB). Usage: smp CPUS (the CPUs the VM was given;
 * natively: the host's). Prints "smp: N failures". */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"

static volatile unsigned long counter;
static volatile int counter_cpu = -1;
static volatile int stop_counting;

static void* count_forever(void* arg) {
    (void)arg;
    while (!stop_counting) {
        counter = counter + 1;
        if ((counter & 1023) == 0)
            counter_cpu = sched_getcpu();
    }
    return NULL;
}

/* Whether the counting thread advanced on another CPU during a short
 * window of this thread's own computing (no system call: nothing switches
 * threads inside it but a timer tick, and with two threads on two CPUs a
 * tick switches nothing). On one CPU the counter moves only in windows a
 * tick splits, and then on this same CPU. The host schedules the vCPUs
 * too, so keep trying for a while. */
static int ran_at_the_same_time(int max_windows) {
    for (int w = 0; w < max_windows; ++w) {
        int mine = sched_getcpu();
        unsigned long before = counter;
        for (volatile int spin = 0; spin < 20000; ++spin) {
        }
        int theirs = counter_cpu;
        if (counter != before && theirs >= 0 && theirs != mine && sched_getcpu() == mine)
            return 1;
    }
    return 0;
}

/* --- the TLB of another CPU --- */
static volatile char* volatile g_page;
static volatile int g_round, g_reads_done, g_revoked, g_ack, g_write;
static volatile int g_faulted[1000];
static __thread sigjmp_buf t_jump;

static void on_segv(int sig) {
    (void)sig;
    siglongjmp(t_jump, 1);
}

/* Each round: read (or write) the page until the main thread says it took
 * the access away, then try once more: that access must fault. */
static void* access_page(void* arg) {
    (void)arg;
    for (int round = 1;; ++round) {
        while (g_round < round)
            if (g_round < 0)
                return NULL;
        volatile char* p = g_page;
        int reads = 0;
        if (sigsetjmp(t_jump, 1) == 0) {
            /* A fault in this loop came after the change too. */
            while (!g_revoked) {
                if (g_write)
                    p[0] = (char)reads;
                else
                    (void)p[0];
                if (++reads == 1000)
                    g_reads_done = round;
            }
            if (g_write)
                p[0] = 1;
            else
                (void)p[0];
        } else {
            g_faulted[round] = 1;
        }
        g_ack = round;
    }
}

/* `mode`: 0 munmap, 1 mprotect(PROT_NONE), 2 mprotect(PROT_READ) then a
 * write. Returns how many rounds the last access did not fault. */
static int revoke_rounds(pthread_t* reader, int rounds, int mode, int first_round) {
    int missed = 0;
    for (int r = first_round; r < first_round + rounds; ++r) {
        char* p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(p != MAP_FAILED);
        if (p == MAP_FAILED)
            return rounds;
        p[0] = 1;
        g_page = p;
        g_write = mode == 2;
        g_revoked = 0;
        g_round = r;
        while (g_reads_done != r) {
        }
        if (mode == 0)
            CHECK(munmap(p, 4096) == 0);
        else
            CHECK(mprotect(p, 4096, mode == 1 ? PROT_NONE : PROT_READ) == 0);
        g_revoked = 1;
        while (g_ack != r) {
        }
        if (!g_faulted[r])
            ++missed;
        if (mode != 0)
            munmap(p, 4096);
    }
    (void)reader;
    return missed;
}

int main(int argc, char** argv) {
    long want = argc > 1 ? atol(argv[1]) : 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CHECK(sched_getaffinity(0, sizeof set, &set) == 0);
    CHECK(CPU_COUNT(&set) == cpus);
    if (want > 0)
        CHECK(cpus == want);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
    pthread_t reader;
    CHECK(pthread_create(&reader, NULL, access_page, NULL) == 0);
    int missed_unmap = revoke_rounds(&reader, 100, 0, 1);
    int missed_none = revoke_rounds(&reader, 100, 1, 101);
    int missed_ro = revoke_rounds(&reader, 100, 2, 201);
    g_round = -1;
    pthread_join(reader, NULL);
    if (missed_unmap || missed_none || missed_ro)
        printf("smp: accesses after the change that did not fault: munmap %d, PROT_NONE %d, PROT_READ %d (of 100 each)\n",
               missed_unmap, missed_none, missed_ro);
    CHECK(missed_unmap == 0);
    CHECK(missed_none == 0);
    CHECK(missed_ro == 0);

    if (cpus >= 2) {
        pthread_t counting;
        CHECK(pthread_create(&counting, NULL, count_forever, NULL) == 0);
        while (counter == 0) {
        }
        int parallel = ran_at_the_same_time(200000);
        stop_counting = 1;
        pthread_join(counting, NULL);
        if (!parallel)
            printf("smp: two threads never ran on two CPUs at the same time\n");
        CHECK(parallel);
    } else {
        printf("smp: 1 CPU: nothing runs in parallel\n");
    }

    printf("smp: %d failures\n", failures);
    return failures;
}
