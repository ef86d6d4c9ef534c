/* Servers and connections beyond the echo: accept under EMFILE without a
 * busy loop, serve_forever and wait_closed with cancellation,
 * close_clients, a factory that refuses, loop close with connections
 * open, BufferedProtocol, writev, create_connection cut by wait_for and a
 * timeout scope, happy eyeballs across ::1 and 127.0.0.1. */
#include "fixture.h"
#include "task_helpers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- protocols ------------------------------------------------------------
 */

typedef struct conn {
  int made, lost, lost_err;
  size_t bytes;
} conn_t;

static conn_t conns[64];
static int nconns;

static int conn_factory(void *farg, void **arg) {
  (void)farg;
  if (nconns == 64)
    return -ENOMEM;
  memset(&conns[nconns], 0, sizeof conns[0]);
  *arg = &conns[nconns++];
  return 0;
}

static void c_made(fut_transport_t *t, void *arg) {
  (void)t;
  ((conn_t *)arg)->made++;
}
static void c_echo(fut_transport_t *t, const void *d, size_t n, void *arg) {
  ((conn_t *)arg)->bytes += n;
  fut_transport_write(t, d, n);
}
static void c_lost(fut_transport_t *t, int err, void *arg) {
  (void)t;
  conn_t *c = arg;
  c->lost++;
  c->lost_err = err;
}
static const fut_protocol_t echo_proto = {.connection_made = c_made,
                                          .data_received = c_echo,
                                          .connection_lost = c_lost};

static int raw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
  return fd;
}

static void echo_check(fut_loop_t *loop, int fd) {
  assert_int_equal(write(fd, "ok", 2), 2);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  char b[2];
  size_t got = 0;
  for (int i = 0; i < 5000 && got < 2; i++) {
    ssize_t r = read(fd, b + got, 2 - got);
    if (r > 0)
      got += (size_t)r;
    else
      fut_loop_run_once(loop, 1000000);
  }
  assert_int_equal(got, 2);
  assert_memory_equal(b, "ok", 2);
}

static double thread_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- accept under EMFILE ----------------------------------------------------
 */

enum { NCLIENTS = 8 };

static void test_accept_emfile_backs_off(void **state) {
  fut_loop_t *loop = *state;
  nconns = 0;
  fx_exc_t exc;
  fx_exc_capture(loop, &exc);
  fut_server_opts_t o;
  fut_server_opts_init(&o);
  o.accept_retry_delay_ns = 50000000; /* 50 ms */
  fut_server_t *s;
  assert_int_equal(fut_create_server(loop, &echo_proto, conn_factory, NULL,
                                     "127.0.0.1", 0, &o, &s),
                   0);
  int port = fut_server_port(s);
  /* Clients first, then an fd limit that lets the server accept two. */
  int clients[NCLIENTS];
  for (int i = 0; i < NCLIENTS; i++)
    clients[i] = raw_connect(port);
  struct rlimit old, low;
  getrlimit(RLIMIT_NOFILE, &old);
  /* The smallest limit below which exactly two fd numbers are free. */
  int free_slots = 0, lim = 0;
  while (free_slots < 3 && lim < 65536)
    if (fcntl(lim++, F_GETFD) < 0)
      free_slots++;
  low = old;
  low.rlim_cur = (rlim_t)lim - 1;
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
  /* 300 ms under EMFILE: the server backs off instead of spinning. */
  double cpu0 = thread_cpu_s();
  uint64_t until = fut_loop_time(loop) + 300000000;
  int iterations = 0;
  while (fut_loop_time(loop) < until) {
    fut_loop_run_once(loop, 10000000);
    iterations++;
  }
  double cpu = thread_cpu_s() - cpu0;
  assert_true(nconns >= 1 && nconns < NCLIENTS);
  assert_true(exc.count >= 2 && exc.count <= 10); /* ~one per 50 ms */
  assert_int_equal(exc.err, -EMFILE);
  assert_non_null(strstr(exc.detail, "accepting again in 50 ms"));
  assert_true(iterations < 200);
  assert_true(cpu < 0.15); /* a busy loop would burn the whole 0.3 s */
  assert_true(fut_server_is_serving(s)); /* the listener stays */
  /* fds free up: the rest are accepted and served. */
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
  for (int i = 0; i < 200 && nconns < NCLIENTS; i++)
    fut_loop_run_once(loop, 10000000);
  assert_int_equal(nconns, NCLIENTS);
  for (int i = 0; i < NCLIENTS; i++) {
    echo_check(loop, clients[i]);
    close(clients[i]);
  }
  fut_server_close(s);
  for (int i = 0; i < 1000 && fut_server_active_connections(s); i++)
    fut_loop_run_once(loop, 1000000);
  assert_int_equal(fut_server_active_connections(s), 0);
  fut_server_unref(s);
  fut_loop_set_exception_handler(loop, NULL, NULL);
}

