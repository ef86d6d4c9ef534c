/* Regression and stress tests from the adversarial review of the executor
 * layer (completion inbox, wrappers, thread pool wake-ups, shutdown, fork).
 * Every wait is bounded; nothing sleeps to synchronise. */
#include "fixture.h"

#include "exec/internal.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

static int job_nop(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  return 0;
}

static int job_add(void *arg, fut_cfuture_t *cf) {
  atomic_fetch_add((atomic_int *)arg, 1);
  return fut_cfuture_set_result_i64(cf, 7);
}

/* Waits (bounded, ~10 s) for pid; kills it on timeout.  Returns its wait
 * status, or -1 when it had to be killed. */
static int wait_child(pid_t pid) {
  for (int i = 0; i < 10000; i++) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid)
      return st;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL); /* polling a child: not synchronisation */
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

/* ---- fork ---------------------------------------------------------------- */

/* Bug: a thread pool used in a forked child hung.  The child has none of
 * the workers, yet the pool still counted them: a submission signalled a
 * "sleeping" worker that does not exist (the job never ran), and freeing
 * the pool waited forever for them to exit.  Now submit fails with
 * FUT_E_FORKED and shutdown and free return at once. */
static void test_threadpool_forked_child_fails_cleanly(void **state) {
  (void)state;
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new(2, &ex), 0);
  fut_cfuture_t *cf = NULL;
  assert_int_equal(fut_executor_submit(ex, job_nop, NULL, &cf), 0);
  assert_int_equal(fut_cfuture_wait(cf, FUT_SEC(10)), 0);
  fut_cfuture_unref(cf);
  assert_true(fut__thread_pool_nthreads(ex) >= 1);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    fut_cfuture_t *c = NULL;
    int err = fut_executor_submit(ex, job_nop, NULL, &c);
    if (err != FUT_E_FORKED || c != NULL)
      _exit(2);
    if (!strstr(fut_last_error(), "fork"))
      _exit(3);
    if (!fut__thread_pool_forked(ex))
      _exit(4);
    if (fut_executor_shutdown(ex, true, true, FUT_FOREVER) != 0)
      _exit(5);
    fut_executor_free(ex);
    _exit(0);
  }
  int st = wait_child(pid);
  assert_int_not_equal(st, -1); /* it hung */
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  assert_false(fut__thread_pool_forked(ex));
  assert_int_equal(fut_executor_submit(ex, job_nop, NULL, &cf), 0);
  assert_int_equal(fut_cfuture_wait(cf, FUT_SEC(10)), 0);
  fut_cfuture_unref(cf);
  fut_executor_free(ex);
}

/* The loop's default executor carried into a child by fut_loop_fork is
 * replaced by a fresh pool instead of queueing jobs nobody runs; closing
 * the loop in a child that never used it does not hang either. */
static void test_loop_forked_child_default_executor_restarts(void **state) {
  (void)state;
  fut_loop_t *loop = NULL;
  assert_int_equal(fut_loop_new(&loop), 0);
  atomic_int n;
  atomic_init(&n, 0);
  fut_t *f = NULL;
  assert_int_equal(fut_run_in_executor(loop, NULL, job_add, &n, &f), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  fut_unref(f);
  fflush(NULL);
  for (int mode = 0; mode < 2; mode++) {
    /* TSan cannot start threads after a multi-threaded fork. */
    if (mode == 0 && UNDER_TSAN)
      continue;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      if (fut_loop_fork(loop) != 0)
        _exit(2);
      if (mode == 0) {
        fut_t *g = NULL;
        if (fut_run_in_executor(loop, NULL, job_add, &n, &g) != 0)
          _exit(3);
        if (fut_loop_run_until_complete(loop, g) != 0)
          _exit(4);
        int64_t v = 0;
        if (fut_result_i64(g, &v) != 0 || v != 7)
          _exit(5);
        fut_unref(g);
        if (fut_loop_shutdown_default_executor(loop, FUT_SEC(10)) != 0)
          _exit(6);
      }
      if (fut_loop_free(loop) != 0)
        _exit(7);
      _exit(0);
    }
    int st = wait_child(pid);
    assert_int_not_equal(st, -1);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
  }
  assert_int_equal(fut_loop_shutdown_default_executor(loop, FUT_SEC(10)), 0);
  fx_loop_free_clean(loop);
}

