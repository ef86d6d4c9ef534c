/* bench_net's load generator: plain C on epoll, a closed loop per
 * connection.  Each request sends msg_size bytes taken from a fixed random
 * pattern at an offset that changes with every request and connection,
 * reads the echo back, compares every byte with what was sent (so a lost,
 * duplicated, reordered or shifted byte is caught at once), records the
 * latency from the first send to the last byte received, then sends the
 * next request.  Latencies go into a log-linear histogram (64 sub-buckets
 * per power of two: under 1.6% error), so memory is fixed whatever the
 * rate. */
#include "bench_net.h"

#include "bench_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define H_SUB_BITS 6
#define H_SUB (1u << H_SUB_BITS)
#define H_BUCKETS ((64 - H_SUB_BITS) * H_SUB + H_SUB)
#define PATTERN_SLACK 256   /* offsets into the pattern: 0..250 */
#define RX_EXTRA 64         /* read a little more to catch extra bytes */
#define STALL_NS 5000000000 /* no echo for this long: the server is stuck */
#define CONNECT_MS 5000

typedef struct conn {
  int fd;
  unsigned idx;
  uint32_t seq;  /* requests completed */
  size_t off;    /* the current request's offset into the pattern */
  size_t sent;   /* bytes of it sent */
  size_t got;    /* bytes of its echo received and checked */
  uint64_t t0;   /* when its first byte was sent */
  bool want_out; /* EPOLLOUT armed: the send was short */
} conn_t;

static uint64_t hist[H_BUCKETS];

static unsigned h_index(uint64_t v) {
  if (v < 2 * H_SUB)
    return (unsigned)v;
  unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - H_SUB_BITS;
  return shift * H_SUB + (unsigned)(v >> shift);
}

/* The middle of bucket i. */
static double h_value(unsigned i) {
  if (i < 2 * H_SUB)
    return i;
  unsigned shift = i / H_SUB - 1;
  uint64_t low = (uint64_t)(i - shift * H_SUB) << shift;
  return (double)low + (double)((uint64_t)1 << shift) / 2;
}

static double h_quantile(uint64_t count, double q) {
  uint64_t rank = (uint64_t)(q * (double)count + 0.999999), seen = 0;
  if (rank == 0)
    rank = 1;
  for (unsigned i = 0; i < H_BUCKETS; i++)
    if ((seen += hist[i]) >= rank)
      return h_value(i);
  return 0;
}

static double thread_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double net_run_delay_s(const char *schedstat) {
  unsigned long long on_cpu, waited;
  FILE *f = fopen(schedstat, "r");
  if (!f)
    return -1;
  int n = fscanf(f, "%llu %llu", &on_cpu, &waited);
  fclose(f);
  return n == 2 ? (double)waited / 1e9 : -1;
}

/* ---- one run ------------------------------------------------------------- */

static const net_load_cfg_t *cfg;
static unsigned char *pattern, *rx;
static int ep;
static bool measuring, draining;
static uint64_t measured, total;
static int in_flight;      /* requests sent and not wholly echoed */
static uint64_t budget;    /* requests still to start (counted mode) */
static double out_seconds; /* counted mode: the measured phase's length */

static void connect_one(conn_t *c) {
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)cfg->port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int one = 1, err = 0;
  socklen_t len = sizeof err;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0)
    net_fail("%s: socket: %s", cfg->label, strerror(errno));
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
    struct pollfd p = {.fd = c->fd, .events = POLLOUT};
    if (errno != EINPROGRESS || poll(&p, 1, CONNECT_MS) != 1)
      net_fail("%s: connect to 127.0.0.1:%d failed or took over %d ms",
               cfg->label, cfg->port, CONNECT_MS);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err)
      net_fail("%s: connect to 127.0.0.1:%d: %s", cfg->label, cfg->port,
               strerror(err ? err : errno));
  }
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
    net_fail("%s: epoll_ctl: %s", cfg->label, strerror(errno));
}