/* ---- serve_forever, wait_closed, close_clients -------------------------- */

struct forever_ctx {
  fut_server_t *s;
  int port;
  int rc_forever, rc_wait;
};

static int forever_task(void *arg) {
  struct forever_ctx *c = arg;
  c->rc_forever = fut_server_serve_forever(c->s);
  return 0;
}

static int waiter_task(void *arg) {
  struct forever_ctx *c = arg;
  c->rc_wait = fut_server_wait_closed(c->s);
  return 0;
}

static int forever_body(void *arg) {
  struct forever_ctx *c = arg;
  fut_loop_t *loop = fut_get_running_loop();
  fut_server_opts_t o;
  fut_server_opts_init(&o);
  o.start_serving = false;
  nconns = 0;
  assert_int_equal(fut_create_server(NULL, &echo_proto, conn_factory, NULL,
                                     "127.0.0.1", 0, &o, &c->s),
                   0);
  assert_false(fut_server_is_serving(c->s));
  fut_t *ft = spawn(loop, forever_task, c);
  fut_t *wt = spawn(loop, waiter_task, c);
  assert_int_equal(fut_sleep(1000000), 0);
  assert_true(fut_server_is_serving(c->s));
  /* a second serve_forever is refused */
  assert_int_equal(fut_server_serve_forever(c->s), -EBUSY);
  int fd = raw_connect(fut_server_port(c->s));
  for (int i = 0; i < 100 && !nconns; i++)
    fut_sleep(1000000);
  assert_int_equal(nconns, 1);
  /* cancelling serve_forever closes the server, not the connection */
  assert_true(fut_cancel(ft, NULL));
  assert_int_equal(fut_await(ft, NULL), 0);
  assert_int_equal(c->rc_forever, -ECANCELED);
  assert_false(fut_server_is_serving(c->s));
  assert_int_equal(fut_server_active_connections(c->s), 1);
  assert_false(fut_done(wt)); /* a connection is still up */
  assert_int_equal(fut_server_start_serving(c->s), FUT_E_CLOSED);
  /* close_clients aborts it: wait_closed returns */
  fut_server_close_clients(c->s);
  assert_int_equal(fut_await(wt, NULL), 0);
  assert_int_equal(c->rc_wait, 0);
  assert_int_equal(conns[0].lost, 1);
  assert_int_equal(fut_server_wait_closed(c->s), 0); /* at once now */
  fut_unref(ft);
  fut_unref(wt);
  close(fd);
  fut_server_unref(c->s);
  return 0;
}

static void test_serve_forever_wait_closed(void **state) {
  struct forever_ctx c = {0};
  assert_int_equal(run_main(*state, forever_body, &c), 0);
}

static int cancel_wait_body(void *arg) {
  (void)arg;
  fut_server_t *s;
  assert_int_equal(fut_create_server(NULL, &echo_proto, conn_factory, NULL,
                                     "127.0.0.1", 0, NULL, &s),
                   0);
  struct forever_ctx c = {.s = s};
  fut_t *wt = spawn(fut_get_running_loop(), waiter_task, &c);
  assert_int_equal(fut_sleep(1000000), 0);
  fut_cancel(wt, NULL);
  assert_int_equal(fut_await(wt, NULL), 0);
  assert_int_equal(c.rc_wait, -ECANCELED);
  fut_unref(wt);
  fut_server_close(s);
  assert_int_equal(fut_server_wait_closed(s), 0);
  fut_server_unref(s);
  return 0;
}

static void test_wait_closed_cancel(void **state) {
  assert_int_equal(run_main(*state, cancel_wait_body, NULL), 0);
}

/* ---- wait_closed for callback code
 * ------------------------------------------- */

