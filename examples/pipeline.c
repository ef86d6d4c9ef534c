/* A pipeline under a TaskGroup: a producer task feeds numbers into a
 * bounded queue, N consumer tasks take them and store their squares.  The
 * first run goes through; in the second, one consumer fails on a poisoned
 * item, and the group cancels the producer and the other consumers
 * (blocked in put or get, or busy) and comes back with FUT_E_GROUP and
 * the failure in its error group.
 *
 * The queue here is a hand-made one, a future per waiting task (asyncio's
 * Queue in miniature), because this example was written while
 * future/queue.h was being written; fut_queue_put / fut_queue_get replace
 * it one for one. */
#include <errno.h>
#include <future.h>
#include <stdint.h>
#include <stdio.h>

#define CAP 4 /* the queue's bound */
#define NCONSUMERS 3
#define NITEMS 20
#define MAXWAIT 8 /* waiting tasks per side, at most */

/* ---- a tiny bounded queue of ints --------------------------------------- */

struct waiters {
  fut_t *f[MAXWAIT]; /* futures of waiting tasks, oldest first */
  int n;
};

struct queue {
  int buf[CAP];
  int head, len;
  struct waiters getters, putters;
};

/* Wakes the oldest waiter of w, if any. */
static void wake_one(struct waiters *w) {
  while (w->n > 0) {
    fut_t *f = w->f[0];
    for (int i = 1; i < w->n; i++)
      w->f[i - 1] = w->f[i];
    w->n--;
    if (!fut_done(f)) {
      fut_set_result(f, NULL, NULL);
      return;
    }
  }
}

/* Suspends the calling task until woken; 0 or -ECANCELED. */
static int wait_turn(struct waiters *w) {
  if (w->n == MAXWAIT)
    return -EAGAIN;
  fut_t *f;
  int err = fut_new(fut_get_running_loop(), &f);
  if (err)
    return err;
  w->f[w->n++] = f;
  err = fut_await(f, NULL);
  if (err == -ECANCELED) {
    for (int i = 0; i < w->n; i++) /* still queued: leave the line */
      if (w->f[i] == f) {
        for (int j = i + 1; j < w->n; j++)
          w->f[j - 1] = w->f[j];
        w->n--;
        break;
      }
    if (fut_done(f) && !fut_cancelled(f))
      wake_one(w); /* woken and cancelled at once: pass the turn on */
  }
  fut_unref(f);
  return err;
}

static int queue_put(struct queue *q, int item) {
  while (q->len == CAP) {
    int err = wait_turn(&q->putters);
    if (err)
      return err;
  }
  q->buf[(q->head + q->len++) % CAP] = item;
  wake_one(&q->getters);
  return 0;
}

static int queue_get(struct queue *q, int *item) {
  while (q->len == 0) {
    int err = wait_turn(&q->getters);
    if (err)
      return err;
  }
  *item = q->buf[q->head];
  q->head = (q->head + 1) % CAP;
  q->len--;
  wake_one(&q->putters);
  return 0;
}

/* ---- the pipeline ------------------------------------------------------- */

#define DONE (-1) /* the end-of-stream item, one per consumer */

struct pipeline {
  struct queue q;
  int poison; /* the item a consumer fails on, or 0 */
  int64_t results[NITEMS + 1];
  int processed, cancelled;
};

static int producer(void *arg) {
  struct pipeline *p = arg;
  for (int i = 1; i <= NITEMS; i++) {
    int err = queue_put(&p->q, i);
    if (err) {
      printf("  producer: cancelled before item %d\n", i);
      p->cancelled++;
      return err;
    }
  }
  for (int i = 0; i < NCONSUMERS; i++)
    if (queue_put(&p->q, DONE))
      return -ECANCELED;
  return 0;
}

static int consumer(void *arg) {
  struct pipeline *p = arg;
  for (;;) {
    int item;
    int err = queue_get(&p->q, &item);
    if (!err)
      err = fut_sleep(FUT_MS(1)); /* the work */
    if (err == -ECANCELED) {
      p->cancelled++;
      return err;
    }
    if (err)
      return err;
    if (item == DONE)
      return 0;
    if (item == p->poison)
      return fut_task_fail(-EBADMSG, "cannot process item %d", item);
    p->results[item] = (int64_t)item * item;
    p->processed++;
  }
}

/* Runs the pipeline under a TaskGroup; returns fut_taskgroup_exit's code. */
static int run_pipeline(struct pipeline *p) {
  fut_taskgroup_t *g;
  int err = fut_taskgroup_new(&g);
  if (err)
    return err;
  if ((err = fut_taskgroup_enter(g))) {
    fut_taskgroup_free(g);
    return err;
  }
  err = fut_taskgroup_create_task(g, producer, p, NULL, NULL);
  for (int i = 0; i < NCONSUMERS && !err; i++)
    err = fut_taskgroup_create_task(g, consumer, p, NULL, NULL);
  err = fut_taskgroup_exit(g, err); /* waits for all of them */
  if (err == FUT_E_GROUP) {
    char text[256];
    fut_error_group_format(fut_taskgroup_errors(g), text, sizeof text);
    printf("  the group failed:\n    %s", text);
  }
  fut_taskgroup_free(g);
  return err;
}

static int main_task(void *arg) {
  (void)arg;
  struct pipeline ok = {.poison = 0};
  printf("run 1: no poison\n");
  int err = run_pipeline(&ok);
  int64_t sum = 0;
  for (int i = 1; i <= NITEMS; i++)
    sum += ok.results[i];
  printf("  exit: %s, %d items processed, sum of squares %lld\n",
         fut_err_name(err), ok.processed, (long long)sum);
  if (err || ok.processed != NITEMS || sum != 2870)
    return -EPROTO;

  struct pipeline bad = {.poison = 7};
  printf("run 2: item 7 is poisoned\n");
  err = run_pipeline(&bad);
  printf("  exit: %s, %d items processed, %d tasks cancelled\n",
         fut_err_name(err), bad.processed, bad.cancelled);
  if (err != FUT_E_GROUP || bad.processed >= NITEMS)
    return -EPROTO;
  return 0;
}

int main(void) {
  int err = fut_run(main_task, NULL, NULL);
  if (err) {
    fprintf(stderr, "pipeline: %s\n", fut_strerror(err));
    return 1;
  }
  return 0;
}
