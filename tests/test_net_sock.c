/* Socket awaitables (asyncio's sock_* methods) on loopback, Unix sockets
 * and socketpairs: echo through accept / connect / sendall / recv_into,
 * UDP datagrams, refused and timed-out connects, cancellation during each
 * wait (nothing consumed, no watcher left, the socket still usable), a
 * partial send completed, one waiter per direction, the errors outside a
 * task and for bad arguments, and sendfile with its read + send fallback.
 *
 * This program is linked with -Wl,--wrap=sendfile (register_net.cmake): the
 * shim below passes through, or fails like a kernel that refuses sendfile
 * for the fds, which sends fut_sock_sendfile down its fallback. */
#include "fixture.h"
#include "task_helpers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "loop/internal.h"

/* ---- the sendfile shim --------------------------------------------------- */

static int sendfile_fail; /* errno to fail with, 0 = pass through */
static int sendfile_calls;

ssize_t __real_sendfile(int out_fd, int in_fd, off_t *offset, size_t count);
ssize_t __wrap_sendfile(int out_fd, int in_fd, off_t *offset, size_t count);
ssize_t __wrap_sendfile(int out_fd, int in_fd, off_t *offset, size_t count) {
  sendfile_calls++;
  if (sendfile_fail) {
    errno = sendfile_fail;
    return -1;
  }
  return __real_sendfile(out_fd, in_fd, offset, count);
}

/* ---- helpers ------------------------------------------------------------- */

static fut_t *go(fut_task_fn fn, void *arg) {
  fut_t *t;
  assert_int_equal(fut_create_task(fut_get_running_loop(), fn, arg, NULL, &t),
                   0);
  return t;
}

static int nb_socket(int family, int type) {
  int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  return fd;
}

static void nb_pair(int sv[2]) {
  assert_int_equal(
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
      0);
}

/* The loopback address of family (port 0). */
static socklen_t loopback(int family, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sizeof *in;
  }
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  in6->sin6_family = AF_INET6;
  in6->sin6_addr = in6addr_loopback;
  return sizeof *in6;
}

/* A socket of type bound to the loopback of family on a free port; *ss
 * its address.  -1 when the family is not available here. */
static int bound(int family, int type, struct sockaddr_storage *ss,
                 socklen_t *len) {
  int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  *len = loopback(family, ss);
  if (bind(fd, (struct sockaddr *)ss, *len) < 0) {
    close(fd);
    return -1;
  }
  assert_int_equal(getsockname(fd, (struct sockaddr *)ss, len), 0);
  return fd;
}

static int listener(int family, int backlog, struct sockaddr_storage *ss,
                    socklen_t *len) {
  int fd = bound(family, SOCK_STREAM, ss, len);
  if (fd >= 0)
    assert_int_equal(listen(fd, backlog), 0);
  return fd;
}

/* Whether dir of fd is watched on the running loop. */
static bool watched(fut_loop_t *loop, int fd, bool write) {
  if (fd >= loop->io_cap)
    return false;
  return write ? loop->io[fd].writer != NULL : loop->io[fd].reader != NULL;
}

/* In a task: yields until dir of fd is watched (another task waits). */
static void until_watched(int fd, bool write) {
  fut_loop_t *loop = fut_get_running_loop();
  for (int i = 0; i < 2000 && !watched(loop, fd, write); i++)
    assert_int_equal(fut_sleep(FUT_MS(1)), 0);
  assert_true(watched(loop, fd, write));
}

static unsigned char pat(size_t i) {
  return (unsigned char)(i % 251u + i / 65521u);
}

static unsigned char *pattern(size_t n) {
  unsigned char *p = malloc(n);
  assert_non_null(p);
  for (size_t i = 0; i < n; i++)
    p[i] = pat(i);
  return p;
}

