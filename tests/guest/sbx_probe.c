/* Probes run inside the host-process backend's sandbox by
 * tests/integration/process_backend_test.cc: each subcommand tries one thing
 * and prints what happened, one line per result. Static (musl). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char* err(int e) {
    switch (e) {
    case 0: return "ok";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case ENOSYS: return "ENOSYS";
    case EROFS: return "EROFS";
    case ETXTBSY: return "ETXTBSY";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EAGAIN: return "EAGAIN";
    case ENOTTY: return "ENOTTY";
    case EXDEV: return "EXDEV";
    case EISDIR: return "EISDIR";
    default: return strerror(e);
    }
}

static int by_name(const void* a, const void* b) {
    return strcmp(*(char* const*)a, *(char* const*)b);
}

/* Opens PATH as a directory ("rw": for writing too; "plain": without
 * O_DIRECTORY) with O_CLOEXEC, and prints its sorted entries (without . and
 * ..) and whether the descriptor is close-on-exec, or the open's errno. */
static int list(const char* path, const char* how) {
    int flags = O_CLOEXEC | O_DIRECTORY;
    if (how && !strcmp(how, "rw"))
        flags = O_CLOEXEC | O_DIRECTORY | O_RDWR;
    else if (how && !strcmp(how, "plain"))
        flags = O_CLOEXEC;
    int fd = open(path, flags);
    if (fd < 0) {
        printf("list %s %s\n", path, err(errno));
        return 0;
    }
    int cloexec = (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
    DIR* d = fdopendir(fd);
    char* names[512];
    size_t n = 0;
    struct dirent* e;
    while (d && (e = readdir(d)) && n < 512)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            names[n++] = strdup(e->d_name);
    qsort(names, n, sizeof names[0], by_name);
    printf("list %s", path);
    for (size_t i = 0; i < n; ++i)
        printf(" %s", names[i]);
    printf("%s\n", cloexec ? " (cloexec)" : "");
    return 0;
}

static void* sleeper(void* arg) {
    (void)arg;
    pause();
    return NULL;
}

/* Every thread's Seccomp and NoNewPrivs lines. */
static int threads(void) {
    pthread_t t[3];
    for (int i = 0; i < 3; ++i)
        pthread_create(&t[i], NULL, sleeper, NULL);
    DIR* d = opendir("/proc/self/task");
    if (!d) {
        printf("opendir: %s\n", err(errno));
        return 1;
    }
    struct dirent* e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        FILE* f = fopen(path, "r");
        if (!f)
            continue;
        int seccomp = -1, nnp = -1;
        while (fgets(line, sizeof line, f)) {
            sscanf(line, "Seccomp: %d", &seccomp);
            sscanf(line, "NoNewPrivs: %d", &nnp);
        }
        fclose(f);
        printf("thread Seccomp=%d NoNewPrivs=%d\n", seccomp, nnp);
        ++n;
    }
    printf("threads %d\n", n);
    return 0;
}

static int fds(void) {
    DIR* d = opendir("/proc/self/fd");
    struct dirent* e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
            continue;
        printf("fd %s\n", e->d_name);
    }
    return 0;
}

static int exe(void) {
    int fd = open("/proc/self/exe", O_WRONLY);
    printf("self-exe-write %s\n", fd >= 0 ? "ok" : err(errno));
    fd = open("/proc/1/exe", O_RDWR);
    printf("pid1-exe-write %s\n", fd >= 0 ? "ok" : err(errno));
    DIR* d = opendir("/proc");
    struct dirent* e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], target[512];
        snprintf(path, sizeof path, "/proc/%s/exe", e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n < 0)
            continue;
        target[n] = 0;
        printf("process %s %s\n", e->d_name, target);
    }
    return 0;
}

static int say(void) {
    char target[512];
    ssize_t n = readlink("/proc/self/exe", target, sizeof target - 1);
    target[n < 0 ? 0 : n] = 0;
    printf("RAN %s\n", target);
    return 0;
}

/* ATTACKS.md 27: a thread rewrites the path while execve waits for the
 * supervisor's verdict. */
static char g_path[64];
static volatile int g_stop;
static const char* g_a;
static const char* g_b;
static void* flipper(void* arg) {
    (void)arg;
    while (!g_stop) {
        strcpy(g_path, g_a);
        strcpy(g_path, g_b);
    }
    return NULL;
}

