/* Datagram endpoints (asyncio's create_datagram_endpoint) on loopback UDP
 * (127.0.0.1 and ::1 only) and Unix datagram socketpairs: echo, 10,000
 * datagrams in order with pacing and with flow control, connected
 * endpoints, ICMP errors through error_received, the send queue when the
 * socket is full, close flushing it and abort dropping it, sizes, bad
 * arguments, name resolution inside a task, loop close. */
#include "fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* fut__dgram_new wraps a Unix socketpair end: UDP on loopback never
 * refuses a send (the kernel hands each datagram to the receiver, or drops
 * it, at once), so the send queue is tested over Unix datagrams, where a
 * full receiver holds the sender's buffer. */
#include "net/datagram.h"

/* ---- a recording protocol -------------------------------------------------
 */

typedef struct drec {
  int made, lost, pauses, resumes, errors;
  int lost_err, first_error, last_error;
  int count; /* datagrams received */
  size_t write_buffer_at_lost;
  bool echo;           /* send each datagram back to its sender */
  bool close_on_first; /* close from inside the first datagram_received */
  bool check;          /* datagrams carry make_dgram(next_seq) */
  uint32_t next_seq;
  int bad; /* datagrams out of order or damaged */
  unsigned char last[2048];
  size_t last_len;
  struct sockaddr_storage from;
  socklen_t fromlen;
  fut_transport_t *t; /* a reference once made */
} drec_t;

/* Datagram seq of the long runs: 8 to 1207 bytes, seq first. */
static size_t make_dgram(unsigned char *buf, uint32_t seq) {
  size_t len = 8 + (seq * 7919u) % 1200u;
  memcpy(buf, &seq, sizeof seq);
  for (size_t j = sizeof seq; j < len; j++)
    buf[j] = (unsigned char)(seq * 31u + j);
  return len;
}

static void d_made(fut_transport_t *t, void *arg) {
  drec_t *r = arg;
  r->made++;
  r->t = fut_transport_ref(t);
}
static void d_dgram(fut_transport_t *t, const void *d, size_t n,
                    const struct sockaddr *sa, socklen_t salen, void *arg) {
  drec_t *r = arg;
  r->count++;
  r->last_len = n < sizeof r->last ? n : sizeof r->last;
  if (n)
    memcpy(r->last, d, r->last_len);
  r->fromlen = 0;
  if (sa) {
    assert_true(salen <= sizeof r->from);
    memcpy(&r->from, sa, salen);
    r->fromlen = salen;
  }
  if (r->check) {
    unsigned char want[1300];
    size_t wl = make_dgram(want, r->next_seq++);
    if (wl != n || memcmp(want, d, n))
      r->bad++;
  }
  if (r->echo)
    assert_int_equal(fut_transport_sendto(t, d, n, sa, salen), 0);
  if (r->close_on_first)
    fut_transport_close(t);
}
static void d_error(fut_transport_t *t, int err, void *arg) {
  (void)t;
  drec_t *r = arg;
  if (!r->errors++)
    r->first_error = err;
  r->last_error = err;
}
static void d_lost(fut_transport_t *t, int err, void *arg) {
  drec_t *r = arg;
  r->lost++;
  r->lost_err = err;
  r->write_buffer_at_lost = fut_transport_get_write_buffer_size(t);
}
static void d_pause(fut_transport_t *t, void *arg) {
  (void)t;
  ((drec_t *)arg)->pauses++;
}
static void d_resume(fut_transport_t *t, void *arg) {
  (void)t;
  ((drec_t *)arg)->resumes++;
}
static const fut_datagram_protocol_t dproto = {
    .connection_made = d_made,
    .datagram_received = d_dgram,
    .error_received = d_error,
    .connection_lost = d_lost,
    .pause_writing = d_pause,
    .resume_writing = d_resume,
};

static bool made_set(void *arg) {
  return ((drec_t *)arg)->made != 0;
}
static bool lost_set(void *arg) {
  return ((drec_t *)arg)->lost != 0;
}
static bool got_one(void *arg) {
  return ((drec_t *)arg)->count != 0;
}
static bool error_set(void *arg) {
  return ((drec_t *)arg)->errors != 0;
}

static void run_until(fut_loop_t *loop, fx_cond_fn cond, void *arg) {
  assert_true(fx_run_until(loop, cond, arg, FUT_SEC(5)));
}

