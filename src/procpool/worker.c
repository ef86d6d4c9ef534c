/* A worker process: runs the initializer, says HELLO, then reads JOB
 * frames, runs them and writes RESULT frames, until EOF on its socket (the
 * parent closed it or died) or max_tasks_per_child jobs.
 *
 * Input is batched (one read takes every job already queued in the
 * socket), results are not: each is written before the next job starts, so
 * a job that crashes the worker never takes finished results down with it,
 * and the parent can blame the first unanswered job.  The worker's I/O is
 * blocking: it is a process of its own. */
#include "procpool/internal.h"

#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MSG_MAX 1000

struct fut_buf {
  char *data; /* malloc'd result bytes, cap bytes */
  size_t len; /* bytes of result */
  size_t cap;
  size_t max;     /* the pool's max_frame: len never exceeds it */
  int failed;     /* first error of an append/resize, or 0 */
  size_t msg_len; /* bytes in msg; 0 = no message */
  char msg[MSG_MAX + 1];
};

static int buf_reserve(fut_buf_t *b, size_t len) {
  if (len > b->max) {
    int err = fut__error(FUT_E_TOO_BIG,
                         "job result of %zu bytes exceeds the pool's "
                         "max_frame of %zu bytes",
                         len, b->max);
    if (!b->failed) {
      b->failed = err;
      fut_buf_errorf(b, err,
                     "job result of %zu bytes exceeds the pool's "
                     "max_frame of %zu bytes",
                     len, b->max);
    }
    return err;
  }
  if (len <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < len)
    cap = cap > SIZE_MAX / 2 ? len : cap * 2;
  char *d = realloc(b->data, cap);
  if (!d) {
    if (!b->failed) {
      b->failed = -ENOMEM;
      fut_buf_errorf(b, -ENOMEM, "job result of %zu bytes: out of memory", len);
    }
    return fut__error(-ENOMEM, "job result: out of memory");
  }
  b->data = d;
  b->cap = cap;
  return 0;
}

int fut_buf_append(fut_buf_t *out, const void *data, size_t len) {
  if (!out || (!data && len))
    return fut__error(-EINVAL, "fut_buf_append: NULL argument");
  if (len > SIZE_MAX - out->len)
    return fut__error(FUT_E_TOO_BIG, "fut_buf_append: size overflow");
  int err = buf_reserve(out, out->len + len);
  if (err)
    return err;
  if (len)
    memcpy(out->data + out->len, data, len);
  out->len += len;
  return 0;
}

void *fut_buf_resize(fut_buf_t *out, size_t len) {
  if (!out) {
    fut__error(-EINVAL, "fut_buf_resize: NULL buffer");
    return NULL;
  }
  if (buf_reserve(out, len ? len : 1))
    return NULL;
  out->len = len;
  return out->data;
}

void *fut_buf_data(fut_buf_t *out, size_t *len) {
  if (len)
    *len = out ? out->len : 0;
  return out ? out->data : NULL;
}

int fut_buf_errorf(fut_buf_t *out, int err, const char *fmt, ...) {
  if (out && fmt) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out->msg, sizeof out->msg, fmt, ap);
    va_end(ap);
    out->msg_len = n < 0 ? 0 : (size_t)n > MSG_MAX ? MSG_MAX : (size_t)n;
  }
  return err;
}

/* ---- the worker's loop ------------------------------------------------- */

#define RX_CAP (64u * 1024u)

struct worker {
  int sock; /* to the parent; blocking */
  const struct fut__pp_config *cfg;
  char rx[RX_CAP]; /* buffered input, rx[pos..len) unread */
  size_t pos, len;
  char *tx; /* pending output frames, tx_len bytes */
  size_t tx_len, tx_cap;
  char *payload; /* 16-aligned scratch for a job's payload */
  size_t payload_cap;
  char last_module[4096]; /* resolution cache: (module, off) -> fn */
  uint64_t last_off;
  uintptr_t last_fn;
};

static _Noreturn void die(struct worker *w, int code) {
  (void)w;
  _exit(code);
}

static void flush(struct worker *w) {
  if (w->tx_len && fut__pp_write_all(w->sock, w->tx, w->tx_len))
    die(w, 0); /* the parent is gone */
  w->tx_len = 0;
}