/* Reads what is in a non-blocking fd now (nothing more is coming). */
static size_t drain_fd(int fd, unsigned char *buf, size_t cap) {
  size_t got = 0;
  for (;;) {
    ssize_t r = read(fd, buf + got, cap - got);
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  return got;
}

static void no_watchers(fut_loop_t *loop, int fd) {
  assert_int_equal(fut_loop_remove_reader(loop, fd), 0);
  assert_int_equal(fut_loop_remove_writer(loop, fd), 0);
  /* The fd can be watched again. */
  assert_int_equal(fut_loop_add_reader(loop, fd, fx_fail_cb, NULL), 0);
  assert_int_equal(fut_loop_remove_reader(loop, fd), 1);
}

/* ---- echo round trip ----------------------------------------------------- */

#define ECHO_LEN (256u * 1024u)

struct echo {
  int family;
  int lfd;
  struct sockaddr_storage addr;
  socklen_t alen;
  int accept_rc, server_rc, connect_rc, client_rc;
  bool conn_nonblock, conn_cloexec;
  struct sockaddr_storage peer;
  socklen_t peerlen;
  struct sockaddr_storage client_name;
  socklen_t client_namelen;
  unsigned char *back;
  size_t back_len;
};

static int echo_server(void *arg) {
  struct echo *e = arg;
  int c;
  e->peerlen = sizeof e->peer;
  e->accept_rc =
      fut_sock_accept(e->lfd, &c, (struct sockaddr *)&e->peer, &e->peerlen);
  if (e->accept_rc)
    return e->accept_rc;
  e->conn_nonblock = fcntl(c, F_GETFL) & O_NONBLOCK;
  e->conn_cloexec = fcntl(c, F_GETFD) & FD_CLOEXEC;
  char buf[8192];
  for (;;) {
    size_t n;
    int rc = fut_sock_recv_into(c, buf, sizeof buf, &n);
    if (rc || n == 0) {
      e->server_rc = rc;
      break;
    }
    if ((rc = fut_sock_sendall(c, buf, n))) {
      e->server_rc = rc;
      break;
    }
  }
  close(c);
  return 0;
}

static int echo_client(void *arg) {
  struct echo *e = arg;
  int fd = nb_socket(e->family, SOCK_STREAM);
  e->connect_rc = fut_sock_connect(fd, (struct sockaddr *)&e->addr, e->alen);
  if (e->connect_rc) {
    close(fd);
    return 0;
  }
  e->client_namelen = sizeof e->client_name;
  getsockname(fd, (struct sockaddr *)&e->client_name, &e->client_namelen);
  unsigned char *msg = pattern(ECHO_LEN);
  int rc = fut_sock_sendall(fd, msg, ECHO_LEN);
  free(msg);
  shutdown(fd, SHUT_WR);
  e->back = malloc(ECHO_LEN + 1);
  while (!rc) {
    size_t n;
    rc = fut_sock_recv_into(fd, e->back + e->back_len,
                            ECHO_LEN + 1 - e->back_len, &n);
    if (!rc && n == 0)
      break;
    e->back_len += n;
  }
  e->client_rc = rc;
  close(fd);
  return 0;
}

static int echo_main(void *arg) {
  fut_t *s = go(echo_server, arg), *c = go(echo_client, arg);
  fut_await(s, NULL);
  fut_await(c, NULL);
  fut_unref(s);
  fut_unref(c);
  return 0;
}

static void echo_round_trip(fut_loop_t *loop, int family) {
  struct echo e = {.family = family};
  e.lfd = listener(family, 16, &e.addr, &e.alen);
  if (e.lfd < 0) {
    skip(); /* no IPv6 loopback here */
    return;
  }
  assert_int_equal(run_main(loop, echo_main, &e), 0);
  assert_int_equal(e.accept_rc, 0);
  assert_int_equal(e.connect_rc, 0);
  assert_int_equal(e.server_rc, 0);
  assert_int_equal(e.client_rc, 0);
  assert_true(e.conn_nonblock);
  assert_true(e.conn_cloexec);
  /* The accepted peer's address is the client's own name. */
  assert_int_equal(e.peerlen, e.client_namelen);
  assert_memory_equal(&e.peer, &e.client_name, e.peerlen);
  assert_int_equal(e.back_len, ECHO_LEN);
  unsigned char *msg = pattern(ECHO_LEN);
  assert_memory_equal(e.back, msg, ECHO_LEN);
  free(msg);
  free(e.back);
  close(e.lfd);
}

static void test_echo_tcp_ipv4(void **state) {
  echo_round_trip(*state, AF_INET);
}

static void test_echo_tcp_ipv6(void **state) {
  echo_round_trip(*state, AF_INET6);
}

/* ---- Unix sockets -------------------------------------------------------- */

struct unix_ctx {
  int lfd;
  struct sockaddr_un sun;
  socklen_t slen;
  int accept_rc, connect_rc, recv_rc, send_rc;
  char got[16];
  size_t got_n;
};

static int unix_server(void *arg) {
  struct unix_ctx *u = arg;
  int c;
  u->accept_rc = fut_sock_accept(u->lfd, &c, NULL, NULL);
  if (u->accept_rc)
    return 0;
  u->recv_rc = fut_sock_recv_into(c, u->got, sizeof u->got, &u->got_n);
  close(c);
  return 0;
}

static int unix_main(void *arg) {
  struct unix_ctx *u = arg;
  fut_t *s = go(unix_server, u);
  assert_int_equal(fut_yield(), 0); /* the server waits in accept */
  int fd = nb_socket(AF_UNIX, SOCK_STREAM);
  u->connect_rc = fut_sock_connect(fd, (struct sockaddr *)&u->sun, u->slen);
  u->send_rc = fut_sock_sendall(fd, "unix!", 5);
  fut_await(s, NULL);
  fut_unref(s);
  close(fd);
  return 0;
}

static void test_unix_connect_accept(void **state) {
  fut_loop_t *loop = *state;
  char dir[] = "/tmp/fut-sock-XXXXXX";
  assert_non_null(mkdtemp(dir));
  struct unix_ctx u = {0};
  u.sun.sun_family = AF_UNIX;
  snprintf(u.sun.sun_path, sizeof u.sun.sun_path, "%s/s", dir);
  u.slen = sizeof u.sun;
  u.lfd = nb_socket(AF_UNIX, SOCK_STREAM);
  assert_int_equal(bind(u.lfd, (struct sockaddr *)&u.sun, u.slen), 0);
  assert_int_equal(listen(u.lfd, 4), 0);
  assert_int_equal(run_main(loop, unix_main, &u), 0);
  assert_int_equal(u.accept_rc, 0);
  assert_int_equal(u.connect_rc, 0);
  assert_int_equal(u.send_rc, 0);
  assert_int_equal(u.recv_rc, 0);
  assert_int_equal(u.got_n, 5);
  assert_memory_equal(u.got, "unix!", 5);
  close(u.lfd);
  unlink(u.sun.sun_path);
  rmdir(dir);
}

/* ---- UDP ----------------------------------------------------------------- */

struct udp {
  int a, b;
  struct sockaddr_storage aaddr, baddr;
  socklen_t alen, blen;
  int rc[16];
  char got[3][32];
  size_t got_n[3];
  struct sockaddr_storage from[3];
  socklen_t fromlen[3];
  void *reply;
  size_t reply_len;
  size_t zero_got;
  int big_rc;
};

static int udp_main(void *arg) {
  struct udp *u = arg;
  static const char *msgs[3] = {"one", "datagram two", "3"};
  for (int i = 0; i < 3; i++)
    u->rc[i] = fut_sock_sendto(u->a, msgs[i], strlen(msgs[i]),
                               (struct sockaddr *)&u->baddr, u->blen);
  for (int i = 0; i < 3; i++) {
    u->fromlen[i] = sizeof u->from[i];
    u->rc[3 + i] =
        fut_sock_recvfrom(u->b, u->got[i], sizeof u->got[i], &u->got_n[i],
                          (struct sockaddr *)&u->from[i], &u->fromlen[i]);
  }
  /* Reply to the sender's address; the sender reads it with sock_recv. */
  u->rc[6] = fut_sock_sendto(u->b, "reply", 5, (struct sockaddr *)&u->from[0],
                             u->fromlen[0]);
  u->rc[7] = fut_sock_recv(u->a, 100, &u->reply, &u->reply_len);
  /* recv_into with no room takes nothing (the datagram stays). */
  u->rc[8] =
      fut_sock_sendto(u->a, "x", 1, (struct sockaddr *)&u->baddr, u->blen);
  char c;
  u->rc[9] = fut_sock_recv_into(u->b, &c, 0, &u->zero_got);
  u->rc[10] = fut_sock_recvfrom(u->b, &c, 1, &u->zero_got, NULL, NULL);
  /* Bigger than any UDP datagram. */
  size_t big = 70000;
  char *p = calloc(1, big);
  u->big_rc =
      fut_sock_sendto(u->a, p, big, (struct sockaddr *)&u->baddr, u->blen);
  free(p);
  return 0;
}

static void test_udp_recvfrom_sendto(void **state) {
  fut_loop_t *loop = *state;
  struct udp u = {0};
  u.a = bound(AF_INET, SOCK_DGRAM, &u.aaddr, &u.alen);
  u.b = bound(AF_INET, SOCK_DGRAM, &u.baddr, &u.blen);
  assert_true(u.a >= 0 && u.b >= 0);
  assert_int_equal(run_main(loop, udp_main, &u), 0);
  for (int i = 0; i < 11; i++)
    assert_int_equal(u.rc[i], 0);
  assert_int_equal(u.got_n[0], 3);
  assert_memory_equal(u.got[0], "one", 3);
  assert_int_equal(u.got_n[1], 12);
  assert_memory_equal(u.got[1], "datagram two", 12);
  assert_int_equal(u.got_n[2], 1);
  assert_memory_equal(u.got[2], "3", 1);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(u.fromlen[i], u.alen);
    assert_memory_equal(&u.from[i], &u.aaddr, u.alen);
  }
  assert_int_equal(u.reply_len, 5);
  assert_memory_equal(u.reply, "reply", 5);
  free(u.reply);
  assert_int_equal(u.zero_got, 1); /* the "x" was still there */
  assert_int_equal(u.big_rc, -EMSGSIZE);
  assert_non_null(strstr(fut_last_error(), "70000"));
  close(u.a);
  close(u.b);
}

