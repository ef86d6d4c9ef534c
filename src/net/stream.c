/* Streams (asyncio's StreamReader, StreamWriter, StreamReaderProtocol):
 * a protocol that fills the reader's buffer and wakes the one task waiting
 * on it, and the writer's drain on the transport's pause/resume.
 *
 * The reader's buffer is one contiguous block [head, len): reads copy out
 * of it and reset it when empty, so an echo in steady state does no
 * allocation.  Above 2 * limit buffered bytes the transport stops reading
 * until a read brings the buffer back to limit (asyncio's rule).
 *
 * One object holds both ends: the reader and writer handles count their
 * references separately (when both reach 0 the transport is closed), and
 * the protocol holds the object until connection_lost. */
#include "net/internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fut_reader {
  struct fut__stream *s;
};
struct fut_writer {
  struct fut__stream *s;
};

/* A task waiting in drain or wait_closed; lives on its stack. */
struct waiter {
  struct fut__qnode node;
  fut_t *f;
};

struct fut__stream {
  struct fut_reader r;
  struct fut_writer w;
  fut_loop_t *loop;
  fut_transport_t *t; /* a reference once made */
  uint32_t rrefs, wrefs;
  bool proto_ref; /* held from creation until connection_lost */
  /* reader */
  char *buf;
  size_t head, len, cap;
  size_t limit;
  bool eof;
  bool paused;  /* reading paused by the buffer's size */
  int err;      /* the connection's error: reads return it */
  fut_t *rwait; /* the read waiting for data, or NULL */
  /* A read_into waiting on an empty reader: the transport receives
   * straight into its buffer (no copy at all). */
  char *direct;
  size_t direct_cap, direct_got;
  /* writer */
  bool lost;
  int lost_err;
  bool write_paused;
  size_t whigh, wlow;
  struct fut__qnode drainers, closers;
  /* a server's handler, run as a task at connection_made */
  fut_stream_handler_fn handler;
  void *harg;
  size_t stack_size;
};

void fut_stream_opts_init(fut_stream_opts_t *o) {
  if (!o)
    return;
  memset(o, 0, sizeof *o);
  o->limit = FUT_STREAM_LIMIT_DEFAULT;
}

static void maybe_free(struct fut__stream *s) {
  if (s->rrefs || s->wrefs || s->proto_ref)
    return;
  fut_transport_unref(s->t);
  fut__free(s->buf);
  fut__free(s);
}

static struct fut__stream *stream_new(fut_loop_t *loop,
                                      const fut_stream_opts_t *opts) {
  fut_stream_opts_t o;
  if (opts)
    o = *opts;
  else
    fut_stream_opts_init(&o);
  if (o.limit == 0)
    o.limit = FUT_STREAM_LIMIT_DEFAULT;
  struct fut__stream *s = fut__calloc(1, sizeof *s);
  if (!s) {
    fut__error(-ENOMEM, "out of memory for a stream");
    return NULL;
  }
  if (fut__water_marks(o.write_high, o.write_low, &s->whigh, &s->wlow)) {
    fut__free(s);
    return NULL;
  }
  s->r.s = s;
  s->w.s = s;
  s->loop = loop;
  s->limit = o.limit;
  s->stack_size = o.handler_stack_size;
  s->proto_ref = true;
  fut__q_init(&s->drainers);
  fut__q_init(&s->closers);
  return s;
}

static void wake_list(struct fut__qnode *head) {
  struct fut__qnode *n;
  FUT__Q_FOREACH(n, head) {
    struct waiter *w = fut__container_of(n, struct waiter, node);
    if (fut_state(w->f) == FUT_PENDING)
      fut_set_result(w->f, NULL, NULL);
  }
}

static void wake_reader(struct fut__stream *s) {
  if (s->rwait && fut_state(s->rwait) == FUT_PENDING)
    fut_set_result(s->rwait, NULL, NULL);
}

/* ---- the protocol ----------------------------------------------------------
 */

static int handler_main(void *arg);

