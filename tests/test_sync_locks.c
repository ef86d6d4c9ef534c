/* asyncio.locks in C (include/future/sync.h): what the CPython port
 * (tests/cpython/test_locks.c) does not cover — calls outside a task, the
 * allocation-free fast path, freeing busy primitives, loop close with
 * waiters, error codes — and a stress test of the lock under random
 * cancellation. */
#include "fixture.h"
#include "task_helpers.h"

#include "base/internal.h"

#define T(fn) FX_LOOP_TEST(fn)

/* ---- outside a task ------------------------------------------------------ */

static void test_sync_waits_outside_a_task(void **state) {
  (void)state;
  fut_lock_t *lock;
  fut_event_t *ev;
  fut_cond_t *c;
  fut_sem_t *s;
  fut_barrier_t *b;
  assert_int_equal(fut_lock_new(&lock), 0);
  assert_int_equal(fut_event_new(&ev), 0);
  assert_int_equal(fut_cond_new(NULL, &c), 0);
  assert_int_equal(fut_sem_new(1, &s), 0);
  assert_int_equal(fut_barrier_new(1, &b), 0);
  assert_int_equal(fut_lock_acquire(lock), FUT_E_NOT_IN_TASK);
  assert_int_equal(fut_event_wait(ev), FUT_E_NOT_IN_TASK);
  assert_int_equal(fut_cond_wait(c), FUT_E_NOT_IN_TASK);
  assert_int_equal(fut_sem_acquire(s), FUT_E_NOT_IN_TASK);
  assert_int_equal(fut_barrier_wait(b, NULL), FUT_E_NOT_IN_TASK);
  assert_false(fut_lock_locked(lock));
  assert_int_equal(fut_sem_value(s), 1);
  /* Non-waiting calls work from plain code. */
  assert_int_equal(fut_event_set(ev), 0);
  assert_true(fut_event_is_set(ev));
  assert_int_equal(fut_lock_release(lock), FUT_E_INVALID_STATE);
  assert_int_equal(fut_barrier_abort(b), 0);
  assert_true(fut_barrier_broken(b));
  assert_int_equal(fut_lock_free(lock), 0);
  assert_int_equal(fut_event_free(ev), 0);
  assert_int_equal(fut_cond_free(c), 0);
  assert_int_equal(fut_sem_free(s), 0);
  assert_int_equal(fut_barrier_free(b), 0);
}

static void test_sync_bad_arguments(void **state) {
  (void)state;
  assert_int_equal(fut_lock_new(NULL), -EINVAL);
  assert_int_equal(fut_lock_release(NULL), -EINVAL);
  assert_int_equal(fut_lock_acquire(NULL), -EINVAL);
  assert_int_equal(fut_lock_free(NULL), 0);
  assert_int_equal(fut_event_set(NULL), -EINVAL);
  assert_int_equal(fut_cond_notify(NULL, 1), -EINVAL);
  assert_int_equal(fut_sem_release(NULL), -EINVAL);
  fut_barrier_t *b = (fut_barrier_t *)1;
  assert_int_equal(fut_barrier_new(0, &b), -EINVAL);
  assert_null(b);
  assert_false(fut_lock_locked(NULL));
  assert_false(fut_event_is_set(NULL));
  assert_string_equal(fut_err_name(FUT_E_BROKEN_BARRIER),
                      "FUT_E_BROKEN_BARRIER");
}

/* ---- the fast path allocates nothing ------------------------------------- */

struct nalloc {
  fut_lock_t *lock;
  fut_sem_t *sem;
  size_t futures_before, futures_after;
  int rc_lock, rc_sem;
};

static int uncontended(void *arg) {
  struct nalloc *n = arg;
  fut_loop_stats_t st;
  fut_loop_stats(fut_get_running_loop(), &st);
  n->futures_before = st.live_futures;
  fut__alloc_fail_after(1, true); /* any allocation fails from now */
  n->rc_lock = fut_lock_acquire(n->lock);
  n->rc_sem = fut_sem_acquire(n->sem);
  fut__alloc_fail_after(0, false);
  fut_loop_stats(fut_get_running_loop(), &st);
  n->futures_after = st.live_futures;
  fut_lock_release(n->lock);
  fut_sem_release(n->sem);
  return 0;
}

