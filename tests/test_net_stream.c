/* Streams (asyncio's open_connection / start_server, StreamReader,
 * StreamWriter) on loopback TCP, Unix sockets and socketpairs: echo, the
 * reader's calls and their error cases with data (IncompleteReadError,
 * LimitOverrunError), drain under backpressure, cancel during each await,
 * EOF and reset, 1,000 concurrent connections. */
#include "fixture.h"
#include "task_helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- an echo server: one task per connection ------------------------------
 */

static int echo_handler(fut_reader_t *r, fut_writer_t *w, void *arg) {
  int *served = arg;
  if (served)
    (*served)++;
  char buf[8192];
  size_t n;
  int err;
  while (!(err = fut_reader_read_into(r, buf, sizeof buf, &n)) && n)
    if ((err = fut_writer_write(w, buf, n)) || (err = fut_writer_drain(w)))
      break;
  return err == -ECONNRESET ? 0 : err;
}

static fut_server_t *echo_server(fut_loop_t *loop, int *served) {
  fut_server_t *s;
  assert_int_equal(fut_start_server(loop, echo_handler, served, "127.0.0.1", 0,
                                    NULL, NULL, &s),
                   0);
  return s;
}

static void stop_server(fut_loop_t *loop, fut_server_t *s) {
  fut_server_close(s);
  for (int i = 0; i < 1000 && fut_server_active_connections(s); i++)
    fut_loop_run_once(loop, 1000000);
  assert_int_equal(fut_server_active_connections(s), 0);
  fut_server_unref(s);
  drain(loop);
}

struct client {
  int port;
  size_t total; /* bytes to push through */
  int rc;
};

static int echo_client(void *arg) {
  struct client *c = arg;
  fut_reader_t *r;
  fut_writer_t *w;
  int err = fut_open_connection("127.0.0.1", c->port, NULL, NULL, &r, &w);
  if (err)
    return err;
  assert_int_equal(fut_writer_write(w, "hello\n", 6), 0);
  void *line;
  size_t len;
  assert_int_equal(fut_reader_readline(r, &line, &len), 0);
  assert_int_equal(len, 6);
  assert_memory_equal(line, "hello\n", 6);
  free(line);
  struct sockaddr_in peer;
  socklen_t pl = sizeof peer;
  assert_int_equal(fut_transport_get_extra_info(fut_writer_transport(w),
                                                FUT_EXTRA_PEERNAME, &peer, &pl),
                   0);
  assert_int_equal(ntohs(peer.sin_port), c->port);
  fut_writer_close(w);
  assert_int_equal(fut_writer_wait_closed(w), 0);
  assert_true(fut_writer_is_closing(w));
  fut_reader_unref(r);
  fut_writer_unref(w);
  return 0;
}

static void test_open_connection_echo(void **state) {
  fut_loop_t *loop = *state;
  int served = 0;
  fut_server_t *s = echo_server(loop, &served);
  struct client c = {.port = fut_server_port(s)};
  assert_int_equal(run_main(loop, echo_client, &c), 0);
  assert_int_equal(served, 1);
  stop_server(loop, s);
}

/* ---- the reader's calls over a socketpair ---------------------------------
 */

struct pair_ctx {
  int peer; /* the raw end the test writes to */
  fut_reader_t *r;
  fut_writer_t *w;
};

static void open_pair(fut_loop_t *loop, struct pair_ctx *p,
                      const fut_stream_opts_t *o) {
  int sv[2];
  assert_int_equal(
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
      0);
  assert_int_equal(fut_stream_from_fd(loop, sv[0], o, &p->r, &p->w), 0);
  p->peer = sv[1];
}

static void close_pair(fut_loop_t *loop, struct pair_ctx *p) {
  fut_reader_unref(p->r);
  fut_writer_unref(p->w);
  close(p->peer);
  drain(loop);
}

