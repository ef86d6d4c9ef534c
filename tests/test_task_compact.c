/* Compact tasks (FUT_TASK_COMPACT): many of them share a run stack, their
 * frames copied out and back at every switch.  Locals (checksummed
 * buffers, a deep recursion awaiting at its bottom) must survive,
 * interleaved with other compact tasks and normal ones, in normal and
 * debug mode; cancellation, failures, names, fut_current_task, context
 * variables, timeouts and TaskGroup work as for any task; loop close with
 * suspended compact tasks leaks nothing; an out-of-memory copy-out buffer
 * fails the suspension point with -ENOMEM; and in debug mode a use of a
 * suspended compact task's stack is reported naming it (forked child). */
#include "fixture.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/internal.h"
#include "child_output.h"

static fut_task_opts_t compact_opts(const char *name, size_t stack) {
  fut_task_opts_t o;
  fut_task_opts_init(&o);
  o.flags = FUT_TASK_COMPACT;
  o.name = name;
  o.stack_size = stack;
  return o;
}

/* ---- locals survive ------------------------------------------------------ */

struct work {
  fut_loop_t *loop;
  int id;
  int rounds;
  int depth;
  int bad; /* checks that failed, reported by the task */
};

static void resolve_cb(void *arg) {
  fut_set_result(arg, NULL, NULL);
}

/* One await of a future resolved by call_soon (the other tasks run
 * meanwhile). */
static int round_trip(fut_loop_t *loop) {
  fut_t *f;
  int rc = fut_new(loop, &f);
  if (rc)
    return rc;
  fut_loop_call_soon(loop, resolve_cb, f, NULL);
  rc = fut_await(f, NULL);
  fut_unref(f);
  return rc;
}

static uint32_t fill(unsigned char *b, size_t n, uint32_t seed) {
  uint32_t x = seed * 2654435761u + 1, sum = 0;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b[i] = (unsigned char)x;
    sum = sum * 31 + b[i];
  }
  return sum;
}

static uint32_t sum_of(const unsigned char *b, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i < n; i++)
    sum = sum * 31 + b[i];
  return sum;
}

/* Recurses `depth` levels, each with a filled buffer, awaits at the
 * bottom, checks every level on the way back. */
static int deep(struct work *w, int depth, int64_t *acc) {
  volatile unsigned char buf[96];
  uint32_t want =
      fill((unsigned char *)buf, sizeof buf, (uint32_t)(w->id * 1000 + depth));
  int rc = depth == 0 ? round_trip(w->loop) : deep(w, depth - 1, acc);
  if (sum_of((unsigned char *)buf, sizeof buf) != want)
    w->bad++;
  *acc += buf[depth % 96];
  return rc;
}

static int worker(void *arg) {
  struct work *w = arg;
  fut_t *self = fut_current_task(w->loop);
  size_t n = 200 + (size_t)(w->id % 7) * 300; /* images of different sizes */
  unsigned char buf[2200];
  uint32_t want = fill(buf, n, (uint32_t)w->id);
  int64_t acc = 0;
  for (int r = 0; r < w->rounds; r++) {
    int rc = (r % 3 == 0)   ? fut_sleep(0)
             : (r % 3 == 1) ? round_trip(w->loop)
                            : deep(w, w->depth, &acc);
    if (rc)
      return rc;
    if (sum_of(buf, n) != want)
      w->bad++;
    if (fut_current_task(w->loop) != self)
      w->bad++;
  }
  return fut_task_return_i64(w->id + (acc & 0));
}

