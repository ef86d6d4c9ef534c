/* A pipeline under a TaskGroup: a producer task feeds numbers into a
 * bounded queue, N consumer tasks take them and store their squares.  The
 * first run goes through; in the second, one consumer fails on a poisoned
 * item, and the group cancels the producer and the other consumers
 * (blocked in put or get, or busy) and comes back with FUT_E_GROUP and
 * the failure in its error group.
 *
 * The queue is future/queue.h's (asyncio.Queue): items are void *, here
 * small integers stored in the pointer. */
#include <errno.h>
#include <future.h>
#include <stdint.h>
#include <stdio.h>

#define CAP 4 /* the queue's bound */
#define NCONSUMERS 3
#define NITEMS 20

/* ---- the pipeline ------------------------------------------------------- */

#define DONE (-1) /* the end-of-stream item, one per consumer */

struct pipeline {
  fut_queue_t *q;
  int poison; /* the item a consumer fails on, or 0 */
  int64_t results[NITEMS + 1];
  int processed, cancelled;
};

static int producer(void *arg) {
  struct pipeline *p = arg;
  for (int i = 1; i <= NITEMS; i++) {
    int err = fut_queue_put(p->q, (void *)(intptr_t)i);
    if (err) {
      printf("  producer: cancelled before item %d\n", i);
      p->cancelled++;
      return err;
    }
  }
  for (int i = 0; i < NCONSUMERS; i++)
    if (fut_queue_put(p->q, (void *)(intptr_t)DONE))
      return -ECANCELED;
  return 0;
}

static int consumer(void *arg) {
  struct pipeline *p = arg;
  for (;;) {
    void *got;
    int err = fut_queue_get(p->q, &got);
    int item = (int)(intptr_t)got;
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
  int err = fut_queue_new(FUT_QUEUE_FIFO, CAP, NULL, &p->q);
  if (err)
    return err;
  if ((err = fut_taskgroup_new(&g))) {
    fut_queue_free(p->q);
    return err;
  }
  if ((err = fut_taskgroup_enter(g))) {
    fut_taskgroup_free(g);
    fut_queue_free(p->q);
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
  fut_queue_free(p->q); /* frees nothing: items are plain integers */
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