static int race(const char* allowed, const char* forbidden, int rounds) {
    int ran_allowed = 0, denied = 0, other = 0;
    for (int i = 0; i < rounds; ++i) {
        int pipefd[2];
        pipe(pipefd);
        pid_t pid = fork();
        if (pid == 0) {
            dup2(pipefd[1], 1);
            g_a = allowed;
            g_b = forbidden;
            strcpy(g_path, allowed);
            pthread_t t;
            pthread_create(&t, NULL, flipper, NULL);
            char* argv[] = {g_path, "say", NULL};
            char* envp[] = {NULL};
            for (int k = 0; k < 20; ++k)
                execve(g_path, argv, envp);
            _exit(100 + (errno & 0x3f));
        }
        close(pipefd[1]);
        char buf[600] = {0};
        ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
        close(pipefd[0]);
        int st;
        waitpid(pid, &st, 0);
        if (n > 0 && strstr(buf, "RAN ")) {
            if (strstr(buf, forbidden))
                printf("FORBIDDEN-RAN\n");
            else
                ++ran_allowed;
        } else if (WIFEXITED(st) && WEXITSTATUS(st) >= 100) {
            ++denied;
        } else {
            ++other;
        }
    }
    printf("race allowed=%d denied=%d other=%d\n", ran_allowed, denied, other);
    return 0;
}

/* Paths in volumes: a thread rewrites the path while open waits for the
 * supervisor's verdict. A file whose first line is "SECRET" must never be
 * read through the path the verdict was not about. */
static int openrace(const char* allowed, const char* denied, int rounds) {
    g_a = allowed;
    g_b = denied;
    strcpy(g_path, allowed);
    pthread_t t;
    pthread_create(&t, NULL, flipper, NULL);
    int ok = 0, refused = 0, other = 0;
    for (int i = 0; i < rounds; ++i) {
        int fd = open(g_path, O_RDONLY);
        if (fd < 0) {
            if (errno == EACCES)
                ++refused;
            else
                ++other;
            continue;
        }
        char buf[16] = {0};
        read(fd, buf, sizeof buf - 1);
        close(fd);
        if (!strncmp(buf, "SECRET", 6))
            printf("DENIED-READ\n");
        else
            ++ok;
    }
    g_stop = 1;
    pthread_join(t, NULL);
    printf("openrace ok=%d refused=%d other=%d\n", ok, refused, other);
    return 0;
}

/* The same race for stat, which Landlock does not mediate: the denied
 * file's size (7: "SECRET\n") must never come back. */
static int statrace(const char* allowed, const char* denied, int rounds) {
    g_a = allowed;
    g_b = denied;
    strcpy(g_path, allowed);
    pthread_t t;
    pthread_create(&t, NULL, flipper, NULL);
    int ok = 0, refused = 0, other = 0;
    for (int i = 0; i < rounds; ++i) {
        struct stat st;
        if (stat(g_path, &st) != 0) {
            if (errno == EACCES)
                ++refused;
            else
                ++other;
        } else if (st.st_size == 7) {
            printf("DENIED-STAT\n");
        } else {
            ++ok;
        }
    }
    g_stop = 1;
    pthread_join(t, NULL);
    printf("statrace ok=%d refused=%d other=%d\n", ok, refused, other);
    return 0;
}

/* What a descriptor of a volume directory allows: a file opened relative
 * to it, I/O, ftruncate, fchmod, fstat and listing on the descriptors. */
