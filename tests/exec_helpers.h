/* Helpers for the executor tests, on top of the shared fixture: a gate
 * jobs block on (no sleeps as synchronisation), a thread counter, a
 * bounded wait for a forked child, and a counting job. */
#ifndef EXEC_HELPERS_H
#define EXEC_HELPERS_H

#include "fixture.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ThreadSanitizer cannot start threads in the child of a multi-threaded
 * fork: the fork tests skip that part under it. */
#if defined(__has_feature)
#define EXEC_HAS_FEATURE(x) __has_feature(x)
#else
#define EXEC_HAS_FEATURE(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || EXEC_HAS_FEATURE(thread_sanitizer)
#define UNDER_TSAN 1
#else
#define UNDER_TSAN 0
#endif

/* A gate: jobs wait until it opens; the test waits until n jobs arrived. */
struct gate {
  pthread_mutex_t m;
  pthread_cond_t c;
  int open;    /* guarded by m */
  int arrived; /* guarded by m: jobs that reached the gate */
  int passed;  /* guarded by m: jobs that went through */
};

static inline void gate_init(struct gate *g) {
  pthread_mutex_init(&g->m, NULL);
  pthread_cond_init(&g->c, NULL);
  g->open = g->arrived = g->passed = 0;
}

static inline void gate_destroy(struct gate *g) {
  pthread_cond_destroy(&g->c);
  pthread_mutex_destroy(&g->m);
}

/* Called by jobs: announce arrival, wait for the gate to open. */
static inline void gate_pass(struct gate *g) {
  pthread_mutex_lock(&g->m);
  g->arrived++;
  pthread_cond_broadcast(&g->c);
  while (!g->open)
    pthread_cond_wait(&g->c, &g->m);
  g->passed++;
  pthread_mutex_unlock(&g->m);
}

static inline void gate_open(struct gate *g) {
  pthread_mutex_lock(&g->m);
  g->open = 1;
  pthread_cond_broadcast(&g->c);
  pthread_mutex_unlock(&g->m);
}

/* Test side: wait until n jobs arrived. */
static inline void gate_wait_arrived(struct gate *g, int n) {
  pthread_mutex_lock(&g->m);
  while (g->arrived < n)
    pthread_cond_wait(&g->c, &g->m);
  pthread_mutex_unlock(&g->m);
}

static inline int gate_count(struct gate *g, int *field) {
  pthread_mutex_lock(&g->m);
  int v = *field;
  pthread_mutex_unlock(&g->m);
  return v;
}

/* Entries in /proc/self/task: the process's threads. */
static inline int count_threads(void) {
  return fx_count_dir("/proc/self/task");
}

/* A joined thread may linger in /proc for a moment while the kernel reaps
 * it: poll (bounded, 5 s) until the count is back to baseline. */
static inline int threads_settle(int baseline) {
  int n = count_threads();
  for (int i = 0; i < 5000 && n != baseline; i++) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    n = count_threads();
  }
  return n;
}

static inline void *warm_noop(void *arg) {
  return arg;
}

/* Sanitizer runtimes start helper threads on the first pthread_create:
 * start them before any baseline is taken. */
static inline void warm_up_threads(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, warm_noop, NULL) == 0)
    pthread_join(t, NULL);
  /* Wait (bounded) until the joined thread left /proc: 20 equal samples. */
  int last = count_threads(), same = 0;
  for (int i = 0; i < 1000 && same < 20; i++) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    int n = count_threads();
    same = n == last ? same + 1 : 0;
    last = n;
  }
}

/* A fixture for tests that start threads: each test must leave the
 * thread count where it found it. */
__attribute__((unused)) static int baseline;

static inline int threads_setup(void **state) {
  (void)state;
  baseline = count_threads();
  return 0;
}

static inline int threads_teardown(void **state) {
  (void)state;
  assert_int_equal(threads_settle(baseline), baseline);
  return 0;
}

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Waits (bounded, ~10 s) for pid; kills it on timeout.  Returns its wait
 * status, or -1 when it had to be killed. */
static inline int wait_child(pid_t pid) {
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

/* Counts a run in *(atomic_int *)arg; the result is 7. */
static inline int job_add(void *arg, fut_cfuture_t *cf) {
  atomic_fetch_add((atomic_int *)arg, 1);
  return fut_cfuture_set_result_i64(cf, 7);
}

#endif
