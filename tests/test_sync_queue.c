/* Queues (future/queue.h) beyond CPython's tests (those are in
 * tests/cpython/test_queues.c): many consumers of a bounded queue, cancels
 * that must lose no item, the destructor on shutdown and free, the storage
 * of each kind against a model, no allocation in steady state, loops and
 * argument errors.  Task functions only record; the assertions run on the
 * test's own stack.  Every test runs on the loop fixture, whose teardown
 * proves the loop clean and the process's fds and threads back to their
 * baseline. */
#include "fixture.h"
#include "task_helpers.h"

#include <stdint.h>
#include <stdlib.h>

#include "base/internal.h" /* fut__alloc_fail_after */

#define T(fn) FX_LOOP_TEST(fn)

/* Runs loop until f is done, failing (not hanging) after 5 s. */
static void wait_done(fut_loop_t *loop, fut_t *f) {
  assert_true(fx_run_until(loop, fx_fut_done, f, FUT_SEC(5)));
}

#define I(x) ((void *)(intptr_t)(x))
#define V(p) ((int)(intptr_t)(p))

static fut_queue_t *newq(fut_queue_kind_t kind, size_t maxsize,
                         fut_free_fn dtor) {
  fut_queue_t *q;
  assert_int_equal(fut_queue_new(kind, maxsize, dtor, &q), 0);
  return q;
}

/* ---- producer / consumers --------------------------------------------------
 */

#define NITEMS 2000
#define NCONSUMERS 4

struct pc {
  fut_queue_t *q;
  int seen[NITEMS];    /* times each item was got */
  int got[NCONSUMERS]; /* items each consumer got */
  int rc_prod, rc_join, rc_shut;
  int rc_cons[NCONSUMERS]; /* how each consumer ended */
  int next;                /* consumer index to hand out */
};

static int consumer(void *arg) {
  struct pc *c = arg;
  int me = c->next++;
  for (;;) {
    void *item;
    int rc = fut_queue_get(c->q, &item);
    if (rc) {
      c->rc_cons[me] = rc;
      return 0;
    }
    c->seen[V(item)]++;
    c->got[me]++;
    if (V(item) % 7 == 0)
      fut_yield(); /* some work between items */
    fut_queue_task_done(c->q);
  }
}

static int producer(void *arg) {
  struct pc *c = arg;
  for (int i = 0; i < NITEMS; i++)
    if ((c->rc_prod = fut_queue_put(c->q, I(i))) != 0)
      return 0;
  c->rc_join = fut_queue_join(c->q);
  c->rc_shut = fut_queue_shutdown(c->q, false);
  return 0;
}

static void test_sync_queue_producer_consumers(void **state) {
  fut_loop_t *loop = *state;
  static struct pc c;
  memset(&c, 0, sizeof c);
  c.q = newq(FUT_QUEUE_FIFO, 4, NULL);
  fut_t *t[NCONSUMERS + 1];
  for (int i = 0; i < NCONSUMERS; i++)
    t[i] = spawn(loop, consumer, &c);
  t[NCONSUMERS] = spawn(loop, producer, &c);
  for (int i = 0; i <= NCONSUMERS; i++) {
    wait_done(loop, t[i]);
    assert_int_equal(fut_result(t[i], NULL), 0);
    fut_unref(t[i]);
  }
  assert_int_equal(c.rc_prod, 0);
  assert_int_equal(c.rc_join, 0);
  assert_int_equal(c.rc_shut, 0);
  for (int i = 0; i < NITEMS; i++)
    assert_int_equal(c.seen[i], 1);
  int total = 0;
  for (int i = 0; i < NCONSUMERS; i++) {
    assert_int_equal(c.rc_cons[i], FUT_E_QUEUE_SHUTDOWN);
    total += c.got[i];
  }
  assert_int_equal(total, NITEMS);
  assert_int_equal(fut_queue_unfinished_tasks(c.q), 0);
  assert_int_equal(fut_queue_free(c.q), 0);
}

/* ---- cancelled gets lose nothing ------------------------------------------
 */