/* An endpoint that must be made, with connection_made run. */
static fut_transport_t *endpoint(fut_loop_t *loop, drec_t *r, const char *lhost,
                                 int lport, const char *rhost, int rport) {
  fut_transport_t *t = NULL;
  int err = fut_create_datagram_endpoint(loop, &dproto, r, lhost, lport, rhost,
                                         rport, NULL, &t);
  if (err)
    fail_msg("fut_create_datagram_endpoint: %s (%s)", fut_strerror(err),
             fut_last_error());
  assert_int_equal(r->made, 0); /* from the ready queue, never inline */
  run_until(loop, made_set, r);
  assert_ptr_equal(r->t, t);
  return t;
}

/* Closes t, runs until connection_lost(0), drops both references. */
static void close_and_drop(fut_loop_t *loop, drec_t *r, fut_transport_t *t) {
  fut_transport_close(t);
  run_until(loop, lost_set, r);
  assert_int_equal(r->lost, 1);
  assert_int_equal(r->lost_err, 0);
  assert_int_equal(fut_transport_fd(t), -1);
  fut_transport_unref(t);
  fut_transport_unref(r->t);
  r->t = NULL;
}

static int port_of(fut_transport_t *t) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  assert_int_equal(
      fut_transport_get_extra_info(t, FUT_EXTRA_SOCKNAME, &ss, &len), 0);
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  assert_int_equal(ss.ss_family, AF_INET6);
  return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int fd_of(fut_transport_t *t) {
  int fd = -1;
  socklen_t len = sizeof fd;
  assert_int_equal(fut_transport_get_extra_info(t, FUT_EXTRA_SOCKET, &fd, &len),
                   0);
  return fd;
}

static struct sockaddr_in v4(int port) {
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sin;
}

/* A loopback UDP port nobody listens on (bound, then closed). */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = v4(0);
  socklen_t len = sizeof sin;
  assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
  close(fd);
  return ntohs(sin.sin_port);
}

static bool have_ipv6_loopback(void) {
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
  s6.sin6_addr = in6addr_loopback;
  bool ok = bind(fd, (struct sockaddr *)&s6, sizeof s6) == 0;
  close(fd);
  return ok;
}

