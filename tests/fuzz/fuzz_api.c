/* API-sequence fuzzer: the input is a program of loop, future, timer, task,
 * combinator and thread-safe calls, one operation per byte (plus operand
 * bytes).  After every program it checks the library's promises:
 *   - every callback runs at most once, and a cancelled handle never runs;
 *   - once the program's futures are settled and the loop has run dry, every
 *     callback that was not cancelled ran exactly once;
 *   - nothing is alive after the last reference went, and the loop frees
 *     clean (AddressSanitizer's leak check covers the memory).
 * Time is bounded: delays are microseconds and the final drain is capped.
 *
 * Built with clang -fsanitize=fuzzer,address,undefined (tests/fuzz/
 * CMakeLists.txt); CI runs it for 60 s from the seed corpus in
 * tests/fuzz/corpus/api (`cmake --build build-fuzz --target fuzz-smoke`;
 * `fuzz-long` runs an hour).  FUZZ_API_DEBUG=1 in the environment prints
 * each operation, to read a crash file. */
#include <future.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CALLS 256 /* callbacks scheduled per program */
#define MAX_FUTS 32   /* futures the program holds at once */
#define MAX_HANDLES 32

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_api: invariant failed: %s (line %d)\n", #cond,     \
              __LINE__);                                                       \
      abort();                                                                 \
    }                                                                          \
  } while (0)

struct prog {
  fut_loop_t *loop;
  const uint8_t *p, *end;
  int runs[MAX_CALLS];       /* how often callback i ran */
  bool cancelled[MAX_CALLS]; /* its handle was cancelled before it ran */
  bool expected[MAX_CALLS];  /* scheduled, so it must run unless cancelled */
  int ncalls;
  fut_t *futs[MAX_FUTS]; /* references this program owns (NULL: empty) */
  fut_handle_t *handles[MAX_HANDLES];
  int handle_call[MAX_HANDLES]; /* the callback index of each handle */
};

struct call {
  struct prog *pr;
  int id;
};
static struct call calls[MAX_CALLS];

static uint8_t next(struct prog *pr) {
  return pr->p < pr->end ? *pr->p++ : 0;
}

static void count_cb(void *arg) {
  struct call *c = arg;
  struct prog *pr = c->pr;
  CHECK(!pr->cancelled[c->id]);
  CHECK(++pr->runs[c->id] == 1);
}

static void done_cb(fut_t *f, void *arg) {
  CHECK(fut_done(f));
  count_cb(arg);
}

/* A new callback slot, or NULL when the program used them all. */
static struct call *new_call(struct prog *pr) {
  if (pr->ncalls == MAX_CALLS)
    return NULL;
  struct call *c = &calls[pr->ncalls];
  c->pr = pr;
  c->id = pr->ncalls++;
  return c;
}

static fut_t **pick_fut(struct prog *pr) {
  return &pr->futs[next(pr) % MAX_FUTS];
}

static int store_fut(struct prog *pr, fut_t *f) {
  fut_t **slot = pick_fut(pr);
  fut_unref(*slot);
  *slot = f;
  return 0;
}

/* A task: waits on the future it was given, then returns.  The task's
 * reference to that future is released by a done callback, not by the
 * function: a task cancelled before its first step never runs it. */
static int task_fn(void *arg) {
  int rc = fut_await(arg, NULL);
  if (rc == 0)
    (void)fut_sleep(FUT_US(1));
  return rc;
}

static void release_arg_cb(fut_t *task, void *arg) {
  (void)task;
  fut_unref(arg);
}

/* Cancels and drops handle slot h (its callback, if it has not run, never
 * will). */
static void release_handle(struct prog *pr, int h) {
  if (!pr->handles[h])
    return;
  if (pr->runs[pr->handle_call[h]] == 0)
    pr->cancelled[pr->handle_call[h]] = true;
  fut_handle_cancel(pr->handles[h]);
  fut_handle_unref(pr->handles[h]);
  pr->handles[h] = NULL;
}

static void op_call_soon(struct prog *pr) {
  struct call *c = new_call(pr);
  if (!c)
    return;
  int h = next(pr) % (MAX_HANDLES + 1);
  if (h == MAX_HANDLES) {
    CHECK(fut_loop_call_soon(pr->loop, count_cb, c, NULL) == 0);
  } else {
    release_handle(pr, h);
    CHECK(fut_loop_call_soon(pr->loop, count_cb, c, &pr->handles[h]) == 0);
    pr->handle_call[h] = c->id;
  }
  pr->expected[c->id] = true;
}

