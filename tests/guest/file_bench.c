/* Sequential file throughput in a directory (argv[1]): writes 32 MiB in
 * 64 KiB writes, reads it back in 64 KiB reads, and opens+stats+closes a
 * file 1,000 times. Prints "write_mbps N", "read_mbps N", "open_us N".
 * For kos_posix_bench: a volume in the VM vs the same directory natively. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
    if (argc < 2)
        return 2;
    char path[512];
    snprintf(path, sizeof path, "%s/kos-file-bench", argv[1]);
    static char buf[64 * 1024];
    memset(buf, 'k', sizeof buf);
    const int chunks = 512;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return 3;
    double t0 = now_s();
    for (int i = 0; i < chunks; ++i)
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf)
            return 4;
    close(fd);
    double t1 = now_s();
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return 5;
    long got = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        got += n;
    close(fd);
    double t2 = now_s();
    if (got != (long)chunks * (long)sizeof buf)
        return 6;
    struct stat st;
    for (int i = 0; i < 1000; ++i) {
        fd = open(path, O_RDONLY);
        if (fd < 0 || fstat(fd, &st) != 0)
            return 7;
        close(fd);
    }
    double t3 = now_s();
    unlink(path);
    double mib = (double)chunks * sizeof buf / (1024.0 * 1024.0);
    printf("write_mbps %.1f\nread_mbps %.1f\nopen_us %.1f\n", mib / (t1 - t0), mib / (t2 - t1), (t3 - t2) * 1e6 / 1000);
    return 0;
}
