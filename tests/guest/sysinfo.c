/* System and process information calls, and file calls on the read-only
 * rootfs: rlimits, umask, process groups and sessions, CPU affinity,
 * times, statx, sendfile, mremap, sigaltstack, and EROFS/EEXIST/ENOENT
 * where a program would change the rootfs. Prints "sysinfo: N failures". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

struct statx_ts {
    int64_t sec;
    uint32_t nsec;
    int32_t pad;
};
struct kstatx {
    uint32_t mask, blksize;
    uint64_t attributes;
    uint32_t nlink, uid, gid;
    uint16_t mode, pad0;
    uint64_t ino, size, blocks, attributes_mask;
    struct statx_ts atime, btime, ctime, mtime;
    uint32_t rdev_major, rdev_minor, dev_major, dev_minor;
    uint64_t spare[14];
};

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);

    CHECK(umask(027) == 022);
    CHECK(umask(022) == 027);

    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur == 1024);
    struct rlimit lower = {512, rl.rlim_max};
    CHECK(setrlimit(RLIMIT_NOFILE, &lower) == 0);
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur == 512);
    struct rlimit higher = {512, rl.rlim_max + 1};
    CHECK(setrlimit(RLIMIT_NOFILE, &higher) == -1 && errno == EPERM);
    CHECK(getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur == 8 << 20);

    CHECK(getpgrp() == getpid());
    pid_t pid = fork();
    if (pid == 0) {
        if (setsid() != getpid() || getsid(0) != getpid() || getpgrp() != getpid())
            _exit(1);
        _exit(0);
    }
    int status = -1;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(setpgid(0, 0) == 0 && getpgid(0) == getpid());

    cpu_set_t set;
    /* The VM's CPUs, 0 .. n-1 (kos run gives 2 unless the host has one). */
    CHECK(sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) >= 1 && CPU_ISSET(0, &set));
    CHECK(sysconf(_SC_NPROCESSORS_ONLN) == CPU_COUNT(&set));
    int cpu = sched_getcpu();
    CHECK(cpu >= 0 && cpu < CPU_COUNT(&set));
    struct tms t;
    /* CPU time, in ticks: no more than the program ran (tests/guest/cputime.c
     * checks it grows). */
    clock_t elapsed = times(&t);
    CHECK(elapsed != (clock_t)-1 && t.tms_utime >= 0 && t.tms_stime >= 0 && t.tms_utime + t.tms_stime <= elapsed);

    struct stat st;
    struct kstatx sx;
    CHECK(stat("/data/greeting.txt", &st) == 0);
    CHECK(syscall(SYS_statx, AT_FDCWD, "/data/link", 0, 0x7ff, &sx) == 0);
    CHECK(sx.size == (uint64_t)st.st_size && sx.mode == st.st_mode && sx.ino == st.st_ino && (sx.mask & 0x7ff) == 0x7ff);
    CHECK(syscall(SYS_statx, AT_FDCWD, "/data/link", AT_SYMLINK_NOFOLLOW, 0x7ff, &sx) == 0 && S_ISLNK(sx.mode));
    CHECK(syscall(SYS_statx, AT_FDCWD, "/nothing", 0, 0x7ff, &sx) == -1 && errno == ENOENT);

    /* sendfile: a rootfs file into a pipe, from an offset. */
    int f = open("/data/greeting.txt", O_RDONLY);
    int p[2];
    CHECK(f >= 0 && pipe(p) == 0);
    off_t off = 2;
    ssize_t n = sendfile(p[1], f, &off, 1000);
    CHECK(n == st.st_size - 2 && off == st.st_size);
    char a[256] = {0}, b[256] = {0};
    CHECK(read(p[0], a, sizeof a) == n);
    CHECK(pread(f, b, sizeof b, 2) == n && memcmp(a, b, (size_t)n) == 0);
    close(p[0]);
    close(p[1]);

    /* mremap grows (moving if it must) and keeps the contents. */
    char* m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    memset(m, 'k', 8192);
    char* g = mremap(m, 8192, 1 << 20, MREMAP_MAYMOVE);
    CHECK(g != MAP_FAILED && g[0] == 'k' && g[8191] == 'k' && g[8192] == 0);
    g[(1 << 20) - 1] = 1;
    CHECK(mremap(g, 1 << 20, 4096, 0) == g && g[0] == 'k');
    CHECK(mremap(g, 4096, 1 << 22, 0) == g || errno == ENOMEM);

    stack_t ss = {.ss_sp = malloc(1 << 16), .ss_size = 1 << 16, .ss_flags = 0}, old;
    CHECK(sigaltstack(&ss, NULL) == 0);
    CHECK(sigaltstack(NULL, &old) == 0 && old.ss_sp == ss.ss_sp && old.ss_size == ss.ss_size);

    /* The rootfs does not change. */
    CHECK(mkdir("/newdir", 0755) == -1 && errno == EROFS);
    CHECK(mkdir("/data", 0755) == -1 && errno == EEXIST);
    CHECK(unlink("/data/greeting.txt") == -1 && errno == EROFS);
    CHECK(unlink("/data/none") == -1 && errno == ENOENT);
    CHECK(rename("/data/greeting.txt", "/data/x") == -1 && errno == EROFS);
    CHECK(chmod("/data/greeting.txt", 0600) == -1 && errno == EROFS);
    CHECK(symlink("x", "/data/link") == -1 && errno == EEXIST);
    CHECK(ftruncate(f, 0) == -1 && errno == EROFS);
    CHECK(fsync(f) == 0 && fsync(999) == -1 && errno == EBADF);
    close(f);

    printf("sysinfo: %d failures\n", failures);
    return failures;
}