static int reads_body(void *arg) {
  struct pair_ctx *p = arg;
  void *d;
  size_t n;
  /* readexactly across several arrivals */
  assert_int_equal(write(p->peer, "abc", 3), 3);
  assert_int_equal(fut_sleep(1000000), 0);
  assert_int_equal(write(p->peer, "defgh", 5), 5);
  assert_int_equal(fut_reader_readexactly(p->r, 6, &d, &n), 0);
  assert_int_equal(n, 6);
  assert_memory_equal(d, "abcdef", 6);
  free(d);
  /* read(n) returns what is there */
  assert_int_equal(fut_reader_read(p->r, 100, &d, &n), 0);
  assert_int_equal(n, 2);
  assert_memory_equal(d, "gh", 2);
  free(d);
  /* readuntil with a multi-byte separator */
  assert_int_equal(write(p->peer, "key=value\r\n\r\nrest", 17), 17);
  assert_int_equal(fut_reader_readuntil(p->r, "\r\n\r\n", 4, &d, &n), 0);
  assert_int_equal(n, 13);
  assert_memory_equal(d, "key=value\r\n\r\n", 13);
  free(d);
  assert_int_equal(fut_reader_buffered(p->r), 4);
  /* EOF inside readexactly: IncompleteReadError with the partial bytes */
  shutdown(p->peer, SHUT_WR);
  assert_int_equal(fut_reader_readexactly(p->r, 10, &d, &n),
                   FUT_E_INCOMPLETE_READ);
  assert_int_equal(n, 4);
  assert_memory_equal(d, "rest", 4);
  free(d);
  assert_true(fut_reader_at_eof(p->r));
  /* after EOF: 0 bytes, and readline gives the empty partial line */
  assert_int_equal(fut_reader_read(p->r, 10, &d, &n), 0);
  assert_int_equal(n, 0);
  assert_null(d);
  assert_int_equal(fut_reader_readline(p->r, &d, &n), 0);
  assert_int_equal(n, 0);
  return 0;
}

static void test_reader_calls(void **state) {
  fut_loop_t *loop = *state;
  struct pair_ctx p;
  open_pair(loop, &p, NULL);
  assert_int_equal(run_main(loop, reads_body, &p), 0);
  close_pair(loop, &p);
}

static int limit_body(void *arg) {
  struct pair_ctx *p = arg;
  void *d;
  size_t n;
  /* 40 bytes without the separator, limit 16: LimitOverrunError, data
   * stays readable. */
  char big[40];
  memset(big, 'x', sizeof big);
  assert_int_equal(write(p->peer, big, sizeof big), (ssize_t)sizeof big);
  assert_int_equal(fut_reader_readuntil(p->r, "|", 1, &d, &n),
                   FUT_E_LIMIT_OVERRUN);
  assert_null(d);
  assert_true(n > 16);
  assert_int_equal(fut_reader_buffered(p->r), 40);
  assert_int_equal(fut_reader_readexactly(p->r, 40, &d, &n), 0);
  assert_memory_equal(d, big, 40);
  free(d);
  /* separator found beyond the limit: also an overrun, consumed = offset */
  assert_int_equal(write(p->peer, big, 20), 20);
  assert_int_equal(write(p->peer, "|ok|", 4), 4);
  assert_int_equal(fut_sleep(1000000), 0);
  assert_int_equal(fut_reader_readuntil(p->r, "|", 1, &d, &n),
                   FUT_E_LIMIT_OVERRUN);
  assert_int_equal(n, 20);
  assert_int_equal(fut_reader_buffered(p->r), 24);
  /* readline drops a long line through its newline (asyncio) */
  void *skip;
  assert_int_equal(fut_reader_readexactly(p->r, 24, &skip, &n), 0);
  free(skip);
  assert_int_equal(write(p->peer, big, 30), 30);
  assert_int_equal(write(p->peer, "\nshort\n", 7), 7);
  assert_int_equal(fut_sleep(1000000), 0);
  assert_int_equal(fut_reader_readline(p->r, &d, &n), FUT_E_LIMIT_OVERRUN);
  assert_int_equal(fut_reader_readline(p->r, &d, &n), 0);
  assert_int_equal(n, 6);
  assert_memory_equal(d, "short\n", 6);
  free(d);
  /* an empty separator is refused */
  assert_int_equal(fut_reader_readuntil(p->r, "", 0, &d, &n), -EINVAL);
  return 0;
}

static void test_readuntil_limit_overrun(void **state) {
  fut_loop_t *loop = *state;
  fut_stream_opts_t o;
  fut_stream_opts_init(&o);
  o.limit = 16;
  struct pair_ctx p;
  open_pair(loop, &p, &o);
  assert_int_equal(run_main(loop, limit_body, &p), 0);
  close_pair(loop, &p);
}

/* ---- cancellation and concurrency -----------------------------------------
 */

static int read_waiter(void *arg) {
  struct pair_ctx *p = arg;
  char buf[16];
  size_t n;
  return fut_reader_read_into(p->r, buf, sizeof buf, &n);
}