static atomic_int worker_tid;

static int job_note_tid(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  atomic_store(&worker_tid, (int)gettid());
  return 0;
}

/* Whether thread tid of this process is blocked in futex(2). */
static bool blocked_in_futex(int tid) {
  char path[64], buf[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
  FILE *f = fopen(path, "r");
  if (!f)
    return false;
  bool r = fgets(buf, sizeof buf, f) && atoi(buf) == SYS_futex;
  fclose(f);
  return r;
}

/* Bug: a fork while a worker was queueing a drain (inside ring: the inbox
 * lock held, `scheduled` set) left the child's inbox with that lock held
 * forever and `scheduled` stuck: after fut_loop_fork, no completion was
 * ever announced (the job's future never finished) and closing the loop
 * deadlocked on the lock.  The inbox is now re-armed in the child. */
static void test_inbox_fork_while_worker_rings(void **state) {
  (void)state;
  fut_loop_t *loop = NULL;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  atomic_store(&worker_tid, 0);
  /* Holding the thread-safe queue's lock parks the completing worker in
   * ring, inside the inbox lock. */
  pthread_mutex_lock(&loop->door.lock);
  fut_t *f = NULL;
  assert_int_equal(fut_run_in_executor(loop, ex, job_note_tid, NULL, &f), 0);
  uint64_t end = fut__now() + FUT_SEC(10);
  while ((!atomic_load(&worker_tid) ||
          !blocked_in_futex(atomic_load(&worker_tid))) &&
         fut__now() < end)
    sched_yield();
  assert_true(blocked_in_futex(atomic_load(&worker_tid)));
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (fut_loop_fork(loop) != 0)
      _exit(2);
    if (!UNDER_TSAN) { /* TSan: no threads after a multi-threaded fork */
      atomic_int n;
      atomic_init(&n, 0);
      fut_t *g = NULL;
      if (fut_run_in_executor(loop, NULL, job_add, &n, &g) != 0)
        _exit(3);
      for (int i = 0; i < 40 && !fut_done(g); i++)
        fut_loop_run_once(loop, FUT_MS(50));
      if (!fut_done(g))
        _exit(4);
      fut_unref(g);
      if (fut_loop_shutdown_default_executor(loop, FUT_SEC(10)) != 0)
        _exit(5);
    }
    fut_loop_free(loop); /* deadlocked on the inbox lock */
    _exit(0);
  }
  pthread_mutex_unlock(&loop->door.lock);
  int st = wait_child(pid);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  fut_unref(f);
  fut_executor_free(ex);
  fx_loop_free_clean(loop);
  assert_int_not_equal(st, -1); /* it hung */
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- replacing the default executor -------------------------------------- */

struct blocker {
  atomic_bool release;  /* the test lets the job finish */
  atomic_bool started;  /* the job is running */
  atomic_bool finished; /* the job returned */
};

/* Waits (bounded, 5 s) for the test to release it. */
static int job_block(void *arg, fut_cfuture_t *cf) {
  (void)cf;
  struct blocker *b = arg;
  atomic_store(&b->started, true);
  uint64_t end = fut__now() + FUT_SEC(5);
  while (!atomic_load(&b->release) && fut__now() < end)
    sched_yield();
  atomic_store(&b->finished, true);
  return 0;
}

/* Bug: fut_loop_set_default_executor freed the old default pool with the
 * loop's last reference, which shut it down with wait: the loop thread
 * blocked until the old pool's jobs were done (a deadlock if one of them
 * waits for the loop).  Now the old pool is let go as a dropped Python
 * executor: its jobs finish on their threads, the call returns at once. */
static void test_executor_set_default_does_not_wait_for_old_jobs(
    void **state) {
  (void)state;
  fut_loop_t *loop = NULL;
  assert_int_equal(fut_loop_new(&loop), 0);
  struct blocker b;
  atomic_init(&b.release, false);
  atomic_init(&b.started, false);
  atomic_init(&b.finished, false);
  fut_t *f = NULL;
  assert_int_equal(fut_run_in_executor(loop, NULL, job_block, &b, &f), 0);
  uint64_t end = fut__now() + FUT_SEC(10);
  while (!atomic_load(&b.started) && fut__now() < end)
    sched_yield();
  assert_true(atomic_load(&b.started));
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  assert_int_equal(fut_loop_set_default_executor(loop, ex), 0);
  assert_false(atomic_load(&b.finished)); /* did not wait for the job */
  atomic_store(&b.release, true);
  /* The old pool's job still completes into the loop. */
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  assert_true(fut_done(f) && !fut_cancelled(f));
  fut_unref(f);
  /* And the new one serves. */
  atomic_int n;
  atomic_init(&n, 0);
  assert_int_equal(fut_run_in_executor(loop, NULL, job_add, &n, &f), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  fut_unref(f);
  assert_int_equal(atomic_load(&n), 1);
  fut_executor_free(ex);
  assert_int_equal(fut_loop_shutdown_default_executor(loop, FUT_SEC(10)), 0);
  fx_loop_free_clean(loop);
}

/* ---- inbox stress -------------------------------------------------------- */

/* Loops closed and freed with fast-path and generic jobs in flight, over
 * and over, while the pool's workers keep completing into them: no
 * use-after-free of a wrapper, the inbox or the loop (ASan/TSan). */
static void test_inbox_close_with_jobs_in_flight_stress(void **state) {
  (void)state;
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new(3, &ex), 0);
  atomic_int n;
  atomic_init(&n, 0);
  int submitted = 0;
  for (int round = 0; round < 200; round++) {
    fut_loop_t *loop = NULL;
    assert_int_equal(fut_loop_new(&loop), 0);
    fut_t *fs[24];
    fut_cfuture_t *cfs[8];
    for (int i = 0; i < 16; i++) {
      assert_int_equal(fut_run_in_executor(loop, ex, job_add, &n, &fs[i]),
                       0);
      submitted++;
    }
    for (int i = 0; i < 8; i++) {
      assert_int_equal(fut_executor_submit(ex, job_add, &n, &cfs[i]), 0);
      assert_int_equal(fut_wrap_future(loop, cfs[i], &fs[16 + i]), 0);
      submitted++;
    }
    /* Let a varying part of them come back before the close. */
    for (int k = 0; k < round % 4; k++)
      fut_loop_run_once(loop, 0);
    if (round % 3 == 0)
      fut_cancel(fs[round % 24], NULL);
    for (int i = 0; i < 24; i++)
      fut_unref(fs[i]);
    if (round % 2) {
      assert_int_equal(fut_loop_free(loop), 0);
      for (int i = 0; i < 8; i++)
        fut_cfuture_unref(cfs[i]);
    } else {
      for (int i = 0; i < 8; i++)
        fut_cfuture_unref(cfs[i]);
      assert_int_equal(fut_loop_close(loop), 0);
      assert_int_equal(fut_loop_free(loop), 0);
    }
  }
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_SEC(20)), 0);
  fut_executor_free(ex);
  /* Cancelled ones may not have run; the others all did. */
  assert_true(atomic_load(&n) <= submitted);
  assert_true(atomic_load(&n) >= submitted - 200);
}

