/* Context variables and callbacks (asyncio: call_soon / call_later /
 * call_at / call_soon_threadsafe / add_done_callback capture
 * contextvars.copy_context() when called and run the callback in it): a
 * value set in a task is seen by the callbacks that task schedules, as it
 * was when they were scheduled; not by a sibling's, nor by callbacks
 * scheduled outside any task; a set inside a callback stays in that
 * callback (and what it schedules or creates).  Cancelled handles, removed
 * registrations and a loop closed with bound callbacks pending release the
 * context (ASan / LeakSanitizer, and valgrind via
 * tests/register_valgrind_tasks.cmake, check the memory). */
#include "fixture.h"
#include "task_helpers.h"

#include "loop/internal.h" /* fut__alloc_fail_after, loop->ctx_live */

/* Once the tasks with a context are gone, scheduling on the loop is back
 * to its free path (nothing counted). */
static void assert_no_context_live(fut_loop_t *loop) {
  assert_int_equal(loop->ctx_live, 0);
}

#define T(fn) FX_LOOP_TEST(fn)

static fut_ctxvar_t *var;

/* What a callback saw, by slot. */
enum {
  S_SOON,
  S_SOON_H,
  S_LATER,
  S_LATER_H,
  S_AT,
  S_AT_H,
  S_THREADSAFE,
  S_DONE_PENDING,
  S_DONE_DONE,
  S_DONE_LATE,
  S_N
};

struct seen {
  void *v[S_N];
  int ran;
};

static struct seen *cur;

static void record(int slot) {
  cur->v[slot] = fut_ctxvar_get(var);
  cur->ran++;
}

#define CB(name, slot)                                                         \
  static void name(void *arg) {                                                \
    (void)arg;                                                                 \
    record(slot);                                                              \
  }
CB(cb_soon, S_SOON)
CB(cb_soon_h, S_SOON_H)
CB(cb_later, S_LATER)
CB(cb_later_h, S_LATER_H)
CB(cb_at, S_AT)
CB(cb_at_h, S_AT_H)
CB(cb_threadsafe, S_THREADSAFE)

static void done_cb(fut_t *f, void *arg) {
  (void)f;
  record((int)(intptr_t)arg);
}

/* Schedules one callback of each kind from the calling code; *hs gets the
 * three handles and *fs two futures it completes (the caller releases
 * them). */
static void schedule_all(fut_loop_t *loop, fut_handle_t *hs[3], fut_t *fs[2]) {
  assert_int_equal(fut_loop_call_soon(loop, cb_soon, NULL, NULL), 0);
  assert_int_equal(fut_loop_call_soon(loop, cb_soon_h, NULL, &hs[0]), 0);
  assert_int_equal(fut_loop_call_later(loop, FUT_MS(1), cb_later, NULL, NULL),
                   0);
  assert_int_equal(
      fut_loop_call_later(loop, FUT_MS(1), cb_later_h, NULL, &hs[1]), 0);
  uint64_t now = fut_loop_time(loop);
  assert_int_equal(fut_loop_call_at(loop, now, cb_at, NULL, NULL), 0);
  assert_int_equal(
      fut_loop_call_at(loop, now + FUT_MS(2), cb_at_h, NULL, &hs[2]), 0);
  assert_int_equal(fut_loop_call_soon_threadsafe(loop, cb_threadsafe, NULL), 0);
  /* A pending future, completed afterwards. */
  assert_int_equal(fut_new(loop, &fs[0]), 0);
  assert_int_equal(
      fut_add_done_callback(fs[0], done_cb, (void *)(intptr_t)S_DONE_PENDING),
      0);
  assert_int_equal(fut_set_result_i64(fs[0], 1), 0);
  /* A done future: its own dispatch; then, with that dispatch queued, a
   * late registration (the separate ready entry). */
  assert_int_equal(fut_new(loop, &fs[1]), 0);
  assert_int_equal(fut_set_result_i64(fs[1], 2), 0);
  assert_int_equal(
      fut_add_done_callback(fs[1], done_cb, (void *)(intptr_t)S_DONE_DONE), 0);
  assert_int_equal(
      fut_add_done_callback(fs[1], done_cb, (void *)(intptr_t)S_DONE_LATE), 0);
}