static void arm_out(conn_t *c, bool on) {
  if (c->want_out == on)
    return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
                           .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
    net_fail("%s: epoll_ctl: %s", cfg->label, strerror(errno));
  c->want_out = on;
}

static void send_some(conn_t *c) {
  ssize_t w = send(c->fd, pattern + c->off + c->sent, cfg->msg_size - c->sent,
                   MSG_NOSIGNAL);
  if (w < 0) {
    if (errno != EAGAIN && errno != EINTR)
      net_fail("%s: connection %u, request %u: send: %s", cfg->label, c->idx,
               c->seq, strerror(errno));
    w = 0;
  }
  c->sent += (size_t)w;
  arm_out(c, c->sent < cfg->msg_size);
}

static void start_request(conn_t *c, uint64_t now) {
  if (budget == 0)
    return;
  budget--;
  c->off = ((size_t)c->seq * 37 + (size_t)c->idx * 11) % 251;
  c->sent = c->got = 0;
  c->t0 = now;
  in_flight++;
  send_some(c);
}

static void check_bytes(const conn_t *c, size_t n) {
  const unsigned char *want = pattern + c->off + c->got;
  if (memcmp(rx, want, n) == 0)
    return;
  size_t i = 0;
  while (rx[i] == want[i])
    i++;
  net_fail("%s: connection %u, request %u: echo byte %zu of %zu is 0x%02x, "
           "sent 0x%02x",
           cfg->label, c->idx, c->seq, c->got + i, cfg->msg_size, rx[i],
           want[i]);
}

static void on_readable(conn_t *c) {
  size_t want = cfg->msg_size - c->got;
  ssize_t n = recv(c->fd, rx, want + RX_EXTRA, 0);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR)
      return;
    net_fail("%s: connection %u, request %u: recv: %s", cfg->label, c->idx,
             c->seq, strerror(errno));
  }
  if (n == 0)
    net_fail("%s: connection %u closed by the server during request %u "
             "(%zu of %zu bytes echoed)",
             cfg->label, c->idx, c->seq, c->got, cfg->msg_size);
  if (c->got + (size_t)n > c->sent)
    net_fail("%s: connection %u, request %u: %zu bytes echoed, only %zu sent",
             cfg->label, c->idx, c->seq, c->got + (size_t)n, c->sent);
  check_bytes(c, (size_t)n);
  c->got += (size_t)n;
  if (c->got < cfg->msg_size)
    return;
  uint64_t now = bench_now();
  if (measuring) {
    hist[h_index(now - c->t0)]++;
    measured++;
  }
  total++;
  in_flight--;
  c->seq++;
  if (!draining)
    start_request(c, now);
}

static void poll_events(void) {
  struct epoll_event evs[256];
  int n = epoll_wait(ep, evs, 256, cfg->busy_poll ? 0 : 50);
  if (n < 0 && errno != EINTR)
    net_fail("%s: epoll_wait: %s", cfg->label, strerror(errno));
  for (int i = 0; i < n; i++) {
    conn_t *c = evs[i].data.ptr;
    if (evs[i].events & EPOLLOUT)
      send_some(c);
    if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
      on_readable(c);
  }
}

static void finish_run(conn_t *conns) {
  for (int i = 0; i < cfg->conns; i++)
    close(conns[i].fd);
  close(ep);
  free(conns);
  free(pattern);
  free(rx);
}

/* Polls until every started request is echoed whole. */
static void wait_idle(void) {
  uint64_t last_total = total, last_progress = bench_now();
  while (in_flight > 0) {
    poll_events();
    uint64_t now = bench_now();
    if (total != last_total) {
      last_total = total;
      last_progress = now;
    } else if (now - last_progress > STALL_NS) {
      net_fail("%s: no echo completed for %.0f s (%llu requests done)",
               cfg->label, STALL_NS / 1e9, (unsigned long long)total);
    }
  }
}

/* Counted mode: the warm-up budget (started by the caller), idle, mark 0,
 * the measured budget, idle, mark 1. */