static int fdops(const char* dir, const char* name) {
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    printf("open %s %s\n", dir, d >= 0 ? "ok" : err(errno));
    if (d < 0)
        return 0;
    int dfl = fcntl(d, F_GETFD);
    printf("dir-cloexec %d\n", dfl >= 0 && (dfl & FD_CLOEXEC) ? 1 : 0);
    int f = openat(d, name, O_RDWR | O_CREAT, 0644);
    printf("openat %s %s\n", name, f >= 0 ? "ok" : err(errno));
    if (f >= 0) {
        printf("write %s\n", write(f, "0123456789", 10) == 10 ? "ok" : err(errno));
        printf("ftruncate %s\n", ftruncate(f, 4) == 0 ? "ok" : err(errno));
        char buf[16] = {0};
        printf("pread %s %s\n", pread(f, buf, sizeof buf - 1, 0) == 4 ? "ok" : err(errno), buf);
        printf("fchmod %s\n", fchmod(f, 0600) == 0 ? "ok" : err(errno));
        struct stat st = {0};
        int rc = fstat(f, &st);
        printf("fstat %s mode=%o size=%lld\n", rc == 0 ? "ok" : err(errno), st.st_mode & 07777,
               (long long)st.st_size);
        int fl = fcntl(f, F_GETFD);
        printf("cloexec %d\n", fl >= 0 && (fl & FD_CLOEXEC) ? 1 : 0);
    }
    char ents[4096];
    long n = syscall(SYS_getdents64, d, ents, sizeof ents);
    printf("getdents %s\n", n > 0 ? "ok" : err(errno));
    struct stat st;
    printf("fstatat %s\n", fstatat(d, name, &st, 0) == 0 ? "ok" : err(errno));
    return 0;
}

/* Every other call that names a path, in directory DIR: one line each. */
static int pathcalls(const char* dir) {
    char a[256], b[256], l[256], d[256];
    snprintf(a, sizeof a, "%s/pa", dir);
    snprintf(b, sizeof b, "%s/pb", dir);
    snprintf(l, sizeof l, "%s/pl", dir);
    snprintf(d, sizeof d, "%s/pd", dir);
#define SHOW(what, expr) printf("%s %s\n", what, (expr) ? "ok" : err(errno))
    int fd = creat(a, 0666);
    SHOW("creat", fd >= 0);
    SHOW("write", write(fd, "0123456789", 10) == 10);
    close(fd);
    SHOW("truncate", truncate(a, 3) == 0);
    struct stat st = {0};
    int rc = stat(a, &st);
    printf("stat %s size=%lld mode=%o uid=%d\n", rc == 0 ? "ok" : err(errno), (long long)st.st_size,
           st.st_mode & 07777, (int)st.st_uid);
    unsigned long long sx[32] = {0}; /* struct statx: stx_size at byte 40 */
    rc = (int)syscall(SYS_statx, AT_FDCWD, a, 0, 0x7ff, sx);
    printf("statx %s size=%llu\n", rc == 0 ? "ok" : err(errno), sx[5]);
    SHOW("access", access(a, R_OK | W_OK) == 0);
    SHOW("access-x", access(a, X_OK) == 0);
    SHOW("faccessat2", syscall(SYS_faccessat2, AT_FDCWD, a, R_OK, AT_EACCESS) == 0);
    SHOW("chmod", chmod(a, 0640) == 0);
    rc = stat(a, &st);
    printf("mode %o\n", st.st_mode & 07777);
    struct timespec ts[2] = {{1000000000, 0}, {1200000000, 5}};
    SHOW("utimensat", utimensat(AT_FDCWD, a, ts, 0) == 0);
    rc = stat(a, &st);
    printf("mtime %lld\n", (long long)st.st_mtime);
    SHOW("symlink", symlink("pa", l) == 0);
    char t[64] = {0};
    ssize_t n = readlink(l, t, sizeof t - 1);
    printf("readlink %s %s\n", n >= 0 ? "ok" : err(errno), t);
    n = readlink(l, t, 1);
    printf("readlink-short %zd\n", n);
    SHOW("readlink-file", readlink(a, t, sizeof t) >= 0);
    rc = lstat(l, &st);
    printf("lstat %s link=%d\n", rc == 0 ? "ok" : err(errno), S_ISLNK(st.st_mode));
    SHOW("chmod-nofollow", fchmodat(AT_FDCWD, l, 0600, AT_SYMLINK_NOFOLLOW) == 0);
    SHOW("link", link(a, b) == 0);
    rc = stat(a, &st);
    printf("nlink %d\n", (int)st.st_nlink);
    SHOW("unlink", unlink(b) == 0);
    SHOW("linkat-follow", linkat(AT_FDCWD, l, AT_FDCWD, b, AT_SYMLINK_FOLLOW) == 0);
    rc = lstat(b, &st);
    printf("linked-file %d\n", rc == 0 && S_ISREG(st.st_mode));
    SHOW("rename-noreplace", syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 1 /* RENAME_NOREPLACE */) == 0);
    SHOW("rename", rename(a, b) == 0);
    SHOW("mkdir", mkdir(d, 0700) == 0);
    SHOW("rmdir-notdir", rmdir(b) == 0);
    SHOW("rmdir", rmdir(d) == 0);
    SHOW("mknod", mknod(d, S_IFIFO | 0600, 0) == 0);
    SHOW("unlink-missing", unlink(a) == 0);
    SHOW("unlink-all", unlink(b) == 0 && unlink(l) == 0);
