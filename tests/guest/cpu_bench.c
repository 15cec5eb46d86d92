/* CPU-bound threads for kos_posix_bench: `cpu_bench THREADS` runs that
 * many threads of the same arithmetic loop at once and prints the wall
 * time ("wall_ms N"). With as many CPUs as threads it takes about as long
 * as one thread alone. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void* work(void* arg) {
    volatile unsigned long x = 0;
    for (unsigned long i = 0; i < (unsigned long)arg; ++i)
        x += i;
    return NULL;
}

int main(int argc, char** argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    if (n < 1 || n > 16)
        n = 1;
    pthread_t t[16];
    double t0 = now_ms();
    for (int i = 0; i < n; ++i)
        pthread_create(&t[i], NULL, work, (void*)400000000ul);
    for (int i = 0; i < n; ++i)
        pthread_join(t[i], NULL);
    printf("wall_ms %.1f\n", now_ms() - t0);
    return 0;
}
