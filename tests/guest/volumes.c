/* File calls on a writable volume (argv[1], an empty directory) and on
 * /tmp: open flags, reads and writes at the position and at offsets,
 * O_APPEND, lseek, ftruncate, fstat/stat/lstat, directories and getdents,
 * rename, link, symlink/readlink, unlink/rmdir, chmod, utimensat, openat
 * relative to a directory descriptor and to a working directory in the
 * volume, mmap of a volume file, and a position shared with a forked
 * child. Runs natively and under kos. Prints "volumes: N failures". */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static char buf[8192];

static char* at(const char* root, const char* rel) {
    static char paths[8][512];
    static int next;
    char* p = paths[next++ % 8];
    snprintf(p, 512, "%s/%s", root, rel);
    return p;
}

static int write_file(const char* path, const char* text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static const char* read_file(const char* path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return "";
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n < 0 ? 0 : n] = 0;
    return buf;
}

static void files(const char* root) {
    const char* f = at(root, "a.txt");
    CHECK(write_file(f, "hello volume\n") == 0);
    CHECK(strcmp(read_file(f), "hello volume\n") == 0);

    int fd = open(f, O_RDWR);
    CHECK(fd >= 0);
    CHECK(lseek(fd, 6, SEEK_SET) == 6);
    CHECK(read(fd, buf, 6) == 6 && memcmp(buf, "volume", 6) == 0);
    CHECK(lseek(fd, 0, SEEK_CUR) == 12);
    CHECK(lseek(fd, 0, SEEK_END) == 13);
    CHECK(pwrite(fd, "HELLO", 5, 0) == 5);
    CHECK(pread(fd, buf, 5, 0) == 5 && memcmp(buf, "HELLO", 5) == 0);
    CHECK(lseek(fd, 0, SEEK_CUR) == 13); /* pread/pwrite leave the position */
    struct stat st;
    CHECK(fstat(fd, &st) == 0 && st.st_size == 13 && S_ISREG(st.st_mode));
    CHECK(ftruncate(fd, 5) == 0);
    CHECK(fstat(fd, &st) == 0 && st.st_size == 5);
    CHECK(fsync(fd) == 0);
    close(fd);

    fd = open(f, O_WRONLY | O_APPEND);
    CHECK(fd >= 0 && write(fd, "+1", 2) == 2 && write(fd, "+2", 2) == 2);
    close(fd);
    CHECK(strcmp(read_file(f), "HELLO+1+2") == 0);

    CHECK(open(f, O_WRONLY | O_CREAT | O_EXCL, 0600) < 0 && errno == EEXIST);
    CHECK(open(at(root, "missing"), O_RDONLY) < 0 && errno == ENOENT);
    CHECK(open(f, O_RDONLY | O_DIRECTORY) < 0 && errno == ENOTDIR);
    CHECK(stat(f, &st) == 0 && st.st_size == 9);
    CHECK(access(f, R_OK | W_OK) == 0);

    /* A file larger than one transfer (256 KiB) round-trips intact. */
    static char big[600 * 1024];
    for (size_t i = 0; i < sizeof big; ++i)
        big[i] = (char)(i * 7 + i / 4096);
    fd = open(at(root, "big"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, big, sizeof big) == (ssize_t)sizeof big);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    static char back[600 * 1024];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof back && (n = read(fd, back + got, sizeof back - got)) > 0)
        got += (size_t)n;
    CHECK(got == sizeof big && memcmp(big, back, sizeof big) == 0);

    /* mmap of a volume file (a private copy). */
    char* m = mmap(NULL, sizeof big, PROT_READ, MAP_PRIVATE, fd, 0);
    CHECK(m != MAP_FAILED && memcmp(m, big, sizeof big) == 0);
    if (m != MAP_FAILED)
        munmap(m, sizeof big);
    close(fd);
    CHECK(unlink(at(root, "big")) == 0);
}