/* ---- connect errors ------------------------------------------------------ */

struct conn_ctx {
  struct sockaddr_storage addr;
  socklen_t alen;
  int rc;
  char msg[256];
  int fds[32];
  int nfds;
  int timed_out; /* index of the connect that timed out, or -1 */
  uint64_t waited_ns;
};

static int refused_main(void *arg) {
  struct conn_ctx *c = arg;
  int fd = nb_socket(AF_INET, SOCK_STREAM);
  c->rc = fut_sock_connect(fd, (struct sockaddr *)&c->addr, c->alen);
  snprintf(c->msg, sizeof c->msg, "%s", fut_last_error());
  close(fd);
  return 0;
}

static void test_connect_refused(void **state) {
  fut_loop_t *loop = *state;
  struct conn_ctx c = {0};
  /* A port bound but not listening answers with a reset; holding it
   * bound keeps anyone else from taking it meanwhile. */
  int hold = bound(AF_INET, SOCK_STREAM, &c.addr, &c.alen);
  assert_true(hold >= 0);
  assert_int_equal(run_main(loop, refused_main, &c), 0);
  assert_int_equal(c.rc, -ECONNREFUSED);
  assert_non_null(strstr(c.msg, "127.0.0.1:"));
  close(hold);
}

/* Connects fresh sockets to a listener that never accepts (backlog 0),
 * each bounded by a 50 ms timeout scope, until one hangs: the accept queue
 * is full and the kernel drops its SYN.  Everything stays on loopback. */
static int fill_backlog(struct conn_ctx *c) {
  c->timed_out = -1;
  while (c->nfds < 16) {
    int fd = nb_socket(AF_INET, SOCK_STREAM);
    c->fds[c->nfds++] = fd;
    fut_timeout_t *to;
    assert_int_equal(fut_timeout_enter(FUT_MS(50), &to), 0);
    uint64_t t0 = fut_loop_time(NULL);
    int rc = fut_sock_connect(fd, (struct sockaddr *)&c->addr, c->alen);
    rc = fut_timeout_exit(to, rc);
    c->waited_ns = fut_loop_time(NULL) - t0;
    if (rc == -ETIMEDOUT) {
      c->timed_out = c->nfds - 1;
      return 0;
    }
    c->rc = rc;
    if (rc)
      return rc;
  }
  return 0;
}

static int timeout_main(void *arg) {
  struct conn_ctx *c = arg;
  c->rc = fill_backlog(c);
  return 0;
}

static void close_all(struct conn_ctx *c) {
  for (int i = 0; i < c->nfds; i++)
    close(c->fds[i]);
}

static void test_connect_timeout_full_backlog(void **state) {
  fut_loop_t *loop = *state;
  struct conn_ctx c = {0};
  int lfd = listener(AF_INET, 0, &c.addr, &c.alen);
  assert_true(lfd >= 0);
  assert_int_equal(run_main(loop, timeout_main, &c), 0);
  assert_int_equal(c.rc, 0);
  if (c.timed_out < 0) {
    close_all(&c);
    close(lfd);
    skip(); /* this kernel never left a connect hanging */
    return;
  }
  assert_true(c.waited_ns >= FUT_MS(50));
  assert_true(c.waited_ns < FUT_SEC(5));
  /* The timed-out wait left no watcher behind. */
  no_watchers(loop, c.fds[c.timed_out]);
  close_all(&c);
  close(lfd);
}