/* Queues a frame, or writes it at once when it is big. */
static void emit(struct worker *w, const struct fut__pp_hdr *h,
                 const void *data, size_t dlen, const void *aux) {
  size_t total = sizeof *h + dlen + h->aux;
  if (total > 64 * 1024) {
    flush(w);
    struct iovec iov[3] = {
        {(void *)h, sizeof *h}, {(void *)data, dlen}, {(void *)aux, h->aux}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 3};
    size_t left = total;
    while (left > 0) {
      ssize_t n = sendmsg(w->sock, &mh, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        die(w, 0);
      }
      left -= (size_t)n;
      while (n > 0 && mh.msg_iovlen > 0) {
        if ((size_t)n >= mh.msg_iov[0].iov_len) {
          n -= (ssize_t)mh.msg_iov[0].iov_len;
          mh.msg_iov++;
          mh.msg_iovlen--;
        } else {
          mh.msg_iov[0].iov_base = (char *)mh.msg_iov[0].iov_base + n;
          mh.msg_iov[0].iov_len -= (size_t)n;
          n = 0;
        }
      }
    }
    return;
  }
  if (w->tx_len + total > w->tx_cap) {
    size_t cap = w->tx_cap ? w->tx_cap * 2 : 4096;
    while (cap < w->tx_len + total)
      cap *= 2;
    char *t = realloc(w->tx, cap);
    if (!t)
      die(w, 1);
    w->tx = t;
    w->tx_cap = cap;
  }
  memcpy(w->tx + w->tx_len, h, sizeof *h);
  if (dlen)
    memcpy(w->tx + w->tx_len + sizeof *h, data, dlen);
  if (h->aux)
    memcpy(w->tx + w->tx_len + sizeof *h + dlen, aux, h->aux);
  w->tx_len += total;
}

/* Reads exactly n bytes through the buffer; blocks (flushing output
 * first, since the parent may be waiting for it). */
static void rx_take(struct worker *w, void *dst, size_t n) {
  char *d = dst;
  while (n > 0) {
    if (w->pos == w->len) {
      if (n >= RX_CAP) { /* big payload: straight into place */
        flush(w);
        if (fut__pp_read_all(w->sock, d, n))
          die(w, 0);
        return;
      }
      flush(w);
      ssize_t r;
      do
        r = read(w->sock, w->rx, RX_CAP);
      while (r < 0 && errno == EINTR);
      if (r <= 0)
        die(w, 0); /* EOF: the parent closed us or died */
      w->pos = 0;
      w->len = (size_t)r;
    }
    size_t k = w->len - w->pos < n ? w->len - w->pos : n;
    memcpy(d, w->rx + w->pos, k);
    w->pos += k;
    d += k;
    n -= k;
  }
}

static void hello(struct worker *w) {
  int err = 0;
  char msg[MSG_MAX + 1] = "";
  if (w->cfg->has_init) {
    uintptr_t fn;
    err = fut__pp_resolve_fn(w->cfg->init_module, w->cfg->init_off, &fn);
    if (err) {
      snprintf(msg, sizeof msg, "%s", fut_last_error());
    } else {
      fut_process_pool_init_fn init = (fut_process_pool_init_fn)fn;
      int rc = init(w->cfg->initarg, w->cfg->initarg_len);
      if (rc != 0) {
        err = rc < 0 ? rc : FUT_E_JOB_FAILED;
        snprintf(msg, sizeof msg, "initializer returned %d (%s)", rc,
                 fut_strerror(err));
      }
    }
  }
  struct fut__pp_hdr h = {.magic = FUT__PP_MAGIC,
                          .type = FUT__PP_HELLO,
                          .err = err,
                          .aux = (uint32_t)strlen(msg)};
  h.len = h.aux;
  emit(w, &h, NULL, 0, msg);
  flush(w);
  if (err)
    die(w, 0);
}

/* Makes the 16-byte aligned payload scratch hold need bytes; a huge one
 * is given back once jobs are small again. */
static void payload_reserve(struct worker *w, size_t need) {
  if (need <= w->payload_cap && (w->payload_cap <= (8u << 20) || need >= 4096))
    return;
  free(w->payload);
  size_t cap = (need + 15) & ~(size_t)15;
  w->payload = aligned_alloc(16, cap);
  if (!w->payload)
    die(w, 1);
  w->payload_cap = cap;
}

/* The job's function from (module, off), through a one-entry cache: 0 and
 * *fn, or the error (its message recorded in out). */
static int resolve_job_fn(struct worker *w, const char *module, size_t mlen,
                          uint64_t off, fut_buf_t *out, uintptr_t *fn) {
  if (w->last_fn && off == w->last_off && strcmp(module, w->last_module) == 0) {
    *fn = w->last_fn;
    return 0;
  }
  int rc = fut__pp_resolve_fn(module, off, fn);
  if (rc) {
    fut_buf_errorf(out, rc, "%s", fut_last_error());
  } else if (mlen < sizeof w->last_module) {
    memcpy(w->last_module, module, mlen + 1);
    w->last_off = off;
    w->last_fn = *fn;
  }
  return rc;
}

/* A job's positive return is a bug in the job: FUT_E_JOB_FAILED. */
static int job_returned_positive(fut_buf_t *out, int rc) {
  fut_buf_errorf(out, FUT_E_JOB_FAILED,
                 "job returned %d (a job returns 0 or a negative code)", rc);
  return FUT_E_JOB_FAILED;
}