static void test_wait_closed_future(void **state) {
  fut_loop_t *loop = *state;
  nconns = 0;
  fut_server_t *s;
  assert_int_equal(fut_create_server(loop, &echo_proto, conn_factory, NULL,
                                     "127.0.0.1", 0, NULL, &s),
                   0);
  int fd = raw_connect(fut_server_port(s));
  echo_check(loop, fd);
  fut_t *f, *g;
  assert_int_equal(fut_server_wait_closed_future(s, &f), 0);
  assert_int_equal(fut_server_wait_closed_future(s, &g), 0);
  fut_server_close(s);
  drain(loop);
  assert_false(fut_done(f));        /* a connection is still up */
  assert_true(fut_cancel(g, NULL)); /* one waiter gives up: f still waits */
  close(fd);
  assert_true(fx_run_until(loop, fx_fut_done, f, 2000000000ull));
  assert_int_equal(fut_result(f, NULL), 0);
  fut_unref(f);
  fut_unref(g);
  /* once closed and empty: done at once */
  assert_int_equal(fut_server_wait_closed_future(s, &f), 0);
  assert_true(fut_done(f));
  fut_unref(f);
  assert_int_equal(fut_server_wait_closed_future(NULL, &f), -EINVAL);
  assert_null(f);
  fut_server_unref(s);
}

/* ---- a factory that refuses ---------------------------------------------- */

static int refusing_factory(void *farg, void **arg) {
  (void)arg;
  (*(int *)farg)++;
  return -EPERM;
}

static void test_factory_refuses(void **state) {
  fut_loop_t *loop = *state;
  int asked = 0;
  fut_server_t *s;
  assert_int_equal(fut_create_server(loop, &echo_proto, refusing_factory,
                                     &asked, "127.0.0.1", 0, NULL, &s),
                   0);
  int fd = raw_connect(fut_server_port(s));
  char b;
  ssize_t r = -1;
  fcntl(fd, F_SETFL, O_NONBLOCK);
  for (int i = 0; i < 2000 && r != 0; i++) {
    r = read(fd, &b, 1);
    if (r != 0)
      fut_loop_run_once(loop, 1000000);
  }
  assert_int_equal(r, 0); /* closed by the server */
  assert_int_equal(asked, 1);
  assert_int_equal(fut_server_active_connections(s), 0);
  close(fd);
  fut_server_close(s);
  fut_server_unref(s);
}

/* ---- loop close with connections open -------------------------------------
 */

static void test_loop_close_loses_connections(void **state) {
  fut_loop_t *loop = *state;
  nconns = 0;
  fut_server_t *s;
  assert_int_equal(fut_create_server(loop, &echo_proto, conn_factory, NULL,
                                     "127.0.0.1", 0, NULL, &s),
                   0);
  int fd = raw_connect(fut_server_port(s));
  echo_check(loop, fd);
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  conn_t extra = {0};
  assert_int_equal(
      fut_transport_from_fd(loop, sv[0], &echo_proto, &extra, NULL), 0);
  assert_int_equal(fut_loop_close(loop), 0);
  /* every connection got its connection_lost, every fd went back */
  assert_int_equal(conns[0].lost, 1);
  assert_int_equal(conns[0].lost_err, FUT_E_CLOSED);
  assert_int_equal(extra.lost, 1);
  assert_int_equal(extra.made, 0); /* lost before it was made */
  assert_false(fut_server_is_serving(s));
  fut_server_unref(s);
  close(fd);
  close(sv[1]);
}

/* ---- closing an accepted socket whose file lives on -----------------------
 * An accepted transport closes its fd without EPOLL_CTL_DEL (the close
 * leaves epoll).  When the program dup'd that fd, the file and its epoll
 * registration live on: the loop must see the stale events, rebuild its
 * epoll instance once, and neither spin nor lose the other connections. */

static fut_transport_t *dup_t;
static int dup_fd = -1;

static void dup_made(fut_transport_t *t, void *arg) {
  ((conn_t *)arg)->made++;
  if (dup_t)
    return; /* only the first connection's fd is copied */
  dup_t = t;
  dup_fd = fcntl(fut_transport_fd(t), F_DUPFD_CLOEXEC, 0);
}