/* ---- cancellation during each wait --------------------------------------- */

enum op { OP_RECV, OP_ACCEPT, OP_SENDALL, OP_CONNECT };

#define BIG (4u * 1024u * 1024u)

struct blocked {
  enum op op;
  int fd;
  const struct sockaddr *sa;
  socklen_t salen;
  const unsigned char *data;
  int rc;
  size_t n;
  int conn;
  int busy_rc; /* a second waiter in the same direction */
  int await_rc;
  bool done_before_cancel;
};

static int do_op(void *arg) {
  struct blocked *b = arg;
  char buf[16];
  switch (b->op) {
  case OP_RECV:
    b->rc = fut_sock_recv_into(b->fd, buf, sizeof buf, &b->n);
    break;
  case OP_ACCEPT:
    b->rc = fut_sock_accept(b->fd, &b->conn, NULL, NULL);
    break;
  case OP_SENDALL:
    b->rc = fut_sock_sendall_ex(b->fd, b->data, BIG, &b->n);
    break;
  case OP_CONNECT:
    b->rc = fut_sock_connect(b->fd, b->sa, b->salen);
    break;
  }
  return b->rc;
}

static int second_waiter(struct blocked *b) {
  char buf[4];
  size_t n;
  int conn;
  switch (b->op) {
  case OP_RECV:
    return fut_sock_recv_into(b->fd, buf, sizeof buf, &n);
  case OP_ACCEPT:
    return fut_sock_accept(b->fd, &conn, NULL, NULL);
  case OP_SENDALL:
    return fut_sock_sendall(b->fd, "x", 1);
  case OP_CONNECT:
    return fut_sock_connect(b->fd, b->sa, b->salen);
  }
  return 0;
}

static int cancel_main(void *arg) {
  struct blocked *b = arg;
  fut_t *t = go(do_op, b);
  bool write = b->op == OP_SENDALL || b->op == OP_CONNECT;
  until_watched(b->fd, write);
  b->done_before_cancel = fut_done(t);
  b->busy_rc = second_waiter(b);
  assert_true(fut_cancel(t, "stop"));
  b->await_rc = fut_await(t, NULL);
  fut_unref(t);
  return 0;
}

static void run_cancel(fut_loop_t *loop, struct blocked *b) {
  assert_int_equal(run_main(loop, cancel_main, b), 0);
  assert_false(b->done_before_cancel);
  assert_int_equal(b->busy_rc, -EBUSY);
  assert_int_equal(b->rc, -ECANCELED);
  assert_int_equal(b->await_rc, -ECANCELED);
  no_watchers(loop, b->fd);
}

struct recv_again {
  int fd;
  int rc;
  char buf[8];
  size_t n;
};

static int recv_again(void *arg) {
  struct recv_again *r = arg;
  r->rc = fut_sock_recv_into(r->fd, r->buf, sizeof r->buf, &r->n);
  return 0;
}

static void test_cancel_recv(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  nb_pair(sv);
  struct blocked b = {.op = OP_RECV, .fd = sv[0]};
  run_cancel(loop, &b);
  assert_int_equal(b.n, 0);
  /* Usable: the next recv gets what is sent now. */
  assert_int_equal(write(sv[1], "hi", 2), 2);
  struct recv_again r = {.fd = sv[0]};
  assert_int_equal(run_main(loop, recv_again, &r), 0);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.n, 2);
  assert_memory_equal(r.buf, "hi", 2);
  close(sv[0]);
  close(sv[1]);
}

struct accept_again {
  int lfd;
  int rc;
  int conn;
};

static int accept_again(void *arg) {
  struct accept_again *a = arg;
  a->rc = fut_sock_accept(a->lfd, &a->conn, NULL, NULL);
  return 0;
}

static void test_cancel_accept(void **state) {
  fut_loop_t *loop = *state;
  struct sockaddr_storage ss;
  socklen_t len;
  int lfd = listener(AF_INET, 4, &ss, &len);
  assert_true(lfd >= 0);
  struct blocked b = {.op = OP_ACCEPT, .fd = lfd};
  run_cancel(loop, &b);
  assert_int_equal(b.conn, -1);
  /* Usable: a connection made now is accepted. */
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal(connect(c, (struct sockaddr *)&ss, len), 0);
  struct accept_again a = {.lfd = lfd};
  assert_int_equal(run_main(loop, accept_again, &a), 0);
  assert_int_equal(a.rc, 0);
  assert_true(a.conn >= 0);
  close(a.conn);
  close(c);
  close(lfd);
}

struct send_again {
  int fd;
  int rc;
};

static int send_again(void *arg) {
  struct send_again *s = arg;
  s->rc = fut_sock_sendall(s->fd, "tail", 4);
  return 0;
}

static void test_cancel_sendall_full(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  nb_pair(sv);
  unsigned char *data = pattern(BIG);
  struct blocked b = {.op = OP_SENDALL, .fd = sv[0], .data = data};
  run_cancel(loop, &b);
  /* Part went out, and *sent says exactly how much. */
  assert_true(b.n > 0 && b.n < BIG);
  unsigned char *got = malloc(BIG);
  assert_int_equal(drain_fd(sv[1], got, BIG), b.n);
  assert_memory_equal(got, data, b.n);
  /* Usable: a later sendall goes through whole. */
  struct send_again s = {.fd = sv[0]};
  assert_int_equal(run_main(loop, send_again, &s), 0);
  assert_int_equal(s.rc, 0);
  assert_int_equal(drain_fd(sv[1], got, BIG), 4);
  assert_memory_equal(got, "tail", 4);
  free(got);
  free(data);
  close(sv[0]);
  close(sv[1]);
}

