/* call_soon_threadsafe: exactly once, FIFO per producer, a coalescing
 * doorbell that wakes a blocked loop, refused after close. */
#include "fixture.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop/internal.h"

enum { PRODUCERS = 4, CALLS = 5000 };

struct tally {
  int last[PRODUCERS];      /* last sequence seen per producer */
  int total;
  int out_of_order;
};

struct call {
  struct tally *t;
  int producer, seq;
};

static struct call calls[PRODUCERS][CALLS];

static void tally_cb(void *arg) {
  struct call *c = arg;
  if (c->seq != c->t->last[c->producer] + 1)
    c->t->out_of_order++;
  c->t->last[c->producer] = c->seq;
  c->t->total++;
}

struct producer {
  fut_loop_t *loop;
  int id;
  int failures;
};

static void *produce(void *arg) {
  struct producer *p = arg;
  for (int i = 0; i < CALLS; i++)
    if (fut_loop_call_soon_threadsafe(p->loop, tally_cb, &calls[p->id][i]))
      p->failures++;
  return NULL;
}

static bool all_ran(void *arg) {
  return ((struct tally *)arg)->total >= PRODUCERS * CALLS;
}

static void test_threadsafe_exactly_once_fifo_per_producer(void **state) {
  fut_loop_t *loop = *state;
  struct tally t;
  memset(&t, 0, sizeof t);
  for (int p = 0; p < PRODUCERS; p++) {
    t.last[p] = -1;
    for (int i = 0; i < CALLS; i++)
      calls[p][i] = (struct call){&t, p, i};
  }
  pthread_t th[PRODUCERS];
  struct producer prod[PRODUCERS];
  for (int p = 0; p < PRODUCERS; p++) {
    prod[p] = (struct producer){loop, p, 0};
    assert_int_equal(pthread_create(&th[p], NULL, produce, &prod[p]), 0);
  }
  bool ok = fx_run_until(loop, all_ran, &t, FUT_SEC(20));
  for (int p = 0; p < PRODUCERS; p++) {
    pthread_join(th[p], NULL);
    assert_int_equal(prod[p].failures, 0);
  }
  assert_true(ok);
  /* Nothing more arrives: every call ran exactly once. */
  assert_int_equal(fut_loop_run_once(loop, FUT_MS(5)), 0);
  assert_int_equal(t.total, PRODUCERS * CALLS);
  assert_int_equal(t.out_of_order, 0);
  for (int p = 0; p < PRODUCERS; p++)
    assert_int_equal(t.last[p], CALLS - 1);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.threadsafe, 0);
}

/* The eventfd's counter, read without consuming it. */
static long eventfd_count(int fd) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
  FILE *fp = fopen(path, "r");
  if (!fp)
    return -1;
  unsigned long v = 0;
  long res = -1;
  while (fgets(line, sizeof line, fp))
    if (sscanf(line, "eventfd-count: %lx", &v) == 1) {
      res = (long)v;
      break;
    }
  fclose(fp);
  return res;
}

/* Calls from another thread: the loop's own thread bypasses the door (see
 * test_threadsafe_loop_thread_fifo_with_call_soon). */
struct burst {
  fut_loop_t *loop;
  int *ran;
  int n, failures;
};

static void *call_burst(void *arg) {
  struct burst *b = arg;
  for (int i = 0; i < b->n; i++)
    if (fut_loop_call_soon_threadsafe(b->loop, fx_count_cb, b->ran))
      b->failures++;
  return NULL;
}

static void burst_from_thread(fut_loop_t *loop, int *ran, int n) {
  struct burst b = {loop, ran, n, 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, call_burst, &b), 0);
  pthread_join(th, NULL);
  assert_int_equal(b.failures, 0);
}