struct getter {
  fut_queue_t *q;
  void *item;
  int rc;
};

static int get_fn(void *arg) {
  struct getter *g = arg;
  g->rc = fut_queue_get(g->q, &g->item);
  return 0;
}

static int put_fn(void *arg) {
  struct getter *g = arg;
  g->rc = fut_queue_put(g->q, g->item);
  return 0;
}

/* Two getters woken for two items are cancelled before they run: their
 * wakeups pass to the third getter, and the other item stays queued. */
static void test_sync_queue_cancel_woken_getters(void **state) {
  fut_loop_t *loop = *state;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0, NULL);
  struct getter g[3];
  fut_t *t[3];
  for (int i = 0; i < 3; i++) {
    g[i] = (struct getter){q, NULL, 1};
    t[i] = spawn(loop, get_fn, &g[i]);
  }
  drain(loop);
  assert_int_equal(fut_queue_getters(q), 3);
  assert_int_equal(fut_queue_put_nowait(q, I(10)), 0);
  assert_int_equal(fut_queue_put_nowait(q, I(11)), 0);
  assert_int_equal(fut_queue_getters(q), 1); /* two woken */
  fut_cancel(t[0], NULL);
  fut_cancel(t[1], NULL);
  for (int i = 0; i < 3; i++)
    wait_done(loop, t[i]);
  assert_int_equal(g[0].rc, -ECANCELED);
  assert_int_equal(g[1].rc, -ECANCELED);
  assert_null(g[0].item);
  assert_null(g[1].item);
  assert_int_equal(g[2].rc, 0);
  assert_int_equal(V(g[2].item), 10);
  assert_int_equal(fut_queue_qsize(q), 1);
  void *item;
  assert_int_equal(fut_queue_get_nowait(q, &item), 0);
  assert_int_equal(V(item), 11);
  for (int i = 0; i < 3; i++)
    fut_unref(t[i]);
  assert_int_equal(fut_queue_free(q), 0);
}

/* Rounds of random puts and random cancels of waiting getters: every item
 * put is got exactly once or still queued at the end. */
#define NGETTERS 8
#define ROUNDS 300

static void test_sync_queue_cancel_stress_loses_nothing(void **state) {
  fut_loop_t *loop = *state;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0, NULL);
  static int seen[ROUNDS * 4];
  memset(seen, 0, sizeof seen);
  struct getter g[NGETTERS];
  fut_t *t[NGETTERS];
  for (int i = 0; i < NGETTERS; i++) {
    g[i] = (struct getter){q, NULL, 1};
    t[i] = spawn(loop, get_fn, &g[i]);
  }
  srand(12345);
  int nput = 0;
  for (int r = 0; r < ROUNDS; r++) {
    drain(loop);
    for (int k = rand() % 4; k > 0; k--)
      assert_int_equal(fut_queue_put_nowait(q, I(nput++)), 0);
    for (int i = 0; i < NGETTERS; i++)
      if (rand() % 3 == 0)
        fut_cancel(t[i], NULL);
    drain(loop);
    for (int i = 0; i < NGETTERS; i++) {
      if (!fut_done(t[i]))
        continue;
      if (g[i].rc == 0)
        seen[V(g[i].item)]++;
      else
        assert_int_equal(g[i].rc, -ECANCELED);
      fut_unref(t[i]);
      g[i] = (struct getter){q, NULL, 1};
      t[i] = spawn(loop, get_fn, &g[i]);
    }
  }
  assert_int_equal(fut_queue_shutdown(q, false), 0);
  for (int i = 0; i < NGETTERS; i++) {
    wait_done(loop, t[i]);
    if (g[i].rc == 0)
      seen[V(g[i].item)]++;
    else
      assert_true(g[i].rc == FUT_E_QUEUE_SHUTDOWN || g[i].rc == -ECANCELED);
    fut_unref(t[i]);
  }
  void *item;
  while (fut_queue_get_nowait(q, &item) == 0)
    seen[V(item)]++;
  for (int i = 0; i < nput; i++)
    assert_int_equal(seen[i], 1);
  assert_int_equal(fut_queue_free(q), 0);
}

