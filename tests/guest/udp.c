/* UDP sockets under kos: a forked echo server and a client over the bundle's
 * own loopback, sendto/recvfrom with addresses, connect + send, message
 * boundaries, MSG_PEEK and MSG_TRUNC, a non-blocking receive, poll and
 * SO_RCVTIMEO, and the policy's denial of a destination. The policy allows
 * the loopback ports 7000-7999 only, so every socket that is replied to binds
 * one of them. Prints "udp: N failures". */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
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

static int bound(int port) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(s >= 0);
    struct sockaddr_in a = addr4("127.0.0.1", port);
    CHECK(bind(s, (struct sockaddr*)&a, sizeof a) == 0);
    return s;
}

static int wait_readable(int fd, int ms) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* A forked echo server: each datagram goes back to its source, "quit"
 * ends it. The client sends datagrams of several sizes and checks each
 * echo arrives whole, from the server's address. */
static void echo_between_processes(void) {
    int srv = bound(7100);
    pid_t pid = fork();
    if (pid == 0) {
        static char buf[70000];
        for (;;) {
            struct sockaddr_in from;
            socklen_t flen = sizeof from;
            ssize_t n = recvfrom(srv, buf, sizeof buf, 0, (struct sockaddr*)&from, &flen);
            if (n < 0)
                _exit(10);
            if (flen != sizeof from || from.sin_family != AF_INET)
                _exit(11);
            if (n == 4 && memcmp(buf, "quit", 4) == 0)
                _exit(0);
            if (sendto(srv, buf, (size_t)n, 0, (struct sockaddr*)&from, flen) != n)
                _exit(12);
        }
    }
    close(srv);
    int c = bound(7101);
    struct sockaddr_in to = addr4("127.0.0.1", 7100);
    static char out[60000], in[60000];
    int sizes[] = {1, 0, 512, 1472, 9000, 60000};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
        int n = sizes[i];
        for (int k = 0; k < n; ++k)
            out[k] = (char)(k * 7 + i);
        CHECK(sendto(c, out, (size_t)n, 0, (struct sockaddr*)&to, sizeof to) == n);
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        memset(&from, 0, sizeof from);
        ssize_t got = recvfrom(c, in, sizeof in, 0, (struct sockaddr*)&from, &flen);
        CHECK(got == n);
        CHECK(got == n && memcmp(in, out, (size_t)n) == 0);
        CHECK(flen == sizeof from && from.sin_port == htons(7100) && from.sin_addr.s_addr == htonl(0x7f000001));
    }
    CHECK(sendto(c, "quit", 4, 0, (struct sockaddr*)&to, sizeof to) == 4);
    int st = -1;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(c);
}

/* Boundaries, MSG_PEEK, truncation (MSG_TRUNC in recvmsg's flags, and as a
 * recv flag the datagram's real size), a non-blocking receive, poll. */
