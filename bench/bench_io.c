/* I/O paths against raw epoll in the same program:
 *   S5  P pipes watched, A of them made readable per round; each reader
 *       callback drains its byte (ns per round and per event)
 *   S6  TCP ping-pong of 64 bytes over one loopback connection, both ends
 *       in the same loop (µs per round trip)
 *   S6' the same ping-pong where each end, holding a persistent reader,
 *       arms a writer for each message and removes it in the writer's
 *       callback ("write when writable"); raw epoll does the same with
 *       EPOLL_CTL_MOD (EPOLLIN|EPOLLOUT, then EPOLLIN)
 *   S6'' the same ping-pong where each reader callback pauses and resumes
 *       reading (remove_reader + add_reader), beside S6's raw epoll
 * S5 and S6 also run libev (ev_io, epoll backend) and libuv (uv_poll) when
 * found at configure time.
 * Usage: bench_io [scale]   (BENCH_QUICK=1 divides the scale by 100;
 * BENCH_IO_ONLY=s6 runs S6, S6' and S6'' only, s6w S6' alone; s6w-fut,
 * s6w-raw or s6t-fut one
 * system of S6' or S6'', for strace -c) */
#include <future.h>

#include "bench_common.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static int npipes, nactive;
static int (*pipes)[2];
static long events;

/* ---- S5
 * ---------------------------------------------------------------------- */

static void make_pipes(int n) {
  pipes = malloc(sizeof *pipes * (size_t)n);
  BENCH_CHECK(pipes);
  for (int i = 0; i < n; i++)
    BENCH_CHECK(pipe2(pipes[i], O_NONBLOCK | O_CLOEXEC) == 0);
}

static void close_pipes(int n) {
  for (int i = 0; i < n; i++) {
    close(pipes[i][0]);
    close(pipes[i][1]);
  }
  free(pipes);
}

/* The active pipes of a round are spread over the whole set. */
static inline int active_pipe(int k) {
  return (int)(((long)k * npipes) / nactive);
}

static void fire(int round) {
  (void)round;
  for (int k = 0; k < nactive; k++)
    BENCH_CHECK(write(pipes[active_pipe(k)][1], "x", 1) == 1);
}

static void on_readable(void *arg) {
  char c;
  int fd = (int)(intptr_t)arg;
  if (read(fd, &c, 1) == 1)
    events++;
}

static uint64_t s5_loop(long rounds) {
  fut_loop_t *loop;
  BENCH_CHECK(fut_loop_new(&loop) == 0);
  for (int i = 0; i < npipes; i++)
    BENCH_CHECK(fut_loop_add_reader(loop, pipes[i][0], on_readable,
                                    (void *)(intptr_t)pipes[i][0]) == 0);
  events = 0;
  uint64_t t0 = bench_now();
  for (long r = 0; r < rounds; r++) {
    fire((int)r);
    long want = events + nactive;
    while (events < want)
      BENCH_CHECK(fut_loop_run_once(loop, UINT64_MAX) == 0);
  }
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(events == rounds * nactive);
  fut_loop_free(loop);
  return t;
}

static uint64_t s5_raw(long rounds) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  BENCH_CHECK(ep >= 0);
  for (int i = 0; i < npipes; i++) {
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = pipes[i][0]};
    BENCH_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, pipes[i][0], &ev) == 0);
  }
  struct epoll_event evs[1024];
  events = 0;
  uint64_t t0 = bench_now();
  for (long r = 0; r < rounds; r++) {
    fire((int)r);
    long want = events + nactive;
    while (events < want) {
      int n = epoll_wait(ep, evs, 1024, -1);
      for (int i = 0; i < n; i++)
        on_readable((void *)(intptr_t)evs[i].data.fd);
    }
  }
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(events == rounds * nactive);
  close(ep);
  return t;
}

/* ---- S6
 * ---------------------------------------------------------------------- */

static int cfd, sfd; /* client and server ends */
static long trips, target_trips;
static char msg[64];
static fut_loop_t *ploop;

static void tcp_pair(void) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  BENCH_CHECK(l >= 0 && bind(l, (void *)&a, sizeof a) == 0 &&
              listen(l, 1) == 0);
  BENCH_CHECK(getsockname(l, (void *)&a, &len) == 0);
  cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BENCH_CHECK(connect(cfd, (void *)&a, sizeof a) == 0);
  sfd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  BENCH_CHECK(sfd >= 0);
  close(l);
  int one = 1;
  setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(cfd, F_SETFL, O_NONBLOCK);
  fcntl(sfd, F_SETFL, O_NONBLOCK);
}