/* A cancelled put adds nothing and passes a slot it was woken for on. */
static void test_sync_queue_cancel_woken_putter(void **state) {
  fut_loop_t *loop = *state;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 1, NULL);
  assert_int_equal(fut_queue_put_nowait(q, I(1)), 0);
  struct getter p[2] = {{q, I(2), 1}, {q, I(3), 1}};
  fut_t *t0 = spawn(loop, put_fn, &p[0]), *t1 = spawn(loop, put_fn, &p[1]);
  drain(loop);
  assert_int_equal(fut_queue_putters(q), 2);
  void *item;
  assert_int_equal(fut_queue_get_nowait(q, &item), 0); /* wakes p[0] */
  fut_cancel(t0, NULL);
  wait_done(loop, t0);
  wait_done(loop, t1);
  assert_int_equal(p[0].rc, -ECANCELED);
  assert_int_equal(p[1].rc, 0);
  assert_int_equal(fut_queue_qsize(q), 1);
  assert_int_equal(fut_queue_get_nowait(q, &item), 0);
  assert_int_equal(V(item), 3);
  fut_unref(t0);
  fut_unref(t1);
  assert_int_equal(fut_queue_free(q), 0);
}

/* ---- the destructor -------------------------------------------------------
 */

static int g_freed;
static void count_free(void *p) {
  g_freed++;
  free(p);
}

static int *new_int(int v) {
  int *p = malloc(sizeof *p);
  assert_non_null(p);
  *p = v;
  return p;
}

struct joiner {
  fut_queue_t *q;
  int rc;
};

static int join_fn(void *arg) {
  struct joiner *j = arg;
  j->rc = fut_queue_join(j->q);
  return 0;
}

static void test_sync_queue_shutdown_immediate_frees_items(void **state) {
  fut_loop_t *loop = *state;
  g_freed = 0;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 10, count_free);
  for (int i = 0; i < 10; i++)
    assert_int_equal(fut_queue_put_nowait(q, new_int(i)), 0);
  struct getter p[2] = {{q, new_int(100), 1}, {q, new_int(101), 1}};
  fut_t *tp[2] = {spawn(loop, put_fn, &p[0]), spawn(loop, put_fn, &p[1])};
  struct joiner j = {q, 1};
  fut_t *tj = spawn(loop, join_fn, &j);
  drain(loop);
  assert_int_equal(fut_queue_putters(q), 2);
  assert_false(fut_done(tj));
  assert_int_equal(fut_queue_shutdown(q, true), 0);
  assert_int_equal(g_freed, 10);
  assert_int_equal(fut_queue_qsize(q), 0);
  assert_int_equal(fut_queue_unfinished_tasks(q), 0);
  for (int i = 0; i < 2; i++) {
    wait_done(loop, tp[i]);
    assert_int_equal(p[i].rc, FUT_E_QUEUE_SHUTDOWN);
    free(p[i].item); /* a failed put leaves the item with its owner */
    fut_unref(tp[i]);
  }
  wait_done(loop, tj);
  assert_int_equal(j.rc, 0);
  fut_unref(tj);
  assert_int_equal(g_freed, 10);
  assert_int_equal(fut_queue_free(q), 0);
  assert_int_equal(g_freed, 10);
}

static void test_sync_queue_free_drops_items(void **state) {
  (void)state;
  g_freed = 0;
  for (int kind = 0; kind < 3; kind++) {
    fut_queue_t *q = newq((fut_queue_kind_t)kind, 0, count_free);
    for (int i = 0; i < 40; i++) /* past the first growth */
      assert_int_equal(fut_queue_put_nowait(q, new_int(i)), 0);
    void *item;
    assert_int_equal(fut_queue_get_nowait(q, &item), 0);
    free(item);
    assert_int_equal(fut_queue_free(q), 0);
  }
  assert_int_equal(g_freed, 3 * 39);
  assert_int_equal(fut_queue_free(NULL), 0);
}