struct pusher {
  fut_cfuture_t **cfs;
  int from, to;
};

/* Completes its share of the cfutures, in a thread of its own. */
static void *push_thread(void *arg) {
  struct pusher *p = arg;
  for (int i = p->from; i < p->to; i++)
    fut_cfuture_set_result_i64(p->cfs[i], i);
  return NULL;
}

/* Several threads complete wrapped cfutures at once while the loop drains
 * and reuses wrapper blocks: every outcome arrives exactly once and right
 * (a wrapper reused while a completer still pushes would lose or mix
 * them). */
static void test_inbox_many_completers_deliver_each_once(void **state) {
  (void)state;
  enum { N = 2000, T = 4 };
  fut_loop_t *loop = NULL;
  assert_int_equal(fut_loop_new(&loop), 0);
  for (int round = 0; round < 5; round++) {
    static fut_cfuture_t *cfs[N];
    static fut_t *fs[N];
    for (int i = 0; i < N; i++) {
      assert_int_equal(fut_cfuture_new(&cfs[i]), 0);
      assert_int_equal(fut_wrap_future(loop, cfs[i], &fs[i]), 0);
    }
    pthread_t th[T];
    struct pusher ps[T];
    for (int t = 0; t < T; t++) {
      ps[t] = (struct pusher){cfs, t * N / T, (t + 1) * N / T};
      assert_int_equal(pthread_create(&th[t], NULL, push_thread, &ps[t]), 0);
    }
    /* Drains race the pushes; wrappers freed here are reused below. */
    int done = 0;
    uint64_t end = fut__now() + FUT_SEC(20);
    while (done < N && fut__now() < end) {
      fut_loop_run_once(loop, FUT_MS(10));
      for (int i = 0; i < N; i++)
        if (fs[i] && fut_done(fs[i])) {
          int64_t v = -1;
          assert_int_equal(fut_result_i64(fs[i], &v), 0);
          assert_int_equal(v, i);
          fut_unref(fs[i]);
          fs[i] = NULL;
          done++;
        }
    }
    for (int t = 0; t < T; t++)
      pthread_join(th[t], NULL);
    assert_int_equal(done, N);
    for (int i = 0; i < N; i++)
      fut_cfuture_unref(cfs[i]);
  }
  fx_loop_free_clean(loop);
}