static int cancel_body(void *arg) {
  struct pair_ctx *p = arg;
  fut_loop_t *loop = fut_get_running_loop();
  fut_t *t = spawn(loop, read_waiter, p);
  assert_int_equal(fut_sleep(1000000), 0);
  /* a second reader while one waits: -EBUSY */
  char buf[16];
  size_t n;
  assert_int_equal(fut_reader_read_into(p->r, buf, sizeof buf, &n), -EBUSY);
  assert_true(fut_cancel(t, NULL));
  assert_int_equal(fut_await(t, NULL), -ECANCELED);
  fut_unref(t);
  /* nothing was consumed: the next read gets all of it */
  assert_int_equal(write(p->peer, "data", 4), 4);
  assert_int_equal(fut_reader_read_into(p->r, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 4);
  assert_memory_equal(buf, "data", 4);
  return 0;
}

/* A cancel that arrives in the same loop iteration as the bytes a waiting
 * read_into receives straight into its buffer: the read returns the bytes
 * (they left the socket) and the next suspension delivers the cancel. */
struct race {
  struct pair_ctx *p;
  size_t got;
  int read_rc, next_rc;
  char buf[16];
};

static int race_reader(void *arg) {
  struct race *r = arg;
  r->read_rc = fut_reader_read_into(r->p->r, r->buf, sizeof r->buf, &r->got);
  r->next_rc = fut_sleep(1000000);
  return 0;
}

static void cancel_cb(void *arg) {
  fut_cancel(arg, NULL);
}

static int race_body(void *arg) {
  struct pair_ctx *p = arg;
  struct race r = {.p = p};
  fut_t *t = spawn(fut_get_running_loop(), race_reader, &r);
  assert_int_equal(fut_sleep(1000000), 0); /* r waits, nothing buffered */
  assert_int_equal(write(p->peer, "race", 4), 4);
  /* A timer due now: in the next iteration the poll's read event is
   * queued before expired timers, so the receive runs first and the
   * cancel right after it, before the reader resumes. */
  fut_handle_t *h;
  assert_int_equal(
      fut_loop_call_later(fut_get_running_loop(), 0, cancel_cb, t, &h), 0);
  fut_await(t, NULL);
  fut_handle_unref(h);
  fut_unref(t);
  /* This is the order the loop guarantees (DESIGN.md section 3). */
  assert_int_equal(r.read_rc, 0);
  assert_int_equal(r.got, 4); /* the bytes were handed over */
  assert_memory_equal(r.buf, "race", 4);
  assert_int_equal(r.next_rc, -ECANCELED); /* and the cancel delivered */
  return 0;
}

static void test_cancel_with_bytes_in_flight(void **state) {
  fut_loop_t *loop = *state;
  struct pair_ctx p;
  open_pair(loop, &p, NULL);
  assert_int_equal(run_main(loop, race_body, &p), 0);
  close_pair(loop, &p);
}

static void test_cancel_read_consumes_nothing(void **state) {
  fut_loop_t *loop = *state;
  struct pair_ctx p;
  open_pair(loop, &p, NULL);
  assert_int_equal(run_main(loop, cancel_body, &p), 0);
  close_pair(loop, &p);
}

static int outside_body(void *arg) {
  (void)arg;
  return 0;
}

static void test_not_in_task(void **state) {
  fut_loop_t *loop = *state;
  struct pair_ctx p;
  open_pair(loop, &p, NULL);
  char buf[4];
  size_t n = 7;
  assert_int_equal(fut_reader_read_into(p.r, buf, 4, &n), FUT_E_NOT_IN_TASK);
  assert_int_equal(n, 0);
  assert_int_equal(fut_writer_drain(p.w), FUT_E_NOT_IN_TASK);
  fut_reader_t *r = (fut_reader_t *)1;
  fut_writer_t *w = (fut_writer_t *)1;
  assert_int_equal(fut_open_connection("127.0.0.1", 1, NULL, NULL, &r, &w),
                   FUT_E_NOT_IN_TASK);
  assert_null(r);
  assert_null(w);
  assert_int_equal(run_main(loop, outside_body, NULL), 0);
  close_pair(loop, &p);
}

static int drain_waiter(void *arg) {
  struct pair_ctx *p = arg;
  return fut_writer_drain(p->w);
}

static int closed_waiter(void *arg) {
  struct pair_ctx *p = arg;
  return fut_writer_wait_closed(p->w);
}

/* drain and wait_closed cancelled while they wait: -ECANCELED, and the
 * writer still works (the peer reads everything afterwards). */
static int cancel_drain_body(void *arg) {
  struct pair_ctx *p = arg;
  fut_loop_t *loop = fut_get_running_loop();
  static char chunk[1 << 20];
  memset(chunk, 'q', sizeof chunk);
  assert_int_equal(fut_writer_write(p->w, chunk, sizeof chunk), 0);
  fut_t *d = spawn(loop, drain_waiter, p);
  fut_t *c = spawn(loop, closed_waiter, p);
  assert_int_equal(fut_sleep(2000000), 0);
  assert_false(fut_done(d)); /* the peer reads nothing: paused */
  assert_false(fut_done(c));
  fut_cancel(d, NULL);
  fut_cancel(c, NULL);
  assert_int_equal(fut_await(d, NULL), -ECANCELED);
  assert_int_equal(fut_await(c, NULL), -ECANCELED);
  fut_unref(d);
  fut_unref(c);
  /* the peer drains it all: a new drain returns */
  size_t got = 0;
  static char buf[65536]; /* static: it would fill a default task stack */
  fut_t *d2 = spawn(loop, drain_waiter, p);
  while (got < sizeof chunk) {
    ssize_t n = read(p->peer, buf, sizeof buf);
    if (n > 0)
      got += (size_t)n;
    else
      assert_int_equal(fut_sleep(100000), 0);
  }
  assert_int_equal(fut_await(d2, NULL), 0);
  fut_unref(d2);
  return 0;
}

static void test_cancel_drain_and_wait_closed(void **state) {
  fut_loop_t *loop = *state;
  struct pair_ctx p;
  open_pair(loop, &p, NULL);
  assert_int_equal(run_main(loop, cancel_drain_body, &p), 0);
  close_pair(loop, &p);
}

/* ---- drain under backpressure: 16 MiB through the echo server -------------
 */

enum { BIG = 16 << 20 };

struct big_ctx {
  fut_reader_t *r;
  fut_writer_t *w;
  unsigned char *src;
};

static int big_reader(void *arg) {
  struct big_ctx *c = arg;
  unsigned char *dst = malloc(BIG);
  size_t got = 0;
  while (got < BIG) {
    size_t n;
    int err = fut_reader_read_into(c->r, dst + got, BIG - got, &n);
    assert_int_equal(err, 0);
    assert_true(n > 0);
    got += n;
  }
  assert_memory_equal(dst, c->src, BIG);
  free(dst);
  return 0;
}

static int big_body(void *arg) {
  int port = *(int *)arg;
  struct big_ctx c;
  fut_stream_opts_t o;
  fut_stream_opts_init(&o);
  o.write_high = 65536;
  assert_int_equal(fut_open_connection("127.0.0.1", port, NULL, &o, &c.r, &c.w),
                   0);
  c.src = malloc(BIG);
  for (size_t i = 0; i < BIG; i++)
    c.src[i] = (unsigned char)(i ^ (i >> 11));
  fut_t *rt = spawn(fut_get_running_loop(), big_reader, &c);
  size_t max_buffered = 0;
  for (size_t off = 0; off < BIG; off += 32768) {
    assert_int_equal(fut_writer_write(c.w, c.src + off, 32768), 0);
    size_t b = fut_transport_get_write_buffer_size(fut_writer_transport(c.w));
    if (b > max_buffered)
      max_buffered = b;
    assert_int_equal(fut_writer_drain(c.w), 0);
    /* drain returned: not above the high-water mark */
    assert_true(fut_transport_get_write_buffer_size(
                    fut_writer_transport(c.w)) <= 65536);
  }
  assert_int_equal(fut_await(rt, NULL), 0);
  fut_unref(rt);
  assert_true(max_buffered > 65536); /* the writer was paused at least once */
  free(c.src);
  fut_writer_close(c.w);
  fut_writer_wait_closed(c.w);
  fut_reader_unref(c.r);
  fut_writer_unref(c.w);
  return 0;
}

static void test_large_transfer_drain(void **state) {
  fut_loop_t *loop = *state;
  fut_server_t *s = echo_server(loop, NULL);
  int port = fut_server_port(s);
  assert_int_equal(run_main(loop, big_body, &port), 0);
  stop_server(loop, s);
}

/* ---- errors
 * ------------------------------------------------------------------ */

static int refused_body(void *arg) {
  int port = *(int *)arg;
  fut_reader_t *r;
  fut_writer_t *w;
  assert_int_equal(fut_open_connection("127.0.0.1", port, NULL, NULL, &r, &w),
                   -ECONNREFUSED);
  assert_null(r);
  assert_non_null(strstr(fut_last_error(), "127.0.0.1"));
  return 0;
}

static void test_connect_refused(void **state) {
  fut_loop_t *loop = *state;
  /* a port nobody listens on: bind one, note it, close it */
  fut_server_t *s = echo_server(loop, NULL);
  int port = fut_server_port(s);
  stop_server(loop, s);
  assert_int_equal(run_main(loop, refused_body, &port), 0);
}

/* A handler that records how its read ended. */
static int recording_handler(fut_reader_t *r, fut_writer_t *w, void *arg) {
  int *outcome = arg;
  (void)w;
  char buf[64];
  size_t n;
  int err;
  while (!(err = fut_reader_read_into(r, buf, sizeof buf, &n)) && n)
    ;
  *outcome = err ? err : 1; /* 1: a clean EOF */
  return 0;
}

static void test_peer_reset_reaches_reader(void **state) {
  fut_loop_t *loop = *state;
  int outcome = 0;
  fut_server_t *s;
  assert_int_equal(fut_start_server(loop, recording_handler, &outcome,
                                    "127.0.0.1", 0, NULL, NULL, &s),
                   0);
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)fut_server_port(s))};
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(c, (struct sockaddr *)&sin, sizeof sin), 0);
  assert_int_equal(write(c, "x", 1), 1);
  for (int i = 0; i < 20; i++)
    fut_loop_run_once(loop, 1000000);
  struct linger lg = {1, 0}; /* close sends RST */
  setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(c);
  for (int i = 0; i < 2000 && !outcome; i++)
    fut_loop_run_once(loop, 1000000);
  assert_int_equal(outcome, -ECONNRESET);
  stop_server(loop, s);
}