/* A Unix datagram socketpair, both ends non-blocking. */
static void dgram_pair(int sv[2]) {
  assert_int_equal(
      socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

/* ---- echo -----------------------------------------------------------------
 */

static void echo_on(fut_loop_t *loop, const char *host, int family) {
  drec_t srv = {.echo = true}, cli = {0};
  fut_transport_t *s = endpoint(loop, &srv, host, 0, NULL, 0);
  int port = port_of(s);
  fut_transport_t *c = endpoint(loop, &cli, NULL, 0, host, port);
  assert_false(fut_transport_is_closing(c));
  assert_int_equal(fut_transport_sendto(c, "hello", 5, NULL, 0), 0);
  run_until(loop, got_one, &cli);
  assert_int_equal(srv.count, 1);
  assert_int_equal(cli.count, 1);
  assert_int_equal(cli.last_len, 5);
  assert_memory_equal(cli.last, "hello", 5);
  /* The server saw the client's address; the client's came from the
   * server. */
  struct sockaddr_storage me, peer;
  socklen_t ml = sizeof me, pl = sizeof peer;
  assert_int_equal(
      fut_transport_get_extra_info(c, FUT_EXTRA_SOCKNAME, &me, &ml), 0);
  assert_int_equal(me.ss_family, family);
  assert_int_equal(srv.fromlen, ml);
  assert_memory_equal(&srv.from, &me, ml);
  assert_int_equal(
      fut_transport_get_extra_info(c, FUT_EXTRA_PEERNAME, &peer, &pl), 0);
  assert_int_equal(port_of(s),
                   family == AF_INET
                       ? ntohs(((struct sockaddr_in *)&peer)->sin_port)
                       : ntohs(((struct sockaddr_in6 *)&peer)->sin6_port));
  /* An unconnected endpoint has no peer. */
  pl = sizeof peer;
  assert_int_equal(
      fut_transport_get_extra_info(s, FUT_EXTRA_PEERNAME, &peer, &pl),
      -ENOTCONN);
  assert_false(fut_transport_can_write_eof(c));
  /* An empty datagram is a datagram. */
  assert_int_equal(fut_transport_sendto(c, NULL, 0, NULL, 0), 0);
  cli.count = 0;
  run_until(loop, got_one, &cli);
  assert_int_equal(cli.last_len, 0);
  close_and_drop(loop, &cli, c);
  assert_int_equal(fut_transport_sendto(s, "x", 1, (struct sockaddr *)&me, ml),
                   0); /* s is still open */
  close_and_drop(loop, &srv, s);
  assert_int_equal(srv.made, 1);
  assert_int_equal(cli.made, 1);
}

static void test_echo_ipv4(void **state) {
  echo_on(*state, "127.0.0.1", AF_INET);
}

static void test_echo_ipv6(void **state) {
  if (!have_ipv6_loopback())
    skip();
  echo_on(*state, "::1", AF_INET6);
}

/* No address and no family: refused, as asyncio's ValueError
 * (CPython's test_create_datagram_endpoint_noaddr_nofamily); nothing is
 * left open and *out is NULL. */
static void test_no_address_no_family_refused(void **state) {
  fut_loop_t *loop = *state;
  drec_t r = {0};
  fut_transport_t *t = (fut_transport_t *)&r; /* must be overwritten */
  assert_int_equal(fut_create_datagram_endpoint(loop, &dproto, &r, NULL, 0,
                                                NULL, 0, NULL, &t),
                   -EINVAL);
  assert_null(t);
  assert_non_null(strstr(fut_last_error(), "no family"));
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(r.made, 0);
}

/* A family alone makes an unbound socket, as asyncio does; its first
 * sendto picks the port and the echo comes back to it. */
static void test_family_alone_is_unbound(void **state) {
  fut_loop_t *loop = *state;
  drec_t srv = {.echo = true}, cli = {0};
  fut_transport_t *s = endpoint(loop, &srv, "127.0.0.1", 0, NULL, 0);
  fut_datagram_opts_t o;
  fut_datagram_opts_init(&o);
  o.family = AF_INET;
  fut_transport_t *c = NULL;
  assert_int_equal(fut_create_datagram_endpoint(loop, &dproto, &cli, NULL, 0,
                                                NULL, 0, &o, &c),
                   0);
  run_until(loop, made_set, &cli);
  struct sockaddr_in me;
  socklen_t ml = sizeof me;
  assert_int_equal(
      fut_transport_get_extra_info(c, FUT_EXTRA_SOCKNAME, &me, &ml), 0);
  assert_int_equal(me.sin_family, AF_INET);
  assert_int_equal(me.sin_port, 0); /* not bound yet */
  struct sockaddr_in to = v4(port_of(s));
  assert_int_equal(fut_transport_sendto(
                       c, "fam", 3, (const struct sockaddr *)&to, sizeof to),
                   0);
  run_until(loop, got_one, &cli);
  assert_memory_equal(cli.last, "fam", 3);
  close_and_drop(loop, &cli, c);
  close_and_drop(loop, &srv, s);
}

/* ---- addresses ------------------------------------------------------------
 */

static void test_connected_and_unconnected_addresses(void **state) {
  fut_loop_t *loop = *state;
  drec_t srv = {0}, cli = {0};
  fut_transport_t *s = endpoint(loop, &srv, "127.0.0.1", 0, NULL, 0);
  int port = port_of(s);
  fut_transport_t *c = endpoint(loop, &cli, NULL, 0, "127.0.0.1", port);
  /* Unconnected: an address is needed. */
  assert_int_equal(fut_transport_sendto(s, "x", 1, NULL, 0), -EDESTADDRREQ);
  /* Connected: NULL, or the peer's own address; another is refused. */
  struct sockaddr_in same = v4(port), other = v4(port == 65535 ? 1 : port + 1);
  assert_int_equal(fut_transport_sendto(c, "a", 1, NULL, 0), 0);
  assert_int_equal(
      fut_transport_sendto(c, "b", 1, (struct sockaddr *)&same, sizeof same),
      0);
  assert_int_equal(
      fut_transport_sendto(c, "c", 1, (struct sockaddr *)&other, sizeof other),
      -EINVAL);
  assert_non_null(strstr(fut_last_error(), "127.0.0.1"));
  for (int i = 0; i < 500 && srv.count < 2; i++)
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(10)), 0);
  assert_int_equal(srv.count, 2);
  assert_memory_equal(srv.last, "b", 1);
  /* The unconnected end answers to the address it got. */
  assert_int_equal(fut_transport_sendto(s, "r", 1, (struct sockaddr *)&srv.from,
                                        srv.fromlen),
                   0);
  run_until(loop, got_one, &cli);
  assert_memory_equal(cli.last, "r", 1);
  assert_int_equal(srv.errors + cli.errors, 0);
  close_and_drop(loop, &cli, c);
  close_and_drop(loop, &srv, s);
}

/* A datagram to a closed port of a connected endpoint: the ICMP port
 * unreachable comes back as error_received(-ECONNREFUSED), and the
 * endpoint stays open and usable. */