static void op_call_later(struct prog *pr) {
  struct call *c = new_call(pr);
  if (!c)
    return;
  uint64_t delay = FUT_US(next(pr));
  int h = next(pr) % (MAX_HANDLES + 1);
  if (h == MAX_HANDLES) {
    CHECK(fut_loop_call_later(pr->loop, delay, count_cb, c, NULL) == 0);
  } else {
    release_handle(pr, h);
    CHECK(fut_loop_call_later(pr->loop, delay, count_cb, c,
                              &pr->handles[h]) == 0);
    pr->handle_call[h] = c->id;
  }
  pr->expected[c->id] = true;
}

static void op_cancel_handle(struct prog *pr) {
  int h = next(pr) % MAX_HANDLES;
  fut_handle_t *hd = pr->handles[h];
  if (!hd)
    return;
  /* A handle that already ran stays ran; one that did not never will. */
  if (pr->runs[pr->handle_call[h]] == 0)
    pr->cancelled[pr->handle_call[h]] = true;
  fut_handle_cancel(hd);
  CHECK(fut_handle_cancelled(hd) || pr->runs[pr->handle_call[h]] == 1);
}

static void op_settle(struct prog *pr) {
  fut_t *f = *pick_fut(pr);
  if (!f)
    return;
  bool pending = !fut_done(f);
  int r;
  int op = next(pr) % 4;
  switch (op) {
  case 0:
    r = fut_set_result_i64(f, 7);
    break;
  case 1:
    r = fut_set_exception(f, -EIO, "fuzz %d", 1);
    break;
  case 2:
    r = fut_set_result_bytes(f, "abc", 3);
    break;
  default:
    r = fut_cancel(f, "fuzz") ? 0 : FUT_E_INVALID_STATE;
    break;
  }
  /* Tasks and combinators refuse outside setters; plain futures accept
   * exactly when pending. */
  if (!fut_is_task(f) && r == 0)
    CHECK(pending);
  /* A setter that succeeded finished f; an accepted cancel of a task or
   * combinator only starts its cancellation. */
  if (r == 0 && op != 3)
    CHECK(fut_done(f));
}

static void op_add_cb(struct prog *pr) {
  fut_t *f = *pick_fut(pr);
  struct call *c = f ? new_call(pr) : NULL;
  if (!c)
    return;
  /* At most once: a future dropped while pending never runs its callbacks
   * (as in asyncio), so only the at-most-once check applies. */
  CHECK(fut_add_done_callback(f, done_cb, c) == 0);
}

static void op_combine(struct prog *pr) {
  fut_t *fs[4];
  size_t n = 0;
  for (int i = next(pr) % 4; i >= 0; i--) {
    fut_t *f = *pick_fut(pr);
    if (f)
      fs[n++] = f;
  }
  fut_t *out = NULL;
  int r;
  switch (next(pr) % 4) {
  case 0:
    r = fut_gather(pr->loop, fs, n, next(pr) & 1u, &out);
    break;
  case 1:
    r = n ? fut_wait_for(fs[0], FUT_US(next(pr)), &out) : -EINVAL;
    break;
  case 2:
    r = n ? fut_shield(fs[0], &out) : -EINVAL;
    break;
  default:
    r = fut_wait(pr->loop, fs, n, FUT_WAIT_FIRST_COMPLETED, FUT_US(next(pr)),
                 &out);
    break;
  }
  if (getenv("FUZZ_API_DEBUG"))
    fprintf(stderr, "combine n=%zu r=%d out=%p\n", n, r, (void *)out);
  if (r == 0)
    store_fut(pr, out);
  else
    CHECK(out == NULL);
}

static void op_task(struct prog *pr) {
  fut_t *f = *pick_fut(pr);
  if (!f)
    return;
  fut_t *t = NULL;
  if (getenv("FUZZ_API_DEBUG"))
    fprintf(stderr, "task on %p (done %d)\n", (void *)f, fut_done(f));
  fut_ref(f); /* the task's */
  if (fut_create_task(pr->loop, task_fn, f, NULL, &t) != 0) {
    fut_unref(f);
    CHECK(t == NULL);
    return;
  }
  CHECK(fut_add_done_callback(t, release_arg_cb, f) == 0);
  store_fut(pr, t);
}

