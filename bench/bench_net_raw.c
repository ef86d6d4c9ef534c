/* bench_net's limit: a plain epoll echo server.  Level-triggered, accept4
 * non-blocking, one read and one write per request into one 64 KiB buffer.
 * A write the socket does not take whole (not seen on loopback at these
 * sizes) keeps its rest in a per-connection buffer and the connection
 * waits for EPOLLOUT instead of reading, so the echo stays exact. */
#include "bench_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RAW_BUF 65536
#define RAW_MAX_FD 65536

/* The rest of a short write, per fd (NULL: nothing pending). */
typedef struct pending {
  char *data;
  size_t len, off;
} pending_t;

static pending_t *pend;
static char buf[RAW_BUF];

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int listen_loopback(int port, int *bound) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1024) ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  *bound = ntohs(a.sin_port);
  return fd;
}

static void drop(int fd) {
  if (fd < RAW_MAX_FD && pend[fd].data) {
    free(pend[fd].data);
    pend[fd].data = NULL;
  }
  close(fd); /* also leaves the epoll set */
}

static void accept_all(int ep, int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return; /* EAGAIN, or a transient error: level-triggered retries */
    int one = 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (fd >= RAW_MAX_FD ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
      close(fd);
  }
}

/* Keeps what write did not take and waits for EPOLLOUT. */
static void keep_rest(int ep, int fd, size_t from, size_t n) {
  pending_t *p = &pend[fd];
  struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
  p->data = malloc(n - from);
  if (!p->data || epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) != 0) {
    drop(fd);
    return;
  }
  memcpy(p->data, buf + from, n - from);
  p->len = n - from;
  p->off = 0;
}

static void on_readable(int ep, int fd) {
  ssize_t n = read(fd, buf, sizeof buf);
  if (n <= 0) {
    if (n == 0 || (errno != EAGAIN && errno != EINTR))
      drop(fd);
    return;
  }
  ssize_t w = write(fd, buf, (size_t)n);
  if (w == n)
    return;
  if (w < 0 && errno != EAGAIN && errno != EINTR) {
    drop(fd);
    return;
  }
  keep_rest(ep, fd, w < 0 ? 0 : (size_t)w, (size_t)n);
}

static void on_writable(int ep, int fd) {
  pending_t *p = &pend[fd];
  if (!p->data)
    return;
  ssize_t w = write(fd, p->data + p->off, p->len - p->off);
  if (w < 0) {
    if (errno != EAGAIN && errno != EINTR)
      drop(fd);
    return;
  }
  p->off += (size_t)w;
  if (p->off < p->len)
    return;
  free(p->data);
  p->data = NULL;
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) != 0)
    drop(fd);
}

int net_serve_raw(const net_server_cfg_t *cfg) {
  int port = 0, err = 0;
  int lfd = listen_loopback(cfg->port, &port);
  if (lfd < 0) {
    fprintf(stderr, "raw epoll: listen: %s\n", strerror(-lfd));
    return lfd;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  pend = calloc(RAW_MAX_FD, sizeof *pend);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  if (ep < 0 || !pend || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) {
    fprintf(stderr, "raw epoll: setup failed\n");
    return -ENOMEM;
  }
  if (cfg->stop_fd >= 0) {
    ev.data.fd = cfg->stop_fd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, cfg->stop_fd, &ev) != 0)
      return -errno;
  }
  if (cfg->ready)
    cfg->ready(port, cfg->ready_arg);
  uint64_t deadline = now_ns() + (uint64_t)(cfg->max_seconds * 1e9);
  struct epoll_event evs[256];
  for (bool run = true; run;) {
    uint64_t now = now_ns();
    if (now >= deadline)
      break;
    uint64_t left_ms = (deadline - now) / 1000000u + 1;
    int n = epoll_wait(ep, evs, 256, left_ms > 1000 ? 1000 : (int)left_ms);
    if (n < 0 && errno != EINTR) {
      err = -errno;
      break;
    }
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == lfd)
        accept_all(ep, lfd);
      else if (fd == cfg->stop_fd)
        run = false;
      else if (evs[i].events & EPOLLOUT)
        on_writable(ep, fd);
      else
        on_readable(ep, fd);
    }
  }
  /* Whatever clients are left are closed with the process. */
  close(ep);
  close(lfd);
  return err;
}