static void test_unix_server_path(void **state) {
  fut_loop_t *loop = *state;
  char path[64];
  snprintf(path, sizeof path, "/tmp/fut-test-%d.sock", (int)getpid());
  fut_server_t *s;
  assert_int_equal(
      fut_start_unix_server(loop, echo_handler, NULL, path, NULL, NULL, &s), 0);
  assert_int_equal(access(path, F_OK), 0);
  /* a second server on the same live path is refused */
  fut_server_t *s2;
  assert_int_equal(
      fut_start_unix_server(loop, echo_handler, NULL, path, NULL, NULL, &s2),
      -EADDRINUSE);
  assert_null(s2);
  stop_server(loop, s);
  assert_int_equal(access(path, F_OK), -1); /* cleaned up */
  /* a stale socket file (no server behind it) is replaced */
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un un = {.sun_family = AF_UNIX};
  strcpy(un.sun_path, path);
  assert_int_equal(bind(fd, (struct sockaddr *)&un, sizeof un), 0);
  close(fd);
  assert_int_equal(
      fut_start_unix_server(loop, echo_handler, NULL, path, NULL, NULL, &s), 0);
  stop_server(loop, s);
}

static int unix_client(void *arg) {
  const char *path = arg;
  fut_reader_t *r;
  fut_writer_t *w;
  int err = fut_open_unix_connection(path, NULL, &r, &w);
  if (err)
    return err;
  assert_int_equal(fut_writer_write(w, "unix!", 5), 0);
  void *d;
  size_t n;
  assert_int_equal(fut_reader_readexactly(r, 5, &d, &n), 0);
  assert_memory_equal(d, "unix!", 5);
  free(d);
  assert_int_equal(fut_writer_write_eof(w), 0);
  assert_int_equal(fut_reader_read(r, 10, &d, &n), 0);
  assert_int_equal(n, 0); /* the handler saw EOF and closed */
  fut_reader_unref(r);
  fut_writer_unref(w);
  return 0;
}