static void test_sync_queue_free_busy(void **state) {
  fut_loop_t *loop = *state;
  fut_queue_t *q = newq(FUT_QUEUE_LIFO, 0, NULL);
  struct getter g = {q, NULL, 1};
  fut_t *t = spawn(loop, get_fn, &g);
  drain(loop);
  assert_int_equal(fut_queue_free(q), -EBUSY);
  assert_int_equal(fut_queue_shutdown(q, false), 0);
  wait_done(loop, t);
  assert_int_equal(g.rc, FUT_E_QUEUE_SHUTDOWN);
  fut_unref(t);
  assert_int_equal(fut_queue_free(q), 0);
}

/* ---- storage against a model ----------------------------------------------
 */

/* Random puts and gets on each kind, checked against a plain array. */
static void test_sync_queue_storage_model(void **state) {
  (void)state;
  srand(777);
  for (int kind = 0; kind < 3; kind++) {
    fut_queue_t *q = newq((fut_queue_kind_t)kind, 0, NULL);
    int model[4096], n = 0;
    for (int step = 0; step < 20000; step++) {
      bool put =
          n == 0 || (n < 4000 && rand() % 100 < (step < 10000 ? 60 : 40));
      if (put) {
        int v = 1 + rand() % 1000;
        assert_int_equal(fut_queue_put_nowait(q, I(v)), 0);
        model[n++] = v;
      } else {
        void *item;
        assert_int_equal(fut_queue_get_nowait(q, &item), 0);
        int want, at = 0;
        if (kind == FUT_QUEUE_FIFO) {
          at = 0;
        } else if (kind == FUT_QUEUE_LIFO) {
          at = n - 1;
        } else {
          for (int i = 1; i < n; i++)
            if (model[i] < model[at])
              at = i;
        }
        want = model[at];
        memmove(model + at, model + at + 1,
                (size_t)(n - at - 1) * sizeof *model);
        n--;
        assert_int_equal(V(item), want);
      }
      assert_int_equal(fut_queue_qsize(q), n);
    }
    assert_int_equal(fut_queue_free(q), 0);
  }
}

struct job {
  int prio;
  int id;
};

static int job_cmp(const void *a, const void *b) {
  const struct job *x = a, *y = b;
  return (x->prio > y->prio) - (x->prio < y->prio);
}

static void test_sync_queue_priority_cmp(void **state) {
  (void)state;
  fut_queue_opts_t o;
  fut_queue_opts_init(&o);
  o.kind = FUT_QUEUE_PRIORITY;
  o.cmp = job_cmp;
  o.maxsize = 500;
  fut_queue_t *q;
  assert_int_equal(fut_queue_new_opts(&o, &q), 0);
  static struct job jobs[500];
  srand(99);
  for (int i = 0; i < 500; i++) {
    jobs[i] = (struct job){rand() % 50, i};
    assert_int_equal(fut_queue_put_nowait(q, &jobs[i]), 0);
  }
  assert_true(fut_queue_full(q));
  assert_int_equal(fut_queue_put_nowait(q, &jobs[0]), FUT_E_QUEUE_FULL);
  int last = -1;
  for (int i = 0; i < 500; i++) {
    void *item;
    assert_int_equal(fut_queue_get_nowait(q, &item), 0);
    struct job *j = item;
    assert_true(j->prio >= last);
    last = j->prio;
  }
  assert_int_equal(fut_queue_get_nowait(q, &(void *){0}), FUT_E_QUEUE_EMPTY);
  assert_int_equal(fut_queue_free(q), 0);
}

/* ---- no allocation in steady state -------------------------------------- */

#define PINGS 2000

struct pingpong {
  fut_queue_t *q;
  int n;    /* items to pass */
  int rc;   /* the first failure */
  long sum; /* of the items got */
};

static int pp_put(void *arg) {
  struct pingpong *p = arg;
  for (int i = 0; i < p->n && !p->rc; i++)
    p->rc = fut_queue_put(p->q, I(i));
  return 0;
}