/* Reads a whole 64-byte message (they never split on loopback at this
 * size, but be exact). */
static bool read_msg(int fd) {
  static size_t got[2];
  size_t *g = &got[fd == sfd];
  ssize_t n = read(fd, msg + *g, sizeof msg - *g);
  if (n <= 0)
    return false;
  *g += (size_t)n;
  if (*g < sizeof msg)
    return false;
  *g = 0;
  return true;
}

static void on_server(void *arg) {
  (void)arg;
  if (read_msg(sfd))
    BENCH_CHECK(write(sfd, msg, sizeof msg) == (ssize_t)sizeof msg);
}

static void on_client(void *arg) {
  (void)arg;
  if (!read_msg(cfd))
    return;
  if (++trips == target_trips)
    fut_loop_stop(ploop);
  else
    BENCH_CHECK(write(cfd, msg, sizeof msg) == (ssize_t)sizeof msg);
}

static uint64_t s6_loop(long n) {
  BENCH_CHECK(fut_loop_new(&ploop) == 0);
  BENCH_CHECK(fut_loop_add_reader(ploop, sfd, on_server, NULL) == 0);
  BENCH_CHECK(fut_loop_add_reader(ploop, cfd, on_client, NULL) == 0);
  trips = 0;
  target_trips = n;
  uint64_t t0 = bench_now();
  BENCH_CHECK(write(cfd, msg, sizeof msg) == (ssize_t)sizeof msg);
  BENCH_CHECK(fut_loop_run_forever(ploop) == 0);
  uint64_t t = bench_now() - t0;
  fut_loop_free(ploop);
  return t;
}

static uint64_t s6_raw(long n) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = sfd};
  BENCH_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) == 0);
  ev.data.fd = cfd;
  BENCH_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev) == 0);
  trips = 0;
  target_trips = n;
  struct epoll_event evs[8];
  uint64_t t0 = bench_now();
  BENCH_CHECK(write(cfd, msg, sizeof msg) == (ssize_t)sizeof msg);
  while (trips < n) {
    int k = epoll_wait(ep, evs, 8, -1);
    for (int i = 0; i < k && trips < n; i++) {
      if (evs[i].data.fd == sfd) {
        on_server(NULL);
      } else if (read_msg(cfd) && ++trips < n) {
        BENCH_CHECK(write(cfd, msg, sizeof msg) == (ssize_t)sizeof msg);
      }
    }
  }
  uint64_t t = bench_now() - t0;
  close(ep);
  return t;
}

/* ---- peers: libev ev_io and libuv uv_poll, S5 and S6 ----------------------
 * Linked into this benchmark only when found at configure time. */
#ifdef FUT_BENCH_HAVE_LIBEV
#include <ev.h>

static struct ev_loop *evl;

static void ev_s5_cb(struct ev_loop *l, ev_io *w, int revents) {
  (void)l;
  (void)revents;
  on_readable((void *)(intptr_t)w->fd);
}

static uint64_t s5_libev(long rounds) {
  ev_io *ws = malloc(sizeof *ws * (size_t)npipes);
  BENCH_CHECK(ws);
  for (int i = 0; i < npipes; i++) {
    ev_io_init(&ws[i], ev_s5_cb, pipes[i][0], EV_READ);
    ev_io_start(evl, &ws[i]);
  }
  events = 0;
  uint64_t t0 = bench_now();
  for (long r = 0; r < rounds; r++) {
    fire((int)r);
    long want = events + nactive;
    while (events < want)
      ev_run(evl, EVRUN_ONCE);
  }
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(events == rounds * nactive);
  for (int i = 0; i < npipes; i++)
    ev_io_stop(evl, &ws[i]);
  free(ws);
  return t;
}

static void ev_s6_server(struct ev_loop *l, ev_io *w, int revents) {
  (void)l;
  (void)w;
  (void)revents;
  on_server(NULL);
}

static void ev_s6_client(struct ev_loop *l, ev_io *w, int revents) {
  (void)w;
  (void)revents;
  if (!read_msg(cfd))
    return;
  if (++trips == target_trips)
    ev_break(l, EVBREAK_ALL);
  else
    BENCH_CHECK(write(cfd, msg, sizeof msg) == (ssize_t)sizeof msg);
}