static void release_all(fut_handle_t *hs[3], fut_t *fs[2]) {
  for (int i = 0; i < 3; i++)
    fut_handle_unref(hs[i]);
  fut_unref(fs[0]);
  fut_unref(fs[1]);
}

static bool all_ran(void *arg) {
  return ((struct seen *)arg)->ran >= S_N;
}

static void run_until_all_ran(fut_loop_t *loop, struct seen *s) {
  for (int i = 0; i < 10000 && !all_ran(s); i++)
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(10)), 0);
  assert_int_equal(s->ran, S_N);
}

/* ---- a task's value reaches its callbacks, as at scheduling time -------- */

static int scheduler_task(void *arg) {
  fut_handle_t **hs = arg;
  fut_t *fs[2];
  assert_int_equal(fut_ctxvar_set(var, "task"), 0);
  schedule_all(fut_get_running_loop(), hs, fs);
  /* After scheduling: the callbacks keep the value they captured. */
  assert_int_equal(fut_ctxvar_set(var, "task, later"), 0);
  fut_unref(fs[0]);
  fut_unref(fs[1]);
  return 0;
}

static void test_callbacks_see_task_value(void **state) {
  fut_loop_t *loop = *state;
  struct seen s = {0};
  cur = &s;
  assert_int_equal(fut_ctxvar_new("default", &var), 0);
  fut_handle_t *hs[3];
  fut_t *t = spawn(loop, scheduler_task, hs);
  run_until_done(loop, t);
  fut_unref(t);
  run_until_all_ran(loop, &s);
  for (int i = 0; i < S_N; i++)
    assert_string_equal(s.v[i], "task");
  for (int i = 0; i < 3; i++)
    fut_handle_unref(hs[i]);
  assert_no_context_live(loop);
  assert_string_equal(fut_ctxvar_get(var), "default"); /* the thread's */
  fut_ctxvar_free(var);
}

/* ---- not a sibling's, not outside any task ------------------------------ */

struct sib {
  fut_t *gate; /* the setter holds its value while the sibling schedules */
  fut_handle_t *hs[3];
};

static int setter(void *arg) {
  struct sib *c = arg;
  assert_int_equal(fut_ctxvar_set(var, "setter"), 0);
  return fut_await(c->gate, NULL);
}

static int sibling(void *arg) {
  struct sib *c = arg;
  fut_t *fs[2];
  schedule_all(fut_get_running_loop(), c->hs, fs);
  fut_unref(fs[0]);
  fut_unref(fs[1]);
  return fut_set_result(c->gate, NULL, NULL);
}

static void test_sibling_and_outside_see_own(void **state) {
  fut_loop_t *loop = *state;
  struct seen s = {0};
  cur = &s;
  assert_int_equal(fut_ctxvar_new("default", &var), 0);
  struct sib c;
  assert_int_equal(fut_new(loop, &c.gate), 0);
  fut_t *a = spawn(loop, setter, &c);
  fut_t *b = spawn(loop, sibling, &c);
  run_until_done(loop, b);
  run_until_done(loop, a);
  run_until_all_ran(loop, &s);
  for (int i = 0; i < S_N; i++)
    assert_string_equal(s.v[i], "default");
  for (int i = 0; i < 3; i++)
    fut_handle_unref(c.hs[i]);
  fut_unref(a);
  fut_unref(b);
  fut_unref(c.gate);

  /* Outside any task: the callbacks run in the thread's own context, the
   * value it has when they run (nothing is captured). */
  struct seen o = {0};
  cur = &o;
  fut_handle_t *hs[3];
  fut_t *fs[2];
  schedule_all(loop, hs, fs);
  assert_int_equal(fut_ctxvar_set(var, "thread"), 0);
  run_until_all_ran(loop, &o);
  for (int i = 0; i < S_N; i++)
    assert_string_equal(o.v[i], "thread");
  release_all(hs, fs);
  assert_int_equal(fut_ctxvar_set(var, "default"), 0);
  fut_ctxvar_free(var);
}

/* ---- a set inside a callback stays there -------------------------------- */

struct inner {
  void *in_cb_before, *in_cb_after; /* the bound callback's reads */
  void *nested_cb;                  /* a callback it schedules */
  void *created_task;               /* a task it creates */
  void *second_cb;                  /* another callback of the task */
  void *task_after;                 /* the task, after both ran */
  void *done_cb_after;              /* a done callback that set too */
  fut_t *task;                      /* the one the callback created */
  fut_t *gate;                      /* set when everything ran */
  int ran;
};

