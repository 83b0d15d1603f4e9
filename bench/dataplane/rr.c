/*
 * rr: a bounded TCP request/response benchmark (netperf TCP_RR's shape) for
 * bench/dataplane. The server echoes fixed-size messages; the client keeps C
 * connections each with one request in flight for S seconds and prints the
 * transactions per second. Only the address given on the command line is
 * contacted.
 *
 *   rr server ADDR PORT SIZE          serve until killed
 *   rr client ADDR PORT SIZE CONNS SECONDS
 *
 * Build: cc -O2 -o rr rr.c  (the bench does this in its scratch directory)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 256

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char* what) { perror(what); exit(1); }

static int tcp_socket(void) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket");
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return s;
}

/* Reads exactly n bytes (blocking); 0 at EOF. */
static int read_full(int fd, char* buf, int n) {
  int got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r == 0) return 0;
    if (r < 0) { if (errno == EINTR) continue; return -1; }
    got += r;
  }
  return 1;
}

__attribute__((noreturn)) static void serve(struct sockaddr_in* addr, int size) {
  int l = tcp_socket();
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(l, (struct sockaddr*)addr, sizeof *addr) < 0) die("bind");
  if (listen(l, 64) < 0) die("listen");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
  epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
  char* buf = malloc(size);
  for (;;) {
    struct epoll_event evs[64];
    int n = epoll_wait(ep, evs, 64, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == l) {
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        continue;
      }
      if (read_full(fd, buf, size) <= 0 || write(fd, buf, size) != size) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        close(fd);
      }
    }
  }
}

static int client(struct sockaddr_in* addr, int size, int conns, double seconds) {
  int fds[MAX_CONNS];
  int ep = epoll_create1(EPOLL_CLOEXEC);
  char* buf = calloc(1, size);
  for (int i = 0; i < conns; i++) {
    fds[i] = tcp_socket();
    if (connect(fds[i], (struct sockaddr*)addr, sizeof *addr) < 0) die("connect");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
  }
  long done = 0;
  for (int i = 0; i < conns; i++) if (write(fds[i], buf, size) != size) die("write");
  double start = now(), end = start + seconds, t = start;
  while (t < end) {
    struct epoll_event evs[MAX_CONNS];
    int n = epoll_wait(ep, evs, MAX_CONNS, 100);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (read_full(fd, buf, size) <= 0) die("read");
      done++;
      if (write(fd, buf, size) != size) die("write");
    }
    t = now();
  }
  printf("%.1f\n", done / (t - start));
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: rr server ADDR PORT SIZE | rr client ADDR PORT SIZE CONNS SECONDS\n");
    return 2;
  }
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
  if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1) { fprintf(stderr, "rr: bad address %s\n", argv[2]); return 2; }
  int size = atoi(argv[4]);
  if (size < 1 || size > 65536) { fprintf(stderr, "rr: size 1..65536\n"); return 2; }
  if (strcmp(argv[1], "server") == 0) serve(&addr, size);
  if (strcmp(argv[1], "client") == 0 && argc == 7) {
    int conns = atoi(argv[5]);
    double seconds = atof(argv[6]);
    if (conns < 1 || conns > MAX_CONNS || !(seconds > 0 && seconds <= 600)) { fprintf(stderr, "rr: 1..%d connections, 0..600 s\n", MAX_CONNS); return 2; }
    return client(&addr, size, conns, seconds);
  }
  fprintf(stderr, "rr: unknown mode %s\n", argv[1]);
  return 2;
}