/* nc compact and nn normal tasks of two stack sizes, interleaved. */
static void run_mix(fut_loop_t *loop, int nc, int nn) {
  int total = nc + nn;
  struct work *w = calloc((size_t)total, sizeof *w);
  fut_t **t = calloc((size_t)total, sizeof *t);
  assert_non_null(w);
  assert_non_null(t);
  for (int i = 0; i < total; i++) {
    w[i] = (struct work){.loop = loop, .id = i, .rounds = 12, .depth = 20};
    char name[32];
    snprintf(name, sizeof name, "%s-%d", i < nc ? "compact" : "normal", i);
    fut_task_opts_t o = compact_opts(name, i % 2 ? 32768 : 0);
    if (i >= nc)
      o.flags = 0;
    assert_int_equal(fut_create_task(loop, worker, &w[i], &o, &t[i]), 0);
    assert_int_equal(fut_task_is_compact(t[i]), i < nc);
    assert_string_equal(fut_task_get_name(t[i]), name);
    assert_int_equal(fut_task_stack_size(t[i]),
                     i % 2 ? 32768 : FUT_TASK_DEFAULT_STACK);
  }
  fut_t *all;
  assert_int_equal(fut_gather(loop, t, (size_t)total, false, &all), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, all), 0);
  for (int i = 0; i < total; i++) {
    int64_t v = -1;
    assert_int_equal(fut_result_i64(t[i], &v), 0);
    assert_int_equal(v, i);
    assert_int_equal(w[i].bad, 0);
    assert_int_equal(fut_task_is_compact(t[i]), i < nc); /* done too */
    fut_unref(t[i]);
  }
  fut_unref(all);
  free(w);
  free(t);
}

static void test_compact_locals_survive(void **state) {
  run_mix(*state, 300, 60);
}

static void test_compact_locals_survive_debug(void **state) {
  fut_loop_set_debug(*state, true);
  fut_loop_set_slow_callback_duration(*state, UINT64_MAX);
  run_mix(*state, 100, 20);
}

/* ---- cancellation, failures, timeouts ------------------------------------ */

static int wait_forever(void *arg) {
  fut_t *never = arg;
  char local[300];
  memset(local, 0x5a, sizeof local);
  int rc = fut_await(never, NULL);
  for (size_t i = 0; i < sizeof local; i++)
    if (local[i] != 0x5a)
      return -EFAULT;
  return rc;
}

static int survive_cancel(void *arg) {
  fut_t *never = arg;
  int rc = fut_await(never, NULL);
  if (rc != -ECANCELED)
    return -EPROTO;
  fut_task_uncancel(fut_current_task(NULL));
  if ((rc = fut_sleep(FUT_MS(1))))
    return rc;
  return fut_task_return_i64(77);
}

static int fail_after_await(void *arg) {
  int x = 41;
  int rc = fut_sleep(0);
  if (rc)
    return rc;
  (void)arg;
  return fut_task_fail(-EIO, "boom %d", x + 1);
}

static int timed_out(void *arg) {
  (void)arg;
  fut_timeout_t *to;
  int rc = fut_timeout_enter(FUT_MS(5), &to);
  if (rc)
    return rc;
  rc = fut_sleep(FUT_SEC(10));
  return fut_timeout_exit(to, rc);
}

static void test_compact_cancel_fail_timeout(void **state) {
  fut_loop_t *loop = *state;
  fut_t *never, *a, *b, *c, *d;
  assert_int_equal(fut_new(loop, &never), 0);
  fut_task_opts_t o = compact_opts("waiter", 0);
  assert_int_equal(fut_create_task(loop, wait_forever, never, &o, &a), 0);
  o.name = "survivor";
  assert_int_equal(fut_create_task(loop, survive_cancel, never, &o, &b), 0);
  o.name = "failer";
  assert_int_equal(fut_create_task(loop, fail_after_await, NULL, &o, &c), 0);
  o.name = "timed";
  assert_int_equal(fut_create_task(loop, timed_out, NULL, &o, &d), 0);
  for (int i = 0; i < 5; i++)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_true(fut_cancel(a, "stop"));
  assert_true(fut_cancel(b, NULL));
  fut_t *all[] = {a, b, c, d}, *g;
  assert_int_equal(fut_gather(loop, all, 4, true, &g), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, g), 0);
  const char *msg = NULL;
  assert_true(fut_cancelled(a));
  assert_int_equal(fut_exception(a, &msg), -ECANCELED);
  assert_string_equal(msg, "stop");
  int64_t v = 0;
  assert_int_equal(fut_result_i64(b, &v), 0);
  assert_int_equal(v, 77);
  assert_int_equal(fut_exception(c, &msg), -EIO);
  assert_string_equal(msg, "boom 42");
  assert_int_equal(fut_exception(d, NULL), -ETIMEDOUT);
  fut_unref(g);
  fut_unref(a);
  fut_unref(b);
  fut_unref(c);
  fut_unref(d);
  fut_unref(never);
}

