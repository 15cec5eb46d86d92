/* TCP sockets under kos: a server and a forked client over the bundle's own
 * loopback, poll and non-blocking calls, the policy's denial of a connect,
 * names and options. Prints "sockets: N failures". */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static struct sockaddr_in addr4(const char* ip, int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static int listener(int port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(s >= 0);
    int one = 1;
    CHECK(setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
    struct sockaddr_in a = addr4("127.0.0.1", port);
    CHECK(bind(s, (struct sockaddr*)&a, sizeof a) == 0);
    CHECK(listen(s, 8) == 0);
    return s;
}

static int read_all(int fd, char* buf, int len) {
    int done = 0;
    while (done < len) {
        ssize_t n = read(fd, buf + done, len - done);
        if (n <= 0)
            break;
        done += (int)n;
    }
    return done;
}

/* A server and a forked client exchange a request and a large reply. */
static void client_server(void) {
    int s = listener(7000);
    struct sockaddr_in got;
    socklen_t len = sizeof got;
    CHECK(getsockname(s, (struct sockaddr*)&got, &len) == 0);
    CHECK(len == sizeof got && ntohs(got.sin_port) == 7000);

    pid_t pid = fork();
    if (pid == 0) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = addr4("127.0.0.1", 7000);
        if (connect(c, (struct sockaddr*)&a, sizeof a) != 0)
            _exit(10);
        if (write(c, "ping", 4) != 4)
            _exit(11);
        static char big[200000];
        int n = read_all(c, big, sizeof big);
        if (n != 150000)
            _exit(12);
        for (int i = 0; i < n; ++i)
            if (big[i] != (char)(i % 251))
                _exit(13);
        char extra;
        if (read(c, &extra, 1) != 0) /* the server closed: end of data */
            _exit(14);
        close(c);
        _exit(0);
    }
    /* The connection arrives: poll says so, then accept takes it. */
    struct pollfd p = {s, POLLIN, 0};
    CHECK(poll(&p, 1, 10000) == 1 && (p.revents & POLLIN));
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    int c = accept4(s, (struct sockaddr*)&peer, &plen, SOCK_CLOEXEC);
    CHECK(c >= 0);
    CHECK(plen == sizeof peer && peer.sin_family == AF_INET);
    char buf[8] = {0};
    CHECK(read_all(c, buf, 4) == 4 && memcmp(buf, "ping", 4) == 0);
    static char reply[150000];
    for (int i = 0; i < (int)sizeof reply; ++i)
        reply[i] = (char)(i % 251);
    CHECK(write(c, reply, sizeof reply) == (ssize_t)sizeof reply);
    CHECK(close(c) == 0);
    int status = -1;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        printf("client status %#x\n", status);
    close(s);
}

/* Non-blocking accept and recv, epoll readiness, shutdown. */
static void nonblocking(void) {
    int s = listener(7001);
    CHECK(fcntl(s, F_SETFL, O_NONBLOCK) == 0);
    CHECK(accept(s, NULL, NULL) == -1 && errno == EAGAIN);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = addr4("127.0.0.1", 7001);
    int r = connect(c, (struct sockaddr*)&a, sizeof a);
    CHECK(r == 0 || (r == -1 && errno == EINPROGRESS));
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = s};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0);
    struct epoll_event out;
    CHECK(epoll_wait(ep, &out, 1, 10000) == 1 && out.data.fd == s);
    int a2 = accept(s, NULL, NULL);
    CHECK(a2 >= 0);
    struct pollfd pw = {c, POLLOUT, 0};
    CHECK(poll(&pw, 1, 10000) == 1);
    int err = -1;
    socklen_t el = sizeof err;
    CHECK(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0);
    char b;
    CHECK(recv(a2, &b, 1, MSG_DONTWAIT) == -1 && errno == EAGAIN);
    /* A receive timeout ends a blocking recv with EAGAIN. */
    struct timeval tv = {0, 200000}, got_tv;
    socklen_t tl = sizeof got_tv;
    CHECK(setsockopt(a2, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    CHECK(getsockopt(a2, SOL_SOCKET, SO_RCVTIMEO, &got_tv, &tl) == 0 && got_tv.tv_usec == 200000);
    CHECK(recv(a2, &b, 1, 0) == -1 && errno == EAGAIN);
    CHECK(send(c, "x", 1, 0) == 1);
    struct pollfd pr = {a2, POLLIN, 0};
    CHECK(poll(&pr, 1, 10000) == 1);
    CHECK(recv(a2, &b, 1, MSG_PEEK) == 1 && b == 'x');
    CHECK(recv(a2, &b, 1, 0) == 1 && b == 'x');
    CHECK(shutdown(c, SHUT_WR) == 0);
    CHECK(poll(&pr, 1, 10000) == 1);
    CHECK(recv(a2, &b, 1, 0) == 0); /* end of data after the peer's shutdown */
    int one = 1;
    CHECK(setsockopt(a2, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
    close(a2);
    close(c);
    close(ep);
    close(s);
}

/* What the policy and the bundle's loopback refuse. */
static void refusals(void) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in denied = addr4("192.0.2.1", 9);
    CHECK(connect(c, (struct sockaddr*)&denied, sizeof denied) == -1 && errno == EACCES);
    struct sockaddr_in nobody = addr4("127.0.0.1", 7999);
    CHECK(connect(c, (struct sockaddr*)&nobody, sizeof nobody) == -1 && errno == ECONNREFUSED);
    close(c);
    int b = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in low = addr4("127.0.0.1", 22); /* the policy allows binding 7000-7999 only */
    CHECK(bind(b, (struct sockaddr*)&low, sizeof low) == -1 && errno == EACCES);
    close(b);
    CHECK(socket(AF_INET, SOCK_RAW, 0) == -1); /* UDP: tests/guest/udp.c */
    CHECK(socket(AF_INET, SOCK_STREAM, IPPROTO_UDP) == -1 && errno == EPROTONOSUPPORT);
    CHECK(accept(0, NULL, NULL) == -1 && errno == ENOTSOCK);
    CHECK(send(12345, "x", 1, 0) == -1 && errno == EBADF);
}

/* AF_UNIX socketpair between a parent and a forked child: both ways,
 * poll, shutdown seen as end of data, send/recv and sendmsg/recvmsg. */
static void unix_pair(void) {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    struct stat st;
    CHECK(fstat(sv[0], &st) == 0 && S_ISSOCK(st.st_mode));
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        char buf[16] = {0};
        if (recv(sv[1], buf, 5, MSG_WAITALL) != 5 || memcmp(buf, "hello", 5) != 0)
            _exit(20);
        struct iovec iov[2] = {{"wor", 3}, {"ld", 2}};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
        if (sendmsg(sv[1], &m, 0) != 5)
            _exit(21);
        if (shutdown(sv[1], SHUT_WR) != 0)
            _exit(22);
        _exit(0);
    }
    close(sv[1]);
    CHECK(send(sv[0], "hello", 5, 0) == 5);
    struct pollfd p = {sv[0], POLLIN, 0};
    CHECK(poll(&p, 1, 10000) == 1 && (p.revents & POLLIN));
    char a[4] = {0}, b[4] = {0};
    struct iovec iov[2] = {{a, 3}, {b, 2}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t got = recvmsg(sv[0], &m, MSG_WAITALL);
    if (got < 5) /* the two writes may arrive apart */
        got += read(sv[0], b + (got - 3), 5 - got);
    CHECK(got == 5 && memcmp(a, "wor", 3) == 0 && memcmp(b, "ld", 2) == 0);
    char c;
    CHECK(read(sv[0], &c, 1) == 0); /* the child shut down its writing side */
    int status = -1;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(sv[0]);
    CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == -1);

    /* Sending to a closed peer: EPIPE with MSG_NOSIGNAL, else SIGPIPE. */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    close(sv[1]);
    CHECK(send(sv[0], "x", 1, MSG_NOSIGNAL) == -1 && errno == EPIPE);
    pid = fork();
    if (pid == 0) {
        send(sv[0], "x", 1, 0);
        _exit(40);
    }
    CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE);
    close(sv[0]);
}