static int pp_get(void *arg) {
  struct pingpong *p = arg;
  for (int i = 0; i < p->n; i++) {
    void *item;
    int rc = fut_queue_get(p->q, &item);
    if (rc) {
      p->rc = rc;
      return 0;
    }
    p->sum += V(item);
  }
  return 0;
}

/* One round of PINGS items through a queue of one slot between two tasks
 * (every item a wait on each side).  With `no_alloc`, every allocation
 * after the tasks started fails. */
static void pingpong_round(fut_loop_t *loop, fut_queue_t *q, bool no_alloc) {
  struct pingpong put = {q, PINGS, 0, 0}, get = {q, PINGS, 0, 0};
  fut_t *tp = spawn(loop, pp_put, &put), *tg = spawn(loop, pp_get, &get);
  /* Both tasks' first steps: their stacks come from the cache. */
  fut_loop_run_once(loop, 0);
  if (no_alloc)
    fut__alloc_fail_after(1, true);
  wait_done(loop, tp);
  wait_done(loop, tg);
  fut__alloc_fail_after(0, false);
  assert_int_equal(put.rc, 0);
  assert_int_equal(get.rc, 0);
  assert_int_equal(get.sum, (long)PINGS * (PINGS - 1) / 2);
  fut_unref(tp);
  fut_unref(tg);
}

static void test_sync_queue_no_alloc_steady_state(void **state) {
  fut_loop_t *loop = *state;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 1, NULL);
  pingpong_round(loop, q, false); /* warms the free lists and the ring */
  pingpong_round(loop, q, true);
  /* Unbounded: the ring grows once, then put/get allocate nothing. */
  fut_queue_t *u = newq(FUT_QUEUE_FIFO, 0, NULL);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(fut_queue_put_nowait(u, I(i)), 0);
  void *item;
  for (int i = 0; i < 1000; i++)
    assert_int_equal(fut_queue_get_nowait(u, &item), 0);
  fut__alloc_fail_after(1, true);
  for (int r = 0; r < 10; r++) {
    for (int i = 0; i < 1000; i++)
      assert_int_equal(fut_queue_put_nowait(u, I(i)), 0);
    for (int i = 0; i < 1000; i++) {
      assert_int_equal(fut_queue_get_nowait(u, &item), 0);
      assert_int_equal(V(item), i);
    }
  }
  fut__alloc_fail_after(0, false);
  assert_int_equal(fut_queue_free(u), 0);
  assert_int_equal(fut_queue_free(q), 0);
}

static void test_sync_queue_put_nowait_enomem(void **state) {
  (void)state;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0, NULL);
  fut__alloc_fail_after(1, false);
  assert_int_equal(fut_queue_put_nowait(q, I(5)), -ENOMEM);
  fut__alloc_fail_after(0, false);
  assert_int_equal(fut_queue_qsize(q), 0);
  assert_int_equal(fut_queue_unfinished_tasks(q), 0);
  assert_int_equal(fut_queue_put_nowait(q, I(5)), 0);
  assert_int_equal(fut_queue_free(q), 0);
}

/* ---- loops, tasks, arguments ----------------------------------------------
 */

struct calls {
  fut_queue_t *q;
  int rc_get, rc_put, rc_put_nowait, rc_join;
  void *item;
};

static int other_loop_fn(void *arg) {
  struct calls *c = arg;
  c->rc_get = fut_queue_get(c->q, &c->item);
  c->rc_put = fut_queue_put(c->q, I(1));
  c->rc_put_nowait = fut_queue_put_nowait(c->q, I(1));
  c->rc_join = fut_queue_join(c->q);
  return 0;
}

static void put_seven_cb(void *q) {
  fut_queue_put_nowait(q, I(7));
}

