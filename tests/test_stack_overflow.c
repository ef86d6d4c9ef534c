/* A task that overflows its stack hits the guard region and the process
 * dies of SIGSEGV with a message naming the task and its stack size.  The
 * overflow runs in a forked child; the parent reads its stderr. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop/internal.h"

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

static int child_main(void) {
  fut_loop_t *loop;
  if (fut_loop_new(&loop))
    return 2;
  fut_task_opts_t o;
  fut_task_opts_init(&o);
  o.name = "deep-one";
  o.stack_size = 64 * 1024;
  fut_t *t;
  if (fut_create_task(loop, overflow, NULL, &o, &t))
    return 3;
  fut_loop_run_until_complete(loop, t);
  return 4; /* not reached: the overflow kills the process */
}

static void test_stack_overflow_hits_guard_with_message(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    _exit(child_main());
  }
  close(fds[1]);
  char out[4096];
  size_t len = 0;
  ssize_t r;
  while (len < sizeof out - 1 &&
         (r = read(fds[0], out + len, sizeof out - 1 - len)) > 0)
    len += (size_t)r;
  out[len] = '\0';
  close(fds[0]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  printf("[ CHILD    ] %s", out);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGSEGV);
  assert_non_null(strstr(out, "stack overflow in task 'deep-one'"));
  assert_non_null(strstr(out, "65536 bytes"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stack_overflow_hits_guard_with_message),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