static uint64_t s6_libev(long n) {
  ev_io ws, wc;
  ev_io_init(&ws, ev_s6_server, sfd, EV_READ);
  ev_io_init(&wc, ev_s6_client, cfd, EV_READ);
  ev_io_start(evl, &ws);
  ev_io_start(evl, &wc);
  trips = 0;
  target_trips = n;
  uint64_t t0 = bench_now();
  BENCH_CHECK(write(cfd, msg, sizeof msg) == (ssize_t)sizeof msg);
  ev_run(evl, 0);
  uint64_t t = bench_now() - t0;
  ev_io_stop(evl, &ws);
  ev_io_stop(evl, &wc);
  return t;
}
#endif

#ifdef FUT_BENCH_HAVE_LIBUV
#include <uv.h>

static uv_loop_t *uvl;

static void uv_s5_cb(uv_poll_t *h, int status, int revents) {
  (void)status;
  (void)revents;
  on_readable(h->data);
}

static uint64_t s5_libuv(long rounds) {
  uv_poll_t *hs = malloc(sizeof *hs * (size_t)npipes);
  BENCH_CHECK(hs);
  for (int i = 0; i < npipes; i++) {
    BENCH_CHECK(uv_poll_init(uvl, &hs[i], pipes[i][0]) == 0);
    hs[i].data = (void *)(intptr_t)pipes[i][0];
    BENCH_CHECK(uv_poll_start(&hs[i], UV_READABLE, uv_s5_cb) == 0);
  }
  events = 0;
  uint64_t t0 = bench_now();
  for (long r = 0; r < rounds; r++) {
    fire((int)r);
    long want = events + nactive;
    while (events < want)
      uv_run(uvl, UV_RUN_ONCE);
  }
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(events == rounds * nactive);
  for (int i = 0; i < npipes; i++)
    uv_close((uv_handle_t *)&hs[i], NULL);
  uv_run(uvl, UV_RUN_DEFAULT);
  free(hs);
  return t;
}

static void uv_s6_server(uv_poll_t *h, int status, int revents) {
  (void)h;
  (void)status;
  (void)revents;
  on_server(NULL);
}

static void uv_s6_client(uv_poll_t *h, int status, int revents) {
  (void)h;
  (void)status;
  (void)revents;
  if (!read_msg(cfd))
    return;
  if (++trips == target_trips)
    uv_stop(uvl);
  else
    BENCH_CHECK(write(cfd, msg, sizeof msg) == (ssize_t)sizeof msg);
}

static uint64_t s6_libuv(long n) {
  uv_poll_t hs, hc;
  BENCH_CHECK(uv_poll_init(uvl, &hs, sfd) == 0);
  BENCH_CHECK(uv_poll_init(uvl, &hc, cfd) == 0);
  BENCH_CHECK(uv_poll_start(&hs, UV_READABLE, uv_s6_server) == 0);
  BENCH_CHECK(uv_poll_start(&hc, UV_READABLE, uv_s6_client) == 0);
  trips = 0;
  target_trips = n;
  uint64_t t0 = bench_now();
  BENCH_CHECK(write(cfd, msg, sizeof msg) == (ssize_t)sizeof msg);
  uv_run(uvl, UV_RUN_DEFAULT);
  uint64_t t = bench_now() - t0;
  uv_close((uv_handle_t *)&hs, NULL);
  uv_close((uv_handle_t *)&hc, NULL);
  uv_run(uvl, UV_RUN_DEFAULT);
  return t;
}
#endif

#define ADD_SYS(nm, fn)                                                        \
  do {                                                                         \
    names[k] = (nm);                                                           \
    fns[k++] = (fn);                                                           \
  } while (0)

/* ---- S6' ------------------------------------------------------------------
 */

static void on_server_writable(void *arg) {
  (void)arg;
  BENCH_CHECK(write(sfd, msg, sizeof msg) == (ssize_t)sizeof msg);
  BENCH_CHECK(fut_loop_remove_writer(ploop, sfd) == 1);
}

static void on_client_writable(void *arg) {
  (void)arg;
  BENCH_CHECK(write(cfd, msg, sizeof msg) == (ssize_t)sizeof msg);
  BENCH_CHECK(fut_loop_remove_writer(ploop, cfd) == 1);
}

static void on_server_w(void *arg) {
  (void)arg;
  if (read_msg(sfd))
    BENCH_CHECK(fut_loop_add_writer(ploop, sfd, on_server_writable, NULL) == 0);
}