/* Cancelling a fast-path job races its start in a worker: each ends either
 * cancelled (its job never ran) or with its result; none is lost. */
static void test_inbox_cancel_races_start(void **state) {
  (void)state;
  enum { N = 3000 };
  fut_loop_t *loop = NULL;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new(2, &ex), 0);
  atomic_int ran;
  atomic_init(&ran, 0);
  static fut_t *fs[N];
  for (int i = 0; i < N; i++) {
    assert_int_equal(fut_run_in_executor(loop, ex, job_add, &ran, &fs[i]),
                     0);
    if (i % 2)
      fut_cancel(fs[i], NULL);
    if (i % 97 == 0)
      fut_loop_run_once(loop, 0);
  }
  int cancelled = 0, ok = 0;
  uint64_t end = fut__now() + FUT_SEC(20);
  for (int i = 0; i < N; i++) {
    while (!fut_done(fs[i]) && fut__now() < end)
      fut_loop_run_once(loop, FUT_MS(10));
    assert_true(fut_done(fs[i]));
    if (fut_cancelled(fs[i])) {
      cancelled++;
    } else {
      int64_t v = 0;
      assert_int_equal(fut_result_i64(fs[i], &v), 0);
      assert_int_equal(v, 7);
      ok++;
    }
  }
  assert_int_equal(cancelled + ok, N);
  assert_true(cancelled >= N / 2);
  assert_true(atomic_load(&ran) >= ok);
  assert_true(atomic_load(&ran) <= N);
  /* Every item came home: the wrappers are all freed once unreferenced. */
  for (int i = 0; i < N; i++)
    fut_unref(fs[i]);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_SEC(20)), 0);
  /* Items of cancelled jobs come back through the inbox too. */
  while (fut_loop_run_once(loop, 0) == 0) {
    fut_loop_stats_t st;
    fut_loop_stats(loop, &st);
    if (st.live_futures == 0 || fut__now() > end)
      break;
  }
  fut_executor_free(ex);
  fx_loop_free_clean(loop);
}

/* Makes the library's next allocation fail: in a worker, that is the
 * loop's thread-safe queue growing for the completion's doorbell. */
static int job_then_oom(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  fut__alloc_fail_after(1, false);
  return 0;
}

/* Bug: when the completing thread could not queue the drain (the loop's
 * thread-safe queue failed to grow: out of memory), the completion stayed
 * in the inbox with nobody told; the loop slept in epoll_wait forever (or
 * until an unrelated completion).  Now the completer pokes the loop's
 * eventfd, which allocates nothing, and the loop drains an inbox with
 * entries but no drain queued before it blocks. */