static const fut_protocol_t dup_proto = {.connection_made = dup_made,
                                         .data_received = c_echo,
                                         .connection_lost = c_lost};

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void test_close_accepted_with_dup(void **state) {
  fut_loop_t *loop = *state;
  nconns = 0;
  dup_t = NULL;
  dup_fd = -1;
  fut_server_t *s;
  assert_int_equal(fut_create_server(loop, &dup_proto, conn_factory, NULL,
                                     "127.0.0.1", 0, NULL, &s),
                   0);
  int a = raw_connect(fut_server_port(s));
  for (int i = 0; i < 5000 && !dup_t; i++)
    fut_loop_run_once(loop, 1000000);
  assert_non_null(dup_t);
  assert_true(dup_fd >= 0);
  fut_transport_close(dup_t);
  for (int i = 0; i < 5000 && !conns[0].lost; i++)
    fut_loop_run_once(loop, 1000000);
  assert_int_equal(conns[0].lost, 1);
  /* The peer writes to the file only dup_fd holds now. */
  assert_int_equal(write(a, "zz", 2), 2);
  /* No busy loop: ten idle polls of 20 ms take at least 100 ms (a stale
   * registration left in place would return at once every time). */
  uint64_t t0 = mono_ns();
  for (int i = 0; i < 10; i++)
    fut_loop_run_once(loop, 20000000);
  assert_true(mono_ns() - t0 >= 100000000u);
  /* A new connection (maybe on the same fd number) echoes. */
  int b = raw_connect(fut_server_port(s));
  echo_check(loop, b);
  assert_int_equal(conns[0].lost, 1);
  close(b);
  close(a);
  close(dup_fd);
  fut_server_close_clients(s);
  for (int i = 0; i < 5000 && fut_server_active_connections(s) > 0; i++)
    fut_loop_run_once(loop, 1000000);
  fut_server_close(s);
  fut_server_unref(s);
}

/* ---- BufferedProtocol and writev ------------------------------------------
 */

struct bufproto {
  char buf[7]; /* small on purpose: many updates */
  char got[64];
  size_t n;
  int updates;
};

static void *bp_get(fut_transport_t *t, size_t hint, size_t *cap, void *arg) {
  (void)t;
  assert_int_equal(hint, 65536);
  struct bufproto *b = arg;
  *cap = sizeof b->buf;
  return b->buf;
}

static void bp_updated(fut_transport_t *t, size_t n, void *arg) {
  (void)t;
  struct bufproto *b = arg;
  assert_true(n <= sizeof b->buf);
  memcpy(b->got + b->n, b->buf, n);
  b->n += n;
  b->updates++;
}

static const fut_protocol_t buffered_proto = {.get_buffer = bp_get,
                                              .buffer_updated = bp_updated};

static void test_buffered_protocol_and_writev(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  struct bufproto b = {0};
  fut_transport_t *t;
  assert_int_equal(fut_transport_from_fd(loop, sv[0], &buffered_proto, &b, &t),
                   0);
  const char msg[] = "buffered protocol: 33 bytes long.";
  assert_int_equal(write(sv[1], msg, 33), 33);
  for (int i = 0; i < 100 && b.n < 33; i++)
    fut_loop_run_once(loop, 1000000);
  assert_int_equal(b.n, 33);
  assert_memory_equal(b.got, msg, 33);
  assert_true(b.updates >= 5);
  struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cdef", 4}};
  assert_int_equal(fut_transport_writev(t, iov, 3), 0);
  char out[6];
  assert_int_equal(read(sv[1], out, 6), 6);
  assert_memory_equal(out, "abcdef", 6);
  struct iovec bad = {NULL, 3};
  assert_int_equal(fut_transport_writev(t, &bad, 1), -EINVAL);
  fut_transport_abort(t);
  drain(loop);
  fut_transport_unref(t);
  close(sv[1]);
}

/* ---- create_connection cut by wait_for / a timeout scope ------------------
 */

/* A loopback listener that never accepts, its backlog full: a further
 * connect stays in SYN_SENT (the kernel drops its SYNs). */
struct stuck {
  int listener, fillers[4], nfill, port;
};

static void stuck_open(struct stuck *st) {
  st->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET};
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sin;
  assert_int_equal(bind(st->listener, (struct sockaddr *)&sin, len), 0);
  assert_int_equal(listen(st->listener, 0), 0);
  getsockname(st->listener, (struct sockaddr *)&sin, &len);
  st->port = ntohs(sin.sin_port);
  st->nfill = 0;
  for (int i = 0; i < 4; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    connect(fd, (struct sockaddr *)&sin, sizeof sin);
    st->fillers[st->nfill++] = fd;
  }
  usleep(20000);
}

static void stuck_close(struct stuck *st) {
  for (int i = 0; i < st->nfill; i++)
    close(st->fillers[i]);
  close(st->listener);
}

