/* fut_process_communicate (asyncio's Process.communicate): feeding stdin,
 * reading stdout and stderr, all at once, then waiting for the exit.
 *
 * Each pipe is one job; the calling task does the first and a helper task
 * each other one, so a child blocked on a full stdout pipe while we still
 * write its stdin (or the reverse) always makes progress.  A cancelled or
 * failed call cancels its helpers and waits for them; the jobs live on the
 * heap, shared by the caller and the helpers (each holding a reference and
 * its own reference to its pipe), so that even a helper outliving the call
 * (the loop closing, a second cancel during the wait) touches nothing
 * freed. */
#include "process/internal.h"

#include <stdlib.h>
#include <string.h>

/* Bytes per read of an output. */
#define CHUNK ((size_t)65536)

struct comm;

struct job {
  fut_writer_t *w; /* stdin (a reference): write in, then close */
  const void *in;  /* borrowed: copied by the first write */
  size_t inlen;
  fut_reader_t *r; /* an output (a reference): read it all into buf */
  char *buf;       /* malloc'd (the caller frees it with free()) */
  size_t len, cap;
  fut_t *task;  /* the helper running it, or NULL (the caller does) */
  int err;      /* its outcome */
  bool started; /* the helper ran (then it drops its reference to c) */
  struct comm *c;
};

struct comm {
  struct job jobs[3];
  int n;
  int refs; /* the caller's and one per helper that will still run */
};

static void comm_unref(struct comm *c) {
  if (--c->refs)
    return;
  for (int i = 0; i < c->n; i++) {
    free(c->jobs[i].buf);
    fut_writer_unref(c->jobs[i].w);
    fut_reader_unref(c->jobs[i].r);
  }
  fut__free(c);
}

static int feed(struct job *j) {
  int err = 0;
  if (j->inlen) {
    err = fut_writer_write(j->w, j->in, j->inlen);
    if (!err)
      err = fut_writer_drain(j->w);
  }
  /* asyncio ignores BrokenPipeError and ConnectionResetError here: the
   * child may exit without reading all its input. */
  if (err == -EPIPE || err == -ECONNRESET)
    err = 0;
  if (err != -ECANCELED)
    fut_writer_close(j->w);
  return err;
}

static int drain_output(struct job *j) {
  for (;;) {
    if (j->cap - j->len < CHUNK) {
      size_t cap = j->cap ? 2 * j->cap : CHUNK;
      char *nb = realloc(j->buf, cap);
      if (!nb)
        return fut__error(-ENOMEM,
                          "communicate: out of memory for %zu bytes of "
                          "output",
                          cap);
      j->buf = nb;
      j->cap = cap;
    }
    size_t got;
    int err =
        fut_reader_read_into(j->r, j->buf + j->len, j->cap - j->len, &got);
    if (err)
      return err;
    if (!got)
      return 0;
    j->len += got;
  }
}

static int run_job(struct job *j) {
  j->err = j->w ? feed(j) : drain_output(j);
  return j->err;
}

static int helper_main(void *arg) {
  struct job *j = arg;
  j->started = true;
  int err = run_job(j);
  comm_unref(j->c);
  return err;
}

/* Hands an output to the caller (the bytes, or NULL / 0), or drops it. */
static void give(struct job *j, void **data, size_t *len) {
  if (data) {
    *data = j ? j->buf : NULL;
    if (j)
      j->buf = NULL;
  }
  if (len)
    *len = j ? j->len : 0;
}

int fut_process_communicate(fut_process_t *p, const void *in, size_t inlen,
                            void **out, size_t *outlen, void **errout,
                            size_t *errlen) {
  give(NULL, out, outlen);
  give(NULL, errout, errlen);
  int err = fut__process_task_check(p, "fut_process_communicate");
  if (err)
    return err;
  if (inlen && (!in || !p->in))
    return fut__error(-EINVAL, "fut_process_communicate: %s",
                      !in ? "NULL input"
                          : "input given but stdin is not FUT_STDIO_PIPE");
  struct comm *c = fut__calloc(1, sizeof *c);
  if (!c)
    return fut__error(-ENOMEM, "communicate: out of memory");
  c->refs = 1;
  struct job *jobs = c->jobs, *jo = NULL, *je = NULL;
  int n = 0;
  if (p->out) {
    jo = &jobs[n++];
    jo->r = fut_reader_ref(p->out);
  }
  if (p->err) {
    je = &jobs[n++];
    je->r = fut_reader_ref(p->err);
  }
  if (p->in) {
    struct job *ji = &jobs[n++];
    ji->w = fut_writer_ref(p->in);
    ji->in = in;
    ji->inlen = inlen;
  }
  c->n = n;
  /* Every job but the first on a helper task. */
  for (int i = 1; i < n && !err; i++) {
    jobs[i].c = c;
    c->refs++;
    err = fut_create_task(p->loop, helper_main, &jobs[i], NULL, &jobs[i].task);
    if (err)
      c->refs--;
  }
  if (!err && n)
    err = run_job(&jobs[0]);
  for (int i = 1; i < n && !err; i++)
    if (jobs[i].task)
      err = fut_await(jobs[i].task, NULL);
  if (err) {
    /* Cancelled or failed: stop the helpers and give each one wait to
     * finish (a cancelled read returns at once). */
    for (int i = 1; i < n; i++)
      if (jobs[i].task)
        fut_cancel(jobs[i].task, "communicate is over");
    for (int i = 1; i < n; i++)
      if (jobs[i].task && !fut_done(jobs[i].task))
        (void)fut_await(jobs[i].task, NULL);
  }
  for (int i = 1; i < n; i++) {
    /* A helper cancelled before it started never runs: its reference is
     * ours to drop. */
    if (jobs[i].task && !jobs[i].started && fut_done(jobs[i].task))
      comm_unref(c);
    fut_unref(jobs[i].task);
  }
  if (!err)
    err = fut_process_wait(p, NULL);
  if (!err) {
    give(jo, out, outlen);
    give(je, errout, errlen);
  }
  comm_unref(c);
  return err;
}