static void boundaries_peek_trunc(void) {
    int a = bound(7200), b = bound(7201);
    struct sockaddr_in to = addr4("127.0.0.1", 7201);
    char buf[64];
    CHECK(recv(b, buf, sizeof buf, MSG_DONTWAIT) == -1 && errno == EAGAIN);
    struct pollfd p = {b, POLLIN | POLLOUT, 0};
    CHECK(poll(&p, 1, 0) == 1 && p.revents == POLLOUT);

    CHECK(sendto(a, "first", 5, 0, (struct sockaddr*)&to, sizeof to) == 5);
    CHECK(sendto(a, "second!", 7, 0, (struct sockaddr*)&to, sizeof to) == 7);
    CHECK(sendto(a, "0123456789", 10, 0, (struct sockaddr*)&to, sizeof to) == 10);
    CHECK(wait_readable(b, 5000));
    CHECK(recv(b, buf, sizeof buf, MSG_PEEK) == 5 && memcmp(buf, "first", 5) == 0);
    CHECK(recv(b, buf, sizeof buf, 0) == 5); /* never merged with the next */
    CHECK(recv(b, buf, 3, MSG_TRUNC | MSG_PEEK) == 7); /* its real size */
    /* recvmsg over two buffers: the datagram is scattered, its source given. */
    char x[3], y[10];
    struct iovec iov[2] = {{x, sizeof x}, {y, sizeof y}};
    struct sockaddr_in from;
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_name = &from;
    m.msg_namelen = sizeof from;
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    CHECK(recvmsg(b, &m, 0) == 7);
    CHECK(memcmp(x, "sec", 3) == 0 && memcmp(y, "ond!", 4) == 0);
    CHECK(m.msg_namelen == sizeof from && from.sin_port == htons(7200));
    CHECK(!(m.msg_flags & MSG_TRUNC));
    /* Too small a buffer: cut, MSG_TRUNC, the rest gone. */
    char small[4];
    struct iovec one = {small, sizeof small};
    memset(&m, 0, sizeof m);
    m.msg_iov = &one;
    m.msg_iovlen = 1;
    CHECK(recvmsg(b, &m, 0) == 4);
    CHECK(memcmp(small, "0123", 4) == 0);
    CHECK(m.msg_flags & MSG_TRUNC);
    CHECK(recv(b, buf, sizeof buf, MSG_DONTWAIT) == -1 && errno == EAGAIN);

    /* sendmsg gathers its buffers into one datagram. */
    struct iovec parts[2] = {{"gath", 4}, {"ered", 4}};
    memset(&m, 0, sizeof m);
    m.msg_name = &to;
    m.msg_namelen = sizeof to;
    m.msg_iov = parts;
    m.msg_iovlen = 2;
    CHECK(sendmsg(a, &m, 0) == 8);
    CHECK(wait_readable(b, 5000));
    CHECK(recv(b, buf, sizeof buf, 0) == 8 && memcmp(buf, "gathered", 8) == 0);
    m.msg_namelen = 0; /* a name without a length is none: a is not connected */
    CHECK(sendmsg(a, &m, 0) == -1 && errno == EDESTADDRREQ);

    /* epoll: readable once a datagram is queued, and no more once it is read. */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    struct epoll_event ev = {EPOLLIN, {.fd = b}};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, b, &ev) == 0);
    struct epoll_event out;
    CHECK(epoll_wait(ep, &out, 1, 0) == 0);
    CHECK(sendto(a, "ep", 2, 0, (struct sockaddr*)&to, sizeof to) == 2);
    CHECK(epoll_wait(ep, &out, 1, 5000) == 1 && out.data.fd == b && (out.events & EPOLLIN));
    CHECK(recv(b, buf, sizeof buf, 0) == 2 && memcmp(buf, "ep", 2) == 0);
    CHECK(epoll_wait(ep, &out, 1, 0) == 0);
    close(ep);

    /* A non-blocking socket, and SO_RCVTIMEO on a blocking one. */
    int fl = fcntl(b, F_GETFL);
    CHECK(fcntl(b, F_SETFL, fl | O_NONBLOCK) == 0);
    CHECK(recvfrom(b, buf, sizeof buf, 0, NULL, NULL) == -1 && errno == EAGAIN);
    CHECK(fcntl(b, F_SETFL, fl) == 0);
    struct timeval tv = {0, 200000};
    CHECK(setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    CHECK(recv(b, buf, sizeof buf, 0) == -1 && (errno == EAGAIN || errno == EWOULDBLOCK));
    /* No multicast in the service: joining a group fails. */
    struct ip_mreq mreq;
    memset(&mreq, 0, sizeof mreq);
    inet_pton(AF_INET, "239.1.2.3", &mreq.imr_multiaddr);
    CHECK(setsockopt(b, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq) == -1);
    int type = 0;
    socklen_t tl = sizeof type;
    CHECK(getsockopt(b, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_DGRAM);
    close(a);
    close(b);
}

/* connect sets the default peer: send/write/recv, getpeername, and only the
 * peer's datagrams arrive. */
static void connected(void) {
    int a = bound(7300), b = bound(7301), other = bound(7302);
    struct sockaddr_in pa = addr4("127.0.0.1", 7300), pb = addr4("127.0.0.1", 7301);
    char buf[32];
    CHECK(send(b, "x", 1, 0) == -1 && errno == EDESTADDRREQ);
    CHECK(connect(b, (struct sockaddr*)&pa, sizeof pa) == 0);
    struct sockaddr_in got;
    socklen_t len = sizeof got;
    CHECK(getpeername(b, (struct sockaddr*)&got, &len) == 0 && got.sin_port == htons(7300));
    len = sizeof got;
    CHECK(getsockname(b, (struct sockaddr*)&got, &len) == 0 && got.sin_port == htons(7301));
    CHECK(send(b, "hello", 5, 0) == 5);
    CHECK(write(b, "world", 5) == 5);
    CHECK(wait_readable(a, 5000));
    CHECK(recv(a, buf, sizeof buf, 0) == 5 && memcmp(buf, "hello", 5) == 0);
    CHECK(read(a, buf, sizeof buf) == 5 && memcmp(buf, "world", 5) == 0);
    /* Another sender is filtered out; the peer gets through. */
    CHECK(sendto(other, "noise", 5, 0, (struct sockaddr*)&pb, sizeof pb) == 5);
    CHECK(sendto(a, "reply", 5, 0, (struct sockaddr*)&pb, sizeof pb) == 5);
    CHECK(wait_readable(b, 5000));
    CHECK(recv(b, buf, sizeof buf, 0) == 5 && memcmp(buf, "reply", 5) == 0);
    CHECK(recv(b, buf, sizeof buf, MSG_DONTWAIT) == -1 && errno == EAGAIN);
    /* connect(AF_UNSPEC) forgets the peer: the other sender gets through. */
    struct sockaddr unspec;
    memset(&unspec, 0, sizeof unspec);
    unspec.sa_family = AF_UNSPEC;
    CHECK(connect(b, &unspec, sizeof unspec) == 0);
    len = sizeof got;
    CHECK(getpeername(b, (struct sockaddr*)&got, &len) == -1 && errno == ENOTCONN);
    CHECK(send(b, "x", 1, 0) == -1 && errno == EDESTADDRREQ);
    CHECK(sendto(other, "again", 5, 0, (struct sockaddr*)&pb, sizeof pb) == 5);
    CHECK(wait_readable(b, 5000));
    CHECK(recv(b, buf, sizeof buf, 0) == 5 && memcmp(buf, "again", 5) == 0);
    close(a);
    close(b);
    close(other);
}

/* A destination the policy does not allow: EACCES (and the kernel's audit
 * line on stderr), for sendto and connect; the socket stays usable. */
static void denied(void) {
    int s = bound(7400);
    struct sockaddr_in d = addr4("192.0.2.1", 53);
    CHECK(sendto(s, "q", 1, 0, (struct sockaddr*)&d, sizeof d) == -1 && errno == EACCES);
    CHECK(connect(s, (struct sockaddr*)&d, sizeof d) == -1 && errno == EACCES);
    struct sockaddr_in outside_range = addr4("127.0.0.1", 6999);
    CHECK(sendto(s, "q", 1, 0, (struct sockaddr*)&outside_range, sizeof outside_range) == -1 && errno == EACCES);
    struct sockaddr_in self = addr4("127.0.0.1", 7400);
    CHECK(sendto(s, "me", 2, 0, (struct sockaddr*)&self, sizeof self) == 2);
    char buf[8];
    CHECK(wait_readable(s, 5000));
    CHECK(recv(s, buf, sizeof buf, 0) == 2);
    close(s);
}

/* `udp serve PORT`: an echo server on 127.0.0.1:PORT ("echo:" + each
 * datagram, back to its source) until a datagram "quit"; with -p
 * HOST:PORT/udp the host's datagrams reach it. */
static int serve(int port) {
    int s = bound(port);
    static char buf[2048];
    memcpy(buf, "echo:", 5);
    for (;;) {
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(s, buf + 5, sizeof buf - 5, 0, (struct sockaddr*)&from, &flen);
        CHECK(n >= 0);
        if (n < 0 || (n == 4 && memcmp(buf + 5, "quit", 4) == 0))
            break;
        CHECK(sendto(s, buf, (size_t)n + 5, 0, (struct sockaddr*)&from, flen) == n + 5);
    }
    close(s);
    printf("udp serve: %d failures\n", failures);
    return failures;
}

int main(int argc, char** argv) {
    if (argc == 3 && strcmp(argv[1], "serve") == 0)
        return serve(atoi(argv[2]));
    echo_between_processes();
    boundaries_peek_trunc();
    connected();
    denied();
    printf("udp: %d failures\n", failures);
    return failures;
}