static void names(const char* root) {
    CHECK(mkdir(at(root, "d"), 0755) == 0);
    CHECK(mkdir(at(root, "d"), 0755) < 0 && errno == EEXIST);
    CHECK(write_file(at(root, "d/x"), "x") == 0);
    CHECK(rename(at(root, "d/x"), at(root, "d/y")) == 0);
    CHECK(access(at(root, "d/x"), F_OK) < 0 && errno == ENOENT);
    CHECK(link(at(root, "d/y"), at(root, "d/z")) == 0);
    struct stat st;
    CHECK(stat(at(root, "d/z"), &st) == 0 && st.st_nlink == 2);
    CHECK(symlink("y", at(root, "d/s")) == 0);
    ssize_t n = readlink(at(root, "d/s"), buf, sizeof buf);
    CHECK(n == 1 && buf[0] == 'y');
    CHECK(lstat(at(root, "d/s"), &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(stat(at(root, "d/s"), &st) == 0 && S_ISREG(st.st_mode));
    CHECK(strcmp(read_file(at(root, "d/s")), "x") == 0);
    CHECK(chmod(at(root, "d/y"), 0600) == 0);
    CHECK(stat(at(root, "d/y"), &st) == 0 && (st.st_mode & 0777) == 0600);
    struct timespec ts[2] = {{1000000000, 0}, {1234567890, 0}};
    CHECK(utimensat(AT_FDCWD, at(root, "d/y"), ts, 0) == 0);
    CHECK(stat(at(root, "d/y"), &st) == 0 && st.st_mtime == 1234567890);

    /* Listing. */
    DIR* d = opendir(at(root, "d"));
    CHECK(d != NULL);
    int seen = 0;
    struct dirent* e;
    while (d && (e = readdir(d)))
        seen |= !strcmp(e->d_name, "y") * 1 | !strcmp(e->d_name, "z") * 2 | !strcmp(e->d_name, "s") * 4 |
                !strcmp(e->d_name, ".") * 8 | !strcmp(e->d_name, "..") * 16;
    CHECK(seen == 31);
    if (d)
        closedir(d);

    /* Relative to a directory descriptor, and to a working directory. */
    int dfd = open(at(root, "d"), O_RDONLY | O_DIRECTORY);
    CHECK(dfd >= 0);
    int fd = openat(dfd, "y", O_RDONLY);
    CHECK(fd >= 0 && read(fd, buf, 1) == 1 && buf[0] == 'x');
    close(fd);
    CHECK(fstatat(dfd, "z", &st, 0) == 0 && st.st_size == 1);
    CHECK(mkdirat(dfd, "sub", 0700) == 0);
    CHECK(unlinkat(dfd, "sub", AT_REMOVEDIR) == 0);
    close(dfd);
    char cwd[512];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(at(root, "d")) == 0);
    char here[512];
    CHECK(getcwd(here, sizeof here) != NULL && strcmp(here, at(root, "d")) == 0);
    CHECK(strcmp(read_file("z"), "x") == 0);
    CHECK(strcmp(read_file("../d/y"), "x") == 0);
    CHECK(chdir(cwd) == 0);

    CHECK(rmdir(at(root, "d")) < 0 && errno == ENOTEMPTY);
    CHECK(unlink(at(root, "d")) < 0 && (errno == EISDIR || errno == EPERM));
    CHECK(unlink(at(root, "d/y")) == 0 && unlink(at(root, "d/z")) == 0 && unlink(at(root, "d/s")) == 0);
    CHECK(rmdir(at(root, "d")) == 0);
    CHECK(access(at(root, "d"), F_OK) < 0 && errno == ENOENT);
}

/* Processes that share a descriptor share its position (as with Linux's
 * open file descriptions): `for ...; do prog; done > file` relies on it. */
static void shared_position(const char* root) {
    int fd = open(at(root, "shared"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, "parent1\n", 8) == 8);
    pid_t pid = fork();
    if (pid == 0) {
        _exit(write(fd, "child\n", 6) == 6 ? 0 : 1);
    }
    int status = -1;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(write(fd, "parent2\n", 8) == 8);
    close(fd);
    CHECK(strcmp(read_file(at(root, "shared")), "parent1\nchild\nparent2\n") == 0);
    CHECK(unlink(at(root, "shared")) == 0);
}

int main(int argc, char** argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char* root = argc > 1 ? argv[1] : "/vol";
    files(root);
    names(root);
    shared_position(root);
    CHECK(unlink(at(root, "a.txt")) == 0);
    /* /tmp is writable (a private directory of the run). */
    const char* tmp = argc > 2 ? argv[2] : "/tmp";
    CHECK(write_file(at(tmp, "kos-volumes-test"), "scratch") == 0);
    CHECK(strcmp(read_file(at(tmp, "kos-volumes-test")), "scratch") == 0);
    CHECK(unlink(at(tmp, "kos-volumes-test")) == 0);
    printf("volumes: %d failures\n", failures);
    return failures;
}