static void test_lock_uncontended_acquire_allocates_nothing(void **state) {
  struct nalloc n = {0};
  assert_int_equal(fut_lock_new(&n.lock), 0);
  assert_int_equal(fut_sem_new(2, &n.sem), 0);
  assert_int_equal(run_main(*state, uncontended, &n), 0);
  assert_int_equal(n.rc_lock, 0);
  assert_int_equal(n.rc_sem, 0);
  assert_int_equal(n.futures_before, n.futures_after);
  assert_null(fut__alloc_failed_site());
  assert_int_equal(fut_lock_free(n.lock), 0);
  assert_int_equal(fut_sem_free(n.sem), 0);
}

/* ---- errors ------------------------------------------------------------- */

static void test_bounded_sem_over_release(void **state) {
  (void)state;
  fut_sem_t *s;
  assert_int_equal(fut_bounded_sem_new(2, &s), 0);
  assert_int_equal(fut_sem_release(s), -EOVERFLOW);
  assert_non_null(strstr(fut_last_error(), "released too many times"));
  assert_int_equal(fut_sem_value(s), 2);
  fut_sem_t *u;
  assert_int_equal(fut_sem_new(0, &u), 0);
  assert_int_equal(fut_sem_release(u), 0); /* unbounded: fine */
  assert_int_equal(fut_sem_value(u), 1);
  assert_int_equal(fut_sem_free(s), 0);
  assert_int_equal(fut_sem_free(u), 0);
}

struct busy {
  fut_lock_t *lock;
  fut_barrier_t *bar;
  int rc_free_lock, rc_free_bar, rc_wait;
};

static int busy_waiter(void *arg) {
  struct busy *b = arg;
  return fut_lock_acquire(b->lock);
}

static int busy_main(void *arg) {
  struct busy *b = arg;
  fut_lock_acquire(b->lock);
  fut_t *t = spawn(fut_get_running_loop(), busy_waiter, b);
  fut_yield();
  b->rc_free_lock = fut_lock_free(b->lock);
  fut_lock_release(b->lock);
  fut_await(t, NULL);
  fut_unref(t);
  fut_lock_release(b->lock);
  /* A barrier broken: waits fail at once. */
  fut_barrier_abort(b->bar);
  b->rc_wait = fut_barrier_wait(b->bar, NULL);
  return 0;
}

static void test_sync_free_while_waited_on(void **state) {
  struct busy b = {0};
  assert_int_equal(fut_lock_new(&b.lock), 0);
  assert_int_equal(fut_barrier_new(2, &b.bar), 0);
  assert_int_equal(run_main(*state, busy_main, &b), 0);
  assert_int_equal(b.rc_free_lock, -EBUSY);
  assert_int_equal(b.rc_wait, FUT_E_BROKEN_BARRIER);
  assert_int_equal(fut_lock_free(b.lock), 0);
  assert_int_equal(fut_barrier_free(b.bar), 0);
}

/* ---- loop close with waiters -------------------------------------------- */

struct closing {
  fut_lock_t *lock;
  fut_cond_t *cond;
  fut_event_t *ev;
  int ended;
};

static int closing_lock_waiter(void *arg) {
  struct closing *c = arg;
  int err = fut_lock_acquire(c->lock);
  c->ended++;
  return err;
}

static int closing_cond_waiter(void *arg) {
  struct closing *c = arg;
  int err = fut_cond_acquire(c->cond);
  if (!err) {
    err = fut_cond_wait(c->cond); /* must not spin at close */
    if (fut_cond_locked(c->cond) && err != -ECANCELED)
      fut_cond_release(c->cond);
  }
  c->ended++;
  return err;
}

static int closing_event_waiter(void *arg) {
  struct closing *c = arg;
  int err = fut_event_wait(c->ev);
  c->ended++;
  return err;
}

/* Tasks still waiting when the loop closes are resumed with -ECANCELED;
 * they leave the waiter lists, so the primitives can be freed. */