static int connect_again_main(void *arg) {
  struct conn_ctx *c = arg;
  fut_timeout_t *to;
  assert_int_equal(fut_timeout_enter(FUT_MS(50), &to), 0);
  int rc = fut_sock_connect(c->fds[c->nfds - 1], (struct sockaddr *)&c->addr,
                            c->alen);
  c->rc = fut_timeout_exit(to, rc);
  return 0;
}

static void test_cancel_connect(void **state) {
  fut_loop_t *loop = *state;
  struct conn_ctx c = {0};
  int lfd = listener(AF_INET, 0, &c.addr, &c.alen);
  assert_true(lfd >= 0);
  assert_int_equal(run_main(loop, timeout_main, &c), 0);
  assert_int_equal(c.rc, 0);
  if (c.timed_out < 0) {
    close_all(&c);
    close(lfd);
    skip();
    return;
  }
  /* The backlog is full: one more connect hangs until cancelled. */
  int fd = nb_socket(AF_INET, SOCK_STREAM);
  struct blocked b = {.op = OP_CONNECT,
                      .fd = fd,
                      .sa = (struct sockaddr *)&c.addr,
                      .salen = c.alen};
  run_cancel(loop, &b);
  /* Called again, connect waits for the outcome of the one still going
   * on (EALREADY), here until its timeout. */
  c.fds[c.nfds++] = fd;
  c.rc = 1;
  assert_int_equal(run_main(loop, connect_again_main, &c), 0);
  assert_int_equal(c.rc, -ETIMEDOUT);
  no_watchers(loop, fd);
  close_all(&c);
  close(lfd);
}

/* ---- a partial send completed -------------------------------------------- */

struct slow {
  int w, r;
  const unsigned char *data;
  int send_rc, recv_rc;
  size_t sent;
  unsigned char *got;
  size_t got_n;
  unsigned reads;
};

static int slow_writer(void *arg) {
  struct slow *s = arg;
  s->send_rc = fut_sock_sendall_ex(s->w, s->data, BIG, &s->sent);
  return 0;
}

static int slow_reader(void *arg) {
  struct slow *s = arg;
  while (s->got_n < BIG) {
    size_t n;
    s->recv_rc = fut_sock_recv_into(s->r, s->got + s->got_n, 4096, &n);
    if (s->recv_rc || n == 0)
      break;
    s->got_n += n;
    if (++s->reads % 32 == 0 && fut_sleep(FUT_MS(1)))
      break;
  }
  return 0;
}

static int slow_main(void *arg) {
  fut_t *w = go(slow_writer, arg), *r = go(slow_reader, arg);
  fut_await(w, NULL);
  fut_await(r, NULL);
  fut_unref(w);
  fut_unref(r);
  return 0;
}

static void test_sendall_partial_completed(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  nb_pair(sv);
  struct slow s = {.w = sv[0], .r = sv[1]};
  unsigned char *data = pattern(BIG);
  s.data = data;
  s.got = malloc(BIG);
  assert_int_equal(run_main(loop, slow_main, &s), 0);
  assert_int_equal(s.send_rc, 0);
  assert_int_equal(s.recv_rc, 0);
  assert_int_equal(s.sent, BIG);
  assert_int_equal(s.got_n, BIG);
  assert_memory_equal(s.got, data, BIG);
  assert_true(s.reads > 1);
  free(s.got);
  free(data);
  close(sv[0]);
  close(sv[1]);
}

/* ---- one waiter per direction -------------------------------------------- */

struct busy {
  int fd;
  int first_rc, second_rc, watched_rc, writer_rc, peer;
  size_t first_n;
  char first_buf[8];
};

static int busy_first(void *arg) {
  struct busy *b = arg;
  b->first_rc =
      fut_sock_recv_into(b->fd, b->first_buf, sizeof b->first_buf, &b->first_n);
  return 0;
}

static int busy_main(void *arg) {
  struct busy *b = arg;
  fut_t *t = go(busy_first, b);
  until_watched(b->fd, false);
  /* Data arrives, but the second reader is refused before its syscall:
   * the bytes stay for the first. */
  assert_int_equal(write(b->peer, "abc", 3), 3);
  char buf[8];
  size_t n = 99;
  b->second_rc = fut_sock_recv_into(b->fd, buf, sizeof buf, &n);
  assert_int_equal(n, 0);
  /* A writer may wait on the same socket meanwhile. */
  b->writer_rc = fut_sock_sendall(b->fd, "w", 1);
  fut_await(t, NULL);
  fut_unref(t);
  /* An fd watched with add_reader is busy too. */
  fut_loop_t *loop = fut_get_running_loop();
  assert_int_equal(fut_loop_add_reader(loop, b->fd, fx_fail_cb, NULL), 0);
  b->watched_rc = fut_sock_recv_into(b->fd, buf, sizeof buf, &n);
  assert_int_equal(fut_loop_remove_reader(loop, b->fd), 1);
  return 0;
}

static void test_second_reader_ebusy(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  nb_pair(sv);
  struct busy b = {.fd = sv[0], .peer = sv[1]};
  assert_int_equal(run_main(loop, busy_main, &b), 0);
  assert_int_equal(b.second_rc, -EBUSY);
  assert_non_null(strstr(fut_last_error(), "already has a reader"));
  assert_int_equal(b.writer_rc, 0);
  assert_int_equal(b.first_rc, 0);
  assert_int_equal(b.first_n, 3);
  assert_memory_equal(b.first_buf, "abc", 3);
  assert_int_equal(b.watched_rc, -EBUSY);
  char c;
  assert_int_equal(read(sv[1], &c, 1), 1);
  assert_int_equal(c, 'w');
  close(sv[0]);
  close(sv[1]);
}

