/* Stream transports (asyncio's _SelectorSocketTransport): a persistent
 * level-triggered read watcher while reading, a write watcher only while
 * bytes wait in the write buffer.  A write sends at once and buffers the
 * rest, so the steady state of an echo is one recv and one send per
 * message and no epoll_ctl.  connection_made and connection_lost run from
 * the ready queue; data callbacks run from the read watcher's entry. */
#include "net/internal.h"

#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_HIGH ((size_t)64 * 1024)
/* An empty write buffer larger than this is given back. */
#define KEEP_WBUF ((size_t)256 * 1024)

static void on_readable(void *arg);
static void on_readable_buffered(void *arg);
static fut_cb read_watcher(const fut_transport_t *t);
static void on_writable(void *arg);

/* ---- life ---------------------------------------------------------------- */

int fut__water_marks(size_t high, size_t low, size_t *h, size_t *l) {
  if (high == 0 && low == 0) {
    high = DEFAULT_HIGH;
    low = DEFAULT_HIGH / 4;
  } else if (high == 0) {
    high = low > SIZE_MAX / 4 ? SIZE_MAX : 4 * low;
  } else if (low == 0) {
    low = high / 4;
  }
  if (low > high)
    return fut__error(-EINVAL,
                      "write buffer limits: low-water mark %zu above the "
                      "high-water mark %zu",
                      low, high);
  *h = high;
  *l = low;
  return 0;
}

fut_transport_t *fut__transport_alloc(fut_loop_t *loop, int fd, uint8_t kind) {
  struct fut__net_state *st = fut__net_state(loop);
  if (!st)
    return NULL;
  fut_transport_t *t = fut__calloc(1, sizeof *t);
  if (!t) {
    fut__error(-ENOMEM, "out of memory for a transport");
    return NULL;
  }
  t->loop = loop;
  t->fd = fd;
  t->rbuf = st->rbuf;
  t->refs = 1; /* the loop's, until connection_lost ran */
  t->kind = kind;
  t->reading = true;
  (void)fut__water_marks(0, 0, &t->high, &t->low);
  fut__q_init(&t->dq);
  fut__q_init(&t->snode);
  fut__q_insert_tail(&st->transports, &t->node);
  return t;
}

static void made_cb(void *arg) {
  fut_transport_t *t = arg;
  if (t->lost)
    return; /* lost before it was made: connection_lost alone */
  if (t->kind == FUT__T_STREAM) {
    if (t->proto->connection_made)
      t->proto->connection_made(t, t->arg);
  } else if (t->dproto->connection_made) {
    t->dproto->connection_made(t, t->arg);
  }
}

/* Sets what every stream socket gets: non-blocking, close-on-exec,
 * TCP_NODELAY on TCP.  Returns 0 or -errno. */
static int setup_fd(int fd, bool *is_unix) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0)
    return fut__error(-EBADF, "fd %d is not open", fd);
  if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return fut__error(-errno, "fd %d: cannot make it non-blocking", fd);
  (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
    return fut__error(-ENOTSOCK, "fd %d is not a socket", fd);
  int type = 0;
  socklen_t tl = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
      type != SOCK_STREAM)
    return fut__error(-EINVAL, "fd %d is not a stream socket", fd);
  *is_unix = ss.ss_family == AF_UNIX;
  if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return 0;
}

int fut__transport_start(fut_transport_t *t, fut_cb on_readable) {
  fut_loop_t *loop = t->loop;
  int err = fut_loop_add_reader(loop, t->fd, on_readable, t);
  if (!err)
    err = fut_loop_call_soon(loop, made_cb, t, NULL);
  if (err) {
    fut_loop_remove_reader(loop, t->fd);
    fut__q_remove(&t->node);
    close(t->fd);
    fut__free(t);
    return err;
  }
  t->reader_on = true;
  return 0;
}