static void test_unix_echo(void **state) {
  fut_loop_t *loop = *state;
  char path[64];
  snprintf(path, sizeof path, "/tmp/fut-test-u%d.sock", (int)getpid());
  fut_server_t *s;
  assert_int_equal(
      fut_start_unix_server(loop, echo_handler, NULL, path, NULL, NULL, &s), 0);
  assert_int_equal(run_main(loop, unix_client, path), 0);
  stop_server(loop, s);
}

/* ---- handler outcomes
 * --------------------------------------------------------- */

static int failing_handler(fut_reader_t *r, fut_writer_t *w, void *arg) {
  (void)r;
  (void)w;
  return *(int *)arg;
}

static int connect_and_wait_eof(void *arg) {
  int port = *(int *)arg;
  fut_reader_t *r;
  fut_writer_t *w;
  assert_int_equal(fut_open_connection("127.0.0.1", port, NULL, NULL, &r, &w),
                   0);
  void *d;
  size_t n;
  assert_int_equal(fut_reader_read(r, 16, &d, &n), 0);
  assert_int_equal(n, 0); /* the library closed the writer after the handler */
  fut_reader_unref(r);
  fut_writer_unref(w);
  return 0;
}

static void test_handler_errors(void **state) {
  fut_loop_t *loop = *state;
  fx_exc_t exc;
  fx_exc_capture(loop, &exc);
  int codes[3] = {-ECONNRESET, -EPIPE, -EPROTO};
  for (int i = 0; i < 3; i++) {
    fut_server_t *s;
    assert_int_equal(fut_start_server(loop, failing_handler, &codes[i],
                                      "127.0.0.1", 0, NULL, NULL, &s),
                     0);
    int port = fut_server_port(s);
    assert_int_equal(run_main(loop, connect_and_wait_eof, &port), 0);
    stop_server(loop, s);
  }
  /* the peer going away is a normal end; -EPROTO is reported */
  assert_int_equal(exc.count, 1);
  assert_int_equal(exc.err, -EPROTO);
  fut_loop_set_exception_handler(loop, NULL, NULL);
}