static void test_connection_refused_keeps_endpoint(void **state) {
  fut_loop_t *loop = *state;
  int port = closed_port();
  drec_t cli = {0};
  fut_transport_t *c = endpoint(loop, &cli, NULL, 0, "127.0.0.1", port);
  assert_int_equal(fut_transport_sendto(c, "x", 1, NULL, 0), 0);
  run_until(loop, error_set, &cli);
  assert_int_equal(cli.first_error, -ECONNREFUSED);
  assert_int_equal(cli.errors, 1);
  assert_false(fut_transport_is_closing(c));
  assert_int_equal(cli.lost, 0);
  /* Someone listens there now: the next datagram arrives. */
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = v4(port);
  if (bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0) {
    assert_int_equal(fut_transport_sendto(c, "again", 5, NULL, 0), 0);
    char buf[8];
    ssize_t n = -1;
    for (int i = 0; i < 500 && n < 0; i++) {
      n = recv(fd, buf, sizeof buf, 0);
      if (n < 0)
        assert_int_equal(fut_loop_run_once(loop, FUT_MS(1)), 0);
    }
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "again", 5);
    /* And answers reach the endpoint. */
    struct sockaddr_storage me;
    socklen_t ml = sizeof me;
    assert_int_equal(
        fut_transport_get_extra_info(c, FUT_EXTRA_SOCKNAME, &me, &ml), 0);
    assert_int_equal(sendto(fd, "back", 4, 0, (struct sockaddr *)&me, ml), 4);
    run_until(loop, got_one, &cli);
    assert_memory_equal(cli.last, "back", 4);
  }
  close(fd);
  assert_int_equal(cli.errors, 1);
  close_and_drop(loop, &cli, c);
}

/* ---- 10,000 datagrams --------------------------------------------------- */

enum { MANY = 10000 };

/* UDP on loopback drops what the receiver has no room for, and the sender
 * never learns it: the sender is paced (at most WINDOW datagrams in
 * flight, and none while paused) and the receive buffer raised; every
 * datagram must arrive, whole and in order. */
static void test_ten_thousand_udp_in_order(void **state) {
  fut_loop_t *loop = *state;
  enum { WINDOW = 32 };
  drec_t rx = {.check = true}, tx = {0};
  fut_transport_t *r = endpoint(loop, &rx, "127.0.0.1", 0, NULL, 0);
  int big = 4 << 20;
  (void)setsockopt(fd_of(r), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  fut_transport_t *t = endpoint(loop, &tx, NULL, 0, "127.0.0.1", port_of(r));
  unsigned char buf[1300];
  uint32_t sent = 0;
  uint64_t deadline = fut_loop_time(loop) + FUT_SEC(60);
  while (rx.count < MANY && fut_loop_time(loop) < deadline) {
    while (sent < MANY && sent - (uint32_t)rx.count < WINDOW &&
           tx.pauses == tx.resumes) {
      size_t len = make_dgram(buf, sent);
      assert_int_equal(fut_transport_sendto(t, buf, len, NULL, 0), 0);
      sent++;
    }
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(10)), 0);
  }
  assert_int_equal(rx.count, MANY);
  assert_int_equal(rx.bad, 0);
  assert_int_equal(rx.errors + tx.errors, 0);
  assert_int_equal(tx.pauses, tx.resumes);
  close_and_drop(loop, &tx, t);
  close_and_drop(loop, &rx, r);
}

/* Over a Unix socketpair the sender's buffer fills: sends queue, the
 * protocol is paused above the high-water mark and resumed below the low
 * one, and a producer that honours it gets all 10,000 datagrams through
 * in order. */
static void test_ten_thousand_unix_flow_control(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  dgram_pair(sv);
  int small = 8192;
  assert_int_equal(
      setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  drec_t tx = {0}, rx = {.check = true};
  fut_transport_t *t, *r;
  assert_int_equal(fut__dgram_new(loop, sv[0], &dproto, &tx, true, &t), 0);
  assert_int_equal(fut__dgram_new(loop, sv[1], &dproto, &rx, true, &r), 0);
  run_until(loop, made_set, &tx);
  run_until(loop, made_set, &rx);
  assert_int_equal(fut_transport_set_write_buffer_limits(t, 16384, 4096), 0);
  unsigned char buf[1300];
  uint32_t sent = 0;
  size_t max_queued = 0;
  uint64_t deadline = fut_loop_time(loop) + FUT_SEC(60);
  while (rx.count < MANY && fut_loop_time(loop) < deadline) {
    while (sent < MANY && tx.pauses == tx.resumes) {
      size_t len = make_dgram(buf, sent);
      assert_int_equal(fut_transport_sendto(t, buf, len, NULL, 0), 0);
      sent++;
      size_t q = fut_transport_get_write_buffer_size(t);
      if (q > max_queued)
        max_queued = q;
    }
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(10)), 0);
  }
  assert_int_equal(rx.count, MANY);
  assert_int_equal(rx.bad, 0);
  assert_int_equal(rx.errors + tx.errors, 0);
  assert_true(tx.pauses >= 1);
  assert_int_equal(tx.pauses, tx.resumes);
  /* Paused just above the mark: the queue never grew past it by more
   * than one datagram. */
  assert_true(max_queued > 16384);
  assert_true(max_queued <= 16384 + 1300 + 8);
  assert_int_equal(fut_transport_get_write_buffer_size(t), 0);
  /* Unnamed Unix sockets: datagrams come without an address. */
  assert_int_equal(rx.fromlen, 0);
  close_and_drop(loop, &tx, t);
  close_and_drop(loop, &rx, r);
}

