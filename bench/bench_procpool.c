/* S8: 20,000 tiny jobs through a process pool (jobs/s, µs per job), with
 * completion through the pool-level callback and through cfutures.
 * S8': the demo's cpu_bound, sum(i*i for i in range(10**7)) with an exact
 * 128-bit sum, inline vs in the pool (ns per term).
 *
 * Usage: bench_procpool [jobs] [workers]   (defaults 20000, ncpu) */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "future.h"

__extension__ typedef unsigned __int128 u128;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int tiny(const void *arg, size_t len, fut_buf_t *out) {
  return fut_buf_append(out, arg, len);
}

static int tiny_bytes(const void *data, size_t len, void **out,
                      size_t *out_len) {
  void *r = malloc(len ? len : 1);
  if (!r)
    return -1;
  memcpy(r, data, len);
  *out = r;
  *out_len = len;
  return 0;
}

static u128 sum_squares(uint64_t n) {
  u128 s = 0;
  for (uint64_t i = 0; i < n; i++)
    s += (u128)i * i;
  return s;
}

/* Returns the sum (16 bytes) and the worker's own time for it (8). */
static int cpu_bound(const void *data, size_t len, void **out,
                     size_t *out_len) {
  uint64_t n;
  if (len != sizeof n)
    return -1;
  memcpy(&n, data, sizeof n);
  uint64_t t0 = now_ns();
  u128 s = sum_squares(n);
  uint64_t dt = now_ns() - t0;
  char *r = malloc(sizeof s + sizeof dt);
  if (!r)
    return -1;
  memcpy(r, &s, sizeof s);
  memcpy(r + sizeof s, &dt, sizeof dt);
  *out = r;
  *out_len = sizeof s + sizeof dt;
  return 0;
}

static void print_u128(u128 v) {
  char buf[48];
  int i = (int)sizeof buf - 1;
  buf[i] = '\0';
  do {
    buf[--i] = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v);
  fputs(buf + i, stdout);
}

struct counter {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  long left;
  atomic_long errors;
};

static void done_cb(void *ud, int err, void *data, size_t len,
                    const char *msg) {
  (void)len;
  (void)msg;
  struct counter *c = ud;
  free(data);
  if (err)
    atomic_fetch_add(&c->errors, 1);
  pthread_mutex_lock(&c->lock);
  if (--c->left == 0)
    pthread_cond_signal(&c->cv);
  pthread_mutex_unlock(&c->lock);
}

struct loop_count {
  fut_loop_t *loop;
  long left;
};

static void loop_done(fut_t *f, void *arg) {
  struct loop_count *c = arg;
  (void)fut_result(f, NULL);
  if (--c->left == 0)
    fut_loop_stop(c->loop);
}