static int connect_task(void *arg) {
  struct stuck *st = arg;
  fut_reader_t *r;
  fut_writer_t *w;
  int err = fut_open_connection("127.0.0.1", st->port, NULL, NULL, &r, &w);
  if (!err) {
    fut_reader_unref(r);
    fut_writer_unref(w);
  }
  return err;
}

static int wait_for_body(void *arg) {
  struct stuck *st = arg;
  fut_loop_t *loop = fut_get_running_loop();
  uint64_t t0 = fut_loop_time(loop);
  fut_t *t = spawn(loop, connect_task, st), *wf;
  assert_int_equal(fut_wait_for(t, 100000000, &wf), 0);
  assert_int_equal(fut_await(wf, NULL), -ETIMEDOUT);
  uint64_t el = fut_loop_time(loop) - t0;
  /* Cut at the deadline, not after a SYN retry (1 s, 3 s, ...).  The
   * bounds are loose: the tick's cached clock may lag on a loaded
   * machine, and sanitizer builds are slow. */
  assert_true(el >= 50000000 && el < 5000000000ull);
  assert_true(fut_cancelled(t));
  fut_unref(wf);
  fut_unref(t);
  /* the same through a timeout scope around the await itself */
  fut_timeout_t *to;
  assert_int_equal(fut_timeout_enter(50000000, &to), 0);
  int err = connect_task(st);
  assert_int_equal(fut_timeout_exit(to, err), -ETIMEDOUT);
  return 0;
}

static void test_connect_timeout_wait_for(void **state) {
  struct stuck st;
  stuck_open(&st);
  assert_int_equal(run_main(*state, wait_for_body, &st), 0);
  stuck_close(&st);
}

/* ---- happy eyeballs -------------------------------------------------------
 */

struct he_ctx {
  int port;
  uint64_t delay;
  int rc;
  uint64_t elapsed;
};

static int he_body(void *arg) {
  struct he_ctx *c = arg;
  fut_connect_opts_t o;
  fut_connect_opts_init(&o);
  o.happy_eyeballs_delay_ns = c->delay;
  fut_transport_t *t;
  conn_t me = {0};
  uint64_t t0 = fut_loop_time(fut_get_running_loop());
  c->rc = fut_create_connection(&echo_proto, &me, "localhost", c->port, &o, &t);
  c->elapsed = fut_loop_time(fut_get_running_loop()) - t0;
  if (!c->rc) {
    assert_int_equal(me.made, 1);
    fut_transport_abort(t);
    fut_transport_unref(t);
    fut_sleep(1000000);
  }
  return 0;
}

static void test_happy_eyeballs_localhost(void **state) {
  fut_loop_t *loop = *state;
  /* Only one family listens: the other address fails or never answers,
   * and the connection still comes up. */
  nconns = 0;
  fut_server_t *s;
  assert_int_equal(fut_create_server(loop, &echo_proto, conn_factory, NULL,
                                     "127.0.0.1", 0, NULL, &s),
                   0);
  struct he_ctx c = {.port = fut_server_port(s), .delay = 20000000};
  assert_int_equal(run_main(loop, he_body, &c), 0);
  assert_int_equal(c.rc, 0);
  c.delay = 0; /* asyncio's default: one after the other */
  assert_int_equal(run_main(loop, he_body, &c), 0);
  assert_int_equal(c.rc, 0);
  fut_server_close(s);
  for (int i = 0; i < 1000 && fut_server_active_connections(s); i++)
    fut_loop_run_once(loop, 1000000);
  fut_server_unref(s);
}

/* ---- one host name, several listening sockets
 * -------------------------------- */

static int two_families_body(void *arg) {
  (void)arg;
  nconns = 0;
  fut_server_t *s;
  /* "localhost" is resolved on the DNS pool (a task may wait for it). */
  assert_int_equal(fut_create_server(NULL, &echo_proto, conn_factory, NULL,
                                     "localhost", 0, NULL, &s),
                   0);
  int fds[4];
  size_t n = fut_server_sockets(s, fds, 4);
  assert_true(n >= 1 && n <= 2);
  int port = fut_server_port(s);
  for (size_t i = 0; i < n; i++) {
    /* every socket has the same port, and each accepts */
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fds[i], (struct sockaddr *)&ss, &len), 0);
    int fam = ss.ss_family;
    int p = fam == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                           : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    assert_int_equal(p, port);
    int c = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_int_equal(fut_sock_connect(c, (struct sockaddr *)&ss, len), 0);
    assert_int_equal(fut_sock_sendall(c, "hi", 2), 0);
    char b[2];
    size_t got = 0, k;
    while (got < 2) {
      assert_int_equal(fut_sock_recv_into(c, b + got, 2 - got, &k), 0);
      assert_true(k > 0);
      got += k;
    }
    assert_memory_equal(b, "hi", 2);
    close(c);
  }
  assert_int_equal(nconns, (int)n);
  fut_server_close(s);
  assert_int_equal(fut_server_wait_closed(s), 0);
  fut_server_unref(s);
  return 0;
}