/* ---- a compact task creating tasks, TaskGroup, context variables -------- */

static fut_ctxvar_t *var;

static int child(void *arg) {
  intptr_t id = (intptr_t)arg;
  if (fut_ctxvar_get(var) != (void *)1)
    return -EPROTO; /* inherited from the parent */
  fut_ctxvar_set(var, (void *)(id + 100));
  int rc = fut_sleep(0);
  if (rc == 0)
    rc = fut_yield();
  if (fut_ctxvar_get(var) != (void *)(id + 100))
    return -EPROTO;
  return rc ? rc : fut_task_return_i64(id);
}

static int parent(void *arg) {
  fut_loop_t *loop = arg;
  int rc = fut_ctxvar_set(var, (void *)1);
  if (rc)
    return rc;
  fut_t *kids[8];
  for (intptr_t i = 0; i < 8; i++) {
    fut_task_opts_t o = compact_opts(NULL, 0);
    if (i % 2)
      o.flags = 0;
    if ((rc = fut_create_task(loop, child, (void *)i, &o, &kids[i])))
      return rc;
  }
  int64_t sum = 0;
  for (int i = 0; i < 8; i++) {
    int64_t v = 0;
    if (rc == 0)
      rc = fut_await_i64(kids[i], &v);
    sum += v;
    fut_unref(kids[i]);
  }
  if (rc)
    return rc;
  /* A TaskGroup of compact tasks inside a compact task. */
  fut_taskgroup_t *g;
  if ((rc = fut_taskgroup_new(&g)))
    return rc;
  rc = fut_taskgroup_enter(g);
  for (intptr_t i = 0; rc == 0 && i < 6; i++) {
    fut_task_opts_t o = compact_opts(NULL, 0);
    rc = fut_taskgroup_create_task(g, child, (void *)i, &o, NULL);
  }
  rc = fut_taskgroup_exit(g, rc);
  fut_taskgroup_free(g);
  if (fut_ctxvar_get(var) != (void *)1)
    return -EPROTO;
  return rc ? rc : fut_task_return_i64(sum);
}