static void sp_made(fut_transport_t *t, void *arg) {
  struct fut__stream *s = arg;
  if (!s->t) { /* fut_stream_from_fd set it already */
    s->t = fut_transport_ref(t);
    (void)fut_transport_set_write_buffer_limits(t, s->whigh, s->wlow);
  }
  if (!s->handler)
    return;
  fut_task_opts_t o;
  fut_task_opts_init(&o);
  o.stack_size = s->stack_size;
  fut_t *task;
  s->rrefs++;
  s->wrefs++;
  int err = fut_create_task(s->loop, handler_main, s, &o, &task);
  if (err) {
    s->rrefs--;
    s->wrefs--;
    fut__report_exception(s->loop, "cannot start a stream handler task", err,
                          NULL, NULL, fut_last_error());
    fut_transport_abort(t);
    return;
  }
  fut_unref(task); /* the loop runs it to its end */
}

static void append(fut_transport_t *t, struct fut__stream *s, const void *data,
                   size_t n) {
  if (s->len + n > s->cap) {
    size_t used = s->len - s->head;
    if (s->head) {
      memmove(s->buf, s->buf + s->head, used);
      s->head = 0;
      s->len = used;
    }
    if (used + n > s->cap) {
      size_t cap = s->cap ? s->cap : 4096;
      while (cap < used + n)
        cap *= 2;
      char *nb = fut__realloc(s->buf, cap);
      if (!nb) {
        /* Cannot keep the bytes: the connection fails rather than lose
         * data silently. */
        s->err = fut__error(-ENOMEM,
                            "out of memory buffering %zu bytes of "
                            "a stream",
                            n);
        wake_reader(s);
        fut_transport_abort(t);
        return;
      }
      s->buf = nb;
      s->cap = cap;
    }
  }
  memcpy(s->buf + s->len, data, n);
  s->len += n;
  wake_reader(s);
  if (!s->paused && s->len - s->head > 2 * s->limit) {
    s->paused = true;
    fut_transport_pause_reading(t);
  }
}

/* The transport receives into the waiting read_into's buffer when there
 * is one, else into the loop's shared buffer (then appended: a reader
 * keeps only what is unread, so 100,000 idle streams cost no 64 KiB each). */
static void *sp_get_buffer(fut_transport_t *t, size_t hint, size_t *cap,
                           void *arg) {
  struct fut__stream *s = arg;
  if (s->direct && !s->direct_got) {
    *cap = s->direct_cap;
    return s->direct;
  }
  *cap = hint;
  return fut__net_state_peek(t->loop)->rbuf;
}

static void sp_buffer_updated(fut_transport_t *t, size_t n, void *arg) {
  struct fut__stream *s = arg;
  if (s->direct && !s->direct_got) {
    s->direct_got = n;
    wake_reader(s);
    return;
  }
  append(t, s, fut__net_state_peek(t->loop)->rbuf, n);
}

static bool sp_eof(fut_transport_t *t, void *arg) {
  (void)t;
  struct fut__stream *s = arg;
  s->eof = true;
  wake_reader(s);
  return true; /* asyncio keeps the writer usable (half-close) */
}

static void sp_lost(fut_transport_t *t, int err, void *arg) {
  (void)t;
  struct fut__stream *s = arg;
  if (!s)
    return;
  s->lost = true;
  s->lost_err = err;
  s->eof = true;
  if (err && !s->err)
    s->err = err;
  wake_reader(s);
  wake_list(&s->drainers);
  wake_list(&s->closers);
  s->proto_ref = false;
  maybe_free(s);
}

static void sp_pause(fut_transport_t *t, void *arg) {
  (void)t;
  ((struct fut__stream *)arg)->write_paused = true;
}

static void sp_resume(fut_transport_t *t, void *arg) {
  (void)t;
  struct fut__stream *s = arg;
  s->write_paused = false;
  wake_list(&s->drainers);
}

static const fut_protocol_t stream_proto = {
    .connection_made = sp_made,
    .get_buffer = sp_get_buffer,
    .buffer_updated = sp_buffer_updated,
    .eof_received = sp_eof,
    .connection_lost = sp_lost,
    .pause_writing = sp_pause,
    .resume_writing = sp_resume,
};

/* ---- handles ---------------------------------------------------------------
 */

fut_reader_t *fut_reader_ref(fut_reader_t *r) {
  if (r)
    r->s->rrefs++;
  return r;
}

fut_writer_t *fut_writer_ref(fut_writer_t *w) {
  if (w)
    w->s->wrefs++;
  return w;
}

/* Both handles gone: nobody can use the connection any more. */
static void drop_handle(struct fut__stream *s) {
  if (!s->rrefs && !s->wrefs && s->t && !s->lost)
    fut_transport_close(s->t);
  maybe_free(s);
}