static void test_sync_queue_other_loop(void **state) {
  fut_loop_t *loop = *state;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0, NULL);
  assert_null(fut_queue_get_loop(q));
  /* A task of loop waits: the queue binds to loop. */
  struct getter g = {q, NULL, 1};
  fut_t *t = spawn(loop, get_fn, &g);
  assert_int_equal(fut_loop_call_soon(loop, put_seven_cb, q, NULL), 0);
  wait_done(loop, t);
  fut_unref(t);
  assert_int_equal(g.rc, 0);
  assert_int_equal(V(g.item), 7);
  assert_ptr_equal(fut_queue_get_loop(q), loop);
  /* Another loop's task is refused. */
  fut_loop_t *other = new_loop();
  struct calls c = {q, 0, 0, 0, 0, I(3)};
  assert_int_equal(run_main(other, other_loop_fn, &c), 0);
  assert_int_equal(c.rc_get, FUT_E_OTHER_LOOP);
  assert_null(c.item);
  assert_int_equal(c.rc_put, FUT_E_OTHER_LOOP);
  assert_int_equal(c.rc_put_nowait, FUT_E_OTHER_LOOP);
  assert_int_equal(c.rc_join, FUT_E_OTHER_LOOP);
  end_loop(other);
  assert_int_equal(fut_queue_qsize(q), 0);
  assert_int_equal(fut_queue_free(q), 0);
}

static void test_sync_queue_not_in_task(void **state) {
  (void)state;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0, NULL);
  void *item = I(1);
  assert_int_equal(fut_queue_get(q, &item), FUT_E_NOT_IN_TASK);
  assert_null(item);
  assert_int_equal(fut_queue_put(q, I(1)), FUT_E_NOT_IN_TASK);
  assert_int_equal(fut_queue_join(q), FUT_E_NOT_IN_TASK);
  assert_int_equal(fut_queue_qsize(q), 0);
  /* The non-waiting calls need no task. */
  assert_int_equal(fut_queue_put_nowait(q, I(1)), 0);
  assert_int_equal(fut_queue_get_nowait(q, &item), 0);
  assert_int_equal(fut_queue_task_done(q), 0);
  assert_int_equal(fut_queue_free(q), 0);
}

static void test_sync_queue_bad_args(void **state) {
  (void)state;
  fut_queue_t *q = I(1);
  assert_int_equal(fut_queue_new((fut_queue_kind_t)7, 0, NULL, &q), -EINVAL);
  assert_null(q);
  assert_int_equal(fut_queue_new(FUT_QUEUE_FIFO, 0, NULL, NULL), -EINVAL);
  fut_queue_opts_t o;
  fut_queue_opts_init(&o);
  o.cmp = job_cmp; /* for priority queues only */
  assert_int_equal(fut_queue_new_opts(&o, &q), -EINVAL);
  assert_int_equal(fut_queue_new_opts(NULL, &q), 0);
  assert_int_equal(fut_queue_kind(q), FUT_QUEUE_FIFO);
  assert_int_equal(fut_queue_get_nowait(q, NULL), -EINVAL);
  assert_int_equal(fut_queue_free(q), 0);
  void *item;
  assert_int_equal(fut_queue_put_nowait(NULL, I(1)), -EINVAL);
  assert_int_equal(fut_queue_get_nowait(NULL, &item), -EINVAL);
  assert_int_equal(fut_queue_task_done(NULL), -EINVAL);
  assert_int_equal(fut_queue_shutdown(NULL, true), -EINVAL);
  assert_int_equal(fut_queue_qsize(NULL), 0);
  assert_true(fut_queue_empty(NULL));
  assert_false(fut_queue_full(NULL));
}

static void test_sync_queue_error_names(void **state) {
  (void)state;
  assert_string_equal(fut_err_name(FUT_E_QUEUE_FULL), "FUT_E_QUEUE_FULL");
  assert_string_equal(fut_err_name(FUT_E_QUEUE_EMPTY), "FUT_E_QUEUE_EMPTY");
  assert_string_equal(fut_err_name(FUT_E_QUEUE_SHUTDOWN),
                      "FUT_E_QUEUE_SHUTDOWN");
  assert_string_equal(fut_strerror(FUT_E_QUEUE_FULL), "queue is full");
  assert_int_equal(FUT_E_QUEUE_FULL, -10022);
  assert_int_equal(FUT_E_QUEUE_EMPTY, -10023);
  assert_int_equal(FUT_E_QUEUE_SHUTDOWN, -10024);
}