static void test_threadsafe_doorbell_coalesced(void **state) {
  fut_loop_t *loop = *state;
  int ran = 0;
  assert_int_equal(eventfd_count(loop->evfd), 0);
  burst_from_thread(loop, &ran, 1000);
  assert_int_equal(eventfd_count(loop->evfd), 1); /* rung once */
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.threadsafe, 1000);
  assert_int_equal(ran, 0); /* never inline */
  assert_true(fx_run_until_flag(loop, &ran));
  while (ran < 1000)
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(10)), 0);
  assert_int_equal(ran, 1000);
  assert_int_equal(eventfd_count(loop->evfd), 0); /* drained fully */
  burst_from_thread(loop, &ran, 1);
  assert_int_equal(eventfd_count(loop->evfd), 1); /* rings again */
  while (ran < 1001)
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(10)), 0);
}

/* A producer that waits until the loop thread sleeps in epoll, then calls
 * in: the doorbell must wake it. */
struct waker {
  fut_loop_t *loop;
  pid_t loop_tid;
  bool saw_sleeping;
  pthread_t th;
};

static bool thread_sleeping(pid_t tid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
  FILE *fp = fopen(path, "r");
  if (!fp)
    return false;
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')');
  return p && p[1] == ' ' && p[2] == 'S';
}

static void *wake_later(void *arg) {
  struct waker *w = arg;
  uint64_t t0 = fut__now();
  /* Bounded spin on the loop thread's scheduler state (not a sleep). */
  while (fut__now() - t0 < FUT_SEC(2)) {
    if (thread_sleeping(w->loop_tid)) {
      w->saw_sleeping = true;
      break;
    }
    sched_yield();
  }
  fut_loop_call_soon_threadsafe(w->loop, fx_stop_cb, w->loop);
  return NULL;
}

static void start_waker(void *arg) {
  struct waker *w = arg;
  w->loop_tid = gettid();
  assert_int_equal(pthread_create(&w->th, NULL, wake_later, w), 0);
}

static void test_threadsafe_wakes_blocked_loop(void **state) {
  fut_loop_t *loop = *state;
  struct waker w = {.loop = loop};
  fut_handle_t *guard;
  /* A guard timer fails the test instead of hanging it. */
  assert_int_equal(fut_loop_call_later(loop, FUT_SEC(10), fx_fail_cb, NULL,
                                       &guard), 0);
  assert_int_equal(fut_loop_call_soon(loop, start_waker, &w, NULL), 0);
  uint64_t t0 = fut_loop_time(loop);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  uint64_t took = fut_loop_time(loop) - t0;
  pthread_join(w.th, NULL);
  print_message("woken after %.2f ms (loop seen sleeping: %s)\n",
                (double)took / 1e6, w.saw_sleeping ? "yes" : "no");
  assert_true(w.saw_sleeping);
  assert_true(took < FUT_SEC(3));
  fut_handle_cancel(guard);
  fut_handle_unref(guard);
}

static void test_threadsafe_from_loop_thread_runs_later(void **state) {
  fut_loop_t *loop = *state;
  int ran = 0;
  assert_int_equal(fut_loop_call_soon_threadsafe(loop, fx_count_cb, &ran), 0);
  assert_int_equal(ran, 0);
  assert_true(fx_run_until_flag(loop, &ran));
  assert_int_equal(ran, 1);
}

/* asyncio has one ready queue: call_soon_threadsafe(cb1) then
 * call_soon(cb2) from the loop's own thread run cb1 first, whether the
 * loop is running (from a callback) or not yet. */
struct order {
  fut_loop_t *loop;
  char log[8];
  int n;
};

static void log_a(void *arg) {
  struct order *o = arg;
  o->log[o->n++] = 'a';
}
static void log_b(void *arg) {
  struct order *o = arg;
  o->log[o->n++] = 'b';
}
static void log_c(void *arg) {
  struct order *o = arg;
  o->log[o->n++] = 'c';
}

static void schedule_from_callback(void *arg) {
  struct order *o = arg;
  assert_int_equal(fut_loop_call_soon_threadsafe(o->loop, log_a, o), 0);
  assert_int_equal(fut_loop_call_soon(o->loop, log_b, o, NULL), 0);
  assert_int_equal(fut_loop_call_soon_threadsafe(o->loop, log_c, o), 0);
}