#undef SHOW
    return 0;
}

/* stat of PATH, N times: the time per call (for measurements). */
static int statloop(const char* path, int n) {
    struct timespec t0, t1;
    struct stat st;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; ++i)
        if (stat(path, &st) != 0) {
            printf("statloop %s %s\n", path, err(errno));
            return 1;
        }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("statloop %s %.0f ns\n", path, ns / n);
    return 0;
}

/* open+close of PATH, N times: the time per pair (for measurements). */
static int openloop(const char* path, int n) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; ++i) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            printf("openloop %s %s\n", path, err(errno));
            return 1;
        }
        close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("openloop %s %.0f ns\n", path, ns / n);
    return 0;
}

static int tcp(const char* op, const char* ip, int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    int rc = strcmp(op, "connect") == 0 ? connect(s, (struct sockaddr*)&a, sizeof a)
                                        : bind(s, (struct sockaddr*)&a, sizeof a);
    printf("%s %s:%d %s\n", op, ip, port, rc == 0 ? "ok" : err(errno));
    return 0;
}

/* A server and a client inside the sandbox: bind and connect both go
 * through the supervisor. */
static int loopback(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr*)&a, sizeof a) != 0 || listen(s, 1) != 0) {
        printf("bind %s\n", err(errno));
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr*)&a, sizeof a) != 0) {
            printf("connect %s\n", err(errno));
            _exit(1);
        }
        write(c, "ping", 4);
        _exit(0);
    }
    int c = accept(s, NULL, NULL);
    char buf[8] = {0};
    read(c, buf, 4);
    int st;
    waitpid(pid, &st, 0);
    printf("loopback %s\n", buf);
    return 0;
}

/* Fills a listener's accept queue, then connects again: on loopback the
 * last connect blocks (its SYNs are dropped) until the queue drains. */
static int slowconnect(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr*)&a, sizeof a) != 0 || listen(s, 0) != 0) {
        printf("bind %s\n", err(errno));
        return 1;
    }
    for (int i = 0; i < 8; ++i) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        int rc = connect(c, (struct sockaddr*)&a, sizeof a);
        printf("connect %d %s\n", i, rc == 0 ? "ok" : err(errno));
    }
    return 0;
}