static void test_sync_queue_join_cancelled(void **state) {
  fut_loop_t *loop = *state;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0, NULL);
  assert_int_equal(fut_queue_put_nowait(q, I(1)), 0);
  struct joiner j = {q, 1}, j2 = {q, 1};
  fut_t *t = spawn(loop, join_fn, &j), *t2 = spawn(loop, join_fn, &j2);
  drain(loop);
  assert_int_equal(fut_queue_free(q), -EBUSY);
  fut_cancel(t, NULL);
  wait_done(loop, t);
  assert_int_equal(j.rc, -ECANCELED);
  fut_unref(t);
  void *item;
  assert_int_equal(fut_queue_get_nowait(q, &item), 0);
  assert_int_equal(fut_queue_task_done(q), 0);
  wait_done(loop, t2);
  assert_int_equal(j2.rc, 0);
  fut_unref(t2);
  assert_int_equal(fut_queue_free(q), 0);
}

static void shutdown_cb(void *q) {
  fut_queue_shutdown(q, false);
}

/* Shut down from a callback: the waiting getter returns, in order after an
 * item put before it is still got. */
static void test_sync_queue_shutdown_from_callback(void **state) {
  fut_loop_t *loop = *state;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0, NULL);
  struct getter g[2] = {{q, NULL, 1}, {q, NULL, 1}};
  fut_t *t0 = spawn(loop, get_fn, &g[0]), *t1 = spawn(loop, get_fn, &g[1]);
  drain(loop);
  assert_int_equal(fut_queue_put_nowait(q, I(4)), 0);
  assert_int_equal(fut_loop_call_soon(loop, shutdown_cb, q, NULL), 0);
  wait_done(loop, t0);
  wait_done(loop, t1);
  assert_int_equal(g[0].rc, 0);
  assert_int_equal(V(g[0].item), 4);
  assert_int_equal(g[1].rc, FUT_E_QUEUE_SHUTDOWN);
  fut_unref(t0);
  fut_unref(t1);
  assert_int_equal(fut_queue_free(q), 0);
}

/* A loop closed while tasks wait on a queue: they return -ECANCELED and
 * leave no waiter behind. */
static void test_sync_queue_loop_close_while_waiting(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fx_exc_t cap;
  fx_exc_capture(loop, &cap); /* "Task was destroyed but it is pending!" */
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 1, NULL);
  assert_int_equal(fut_queue_put_nowait(q, I(1)), 0);
  struct getter p = {q, I(2), 1};
  struct joiner j = {q, 1};
  fut_t *tp = spawn(loop, put_fn, &p), *tj = spawn(loop, join_fn, &j);
  drain(loop);
  assert_int_equal(fut_queue_putters(q), 1);
  fut_unref(tp);
  fut_unref(tj);
  assert_int_equal(fut_loop_close(loop), 0);
  assert_int_equal(p.rc, -ECANCELED);
  assert_int_equal(j.rc, -ECANCELED);
  assert_int_equal(cap.count, 2);
  assert_int_equal(fut_queue_putters(q), 0);
  end_loop(loop);
  assert_int_equal(fut_queue_free(q), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_sync_queue_producer_consumers),
      T(test_sync_queue_cancel_woken_getters),
      T(test_sync_queue_cancel_stress_loses_nothing),
      T(test_sync_queue_cancel_woken_putter),
      T(test_sync_queue_shutdown_immediate_frees_items),
      T(test_sync_queue_free_drops_items),
      T(test_sync_queue_free_busy),
      T(test_sync_queue_storage_model),
      T(test_sync_queue_priority_cmp),
      T(test_sync_queue_no_alloc_steady_state),
      T(test_sync_queue_put_nowait_enomem),
      T(test_sync_queue_other_loop),
      T(test_sync_queue_not_in_task),
      T(test_sync_queue_bad_args),
      T(test_sync_queue_error_names),
      T(test_sync_queue_join_cancelled),
      T(test_sync_queue_shutdown_from_callback),
      T(test_sync_queue_loop_close_while_waiting),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
