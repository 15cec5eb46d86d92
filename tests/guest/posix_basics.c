/* Exercises the first personality syscalls with asserted results; prints one
 * line per failed check and exits with the number of failures. Built static
 * with musl and with glibc. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

int main(int argc, char** argv, char** envp) {
    /* Unknown and x32 syscall numbers: ENOSYS, not a crash (attack 20). */
    errno = 0;
    CHECK(syscall(999) == -1 && errno == ENOSYS);
    errno = 0;
    CHECK(syscall(0x40000000 | SYS_getpid) == -1 && errno == ENOSYS);
    errno = 0;
    CHECK(syscall(-1L) == -1 && errno == ENOSYS);

    /* Buffers in kernel memory, unmapped, or straddling the end of user
     * space: EFAULT, never a crash (attack 19). */
    errno = 0;
    CHECK(write(1, (void*)0xffff800000001000ul, 16) == -1 && errno == EFAULT);
    errno = 0;
    CHECK(write(1, (void*)0x00007ffffffff000ul, 0x2000) == -1 && errno == EFAULT);
    errno = 0;
    CHECK(write(1, (void*)0x1000, 16) == -1 && errno == EFAULT);
    errno = 0;
    CHECK(syscall(SYS_write, 1, (void*)0x7ffffffffff0ul, 0xfffffffffffffff0ul) == -1 && errno == EFAULT);

    /* The 32-bit gate: ENOSYS in eax, execution continues (attack 20). */
    long r80 = 20; /* getpid in the i386 table */
    __asm__ volatile("int $0x80" : "+a"(r80) : : "memory");
    CHECK(r80 == -ENOSYS);

    CHECK(getpid() > 0);
    struct utsname u;
    CHECK(uname(&u) == 0 && strcmp(u.sysname, "Linux") == 0 && strcmp(u.machine, "x86_64") == 0);

    struct timespec a, b;
    CHECK(clock_gettime(CLOCK_MONOTONIC, &a) == 0);
    for (volatile int i = 0; i < 1000000; ++i) {
    }
    CHECK(clock_gettime(CLOCK_MONOTONIC, &b) == 0);
    CHECK(b.tv_sec > a.tv_sec || (b.tv_sec == a.tv_sec && b.tv_nsec > a.tv_nsec));
    struct timespec rt;
    CHECK(clock_gettime(CLOCK_REALTIME, &rt) == 0 && rt.tv_sec > 1700000000); /* after 2023 */

    /* Anonymous memory: write and read back 4 MiB, then unmap. */
    size_t len = 4 << 20;
    unsigned char* m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    if (m != MAP_FAILED) {
        int zero = 1;
        for (size_t i = 0; i < len; i += 4096) {
            zero &= m[i] == 0;
            m[i] = (unsigned char)(i >> 12);
        }
        CHECK(zero);
        int ok = 1;
        for (size_t i = 0; i < len; i += 4096)
            ok &= m[i] == (unsigned char)(i >> 12);
        CHECK(ok);
        CHECK(munmap(m, len) == 0);
    }
    /* malloc exercises brk and mmap. */
    char* big = malloc(10 << 20);
    CHECK(big != NULL);
    if (big) {
        memset(big, 7, 10 << 20);
        CHECK(big[(10 << 20) - 1] == 7);
        free(big);
    }

    /* Files of the rootfs: read, seek, stat, readdir, readlink. */
    int fd = open("/data/greeting.txt", O_RDONLY);
    CHECK(fd >= 3);
    char buf[64] = {0};
    CHECK(read(fd, buf, sizeof buf - 1) == 14 && strcmp(buf, "hello, rootfs\n") == 0);
    CHECK(lseek(fd, 7, SEEK_SET) == 7);
    memset(buf, 0, sizeof buf);
    CHECK(read(fd, buf, 6) == 6 && strcmp(buf, "rootfs") == 0);
    struct stat st;
    CHECK(fstat(fd, &st) == 0 && st.st_size == 14 && S_ISREG(st.st_mode));
    CHECK(close(fd) == 0);
    CHECK(close(fd) == -1 && errno == EBADF);
    CHECK(open("/data/missing", O_RDONLY) == -1 && errno == ENOENT);
    CHECK(open("/data/greeting.txt", O_WRONLY) == -1 && errno == EROFS);
    CHECK(open("/data/greeting.txt/x", O_RDONLY) == -1 && errno == ENOTDIR);
    CHECK(stat("/data", &st) == 0 && S_ISDIR(st.st_mode));
    char link[64] = {0};
    CHECK(readlink("/data/link", link, sizeof link) == 12 && strcmp(link, "greeting.txt") == 0);
    /* /proc/self/exe: this program (kos), or absent (a chroot without /proc). */
    memset(link, 0, sizeof link);
    ssize_t exe = readlink("/proc/self/exe", link, sizeof link - 1);
    CHECK((exe == -1 && errno == ENOENT) || (exe > 0 && strstr(link, "posix_basics") != 0));
    fd = open("/data/link", O_RDONLY);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    DIR* d = opendir("/data");
    CHECK(d != NULL);
    int seen = 0;
    if (d) {
        struct dirent* e;
        while ((e = readdir(d)))
            seen |= !strcmp(e->d_name, "greeting.txt") ? 1 : !strcmp(e->d_name, "link") ? 2
                  : !strcmp(e->d_name, ".") ? 4 : !strcmp(e->d_name, "..") ? 8 : 16;
        closedir(d);
    }
    CHECK(seen == 15);
    CHECK(chdir("/data") == 0);
    CHECK(access("greeting.txt", R_OK) == 0);
    char cwd[64];
    CHECK(getcwd(cwd, sizeof cwd) && strcmp(cwd, "/data") == 0);

    /* Character devices. */
    int dn = open("/dev/null", O_RDWR);
    CHECK(dn >= 0 && write(dn, "abc", 3) == 3 && read(dn, buf, 4) == 0);
    int dz = open("/dev/zero", O_RDONLY);
    memset(buf, 7, 8);
    CHECK(dz >= 0 && read(dz, buf, 8) == 8 && buf[0] == 0 && buf[7] == 0);
    int df = open("/dev/full", O_WRONLY);
    errno = 0;
    CHECK(df >= 0 && write(df, "x", 1) == -1 && errno == ENOSPC);
    int du = open("/dev/urandom", O_RDONLY);
    unsigned char r1[16] = {0}, r2[16] = {0};
    CHECK(du >= 0 && read(du, r1, 16) == 16 && read(du, r2, 16) == 16 && memcmp(r1, r2, 16) != 0);
    CHECK(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == ((1 << 8) | 3));
    CHECK(getrandom(r1, 16, 0) == 16);
    close(dn), close(dz), close(df), close(du);

    /* poll and select over the console, files and a bad descriptor. */
    struct pollfd pf[3] = {{1, POLLOUT, 0}, {0, POLLIN, 0}, {999, POLLIN, 0}};
    CHECK(poll(pf, 3, 0) == 3 && pf[0].revents == POLLOUT && pf[1].revents == POLLIN &&
          pf[2].revents == POLLNVAL);
    fd_set wr;
    FD_ZERO(&wr);
    FD_SET(1, &wr);
    struct timeval tv = {0, 0};
    CHECK(select(2, NULL, &wr, NULL, &tv) == 1 && FD_ISSET(1, &wr));

    /* The terminal question: the console is not a tty (ENOTTY). */
    CHECK(!isatty(1) && errno == ENOTTY);

    /* Arguments and environment arrive intact. */
    CHECK(argc == 3 && strcmp(argv[1], "alpha") == 0 && strcmp(argv[2], "two words") == 0);
    CHECK(getenv("KOS_TEST") && strcmp(getenv("KOS_TEST"), "yes") == 0);
    (void)envp;

    printf("posix_basics: %d failures\n", failures);
    return failures;
}