int fut__transport_new(fut_loop_t *loop, int fd, const fut_protocol_t *proto,
                       void *arg, fut_server_t *server, fut_transport_t **out) {
  if (out)
    *out = NULL;
  bool is_unix = false;
  int err = fut__check_usable(loop);
  if (!err && server) {
    /* Accepted with SOCK_NONBLOCK | SOCK_CLOEXEC from a stream listener
     * whose family the server knows: only TCP_NODELAY is left to set. */
    is_unix = server->is_unix;
    if (!is_unix) {
      int one = 1;
      (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
  } else if (!err) {
    err = setup_fd(fd, &is_unix);
  }
  fut_transport_t *t = NULL;
  if (!err && !(t = fut__transport_alloc(loop, fd, FUT__T_STREAM)))
    err = -ENOMEM;
  if (err) {
    close(fd);
    return err;
  }
  t->proto = proto;
  t->arg = arg;
  t->is_unix = is_unix;
  if ((err = fut__transport_start(t, read_watcher(t))))
    return err;
  if (server) {
    t->server = fut_server_ref(server);
    fut__q_insert_tail(&server->conns, &t->snode);
    server->nconns++;
  }
  if (out)
    *out = fut_transport_ref(t);
  return 0;
}

int fut_transport_from_fd(fut_loop_t *loop, int fd, const fut_protocol_t *proto,
                          void *arg, fut_transport_t **out) {
  if (out)
    *out = NULL;
  if (!loop || fd < 0 || !proto) {
    if (fd >= 0)
      close(fd);
    return fut__error(-EINVAL, "fut_transport_from_fd: %s",
                      !loop    ? "NULL loop"
                      : fd < 0 ? "negative fd"
                               : "NULL protocol");
  }
  return fut__transport_new(loop, fd, proto, arg, NULL, out);
}

static void watchers_off(fut_transport_t *t) {
  if (t->reader_on) {
    fut_loop_remove_reader(t->loop, t->fd);
    t->reader_on = false;
  }
  if (t->writer_on) {
    fut_loop_remove_writer(t->loop, t->fd);
    t->writer_on = false;
  }
}

/* connection_lost, then the socket closes and the loop lets go. */
static void call_lost(fut_transport_t *t) {
  if (!fut__q_linked(&t->node))
    return; /* ran already */
  fut__q_remove(&t->node);
  watchers_off(t);
  int err = t->lost_err;
  if (t->kind == FUT__T_STREAM) {
    if (t->proto->connection_lost)
      t->proto->connection_lost(t, err, t->arg);
  } else if (t->dproto->connection_lost) {
    t->dproto->connection_lost(t, err, t->arg);
  }
  if (t->fd >= 0) {
    /* An accepted socket is ours alone: the close leaves epoll too, so
     * the watchers' pending EPOLL_CTL_DEL is not made (one system call
     * per connection, as the raw epoll server). */
    if (t->server)
      fut__io_closing(t->loop, t->fd);
    close(t->fd);
  }
  t->fd = -1;
  if (t->kind == FUT__T_DGRAM)
    fut__dgram_clear(t);
  fut__free(t->wbuf);
  t->wbuf = NULL;
  t->whead = t->wlen = t->wcap = 0;
  if (t->server) {
    fut_server_t *s = t->server;
    t->server = NULL;
    fut__server_conn_lost(s, t);
    fut_server_unref(s);
  }
  fut_transport_unref(t); /* the loop's */
}

static void lost_cb(void *arg) {
  call_lost(arg);
}

void fut__transport_lost_now(fut_transport_t *t) {
  call_lost(t);
}

static void wake_empty(fut_transport_t *t) {
  if (t->empty_waiter && fut_state(t->empty_waiter) == FUT_PENDING)
    fut_set_result(t->empty_waiter, NULL, NULL);
}

void fut__transport_schedule_lost(fut_transport_t *t, int err) {
  if (t->lost)
    return;
  wake_empty(t);
  t->lost = true;
  t->closing = true;
  t->lost_err = err;
  watchers_off(t);
  struct fut__net_state *st = fut__net_state_peek(t->loop);
  if (st && st->closing)
    return; /* net_close runs it */
  if (fut_loop_call_soon(t->loop, lost_cb, t, NULL) != 0)
    call_lost(t); /* no memory for the queue entry: now rather than never */
}

void fut__transport_force_close(fut_transport_t *t, int err) {
  if (t->lost)
    return;
  t->whead = t->wlen = 0;
  if (t->kind == FUT__T_DGRAM)
    fut__dgram_clear(t);
  fut__transport_schedule_lost(t, err);
}

fut_transport_t *fut_transport_ref(fut_transport_t *t) {
  if (t)
    __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
  return t;
}

void fut_transport_unref(fut_transport_t *t) {
  if (!t || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) != 0)
    return;
  fut__free(t->wbuf);
  fut__free(t);
}

/* ---- reading ------------------------------------------------------------- */

static void got_eof(fut_transport_t *t) {
  t->eof_received = true;
  if (t->reader_on) {
    fut_loop_remove_reader(t->loop, t->fd);
    t->reader_on = false;
  }
  bool keep_open =
      t->proto->eof_received ? t->proto->eof_received(t, t->arg) : false;
  if (!keep_open)
    fut_transport_close(t);
}

/* What a read that returned n <= 0 means: EOF, nothing (EAGAIN), or the
 * connection's loss. */
static void read_ended(fut_transport_t *t, ssize_t n) {
  if (n == 0) {
    got_eof(t);
    return;
  }
  int e = errno;
  if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR)
    return;
  fut__transport_force_close(t, -e);
}

