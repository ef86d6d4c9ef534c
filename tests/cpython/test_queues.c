/* CPython's Lib/test/test_asyncio/test_queues.py (3.13, with shutdown) as
 * libfuture's behavioural spec: one cmocka test per CPython test method,
 * the CPython class and method named in the comment above it.  Each
 * CPython test body runs as a main task on the fixture's loop; the
 * coroutines it creates with create_task are tasks running one queue
 * operation each (struct op).  asyncio.sleep(0) is fut_yield().  Items
 * are small integers stored in the pointer (strings of the Python tests
 * become characters).  Task functions only record what they see (CHECK
 * records the first failing line and ends the main task); the assertions
 * run on the test's own stack.
 *
 * The mixin classes (_QueueJoinTestMixin, _QueueShutdownTestMixin) run for
 * the three kinds, as CPython's Queue / LifoQueue / PriorityQueue
 * subclasses do: one cmocka test per (class, method).
 *
 * Not ported (no C counterpart):
 *   QueueBasicTests.test_str, test_generic_alias: no str() or generic
 *     alias in C (test_repr is ported as the waiter counts it prints);
 *   QueueGetTests.test_get_with_putters: appends a foreign future to the
 *     private _putters deque;
 *   QueuePutTests.test_float_maxsize: maxsize is a size_t here. */
#include "fixture.h"
#include "task_helpers.h"

#include <stdint.h>

#define T(fn) FX_LOOP_TEST(fn)

#define I(x) ((void *)(intptr_t)(x))
#define V(p) ((int)(intptr_t)(p))

static int g_line; /* the first failed CHECK's line, 0 if none */

#define CHECK(c)                                                               \
  do {                                                                         \
    if (!(c)) {                                                                \
      if (!g_line)                                                             \
        g_line = __LINE__;                                                     \
      return -EPROTO;                                                          \
    }                                                                          \
  } while (0)

struct env {
  fut_queue_kind_t kind;
};

/* Runs fn as the main task with a queue kind; fails the test at the first
 * failed CHECK. */
static void run(void **state, fut_task_fn fn, fut_queue_kind_t kind) {
  struct env e = {kind};
  g_line = 0;
  int rc = run_main(*state, fn, &e);
  if (g_line)
    fail_msg("CHECK failed at line %d", g_line);
  assert_int_equal(rc, 0);
}

static fut_queue_kind_t kind_of(void *arg) {
  return ((struct env *)arg)->kind;
}

static fut_queue_t *newq(fut_queue_kind_t kind, size_t maxsize) {
  fut_queue_t *q = NULL;
  if (fut_queue_new(kind, maxsize, NULL, &q) != 0)
    return NULL;
  return q;
}

/* ---- one queue operation per task ---------------------------------------- */

struct op {
  fut_queue_t *q;
  void *item; /* put: the item; get: what it got */
  int rc;     /* the operation's return */
  bool done;  /* the operation returned */
};

/* A task's outcome follows the operation's: cancelled if it was. */
static int op_end(struct op *o) {
  o->done = true;
  return o->rc == -ECANCELED ? -ECANCELED : 0;
}
static int put_fn(void *arg) {
  struct op *o = arg;
  o->rc = fut_queue_put(o->q, o->item);
  return op_end(o);
}
static int get_fn(void *arg) {
  struct op *o = arg;
  o->rc = fut_queue_get(o->q, &o->item);
  return op_end(o);
}
static int join_fn(void *arg) {
  struct op *o = arg;
  o->rc = fut_queue_join(o->q);
  return op_end(o);
}

/* A task of the running loop (NULL on failure). */
static fut_t *start(fut_task_fn fn, struct op *o) {
  fut_t *t = NULL;
  if (fut_create_task(fut_get_running_loop(), fn, o, NULL, &t) != 0)
    return NULL;
  return t;
}

/* Awaits task t and releases it; returns the await's code. */
static int finish(fut_t *t) {
  int rc = fut_await(t, NULL);
  fut_unref(t);
  return rc;
}

/* ---- QueueBasicTests ------------------------------------------------------
 */

static int repr_main(void *arg) {
  (void)arg;
  /* getters */
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0);
  CHECK(q);
  struct op g = {q, NULL, 0, false};
  fut_t *getter = start(get_fn, &g);
  CHECK(getter);
  fut_yield();
  CHECK(fut_queue_getters(q) == 1); /* '_getters[1]' in repr(q) */
  CHECK(fut_queue_put_nowait(q, I(0)) == 0);
  CHECK(finish(getter) == 0);
  CHECK(g.rc == 0 && V(g.item) == 0);
  CHECK(fut_queue_free(q) == 0);
  /* putters */
  q = newq(FUT_QUEUE_FIFO, 1);
  CHECK(q);
  CHECK(fut_queue_put_nowait(q, I(1)) == 0);
  struct op p = {q, I(2), 0, false};
  fut_t *putter = start(put_fn, &p);
  CHECK(putter);
  fut_yield();
  CHECK(fut_queue_putters(q) == 1); /* '_putters[1]' in repr(q) */
  void *item;
  CHECK(fut_queue_get_nowait(q, &item) == 0);
  CHECK(finish(putter) == 0);
  CHECK(p.done && p.rc == 0);
  CHECK(fut_queue_free(q) == 0);
  /* '_queue=[1]' */
  q = newq(FUT_QUEUE_FIFO, 0);
  CHECK(q);
  CHECK(fut_queue_put_nowait(q, I(1)) == 0);
  CHECK(fut_queue_qsize(q) == 1);
  CHECK(fut_queue_get_nowait(q, &item) == 0 && V(item) == 1);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueueBasicTests.test_repr (the waiter counts repr shows) */
