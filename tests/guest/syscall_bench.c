/* Times getpid and a 4 KiB read through whatever runs this program (kos's
 * personality or Linux) and prints nanoseconds per call. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char** argv) {
    const char* file = argc > 1 ? argv[1] : "/data/greeting.txt";
    int n = 20000;
    double t0 = now_ns();
    for (int i = 0; i < n; ++i)
        syscall(SYS_getpid);
    double t1 = now_ns();
    int fd = open(file, O_RDONLY);
    char buf[4096];
    for (int i = 0; i < n; ++i)
        pread(fd, buf, sizeof buf, 0);
    double t2 = now_ns();
    printf("getpid_ns %.0f\nread4k_ns %.0f\n", (t1 - t0) / n, (t2 - t1) / n);
    return fd < 0;
}