static void test_sync_loop_close_with_waiters(void **state) {
  (void)state;
  struct closing c = {0};
  assert_int_equal(fut_lock_new(&c.lock), 0);
  assert_int_equal(fut_cond_new(NULL, &c.cond), 0);
  assert_int_equal(fut_event_new(&c.ev), 0);
  fut_loop_t *loop = new_loop();
  fx_exc_t cap;
  fx_exc_capture(loop, &cap); /* "Task was destroyed but it is pending!" */
  fut_t *ts[5] = {spawn(loop, closing_lock_waiter, &c),
                  spawn(loop, closing_lock_waiter, &c),
                  spawn(loop, closing_cond_waiter, &c),
                  spawn(loop, closing_cond_waiter, &c),
                  spawn(loop, closing_event_waiter, &c)};
  drain(loop); /* the first lock waiter took it, the others wait */
  assert_true(fut_lock_locked(c.lock));
  assert_int_equal(c.ended, 1);
  for (int i = 0; i < 5; i++)
    fut_unref(ts[i]);
  assert_int_equal(fut_loop_close(loop), 0);
  assert_int_equal(c.ended, 5);
  assert_int_equal(cap.count, 4);
  end_loop(loop);
  assert_int_equal(fut_event_free(c.ev), 0);
  assert_int_equal(fut_cond_free(c.cond), 0);
  assert_int_equal(fut_lock_free(c.lock), 0);
}

/* ---- a condition with a predicate argument ------------------------------- */

struct pc {
  fut_cond_t *cond;
  int items, consumed;
};

static bool has_items(void *arg) {
  return ((struct pc *)arg)->items > 0;
}

static int consumer(void *arg) {
  struct pc *p = arg;
  for (int i = 0; i < 10; i++) {
    int err = fut_cond_acquire(p->cond);
    if (err)
      return err;
    if ((err = fut_cond_wait_for(p->cond, has_items, p))) {
      fut_cond_release(p->cond);
      return err;
    }
    p->items--;
    p->consumed++;
    fut_cond_release(p->cond);
  }
  return 0;
}

static int producer(void *arg) {
  struct pc *p = arg;
  for (int i = 0; i < 20; i++) {
    int err = fut_cond_acquire(p->cond);
    if (err)
      return err;
    p->items++;
    fut_cond_notify(p->cond, 1);
    fut_cond_release(p->cond);
    fut_yield();
  }
  return 0;
}

static int pc_main(void *arg) {
  fut_loop_t *loop = fut_get_running_loop();
  fut_t *ts[3] = {spawn(loop, consumer, arg), spawn(loop, consumer, arg),
                  spawn(loop, producer, arg)};
  int err = 0;
  for (int i = 0; i < 3; i++) {
    int e = fut_await(ts[i], NULL);
    if (e && !err)
      err = e;
    fut_unref(ts[i]);
  }
  return err;
}

static void test_cond_wait_for_producer_consumer(void **state) {
  struct pc p = {0};
  assert_int_equal(fut_cond_new(NULL, &p.cond), 0);
  assert_int_equal(run_main(*state, pc_main, &p), 0);
  assert_int_equal(p.consumed, 20);
  assert_int_equal(p.items, 0);
  assert_int_equal(fut_cond_free(p.cond), 0);
}

/* ---- another loop -------------------------------------------------------- */

struct other {
  fut_event_t *ev;
  fut_sem_t *sem;
  int rc_wait, rc_set, rc_sem_acquire, rc_sem_release;
};

static int other_waiter(void *arg) {
  struct other *o = arg;
  return fut_event_wait(o->ev);
}

static void sem_release_cb(void *sem) {
  fut_sem_release(sem);
}

/* Binds ev and sem to this loop: a task waits on ev, then it is set; an
 * acquire of sem waits until a callback releases it. */
static int bind_main(void *arg) {
  struct other *o = arg;
  fut_t *t = spawn(fut_get_running_loop(), other_waiter, o);
  fut_yield();
  fut_event_set(o->ev);
  int err = fut_await(t, NULL);
  fut_unref(t);
  fut_event_clear(o->ev);
  if (err)
    return err;
  fut_loop_call_soon(fut_get_running_loop(), sem_release_cb, o->sem, NULL);
  return fut_sem_acquire(o->sem); /* value 0 again afterwards */
}

static int other_main(void *arg) {
  struct other *o = arg;
  o->rc_wait = fut_event_wait(o->ev);
  o->rc_set = fut_event_set(o->ev);
  o->rc_sem_acquire = fut_sem_acquire(o->sem);
  o->rc_sem_release = fut_sem_release(o->sem);
  return 0;
}

/* A primitive bound to one loop (by a wait) refuses waiting and waking
 * calls made from another running loop. */