static void test_repr(void **state) {
  run(state, repr_main, FUT_QUEUE_FIFO);
}

static int empty_main(void *arg) {
  (void)arg;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0);
  CHECK(q);
  CHECK(fut_queue_empty(q));
  CHECK(fut_queue_put(q, I(1)) == 0);
  CHECK(!fut_queue_empty(q));
  void *item;
  CHECK(fut_queue_get(q, &item) == 0 && V(item) == 1);
  CHECK(fut_queue_empty(q));
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueueBasicTests.test_empty */
static void test_empty(void **state) {
  run(state, empty_main, 0);
}

static int full_main(void *arg) {
  (void)arg;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0);
  CHECK(q);
  CHECK(!fut_queue_full(q));
  CHECK(fut_queue_free(q) == 0);
  q = newq(FUT_QUEUE_FIFO, 1);
  CHECK(q);
  CHECK(fut_queue_put(q, I(1)) == 0);
  CHECK(fut_queue_full(q));
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueueBasicTests.test_full */
static void test_full(void **state) {
  run(state, full_main, 0);
}

/* Puts 1, 3, 2 and checks the order they come out in. */
static int order_main(void *arg) {
  fut_queue_kind_t kind = kind_of(arg);
  fut_queue_t *q = newq(kind, 0);
  CHECK(q);
  int in[3] = {1, 3, 2}, out[3];
  for (int i = 0; i < 3; i++)
    CHECK(fut_queue_put(q, I(in[i])) == 0);
  for (int i = 0; i < 3; i++) {
    void *item;
    CHECK(fut_queue_get(q, &item) == 0);
    out[i] = V(item);
  }
  static const int want[3][3] = {{1, 3, 2}, {2, 3, 1}, {1, 2, 3}};
  for (int i = 0; i < 3; i++)
    CHECK(out[i] == want[kind][i]);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueueBasicTests.test_order */
static void test_order(void **state) {
  run(state, order_main, FUT_QUEUE_FIFO);
}

struct maxsize_ctx {
  fut_queue_t *q;
  int have_been_put[3];
  int n;
};

static int maxsize_putter(void *arg) {
  struct maxsize_ctx *c = arg;
  for (int i = 0; i < 3; i++) {
    if (fut_queue_put(c->q, I(i)) != 0)
      return -EPROTO;
    c->have_been_put[c->n++] = i;
  }
  return 0;
}

static int maxsize_main(void *arg) {
  (void)arg;
  struct maxsize_ctx c = {newq(FUT_QUEUE_FIFO, 2), {0}, 0};
  CHECK(c.q);
  CHECK(fut_queue_maxsize(c.q) == 2);
  fut_t *t;
  CHECK(fut_create_task(fut_get_running_loop(), maxsize_putter, &c, NULL, &t) ==
        0);
  for (int i = 0; i < 2; i++)
    fut_yield();
  /* The putter is blocked after putting two items. */
  CHECK(c.n == 2 && c.have_been_put[0] == 0 && c.have_been_put[1] == 1);
  void *item;
  CHECK(fut_queue_get(c.q, &item) == 0 && V(item) == 0);
  /* Let the putter resume and put last item. */
  fut_yield();
  CHECK(c.n == 3 && c.have_been_put[2] == 2);
  CHECK(fut_queue_get(c.q, &item) == 0 && V(item) == 1);
  CHECK(fut_queue_get(c.q, &item) == 0 && V(item) == 2);
  CHECK(fut_done(t));
  CHECK(finish(t) == 0);
  CHECK(fut_queue_free(c.q) == 0);
  return 0;
}

/* QueueBasicTests.test_maxsize */
static void test_maxsize(void **state) {
  run(state, maxsize_main, 0);
}

/* ---- QueueGetTests ---------------------------------------------------------
 */

static int blocking_get_main(void *arg) {
  (void)arg;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0);
  CHECK(q);
  CHECK(fut_queue_put_nowait(q, I(1)) == 0);
  void *item;
  CHECK(fut_queue_get(q, &item) == 0 && V(item) == 1);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueueGetTests.test_blocking_get */
static void test_blocking_get(void **state) {
  run(state, blocking_get_main, 0);
}

static void put_one_cb(void *q) {
  (void)fut_queue_put_nowait(q, I(1));
}
static void get_one_cb(void *q) {
  void *item;
  (void)fut_queue_get_nowait(q, &item);
}

static int blocking_get_wait_main(void *arg) {
  (void)arg;
  fut_loop_t *loop = fut_get_running_loop();
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0);
  CHECK(q);
  struct op g = {q, NULL, 0, false};
  fut_t *t = start(get_fn, &g);
  CHECK(t);
  fut_yield(); /* started.wait() */
  CHECK(!g.done);
  CHECK(fut_loop_call_later(loop, FUT_MS(10), put_one_cb, q, NULL) == 0);
  CHECK(finish(t) == 0);
  CHECK(g.done && g.rc == 0 && V(g.item) == 1);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueueGetTests.test_blocking_get_wait */
static void test_blocking_get_wait(void **state) {
  run(state, blocking_get_wait_main, 0);
}

/* QueueGetTests.test_nonblocking_get */
static void test_nonblocking_get(void **state) {
  (void)state;
  fut_queue_t *q;
  assert_int_equal(fut_queue_new(FUT_QUEUE_FIFO, 0, NULL, &q), 0);
  assert_int_equal(fut_queue_put_nowait(q, I(1)), 0);
  void *item;
  assert_int_equal(fut_queue_get_nowait(q, &item), 0);
  assert_int_equal(V(item), 1);
  assert_int_equal(fut_queue_free(q), 0);
}

/* QueueGetTests.test_nonblocking_get_exception */
static void test_nonblocking_get_exception(void **state) {
  (void)state;
  fut_queue_t *q;
  assert_int_equal(fut_queue_new(FUT_QUEUE_FIFO, 0, NULL, &q), 0);
  void *item = I(7);
  assert_int_equal(fut_queue_get_nowait(q, &item), FUT_E_QUEUE_EMPTY);
  assert_null(item);
  assert_int_equal(fut_queue_free(q), 0);
}

static int get_cancelled_race_main(void *arg) {
  (void)arg;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0);
  CHECK(q);
  struct op g1 = {q, NULL, 0, false}, g2 = {q, NULL, 0, false};
  fut_t *t1 = start(get_fn, &g1), *t2 = start(get_fn, &g2);
  CHECK(t1 && t2);
  fut_yield();
  fut_cancel(t1, NULL);
  fut_yield();
  CHECK(fut_done(t1));
  CHECK(fut_queue_put(q, I('a')) == 0);
  fut_yield();
  CHECK(finish(t2) == 0);
  CHECK(g2.rc == 0 && V(g2.item) == 'a');
  CHECK(finish(t1) == -ECANCELED && g1.rc == -ECANCELED);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueueGetTests.test_get_cancelled_race */
static void test_get_cancelled_race(void **state) {
  run(state, get_cancelled_race_main, 0);
}

static int get_with_waiting_putters_main(void *arg) {
  (void)arg;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 1);
  CHECK(q);
  struct op pa = {q, I('a'), 0, false}, pb = {q, I('b'), 0, false};
  fut_t *ta = start(put_fn, &pa), *tb = start(put_fn, &pb);
  CHECK(ta && tb);
  void *item;
  CHECK(fut_queue_get(q, &item) == 0 && V(item) == 'a');
  CHECK(fut_queue_get(q, &item) == 0 && V(item) == 'b');
  CHECK(finish(ta) == 0 && finish(tb) == 0);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueueGetTests.test_get_with_waiting_putters */
static void test_get_with_waiting_putters(void **state) {
  run(state, get_with_waiting_putters_main, 0);
}

struct pc {
  fut_queue_t *q;
  int n;
  int rc;
};

static int consumer_fn(void *arg) {
  struct pc *c = arg;
  for (int i = 0; i < c->n && !c->rc; i++) {
    void *item;
    c->rc = fut_queue_get(c->q, &item);
  }
  return 0;
}

static int producer_fn(void *arg) {
  struct pc *c = arg;
  for (int i = 0; i < c->n && !c->rc; i++)
    c->rc = fut_queue_put(c->q, I(i));
  return 0;
}

static int why_are_getters_waiting_main(void *arg) {
  (void)arg;
  fut_loop_t *loop = fut_get_running_loop();
  struct pc prod = {newq(FUT_QUEUE_FIFO, 1), 5, 0};
  struct pc cons = prod;
  CHECK(prod.q);
  fut_t *tp, *tc;
  CHECK(fut_create_task(loop, producer_fn, &prod, NULL, &tp) == 0);
  CHECK(fut_create_task(loop, consumer_fn, &cons, NULL, &tc) == 0);
  CHECK(finish(tp) == 0 && finish(tc) == 0); /* the TaskGroup's exit */
  CHECK(prod.rc == 0 && cons.rc == 0);
  CHECK(fut_queue_free(prod.q) == 0);
  return 0;
}

/* QueueGetTests.test_why_are_getters_waiting */
static void test_why_are_getters_waiting(void **state) {
  run(state, why_are_getters_waiting_main, 0);
}

static int cancelled_getters_main(void *arg) {
  (void)arg;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 5);
  CHECK(q);
  fut_timeout_t *to;
  CHECK(fut_timeout_enter(FUT_MS(100), &to) == 0);
  void *item;
  int rc = fut_queue_get(q, &item);
  CHECK(fut_timeout_exit(to, rc) == -ETIMEDOUT);
  CHECK(fut_queue_getters(q) == 0);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueueGetTests.test_cancelled_getters_not_being_held_in_self_getters
 * (asyncio.wait_for(q.get(), 0.1) as a timeout block) */
static void test_cancelled_getters_not_being_held_in_self_getters(void **s) {
  run(s, cancelled_getters_main, 0);
}

/* ---- QueuePutTests ---------------------------------------------------------
 */

static int blocking_put_main(void *arg) {
  (void)arg;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0);
  CHECK(q);
  /* No maxsize, won't block. */
  CHECK(fut_queue_put(q, I(1)) == 0);
  void *item;
  CHECK(fut_queue_get(q, &item) == 0 && V(item) == 1);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueuePutTests.test_blocking_put */
static void test_blocking_put(void **state) {
  run(state, blocking_put_main, 0);
}

struct put2 {
  fut_queue_t *q;
  bool started, finished;
  int rc;
};

static int put_two_fn(void *arg) {
  struct put2 *c = arg;
  c->started = true;
  if ((c->rc = fut_queue_put(c->q, I(1))) == 0)
    c->rc = fut_queue_put(c->q, I(2));
  c->finished = true;
  return 0;
}

static int blocking_put_wait_main(void *arg) {
  (void)arg;
  fut_loop_t *loop = fut_get_running_loop();
  struct put2 c = {newq(FUT_QUEUE_FIFO, 1), false, false, 0};
  CHECK(c.q);
  CHECK(fut_loop_call_later(loop, FUT_MS(10), get_one_cb, c.q, NULL) == 0);
  fut_t *t;
  CHECK(fut_create_task(loop, put_two_fn, &c, NULL, &t) == 0);
  fut_yield(); /* started.wait() */
  CHECK(c.started && !c.finished);
  CHECK(finish(t) == 0);
  CHECK(c.finished && c.rc == 0);
  CHECK(fut_queue_qsize(c.q) == 1);
  void *item;
  CHECK(fut_queue_get_nowait(c.q, &item) == 0 && V(item) == 2);
  CHECK(fut_queue_free(c.q) == 0);
  return 0;
}

/* QueuePutTests.test_blocking_put_wait */
static void test_blocking_put_wait(void **state) {
  run(state, blocking_put_wait_main, 0);
}

/* QueuePutTests.test_nonblocking_put */
static void test_nonblocking_put(void **state) {
  test_nonblocking_get(state);
}

static int drop_one_reader_main(void *arg) {
  (void)arg;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0);
  CHECK(q);
  struct op r = {q, NULL, 0, false};
  fut_t *reader = start(get_fn, &r);
  CHECK(reader);
  fut_yield();
  CHECK(fut_queue_put_nowait(q, I(1)) == 0);
  CHECK(fut_queue_put_nowait(q, I(2)) == 0);
  fut_cancel(reader, NULL);
  if (finish(reader) == -ECANCELED) {
    /* try again */
    r = (struct op){q, NULL, 0, false};
    reader = start(get_fn, &r);
    CHECK(reader);
    CHECK(finish(reader) == 0);
  }
  /* if we get 2, it means 1 got dropped! */
  CHECK(r.rc == 0 && V(r.item) == 1);
  CHECK(fut_queue_qsize(q) == 1);
  void *item;
  CHECK(fut_queue_get_nowait(q, &item) == 0 && V(item) == 2);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueuePutTests.test_get_cancel_drop_one_pending_reader */
static void test_get_cancel_drop_one_pending_reader(void **state) {
  run(state, drop_one_reader_main, 0);
}

static int drop_many_readers_main(void *arg) {
  (void)arg;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0);
  CHECK(q);
  struct op r[3];
  fut_t *t[3];
  for (int i = 0; i < 3; i++) {
    r[i] = (struct op){q, NULL, 0, false};
    CHECK((t[i] = start(get_fn, &r[i])));
  }
  fut_yield();
  CHECK(fut_queue_put_nowait(q, I(1)) == 0);
  CHECK(fut_queue_put_nowait(q, I(2)) == 0);
  fut_cancel(t[0], NULL);
  CHECK(finish(t[0]) == -ECANCELED);
  CHECK(finish(t[2]) == 0);
  CHECK(finish(t[1]) == 0); /* the TaskGroup's exit */
  /* It is undefined in which order concurrent readers receive results. */
  CHECK(r[1].rc == 0 && r[2].rc == 0);
  CHECK(V(r[1].item) + V(r[2].item) == 3 && V(r[1].item) != V(r[2].item));
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueuePutTests.test_get_cancel_drop_many_pending_readers */
static void test_get_cancel_drop_many_pending_readers(void **state) {
  run(state, drop_many_readers_main, 0);
}

static int put_cancel_drop_main(void *arg) {
  (void)arg;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 1);
  CHECK(q);
  CHECK(fut_queue_put_nowait(q, I(1)) == 0);
  /* putting a second item in the queue has to block (qsize=1) */
  struct op w = {q, I(2), 0, false};
  fut_t *writer = start(put_fn, &w);
  CHECK(writer);
  fut_yield();
  void *item;
  CHECK(fut_queue_get_nowait(q, &item) == 0 && V(item) == 1);
  fut_cancel(writer, NULL);
  if (finish(writer) == -ECANCELED) {
    /* try again */
    w = (struct op){q, I(2), 0, false};
    writer = start(put_fn, &w);
    CHECK(writer);
    CHECK(finish(writer) == 0);
  }
  CHECK(fut_queue_get_nowait(q, &item) == 0 && V(item) == 2);
  CHECK(fut_queue_qsize(q) == 0);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueuePutTests.test_put_cancel_drop */
static void test_put_cancel_drop(void **state) {
  run(state, put_cancel_drop_main, 0);
}

/* QueuePutTests.test_nonblocking_put_exception */
static void test_nonblocking_put_exception(void **state) {
  (void)state;
  fut_queue_t *q;
  assert_int_equal(fut_queue_new(FUT_QUEUE_FIFO, 1, NULL, &q), 0);
  assert_int_equal(fut_queue_put_nowait(q, I(1)), 0);
  assert_int_equal(fut_queue_put_nowait(q, I(2)), FUT_E_QUEUE_FULL);
  assert_int_equal(fut_queue_qsize(q), 1);
  assert_int_equal(fut_queue_free(q), 0);
}

static int put_cancelled_main(void *arg) {
  (void)arg;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0);
  CHECK(q);
  struct op p = {q, I(1), 0, false};
  fut_t *t = start(put_fn, &p);
  CHECK(t);
  void *item;
  CHECK(fut_queue_get(q, &item) == 0 && V(item) == 1);
  CHECK(fut_done(t));
  CHECK(finish(t) == 0 && p.rc == 0);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueuePutTests.test_put_cancelled */
static void test_put_cancelled(void **state) {
  run(state, put_cancelled_main, 0);
}

static int put_cancelled_race_main(void *arg) {
  (void)arg;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 1);
  CHECK(q);
  struct op a = {q, I('a'), 0, false}, b = {q, I('b'), 0, false},
            c = {q, I('X'), 0, false};
  fut_t *put_a = start(put_fn, &a), *put_b = start(put_fn, &b),
        *put_c = start(put_fn, &c);
  CHECK(put_a && put_b && put_c);
  fut_yield();
  CHECK(fut_done(put_a));
  CHECK(!fut_done(put_b));
  fut_cancel(put_c, NULL);
  fut_yield();
  CHECK(fut_done(put_c));
  void *item;
  CHECK(fut_queue_get_nowait(q, &item) == 0 && V(item) == 'a');
  fut_yield();
  CHECK(fut_queue_get_nowait(q, &item) == 0 && V(item) == 'b');
  CHECK(finish(put_b) == 0);
  CHECK(finish(put_a) == 0);
  CHECK(finish(put_c) == -ECANCELED);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueuePutTests.test_put_cancelled_race */
static void test_put_cancelled_race(void **state) {
  run(state, put_cancelled_race_main, 0);
}

static int put_with_waiting_getters_main(void *arg) {
  (void)arg;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 0);
  CHECK(q);
  struct op g = {q, NULL, 0, false};
  fut_t *t = start(get_fn, &g);
  CHECK(t);
  fut_yield();
  CHECK(fut_queue_put(q, I('a')) == 0);
  CHECK(finish(t) == 0 && V(g.item) == 'a');
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueuePutTests.test_put_with_waiting_getters */
static void test_put_with_waiting_getters(void **state) {
  run(state, put_with_waiting_getters_main, 0);
}

static int getter_all_fn(void *arg) {
  struct op *o = arg;
  fut_yield();
  size_t num = fut_queue_qsize(o->q);
  for (size_t i = 0; i < num; i++)
    if ((o->rc = fut_queue_get_nowait(o->q, &o->item)) != 0)
      break;
  return 0;
}

static int why_are_putters_waiting_main(void *arg) {
  (void)arg;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 2);
  CHECK(q);
  struct op g = {q, NULL, 0, false}, p[4];
  fut_t *tg = start(getter_all_fn, &g), *tp[4];
  CHECK(tg);
  for (int i = 0; i < 4; i++) {
    p[i] = (struct op){q, I(i), 0, false};
    CHECK((tp[i] = start(put_fn, &p[i])));
  }
  /* the TaskGroup's exit */
  CHECK(finish(tg) == 0 && g.rc == 0);
  for (int i = 0; i < 4; i++)
    CHECK(finish(tp[i]) == 0 && p[i].rc == 0);
  CHECK(fut_queue_qsize(q) == 2);
  void *item;
  CHECK(fut_queue_get_nowait(q, &item) == 0 && V(item) == 2);
  CHECK(fut_queue_get_nowait(q, &item) == 0 && V(item) == 3);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueuePutTests.test_why_are_putters_waiting */
static void test_why_are_putters_waiting(void **state) {
  run(state, why_are_putters_waiting_main, 0);
}

static int cancelled_puts_main(void *arg) {
  (void)arg;
  /* Full queue. */
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 1);
  CHECK(q);
  CHECK(fut_queue_put_nowait(q, I(1)) == 0);
  /* Task waiting for space to put an item in the queue. */
  struct op p = {q, I(1), 0, false};
  fut_t *put_task = start(put_fn, &p);
  CHECK(put_task);
  fut_yield();
  /* The putter is removed from the putters when the task is cancelled. */
  CHECK(fut_queue_putters(q) == 1);
  fut_cancel(put_task, NULL);
  CHECK(finish(put_task) == -ECANCELED);
  CHECK(fut_queue_putters(q) == 0);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueuePutTests.test_cancelled_puts_not_being_held_in_self_putters */
static void test_cancelled_puts_not_being_held_in_self_putters(void **state) {
  run(state, cancelled_puts_main, 0);
}

static int cancelled_put_silence_main(void *arg) {
  (void)arg;
  fut_queue_t *q = newq(FUT_QUEUE_FIFO, 1);
  CHECK(q);
  CHECK(fut_queue_put_nowait(q, I(1)) == 0);
  struct op p = {q, I(1), 0, false};
  fut_t *put_task = start(put_fn, &p);
  CHECK(put_task);
  fut_yield();
  /* get_nowait() takes the putter out of the putters (and wakes it). */
  void *item;
  CHECK(fut_queue_get_nowait(q, &item) == 0);
  /* Cancelled now, the put must not trip over its missing entry. */
  fut_cancel(put_task, NULL);
  CHECK(finish(put_task) == -ECANCELED);
  CHECK(p.rc == -ECANCELED);
  CHECK(fut_queue_qsize(q) == 0 && fut_queue_putters(q) == 0);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

/* QueuePutTests.test_cancelled_put_silence_value_error_exception */
static void test_cancelled_put_silence_value_error_exception(void **state) {
  run(state, cancelled_put_silence_main, 0);
}

/* ---- LifoQueueTests, PriorityQueueTests --------------------------------- */

/* LifoQueueTests.test_order */
static void test_lifo_order(void **state) {
  run(state, order_main, FUT_QUEUE_LIFO);
}

/* PriorityQueueTests.test_order */
static void test_priority_order(void **state) {
  run(state, order_main, FUT_QUEUE_PRIORITY);
}

/* ---- _QueueJoinTestMixin --------------------------------------------------
 */

static int task_done_underflow_main(void *arg) {
  fut_queue_t *q = newq(kind_of(arg), 0);
  CHECK(q);
  CHECK(fut_queue_task_done(q) == FUT_E_INVALID_STATE);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

struct workers {
  fut_queue_t *q;
  int accumulator;
  bool running;
  int rc;
};

static int worker_fn(void *arg) {
  struct workers *w = arg;
  while (w->running) {
    void *item;
    int rc = fut_queue_get(w->q, &item);
    if (rc) {
      w->rc = rc;
      return 0;
    }
    w->accumulator += V(item);
    if ((rc = fut_queue_task_done(w->q)) != 0)
      w->rc = rc;
  }
  return 0;
}

static int task_done_main(void *arg) {
  struct workers w = {newq(kind_of(arg), 0), 0, true, 0};
  CHECK(w.q);
  for (int i = 0; i < 100; i++)
    CHECK(fut_queue_put_nowait(w.q, I(i)) == 0);
  /* Two workers get items from the queue and call task_done after each.
   * Join the queue and assert all items have been processed. */
  fut_t *tasks[2];
  for (int i = 0; i < 2; i++)
    CHECK(fut_create_task(fut_get_running_loop(), worker_fn, &w, NULL,
                          &tasks[i]) == 0);
  CHECK(fut_queue_join(w.q) == 0);
  CHECK(w.accumulator == 4950);
  /* close running generators */
  w.running = false;
  for (int i = 0; i < 2; i++)
    CHECK(fut_queue_put_nowait(w.q, I(0)) == 0);
  for (int i = 0; i < 2; i++)
    CHECK(finish(tasks[i]) == 0);
  CHECK(w.rc == 0);
  CHECK(fut_queue_free(w.q) == 0);
  return 0;
}

static int join_empty_queue_main(void *arg) {
  fut_queue_t *q = newq(kind_of(arg), 0);
  CHECK(q);
  /* Joins successfully, and before anything else (twice for insurance). */
  CHECK(fut_queue_join(q) == 0);
  CHECK(fut_queue_join(q) == 0);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

static int join_format_main(void *arg) {
  fut_queue_t *q = newq(kind_of(arg), 0);
  CHECK(q);
  /* 'maxsize=0' */
  CHECK(fut_queue_maxsize(q) == 0 && fut_queue_unfinished_tasks(q) == 0);
  /* 'maxsize=0 tasks=2' (the count set by two puts, not by hand) */
  CHECK(fut_queue_put_nowait(q, I(1)) == 0);
  CHECK(fut_queue_put_nowait(q, I(2)) == 0);
  CHECK(fut_queue_unfinished_tasks(q) == 2);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

#define JOIN_TESTS(cls, kind)                                                  \
  /* cls.test_task_done_underflow */                                           \
  static void test_##cls##_task_done_underflow(void **s) {                     \
    run(s, task_done_underflow_main, kind);                                    \
  }                                                                            \
  /* cls.test_task_done */                                                     \
  static void test_##cls##_task_done(void **s) {                               \
    run(s, task_done_main, kind);                                              \
  }                                                                            \
  /* cls.test_join_empty_queue */                                              \
  static void test_##cls##_join_empty_queue(void **s) {                        \
    run(s, join_empty_queue_main, kind);                                       \
  }                                                                            \
  /* cls.test_format (the unfinished count it prints) */                       \
  static void test_##cls##_format(void **s) {                                  \
    run(s, join_format_main, kind);                                            \
  }

JOIN_TESTS(QueueJoinTests, FUT_QUEUE_FIFO)
JOIN_TESTS(LifoQueueJoinTests, FUT_QUEUE_LIFO)
JOIN_TESTS(PriorityQueueJoinTests, FUT_QUEUE_PRIORITY)

/* ---- _QueueShutdownTestMixin ----------------------------------------------
 */

/* put, put_nowait, get and get_nowait all fail with QueueShutDown. */
static bool all_shut(fut_queue_t *q) {
  void *item = I(1);
  return fut_queue_put(q, I('d')) == FUT_E_QUEUE_SHUTDOWN &&
         fut_queue_put_nowait(q, I('d')) == FUT_E_QUEUE_SHUTDOWN &&
         fut_queue_get(q, &item) == FUT_E_QUEUE_SHUTDOWN && item == NULL &&
         fut_queue_get_nowait(q, &item) == FUT_E_QUEUE_SHUTDOWN;
}

static int shutdown_format_main(void *arg) {
  fut_queue_t *q = newq(kind_of(arg), 0);
  CHECK(q);
  CHECK(fut_queue_shutdown(q, false) == 0);
  /* 'maxsize=0 shutdown' */
  CHECK(fut_queue_maxsize(q) == 0 && fut_queue_is_shutdown(q));
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

static int shutdown_empty_main(void *arg) {
  /* Setup empty queue, and join() and get() tasks */
  fut_queue_t *q = newq(kind_of(arg), 0);
  CHECK(q);
  struct op g = {q, NULL, 0, false};
  fut_t *get_task = start(get_fn, &g);
  CHECK(get_task);
  fut_yield(); /* want get task pending before shutdown */
  CHECK(fut_queue_shutdown(q, false) == 0); /* unfinished tasks: 0 -> 0 */
  CHECK(fut_queue_qsize(q) == 0);
  /* Ensure join() task successfully finishes */
  CHECK(fut_queue_join(q) == 0);
  /* Ensure get() task is finished, and raised ShutDown */
  fut_yield();
  CHECK(fut_done(get_task));
  CHECK(finish(get_task) == 0 && g.rc == FUT_E_QUEUE_SHUTDOWN);
  /* Ensure put() and get() raise ShutDown */
  CHECK(all_shut(q));
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

static int shutdown_nonempty_main(void *arg) {
  /* Setup full queue with 1 item, and join() and put() tasks */
  fut_queue_t *q = newq(kind_of(arg), 1);
  CHECK(q);
  CHECK(fut_queue_put_nowait(q, I('d')) == 0);
  struct op j = {q, NULL, 0, false}, p = {q, I('e'), 0, false};
  fut_t *join_task = start(join_fn, &j), *put_task = start(put_fn, &p);
  CHECK(join_task && put_task);
  /* Ensure put() task is not finished */
  fut_yield();
  CHECK(!fut_done(put_task));
  CHECK(fut_queue_shutdown(q, false) == 0); /* unfinished tasks: 1 -> 1 */
  CHECK(fut_queue_qsize(q) == 1);
  /* Ensure put() task is finished, and raised ShutDown */
  fut_yield();
  CHECK(fut_done(put_task));
  CHECK(finish(put_task) == 0 && p.rc == FUT_E_QUEUE_SHUTDOWN);
  /* Ensure get() succeeds on enqueued item */
  void *item;
  CHECK(fut_queue_get(q, &item) == 0 && V(item) == 'd');
  /* Ensure join() task is not finished */
  fut_yield();
  CHECK(!fut_done(join_task));
  /* Ensure put() and get() raise ShutDown */
  CHECK(all_shut(q));
  /* Ensure there is 1 unfinished task, and join() task succeeds */
  CHECK(fut_queue_task_done(q) == 0);
  fut_yield();
  CHECK(fut_done(join_task));
  CHECK(finish(join_task) == 0 && j.rc == 0);
  CHECK(fut_queue_task_done(q) == FUT_E_INVALID_STATE);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

static int shutdown_immediate_main(void *arg) {
  /* Setup queue with 1 item, and a join() task */
  fut_queue_t *q = newq(kind_of(arg), 0);
  CHECK(q);
  CHECK(fut_queue_put_nowait(q, I('d')) == 0);
  struct op j = {q, NULL, 0, false};
  fut_t *join_task = start(join_fn, &j);
  CHECK(join_task);
  CHECK(fut_queue_shutdown(q, true) == 0); /* unfinished tasks: 1 -> 0 */
  CHECK(fut_queue_qsize(q) == 0);
  /* Ensure join() task has successfully finished */
  fut_yield();
  CHECK(fut_done(join_task));
  CHECK(finish(join_task) == 0 && j.rc == 0);
  /* Ensure put() and get() raise ShutDown */
  CHECK(all_shut(q));
  /* Ensure there are no unfinished tasks */
  CHECK(fut_queue_task_done(q) == FUT_E_INVALID_STATE);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

static int shutdown_immediate_with_unfinished_main(void *arg) {
  /* Setup queue with 2 items (1 retrieved), and a join() task */
  fut_queue_t *q = newq(kind_of(arg), 0);
  CHECK(q);
  CHECK(fut_queue_put_nowait(q, I('d')) == 0);
  CHECK(fut_queue_put_nowait(q, I('d')) == 0);
  struct op j = {q, NULL, 0, false};
  fut_t *join_task = start(join_fn, &j);
  CHECK(join_task);
  void *item;
  CHECK(fut_queue_get(q, &item) == 0 && V(item) == 'd');
  CHECK(fut_queue_shutdown(q, true) == 0); /* unfinished tasks: 2 -> 1 */
  CHECK(fut_queue_qsize(q) == 0);
  /* Ensure join() task is not finished */
  fut_yield();
  CHECK(!fut_done(join_task));
  /* Ensure put() and get() raise ShutDown */
  CHECK(all_shut(q));
  /* Ensure there is 1 unfinished task */
  CHECK(fut_queue_task_done(q) == 0);
  CHECK(fut_queue_task_done(q) == FUT_E_INVALID_STATE);
  /* Ensure join() task has successfully finished */
  fut_yield();
  CHECK(fut_done(join_task));
  CHECK(finish(join_task) == 0 && j.rc == 0);
  CHECK(fut_queue_free(q) == 0);
  return 0;
}

#define SHUTDOWN_TESTS(cls, kind)                                              \
  /* cls.test_format (the shutdown flag it prints) */                          \
  static void test_##cls##_format(void **s) {                                  \
    run(s, shutdown_format_main, kind);                                        \
  }                                                                            \
  /* cls.test_shutdown_empty */                                                \
  static void test_##cls##_shutdown_empty(void **s) {                          \
    run(s, shutdown_empty_main, kind);                                         \
  }                                                                            \
  /* cls.test_shutdown_nonempty */                                             \
  static void test_##cls##_shutdown_nonempty(void **s) {                       \
    run(s, shutdown_nonempty_main, kind);                                      \
  }                                                                            \
  /* cls.test_shutdown_immediate */                                            \
  static void test_##cls##_shutdown_immediate(void **s) {                      \
    run(s, shutdown_immediate_main, kind);                                     \
  }                                                                            \
  /* cls.test_shutdown_immediate_with_unfinished */                            \
  static void test_##cls##_shutdown_immediate_with_unfinished(void **s) {      \
    run(s, shutdown_immediate_with_unfinished_main, kind);                     \
  }