static void run_once(struct prog *pr) {
  int r = fut_loop_run_once(pr->loop, 0);
  CHECK(r == 0);
}

static void run_program(struct prog *pr) {
  while (pr->p < pr->end) {
    int op = next(pr) % 12;
    if (getenv("FUZZ_API_DEBUG"))
      fprintf(stderr, "op %d\n", op);
    switch (op) {
    case 0:
      op_call_soon(pr);
      break;
    case 1:
      op_call_later(pr);
      break;
    case 2:
      op_cancel_handle(pr);
      break;
    case 3: {
      fut_t *f = NULL;
      CHECK(fut_new(pr->loop, &f) == 0);
      store_fut(pr, f);
      break;
    }
    case 4:
      op_settle(pr);
      break;
    case 5:
      op_add_cb(pr);
      break;
    case 6:
      op_combine(pr);
      break;
    case 7:
      op_task(pr);
      break;
    case 8: {
      fut_t **slot = pick_fut(pr);
      fut_unref(*slot); /* the loop keeps what it still needs */
      *slot = NULL;
      break;
    }
    case 9: {
      struct call *c = new_call(pr);
      if (c) {
        CHECK(fut_loop_call_soon_threadsafe(pr->loop, count_cb, c) == 0);
        pr->expected[c->id] = true;
      }
      break;
    }
    default:
      run_once(pr);
      break;
    }
  }
}

/* Settles every future the program holds and runs the loop dry (bounded):
 * every callback not cancelled must then have run. */
static void finish(struct prog *pr) {
  for (int round = 0; round < 64; round++) {
    for (int i = 0; i < MAX_FUTS; i++)
      if (pr->futs[i] && !fut_done(pr->futs[i]))
        fut_cancel(pr->futs[i], "end");
    /* Tasks the program no longer holds too, as fut_run does before it
     * closes: done callbacks still queued at close never run. */
    fut_t *tasks[64];
    size_t nt = fut_all_tasks(pr->loop, tasks, 64);
    for (size_t i = 0; i < nt && i < 64; i++)
      fut_cancel(tasks[i], "end"); /* borrowed */
    run_once(pr);
    fut_loop_stats_t st;
    fut_loop_stats(pr->loop, &st);
    if (st.ready == 0 && st.pending_timers == 0 && st.threadsafe == 0 &&
        fut_all_tasks(pr->loop, NULL, 0) == 0) {
      bool all_done = true;
      for (int i = 0; i < MAX_FUTS; i++)
        if (pr->futs[i] && !fut_done(pr->futs[i]))
          all_done = false;
      if (all_done)
        break;
    }
    if (round >= 8)
      CHECK(fut_loop_run_once(pr->loop, FUT_US(300)) == 0);
  }
  for (int i = 0; i < pr->ncalls; i++)
    if (pr->expected[i] && !pr->cancelled[i])
      CHECK(pr->runs[i] == 1);
  for (int h = 0; h < MAX_HANDLES; h++) {
    fut_handle_unref(pr->handles[h]);
    pr->handles[h] = NULL;
  }
  for (int i = 0; i < MAX_FUTS; i++) {
    if (pr->futs[i])
      (void)fut_exception(pr->futs[i], NULL); /* retrieved: no report */
    fut_unref(pr->futs[i]);
    pr->futs[i] = NULL;
  }
  run_once(pr);
  CHECK(fut_loop_close(pr->loop) == 0);
  fut_loop_stats_t st;
  fut_loop_stats(pr->loop, &st);
  if (getenv("FUZZ_API_DEBUG"))
    fprintf(stderr, "after close: %zu futures, %zu handles alive\n",
            st.live_futures, st.live_handles);
  CHECK(st.live_futures == 0);
  CHECK(st.live_handles == 0);
  CHECK(fut_loop_free(pr->loop) == 0);
}

static void quiet_handler(fut_loop_t *loop, const fut_exception_ctx_t *ctx,
                          void *arg) {
  (void)loop;
  (void)ctx;
  (void)arg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct prog pr;
  memset(&pr, 0, sizeof pr);
  CHECK(fut_loop_new(&pr.loop) == 0);
  fut_loop_set_exception_handler(pr.loop, quiet_handler, NULL);
  pr.p = data;
  pr.end = data + (size > 4096 ? 4096 : size);
  run_program(&pr);
  finish(&pr);
  return 0;
}