/* ---- the queue: close flushes, abort drops --------------------------------
 */

/* Wraps sv[0] (small send buffer) and sends numbered 1000-byte datagrams
 * until extra of them are queued.  Returns how many were sent. */
static int fill_queue(fut_loop_t *loop, int sv[2], drec_t *tx,
                      fut_transport_t **t, int extra) {
  dgram_pair(sv);
  int small = 4096;
  assert_int_equal(
      setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  assert_int_equal(fut__dgram_new(loop, sv[0], &dproto, tx, true, t), 0);
  run_until(loop, made_set, tx);
  unsigned char buf[1000];
  int n = 0, queued = 0;
  while (queued < extra) {
    assert_true(n < 10000);
    memset(buf, 0, sizeof buf);
    memcpy(buf, &n, sizeof n);
    assert_int_equal(fut_transport_sendto(*t, buf, sizeof buf, NULL, 0), 0);
    n++;
    if (fut_transport_get_write_buffer_size(*t) > 0)
      queued++;
  }
  assert_int_equal(fut_transport_get_write_buffer_size(*t),
                   (size_t)extra * (sizeof buf + 8));
  return n;
}

/* Reads the datagrams waiting on fd (running the loop between tries until
 * want arrived, or 50 idle tries after want < 0), checking their numbers
 * follow on.  Returns how many. */
static int drain_numbered(fut_loop_t *loop, int fd, int want) {
  int got = 0, idle = 0;
  while ((want < 0 || got < want) && idle < (want < 0 ? 50 : 5000)) {
    unsigned char buf[2000];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      idle++;
      assert_int_equal(fut_loop_run_once(loop, FUT_MS(1)), 0);
      continue;
    }
    idle = 0;
    assert_int_equal(n, 1000);
    int seq;
    memcpy(&seq, buf, sizeof seq);
    assert_int_equal(seq, got);
    got++;
  }
  return got;
}

static void test_queue_close_flushes(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  drec_t tx = {0};
  fut_transport_t *t;
  int n = fill_queue(loop, sv, &tx, &t, 40);
  assert_true(tx.pauses == 0); /* 40 * 1008 < 64 KiB */
  fut_transport_close(t);
  assert_true(fut_transport_is_closing(t));
  assert_int_equal(fut_transport_sendto(t, "x", 1, NULL, 0), -EPIPE);
  assert_true(fut_transport_get_write_buffer_size(t) > 0);
  assert_int_equal(tx.lost, 0);
  /* The peer reads: every queued datagram arrives, then connection_lost(0)
   * with the queue empty. */
  assert_int_equal(drain_numbered(loop, sv[1], n), n);
  run_until(loop, lost_set, &tx);
  assert_int_equal(tx.lost_err, 0);
  assert_int_equal(tx.write_buffer_at_lost, 0);
  assert_int_equal(tx.errors, 0);
  assert_int_equal(drain_numbered(loop, sv[1], -1), 0);
  close(sv[1]);
  fut_transport_unref(t);
  fut_transport_unref(tx.t);
}

static void test_queue_abort_drops(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  drec_t tx = {0};
  fut_transport_t *t;
  int n = fill_queue(loop, sv, &tx, &t, 40);
  fut_transport_abort(t);
  assert_int_equal(fut_transport_get_write_buffer_size(t), 0);
  assert_true(fut_transport_is_closing(t));
  assert_int_equal(tx.lost, 0); /* scheduled, not inline */
  run_until(loop, lost_set, &tx);
  assert_int_equal(tx.lost_err, 0);
  /* Only what the kernel took before the abort arrives. */
  assert_int_equal(drain_numbered(loop, sv[1], -1), n - 40);
  close(sv[1]);
  fut_transport_unref(t);
  fut_transport_unref(tx.t);
}

