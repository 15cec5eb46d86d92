/* Readiness: poll and select see a pipe's real state and wait for their
 * timeout; epoll (level-triggered) over a pipe and an eventfd; eventfd
 * counters. Prints "polling: N failures"; runs natively and under kos. */
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000ll + ts.tv_nsec / 1000000;
}

int main(void) {
    int p[2];
    CHECK(pipe(p) == 0);

    /* An empty pipe is not readable; poll waits for its timeout. */
    struct pollfd pf = {p[0], POLLIN, 0};
    long long t0 = now_ms();
    CHECK(poll(&pf, 1, 50) == 0);
    CHECK(now_ms() - t0 >= 45);
    CHECK(pf.revents == 0);
    struct pollfd wf = {p[1], POLLOUT, 0};
    CHECK(poll(&wf, 1, 0) == 1 && (wf.revents & POLLOUT));

    /* A child writes after a while: poll without a timeout wakes for it. */
    pid_t child = fork();
    if (child == 0) {
        struct timespec d = {0, 20 * 1000 * 1000};
        nanosleep(&d, 0);
        _exit(write(p[1], "x", 1) == 1 ? 0 : 1);
    }
    CHECK(poll(&pf, 1, -1) == 1 && (pf.revents & POLLIN));
    int status;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* select sees the same. */
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    struct timeval tv = {0, 0};
    CHECK(select(p[0] + 1, &rs, 0, 0, &tv) == 1 && FD_ISSET(p[0], &rs));

    /* epoll over the pipe and an eventfd. */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    int ev = eventfd(0, EFD_NONBLOCK);
    CHECK(ev >= 0);
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = 7};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e) == 0);
    e.data.u64 = 9;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e) == 0);
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e) == -1 && errno == EEXIST);
    struct epoll_event out[4];
    CHECK(epoll_wait(ep, out, 4, 0) == 1 && out[0].data.u64 == 7); /* the pipe still holds "x" */
    char c;
    CHECK(read(p[0], &c, 1) == 1 && c == 'x');
    t0 = now_ms();
    CHECK(epoll_wait(ep, out, 4, 30) == 0);
    CHECK(now_ms() - t0 >= 25);

    uint64_t v = 5;
    CHECK(write(ev, &v, 8) == 8);
    CHECK(epoll_wait(ep, out, 4, 0) == 1 && out[0].data.u64 == 9 && (out[0].events & EPOLLIN));
    v = 0;
    CHECK(read(ev, &v, 8) == 8 && v == 5);
    CHECK(read(ev, &v, 8) == -1 && errno == EAGAIN);
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], 0) == 0);
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], 0) == -1 && errno == ENOENT);

    int sem = eventfd(2, EFD_SEMAPHORE);
    CHECK(read(sem, &v, 8) == 8 && v == 1);
    CHECK(read(sem, &v, 8) == 8 && v == 1);
    close(sem);
    close(ev);
    close(ep);

    /* A pipe whose writers are gone reads as ready (end of data). */
    close(p[1]);
    CHECK(poll(&pf, 1, 0) == 1);
    close(p[0]);

    printf("polling: %d failures\n", failures);
    return failures;
}