/* Named AF_UNIX stream sockets between processes of the bundle: a path
 * name and an abstract one; a second bind of a name fails; a name nobody
 * listens on is refused. */
static void unix_named(const char* name, size_t len) {
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, name, len);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(s >= 0);
    CHECK(bind(s, (struct sockaddr*)&a, alen) == 0);
    int dup_name = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(bind(dup_name, (struct sockaddr*)&a, alen) == -1 && errno == EADDRINUSE);
    close(dup_name);
    CHECK(listen(s, 4) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr*)&a, alen) != 0)
            _exit(30);
        char buf[8] = {0};
        if (read_all(c, buf, 3) != 3 || memcmp(buf, "hey", 3) != 0)
            _exit(31);
        if (write(c, "ho", 2) != 2)
            _exit(32);
        _exit(0);
    }
    int c = accept(s, NULL, NULL);
    CHECK(c >= 0);
    CHECK(write(c, "hey", 3) == 3);
    char buf[4] = {0};
    CHECK(read_all(c, buf, 2) == 2 && memcmp(buf, "ho", 2) == 0);
    int status = -1;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(c);
    close(s);
    int lone = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(connect(lone, (struct sockaddr*)&a, alen) == -1 && errno == ECONNREFUSED);
    close(lone);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    unix_pair();
    unix_named("/run/kos-test.sock", strlen("/run/kos-test.sock"));
    unix_named("\0kos-abstract", 13);
    client_server();
    nonblocking();
    refusals();
    printf("sockets: %d failures\n", failures);
    return failures;
}
