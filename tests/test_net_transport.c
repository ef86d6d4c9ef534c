/* Transports and protocols (asyncio's create_server / connection
 * callbacks) on socketpairs and loopback TCP: echo, backpressure with
 * pause/resume, EOF and half-close, reset, writes after close, extra info,
 * BufferedProtocol, servers' accept batches and close. */
#include "fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- a recording protocol -------------------------------------------------
 */

typedef struct rec {
  int made, eofs, lost, pauses, resumes;
  int lost_err;
  bool echo;           /* write back what arrives */
  bool keep_open;      /* eof_received's answer */
  unsigned char *data; /* what arrived */
  size_t len, cap;
  fut_transport_t *t; /* a reference once made */
} rec_t;

static void r_made(fut_transport_t *t, void *arg) {
  rec_t *r = arg;
  r->made++;
  r->t = fut_transport_ref(t);
}
static void r_data(fut_transport_t *t, const void *d, size_t n, void *arg) {
  rec_t *r = arg;
  if (r->echo)
    assert_int_equal(fut_transport_write(t, d, n), 0);
  if (r->len + n > r->cap) {
    r->cap = (r->len + n) * 2;
    r->data = realloc(r->data, r->cap);
    assert_non_null(r->data);
  }
  memcpy(r->data + r->len, d, n);
  r->len += n;
}
static bool r_eof(fut_transport_t *t, void *arg) {
  (void)t;
  rec_t *r = arg;
  r->eofs++;
  return r->keep_open;
}
static void r_lost(fut_transport_t *t, int err, void *arg) {
  (void)t;
  rec_t *r = arg;
  r->lost++;
  r->lost_err = err;
}
static void r_pause(fut_transport_t *t, void *arg) {
  (void)t;
  ((rec_t *)arg)->pauses++;
}
static void r_resume(fut_transport_t *t, void *arg) {
  (void)t;
  ((rec_t *)arg)->resumes++;
}
static const fut_protocol_t rec_proto = {
    .connection_made = r_made,
    .data_received = r_data,
    .eof_received = r_eof,
    .connection_lost = r_lost,
    .pause_writing = r_pause,
    .resume_writing = r_resume,
};

static void rec_free(rec_t *r) {
  free(r->data);
  fut_transport_unref(r->t);
}

static bool lost_set(void *arg) {
  return ((rec_t *)arg)->lost != 0;
}

static void pair(int sv[2]) {
  assert_int_equal(
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
      0);
}

/* Reads exactly n bytes from a non-blocking fd while running the loop. */
static void read_all(fut_loop_t *loop, int fd, void *buf, size_t n) {
  size_t got = 0;
  for (int i = 0; i < 100000 && got < n; i++) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r > 0)
      got += (size_t)r;
    else
      assert_int_equal(fut_loop_run_once(loop, 1000000), 0);
  }
  assert_int_equal(got, n);
}

/* ---- tests ----------------------------------------------------------------
 */

static void test_echo_socketpair(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  pair(sv);
  rec_t r = {.echo = true};
  fut_transport_t *t;
  assert_int_equal(fut_transport_from_fd(loop, sv[0], &rec_proto, &r, &t), 0);
  assert_int_equal(r.made, 0); /* made from the ready queue, not inline */
  assert_int_equal(write(sv[1], "hello", 5), 5);
  char buf[5];
  read_all(loop, sv[1], buf, 5);
  assert_memory_equal(buf, "hello", 5);
  assert_int_equal(r.made, 1);
  assert_int_equal(r.len, 5);
  /* The peer closes: eof_received says close, connection_lost(0). */
  close(sv[1]);
  assert_true(fx_run_until(loop, lost_set, &r, 2000000000ull));
  assert_int_equal(r.eofs, 1);
  assert_int_equal(r.lost_err, 0);
  assert_int_equal(fut_transport_fd(t), -1);
  assert_int_equal(fut_transport_write(t, "x", 1), -EPIPE);
  fut_transport_unref(t);
  rec_free(&r);
}

static void test_half_close_keeps_writing(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  pair(sv);
  rec_t r = {.keep_open = true};
  assert_int_equal(fut_transport_from_fd(loop, sv[0], &rec_proto, &r, NULL), 0);
  assert_int_equal(shutdown(sv[1], SHUT_WR), 0);
  for (int i = 0; i < 10 && !r.eofs; i++)
    fut_loop_run_once(loop, 1000000);
  assert_int_equal(r.eofs, 1);
  assert_int_equal(r.lost, 0);
  assert_int_equal(fut_transport_write(r.t, "late", 4), 0);
  assert_int_equal(fut_transport_write_eof(r.t), 0);
  char buf[8];
  read_all(loop, sv[1], buf, 4);
  assert_memory_equal(buf, "late", 4);
  assert_int_equal(read(sv[1], buf, sizeof buf), 0); /* our EOF */
  fut_transport_close(r.t);
  assert_true(fx_run_until(loop, lost_set, &r, 2000000000ull));
  close(sv[1]);
  rec_free(&r);
}