static void nested_cb(void *arg) {
  struct inner *c = arg;
  c->nested_cb = fut_ctxvar_get(var);
  if (++c->ran == 4)
    fut_set_result(c->gate, NULL, NULL);
}

static int created_task(void *arg) {
  struct inner *c = arg;
  c->created_task = fut_ctxvar_get(var);
  if (++c->ran == 4)
    fut_set_result(c->gate, NULL, NULL);
  return 0;
}

static void setting_cb(void *arg) {
  struct inner *c = arg;
  c->in_cb_before = fut_ctxvar_get(var);
  assert_int_equal(fut_ctxvar_set(var, "callback"), 0);
  assert_int_equal(fut_ctxvar_set(var, "callback 2"), 0);
  c->in_cb_after = fut_ctxvar_get(var);
  assert_int_equal(
      fut_loop_call_soon(fut_get_running_loop(), nested_cb, c, NULL), 0);
  assert_int_equal(
      fut_create_task(fut_get_running_loop(), created_task, c, NULL, &c->task),
      0);
}

static void second_cb(void *arg) {
  struct inner *c = arg;
  c->second_cb = fut_ctxvar_get(var);
  if (++c->ran == 4)
    fut_set_result(c->gate, NULL, NULL);
}

static void setting_done_cb(fut_t *f, void *arg) {
  (void)f;
  struct inner *c = arg;
  assert_int_equal(fut_ctxvar_set(var, "done callback"), 0);
  c->done_cb_after = fut_ctxvar_get(var);
  if (++c->ran == 4)
    fut_set_result(c->gate, NULL, NULL);
}

static int inner_task(void *arg) {
  struct inner *c = arg;
  fut_loop_t *loop = fut_get_running_loop();
  assert_int_equal(fut_ctxvar_set(var, "task"), 0);
  assert_int_equal(fut_new(loop, &c->gate), 0);
  assert_int_equal(fut_loop_call_soon(loop, setting_cb, c, NULL), 0);
  assert_int_equal(fut_loop_call_soon(loop, second_cb, c, NULL), 0);
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_add_done_callback(f, setting_done_cb, c), 0);
  assert_int_equal(fut_set_result(f, NULL, NULL), 0);
  fut_unref(f);
  int err = fut_await(c->gate, NULL);
  c->task_after = fut_ctxvar_get(var);
  fut_unref(c->gate);
  return err;
}

static void test_set_in_callback_stays_there(void **state) {
  fut_loop_t *loop = *state;
  struct inner c = {0};
  assert_int_equal(fut_ctxvar_new("default", &var), 0);
  fut_t *t = spawn(loop, inner_task, &c);
  run_until_done(loop, t);
  assert_int_equal(fut_exception(t, NULL), 0);
  fut_unref(t);
  run_until_done(loop, c.task);
  fut_unref(c.task);
  assert_string_equal(c.in_cb_before, "task");
  assert_string_equal(c.in_cb_after, "callback 2");
  assert_string_equal(c.nested_cb, "callback 2");    /* captured inside */
  assert_string_equal(c.created_task, "callback 2"); /* copied inside */
  assert_string_equal(c.second_cb, "task");          /* not the first's */
  assert_string_equal(c.done_cb_after, "done callback");
  assert_string_equal(c.task_after, "task"); /* the task's own */
  assert_no_context_live(loop);
  assert_string_equal(fut_ctxvar_get(var), "default");
  fut_ctxvar_free(var);
}

/* ---- cancelled, removed, dropped: the context is released --------------- */

static int never_ran;

static void never(void *arg) {
  (void)arg;
  never_ran++;
}

static void never_done(fut_t *f, void *arg) {
  (void)f;
  (void)arg;
  never_ran++;
}

