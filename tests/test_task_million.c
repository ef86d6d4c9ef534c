/* Issue 17, must-show 1: a million live tasks on a kernel without
 * MADV_GUARD_INSTALL under the default vm.max_map_count (65530), run to
 * completion, and a stack overflow among many tasks still reported naming
 * the task.  Linked with -Wl,--wrap=madvise (register_task_million.cmake)
 * to play a kernel before 6.13.  Registered for plain builds only (about
 * 4.5 GB resident at 10^6); FUT_TEST_MILLION_N overrides the count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "child_output.h"
#include "task_helpers.h"

#include <errno.h>
#include <sys/mman.h>

static bool refuse_guard_install = true;
int __real_madvise(void *addr, size_t len, int advice);
int __wrap_madvise(void *addr, size_t len, int advice);
int __wrap_madvise(void *addr, size_t len, int advice) {
  if (refuse_guard_install && advice == 102) { /* MADV_GUARD_INSTALL */
    errno = EINVAL;
    return -1;
  }
  return __real_madvise(addr, len, advice);
}

static long count_vmas(void) {
  FILE *f = fopen("/proc/self/maps", "re");
  if (!f)
    return -1;
  long n = 0;
  int c;
  while ((c = fgetc(f)) != EOF)
    n += c == '\n';
  fclose(f);
  return n;
}

static fut_t *gate;
static long started, finished;

static int waiter(void *arg) {
  (void)arg;
  started++;
  int rc = fut_await(gate, NULL);
  finished++;
  return rc;
}

static void test_million_live_tasks_without_guard_install(void **state) {
  (void)state;
  const char *env = getenv("FUT_TEST_MILLION_N");
  long n = env ? atol(env) : 1000000;
  fut_loop_t *loop = new_loop();
  gate = newf(loop);
  started = finished = 0;
  long v0 = count_vmas();
  for (long i = 0; i < n; i++) {
    fut_t *t;
    int rc = fut_create_task(loop, waiter, NULL, NULL, &t);
    if (rc)
      fail_msg("fut_create_task failed at %ld live tasks: %d (%ld VMAs)", i, rc,
               count_vmas());
    fut_unref(t); /* the loop keeps it until it is done */
  }
  while (started < n)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  long vmas = count_vmas();
  printf("[ INFO     ] %ld live tasks: %ld VMAs (%ld before)\n", n, vmas, v0);
  /* One arena (two VMAs) per 1,024 default stacks: about 2,000 for
   * 10^6. */
  assert_true(vmas < 65530 / 4);
  assert_int_equal(finished, 0);
  assert_int_equal(fut_set_result(gate, NULL, NULL), 0);
  while (finished < n)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  drain(loop);
  fut_unref(gate);
  end_loop(loop);
}

/* ---- overflows among many tasks -------------------------------------- */

static volatile int depth_limit = 1 << 30;

/* Writes its whole frame, as a real overflowing frame would. */
static int recurse(int depth) {
  volatile char buf[512];
  for (size_t i = 0; i < sizeof buf; i += 8)
    buf[i] = (char)depth;
  if (depth >= depth_limit)
    return buf[0];
  /* Not a tail call: the result is used after the call. */
  return recurse(depth + 1) + buf[8];
}

static int deep(void *arg) {
  (void)arg;
  int r = recurse(0);
  /* A bounded overflow returns here: the canary tells at the switch. */
  fut_yield();
  return r & 0;
}

static int child_main(int before, int limit, bool named) {
  fut_loop_t *loop;
  if (fut_loop_new(&loop))
    return 2;
  if (fut_new(loop, &gate))
    return 2;
  fut_task_opts_t o;
  fut_task_opts_init(&o);
  o.stack_size = 64 * 1024;
  fut_t *t;
  for (int i = 0; i < before; i++) {
    if (fut_create_task(loop, waiter, NULL, &o, &t))
      return 3;
    fut_unref(t);
  }
  depth_limit = limit;
  o.name = named ? "deep-one" : NULL;
  fut_t *d;
  if (fut_create_task(loop, deep, NULL, &o, &d))
    return 3;
  o.name = NULL;
  for (int i = 0; i < 100; i++) {
    if (fut_create_task(loop, waiter, NULL, &o, &t))
      return 3;
    fut_unref(t);
  }
  fut_loop_run_until_complete(loop, d);
  return 4; /* not reached: the overflow kills the process */
}

/* named false: the task keeps its default name "Task-<before + 1>",
 * formatted by the report itself (names are formatted lazily). */
static void overflow_in_child(int before, int limit, int sig, bool named) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    _exit(child_main(before, limit, named));
  }
  close(fds[1]);
  char out[4096];
  int status = child_output(pid, fds[0], out, sizeof out);
  assert_int_not_equal(status, -1);
  printf("[ CHILD    ] status %#x: %s", status, out);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), sig);
  char want[64];
  if (named)
    snprintf(want, sizeof want, "stack overflow in task 'deep-one'");
  else
    snprintf(want, sizeof want, "stack overflow in task 'Task-%d'", before + 1);
  assert_non_null(strstr(out, want));
  assert_non_null(strstr(out, "65536 bytes"));
}

/* Unbounded recursion runs down through the stacks below it in its arena
 * and faults at the arena's guard: reported at once. */
static void test_runaway_overflow_reaches_the_arena_guard(void **state) {
  (void)state;
  overflow_in_child(500, 1 << 30, SIGSEGV, true);
}

/* An overflow of a few KiB that returns: the stack's canary is found
 * overwritten when the task switches out. */
static void test_bounded_overflow_caught_by_the_canary(void **state) {
  (void)state;
  overflow_in_child(20, 140, SIGABRT, true);
}

/* The same, the task never named: the canary report formats its default
 * name. */
static void test_canary_report_names_a_default_named_task(void **state) {
  (void)state;
  overflow_in_child(20, 140, SIGABRT, false);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_runaway_overflow_reaches_the_arena_guard),
      cmocka_unit_test(test_bounded_overflow_caught_by_the_canary),
      cmocka_unit_test(test_canary_report_names_a_default_named_task),
      cmocka_unit_test(test_million_live_tasks_without_guard_install),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