static void test_threadsafe_loop_thread_fifo_with_call_soon(void **state) {
  fut_loop_t *loop = *state;
  struct order o = {.loop = loop};
  /* Before the loop runs. */
  assert_int_equal(fut_loop_call_soon_threadsafe(loop, log_a, &o), 0);
  assert_int_equal(fut_loop_call_soon(loop, log_b, &o, NULL), 0);
  assert_int_equal(fut_loop_call_soon_threadsafe(loop, log_c, &o), 0);
  while (o.n < 3)
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(10)), 0);
  assert_memory_equal(o.log, "abc", 3);
  /* From a callback of the running loop. */
  o.n = 0;
  assert_int_equal(fut_loop_call_soon(loop, schedule_from_callback, &o, NULL),
                   0);
  while (o.n < 3)
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(10)), 0);
  assert_memory_equal(o.log, "abc", 3);
}

/* What the door received from another thread before the loop thread's own
 * call runs before it (one queue, in arrival order). */
static void *call_log_a(void *arg) {
  struct order *o = arg;
  assert_int_equal(fut_loop_call_soon_threadsafe(o->loop, log_a, o), 0);
  return NULL;
}

static void call_a_from_thread_then_b(void *arg) {
  struct order *o = arg;
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, call_log_a, o), 0);
  pthread_join(th, NULL);
  assert_int_equal(fut_loop_call_soon_threadsafe(o->loop, log_b, o), 0);
  assert_int_equal(fut_loop_call_soon(o->loop, log_c, o, NULL), 0);
}

static void test_threadsafe_door_entries_before_loop_thread_call(
    void **state) {
  fut_loop_t *loop = *state;
  struct order o = {.loop = loop};
  assert_int_equal(
      fut_loop_call_soon(loop, call_a_from_thread_then_b, &o, NULL), 0);
  while (o.n < 3)
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(10)), 0);
  assert_memory_equal(o.log, "abc", 3);
}

/* The same with call_soon alone after the join: call_soon checks the door
 * on every call (not once per drain), because the thread's call returned
 * before it, and asyncio's one deque runs it first.  Also from a chain of
 * callbacks that run_forever drains in place. */
static void call_a_from_thread_then_c(void *arg) {
  struct order *o = arg;
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, call_log_a, o), 0);
  pthread_join(th, NULL);
  assert_int_equal(fut_loop_call_soon(o->loop, log_c, o, NULL), 0);
}

static int hops_left;

static void hop_then_thread(void *arg) {
  struct order *o = arg;
  /* A few hops of a chain first: the call is made deep in it. */
  if (--hops_left > 0) {
    assert_int_equal(fut_loop_call_soon(o->loop, hop_then_thread, o, NULL),
                     0);
    return;
  }
  call_a_from_thread_then_c(o);
}

static void stop_when_two(void *arg) {
  struct order *o = arg;
  if (o->n >= 2)
    fut_loop_stop(o->loop);
  else
    assert_int_equal(fut_loop_call_soon(o->loop, stop_when_two, o, NULL), 0);
}

static void test_threadsafe_door_before_call_soon_after_join(void **state) {
  fut_loop_t *loop = *state;
  struct order o = {.loop = loop};
  assert_int_equal(
      fut_loop_call_soon(loop, call_a_from_thread_then_c, &o, NULL), 0);
  while (o.n < 2)
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(10)), 0);
  assert_memory_equal(o.log, "ac", 2);
  o.n = 0;
  memset(o.log, 0, sizeof o.log);
  hops_left = 5;
  assert_int_equal(fut_loop_call_soon(loop, hop_then_thread, &o, NULL), 0);
  assert_int_equal(fut_loop_call_soon(loop, stop_when_two, &o, NULL), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(o.n, 2);
  assert_memory_equal(o.log, "ac", 2);
}

/* Bug: when the ready queue could not grow while the door was drained (out
 * of memory), FUT__ASSERT(merged != NULL) aborted the process.  The calls
 * the queue cannot take now wait, in order, and run on later ticks. */
