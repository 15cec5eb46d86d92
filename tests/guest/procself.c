/* /proc/self: exe, cmdline, status, comm, fd links, and /proc/<pid> for
 * the process itself. Prints "procself: N failures"; runs natively (from
 * the bundle's rootfs directory) and under kos. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static int read_file(const char* path, char* buf, int cap) {
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    int n = (int)read(fd, buf, (size_t)cap - 1);
    close(fd);
    if (n >= 0)
        buf[n] = 0;
    return n;
}

int main(int argc, char** argv) {
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    CHECK(n > 0);
    if (n > 0) {
        buf[n] = 0;
        const char* base = strrchr(buf, '/');
        CHECK(base && strcmp(base, "/procself") == 0);
    }
    /* cmdline: the arguments, NUL-separated. */
    n = read_file("/proc/self/cmdline", buf, sizeof buf);
    CHECK(n > 0 && argc >= 2 && (size_t)n > strlen(argv[0]) + 1 &&
          strcmp(buf + strlen(argv[0]) + 1, argv[1]) == 0);
    /* status names the process and its pid; /proc/<pid> is the same file. */
    char want[64];
    snprintf(want, sizeof want, "\nPid:\t%d\n", (int)getpid());
    CHECK(read_file("/proc/self/status", buf, sizeof buf) > 0 && strstr(buf, want) && strncmp(buf, "Name:\tprocself\n", 15) == 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)getpid());
    CHECK(read_file(path, buf, sizeof buf) > 0 && strstr(buf, want));
    CHECK(read_file("/proc/self/comm", buf, sizeof buf) > 0 && strcmp(buf, "procself\n") == 0);
    /* fd links name what a descriptor is. */
    int fd = open("/data/greeting.txt", O_RDONLY);
    CHECK(fd >= 0);
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    n = readlink(path, buf, sizeof buf - 1);
    CHECK(n > 0);
    if (n > 0) {
        buf[n] = 0;
        CHECK(strstr(buf, "/data/greeting.txt") != 0);
    }
    struct stat st;
    CHECK(lstat(path, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode));
    close(fd);
    CHECK(open("/proc/self/nothing", O_RDONLY) == -1 && errno == ENOENT);

    printf("procself: %d failures\n", failures);
    return failures;
}