static int cancelling_task(void *arg) {
  (void)arg;
  fut_loop_t *loop = fut_get_running_loop();
  assert_int_equal(fut_ctxvar_set(var, "task"), 0);
  fut_handle_t *h[3];
  assert_int_equal(fut_loop_call_soon(loop, never, NULL, &h[0]), 0);
  assert_int_equal(fut_loop_call_later(loop, FUT_MS(1), never, NULL, &h[1]), 0);
  assert_int_equal(fut_loop_call_at(loop, 0, never, NULL, &h[2]), 0);
  for (int i = 0; i < 3; i++) {
    fut_handle_cancel(h[i]);
    assert_true(fut_handle_cancelled(h[i]));
    fut_handle_cancel(h[i]); /* twice: nothing more to release */
  }
  fut_handle_unref(h[2]); /* the heap still holds it */
  /* Registrations taken back (the inline one and one in the vector). */
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_add_done_callback(f, never_done, NULL), 0);
  assert_int_equal(fut_add_done_callback(f, never_done, &never_ran), 0);
  assert_int_equal(fut_add_done_callback(f, never_done, NULL), 0);
  assert_int_equal(fut_remove_done_callback(f, never_done, NULL), 2);
  assert_int_equal(fut_remove_done_callback(f, never_done, &never_ran), 1);
  assert_int_equal(fut_set_result(f, NULL, NULL), 0);
  /* A future freed with a bound registration never run. */
  fut_t *g;
  assert_int_equal(fut_new(loop, &g), 0);
  assert_int_equal(fut_add_done_callback(g, never_done, NULL), 0);
  assert_int_equal(fut_add_done_callback(g, never_done, NULL), 0);
  fut_unref(g);
  assert_int_equal(fut_sleep(FUT_MS(5)), 0);
  fut_unref(f);
  fut_handle_unref(h[0]);
  fut_handle_unref(h[1]);
  return 0;
}

static void test_cancelled_handles_release_context(void **state) {
  fut_loop_t *loop = *state;
  never_ran = 0;
  assert_int_equal(fut_ctxvar_new("default", &var), 0);
  assert_int_equal(run_main(loop, cancelling_task, NULL), 0);
  drain(loop);
  assert_int_equal(never_ran, 0);
  assert_no_context_live(loop);
  fut_ctxvar_free(var);
}

static fut_handle_t *kept;
static fut_t *kept_fut;

static int pending_task(void *arg) {
  fut_loop_t *loop = arg;
  assert_int_equal(fut_ctxvar_set(var, "task"), 0);
  assert_int_equal(fut_loop_call_soon(loop, never, NULL, NULL), 0);
  assert_int_equal(fut_loop_call_soon(loop, never, NULL, &kept), 0);
  assert_int_equal(fut_loop_call_later(loop, FUT_SEC(3600), never, NULL, NULL),
                   0);
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_later(loop, FUT_SEC(3600), never, NULL, &h),
                   0);
  fut_handle_unref(h); /* the heap's reference only */
  assert_int_equal(fut_loop_call_soon_threadsafe(loop, never, NULL), 0);
  assert_int_equal(fut_new(loop, &kept_fut), 0);
  assert_int_equal(fut_add_done_callback(kept_fut, never_done, NULL), 0);
  assert_int_equal(fut_set_result(kept_fut, NULL, NULL), 0); /* queued */
  fut_t *late;
  assert_int_equal(fut_new(loop, &late), 0);
  assert_int_equal(fut_set_result(late, NULL, NULL), 0);
  assert_int_equal(fut_add_done_callback(late, never_done, NULL), 0);
  assert_int_equal(fut_add_done_callback(late, never_done, NULL), 0);
  fut_unref(late);
  fut_loop_stop(loop); /* before any of them runs */
  return 0;
}

/* A loop closed with bound callbacks queued (ready queue, timers, a done
 * future's dispatch, a late registration) frees them and their contexts;
 * a handle the user still holds reads as cancelled. */
static void test_close_with_bound_callbacks_pending(void **state) {
  (void)state;
  never_ran = 0;
  assert_int_equal(fut_ctxvar_new("default", &var), 0);
  fut_loop_t *loop = new_loop();
  fut_t *t = spawn(loop, pending_task, loop);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_true(fut_done(t));
  fut_unref(t);
  assert_int_equal(fut_loop_close(loop), 0);
  assert_int_equal(never_ran, 0);
  assert_true(fut_handle_cancelled(kept));
  fut_handle_unref(kept);
  fut_unref(kept_fut);
  end_loop(loop);
  fut_ctxvar_free(var);
}

/* ---- out of memory binding a callback ---------------------------------- */