/* 8 MiB through a socketpair whose reader is slow: the writer is paused
 * above the high-water mark, resumed below the low one, nothing lost. */
static void test_backpressure_pause_resume(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  pair(sv);
  int small = 4096;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  rec_t r = {0};
  assert_int_equal(fut_transport_from_fd(loop, sv[0], &rec_proto, &r, NULL), 0);
  fut_loop_run_once(loop, 0);
  assert_int_equal(r.made, 1);
  assert_int_equal(fut_transport_set_write_buffer_limits(r.t, 65536, 0), 0);
  size_t hi, lo;
  fut_transport_get_write_buffer_limits(r.t, &hi, &lo);
  assert_int_equal(hi, 65536);
  assert_int_equal(lo, 16384);
  enum { TOTAL = 8 << 20, CHUNK = 16384 };
  unsigned char *src = malloc(TOTAL), *dst = malloc(TOTAL);
  for (size_t i = 0; i < TOTAL; i++)
    src[i] = (unsigned char)(i * 131 + (i >> 13));
  size_t off = 0, got = 0;
  while (got < TOTAL) {
    /* A well-behaved producer: writes only while not paused. */
    while (off < TOTAL && r.pauses == r.resumes) {
      assert_int_equal(fut_transport_write(r.t, src + off, CHUNK), 0);
      off += CHUNK;
    }
    ssize_t n = read(sv[1], dst + got, 7000);
    if (n > 0)
      got += (size_t)n;
    fut_loop_run_once(loop, 0);
  }
  assert_memory_equal(src, dst, TOTAL);
  assert_true(r.pauses >= 1);
  assert_int_equal(r.pauses, r.resumes);
  assert_int_equal(fut_transport_get_write_buffer_size(r.t), 0);
  fut_transport_close(r.t);
  assert_true(fx_run_until(loop, lost_set, &r, 2000000000ull));
  assert_int_equal(r.lost_err, 0);
  close(sv[1]);
  free(src);
  free(dst);
  rec_free(&r);
}

static void test_close_flushes_buffer(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  pair(sv);
  rec_t r = {0};
  assert_int_equal(fut_transport_from_fd(loop, sv[0], &rec_proto, &r, NULL), 0);
  fut_loop_run_once(loop, 0);
  enum { N = 1 << 20 };
  char *big = malloc(N);
  memset(big, 'z', N);
  assert_int_equal(fut_transport_write(r.t, big, N), 0);
  assert_true(fut_transport_get_write_buffer_size(r.t) > 0);
  fut_transport_close(r.t);
  assert_true(fut_transport_is_closing(r.t));
  assert_int_equal(fut_transport_write(r.t, "x", 1), -EPIPE);
  char *got = malloc(N);
  read_all(loop, sv[1], got, N);
  assert_memory_equal(big, got, N);
  assert_true(fx_run_until(loop, lost_set, &r, 2000000000ull));
  char c;
  assert_int_equal(read(sv[1], &c, 1), 0);
  close(sv[1]);
  free(big);
  free(got);
  rec_free(&r);
}

static void test_abort_drops_buffer(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  pair(sv);
  rec_t r = {0};
  assert_int_equal(fut_transport_from_fd(loop, sv[0], &rec_proto, &r, NULL), 0);
  fut_loop_run_once(loop, 0);
  char *big = calloc(1, 1 << 20);
  assert_int_equal(fut_transport_write(r.t, big, 1 << 20), 0);
  fut_transport_abort(r.t);
  assert_int_equal(fut_transport_get_write_buffer_size(r.t), 0);
  assert_int_equal(r.lost, 0); /* scheduled, not inline */
  assert_true(fx_run_until(loop, lost_set, &r, 2000000000ull));
  assert_int_equal(r.lost_err, 0);
  close(sv[1]);
  free(big);
  rec_free(&r);
}

static int tcp_listener_port(fut_server_t *s) {
  int port = fut_server_port(s);
  assert_true(port > 0);
  return port;
}

static int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

static int factory(void *farg, void **arg) {
  rec_t *pool = farg;
  for (int i = 0; i < 8; i++)
    if (!pool[i].echo) {
      pool[i].echo = true;
      *arg = &pool[i];
      return 0;
    }
  return -ENOMEM;
}