void fut_reader_unref(fut_reader_t *r) {
  if (!r || !r->s->rrefs)
    return;
  r->s->rrefs--;
  drop_handle(r->s);
}

void fut_writer_unref(fut_writer_t *w) {
  if (!w || !w->s->wrefs)
    return;
  w->s->wrefs--;
  drop_handle(w->s);
}

static int handler_main(void *arg) {
  struct fut__stream *s = arg;
  int rc = s->handler(&s->r, &s->w, s->harg);
  if (rc == -ECONNRESET || rc == -EPIPE)
    rc = 0; /* the peer went away: the usual end of a connection */
  if (s->t && !s->lost)
    fut_transport_close(s->t);
  fut_reader_unref(&s->r); /* may free s */
  fut_writer_unref(&s->w);
  return rc;
}

/* ---- opening ---------------------------------------------------------------
 */

static void clear_pair(fut_reader_t **r, fut_writer_t **w) {
  if (r)
    *r = NULL;
  if (w)
    *w = NULL;
}

static void hand_out(struct fut__stream *s, fut_reader_t **r,
                     fut_writer_t **w) {
  s->rrefs = 1;
  s->wrefs = 1;
  *r = &s->r;
  *w = &s->w;
}

int fut_stream_from_fd(fut_loop_t *loop, int fd, const fut_stream_opts_t *opts,
                       fut_reader_t **reader, fut_writer_t **writer) {
  clear_pair(reader, writer);
  if (!loop || fd < 0 || !reader || !writer) {
    if (fd >= 0 && loop && reader && writer)
      close(fd);
    return fut__error(-EINVAL, "fut_stream_from_fd: %s",
                      !loop    ? "NULL loop"
                      : fd < 0 ? "negative fd"
                               : "NULL reader or writer");
  }
  struct fut__stream *s = stream_new(loop, opts);
  if (!s) {
    close(fd);
    return -ENOMEM;
  }
  fut_transport_t *t;
  int err = fut_transport_from_fd(loop, fd, &stream_proto, s, &t);
  if (err) {
    s->proto_ref = false;
    maybe_free(s);
    return err;
  }
  /* Made now rather than from the ready queue: the handles work at once. */
  s->t = t;
  (void)fut_transport_set_write_buffer_limits(t, s->whigh, s->wlow);
  hand_out(s, reader, writer);
  return 0;
}

/* create_connection's result for a stream: the handles, or the error. */
static int finish_open(struct fut__stream *s, int err, fut_transport_t *t,
                       fut_reader_t **reader, fut_writer_t **writer) {
  if (err) {
    s->proto_ref = false;
    maybe_free(s);
    return err;
  }
  if (!s->t)
    s->t = fut_transport_ref(t);
  fut_transport_unref(t);
  hand_out(s, reader, writer);
  return 0;
}

static fut_loop_t *running_loop(const char *what) {
  struct fut__task *t = fut__task_current(what);
  return t ? t->x.fut.loop : NULL;
}

int fut_open_connection(const char *host, int port,
                        const fut_connect_opts_t *copts,
                        const fut_stream_opts_t *opts, fut_reader_t **reader,
                        fut_writer_t **writer) {
  clear_pair(reader, writer);
  fut_loop_t *loop = running_loop("fut_open_connection");
  if (!loop)
    return FUT_E_NOT_IN_TASK;
  if (!reader || !writer)
    return fut__error(-EINVAL, "fut_open_connection: NULL reader or writer");
  struct fut__stream *s = stream_new(loop, opts);
  if (!s)
    return -ENOMEM;
  fut_transport_t *t = NULL;
  int err = fut_create_connection(&stream_proto, s, host, port, copts, &t);
  return finish_open(s, err, t, reader, writer);
}

int fut_open_unix_connection(const char *path, const fut_stream_opts_t *opts,
                             fut_reader_t **reader, fut_writer_t **writer) {
  clear_pair(reader, writer);
  fut_loop_t *loop = running_loop("fut_open_unix_connection");
  if (!loop)
    return FUT_E_NOT_IN_TASK;
  if (!reader || !writer)
    return fut__error(-EINVAL,
                      "fut_open_unix_connection: NULL reader or writer");
  struct fut__stream *s = stream_new(loop, opts);
  if (!s)
    return -ENOMEM;
  fut_transport_t *t = NULL;
  int err = fut_create_unix_connection(&stream_proto, s, path, &t);
  return finish_open(s, err, t, reader, writer);
}