/* ---- 1,000 concurrent connections ---------------------------------------- */

enum { NCONN = 1000 };

static int one_of_many(void *arg) {
  int port = *(int *)arg;
  fut_reader_t *r;
  fut_writer_t *w;
  int err = fut_open_connection("127.0.0.1", port, NULL, NULL, &r, &w);
  if (err)
    return err;
  char msg[32], back[32];
  int len = snprintf(msg, sizeof msg, "conn %p", (void *)&r);
  size_t got;
  for (int i = 0; i < 3 && !err; i++) {
    err = fut_writer_write(w, msg, (size_t)len);
    if (!err)
      err = fut_reader_readexactly_into(r, back, (size_t)len, &got);
    if (!err && memcmp(msg, back, (size_t)len))
      err = -EPROTO;
  }
  fut_writer_close(w);
  fut_reader_unref(r);
  fut_writer_unref(w);
  return err;
}

static int many_body(void *arg) {
  fut_loop_t *loop = fut_get_running_loop();
  fut_t **ts = calloc(NCONN, sizeof *ts);
  for (int i = 0; i < NCONN; i++) {
    fut_task_opts_t o;
    fut_task_opts_init(&o);
    o.stack_size = 32768;
    assert_int_equal(fut_create_task(loop, one_of_many, arg, &o, &ts[i]), 0);
  }
  int failed = 0;
  for (int i = 0; i < NCONN; i++) {
    if (fut_await(ts[i], NULL) != 0)
      failed++;
    fut_unref(ts[i]);
  }
  free(ts);
  assert_int_equal(failed, 0);
  return 0;
}

static void test_thousand_connections(void **state) {
  fut_loop_t *loop = *state;
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 2 * NCONN + 64) {
    rlim_t want = 2 * NCONN + 64;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
      skip();
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
      skip();
  }
  fut_server_opts_t so;
  fut_server_opts_init(&so);
  so.backlog = 1024;
  int served = 0;
  fut_server_t *s;
  assert_int_equal(fut_start_server(loop, echo_handler, &served, "127.0.0.1", 0,
                                    &so, NULL, &s),
                   0);
  int port = fut_server_port(s);
  assert_int_equal(run_main(loop, many_body, &port), 0);
  assert_int_equal(served, NCONN);
  stop_server(loop, s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_open_connection_echo),
      FX_LOOP_TEST(test_reader_calls),
      FX_LOOP_TEST(test_readuntil_limit_overrun),
      FX_LOOP_TEST(test_cancel_read_consumes_nothing),
      FX_LOOP_TEST(test_cancel_with_bytes_in_flight),
      FX_LOOP_TEST(test_not_in_task),
      FX_LOOP_TEST(test_cancel_drain_and_wait_closed),
      FX_LOOP_TEST(test_large_transfer_drain),
      FX_LOOP_TEST(test_connect_refused),
      FX_LOOP_TEST(test_peer_reset_reaches_reader),
      FX_LOOP_TEST(test_unix_server_path),
      FX_LOOP_TEST(test_unix_echo),
      FX_LOOP_TEST(test_handler_errors),
      FX_LOOP_TEST(test_thousand_connections),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