static void test_inbox_ring_out_of_memory_not_lost(void **state) {
  (void)state;
  for (int path = 0; path < 2; path++) {
    fut_loop_t *loop = NULL;
    assert_int_equal(fut_loop_new(&loop), 0);
    fut_executor_t *ex = NULL;
    assert_int_equal(fut_thread_pool_new(1, &ex), 0);
    fut_t *f = NULL;
    fut_cfuture_t *cf = NULL;
    /* Warm up: the loop's lazy allocations are made, and after one drain
     * the thread-safe queue is empty again (swapped with a spare of
     * capacity 0), so the next doorbell must allocate. */
    assert_int_equal(fut_run_in_executor(loop, ex, job_nop, NULL, &f), 0);
    assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
    fut_unref(f);
    if (path == 0) {
      assert_int_equal(fut_run_in_executor(loop, ex, job_then_oom, NULL, &f),
                       0);
    } else {
      assert_int_equal(fut_executor_submit(ex, job_then_oom, NULL, &cf), 0);
      assert_int_equal(fut_wrap_future(loop, cf, &f), 0);
    }
    /* Should the loop thread take the failed allocation instead, its
     * run_once fails once and the doorbell works: nothing to check then,
     * but nothing must hang either. */
    for (int i = 0; i < 100 && !fut_done(f); i++) {
      int err = fut_loop_run_once(loop, FUT_MS(50));
      assert_true(err == 0 || err == -ENOMEM);
    }
    fut__alloc_fail_after(0, false);
    assert_true(fut_done(f));
    assert_int_equal(fut_result(f, NULL), 0);
    fut_unref(f);
    fut_cfuture_unref(cf);
    assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_SEC(10)), 0);
    fut_executor_free(ex);
    fx_loop_free_clean(loop);
  }
}

/* ---- thread pool lifetimes and wake-ups ---------------------------------- */

struct submitter {
  fut_executor_t *ex;
  atomic_int *count;
  int n;
  int failures;
};

static void *submit_thread(void *arg) {
  struct submitter *s = arg;
  for (int i = 0; i < s->n; i++) {
    fut_cfuture_t *cf = NULL;
    if (fut_executor_submit(s->ex, job_add, s->count, &cf) != 0) {
      s->failures++;
      continue;
    }
    /* Waiting on every 8th: idle periods between bursts, so workers go
     * to sleep and must be woken (a lost wake-up times out here). */
    if (i % 8 == 7 && fut_cfuture_wait(cf, FUT_SEC(10)) != 0)
      s->failures++;
    fut_cfuture_unref(cf);
  }
  return NULL;
}

/* Bursts from several submitters while workers spin, sleep and pass the
 * wake-up on: every job runs, none waits for a worker that never comes. */
static void test_threadpool_no_lost_wakeup_stress(void **state) {
  (void)state;
  enum { T = 3, PER = 3000 };
  for (size_t max = 1; max <= 4; max += 3) {
    fut_executor_t *ex = NULL;
    assert_int_equal(fut_thread_pool_new(max, &ex), 0);
    atomic_int count;
    atomic_init(&count, 0);
    pthread_t th[T];
    struct submitter s[T];
    for (int t = 0; t < T; t++) {
      s[t] = (struct submitter){ex, &count, PER, 0};
      assert_int_equal(pthread_create(&th[t], NULL, submit_thread, &s[t]),
                       0);
    }
    for (int t = 0; t < T; t++) {
      pthread_join(th[t], NULL);
      assert_int_equal(s[t].failures, 0);
    }
    assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_SEC(20)), 0);
    assert_int_equal(atomic_load(&count), T * PER);
    fut_executor_free(ex);
  }
}

static _Atomic(fut_executor_t *) self_pool;
static atomic_bool test_dropped; /* the test let go of its reference */

/* Drops the last reference to its own pool, from a worker, once the test
 * (which must hold one while it submits) has dropped its own. */