/* What a stream server keeps: how to make each connection's stream. */
struct server_ctx {
  fut_stream_handler_fn handler;
  void *arg;
  fut_stream_opts_t opts;
  fut_loop_t *loop;
};

static int stream_factory(void *farg, void **arg) {
  struct server_ctx *c = farg;
  struct fut__stream *s = stream_new(c->loop, &c->opts);
  if (!s)
    return -ENOMEM;
  s->handler = c->handler;
  s->harg = c->arg;
  *arg = s;
  return 0;
}

static void ctx_free(void *ctx) {
  fut__free(ctx);
}

static int start(fut_loop_t *loop, fut_stream_handler_fn handler, void *arg,
                 const char *host, int port, const char *path,
                 const fut_server_opts_t *sopts, const fut_stream_opts_t *opts,
                 fut_server_t **out) {
  if (out)
    *out = NULL;
  if (!handler)
    return fut__error(-EINVAL, "fut_start_server: NULL handler");
  if (!loop) {
    struct fut__task *t = fut__task_running();
    loop = t ? t->x.fut.loop : NULL;
  }
  if (!loop)
    return fut__error(-EINVAL, "fut_start_server: NULL loop outside a task");
  struct server_ctx *c = fut__calloc(1, sizeof *c);
  if (!c)
    return fut__error(-ENOMEM, "out of memory for a server");
  c->handler = handler;
  c->arg = arg;
  c->loop = loop;
  if (opts)
    c->opts = *opts;
  else
    fut_stream_opts_init(&c->opts);
  size_t h, l;
  int err = fut__water_marks(c->opts.write_high, c->opts.write_low, &h, &l);
  if (!err)
    err = path ? fut_create_unix_server(loop, &stream_proto, stream_factory, c,
                                        path, sopts, out)
               : fut_create_server(loop, &stream_proto, stream_factory, c, host,
                                   port, sopts, out);
  if (err) {
    fut__free(c);
    return err;
  }
  (*out)->stream_ctx = c;
  (*out)->stream_ctx_free = ctx_free;
  return 0;
}

int fut_start_server(fut_loop_t *loop, fut_stream_handler_fn handler, void *arg,
                     const char *host, int port, const fut_server_opts_t *sopts,
                     const fut_stream_opts_t *opts, fut_server_t **out) {
  return start(loop, handler, arg, host, port, NULL, sopts, opts, out);
}

int fut_start_unix_server(fut_loop_t *loop, fut_stream_handler_fn handler,
                          void *arg, const char *path,
                          const fut_server_opts_t *sopts,
                          const fut_stream_opts_t *opts, fut_server_t **out) {
  if (!path) {
    if (out)
      *out = NULL;
    return fut__error(-EINVAL, "fut_start_unix_server: NULL path");
  }
  return start(loop, handler, arg, NULL, 0, path, sopts, opts, out);
}

/* ---- reading ---------------------------------------------------------------
 */

static size_t buffered(const struct fut__stream *s) {
  return s->len - s->head;
}

static void consume(struct fut__stream *s, size_t n) {
  s->head += n;
  if (s->head == s->len)
    s->head = s->len = 0;
  if (s->paused && buffered(s) <= s->limit && s->t) {
    s->paused = false;
    fut_transport_resume_reading(s->t);
  }
}