static void test_host_name_every_address(void **state) {
  assert_int_equal(run_main(*state, two_families_body, NULL), 0);
}

/* ---- loop.sendfile on a transport -----------------------------------------
 */

struct sf_ctx {
  fut_transport_t *t;
  int file;
  size_t sent;
  int rc, write_rc;
};

static int sf_task(void *arg) {
  struct sf_ctx *c = arg;
  off_t off = 0;
  c->rc = fut_transport_sendfile(c->t, c->file, &off, 0, &c->sent);
  return 0;
}

static int sf_body(void *arg) {
  int *sv = arg;
  enum { PREFIX = 300000, FILESZ = 1 << 20 };
  char path[] = "/tmp/fut-sendfile-XXXXXX";
  int file = mkstemp(path);
  assert_true(file >= 0);
  unlink(path);
  unsigned char *content = malloc(FILESZ);
  for (size_t i = 0; i < FILESZ; i++)
    content[i] = (unsigned char)(i * 7 + 3);
  assert_int_equal(write(file, content, FILESZ), FILESZ);
  conn_t me = {0};
  struct sf_ctx c = {.file = file};
  assert_int_equal(fut_transport_from_fd(fut_get_running_loop(), sv[0],
                                         &echo_proto, &me, &c.t),
                   0);
  /* Bytes already buffered go first. */
  unsigned char *prefix = malloc(PREFIX);
  memset(prefix, 'p', PREFIX);
  assert_int_equal(fut_transport_write(c.t, prefix, PREFIX), 0);
  assert_true(fut_transport_get_write_buffer_size(c.t) > 0);
  fut_t *st = spawn(fut_get_running_loop(), sf_task, &c);
  assert_int_equal(fut_sleep(1000000), 0);
  assert_int_equal(fut_transport_write(c.t, "x", 1), -EBUSY);
  size_t total = PREFIX + FILESZ, got = 0;
  unsigned char *in = malloc(total);
  while (got < total) {
    ssize_t n = read(sv[1], in + got, total - got);
    if (n > 0)
      got += (size_t)n;
    else
      assert_int_equal(fut_sleep(100000), 0);
  }
  assert_int_equal(fut_await(st, NULL), 0);
  fut_unref(st);
  assert_int_equal(c.rc, 0);
  assert_int_equal(c.sent, FILESZ);
  assert_memory_equal(in, prefix, PREFIX);
  assert_memory_equal(in + PREFIX, content, FILESZ);
  assert_int_equal(fut_transport_write(c.t, "after", 5), 0);
  fut_transport_close(c.t);
  assert_int_equal(fut_transport_sendfile(c.t, file, NULL, 0, NULL), -EPIPE);
  fut_transport_unref(c.t);
  fut_sleep(1000000);
  close(file);
  free(content);
  free(prefix);
  free(in);
  return 0;
}

static void test_transport_sendfile(void **state) {
  int sv[2];
  assert_int_equal(
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
      0);
  assert_int_equal(run_main(*state, sf_body, sv), 0);
  close(sv[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_accept_emfile_backs_off),
      FX_LOOP_TEST(test_serve_forever_wait_closed),
      FX_LOOP_TEST(test_wait_closed_cancel),
      FX_LOOP_TEST(test_wait_closed_future),
      FX_LOOP_TEST(test_factory_refuses),
      FX_LOOP_TEST(test_loop_close_loses_connections),
      FX_LOOP_TEST(test_close_accepted_with_dup),
      FX_LOOP_TEST(test_buffered_protocol_and_writev),
      FX_LOOP_TEST(test_connect_timeout_wait_for),
      FX_LOOP_TEST(test_happy_eyeballs_localhost),
      FX_LOOP_TEST(test_transport_sendfile),
      FX_LOOP_TEST(test_host_name_every_address),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