static int job_free_own_pool(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  uint64_t end = fut__now() + FUT_SEC(10);
  while (!atomic_load(&test_dropped) && fut__now() < end)
    sched_yield();
  fut_executor_free(atomic_exchange(&self_pool, NULL));
  return 0;
}

static void free_pool_cb(fut_cfuture_t *cf, void *arg) {
  (void)cf;
  fut_executor_free(arg);
}

/* A pool freed by its last reference from inside one of its own jobs, or
 * from a completion callback running in its worker, neither deadlocks nor
 * frees memory the worker still uses; queued jobs still finish. */
static void test_threadpool_freed_from_own_job_or_callback(void **state) {
  (void)state;
  for (int round = 0; round < 50; round++) {
    fut_executor_t *ex = NULL;
    assert_int_equal(fut_thread_pool_new(2, &ex), 0);
    atomic_int n;
    atomic_init(&n, 0);
    fut_cfuture_t *cfs[4];
    for (int i = 0; i < 3; i++)
      assert_int_equal(fut_executor_submit(ex, job_add, &n, &cfs[i]), 0);
    if (round % 2) {
      atomic_store(&test_dropped, false);
      atomic_store(&self_pool, fut_executor_ref(ex));
      assert_int_equal(
          fut_executor_submit(ex, job_free_own_pool, NULL, &cfs[3]), 0);
      fut_executor_free(ex); /* not the last: the job holds one */
      atomic_store(&test_dropped, true);
    } else {
      assert_int_equal(fut_executor_submit(ex, job_nop, NULL, &cfs[3]), 0);
      /* Takes over the test's reference; may run here at once. */
      assert_int_equal(fut_cfuture_add_done_callback(cfs[3], free_pool_cb,
                                                     ex), 0);
    }
    for (int i = 0; i < 4; i++) {
      assert_int_equal(fut_cfuture_wait(cfs[i], FUT_SEC(10)), 0);
      fut_cfuture_unref(cfs[i]);
    }
    assert_int_equal(atomic_load(&n), 3);
  }
}

/* shutdown(wait=false) then free while jobs run and more are queued: the
 * queued ones still run, the last worker out frees the pool. */
static void test_threadpool_shutdown_nowait_free_while_running(void **state) {
  (void)state;
  for (int round = 0; round < 100; round++) {
    fut_executor_t *ex = NULL;
    assert_int_equal(fut_thread_pool_new(1 + round % 3, &ex), 0);
    atomic_int n;
    atomic_init(&n, 0);
    fut_cfuture_t *cfs[16];
    for (int i = 0; i < 16; i++)
      assert_int_equal(fut_executor_submit(ex, job_add, &n, &cfs[i]), 0);
    assert_int_equal(fut_executor_shutdown(ex, false, round % 4 == 0, 0), 0);
    fut_executor_free(ex);
    int ran = 0;
    for (int i = 0; i < 16; i++) {
      assert_int_equal(fut_cfuture_wait(cfs[i], FUT_SEC(10)), 0);
      ran += !fut_cfuture_cancelled(cfs[i]);
      fut_cfuture_unref(cfs[i]);
    }
    assert_int_equal(atomic_load(&n), ran);
    if (round % 4)
      assert_int_equal(ran, 16);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_threadpool_forked_child_fails_cleanly),
      cmocka_unit_test(test_loop_forked_child_default_executor_restarts),
      cmocka_unit_test(test_inbox_fork_while_worker_rings),
      cmocka_unit_test(test_executor_set_default_does_not_wait_for_old_jobs),
      cmocka_unit_test(test_inbox_close_with_jobs_in_flight_stress),
      cmocka_unit_test(test_inbox_many_completers_deliver_each_once),
      cmocka_unit_test(test_inbox_cancel_races_start),
      cmocka_unit_test(test_inbox_ring_out_of_memory_not_lost),
      cmocka_unit_test(test_threadpool_no_lost_wakeup_stress),
      cmocka_unit_test(test_threadpool_freed_from_own_job_or_callback),
      cmocka_unit_test(test_threadpool_shutdown_nowait_free_while_running),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
