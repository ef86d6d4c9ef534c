/* A task that overflows its stack hits the guard region and the process
 * dies of SIGSEGV with a message naming the task and its stack size.  The
 * overflow runs in a forked child; the parent reads its stderr.
 *
 * The guard is made with MADV_GUARD_INSTALL where the kernel has it (6.13)
 * and with mprotect before: this program is linked with
 * -Wl,--wrap=madvise so the second test plays an older kernel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "child_output.h"
#include "loop/internal.h"

#include <errno.h>
#include <sys/mman.h>

/* The shim: refuses MADV_GUARD_INSTALL (102) as a kernel before 6.13. */
static bool refuse_guard_install;
static int guard_install_refused;
int __real_madvise(void *addr, size_t len, int advice);
int __wrap_madvise(void *addr, size_t len, int advice);
int __wrap_madvise(void *addr, size_t len, int advice) {
  if (refuse_guard_install && advice == 102) {
    guard_install_refused++;
    errno = EINVAL;
    return -1;
  }
  return __real_madvise(addr, len, advice);
}

static volatile int depth_limit = 1 << 30; /* never reached in practice */

static int recurse(int depth) {
  volatile char buf[512];
  buf[0] = (char)depth;
  if (depth >= depth_limit)
    return buf[0];
  /* Not a tail call: the result is used after the call. */
  return recurse(depth + 1) + buf[0];
}

static int overflow(void *arg) {
  (void)arg;
  return recurse(0);
}

static int child_main(const char *name) {
  fut_loop_t *loop;
  if (fut_loop_new(&loop))
    return 2;
  fut_task_opts_t o;
  fut_task_opts_init(&o);
  o.name = name;
  o.stack_size = 64 * 1024;
  fut_t *t;
  if (fut_create_task(loop, overflow, NULL, &o, &t))
    return 3;
  if (refuse_guard_install)
    fprintf(stderr, "guard install refused %d time(s)\n",
            guard_install_refused);
  fut_loop_run_until_complete(loop, t);
  return 4; /* not reached: the overflow kills the process */
}

/* name NULL: the task keeps its default name, never asked for before the
 * overflow (formatted by the handler, see fut_task_get_name). */
static void overflow_in_child(bool old_kernel, const char *name) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    refuse_guard_install = old_kernel;
    _exit(child_main(name));
  }
  close(fds[1]);
  char out[4096];
  int status = child_output(pid, fds[0], out, sizeof out);
  assert_int_not_equal(status, -1);
  printf("[ CHILD    ] %s", out);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGSEGV);
  char want[64];
  snprintf(want, sizeof want, "stack overflow in task '%s'",
           name ? name : "Task-1");
  assert_non_null(strstr(out, want));
  assert_non_null(strstr(out, "65536 bytes"));
  if (old_kernel)
    assert_non_null(strstr(out, "guard install refused 1 time(s)"));
}

static void test_stack_overflow_hits_guard_with_message(void **state) {
  (void)state;
  overflow_in_child(false, "deep-one");
}

/* A default name is formatted lazily: the report still gives it. */
static void test_stack_overflow_names_a_default_named_task(void **state) {
  (void)state;
  overflow_in_child(false, NULL);
}

/* A kernel without MADV_GUARD_INSTALL: the mprotect'd guard catches the
 * overflow the same way. */
static void
test_stack_overflow_hits_guard_without_madv_guard_install(void **state) {
  (void)state;
  overflow_in_child(true, "deep-one");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stack_overflow_hits_guard_with_message),
      cmocka_unit_test(test_stack_overflow_names_a_default_named_task),
      cmocka_unit_test(
          test_stack_overflow_hits_guard_without_madv_guard_install),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