/* Runs a fut_bytes_fn job (the executor's kind); its result becomes out's
 * bytes without a copy. */
static int run_bytes_job(uintptr_t fn, const void *arg, size_t len,
                         fut_buf_t *out) {
  void *res = NULL;
  size_t res_len = 0;
  int rc = ((fut_bytes_fn)fn)(arg, len, &res, &res_len);
  if (rc > 0) {
    rc = job_returned_positive(out, rc);
  } else if (rc < 0) {
    fut_buf_errorf(out, rc, "job failed: %s (%s)", fut_err_name(rc),
                   fut_strerror(rc));
  } else if (res_len > out->max) {
    rc = fut_buf_errorf(out, FUT_E_TOO_BIG,
                        "job result of %zu bytes exceeds the pool's "
                        "max_frame of %zu bytes",
                        res_len, out->max);
  } else if (res_len && !res) {
    rc = fut_buf_errorf(out, -EINVAL,
                        "job returned a NULL result of "
                        "%zu bytes",
                        res_len);
  } else {
    out->data = res; /* sent as is, freed by the caller */
    out->len = res_len;
    res = NULL;
  }
  free(res);
  return rc;
}

/* Runs a fut_process_pool_job_fn job, which writes into out itself. */
static int run_proc_job(uintptr_t fn, const void *arg, size_t len,
                        fut_buf_t *out) {
  int rc = ((fut_process_pool_job_fn)fn)(arg, len, out);
  if (rc > 0)
    return job_returned_positive(out, rc);
  if (rc == 0 && out->failed)
    return out->failed; /* its message was recorded with it */
  return rc;
}

/* Queues the job's RESULT frame: its bytes, or its code and message. */
static void emit_result(struct worker *w, uint64_t id, int rc,
                        const fut_buf_t *out) {
  struct fut__pp_hdr r = {
      .magic = FUT__PP_MAGIC, .type = FUT__PP_RESULT, .id = id, .err = rc};
  if (rc) {
    r.aux = (uint32_t)out->msg_len;
    r.len = r.aux;
    emit(w, &r, NULL, 0, out->msg);
  } else {
    r.len = out->len;
    emit(w, &r, out->data, out->len, NULL);
  }
}

/* Runs the job and queues its result: true; or false when it was queued
 * behind another job and the parent took it back (then nothing is sent). */
static bool run_job(struct worker *w, const struct fut__pp_hdr *h) {
  if (h->len > w->cfg->max_frame + 4096 || h->aux > 4095 || h->aux > h->len)
    die(w, 2); /* not a frame our parent would send */
  payload_reserve(w, (size_t)h->len + 1);
  rx_take(w, w->payload, h->len);
  if (h->err & FUT__PP_JOB_CLAIM) {
    if (!w->cfg->claims)
      die(w, 2);
    uint64_t want = fut__pp_claim_word(h->id, FUT__PP_CLAIM_QUEUED);
    if (!atomic_compare_exchange_strong(
            &w->cfg->claims[h->id % w->cfg->nclaims], &want,
            fut__pp_claim_word(h->id, FUT__PP_CLAIM_RUNNING)))
      return false; /* taken back: another worker runs it */
  }
  int kind = h->err & FUT__PP_KIND_MASK;
  size_t arg_len = h->len - h->aux;
  char *module = w->payload + arg_len;
  char saved = module[h->aux];
  module[h->aux] = '\0';

  fut_buf_t out = {.max = w->cfg->max_frame};
  uintptr_t fn = 0;
  int rc = resolve_job_fn(w, module, h->aux, h->off, &out, &fn);
  module[h->aux] = saved;
  if (!rc && kind == FUT__PP_KIND_BYTES)
    rc = run_bytes_job(fn, w->payload, arg_len, &out);
  else if (!rc)
    rc = run_proc_job(fn, w->payload, arg_len, &out);
  emit_result(w, h->id, rc, &out);
  free(out.data);
  return true;
}

void fut__pp_worker_main(int sock, const struct fut__pp_config *cfg) {
  struct worker *w = calloc(1, sizeof *w);
  if (!w)
    _exit(1);
  w->sock = sock;
  w->cfg = cfg;
  hello(w);
  for (unsigned done = 0;;) {
    struct fut__pp_hdr h;
    rx_take(w, &h, sizeof h);
    if (h.magic != FUT__PP_MAGIC || h.type != FUT__PP_JOB)
      die(w, 2);
    if (!run_job(w, &h))
      continue;
    done++;
    if (cfg->max_tasks && done >= cfg->max_tasks) {
      flush(w);
      _exit(0);
    }
    flush(w); /* before the next job can crash us */
  }
}