/* Queued datagrams that fail when their turn comes go to error_received
 * (the endpoint stays open); a send that fails at once returns the error
 * instead. */
static void test_queued_failures_go_to_error_received(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  drec_t tx = {0};
  fut_transport_t *t;
  (void)fill_queue(loop, sv, &tx, &t, 10);
  close(sv[1]); /* frees the sender's buffer: the writer runs, and fails */
  for (int i = 0; i < 500 && tx.errors < 10; i++)
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(10)), 0);
  assert_int_equal(tx.errors, 10);
  assert_int_equal(tx.first_error, -ECONNREFUSED);
  assert_false(fut_transport_is_closing(t));
  assert_int_equal(fut_transport_get_write_buffer_size(t), 0);
  int before = tx.errors;
  int err = fut_transport_sendto(t, "x", 1, NULL, 0);
  assert_true(err < 0 && err != -EPIPE);
  assert_int_equal(tx.errors, before);
  close_and_drop(loop, &tx, t);
}

/* ---- sizes and callbacks --------------------------------------------------
 */

static void test_emsgsize(void **state) {
  fut_loop_t *loop = *state;
  drec_t srv = {.echo = true}, cli = {0};
  fut_transport_t *s = endpoint(loop, &srv, "127.0.0.1", 0, NULL, 0);
  fut_transport_t *c = endpoint(loop, &cli, NULL, 0, "127.0.0.1", port_of(s));
  char *big = calloc(1, 70000);
  assert_int_equal(fut_transport_sendto(c, big, 70000, NULL, 0), -EMSGSIZE);
  assert_int_equal(fut_transport_sendto(c, big, 65508, NULL, 0), -EMSGSIZE);
  assert_int_equal(fut_transport_get_write_buffer_size(c), 0);
  /* The largest IPv4 datagram goes, and comes back whole. */
  big[65506] = 'z';
  assert_int_equal(fut_transport_sendto(c, big, 65507, NULL, 0), 0);
  run_until(loop, got_one, &cli);
  assert_int_equal(cli.last_len, sizeof cli.last); /* kept the first 2 KiB */
  assert_int_equal(srv.count, 1);
  assert_int_equal(srv.errors + cli.errors, 0);
  assert_false(fut_transport_is_closing(c));
  free(big);
  close_and_drop(loop, &cli, c);
  close_and_drop(loop, &srv, s);
}

/* datagram_received closes the endpoint: no datagram after that one. */
static void test_close_from_datagram_received(void **state) {
  fut_loop_t *loop = *state;
  drec_t srv = {.close_on_first = true}, cli = {0};
  fut_transport_t *s = endpoint(loop, &srv, "127.0.0.1", 0, NULL, 0);
  fut_transport_t *c = endpoint(loop, &cli, NULL, 0, "127.0.0.1", port_of(s));
  for (int i = 0; i < 5; i++)
    assert_int_equal(fut_transport_sendto(c, "d", 1, NULL, 0), 0);
  run_until(loop, lost_set, &srv);
  assert_int_equal(srv.count, 1);
  assert_int_equal(srv.lost_err, 0);
  fut_transport_unref(s);
  fut_transport_unref(srv.t);
  close_and_drop(loop, &cli, c);
}

/* connection_lost(FUT_E_CLOSED) when the loop closes with the endpoint
 * open, its fd closed. */
static void test_loop_close_loses_endpoint(void **state) {
  fut_loop_t *loop = *state;
  drec_t r = {0};
  fut_transport_t *t = endpoint(loop, &r, "127.0.0.1", 0, NULL, 0);
  int fd = fd_of(t);
  assert_int_equal(fut_loop_close(loop), 0);
  assert_int_equal(r.lost, 1);
  assert_int_equal(r.lost_err, FUT_E_CLOSED);
  assert_int_equal(fcntl(fd, F_GETFD), -1);
  assert_int_equal(fut_transport_sendto(t, "x", 1, NULL, 0), -EPIPE);
  fut_transport_unref(t);
  fut_transport_unref(r.t);
}

/* ---- options and arguments ------------------------------------------------
 */