static void test_compact_creates_tasks(void **state) {
  fut_loop_t *loop = *state;
  assert_int_equal(fut_ctxvar_new(NULL, &var), 0);
  fut_task_opts_t o = compact_opts("parent", 0);
  fut_t *t;
  assert_int_equal(fut_create_task(loop, parent, loop, &o, &t), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  int64_t v = -1;
  assert_int_equal(fut_result_i64(t, &v), 0);
  assert_int_equal(v, 28);
  fut_unref(t);
  fut_ctxvar_free(var);
}

/* ---- the sync primitives: their waiters must not live on the stack ------ */

struct syncw {
  fut_lock_t *lock;
  fut_cond_t *cond;
  fut_event_t *ev;
  fut_sem_t *sem;
  fut_queue_t *q;
  fut_barrier_t *bar;
  int counter, inside, max_inside, ready, consumed;
};

static int sync_worker(void *arg) {
  struct syncw *s = arg;
  int rc = fut_event_wait(s->ev); /* all block on the event first */
  for (int i = 0; rc == 0 && i < 5; i++) {
    if ((rc = fut_lock_acquire(s->lock)))
      break;
    int c = s->counter;
    rc = fut_sleep(0); /* others queue on the lock meanwhile */
    s->counter = c + 1;
    fut_lock_release(s->lock);
    if (rc == 0 && (rc = fut_sem_acquire(s->sem)) == 0) {
      if (++s->inside > s->max_inside)
        s->max_inside = s->inside;
      rc = fut_yield();
      s->inside--;
      fut_sem_release(s->sem);
    }
  }
  if (rc == 0 && (rc = fut_cond_acquire(s->cond)) == 0) {
    while (rc == 0 && !s->ready)
      rc = fut_cond_wait(s->cond);
    fut_cond_release(s->cond);
  }
  void *item = NULL;
  if (rc == 0 && (rc = fut_queue_get(s->q, &item)) == 0)
    s->consumed += (int)(intptr_t)item;
  if (rc == 0)
    rc = fut_barrier_wait(s->bar, NULL);
  return rc;
}

static int sync_driver(void *arg) {
  struct syncw *s = arg;
  int rc = fut_sleep(FUT_MS(1));
  if (rc == 0)
    rc = fut_event_set(s->ev);
  while (rc == 0 && s->counter < 5 * 40)
    rc = fut_sleep(FUT_MS(1));
  if (rc == 0 && (rc = fut_cond_acquire(s->cond)) == 0) {
    s->ready = 1;
    fut_cond_notify_all(s->cond);
    fut_cond_release(s->cond);
  }
  for (intptr_t i = 0; rc == 0 && i < 40; i++)
    rc = fut_queue_put(s->q, (void *)1); /* bounded: waits for getters */
  if (rc == 0)
    rc = fut_barrier_wait(s->bar, NULL);
  return rc;
}

static void run_sync(fut_loop_t *loop) {
  struct syncw s = {0};
  assert_int_equal(fut_lock_new(&s.lock), 0);
  assert_int_equal(fut_cond_new(NULL, &s.cond), 0);
  assert_int_equal(fut_event_new(&s.ev), 0);
  assert_int_equal(fut_sem_new(3, &s.sem), 0);
  assert_int_equal(fut_queue_new(FUT_QUEUE_FIFO, 2, NULL, &s.q), 0);
  assert_int_equal(fut_barrier_new(41, &s.bar), 0);
  fut_t *t[41];
  for (int i = 0; i < 41; i++) {
    fut_task_opts_t o = compact_opts(NULL, 0);
    if (i % 5 == 4)
      o.flags = 0; /* some normal tasks among them */
    assert_int_equal(fut_create_task(loop, i < 40 ? sync_worker : sync_driver,
                                     &s, &o, &t[i]),
                     0);
  }
  fut_t *all;
  assert_int_equal(fut_gather(loop, t, 41, false, &all), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, all), 0);
  assert_int_equal(s.counter, 200);
  assert_true(s.max_inside >= 1 && s.max_inside <= 3);
  assert_int_equal(s.consumed, 40);
  for (int i = 0; i < 41; i++)
    fut_unref(t[i]);
  fut_unref(all);
  fut_barrier_free(s.bar);
  fut_queue_free(s.q);
  fut_sem_free(s.sem);
  fut_event_free(s.ev);
  fut_cond_free(s.cond);
  fut_lock_free(s.lock);
}

static void test_compact_sync_primitives(void **state) {
  run_sync(*state);
}

/* Debug mode: a waiter linked on a compact task's stack would fault. */
static void test_compact_sync_primitives_debug(void **state) {
  fut_loop_set_debug(*state, true);
  fut_loop_set_slow_callback_duration(*state, UINT64_MAX);
  run_sync(*state);
}

/* ---- loop close with suspended compact tasks ----------------------------- */

static int closed_count;

static int cleanup_at_close(void *arg) {
  unsigned char buf[512];
  uint32_t want = fill(buf, sizeof buf, 7);
  int rc = fut_await(arg, NULL);
  if (rc == -ECANCELED && sum_of(buf, sizeof buf) == want)
    closed_count++;
  return rc;
}