static void on_client_w(void *arg) {
  (void)arg;
  if (!read_msg(cfd))
    return;
  if (++trips == target_trips)
    fut_loop_stop(ploop);
  else
    BENCH_CHECK(fut_loop_add_writer(ploop, cfd, on_client_writable, NULL) == 0);
}

static uint64_t s6w_loop(long n) {
  BENCH_CHECK(fut_loop_new(&ploop) == 0);
  BENCH_CHECK(fut_loop_add_reader(ploop, sfd, on_server_w, NULL) == 0);
  BENCH_CHECK(fut_loop_add_reader(ploop, cfd, on_client_w, NULL) == 0);
  trips = 0;
  target_trips = n;
  uint64_t t0 = bench_now();
  BENCH_CHECK(fut_loop_add_writer(ploop, cfd, on_client_writable, NULL) == 0);
  BENCH_CHECK(fut_loop_run_forever(ploop) == 0);
  uint64_t t = bench_now() - t0;
  fut_loop_free(ploop);
  return t;
}

/* ---- S6'': the reader paused and resumed in its own callback ------------
 * (flow control toggling within one callback: remove_reader, then
 * add_reader again).  Lazily this is one EPOLL_CTL_MOD per message; eagerly
 * it was a DEL and an ADD.  The limit is S6's raw epoll, which does no
 * epoll_ctl at all. */
static void on_server_toggle(void *arg);
static void on_client_toggle(void *arg);

static void on_server_toggle(void *arg) {
  (void)arg;
  BENCH_CHECK(fut_loop_remove_reader(ploop, sfd) == 1);
  BENCH_CHECK(fut_loop_add_reader(ploop, sfd, on_server_toggle, NULL) == 0);
  on_server(NULL);
}

static void on_client_toggle(void *arg) {
  (void)arg;
  BENCH_CHECK(fut_loop_remove_reader(ploop, cfd) == 1);
  BENCH_CHECK(fut_loop_add_reader(ploop, cfd, on_client_toggle, NULL) == 0);
  on_client(NULL);
}

static uint64_t s6t_loop(long n) {
  BENCH_CHECK(fut_loop_new(&ploop) == 0);
  BENCH_CHECK(fut_loop_add_reader(ploop, sfd, on_server_toggle, NULL) == 0);
  BENCH_CHECK(fut_loop_add_reader(ploop, cfd, on_client_toggle, NULL) == 0);
  trips = 0;
  target_trips = n;
  uint64_t t0 = bench_now();
  BENCH_CHECK(write(cfd, msg, sizeof msg) == (ssize_t)sizeof msg);
  BENCH_CHECK(fut_loop_run_forever(ploop) == 0);
  uint64_t t = bench_now() - t0;
  fut_loop_free(ploop);
  return t;
}

static void raw_arm(int ep, int fd, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.fd = fd};
  BENCH_CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == 0);
}

static uint64_t s6w_raw(long n) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = sfd};
  BENCH_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) == 0);
  ev.data.fd = cfd;
  BENCH_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev) == 0);
  trips = 0;
  target_trips = n;
  struct epoll_event evs[8];
  uint64_t t0 = bench_now();
  raw_arm(ep, cfd, EPOLLIN | EPOLLOUT);
  while (trips < n) {
    int k = epoll_wait(ep, evs, 8, -1);
    for (int i = 0; i < k && trips < n; i++) {
      int fd = evs[i].data.fd;
      uint32_t e = evs[i].events;
      if (e & EPOLLIN) {
        if (fd == sfd) {
          if (read_msg(sfd))
            raw_arm(ep, sfd, EPOLLIN | EPOLLOUT);
        } else if (read_msg(cfd) && ++trips < n) {
          raw_arm(ep, cfd, EPOLLIN | EPOLLOUT);
        }
      }
      if ((e & EPOLLOUT) && trips < n) {
        BENCH_CHECK(write(fd, msg, sizeof msg) == (ssize_t)sizeof msg);
        raw_arm(ep, fd, EPOLLIN);
      }
    }
  }
  uint64_t t = bench_now() - t0;
  close(ep);
  return t;
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  if (bench_quick())
    scale /= 100;
#ifdef FUT_BENCH_HAVE_LIBEV
  evl = ev_loop_new(EVBACKEND_EPOLL);
  BENCH_CHECK(evl);
#endif
#ifdef FUT_BENCH_HAVE_LIBUV
  uvl = uv_default_loop();
  BENCH_CHECK(uvl);