int main(int argc, char **argv) {
  long jobs = argc > 1 ? atol(argv[1]) : bench_quick() ? 2000 : 20000;
  unsigned workers = argc > 2 ? (unsigned)atoi(argv[2]) : 0;

  fut_process_pool_opts_t o;
  fut_process_pool_opts_init(&o);
  o.max_workers = workers;
  fut_process_pool_t *p;
  uint64_t t0 = now_ns();
  int err = fut_process_pool_create(&o, &p);
  if (err) {
    fprintf(stderr, "fut_process_pool_create: %s\n", fut_last_error());
    return 1;
  }
  printf("pool start (fork server exec)   %8.2f ms\n",
         (double)(now_ns() - t0) / 1e6);

  /* Warm up: workers forked, pages touched. */
  struct counter c = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0,
                      0};
  for (int round = 0; round < 2; round++) {
    long n = round == 0 ? 1000 : jobs;
    c.left = n;
    int64_t v = 42;
    t0 = now_ns();
    for (long i = 0; i < n; i++)
      if (fut_process_pool_submit(p, tiny, &v, sizeof v, NULL, done_cb, &c)) {
        fprintf(stderr, "submit: %s\n", fut_last_error());
        return 1;
      }
    pthread_mutex_lock(&c.lock);
    while (c.left > 0)
      pthread_cond_wait(&c.cv, &c.lock);
    pthread_mutex_unlock(&c.lock);
    uint64_t dt = now_ns() - t0;
    if (round == 1)
      printf("S8  %ld tiny jobs, callbacks       %8.2f µs/job  %9.0f jobs/s "
             "(errors %ld)\n",
             n, (double)dt / 1e3 / (double)n, (double)n * 1e9 / (double)dt,
             atomic_load(&c.errors));
    if (round == 1)
      bench_emit("S8 tiny jobs via a process pool, callbacks", NULL, n,
                 (double)dt / (double)n);
  }
  fut_process_pool_destroy(p);

  /* The same through the executor interface: one cfuture per job. */
  fut_executor_t *ex;
  if (fut_process_pool_new(workers, &ex)) {
    fprintf(stderr, "fut_process_pool_new: %s\n", fut_last_error());
    return 1;
  }
  fut_cfuture_t **cfs = malloc(sizeof *cfs * (size_t)jobs);
  int64_t v = 42;
  for (int round = 0; round < 2; round++) {
    long n = round == 0 ? 1000 : jobs;
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
      fut_job_t job = fut_job_bytes(tiny_bytes, &v, sizeof v);
      if (fut_executor_submit_job(ex, &job, &cfs[i])) {
        fprintf(stderr, "submit: %s\n", fut_last_error());
        return 1;
      }
    }
    long bad = 0;
    for (long i = 0; i < n; i++) {
      if (fut_cfuture_result(cfs[i], FUT_FOREVER, NULL))
        bad++;
      fut_cfuture_unref(cfs[i]);
    }
    uint64_t dt = now_ns() - t0;
    if (round == 1)
      printf("S8  %ld tiny jobs, cfutures        %8.2f µs/job  %9.0f jobs/s "
             "(errors %ld)\n",
             n, (double)dt / 1e3 / (double)n, (double)n * 1e9 / (double)dt,
             bad);
    if (round == 1)
      bench_emit("S8 tiny jobs via a process pool, cfutures", NULL, n,
                 (double)dt / (double)n);
  }
  free(cfs);

  /* And with completion on a loop: run_in_executor, a done callback per
   * loop future, the loop stopping after the last. */
  fut_loop_t *loop;
  if (fut_loop_new(&loop))
    return 1;
  for (int round = 0; round < 2; round++) {
    long n = round == 0 ? 1000 : jobs;
    struct loop_count lc = {loop, n};
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
      fut_job_t job = fut_job_bytes(tiny_bytes, &v, sizeof v);
      fut_t *f;
      if (fut_run_in_executor_job(loop, ex, &job, &f) ||
          fut_add_done_callback(f, loop_done, &lc)) {
        fprintf(stderr, "run_in_executor: %s\n", fut_last_error());
        return 1;
      }
      fut_unref(f);
    }
    fut_loop_run_forever(loop);
    uint64_t dt = now_ns() - t0;
    if (round == 1)
      printf("S8  %ld tiny jobs, loop futures    %8.2f µs/job  %9.0f jobs/s\n",
             n, (double)dt / 1e3 / (double)n, (double)n * 1e9 / (double)dt);
    if (round == 1)
      bench_emit("S8 tiny jobs via a process pool, loop futures", NULL, n,
                 (double)dt / (double)n);
  }

  /* S8': cpu_bound inline and in the pool. */
  uint64_t n = 10000000;
  t0 = now_ns();
  u128 inl = sum_squares(n);
  uint64_t dt_inline = now_ns() - t0;
  /* Best of 3 each way, the machine being shared. */
  for (int k = 1; k < 3; k++) {
    t0 = now_ns();
    u128 again = sum_squares(n);
    uint64_t dt = now_ns() - t0;
    if (dt < dt_inline)
      dt_inline = dt;
    if (again != inl)
      return 1;
  }
  uint64_t dt_pool = UINT64_MAX, dt_worker = UINT64_MAX;
  u128 pooled = 0;
  for (int k = 0; k < 3; k++) {
    fut_job_t job = fut_job_bytes(cpu_bound, &n, sizeof n);
    fut_cfuture_t *cf;
    t0 = now_ns();
    if (fut_executor_submit_job(ex, &job, &cf))
      return 1;
    const void *d;
    size_t len;
    if (fut_cfuture_result_bytes(cf, FUT_FOREVER, &d, &len) || len != 24)
      return 1;
    uint64_t dt = now_ns() - t0, dw;
    memcpy(&pooled, d, sizeof pooled);
    memcpy(&dw, (const char *)d + sizeof pooled, sizeof dw);
    fut_cfuture_unref(cf);
    if (dt < dt_pool)
      dt_pool = dt;
    if (dw < dt_worker)
      dt_worker = dw;
  }
  printf("S8' sum(i*i, i < 10**7) inline   %8.3f ns/term  = ",
         (double)dt_inline / (double)n);
  print_u128(inl);
  printf("\nS8' sum(i*i, i < 10**7) in pool  %8.3f ns/term  = ",
         (double)dt_pool / (double)n);
  print_u128(pooled);
  printf("%s\n", pooled == inl ? "" : "  MISMATCH");
  printf("S8' (of which the loop in the worker) %8.3f ns/term\n",
         (double)dt_worker / (double)n);
  bench_emit("S8' sum(i*i, i < 10**7) per term", "C loop inline", (long)n,
             (double)dt_inline / (double)n);
  bench_emit("S8' sum(i*i, i < 10**7) per term", "libfuture process pool",
             (long)n, (double)dt_pool / (double)n);
  fut_executor_free(ex);
  fut_loop_close(loop);
  fut_loop_free(loop);
  return pooled == inl ? 0 : 1;
}