static void test_sync_other_loop(void **state) {
  struct other o = {0};
  assert_int_equal(fut_event_new(&o.ev), 0);
  assert_int_equal(fut_sem_new(0, &o.sem), 0);
  fut_loop_t *first = new_loop();
  assert_int_equal(run_main(first, bind_main, &o), 0);
  end_loop(first);
  assert_int_equal(run_main(*state, other_main, &o), 0);
  assert_int_equal(o.rc_wait, FUT_E_OTHER_LOOP);
  assert_int_equal(o.rc_set, FUT_E_OTHER_LOOP);
  assert_int_equal(o.rc_sem_acquire, FUT_E_OTHER_LOOP);
  assert_int_equal(o.rc_sem_release, FUT_E_OTHER_LOOP);
  assert_false(fut_event_is_set(o.ev));
  assert_int_equal(fut_sem_value(o.sem), 0);
  /* From plain code (no loop running) the non-waiting calls work. */
  assert_int_equal(fut_event_set(o.ev), 0);
  assert_int_equal(fut_event_free(o.ev), 0);
  assert_int_equal(fut_sem_free(o.sem), 0);
}

/* ---- stress: the lock under random cancellation -------------------------- */

#define STRESS_TASKS 1000
#define STRESS_ROUNDS 1000

struct stress {
  fut_lock_t *lock;
  fut_t *tasks[STRESS_TASKS];
  unsigned seed;
  long counter;  /* protected by the lock */
  long acquired; /* successful acquires */
  long cancelled_acquires;
  long cancels_sent;
  int started; /* workers that began, to seed each one */
  int inside;  /* tasks in the critical section: 0 or 1 */
  int overlap; /* times two were inside */
  int running; /* workers not finished */
};

static int stress_worker(void *arg) {
  struct stress *s = arg;
  fut_t *self = fut_current_task(fut_get_running_loop());
  unsigned seed = s->seed + (unsigned)++s->started; /* start order */
  for (int r = 0; r < STRESS_ROUNDS; r++) {
    int err = fut_lock_acquire(s->lock);
    if (err == -ECANCELED) {
      s->cancelled_acquires++;
      fut_task_uncancel(self);
      continue;
    }
    if (err)
      return err;
    if (s->inside++)
      s->overlap++;
    long v = s->counter;
    if (rand_r(&seed) % 4 == 0 && fut_yield() == -ECANCELED)
      fut_task_uncancel(self); /* cancelled while holding: keep going */
    s->counter = v + 1;
    s->acquired++;
    s->inside--;
    fut_lock_release(s->lock);
  }
  s->running--;
  return 0;
}

static int stress_canceller(void *arg) {
  struct stress *s = arg;
  unsigned seed = s->seed;
  while (s->running > 0) {
    fut_t *t = s->tasks[rand_r(&seed) % STRESS_TASKS];
    if (rand_r(&seed) % 8 == 0 && fut_cancel(t, "stress"))
      s->cancels_sent++;
    fut_yield();
  }
  return 0;
}

static int stress_main(void *arg) {
  struct stress *s = arg;
  fut_loop_t *loop = fut_get_running_loop();
  s->running = STRESS_TASKS;
  for (int i = 0; i < STRESS_TASKS; i++)
    s->tasks[i] = spawn(loop, stress_worker, s);
  fut_t *canceller = spawn(loop, stress_canceller, s);
  int err = 0;
  for (int i = 0; i < STRESS_TASKS; i++) {
    int e = fut_await(s->tasks[i], NULL);
    if (e && !err)
      err = e;
  }
  int e = fut_await(canceller, NULL);
  if (e && !err)
    err = e;
  fut_unref(canceller);
  for (int i = 0; i < STRESS_TASKS; i++)
    fut_unref(s->tasks[i]);
  return err;
}

/* 1,000 tasks x 1,000 acquire/release rounds while a canceller cancels
 * random tasks (seeded): the protected counter is exact, the critical
 * section never overlaps, and nothing is left waiting. */
static void test_lock_stress_random_cancel(void **state) {
  fut_loop_t *loop = *state;
  static struct stress s;
  memset(&s, 0, sizeof s);
  s.seed = 20261207u;
  assert_int_equal(fut_lock_new(&s.lock), 0);
  assert_int_equal(run_main(loop, stress_main, &s), 0);
  assert_int_equal(s.overlap, 0);
  assert_int_equal(s.counter, s.acquired);
  assert_int_equal(s.acquired + s.cancelled_acquires,
                   (long)STRESS_TASKS * STRESS_ROUNDS);
  assert_true(s.cancels_sent > 0);
  assert_true(s.cancelled_acquires > 0);
  assert_false(fut_lock_locked(s.lock));
  assert_int_equal(fut_all_tasks(loop, NULL, 0), 0);
  assert_int_equal(fut_lock_free(s.lock), 0); /* no waiter left */
  printf("stress: %ld acquired, %ld acquires cancelled, %ld cancels sent\n",
         s.acquired, s.cancelled_acquires, s.cancels_sent);
}