/* The read watcher of a plain protocol: into the loop's shared buffer,
 * straight to data_received. */
static void on_readable(void *arg) {
  fut_transport_t *t = arg;
  ssize_t n = recv(t->fd, t->rbuf, FUT__NET_RBUF, 0);
  if (FUT__LIKELY(n > 0)) {
    if (t->proto->data_received)
      t->proto->data_received(t, t->rbuf, (size_t)n, t->arg);
    return;
  }
  read_ended(t, n);
}

/* The read watcher of a BufferedProtocol: into the protocol's memory. */
static void on_readable_buffered(void *arg) {
  fut_transport_t *t = arg;
  const fut_protocol_t *p = t->proto;
  size_t cap = 0;
  void *buf = p->get_buffer(t, FUT__NET_RBUF, &cap, t->arg);
  if (t->lost || !t->reader_on)
    return; /* closed or paused from get_buffer */
  if (!buf || cap == 0) {
    fut__error(-ENOBUFS, "get_buffer gave no buffer");
    fut__transport_force_close(t, -ENOBUFS);
    return;
  }
  ssize_t n = recv(t->fd, buf, cap, 0);
  if (n > 0) {
    if (p->buffer_updated)
      p->buffer_updated(t, (size_t)n, t->arg);
    return;
  }
  read_ended(t, n);
}

static fut_cb read_watcher(const fut_transport_t *t) {
  return t->proto->get_buffer ? on_readable_buffered : on_readable;
}

void fut_transport_pause_reading(fut_transport_t *t) {
  if (!t || t->kind != FUT__T_STREAM || t->closing || !t->reading)
    return;
  t->reading = false;
  if (t->reader_on) {
    fut_loop_remove_reader(t->loop, t->fd);
    t->reader_on = false;
  }
}

void fut_transport_resume_reading(fut_transport_t *t) {
  if (!t || t->kind != FUT__T_STREAM || t->closing || t->reading)
    return;
  t->reading = true;
  if (!t->eof_received &&
      fut_loop_add_reader(t->loop, t->fd, read_watcher(t), t) == 0)
    t->reader_on = true;
}

bool fut_transport_is_reading(const fut_transport_t *t) {
  return t && !t->closing && t->reading;
}

/* ---- writing ------------------------------------------------------------- */

void fut__transport_flow(fut_transport_t *t, size_t buffered) {
  void (*cb)(fut_transport_t *, void *) = NULL;
  if (!t->paused_proto && buffered > t->high) {
    t->paused_proto = true;
    cb = t->kind == FUT__T_STREAM ? t->proto->pause_writing
                                  : t->dproto->pause_writing;
  } else if (t->paused_proto && buffered <= t->low) {
    t->paused_proto = false;
    cb = t->kind == FUT__T_STREAM ? t->proto->resume_writing
                                  : t->dproto->resume_writing;
  }
  if (cb)
    cb(t, t->arg);
}