/* ---- peer gone: EOF and EPIPE -------------------------------------------- */

struct gone {
  int fd;
  int recv_rc, send_rc;
  size_t n;
  void *data;
  size_t len;
  int recv2_rc;
};

static int gone_main(void *arg) {
  struct gone *g = arg;
  char buf[4];
  g->recv_rc = fut_sock_recv_into(g->fd, buf, sizeof buf, &g->n);
  g->recv2_rc = fut_sock_recv(g->fd, 64, &g->data, &g->len);
  g->send_rc = fut_sock_sendall(g->fd, "x", 1);
  return 0;
}

static void test_peer_closed_eof_and_epipe(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  nb_pair(sv);
  close(sv[1]);
  struct gone g = {.fd = sv[0], .n = 99, .len = 99};
  /* No SIGPIPE: the process would die here. */
  assert_int_equal(run_main(loop, gone_main, &g), 0);
  assert_int_equal(g.recv_rc, 0);
  assert_int_equal(g.n, 0);
  assert_int_equal(g.recv2_rc, 0);
  assert_null(g.data);
  assert_int_equal(g.len, 0);
  assert_int_equal(g.send_rc, -EPIPE);
  close(sv[0]);
}

/* ---- outside a task ------------------------------------------------------ */

static void test_not_in_task(void **state) {
  (void)state;
  int sv[2];
  nb_pair(sv);
  assert_int_equal(write(sv[1], "data", 4), 4);
  char buf[8];
  size_t n = 7;
  assert_int_equal(fut_sock_recv_into(sv[0], buf, sizeof buf, &n),
                   FUT_E_NOT_IN_TASK);
  assert_int_equal(n, 0);
  void *data = buf;
  size_t len = 7;
  assert_int_equal(fut_sock_recv(sv[0], 8, &data, &len), FUT_E_NOT_IN_TASK);
  assert_null(data);
  assert_int_equal(len, 0);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  n = 7;
  assert_int_equal(fut_sock_recvfrom(sv[0], buf, sizeof buf, &n,
                                     (struct sockaddr *)&ss, &sl),
                   FUT_E_NOT_IN_TASK);
  assert_int_equal(n, 0);
  assert_int_equal(sl, 0);
  size_t sent = 7;
  assert_int_equal(fut_sock_sendall(sv[0], "x", 1), FUT_E_NOT_IN_TASK);
  assert_int_equal(fut_sock_sendall_ex(sv[0], "x", 1, &sent),
                   FUT_E_NOT_IN_TASK);
  assert_int_equal(sent, 0);
  assert_int_equal(fut_sock_sendto(sv[0], "x", 1, NULL, 0), FUT_E_NOT_IN_TASK);
  int conn = 7;
  assert_int_equal(fut_sock_accept(sv[0], &conn, NULL, NULL),
                   FUT_E_NOT_IN_TASK);
  assert_int_equal(conn, -1);
  struct sockaddr_in in = {.sin_family = AF_INET};
  assert_int_equal(fut_sock_connect(sv[0], (struct sockaddr *)&in, sizeof in),
                   FUT_E_NOT_IN_TASK);
  sent = 7;
  assert_int_equal(fut_sock_sendfile(sv[0], 0, NULL, 1, &sent),
                   FUT_E_NOT_IN_TASK);
  assert_int_equal(sent, 0);
  assert_non_null(strstr(fut_last_error(), "fut_sock_sendfile"));
  /* Nothing was consumed, nothing sent. */
  assert_int_equal(read(sv[1], buf, sizeof buf), -1);
  assert_int_equal(read(sv[0], buf, sizeof buf), 4);
  close(sv[0]);
  close(sv[1]);
}

/* ---- bad arguments ------------------------------------------------------- */

struct bad {
  int fd, closed_fd, blocking_fd, file_fd;
  int rc[32];
  char msg[32][160];
  int n;
  size_t got;
  int conn;
};

static void note(struct bad *b, int rc) {
  snprintf(b->msg[b->n], sizeof b->msg[b->n], "%s", fut_last_error());
  b->rc[b->n++] = rc;
}

static int bad_main(void *arg) {
  struct bad *b = arg;
  char buf[4];
  void *data;
  size_t len;
  struct sockaddr_in in = {.sin_family = AF_INET};
  struct sockaddr_storage ss;
  note(b, fut_sock_recv_into(-1, buf, 4, &b->got));     /* 0 */
  note(b, fut_sock_recv_into(b->fd, NULL, 4, &b->got)); /* 1 */
  note(b, fut_sock_recv_into(b->fd, buf, 4, NULL));     /* 2 */
  note(b, fut_sock_recv(b->fd, 4, NULL, &len));         /* 3 */
  note(b, fut_sock_recvfrom(b->fd, buf, 4, &b->got, (struct sockaddr *)&ss,
                            NULL));                           /* 4 */
  note(b, fut_sock_sendall(b->fd, NULL, 4));                  /* 5 */
  note(b, fut_sock_sendto(b->fd, "x", 1, NULL, 16));          /* 6 */
  note(b, fut_sock_accept(b->fd, NULL, NULL, NULL));          /* 7 */
  note(b, fut_sock_connect(b->fd, NULL, 16));                 /* 8 */
  note(b, fut_sock_recv_into(b->closed_fd, buf, 4, &b->got)); /* 9 */
  note(b, fut_sock_sendall(b->closed_fd, "x", 1));            /* 10 */
  /* accept and connect have no MSG_DONTWAIT: a blocking socket is
   * refused rather than left to block the loop. */
  note(b, fut_sock_connect(b->blocking_fd, (struct sockaddr *)&in,
                           sizeof in));                           /* 11 */
  note(b, fut_sock_accept(b->blocking_fd, &b->conn, NULL, NULL)); /* 12 */
  note(b,
       fut_sock_sendfile(b->blocking_fd, b->file_fd, NULL, 1, NULL)); /* 13 */
  off_t neg = -1;
  note(b, fut_sock_sendfile(b->fd, b->file_fd, &neg, 1, NULL)); /* 14 */
  note(b, fut_sock_sendfile(-1, b->file_fd, NULL, 1, NULL));    /* 15 */
  note(b, fut_sock_set_nonblocking(-1));                        /* 16 */
  note(b, fut_sock_set_nonblocking(b->closed_fd));              /* 17 */
  /* Zero-length calls succeed at once. */
  note(b, fut_sock_recv_into(b->fd, NULL, 0, &b->got)); /* 18 */
  note(b, fut_sock_sendall(b->fd, NULL, 0));            /* 19 */
  data = buf;
  note(b, fut_sock_recv(b->fd, 0, &data, &len)); /* 20 */
  b->rc[b->n] = data == NULL && len == 0;
  snprintf(b->msg[b->n++], 8, "recv0"); /* 21 */
  return 0;
}