static void test_server_echo_and_extra_info(void **state) {
  fut_loop_t *loop = *state;
  rec_t conns[8] = {0};
  fut_server_t *s;
  assert_int_equal(fut_create_server(loop, &rec_proto, factory, conns,
                                     "127.0.0.1", 0, NULL, &s),
                   0);
  assert_true(fut_server_is_serving(s));
  int fds[4];
  assert_int_equal(fut_server_sockets(s, fds, 4), 1);
  int port = tcp_listener_port(s);
  int c = tcp_connect(port);
  assert_int_equal(write(c, "ping", 4), 4);
  char buf[4];
  read_all(loop, c, buf, 4);
  assert_memory_equal(buf, "ping", 4);
  assert_int_equal(fut_server_active_connections(s), 1);
  fut_transport_t *t = conns[0].t;
  struct sockaddr_in peer;
  socklen_t len = sizeof peer;
  assert_int_equal(
      fut_transport_get_extra_info(t, FUT_EXTRA_PEERNAME, &peer, &len), 0);
  assert_int_equal(len, sizeof peer);
  assert_int_equal(peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
  struct sockaddr_in me;
  len = sizeof me;
  assert_int_equal(
      fut_transport_get_extra_info(t, FUT_EXTRA_SOCKNAME, &me, &len), 0);
  assert_int_equal(ntohs(me.sin_port), port);
  int fd;
  len = sizeof fd;
  assert_int_equal(fut_transport_get_extra_info(t, FUT_EXTRA_SOCKET, &fd, &len),
                   0);
  assert_int_equal(fd, fut_transport_fd(t));
  int nodelay = 0;
  len = sizeof nodelay;
  getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len);
  assert_int_equal(nodelay, 1);
  char tiny[2];
  len = sizeof tiny;
  assert_int_equal(
      fut_transport_get_extra_info(t, FUT_EXTRA_PEERNAME, tiny, &len),
      -ENOBUFS);
  assert_int_equal(len, sizeof peer);
  /* Closing the server keeps the connection (asyncio's Server.close). */
  fut_server_close(s);
  assert_false(fut_server_is_serving(s));
  assert_int_equal(write(c, "pong", 4), 4);
  read_all(loop, c, buf, 4);
  assert_memory_equal(buf, "pong", 4);
  close(c);
  assert_true(fx_run_until(loop, lost_set, &conns[0], 2000000000ull));
  assert_int_equal(fut_server_active_connections(s), 0);
  fut_server_unref(s);
  rec_free(&conns[0]);
}

static void test_peer_reset(void **state) {
  fut_loop_t *loop = *state;
  rec_t conns[8] = {0};
  fut_server_t *s;
  assert_int_equal(fut_create_server(loop, &rec_proto, factory, conns,
                                     "127.0.0.1", 0, NULL, &s),
                   0);
  int c = tcp_connect(tcp_listener_port(s));
  assert_int_equal(write(c, "a", 1), 1);
  char b;
  read_all(loop, c, &b, 1);
  struct linger lg = {1, 0}; /* close sends RST */
  setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(c);
  assert_true(fx_run_until(loop, lost_set, &conns[0], 2000000000ull));
  assert_int_equal(conns[0].lost_err, -ECONNRESET);
  fut_server_close(s);
  fut_server_unref(s);
  rec_free(&conns[0]);
}

static void test_bad_arguments(void **state) {
  fut_loop_t *loop = *state;
  fut_server_t *s = (fut_server_t *)1;
  assert_int_equal(
      fut_create_server(loop, NULL, NULL, NULL, "127.0.0.1", 0, NULL, &s),
      -EINVAL);
  assert_null(s);
  assert_int_equal(fut_create_server(loop, &rec_proto, NULL, NULL, "127.0.0.1",
                                     70000, NULL, &s),
                   -EINVAL);
  assert_int_equal(
      fut_create_server(loop, &rec_proto, NULL, NULL, "localhost", 0, NULL, &s),
      FUT_E_NOT_IN_TASK);
  fut_transport_t *t = (fut_transport_t *)1;
  assert_int_equal(fut_transport_from_fd(loop, -1, &rec_proto, NULL, &t),
                   -EINVAL);
  assert_null(t);
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  assert_int_equal(fut_transport_from_fd(loop, fd, &rec_proto, NULL, &t),
                   -ENOTSOCK); /* and fd is closed */
  assert_int_equal(fcntl(fd, F_GETFD), -1);
  assert_int_equal(fut_transport_write(NULL, "x", 1), -EINVAL);
  /* A port in use: a clear -EADDRINUSE, nothing left listening. */
  fut_server_opts_t o;
  fut_server_opts_init(&o);
  o.reuse_address = false;
  fut_server_t *a;
  assert_int_equal(
      fut_create_server(loop, &rec_proto, NULL, NULL, "127.0.0.1", 0, &o, &a),
      0);
  assert_int_equal(fut_create_server(loop, &rec_proto, NULL, NULL, "127.0.0.1",
                                     fut_server_port(a), &o, &s),
                   -EADDRINUSE);
  assert_non_null(strstr(fut_last_error(), "127.0.0.1"));
  fut_server_close(a);
  fut_server_unref(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_echo_socketpair),
      FX_LOOP_TEST(test_half_close_keeps_writing),
      FX_LOOP_TEST(test_backpressure_pause_resume),
      FX_LOOP_TEST(test_close_flushes_buffer),
      FX_LOOP_TEST(test_abort_drops_buffer),
      FX_LOOP_TEST(test_server_echo_and_extra_info),
      FX_LOOP_TEST(test_peer_reset),
      FX_LOOP_TEST(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