static int buffer_append(fut_transport_t *t, const void *data, size_t len) {
  size_t used = t->wlen - t->whead;
  if (t->wlen + len > t->wcap) {
    if (t->whead) {
      memmove(t->wbuf, t->wbuf + t->whead, used);
      t->whead = 0;
      t->wlen = used;
    }
    if (used + len > t->wcap) {
      if (len > SIZE_MAX / 2 - used)
        return fut__error(-ENOMEM, "write buffer would overflow");
      size_t cap = t->wcap ? t->wcap : 4096;
      while (cap < used + len)
        cap *= 2;
      char *nb = fut__realloc(t->wbuf, cap);
      if (!nb)
        return fut__error(-ENOMEM,
                          "out of memory buffering %zu bytes of a write", len);
      t->wbuf = nb;
      t->wcap = cap;
    }
  }
  memcpy(t->wbuf + t->wlen, data, len);
  t->wlen += len;
  return 0;
}

static int arm_writer(fut_transport_t *t) {
  if (t->writer_on)
    return 0;
  int err = fut_loop_add_writer(t->loop, t->fd, on_writable, t);
  if (err)
    return err;
  t->writer_on = true;
  return 0;
}

/* Whether t takes stream writes now: one test on the hot path, the reason
 * (check_writable) only when it does not. */
static inline bool writable_now(const fut_transport_t *t) {
  return t->kind == FUT__T_STREAM && !t->sendfile_busy && !t->closing &&
         !t->eof_pending;
}

__attribute__((noinline, cold)) static int
check_writable(const fut_transport_t *t, const char *what) {
  if (t->kind != FUT__T_STREAM)
    return fut__error(-EINVAL,
                      "%s on a datagram transport (use "
                      "fut_transport_sendto)",
                      what);
  if (t->sendfile_busy)
    return fut__error(-EBUSY,
                      "%s: fut_transport_sendfile is sending on this "
                      "transport",
                      what);
  if (t->closing || t->eof_pending)
    return fut__error(-EPIPE, "%s: the transport is %s", what,
                      t->lost      ? "lost"
                      : t->closing ? "closing"
                                   : "closed for writing (write_eof)");
  return 0;
}

/* A fatal send error: the connection is lost with it. */
static int send_failed(fut_transport_t *t, int e, const char *what) {
  fut__transport_force_close(t, -e);
  return fut__error(-e, "%s: send: %s", what, fut_strerror(-e));
}

/* Buffers the rest of a write and arms the writer; on failure nothing is
 * buffered and the transport is lost (some bytes may have gone). */
static int queue_rest(fut_transport_t *t, const struct iovec *iov, int cnt,
                      size_t skip) {
  int err = 0;
  for (int i = 0; i < cnt && !err; i++) {
    size_t l = iov[i].iov_len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    err = buffer_append(t, (const char *)iov[i].iov_base + skip, l - skip);
    skip = 0;
  }
  if (!err)
    err = arm_writer(t);
  if (err) {
    fut__transport_force_close(t, err);
    return err;
  }
  fut__transport_flow(t, t->wlen - t->whead);
  return 0;
}

/* After a send that did not take the whole write (n bytes, or -1 with
 * errno e): buffer the rest, or lose the connection on a fatal error. */
__attribute__((noinline)) static int
write_rest(fut_transport_t *t, const void *data, size_t len, ssize_t n, int e) {
  if (n < 0 && e != EAGAIN && e != EWOULDBLOCK && e != EINTR)
    return send_failed(t, e, "fut_transport_write");
  struct iovec iov = {(void *)data, len};
  return queue_rest(t, &iov, 1, n < 0 ? 0 : (size_t)n);
}

/* Every write the fast path does not take: bad arguments, a transport that
 * cannot write, an empty write, bytes already waiting. */