static void test_bad_arguments(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  nb_pair(sv);
  struct bad b = {.fd = sv[0]};
  b.blocking_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  b.file_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  b.closed_fd = dup(sv[0]); /* a number nothing else takes meanwhile */
  close(b.closed_fd);
  assert_true(b.blocking_fd >= 0 && b.file_fd >= 0);
  assert_int_equal(run_main(loop, bad_main, &b), 0);
  static const int want[] = {
      -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL,
      -EINVAL, -EBADF,  -EBADF,  -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL,
      -EBADF,  -EBADF,  0,       0,       0,       1};
  assert_int_equal(b.n, sizeof want / sizeof want[0]);
  for (int i = 0; i < b.n; i++) {
    if (b.rc[i] != want[i])
      fail_msg("call %d: %s, want %s (%s)", i, fut_err_name(b.rc[i]),
               fut_err_name(want[i]), b.msg[i]);
    if (want[i] < 0 && !b.msg[i][0])
      fail_msg("call %d failed without a message", i);
  }
  assert_non_null(strstr(b.msg[11], "blocking"));
  assert_int_equal(b.conn, -1);
  close(b.blocking_fd);
  close(b.file_fd);
  close(sv[0]);
  close(sv[1]);
}

static void test_set_nonblocking(void **state) {
  (void)state;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
  assert_int_equal(fut_sock_set_nonblocking(fd), 0);
  assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
  assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  assert_int_equal(fut_sock_set_nonblocking(fd), 0); /* idempotent */
  close(fd);
}

/* ---- sendfile ------------------------------------------------------------ */

#define FILE_LEN (3u * 1024u * 1024u + 123u)

/* A temp file holding pattern(FILE_LEN), unlinked (the fd keeps it). */
static int temp_file(void) {
  char path[] = "/tmp/fut-sendfile-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unlink(path);
  unsigned char *p = pattern(FILE_LEN);
  assert_int_equal(write(fd, p, FILE_LEN), (ssize_t)FILE_LEN);
  free(p);
  return fd;
}

struct sf {
  int sock, peer, file;
  off_t *offset;
  size_t count;
  int rc, recv_rc;
  size_t sent;
  unsigned char *got;
  size_t got_n, want_n;
  bool cancel; /* cancel the sender once it waits */
};

static int sf_sender(void *arg) {
  struct sf *s = arg;
  s->rc = fut_sock_sendfile(s->sock, s->file, s->offset, s->count, &s->sent);
  return 0;
}

static int sf_reader(void *arg) {
  struct sf *s = arg;
  while (s->got_n < s->want_n) {
    size_t n;
    s->recv_rc = fut_sock_recv_into(s->peer, s->got + s->got_n,
                                    s->want_n - s->got_n, &n);
    if (s->recv_rc || n == 0)
      break;
    s->got_n += n;
  }
  return 0;
}

static int sf_main(void *arg) {
  struct sf *s = arg;
  fut_t *w = go(sf_sender, s);
  if (s->cancel) {
    until_watched(s->sock, true);
    assert_true(fut_cancel(w, NULL));
    fut_await(w, NULL);
    fut_unref(w);
    return 0;
  }
  fut_t *r = go(sf_reader, s);
  fut_await(w, NULL);
  fut_await(r, NULL);
  fut_unref(w);
  fut_unref(r);
  return 0;
}

static void sendfile_case(fut_loop_t *loop, int fail, bool use_offset) {
  int sv[2];
  nb_pair(sv);
  int file = temp_file();
  const size_t start = 1000;
  off_t off = (off_t)start;
  if (!use_offset)
    assert_int_equal(lseek(file, (off_t)start, SEEK_SET), (off_t)start);
  struct sf s = {.sock = sv[0],
                 .peer = sv[1],
                 .file = file,
                 .offset = use_offset ? &off : NULL,
                 .count = 0, /* to the end of the file */
                 .want_n = FILE_LEN - start};
  s.got = malloc(FILE_LEN);
  sendfile_fail = fail;
  sendfile_calls = 0;
  assert_int_equal(run_main(loop, sf_main, &s), 0);
  sendfile_fail = 0;
  assert_true(sendfile_calls >= 1);
  if (fail)
    assert_int_equal(sendfile_calls, 1); /* refused once, then copying */
  assert_int_equal(s.rc, 0);
  assert_int_equal(s.recv_rc, 0);
  assert_int_equal(s.sent, FILE_LEN - start);
  assert_int_equal(s.got_n, FILE_LEN - start);
  unsigned char *p = pattern(FILE_LEN);
  assert_memory_equal(s.got, p + start, FILE_LEN - start);
  free(p);
  if (use_offset) {
    assert_int_equal(off, (off_t)FILE_LEN);
    /* The file position was not used. */
    assert_int_equal(lseek(file, 0, SEEK_CUR), (off_t)FILE_LEN);
  } else {
    assert_int_equal(lseek(file, 0, SEEK_CUR), (off_t)FILE_LEN);
  }
  free(s.got);
  close(file);
  close(sv[0]);
  close(sv[1]);
}