static int forkbomb(int n) {
    int ok = 0, failed = 0, last = 0;
    for (int i = 0; i < n; ++i) {
        pid_t p = fork();
        if (p == 0) {
            pause();
            _exit(0);
        }
        if (p > 0)
            ++ok;
        else {
            ++failed;
            last = errno;
        }
    }
    printf("forks ok=%d failed=%d last=%s\n", ok, failed, err(last));
    kill(0, SIGKILL);
    return 0;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: sbx_probe COMMAND ...\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    const char* c = argv[1];
    if (!strcmp(c, "threads"))
        return threads();
    if (!strcmp(c, "fds"))
        return fds();
    if (!strcmp(c, "exe"))
        return exe();
    if (!strcmp(c, "say"))
        return say();
    if (!strcmp(c, "race") && argc == 5)
        return race(argv[2], argv[3], atoi(argv[4]));
    if (!strcmp(c, "openrace") && argc == 5)
        return openrace(argv[2], argv[3], atoi(argv[4]));
    if (!strcmp(c, "statloop") && argc == 4)
        return statloop(argv[2], atoi(argv[3]));
    if (!strcmp(c, "openloop") && argc == 4)
        return openloop(argv[2], atoi(argv[3]));
    if (!strcmp(c, "pathcalls") && argc == 3)
        return pathcalls(argv[2]);
    if (!strcmp(c, "statrace") && argc == 5)
        return statrace(argv[2], argv[3], atoi(argv[4]));
    if (!strcmp(c, "fdops") && argc == 4)
        return fdops(argv[2], argv[3]);
    if (!strcmp(c, "syscall") && argc >= 3) {
        long nr = strtol(argv[2], NULL, 0);
        long rc = syscall(nr, 0, 0, 0, 0, 0, 0);
        printf("syscall %ld %s\n", nr, rc >= 0 ? "ok" : err(errno));
        return 0;
    }
    if (!strcmp(c, "list") && (argc == 3 || argc == 4))
        return list(argv[2], argc == 4 ? argv[3] : NULL);
    if (!strcmp(c, "read") && argc == 3) {
        int fd = open(argv[2], O_RDONLY);
        char b[16];
        printf("read %s %s\n", argv[2], fd >= 0 && read(fd, b, sizeof b) >= 0 ? "ok" : err(errno));
        return 0;
    }
    if (!strcmp(c, "write") && argc == 3) {
        int fd = open(argv[2], O_WRONLY | O_CREAT, 0644);
        printf("write %s %s\n", argv[2], fd >= 0 && write(fd, "x", 1) == 1 ? "ok" : err(errno));
        return 0;
    }
    if (!strcmp(c, "exec") && argc >= 3) {
        char* args[] = {argv[2], "say", NULL};
        execv(argv[2], args);
        printf("exec %s %s\n", argv[2], err(errno));
        return 0;
    }
    if (!strcmp(c, "tmpexec")) {
        int in = open("/proc/self/exe", O_RDONLY), out = open("/tmp/copy", O_WRONLY | O_CREAT, 0755);
        char buf[65536];
        ssize_t n;
        while ((n = read(in, buf, sizeof buf)) > 0)
            write(out, buf, (size_t)n);
        close(out);
        char* args[] = {"/tmp/copy", "say", NULL};
        execv("/tmp/copy", args);
        printf("tmpexec %s\n", err(errno));
        return 0;
    }
    if (!strcmp(c, "tiocsti")) {
        char ch = 'x';
        int rc = ioctl(0, TIOCSTI, &ch);
        /* tty_nr, the 7th field of /proc/self/stat: 0 without a controlling terminal. */
        int tty_nr = -1;
        FILE* f = fopen("/proc/self/stat", "r");
        if (f) {
            char line[1024];
            if (fgets(line, sizeof line, f)) {
                char* p = strrchr(line, ')');
                if (p)
                    sscanf(p + 2, "%*c %*d %*d %*d %d", &tty_nr);
            }
            fclose(f);
        }
        printf("tiocsti %s isatty=%d ctty=%d\n", rc == 0 ? "ok" : err(errno), isatty(0), tty_nr);
        return 0;
    }
    if (!strcmp(c, "iouring")) {
        char params[120] = {0};
        long rc = syscall(425 /* io_uring_setup */, 4, params);
        printf("io_uring_setup %s\n", rc >= 0 ? "ok" : err(errno));
        return 0;
    }
    if (!strcmp(c, "x32")) {
        long rc = syscall(0x40000000 | 39);
        printf("x32 getpid returned %ld\n", rc);
        return 0;
    }
    if ((!strcmp(c, "connect") || !strcmp(c, "bind")) && argc == 4)
        return tcp(c, argv[2], atoi(argv[3]));
    if (!strcmp(c, "loopback") && argc == 3)
        return loopback(atoi(argv[2]));
    if (!strcmp(c, "slowconnect") && argc == 3)
        return slowconnect(atoi(argv[2]));
    if (!strcmp(c, "forkbomb") && argc == 3)
        return forkbomb(atoi(argv[2]));
    if (!strcmp(c, "alloc") && argc == 3) {
        size_t mib = (size_t)atol(argv[2]);
        for (size_t i = 0; i < mib; ++i) {
            char* p = malloc(1 << 20);
            if (!p) {
                printf("alloc failed at %zu MiB\n", i);
                return 1;
            }
            memset(p, 1, 1 << 20);
        }
        printf("alloc %zu MiB ok\n", mib);
        return 0;
    }
    if (!strcmp(c, "id")) {
        printf("uid=%d euid=%d gid=%d\n", getuid(), geteuid(), getgid());
        return 0;
    }
    fprintf(stderr, "sbx_probe: unknown command %s\n", c);
    return 2;
}