enum { OOM_CALLS = 300 };
struct oom_seq {
  int next;
  int out_of_order;
};
static struct oom_seq oom_seq;
static int oom_ids[OOM_CALLS];

static void oom_cb(void *arg) {
  int id = *(int *)arg;
  if (id != oom_seq.next)
    oom_seq.out_of_order++;
  oom_seq.next = id + 1;
}

static void nop_cb(void *arg) {
  (void)arg;
}

struct oom_producer {
  fut_loop_t *loop;
  int failures;
};

static void *produce_oom(void *arg) {
  struct oom_producer *p = arg;
  for (int i = 0; i < OOM_CALLS; i++)
    if (fut_loop_call_soon_threadsafe(p->loop, oom_cb, &oom_ids[i]))
      p->failures++;
  return NULL;
}

static void test_threadsafe_drain_out_of_memory_loses_nothing(void **state) {
  fut_loop_t *loop = *state;
  oom_seq = (struct oom_seq){0, 0};
  for (int i = 0; i < OOM_CALLS; i++)
    oom_ids[i] = i;
  /* Fill the ready queue to its capacity, so taking the door's calls needs
   * it to grow. */
  uint32_t cap = loop->ready.mask + 1;
  for (uint32_t i = 0; i < cap; i++)
    assert_int_equal(fut_loop_call_soon(loop, nop_cb, NULL, NULL), 0);
  struct oom_producer p = {loop, 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, produce_oom, &p), 0);
  pthread_join(th, NULL);
  assert_int_equal(p.failures, 0);
  /* Every allocation fails from now on. */
  fut__alloc_fail_after(1, true);
  for (int tick = 0; tick < 10 && oom_seq.next < OOM_CALLS; tick++)
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(10)), 0);
  fut__alloc_fail_after(0, false);
  assert_int_equal(oom_seq.next, OOM_CALLS);
  assert_int_equal(oom_seq.out_of_order, 0);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.threadsafe, 0);
  assert_int_equal(st.ready, 0);
}

struct late_caller {
  fut_loop_t *loop;
  int res;
};

static void *call_after_close(void *arg) {
  struct late_caller *c = arg;
  c->res = fut_loop_call_soon_threadsafe(c->loop, fx_fail_cb, NULL);
  return NULL;
}

static void test_threadsafe_after_close_closed(void **state) {
  fut_loop_t *loop = *state;
  assert_int_equal(fut_loop_close(loop), 0);
  assert_int_equal(fut_loop_call_soon_threadsafe(loop, fx_fail_cb, NULL),
                   FUT_E_CLOSED);
  struct late_caller c = {loop, 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, call_after_close, &c), 0);
  pthread_join(th, NULL);
  assert_int_equal(c.res, FUT_E_CLOSED);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.threadsafe, 0);
}

static void test_threadsafe_bad_args(void **state) {
  fut_loop_t *loop = *state;
  assert_int_equal(fut_loop_call_soon_threadsafe(loop, NULL, NULL), -EINVAL);
  assert_int_equal(fut_loop_call_soon_threadsafe(NULL, fx_fail_cb, NULL),
                   -EINVAL);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.threadsafe, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_threadsafe_exactly_once_fifo_per_producer),
      FX_LOOP_TEST(test_threadsafe_doorbell_coalesced),
      FX_LOOP_TEST(test_threadsafe_wakes_blocked_loop),
      FX_LOOP_TEST(test_threadsafe_from_loop_thread_runs_later),
      FX_LOOP_TEST(test_threadsafe_loop_thread_fifo_with_call_soon),
      FX_LOOP_TEST(test_threadsafe_door_before_call_soon_after_join),
      FX_LOOP_TEST(test_threadsafe_door_entries_before_loop_thread_call),
      FX_LOOP_TEST(test_threadsafe_drain_out_of_memory_loses_nothing),
      FX_LOOP_TEST(test_threadsafe_after_close_closed),
      FX_LOOP_TEST(test_threadsafe_bad_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