static void test_compact_loop_close(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fx_exc_t cap;
  fx_exc_capture(loop, &cap);
  fut_t *never;
  assert_int_equal(fut_new(loop, &never), 0);
  closed_count = 0;
  for (int i = 0; i < 100; i++) {
    fut_task_opts_t o = compact_opts(NULL, i % 3 ? 0 : 65536);
    if (i % 10 == 0)
      o.flags = 0;
    fut_t *t;
    assert_int_equal(fut_create_task(loop, cleanup_at_close, never, &o, &t), 0);
    fut_unref(t);
  }
  for (int i = 0; i < 3; i++)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  fut_unref(never);
  assert_int_equal(fut_loop_close(loop), 0);
  assert_int_equal(closed_count, 100);
  assert_int_equal(cap.count, 100); /* "Task was destroyed but ..." */
  assert_int_equal(fut_loop_free(loop), 0);
}

/* ---- out of memory for the image ----------------------------------------- */

__attribute__((noinline)) static int oom_depth(fut_loop_t *loop, int depth,
                                               int *first) {
  volatile char pad[1024];
  pad[0] = (char)depth;
  if (depth > 0) {
    int rc = oom_depth(loop, depth - 1, first);
    return rc + pad[0] * 0; /* read after the call: the frame stays */
  }
  fut_t *f;
  int rc = fut_new(loop, &f);
  if (rc)
    return rc;
  fut_loop_call_soon(loop, resolve_cb, f, NULL);
  /* The buffer must grow for this deeper image: that allocation fails. */
  fut__alloc_fail_after(1, false);
  *first = fut_await(f, NULL);
  fut__alloc_fail_after(0, false);
  const char *e = fut_last_error();
  if (*first == -ENOMEM &&
      (!e || !strstr(e, "out of memory for the image of compact task 'oom'")))
    *first = -EPROTO;
  rc = fut_await(f, NULL); /* again: suspends this time */
  fut_unref(f);
  return rc;
}

static int oom_task(void *arg) {
  fut_loop_t *loop = arg;
  int rc = fut_sleep(0); /* a small image first */
  int first = 0;
  if (rc == 0)
    rc = oom_depth(loop, 8, &first);
  if (rc)
    return rc;
  return fut_task_return_i64(first);
}

/* A deeper image than the task's first: its buffer must grow. */
__attribute__((noinline)) static int sleep_deeper(void) {
  volatile char pad[4096];
  pad[0] = 1;
  int rc = fut_sleep(0);
  /* Read after the call: the frame stays (no sibling call). */
  return rc + pad[0] * 0;
}

static int oom_sticky(void *arg) {
  (void)arg;
  int rc = fut_sleep(0);
  if (rc)
    return rc;
  fut__alloc_fail_after(1, true);
  rc = sleep_deeper();
  fut__alloc_fail_after(0, false);
  return rc; /* fails the task with -ENOMEM */
}

static void test_compact_oom(void **state) {
  fut_loop_t *loop = *state;
  fut_task_opts_t o = compact_opts("oom", 0);
  fut_t *t, *u, *other;
  assert_int_equal(fut_create_task(loop, oom_task, loop, &o, &t), 0);
  o.name = "sticky";
  assert_int_equal(fut_create_task(loop, oom_sticky, loop, &o, &u), 0);
  o.name = "other";
  struct work w = {.loop = loop, .id = 3, .rounds = 6, .depth = 3};
  assert_int_equal(fut_create_task(loop, worker, &w, &o, &other), 0);
  fut_t *all[] = {t, u, other}, *g;
  assert_int_equal(fut_gather(loop, all, 3, true, &g), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, g), 0);
  int64_t v = 0;
  assert_int_equal(fut_result_i64(t, &v), 0);
  assert_int_equal(v, -ENOMEM);
  assert_int_equal(fut_exception(u, NULL), -ENOMEM);
  assert_int_equal(fut_result_i64(other, &v), 0);
  assert_int_equal(w.bad, 0);
  fut_unref(g);
  fut_unref(t);
  fut_unref(u);
  fut_unref(other);
}

static void test_compact_bad_flags(void **state) {
  fut_task_opts_t o = compact_opts(NULL, 0);
  o.flags = 0x80;
  fut_t *t = (fut_t *)1;
  assert_int_equal(fut_create_task(*state, worker, NULL, &o, &t), -EINVAL);
  assert_null(t);
}

