/* 100,000 concurrent tasks that each sleep and await a future, with the
 * memory cost of a suspended task (RSS delta / tasks) printed.  Scaled
 * down under valgrind and TSan, where the point is correctness, not
 * scale. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop/internal.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif
/* TSan counts each fiber as a thread and allows about 8,000. */
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

static long rss_pages(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, rss = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &rss) != 2)
      rss = 0;
    fclose(f);
  }
  return rss;
}

struct scale {
  fut_t *gate;    /* resolved once every task waits on it */
  size_t waiting; /* tasks past their sleep, awaiting the gate */
  size_t finished;
};

static struct scale sc;

static int worker(void *arg) {
  int64_t i = (int64_t)(intptr_t)arg;
  int rc = fut_sleep(FUT_US(100 + (uint64_t)(i % 1000)));
  if (rc)
    return rc;
  sc.waiting++;
  int64_t g;
  if ((rc = fut_await_i64(sc.gate, &g)))
    return rc;
  sc.finished++;
  return fut_task_return_i64(g + i);
}

static void test_task_100k_sleep_and_await(void **state) {
  (void)state;
  const size_t n = RUNNING_ON_VALGRIND ? 2000 : UNDER_TSAN ? 4000 : 100000;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  memset(&sc, 0, sizeof sc);
  assert_int_equal(fut_new(loop, &sc.gate), 0);
  fut_t **ts = calloc(n, sizeof *ts);
  assert_non_null(ts);
  long rss0 = rss_pages();
  for (size_t i = 0; i < n; i++)
    assert_int_equal(
        fut_create_task(loop, worker, (void *)(intptr_t)i, NULL, &ts[i]), 0);
  while (sc.waiting < n)
    assert_int_equal(fut_loop_run_once(loop, UINT64_MAX), 0);
  long rss1 = rss_pages();
  long page = sysconf(_SC_PAGESIZE);
  double per_task = (double)(rss1 - rss0) * (double)page / (double)n;
  printf("[ FIGURE   ] %zu suspended tasks: RSS +%.1f MiB, %.0f bytes "
         "(%.2f pages) per task, default stack %u KiB\n",
         n, (double)(rss1 - rss0) * (double)page / 1048576.0, per_task,
         per_task / (double)page, FUT_TASK_DEFAULT_STACK / 1024);
  assert_int_equal(fut_all_tasks(loop, NULL, 0), n);
  assert_int_equal(sc.finished, 0);
  fut_set_result_i64(sc.gate, 1000000);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(fut_loop_run_until_complete(loop, ts[i]), 0);
    int64_t v;
    assert_int_equal(fut_result_i64(ts[i], &v), 0);
    assert_int_equal(v, 1000000 + (int64_t)i);
    fut_unref(ts[i]);
  }
  assert_int_equal(sc.finished, n);
  free(ts);
  fut_unref(sc.gate);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_futures, 0);
  assert_int_equal(st.live_handles, 0);
  assert_int_equal(fut_loop_free(loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_task_100k_sleep_and_await),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