#endif
  const char *only = getenv("BENCH_IO_ONLY");
  if (only && (strcmp(only, "s6w-fut") == 0 || strcmp(only, "s6w-raw") == 0)) {
    /* One system alone, for strace -c: calls per round trip. */
    tcp_pair();
    long n = (long)(100000 * scale);
    n = n < 100 ? 100 : n;
    uint64_t t = only[4] == 'f' ? s6w_loop(n) : s6w_raw(n);
    printf("%s: %ld round trips, %.0f ns each\n", only, n, (double)t / n);
    return 0;
  }
  if (only && strcmp(only, "s6t-fut") == 0) {
    tcp_pair();
    long n = (long)(100000 * scale);
    n = n < 100 ? 100 : n;
    uint64_t t = s6t_loop(n);
    printf("%s: %ld round trips, %.0f ns each\n", only, n, (double)t / n);
    return 0;
  }
  if (only && (strcmp(only, "s6w") == 0 || strcmp(only, "s6") == 0)) {
    tcp_pair();
    long n = (long)(100000 * scale);
    n = n < 100 ? 100 : n;
    if (only[2] != 'w')
      bench_pair("S6 TCP ping-pong 64 B (per round trip)", s6_loop, "raw epoll",
                 s6_raw, n);
    bench_pair("S6' ping-pong, writer armed each message (per round trip)",
               s6w_loop, "raw epoll", s6w_raw, n);
    if (only[2] != 'w')
      bench_pair("S6'' ping-pong, reader paused + resumed in its callback "
                 "(per round trip)",
                 s6t_loop, "raw epoll (S6's)", s6_raw, n);
    return 0;
  }
  /* 10,000 pipes need 20,000 fds: raise the soft limit to the hard one. */
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  /* 10,000 pipes when the limit allows, else as many as it does. */
  int big = rl.rlim_cur >= 20100 ? 10000 : (int)(rl.rlim_cur - 100) / 2;
  printf("libfuture %s, medians of %d runs (libfuture / raw epoll, "
         "alternating)\n",
         fut_version_string(), BENCH_RUNS);
  static const int ps[] = {100, 10000}, as[] = {1, 100};
  for (int pi = 0; pi < 2; pi++) {
    for (int ai = 0; ai < 2; ai++) {
      npipes = ps[pi] > 100 ? big : ps[pi];
      nactive = as[ai];
      make_pipes(npipes);
      long rounds = (long)((nactive == 1 ? 200000 : 20000) * scale);
      if (rounds < 100)
        rounds = 100;
      char name[64];
      snprintf(name, sizeof name, "S5 pipes P=%d A=%d (per round)", npipes,
               nactive);
      const char *names[BENCH_MAX_SYSTEMS];
      uint64_t (*fns[BENCH_MAX_SYSTEMS])(long);
      int k = 0;
      ADD_SYS(NULL, s5_loop);
      ADD_SYS("raw epoll", s5_raw);
#ifdef FUT_BENCH_HAVE_LIBEV
      ADD_SYS("libev ev_io", s5_libev);
#endif
#ifdef FUT_BENCH_HAVE_LIBUV
      ADD_SYS("libuv uv_poll", s5_libuv);
#endif
      bench_multi(name, rounds, k, names, fns);
      close_pipes(npipes);
    }
  }
  tcp_pair();
  long n = (long)(100000 * scale);
  if (n < 100)
    n = 100;
  {
    const char *names[BENCH_MAX_SYSTEMS];
    uint64_t (*fns[BENCH_MAX_SYSTEMS])(long);
    int k = 0;
    ADD_SYS(NULL, s6_loop);
    ADD_SYS("raw epoll", s6_raw);
#ifdef FUT_BENCH_HAVE_LIBEV
    ADD_SYS("libev ev_io", s6_libev);
#endif
#ifdef FUT_BENCH_HAVE_LIBUV
    ADD_SYS("libuv uv_poll", s6_libuv);
#endif
    bench_multi("S6 TCP ping-pong 64 B (per round trip)", n, k, names, fns);
  }
  bench_pair("S6' ping-pong, writer armed each message (per round trip)",
             s6w_loop, "raw epoll", s6w_raw, n);
  bench_pair("S6'' ping-pong, reader paused + resumed in its callback "
             "(per round trip)",
             s6t_loop, "raw epoll (S6's)", s6_raw, n);
  close(cfd);
  close(sfd);
  return 0;
}