/* Checks a read call: in a task of the stream's loop, not concurrent. */
static int read_check(const fut_reader_t *r, const char *what) {
  struct fut__task *t = fut__task_current(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (!r)
    return fut__error(-EINVAL, "%s: NULL reader", what);
  if (t->x.fut.loop != r->s->loop)
    return fut__error(FUT_E_OTHER_LOOP,
                      "%s: the stream belongs to another "
                      "loop",
                      what);
  if (r->s->rwait)
    return fut__error(-EBUSY,
                      "%s: another task is already waiting on this "
                      "reader",
                      what);
  return 0;
}

/* Suspends until data, EOF or an error arrives.  Returns 0 or a code. */
static int wait_data(struct fut__stream *s) {
  if (s->paused && s->t) {
    s->paused = false;
    fut_transport_resume_reading(s->t);
  }
  fut_t *f;
  int err = fut_new(s->loop, &f);
  if (err)
    return err;
  s->rwait = f;
  fut_reader_ref(&s->r); /* s stays while the task waits */
  err = fut_await(f, NULL);
  s->rwait = NULL;
  fut_unref(f);
  fut_reader_unref(&s->r);
  return err;
}

/* Moves n buffered bytes to dst (the buffer may be unallocated when n is
 * 0: no pointer arithmetic on it then). */
static void copy_out(struct fut__stream *s, void *dst, size_t n) {
  if (!n)
    return;
  memcpy(dst, s->buf + s->head, n);
  consume(s, n);
}

static void *take(struct fut__stream *s, size_t n) {
  void *d = malloc(n ? n : 1);
  if (!d)
    return NULL;
  copy_out(s, d, n);
  return d;
}

static int out_of_memory(size_t n) {
  return fut__error(-ENOMEM, "out of memory for %zu bytes read", n);
}

int fut_reader_read_into(fut_reader_t *r, void *buf, size_t cap, size_t *got) {
  if (got)
    *got = 0;
  int err = read_check(r, "fut_reader_read_into");
  if (err)
    return err;
  if (!got || (!buf && cap))
    return fut__error(-EINVAL, "fut_reader_read_into: NULL buffer or count");
  struct fut__stream *s = r->s;
  if (cap == 0)
    return 0;
  for (;;) {
    if (s->err)
      return s->err;
    if (buffered(s) || s->eof)
      break;
    /* Nothing buffered: the next bytes land in buf directly. */
    s->direct = buf;
    s->direct_cap = cap;
    s->direct_got = 0;
    err = wait_data(s);
    size_t direct = s->direct_got;
    s->direct = NULL;
    s->direct_got = 0;
    if (direct) {
      /* The bytes are the caller's now.  A cancel that came with them is
       * delivered by the next suspension instead (asyncio's order). */
      if (err == -ECANCELED)
        fut__task_running()->must_cancel = true;
      *got = direct;
      return 0;
    }
    if (err)
      return err;
  }
  size_t n = buffered(s) < cap ? buffered(s) : cap;
  copy_out(s, buf, n);
  *got = n;
  return 0;
}

int fut_reader_read(fut_reader_t *r, size_t n, void **data, size_t *len) {
  if (data)
    *data = NULL;
  if (len)
    *len = 0;
  int err = read_check(r, "fut_reader_read");
  if (err)
    return err;
  if (!data || !len)
    return fut__error(-EINVAL, "fut_reader_read: NULL data or len");
  struct fut__stream *s = r->s;
  if (n == 0)
    return 0;
  for (;;) {
    if (s->err)
      return s->err;
    if (s->eof || (n != FUT_READ_ALL && buffered(s)))
      break;
    if (n == FUT_READ_ALL && buffered(s) > 2 * s->limit) {
      /* read(-1) gathers everything: do not pause on the way. */
      s->paused = false;
    }
    if ((err = wait_data(s)))
      return err;
  }
  size_t k = buffered(s) < n ? buffered(s) : n;
  if (k == 0)
    return 0;
  if (!(*data = take(s, k)))
    return out_of_memory(k);
  *len = k;
  return 0;
}

/* Waits until n bytes are buffered or EOF.  Returns 0 or a code. */
static int fill(struct fut__stream *s, size_t n) {
  for (;;) {
    if (s->err)
      return s->err;
    if (buffered(s) >= n || s->eof)
      return 0;
    int err = wait_data(s);
    if (err)
      return err;
  }
}

int fut_reader_readexactly(fut_reader_t *r, size_t n, void **data,
                           size_t *len) {
  if (data)
    *data = NULL;
  if (len)
    *len = 0;
  int err = read_check(r, "fut_reader_readexactly");
  if (err)
    return err;
  if (!data || !len)
    return fut__error(-EINVAL, "fut_reader_readexactly: NULL data or len");
  struct fut__stream *s = r->s;
  if ((err = fill(s, n)))
    return err;
  size_t k = buffered(s) < n ? buffered(s) : n;
  if (!(*data = take(s, k)))
    return out_of_memory(k);
  *len = k;
  if (k < n)
    return fut__error(FUT_E_INCOMPLETE_READ,
                      "fut_reader_readexactly: %zu of %zu bytes before EOF", k,
                      n);
  return 0;
}

int fut_reader_readexactly_into(fut_reader_t *r, void *buf, size_t n,
                                size_t *got) {
  if (got)
    *got = 0;
  int err = read_check(r, "fut_reader_readexactly_into");
  if (err)
    return err;
  if (!got || (!buf && n))
    return fut__error(-EINVAL,
                      "fut_reader_readexactly_into: NULL buffer or count");
  struct fut__stream *s = r->s;
  if ((err = fill(s, n)))
    return err;
  size_t k = buffered(s) < n ? buffered(s) : n;
  copy_out(s, buf, k);
  *got = k;
  if (k < n)
    return fut__error(FUT_E_INCOMPLETE_READ,
                      "fut_reader_readexactly_into: %zu of %zu bytes before "
                      "EOF",
                      k, n);
  return 0;
}

/* readuntil's search (asyncio's): the separator's offset, or a code with
 * *consumed set for a limit overrun. */
static int find_sep(struct fut__stream *s, const void *sep, size_t seplen,
                    size_t *isep, size_t *consumed, void **partial,
                    size_t *plen) {
  size_t offset = 0;
  for (;;) {
    size_t n = buffered(s);
    if (n - offset >= seplen) {
      const char *p =
          memmem(s->buf + s->head + offset, n - offset, sep, seplen);
      if (p) {
        *isep = (size_t)(p - (s->buf + s->head));
        break;
      }
      offset = n + 1 - seplen;
      if (offset > s->limit) {
        *consumed = offset;
        return fut__error(FUT_E_LIMIT_OVERRUN,
                          "separator not found within the limit of %zu "
                          "bytes",
                          s->limit);
      }
    }
    if (s->err)
      return s->err;
    if (s->eof) {
      size_t k = buffered(s);
      if (k && !(*partial = take(s, k)))
        return out_of_memory(k);
      *plen = k;
      return fut__error(FUT_E_INCOMPLETE_READ,
                        "end of stream after %zu bytes, before the "
                        "separator",
                        k);
    }
    int err = wait_data(s);
    if (err)
      return err;
  }
  if (*isep > s->limit) {
    *consumed = *isep;
    return fut__error(FUT_E_LIMIT_OVERRUN,
                      "separator found %zu bytes in, beyond the limit of %zu",
                      *isep, s->limit);
  }
  return 0;
}

int fut_reader_readuntil(fut_reader_t *r, const void *sep, size_t seplen,
                         void **data, size_t *len) {
  if (data)
    *data = NULL;
  if (len)
    *len = 0;
  int err = read_check(r, "fut_reader_readuntil");
  if (err)
    return err;
  if (!sep || !seplen || !data || !len)
    return fut__error(-EINVAL, "fut_reader_readuntil: %s",
                      !sep || !seplen ? "empty separator" : "NULL data or len");
  struct fut__stream *s = r->s;
  size_t isep = 0, consumed = 0;
  err = find_sep(s, sep, seplen, &isep, &consumed, data, len);
  if (err == FUT_E_LIMIT_OVERRUN)
    *len = consumed;
  if (err)
    return err;
  size_t k = isep + seplen;
  if (!(*data = take(s, k)))
    return out_of_memory(k);
  *len = k;
  return 0;
}

int fut_reader_readline(fut_reader_t *r, void **data, size_t *len) {
  if (data)
    *data = NULL;
  if (len)
    *len = 0;
  int err = read_check(r, "fut_reader_readline");
  if (err)
    return err;
  if (!data || !len)
    return fut__error(-EINVAL, "fut_reader_readline: NULL data or len");
  struct fut__stream *s = r->s;
  size_t isep = 0, consumed = 0;
  err = find_sep(s, "\n", 1, &isep, &consumed, data, len);
  if (err == FUT_E_INCOMPLETE_READ)
    return 0; /* the partial line, maybe empty */
  if (err == FUT_E_LIMIT_OVERRUN) {
    /* asyncio drops the long line: through its "\n" when it is there. */
    size_t n = buffered(s);
    if (consumed < n && s->buf[s->head + consumed] == '\n')
      consume(s, consumed + 1);
    else
      consume(s, n);
    *len = consumed;
    return err;
  }
  if (err)
    return err;
  size_t k = isep + 1;
  if (!(*data = take(s, k)))
    return out_of_memory(k);
  *len = k;
  return 0;
}

bool fut_reader_at_eof(const fut_reader_t *r) {
  return r && r->s->eof && buffered(r->s) == 0;
}

size_t fut_reader_buffered(const fut_reader_t *r) {
  return r ? buffered(r->s) : 0;
}

/* ---- writing ---------------------------------------------------------------
 */

int fut_writer_write(fut_writer_t *w, const void *data, size_t len) {
  if (!w)
    return fut__error(-EINVAL, "fut_writer_write: NULL writer");
  if (!w->s->t)
    return fut__error(-EPIPE, "fut_writer_write: not connected");
  return fut_transport_write(w->s->t, data, len);
}

int fut_writer_writev(fut_writer_t *w, const struct iovec *iov, int iovcnt) {
  if (!w)
    return fut__error(-EINVAL, "fut_writer_writev: NULL writer");
  if (!w->s->t)
    return fut__error(-EPIPE, "fut_writer_writev: not connected");
  return fut_transport_writev(w->s->t, iov, iovcnt);
}

static int wait_on_list(struct fut__stream *s, struct fut__qnode *list) {
  struct waiter local, *wt = &local;
  /* A compact task's stack is not addressable while it waits
   * (FUT_TASK_COMPACT): its waiter goes on the heap. */
  if (fut_task_is_compact(fut_current_task(NULL)) &&
      !(wt = fut__malloc(sizeof *wt)))
    return fut__error(-ENOMEM, "out of memory for a waiter");
  int err = fut_new(s->loop, &wt->f);
  if (err) {
    if (wt != &local)
      fut__free(wt);
    return err;
  }
  fut__q_insert_tail(list, &wt->node);
  fut_writer_ref(&s->w);
  err = fut_await(wt->f, NULL);
  fut__q_remove(&wt->node);
  fut_unref(wt->f);
  fut_writer_unref(&s->w);
  if (wt != &local)
    fut__free(wt);
  return err;
}

static int writer_check(const fut_writer_t *w, const char *what) {
  struct fut__task *t = fut__task_current(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (!w)
    return fut__error(-EINVAL, "%s: NULL writer", what);
  if (t->x.fut.loop != w->s->loop)
    return fut__error(FUT_E_OTHER_LOOP,
                      "%s: the stream belongs to another "
                      "loop",
                      what);
  return 0;
}

static int lost_code(const struct fut__stream *s) {
  return fut__error(s->lost_err ? s->lost_err : -ECONNRESET,
                    "the connection is lost");
}

int fut_writer_drain(fut_writer_t *w) {
  int err = writer_check(w, "fut_writer_drain");
  if (err)
    return err;
  struct fut__stream *s = w->s;
  if (s->err)
    return s->err;
  if (s->t && fut_transport_is_closing(s->t) && !s->lost) {
    /* asyncio yields once so that a closing transport can finish. */
    if ((err = fut_yield()))
      return err;
  }
  if (s->lost)
    return lost_code(s);
  while (s->write_paused && !s->lost)
    if ((err = wait_on_list(s, &s->drainers)))
      return err;
  if (s->lost)
    return lost_code(s);
  return 0;
}

int fut_writer_write_eof(fut_writer_t *w) {
  if (!w)
    return fut__error(-EINVAL, "fut_writer_write_eof: NULL writer");
  if (!w->s->t)
    return fut__error(-EPIPE, "fut_writer_write_eof: not connected");
  return fut_transport_write_eof(w->s->t);
}

bool fut_writer_can_write_eof(const fut_writer_t *w) {
  return w && fut_transport_can_write_eof(w->s->t);
}

void fut_writer_close(fut_writer_t *w) {
  if (w && w->s->t)
    fut_transport_close(w->s->t);
}

bool fut_writer_is_closing(const fut_writer_t *w) {
  return !w || !w->s->t || fut_transport_is_closing(w->s->t);
}

int fut_writer_wait_closed(fut_writer_t *w) {
  int err = writer_check(w, "fut_writer_wait_closed");
  if (err)
    return err;
  struct fut__stream *s = w->s;
  while (!s->lost)
    if ((err = wait_on_list(s, &s->closers)))
      return err;
  return s->lost_err;
}

fut_transport_t *fut_writer_transport(const fut_writer_t *w) {
  return w ? w->s->t : NULL;
}