static void test_sendfile_offset(void **state) {
  sendfile_case(*state, 0, true);
}

static void test_sendfile_file_position(void **state) {
  sendfile_case(*state, 0, false);
}

static void test_sendfile_fallback_einval(void **state) {
  sendfile_case(*state, EINVAL, true);
}

static void test_sendfile_fallback_enosys_file_position(void **state) {
  sendfile_case(*state, ENOSYS, false);
}

/* count bounds the send; a count past the end stops at end of file. */
struct sf_count {
  int sock, file;
  off_t off;
  int rc[2];
  size_t sent[2];
};

static int sf_count_main(void *arg) {
  struct sf_count *c = arg;
  c->rc[0] = fut_sock_sendfile(c->sock, c->file, &c->off, 100, &c->sent[0]);
  c->off = (off_t)FILE_LEN - 10;
  c->rc[1] = fut_sock_sendfile(c->sock, c->file, &c->off, 1000, &c->sent[1]);
  return 0;
}

static void test_sendfile_count(void **state) {
  fut_loop_t *loop = *state;
  int sv[2];
  nb_pair(sv);
  int file = temp_file();
  struct sf_count c = {.sock = sv[0], .file = file, .off = 5};
  for (int fail = 0; fail < 2; fail++) {
    sendfile_fail = fail ? EINVAL : 0;
    c.off = 5;
    assert_int_equal(run_main(loop, sf_count_main, &c), 0);
    assert_int_equal(c.rc[0], 0);
    assert_int_equal(c.sent[0], 100);
    assert_int_equal(c.rc[1], 0);
    assert_int_equal(c.sent[1], 10);
    assert_int_equal(c.off, (off_t)FILE_LEN);
    unsigned char buf[200], *p = pattern(FILE_LEN);
    assert_int_equal(drain_fd(sv[1], buf, sizeof buf), 110);
    assert_memory_equal(buf, p + 5, 100);
    assert_memory_equal(buf + 100, p + FILE_LEN - 10, 10);
    free(p);
  }
  sendfile_fail = 0;
  close(file);
  close(sv[0]);
  close(sv[1]);
}

/* Cancelled while the socket is full: *sent is what the peer can read,
 * and the offset (or the file position) moved by exactly that. */
static void sendfile_cancel_case(fut_loop_t *loop, int fail, bool use_offset) {
  int sv[2];
  nb_pair(sv);
  int file = temp_file();
  off_t off = 0;
  assert_int_equal(lseek(file, 0, SEEK_SET), 0);
  struct sf s = {.sock = sv[0],
                 .peer = sv[1],
                 .file = file,
                 .offset = use_offset ? &off : NULL,
                 .cancel = true};
  sendfile_fail = fail;
  assert_int_equal(run_main(loop, sf_main, &s), 0);
  sendfile_fail = 0;
  assert_int_equal(s.rc, -ECANCELED);
  assert_true(s.sent > 0 && s.sent < FILE_LEN);
  unsigned char *got = malloc(FILE_LEN), *p = pattern(FILE_LEN);
  assert_int_equal(drain_fd(sv[1], got, FILE_LEN), s.sent);
  assert_memory_equal(got, p, s.sent);
  if (use_offset)
    assert_int_equal(off, (off_t)s.sent);
  else
    assert_int_equal(lseek(file, 0, SEEK_CUR), (off_t)s.sent);
  no_watchers(loop, sv[0]);
  free(got);
  free(p);
  close(file);
  close(sv[0]);
  close(sv[1]);
}

static void test_sendfile_cancel_exact(void **state) {
  sendfile_cancel_case(*state, 0, true);
  sendfile_cancel_case(*state, 0, false);
}

static void test_sendfile_fallback_cancel_exact(void **state) {
  sendfile_cancel_case(*state, EINVAL, true);
  sendfile_cancel_case(*state, EINVAL, false);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_echo_tcp_ipv4),
      FX_LOOP_TEST(test_echo_tcp_ipv6),
      FX_LOOP_TEST(test_unix_connect_accept),
      FX_LOOP_TEST(test_udp_recvfrom_sendto),
      FX_LOOP_TEST(test_connect_refused),
      FX_LOOP_TEST(test_connect_timeout_full_backlog),
      FX_LOOP_TEST(test_cancel_recv),
      FX_LOOP_TEST(test_cancel_accept),
      FX_LOOP_TEST(test_cancel_sendall_full),
      FX_LOOP_TEST(test_cancel_connect),
      FX_LOOP_TEST(test_sendall_partial_completed),
      FX_LOOP_TEST(test_second_reader_ebusy),
      FX_LOOP_TEST(test_peer_closed_eof_and_epipe),
      FX_LOOP_TEST(test_not_in_task),
      FX_LOOP_TEST(test_bad_arguments),
      FX_LOOP_TEST(test_set_nonblocking),
      FX_LOOP_TEST(test_sendfile_offset),
      FX_LOOP_TEST(test_sendfile_file_position),
      FX_LOOP_TEST(test_sendfile_fallback_einval),
      FX_LOOP_TEST(test_sendfile_fallback_enosys_file_position),
      FX_LOOP_TEST(test_sendfile_count),
      FX_LOOP_TEST(test_sendfile_cancel_exact),
      FX_LOOP_TEST(test_sendfile_fallback_cancel_exact),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