static void test_reuse_port(void **state) {
  fut_loop_t *loop = *state;
  fut_datagram_opts_t o;
  fut_datagram_opts_init(&o);
  assert_int_equal(o.family, AF_UNSPEC);
  assert_false(o.reuse_port);
  assert_false(o.allow_broadcast);
  o.reuse_port = true;
  o.allow_broadcast = true;
  drec_t a = {0}, b = {0};
  fut_transport_t *ta, *tb, *tc = (fut_transport_t *)1;
  assert_int_equal(fut_create_datagram_endpoint(loop, &dproto, &a, "127.0.0.1",
                                                0, NULL, 0, &o, &ta),
                   0);
  int port = port_of(ta);
  int one = 0;
  socklen_t ol = sizeof one;
  assert_int_equal(getsockopt(fd_of(ta), SOL_SOCKET, SO_BROADCAST, &one, &ol),
                   0);
  assert_int_equal(one, 1);
  assert_int_equal(fut_create_datagram_endpoint(loop, &dproto, &b, "127.0.0.1",
                                                port, NULL, 0, &o, &tb),
                   0);
  assert_int_equal(port_of(tb), port);
  /* Without SO_REUSEPORT the port is taken: nothing is left open. */
  drec_t c = {0};
  assert_int_equal(fut_create_datagram_endpoint(loop, &dproto, &c, "127.0.0.1",
                                                port, NULL, 0, NULL, &tc),
                   -EADDRINUSE);
  assert_null(tc);
  assert_non_null(strstr(fut_last_error(), "127.0.0.1"));
  run_until(loop, made_set, &a);
  run_until(loop, made_set, &b);
  close_and_drop(loop, &a, ta);
  close_and_drop(loop, &b, tb);
  assert_int_equal(c.made + c.lost, 0);
}

static void test_bad_arguments(void **state) {
  fut_loop_t *loop = *state;
  drec_t r = {0};
  fut_transport_t *t = (fut_transport_t *)1;
  assert_int_equal(fut_create_datagram_endpoint(loop, NULL, NULL, "127.0.0.1",
                                                0, NULL, 0, NULL, &t),
                   -EINVAL);
  assert_null(t);
  assert_int_equal(fut_create_datagram_endpoint(loop, &dproto, &r, "127.0.0.1",
                                                0, NULL, 0, NULL, NULL),
                   -EINVAL);
  assert_int_equal(fut_create_datagram_endpoint(NULL, &dproto, &r, "127.0.0.1",
                                                0, NULL, 0, NULL, &t),
                   -EINVAL); /* no loop outside a task */
  assert_int_equal(fut_create_datagram_endpoint(loop, &dproto, &r, "127.0.0.1",
                                                70000, NULL, 0, NULL, &t),
                   -EINVAL);
  assert_int_equal(fut_create_datagram_endpoint(loop, &dproto, &r, NULL, 0,
                                                "127.0.0.1", -1, NULL, &t),
                   -EINVAL);
  fut_datagram_opts_t o;
  fut_datagram_opts_init(&o);
  o.family = AF_UNIX;
  assert_int_equal(fut_create_datagram_endpoint(loop, &dproto, &r, "127.0.0.1",
                                                0, NULL, 0, &o, &t),
                   -EINVAL);
  o.family = AF_INET;
  assert_int_equal(fut_create_datagram_endpoint(loop, &dproto, &r, "::1", 0,
                                                NULL, 0, &o, &t),
                   -EINVAL);
  assert_int_equal(fut_create_datagram_endpoint(loop, &dproto, &r, "127.0.0.1",
                                                0, "::1", 9, NULL, &t),
                   -EINVAL);
  assert_non_null(strstr(fut_last_error(), "family"));
  /* A name needs a lookup, which only a task can wait for. */
  assert_int_equal(fut_create_datagram_endpoint(loop, &dproto, &r, "localhost",
                                                0, NULL, 0, NULL, &t),
                   FUT_E_NOT_IN_TASK);
  assert_int_equal(fut_create_datagram_endpoint(loop, &dproto, &r, NULL, 0,
                                                "localhost", 9, NULL, &t),
                   FUT_E_NOT_IN_TASK);
  assert_null(t);
  assert_int_equal(r.made + r.lost, 0);

  /* sendto's own checks. */
  assert_int_equal(fut_transport_sendto(NULL, "x", 1, NULL, 0), -EINVAL);
  fut_transport_t *d = endpoint(loop, &r, "127.0.0.1", 0, NULL, 0);
  struct sockaddr_in to = v4(9);
  assert_int_equal(
      fut_transport_sendto(d, NULL, 1, (struct sockaddr *)&to, sizeof to),
      -EINVAL);
  assert_int_equal(fut_transport_sendto(d, "x", 1, (struct sockaddr *)&to, 1),
                   -EINVAL);
  assert_int_equal(
      fut_transport_sendto(d, "x", 1, (struct sockaddr *)&to, 1000), -EINVAL);
  /* The stream calls refuse a datagram transport. */
  assert_int_equal(fut_transport_write(d, "x", 1), -EINVAL);
  assert_int_equal(fut_transport_write_eof(d), -ENOTSUP);
  close_and_drop(loop, &r, d);

  /* sendto refuses a stream transport. */
  int sv[2];
  assert_int_equal(
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
      0);
  static const fut_protocol_t nothing = {0};
  fut_transport_t *st;
  assert_int_equal(fut_transport_from_fd(loop, sv[0], &nothing, NULL, &st), 0);
  assert_int_equal(fut_transport_sendto(st, "x", 1, NULL, 0), -EINVAL);
  fut_transport_abort(st);
  for (int i = 0; i < 10 && fut_transport_fd(st) >= 0; i++)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(fut_transport_fd(st), -1);
  fut_transport_unref(st);
  close(sv[1]);

  /* fut__dgram_new closes what is not a socket. */
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  assert_int_equal(fut__dgram_new(loop, fd, &dproto, &r, false, &t), -ENOTSOCK);
  assert_null(t);
  assert_int_equal(fcntl(fd, F_GETFD), -1);

  /* A closed loop. */
  fut_loop_t *closed;
  assert_int_equal(fut_loop_new(&closed), 0);
  assert_int_equal(fut_loop_close(closed), 0);
  assert_int_equal(fut_create_datagram_endpoint(
                       closed, &dproto, &r, "127.0.0.1", 0, NULL, 0, NULL, &t),
                   FUT_E_CLOSED);
  assert_int_equal(fut_loop_free(closed), 0);
}

