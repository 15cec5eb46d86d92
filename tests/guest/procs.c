/* Processes on the personality: fork, pipes, exit status through wait,
 * fork+execve, WNOHANG, end of data when writers are gone, EPIPE when
 * readers are gone. Prints one line per failed check; exits with the count. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

int main(void) {
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        close(p[0]);
        char msg[64];
        int n = snprintf(msg, sizeof msg, "child %d of %d", (int)getpid(), (int)getppid());
        write(p[1], msg, (size_t)n);
        _exit(7);
    }
    CHECK(child > 0 && child != parent);
    close(p[1]);
    char buf[64] = {0};
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    char want[64];
    snprintf(want, sizeof want, "child %d of %d", (int)child, (int)parent);
    CHECK(n > 0 && strcmp(buf, want) == 0);
    CHECK(read(p[0], buf, sizeof buf) == 0); /* every writer is gone */
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 7);
    CHECK(waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD);
    close(p[0]);

    /* fork + execve of another program of the bundle. */
    pid_t e = fork();
    if (e == 0) {
        char* argv[] = {"/bin/exit3", NULL};
        execve("/bin/exit3", argv, NULL);
        _exit(99);
    }
    CHECK(waitpid(e, &status, 0) == e && WIFEXITED(status) && WEXITSTATUS(status) == 3);

    /* A pipe whose reader is gone: EPIPE. */
    int q[2];
    CHECK(pipe(q) == 0);
    signal(SIGPIPE, SIG_IGN);
    close(q[0]);
    errno = 0;
    CHECK(write(q[1], "x", 1) == -1 && errno == EPIPE);
    close(q[1]);

    /* A pipe larger than its buffer: the writer waits for the reader. */
    int r[2];
    CHECK(pipe(r) == 0);
    pid_t w = fork();
    if (w == 0) {
        close(r[0]);
        char block[1000];
        memset(block, 'k', sizeof block);
        for (int i = 0; i < 100; ++i)
            if (write(r[1], block, sizeof block) != (ssize_t)sizeof block)
                _exit(1);
        _exit(0);
    }
    close(r[1]);
    long total = 0;
    char chunk[4096];
    while ((n = read(r[0], chunk, sizeof chunk)) > 0)
        total += n;
    CHECK(total == 100000);
    CHECK(waitpid(w, &status, 0) == w && WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* With SIGCHLD ignored, ended children are reaped without a wait (a
     * server forking per connection): many more than the process table
     * holds at once, and wait() then reports no children. Orphans of an
     * ended child are reaped too. */
    signal(SIGCHLD, SIG_IGN);
    for (int i = 0; i < 150; ++i) {
        pid_t c = fork();
        if (c == 0) {
            if (i % 10 == 0 && fork() == 0) /* a grandchild, orphaned when its parent ends */
                _exit(0);
            _exit(0);
        }
        CHECK(c > 0);
        if (c < 0)
            break;
        if (i % 8 == 7)
            usleep(1000); /* let them end */
    }
    usleep(50000);
    errno = 0;
    CHECK(wait(NULL) == -1 && errno == ECHILD);
    signal(SIGCHLD, SIG_DFL);

    printf("procs: %d failures\n", failures);
    return failures;
}