SHUTDOWN_TESTS(QueueShutdownTests, FUT_QUEUE_FIFO)
SHUTDOWN_TESTS(LifoQueueShutdownTests, FUT_QUEUE_LIFO)
SHUTDOWN_TESTS(PriorityQueueShutdownTests, FUT_QUEUE_PRIORITY)

#define JOIN_ENTRIES(cls)                                                      \
  T(test_##cls##_task_done_underflow), T(test_##cls##_task_done),              \
      T(test_##cls##_join_empty_queue), T(test_##cls##_format)

#define SHUTDOWN_ENTRIES(cls)                                                  \
  T(test_##cls##_format), T(test_##cls##_shutdown_empty),                      \
      T(test_##cls##_shutdown_nonempty), T(test_##cls##_shutdown_immediate),   \
      T(test_##cls##_shutdown_immediate_with_unfinished)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_repr),
      T(test_empty),
      T(test_full),
      T(test_order),
      T(test_maxsize),
      T(test_blocking_get),
      T(test_blocking_get_wait),
      T(test_nonblocking_get),
      T(test_nonblocking_get_exception),
      T(test_get_cancelled_race),
      T(test_get_with_waiting_putters),
      T(test_why_are_getters_waiting),
      T(test_cancelled_getters_not_being_held_in_self_getters),
      T(test_blocking_put),
      T(test_blocking_put_wait),
      T(test_nonblocking_put),
      T(test_get_cancel_drop_one_pending_reader),
      T(test_get_cancel_drop_many_pending_readers),
      T(test_put_cancel_drop),
      T(test_nonblocking_put_exception),
      T(test_put_cancelled),
      T(test_put_cancelled_race),
      T(test_put_with_waiting_getters),
      T(test_why_are_putters_waiting),
      T(test_cancelled_puts_not_being_held_in_self_putters),
      T(test_cancelled_put_silence_value_error_exception),
      T(test_lifo_order),
      T(test_priority_order),
      JOIN_ENTRIES(QueueJoinTests),
      JOIN_ENTRIES(LifoQueueJoinTests),
      JOIN_ENTRIES(PriorityQueueJoinTests),
      SHUTDOWN_ENTRIES(QueueShutdownTests),
      SHUTDOWN_ENTRIES(LifoQueueShutdownTests),
      SHUTDOWN_ENTRIES(PriorityQueueShutdownTests),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