__attribute__((noinline)) static int write_slow(fut_transport_t *t,
                                                const void *data, size_t len) {
  if (!t || (!data && len))
    return fut__error(-EINVAL, "fut_transport_write: %s",
                      !t ? "NULL transport" : "NULL data");
  if (!writable_now(t))
    return check_writable(t, "fut_transport_write");
  if (len == 0)
    return 0;
  if (t->wlen == t->whead) {
    ssize_t n = send(t->fd, data, len, MSG_NOSIGNAL);
    return n == (ssize_t)len ? 0 : write_rest(t, data, len, n, errno);
  }
  struct iovec iov = {(void *)data, len};
  return queue_rest(t, &iov, 1, 0);
}

int fut_transport_write(fut_transport_t *t, const void *data, size_t len) {
  /* The echo path: nothing queued, one send that takes it all. */
  if (FUT__LIKELY(t && data && len && writable_now(t) && t->wlen == t->whead)) {
    ssize_t n = send(t->fd, data, len, MSG_NOSIGNAL);
    if (FUT__LIKELY(n == (ssize_t)len))
      return 0;
    return write_rest(t, data, len, n, errno);
  }
  return write_slow(t, data, len);
}

int fut_transport_writev(fut_transport_t *t, const struct iovec *iov,
                         int iovcnt) {
  if (!t || iovcnt < 0 || (iovcnt && !iov))
    return fut__error(-EINVAL, "fut_transport_writev: %s",
                      !t ? "NULL transport" : "bad iovec");
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (!iov[i].iov_base && iov[i].iov_len)
      return fut__error(-EINVAL, "fut_transport_writev: iov[%d] is NULL", i);
    total += iov[i].iov_len;
  }
  if (FUT__UNLIKELY(!writable_now(t)))
    return check_writable(t, "fut_transport_writev");
  if (total == 0)
    return 0;
  size_t sent = 0;
  if (t->wlen == t->whead) {
    struct msghdr m = {0};
    m.msg_iov = (struct iovec *)iov;
    m.msg_iovlen = (size_t)(iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
    ssize_t n = sendmsg(t->fd, &m, MSG_NOSIGNAL);
    if (n == (ssize_t)total)
      return 0;
    if (n < 0) {
      int e = errno;
      if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR)
        return send_failed(t, e, "fut_transport_writev");
    } else {
      sent = (size_t)n;
    }
  }
  return queue_rest(t, iov, iovcnt, sent);
}

static void do_shutdown(fut_transport_t *t) {
  t->eof_written = true;
  if (shutdown(t->fd, SHUT_WR) < 0 && errno != ENOTCONN)
    fut__transport_force_close(t, -errno);
}

static void on_writable(void *arg) {
  fut_transport_t *t = arg;
  size_t n = t->wlen - t->whead;
  if (n) {
    ssize_t r = send(t->fd, t->wbuf + t->whead, n, MSG_NOSIGNAL);
    if (r < 0) {
      int e = errno;
      if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR)
        fut__transport_force_close(t, -e);
      return;
    }
    t->whead += (size_t)r;
    n -= (size_t)r;
    if (n == 0) {
      t->whead = t->wlen = 0;
      if (t->wcap > KEEP_WBUF) {
        fut__free(t->wbuf);
        t->wbuf = NULL;
        t->wcap = 0;
      }
    }
    fut__transport_flow(t, n);
    if (t->lost)
      return; /* resume_writing aborted it */
  }
  if (n == 0 && t->wlen == t->whead) {
    if (t->writer_on) {
      fut_loop_remove_writer(t->loop, t->fd);
      t->writer_on = false;
    }
    wake_empty(t);
    if (t->closing)
      fut__transport_schedule_lost(t, 0);
    else if (t->eof_pending && !t->eof_written)
      do_shutdown(t);
  }
}

int fut_transport_write_eof(fut_transport_t *t) {
  if (!t)
    return fut__error(-EINVAL, "fut_transport_write_eof: NULL transport");
  if (t->kind != FUT__T_STREAM)
    return fut__error(-ENOTSUP, "fut_transport_write_eof: a datagram transport "
                                "has no end of stream");
  if (t->closing)
    return fut__error(-EPIPE, "fut_transport_write_eof: the transport is %s",
                      t->lost ? "lost" : "closing");
  if (t->eof_pending)
    return 0;
  t->eof_pending = true;
  if (t->wlen == t->whead)
    do_shutdown(t);
  return 0;
}