static void run_counted(conn_t *conns) {
  wait_idle();
  if (cfg->mark)
    cfg->mark(0, cfg->mark_arg);
  budget = cfg->fixed_requests;
  uint64_t t = bench_now(), before = total;
  for (int i = 0; i < cfg->conns; i++)
    start_request(&conns[i], t);
  wait_idle();
  if (cfg->mark)
    cfg->mark(1, cfg->mark_arg);
  measured = total - before;
  out_seconds = (double)(bench_now() - t) / 1e9;
}

void net_load_run(const net_load_cfg_t *config, net_load_result_t *out) {
  cfg = config;
  size_t m = cfg->msg_size;
  conn_t *conns = calloc((size_t)cfg->conns, sizeof *conns);
  pattern = malloc(m + PATTERN_SLACK);
  rx = malloc(m + RX_EXTRA);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (!conns || !pattern || !rx || ep < 0)
    net_fail("%s: load generator setup failed", cfg->label);
  uint64_t x = 0x9e3779b97f4a7c15u;
  for (size_t i = 0; i < m + PATTERN_SLACK; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    pattern[i] = (unsigned char)(x >> 24);
  }
  memset(hist, 0, sizeof hist);
  measuring = draining = false;
  measured = total = 0;
  in_flight = 0;
  budget = cfg->fixed_requests ? cfg->fixed_warm : UINT64_MAX;

  for (int i = 0; i < cfg->conns; i++) {
    conns[i].idx = (unsigned)i;
    connect_one(&conns[i]);
  }
  uint64_t t = bench_now();
  for (int i = 0; i < cfg->conns; i++)
    start_request(&conns[i], t);

  if (cfg->fixed_requests) {
    run_counted(conns);
    memset(out, 0, sizeof *out);
    out->requests = measured;
    out->total_requests = total;
    out->seconds = out_seconds;
    out->gen_run_delay_s = -1;
    finish_run(conns);
    return;
  }
  uint64_t warm_end = t + (uint64_t)(cfg->warmup_seconds * 1e9);
  uint64_t end = warm_end + (uint64_t)(cfg->measure_seconds * 1e9);
  uint64_t start = warm_end, last_total = 0, last_progress = t, now = t;
  double cpu0 = 0;
  double wait0 = 0, wait1 = 0;
  while ((now = bench_now()) < end) {
    if (!measuring && now >= warm_end) {
      measuring = true;
      start = now;
      cpu0 = thread_cpu_s();
      wait0 = net_run_delay_s("/proc/thread-self/schedstat");
    }
    if (total != last_total) {
      last_total = total;
      last_progress = now;
    } else if (now - last_progress > STALL_NS) {
      net_fail("%s: no echo completed for %.0f s (%llu requests done)",
               cfg->label, STALL_NS / 1e9, (unsigned long long)total);
    }
    poll_events();
  }
  double cpu = measuring ? thread_cpu_s() - cpu0 : 0;
  if (measuring)
    wait1 = net_run_delay_s("/proc/thread-self/schedstat");

  /* Every request sent must come back whole: wait for the ones in flight
   * (they count for the server's CPU, not for the window). */
  measuring = false;
  draining = true;
  for (uint64_t t1 = bench_now(); in_flight > 0; poll_events())
    if (bench_now() - t1 > STALL_NS)
      net_fail("%s: %d request(s) not echoed in full %.0f s after the run",
               cfg->label, in_flight, STALL_NS / 1e9);

  out->requests = measured;
  out->total_requests = total;
  out->seconds = (double)(now - start) / 1e9;
  out->p50_us = h_quantile(measured, 0.50) / 1e3;
  out->p99_us = h_quantile(measured, 0.99) / 1e3;
  out->gen_cpu_share = out->seconds > 0 ? cpu / out->seconds : 0;
  out->gen_run_delay_s = wait0 >= 0 && wait1 >= 0 ? wait1 - wait0 : -1;
  finish_run(conns);
}