/* ---- debug mode: a stale address used while suspended (child) ------------ */

static volatile char *leaked;

static int leaky(void *arg) {
  char mine[64] = "mine";
  leaked = mine; /* handed out: breaks the compact restriction */
  int rc = fut_await(arg, NULL);
  return rc + mine[0] * 0;
}

static void poke(void *arg) {
  (void)arg;
  leaked[1] = 'X'; /* the task is suspended: this must be reported */
}

static volatile int depth_limit = 1 << 30; /* never reached */

static int recurse_forever(int d) {
  volatile char buf[512];
  buf[0] = (char)d;
  if (d >= depth_limit)
    return buf[0];
  return recurse_forever(d + 1) + buf[0];
}

static int overflow(void *arg) {
  (void)arg;
  return recurse_forever(0);
}

static int child_main(int what) {
  fut_loop_t *loop;
  if (fut_loop_new(&loop))
    return 2;
  fut_loop_set_debug(loop, what != 1);
  fut_t *never, *t;
  if (fut_new(loop, &never))
    return 3;
  /* 0: named "leaky"; 2: the same with the default name (formatted
   * lazily: the report must still give it, without allocating). */
  fut_task_opts_t o = compact_opts(what == 0   ? "leaky"
                                   : what == 2 ? NULL
                                               : "deep-compact",
                                   what == 1 ? 65536 : 0);
  if (fut_create_task(loop, what == 1 ? overflow : leaky, never, &o, &t))
    return 4;
  fut_loop_run_once(loop, 0);
  if (what != 1) {
    fut_loop_call_soon(loop, poke, NULL, NULL);
    fut_loop_run_once(loop, 0);
  }
  return 5; /* not reached: the process dies */
}

/* argv[0]: under valgrind, /proc/self/exe is valgrind itself. */
static const char *self_path = "/proc/self/exe";

static void in_child(int what, const char *expect) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    /* A fresh image: cmocka replaced the library's SIGSEGV handler,
     * installed once per process by an earlier test. */
    char arg[8];
    snprintf(arg, sizeof arg, "%d", what);
    setenv("COMPACT_CHILD", arg, 1);
    execl(self_path, "test_task_compact", (char *)NULL);
    _exit(6);
  }
  close(fds[1]);
  char out[4096];
  int status = child_output(pid, fds[0], out, sizeof out);
  assert_int_not_equal(status, -1);
  printf("[ CHILD    ] %s", out);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGSEGV);
  assert_non_null(strstr(out, expect));
}

static void test_compact_debug_reports_stale_access(void **state) {
  (void)state;
  in_child(0, "compact task 'leaky' is suspended, and its stack was "
              "accessed");
}

static void test_compact_debug_report_names_default_named_task(void **state) {
  (void)state;
  in_child(2, "compact task 'Task-1' is suspended, and its stack was "
              "accessed");
}

static void test_compact_overflow_named(void **state) {
  (void)state;
  in_child(1, "stack overflow in task 'deep-compact'");
}

int main(int argc, char **argv) {
  if (argc > 0 && argv[0] && strchr(argv[0], '/'))
    self_path = argv[0];
  const char *direct = getenv("COMPACT_CHILD");
  if (direct) /* in_child's re-executed child */
    return child_main(atoi(direct));
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_compact_locals_survive),
      FX_LOOP_TEST(test_compact_locals_survive_debug),
      FX_LOOP_TEST(test_compact_cancel_fail_timeout),
      FX_LOOP_TEST(test_compact_creates_tasks),
      FX_LOOP_TEST(test_compact_sync_primitives),
      FX_LOOP_TEST(test_compact_sync_primitives_debug),
      cmocka_unit_test(test_compact_loop_close),
      FX_LOOP_TEST(test_compact_oom),
      FX_LOOP_TEST(test_compact_bad_flags),
      cmocka_unit_test(test_compact_debug_reports_stale_access),
      cmocka_unit_test(test_compact_debug_report_names_default_named_task),
      cmocka_unit_test(test_compact_overflow_named),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