bool fut_transport_can_write_eof(const fut_transport_t *t) {
  return t && t->kind == FUT__T_STREAM;
}

void fut_transport_close(fut_transport_t *t) {
  if (!t || t->closing)
    return;
  t->closing = true;
  if (t->reader_on) {
    fut_loop_remove_reader(t->loop, t->fd);
    t->reader_on = false;
  }
  size_t buffered = t->kind == FUT__T_STREAM ? t->wlen - t->whead : t->dq_bytes;
  if (buffered == 0)
    fut__transport_schedule_lost(t, 0);
}

void fut_transport_abort(fut_transport_t *t) {
  if (t)
    fut__transport_force_close(t, 0);
}

bool fut_transport_is_closing(const fut_transport_t *t) {
  return !t || t->closing;
}

size_t fut_transport_get_write_buffer_size(const fut_transport_t *t) {
  if (!t)
    return 0;
  return t->kind == FUT__T_STREAM ? t->wlen - t->whead : t->dq_bytes;
}

int fut_transport_set_write_buffer_limits(fut_transport_t *t, size_t high,
                                          size_t low) {
  if (!t)
    return fut__error(-EINVAL, "fut_transport_set_write_buffer_limits: NULL "
                               "transport");
  int err = fut__water_marks(high, low, &t->high, &t->low);
  if (!err)
    fut__transport_flow(t, fut_transport_get_write_buffer_size(t));
  return err;
}

void fut_transport_get_write_buffer_limits(const fut_transport_t *t,
                                           size_t *high, size_t *low) {
  if (high)
    *high = t ? t->high : 0;
  if (low)
    *low = t ? t->low : 0;
}

/* ---- introspection ------------------------------------------------------- */

int fut_transport_get_extra_info(const fut_transport_t *t, fut_extra_t what,
                                 void *out, socklen_t *len) {
  if (!t || !len || (!out && *len))
    return fut__error(-EINVAL, "fut_transport_get_extra_info: %s",
                      !t ? "NULL transport" : "NULL out or length");
  if (t->fd < 0)
    return fut__error(-EBADF, "fut_transport_get_extra_info: the transport "
                              "is lost");
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  switch (what) {
  case FUT_EXTRA_SOCKET:
    if (*len < sizeof(int)) {
      *len = sizeof(int);
      return fut__error(-ENOBUFS,
                        "fut_transport_get_extra_info: an int "
                        "needs %zu bytes",
                        sizeof(int));
    }
    memcpy(out, &t->fd, sizeof(int));
    *len = sizeof(int);
    return 0;
  case FUT_EXTRA_PEERNAME:
    if (getpeername(t->fd, (struct sockaddr *)&ss, &sl) < 0)
      return fut__error(-errno,
                        "fut_transport_get_extra_info: getpeername: "
                        "%s",
                        fut_strerror(-errno));
    break;
  case FUT_EXTRA_SOCKNAME:
    if (getsockname(t->fd, (struct sockaddr *)&ss, &sl) < 0)
      return fut__error(-errno,
                        "fut_transport_get_extra_info: getsockname: "
                        "%s",
                        fut_strerror(-errno));
    break;
  default:
    return fut__error(-EINVAL,
                      "fut_transport_get_extra_info: unknown item "
                      "%d",
                      (int)what);
  }
  if (*len < sl) {
    *len = sl;
    return fut__error(-ENOBUFS,
                      "fut_transport_get_extra_info: the address "
                      "needs %u bytes",
                      (unsigned)sl);
  }
  memcpy(out, &ss, sl);
  *len = sl;
  return 0;
}

int fut_transport_fd(const fut_transport_t *t) {
  return t ? t->fd : -1;
}

fut_loop_t *fut_transport_loop(const fut_transport_t *t) {
  return t ? t->loop : NULL;
}

void *fut_transport_protocol_arg(const fut_transport_t *t) {
  return t ? t->arg : NULL;
}