/* ---- stress: the semaphore under random cancellation --------------------- */

#define SEM_TASKS 200
#define SEM_ROUNDS 500
#define SEM_VALUE 3

struct sem_stress {
  fut_sem_t *sem;
  fut_t *tasks[SEM_TASKS];
  unsigned seed;
  long acquired, cancelled;
  int started, inside, max_inside, running;
};

static int sem_worker(void *arg) {
  struct sem_stress *s = arg;
  fut_t *self = fut_current_task(fut_get_running_loop());
  unsigned seed = s->seed + (unsigned)++s->started; /* start order */
  for (int r = 0; r < SEM_ROUNDS; r++) {
    int err = fut_sem_acquire(s->sem);
    if (err == -ECANCELED) {
      s->cancelled++;
      fut_task_uncancel(self);
      continue;
    }
    if (err)
      return err;
    if (++s->inside > s->max_inside)
      s->max_inside = s->inside;
    if (rand_r(&seed) % 2 && fut_yield() == -ECANCELED)
      fut_task_uncancel(self);
    s->inside--;
    s->acquired++;
    if ((err = fut_sem_release(s->sem)))
      return err;
  }
  s->running--;
  return 0;
}

static int sem_canceller(void *arg) {
  struct sem_stress *s = arg;
  unsigned seed = s->seed;
  while (s->running > 0) {
    if (rand_r(&seed) % 4 == 0)
      fut_cancel(s->tasks[rand_r(&seed) % SEM_TASKS], "stress");
    fut_yield();
  }
  return 0;
}

static int sem_stress_main(void *arg) {
  struct sem_stress *s = arg;
  fut_loop_t *loop = fut_get_running_loop();
  s->running = SEM_TASKS;
  for (int i = 0; i < SEM_TASKS; i++)
    s->tasks[i] = spawn(loop, sem_worker, s);
  fut_t *canceller = spawn(loop, sem_canceller, s);
  int err = 0;
  for (int i = 0; i < SEM_TASKS; i++) {
    int e = fut_await(s->tasks[i], NULL);
    if (e && !err)
      err = e;
  }
  int e = fut_await(canceller, NULL);
  fut_unref(canceller);
  for (int i = 0; i < SEM_TASKS; i++) /* the canceller is done with them */
    fut_unref(s->tasks[i]);
  return err ? err : e;
}

/* A bounded semaphore of 3 under random cancellation: never more than 3
 * holders, every unit back at the end (a lost hand-off would leave the
 * value short, or a waiter stranded), no task left. */
static void test_sem_stress_random_cancel(void **state) {
  fut_loop_t *loop = *state;
  static struct sem_stress s;
  memset(&s, 0, sizeof s);
  s.seed = 7u;
  assert_int_equal(fut_bounded_sem_new(SEM_VALUE, &s.sem), 0);
  assert_int_equal(run_main(loop, sem_stress_main, &s), 0);
  assert_true(s.max_inside <= SEM_VALUE);
  assert_int_equal(s.max_inside, SEM_VALUE);
  assert_int_equal(s.acquired + s.cancelled, (long)SEM_TASKS * SEM_ROUNDS);
  assert_true(s.cancelled > 0);
  assert_int_equal(fut_sem_value(s.sem), SEM_VALUE);
  assert_false(fut_sem_locked(s.sem));
  assert_int_equal(fut_all_tasks(loop, NULL, 0), 0);
  assert_int_equal(fut_sem_free(s.sem), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_sync_waits_outside_a_task),
      T(test_sync_bad_arguments),
      T(test_lock_uncontended_acquire_allocates_nothing),
      T(test_bounded_sem_over_release),
      T(test_sync_free_while_waited_on),
      cmocka_unit_test(test_sync_loop_close_with_waiters),
      T(test_cond_wait_for_producer_consumer),
      T(test_sync_other_loop),
      T(test_lock_stress_random_cancel),
      T(test_sem_stress_random_cancel),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