static int oom_task(void *arg) {
  (void)arg;
  fut_loop_t *loop = fut_get_running_loop();
  assert_int_equal(fut_ctxvar_set(var, "task"), 0);
  fut_handle_t *h = (fut_handle_t *)&h;
  fut__alloc_fail_after(1, false);
  assert_int_equal(fut_loop_call_soon(loop, never, NULL, NULL), -ENOMEM);
  fut__alloc_fail_after(1, false);
  assert_int_equal(fut_loop_call_soon(loop, never, NULL, &h), -ENOMEM);
  assert_null(h);
  fut__alloc_fail_after(1, false);
  assert_int_equal(fut_loop_call_at(loop, 0, never, NULL, NULL), -ENOMEM);
  h = (fut_handle_t *)&h;
  fut__alloc_fail_after(1, false);
  assert_int_equal(fut_loop_call_later(loop, 0, never, NULL, &h), -ENOMEM);
  assert_null(h);
  fut__alloc_fail_after(1, false);
  assert_int_equal(fut_loop_call_soon_threadsafe(loop, never, NULL), -ENOMEM);
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  fut__alloc_fail_after(1, false);
  assert_int_equal(fut_add_done_callback(f, never_done, NULL), -ENOMEM);
  fut__alloc_fail_after(0, false);
  assert_int_equal(fut_set_result(f, NULL, NULL), 0);
  fut_unref(f);
  assert_int_equal(fut_sleep(FUT_MS(2)), 0);
  assert_string_equal(fut_ctxvar_get(var), "task"); /* unchanged */
  return 0;
}

/* Binding fails cleanly: -ENOMEM, nothing scheduled, nothing leaked. */
static void test_bind_out_of_memory(void **state) {
  never_ran = 0;
  assert_int_equal(fut_ctxvar_new("default", &var), 0);
  assert_int_equal(run_main(*state, oom_task, NULL), 0);
  drain(*state);
  assert_int_equal(never_ran, 0);
  fut_ctxvar_free(var);
}

/* ---- another thread: a fut_to_thread function's context ----------------- */

static void *seen_threadsafe;
static fut_t *threadsafe_done;

static void from_worker_cb(void *arg) {
  (void)arg;
  seen_threadsafe = fut_ctxvar_get(var);
  fut_set_result(threadsafe_done, NULL, NULL);
}

static void *seen_run_threadsafe;

static int read_into(void *arg) {
  *(void **)arg = fut_ctxvar_get(var);
  return 0;
}

static int worker_fn(void *arg, fut_cfuture_t *cf) {
  (void)cf;
  fut_loop_t *loop = arg;
  fut_ctxvar_set(var, "worker");
  /* run_coroutine_threadsafe: the task starts in this context too. */
  fut_cfuture_t *rt;
  int err = fut_run_threadsafe(loop, read_into, &seen_run_threadsafe, &rt);
  if (err)
    return err;
  void *unused;
  err = fut_cfuture_result(rt, FUT_SEC(30), &unused);
  fut_cfuture_unref(rt);
  if (err)
    return err;
  return fut_loop_call_soon_threadsafe(loop, from_worker_cb, NULL);
}

static int to_thread_task(void *arg) {
  fut_loop_t *loop = arg;
  assert_int_equal(fut_ctxvar_set(var, "task"), 0);
  assert_int_equal(fut_new(loop, &threadsafe_done), 0);
  fut_t *f;
  assert_int_equal(fut_to_thread(worker_fn, loop, &f), 0);
  int err = fut_await(f, NULL);
  fut_unref(f);
  if (!err)
    err = fut_await(threadsafe_done, NULL);
  fut_unref(threadsafe_done);
  return err;
}

static void test_threadsafe_from_to_thread_function(void **state) {
  fut_loop_t *loop = *state;
  assert_int_equal(fut_ctxvar_new("default", &var), 0);
  seen_threadsafe = seen_run_threadsafe = NULL;
  assert_int_equal(run_main(loop, to_thread_task, loop), 0);
  assert_string_equal(seen_threadsafe, "worker"); /* the function's copy */
  assert_string_equal(seen_run_threadsafe, "worker");
  fut_ctxvar_free(var);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_callbacks_see_task_value),
      T(test_sibling_and_outside_see_own),
      T(test_set_in_callback_stays_there),
      T(test_cancelled_handles_release_context),
      T(test_close_with_bound_callbacks_pending),
      T(test_threadsafe_from_to_thread_function),
      T(test_bind_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