/* ---- names, inside a task -------------------------------------------------
 */

struct resolve_job {
  drec_t a, b;
  fut_transport_t *ta, *tb;
  int err_a, err_b;
};

static int resolve_task(void *arg) {
  struct resolve_job *j = arg;
  /* The running loop (NULL), a name for the local end. */
  j->err_a = fut_create_datagram_endpoint(NULL, &dproto, &j->a, "localhost", 0,
                                          NULL, 0, NULL, &j->ta);
  /* A name and a numeric address paired by family: IPv4. */
  j->err_b = fut_create_datagram_endpoint(NULL, &dproto, &j->b, "localhost", 0,
                                          "127.0.0.1", 9, NULL, &j->tb);
  return 0;
}

static void test_names_resolved_in_a_task(void **state) {
  fut_loop_t *loop = *state;
  struct resolve_job j = {0};
  fut_t *f;
  assert_int_equal(fut_create_task(loop, resolve_task, &j, NULL, &f), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  fut_unref(f);
  assert_int_equal(j.err_a, 0);
  assert_int_equal(j.err_b, 0);
  run_until(loop, made_set, &j.a);
  run_until(loop, made_set, &j.b);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  assert_int_equal(
      fut_transport_get_extra_info(j.ta, FUT_EXTRA_SOCKNAME, &ss, &len), 0);
  if (ss.ss_family == AF_INET)
    assert_int_equal(((struct sockaddr_in *)&ss)->sin_addr.s_addr,
                     htonl(INADDR_LOOPBACK));
  else
    assert_true(IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr));
  len = sizeof ss;
  assert_int_equal(
      fut_transport_get_extra_info(j.tb, FUT_EXTRA_SOCKNAME, &ss, &len), 0);
  assert_int_equal(ss.ss_family, AF_INET);
  assert_int_equal(((struct sockaddr_in *)&ss)->sin_addr.s_addr,
                   htonl(INADDR_LOOPBACK));
  close_and_drop(loop, &j.a, j.ta);
  close_and_drop(loop, &j.b, j.tb);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_echo_ipv4),
      FX_LOOP_TEST(test_echo_ipv6),
      FX_LOOP_TEST(test_no_address_no_family_refused),
      FX_LOOP_TEST(test_family_alone_is_unbound),
      FX_LOOP_TEST(test_connected_and_unconnected_addresses),
      FX_LOOP_TEST(test_connection_refused_keeps_endpoint),
      FX_LOOP_TEST(test_ten_thousand_udp_in_order),
      FX_LOOP_TEST(test_ten_thousand_unix_flow_control),
      FX_LOOP_TEST(test_queue_close_flushes),
      FX_LOOP_TEST(test_queue_abort_drops),
      FX_LOOP_TEST(test_queued_failures_go_to_error_received),
      FX_LOOP_TEST(test_emsgsize),
      FX_LOOP_TEST(test_close_from_datagram_received),
      FX_LOOP_TEST(test_loop_close_loses_endpoint),
      FX_LOOP_TEST(test_reuse_port),
      FX_LOOP_TEST(test_bad_arguments),
      FX_LOOP_TEST(test_names_resolved_in_a_task),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
