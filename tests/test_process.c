/* Subprocesses (asyncio's create_subprocess_exec / _shell and Process):
 * exit codes and signals, communicate through full pipes, a timeout on
 * communicate then kill, exec failures, 200 children at once, close_fds
 * and pass_fds, the stdio options, the process pool in the same loop, the
 * polling fallback without pidfd_open, dropped handles and loop close.
 * Every test runs under FX_LOOP_TEST: fds and children back to baseline. */
#include "fixture.h"
#include "task_helpers.h"

/* The pidfd_open hook of src/process/watcher.c (internal, reachable from
 * the static library). */
extern int (*fut__sys_pidfd_open)(pid_t pid, unsigned flags);

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------------
 */

static fut_process_t *sh(fut_loop_t *loop, const char *cmd,
                         const fut_spawn_opts_t *o) {
  fut_process_t *p;
  int err = fut_create_subprocess_shell(loop, cmd, o, &p);
  if (err)
    fail_msg("spawn '%s': %s (%s)", cmd, fut_strerror(err), fut_last_error());
  return p;
}

/* Runs the loop until p is reaped (at most 10 s). */
static bool reaped_cond(void *p) {
  return fut_process_returncode(p, NULL);
}
static int wait_reaped(fut_loop_t *loop, fut_process_t *p) {
  assert_true(fx_run_until(loop, reaped_cond, p, FUT_SEC(10)));
  int code = 1000;
  assert_true(fut_process_returncode(p, &code));
  return code;
}

/* A task: waits for the process in arg, returns its code as the result. */
static int wait_main(void *arg) {
  int code;
  int err = fut_process_wait(arg, &code);
  if (err)
    return err;
  return fut_task_return_i64(code);
}

static int64_t wait_in_task(fut_loop_t *loop, fut_process_t *p) {
  fut_t *t = spawn(loop, wait_main, p);
  run_until_done(loop, t);
  int64_t code = -1000;
  assert_int_equal(fut_result_i64(t, &code), 0);
  fut_unref(t);
  return code;
}

/* ---- exit codes and signals ----------------------------------------------
 */

static void test_process_exit_codes(void **state) {
  fut_loop_t *loop = *state;
  static const int codes[] = {0, 1, 255};
  for (size_t i = 0; i < 3; i++) {
    char cmd[32];
    snprintf(cmd, sizeof cmd, "exit %d", codes[i]);
    fut_process_t *p = sh(loop, cmd, NULL);
    assert_true(fut_process_pid(p) > 0);
    assert_int_equal(wait_in_task(loop, p), codes[i]);
    int code;
    assert_true(fut_process_returncode(p, &code));
    assert_int_equal(code, codes[i]);
    /* Waiting again answers at once. */
    assert_int_equal(wait_in_task(loop, p), codes[i]);
    fut_process_unref(p);
  }
}

static void test_process_killed_by_signal(void **state) {
  fut_loop_t *loop = *state;
  char *argv[] = {"sleep", "10", NULL};
  fut_process_t *p;
  assert_int_equal(fut_create_subprocess_exec(loop, argv, NULL, &p), 0);
  assert_false(fut_process_returncode(p, NULL));
  assert_int_equal(fut_process_kill(p), 0);
  assert_int_equal(wait_in_task(loop, p), -SIGKILL);
  /* Reaped: no signal goes to a pid that may be someone else's. */
  assert_int_equal(fut_process_kill(p), -ESRCH);
  assert_int_equal(fut_process_terminate(p), -ESRCH);
  fut_process_unref(p);

  p = sh(loop, "sleep 10", NULL);
  assert_int_equal(fut_process_terminate(p), 0);
  assert_int_equal(wait_in_task(loop, p), -SIGTERM);
  fut_process_unref(p);
}

static void test_process_wait_future_form(void **state) {
  fut_loop_t *loop = *state;
  fut_process_t *p = sh(loop, "exit 7", NULL);
  fut_t *f, *g;
  assert_int_equal(fut_process_wait_future(p, &f), 0);
  assert_int_equal(fut_process_wait_future(p, &g), 0);
  fut_cancel(g, NULL); /* stops only that wait */
  run_until_done(loop, f);
  int64_t code;
  assert_int_equal(fut_result_i64(f, &code), 0);
  assert_int_equal(code, 7);
  assert_true(fut_cancelled(g));
  fut_unref(f);
  fut_unref(g);
  fut_process_unref(p);
  drain(loop);
}

static void test_process_not_in_task(void **state) {
  fut_loop_t *loop = *state;
  fut_process_t *p = sh(loop, "exit 0", NULL);
  assert_int_equal(fut_process_wait(p, NULL), FUT_E_NOT_IN_TASK);
  assert_int_equal(fut_process_communicate(p, NULL, 0, NULL, NULL, NULL, NULL),
                   FUT_E_NOT_IN_TASK);
  assert_int_equal(wait_reaped(loop, p), 0);
  fut_process_unref(p);
}

/* ---- communicate ----------------------------------------------------------
 */

struct comm {
  fut_process_t *p;
  const char *in;
  size_t inlen;
  char *out, *err;
  size_t outlen, errlen;
  int rc;
  int code;
};

static int comm_main(void *arg) {
  struct comm *c = arg;
  c->rc = fut_process_communicate(c->p, c->in, c->inlen, (void **)&c->out,
                                  &c->outlen, (void **)&c->err, &c->errlen);
  if (!c->rc)
    fut_process_returncode(c->p, &c->code);
  return c->rc;
}

static void test_process_communicate_10mib_through_cat(void **state) {
  fut_loop_t *loop = *state;
  size_t n = (size_t)10 << 20;
  char *in = malloc(n);
  assert_non_null(in);
  for (size_t i = 0; i < n; i++)
    in[i] = (char)(i * 2654435761u >> 13);
  fut_spawn_opts_t o;
  fut_spawn_opts_init(&o);
  o.std_in = o.std_out = FUT_STDIO_PIPE;
  /* cat to stdout and 10 MiB of zeros to stderr at the same time: 10 MiB
   * out on each pipe and 10 MiB in, no side ever blocks the others. */
  o.std_err = FUT_STDIO_PIPE;
  fut_process_t *p = sh(loop, "head -c 10485760 /dev/zero >&2 & cat; wait", &o);
  struct comm c = {.p = p, .in = in, .inlen = n};
  fut_t *t = spawn(loop, comm_main, &c);
  run_until_done(loop, t);
  fut_unref(t);
  assert_int_equal(c.rc, 0);
  assert_int_equal(c.code, 0);
  assert_int_equal(c.outlen, n);
  assert_int_equal(c.errlen, n);
  assert_memory_equal(c.out, in, n);
  char *zeros = calloc(1, n);
  assert_memory_equal(c.err, zeros, n);
  free(zeros);
  free(c.out);
  free(c.err);
  fut_process_unref(p);

  /* Plain cat, stdout only. */
  o.std_err = FUT_STDIO_INHERIT;
  char *argv[] = {"cat", NULL};
  assert_int_equal(fut_create_subprocess_exec(loop, argv, &o, &p), 0);
  memset(&c, 0, sizeof c);
  c.p = p;
  c.in = in;
  c.inlen = n;
  t = spawn(loop, comm_main, &c);
  run_until_done(loop, t);
  fut_unref(t);
  assert_int_equal(c.rc, 0);
  assert_int_equal(c.outlen, n);
  assert_memory_equal(c.out, in, n);
  assert_null(c.err);
  assert_int_equal(c.errlen, 0);
  free(c.out);
  fut_process_unref(p);
  free(in);
  drain(loop);
}

static void test_process_communicate_child_ignores_input(void **state) {
  fut_loop_t *loop = *state;
  fut_spawn_opts_t o;
  fut_spawn_opts_init(&o);
  o.std_in = o.std_out = FUT_STDIO_PIPE;
  /* The child exits without reading: our write gets EPIPE, not an error. */
  fut_process_t *p = sh(loop, "echo bye; exit 3", &o);
  size_t n = (size_t)4 << 20;
  char *in = calloc(1, n);
  struct comm c = {.p = p, .in = in, .inlen = n};
  fut_t *t = spawn(loop, comm_main, &c);
  run_until_done(loop, t);
  fut_unref(t);
  assert_int_equal(c.rc, 0);
  assert_int_equal(c.code, 3);
  assert_int_equal(c.outlen, 4);
  assert_memory_equal(c.out, "bye\n", 4);
  free(c.out);
  free(in);
  fut_process_unref(p);
  drain(loop);
}

/* wait_for(communicate, 50 ms) on sleep 10: -ETIMEDOUT, the child still
 * runs; then kill, and it is reaped (no zombie left). */
static int timeout_main(void *arg) {
  struct comm *c = arg;
  fut_t *inner, *w;
  int err = fut_create_task(fut_process_loop(c->p), comm_main, c, NULL, &inner);
  if (err)
    return err;
  err = fut_wait_for(inner, FUT_MS(50), &w);
  fut_unref(inner);
  if (err)
    return err;
  err = fut_await(w, NULL);
  fut_unref(w);
  return err;
}

static void test_process_communicate_wait_for_timeout_then_kill(void **state) {
  fut_loop_t *loop = *state;
  fut_spawn_opts_t o;
  fut_spawn_opts_init(&o);
  o.std_in = o.std_out = o.std_err = FUT_STDIO_PIPE;
  fut_process_t *p = sh(loop, "exec sleep 10", &o);
  pid_t pid = fut_process_pid(p);
  struct comm c = {.p = p, .in = "x", .inlen = 1};
  uint64_t t0 = fut_loop_time(loop);
  fut_t *t = spawn(loop, timeout_main, &c);
  run_until_done(loop, t);
  uint64_t took = fut_loop_time(loop) - t0;
  assert_int_equal(fut_result(t, NULL), -ETIMEDOUT);
  fut_unref(t);
  assert_int_equal(c.rc, -ECANCELED);
  assert_null(c.out);
  assert_null(c.err);
  assert_true(took >= FUT_MS(50) && took < FUT_SEC(5));
  assert_false(fut_process_returncode(p, NULL));
  assert_int_equal(fut_process_kill(p), 0);
  assert_int_equal(wait_in_task(loop, p), -SIGKILL);
  /* Reaped by us: the pid is no child of ours any more. */
  assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
  fut_process_unref(p);
  drain(loop);
}

/* ---- readers and writers --------------------------------------------------
 */

static int lines_main(void *arg) {
  fut_process_t *p = arg;
  fut_writer_t *w = fut_process_stdin(p);
  fut_reader_t *r = fut_process_stdout(p);
  if (!w || !r || fut_process_stderr(p))
    return -EINVAL;
  for (int i = 0; i < 100; i++) {
    char line[32];
    int n = snprintf(line, sizeof line, "line %d\n", i);
    int err = fut_writer_write(w, line, (size_t)n);
    if (!err)
      err = fut_writer_drain(w);
    void *got;
    size_t len;
    if (!err)
      err = fut_reader_readline(r, &got, &len);
    if (err)
      return err;
    bool same = len == (size_t)n && !memcmp(got, line, len);
    free(got);
    if (!same)
      return -EPROTO;
  }
  fut_writer_close(w);
  void *rest;
  size_t len;
  int err = fut_reader_read(r, FUT_READ_ALL, &rest, &len);
  if (err)
    return err;
  free(rest);
  if (len)
    return -EPROTO;
  int code;
  err = fut_process_wait(p, &code);
  return err ? err : fut_task_return_i64(code);
}

static void test_process_pipes_as_streams(void **state) {
  fut_loop_t *loop = *state;
  fut_spawn_opts_t o;
  fut_spawn_opts_init(&o);
  o.std_in = o.std_out = FUT_STDIO_PIPE;
  char *argv[] = {"cat", NULL};
  fut_process_t *p;
  assert_int_equal(fut_create_subprocess_exec(loop, argv, &o, &p), 0);
  fut_t *t = spawn(loop, lines_main, p);
  run_until_done(loop, t);
  int64_t code = -1;
  assert_int_equal(fut_result_i64(t, &code), 0);
  assert_int_equal(code, 0);
  fut_unref(t);
  fut_process_unref(p);
  drain(loop);
}

/* ---- exec failures --------------------------------------------------------
 */

static void test_process_exec_missing_binary(void **state) {
  fut_loop_t *loop = *state;
  char *argv[] = {"/nonexistent/libfuture-no-such-binary", NULL};
  fut_process_t *p = (fut_process_t *)1;
  assert_int_equal(fut_create_subprocess_exec(loop, argv, NULL, &p), -ENOENT);
  assert_null(p);
  assert_non_null(strstr(fut_last_error(), "libfuture-no-such-binary"));
  /* Searched in PATH. */
  char *argv2[] = {"libfuture-no-such-binary", NULL};
  assert_int_equal(fut_create_subprocess_exec(loop, argv2, NULL, &p), -ENOENT);
  /* Not executable. */
  char *argv3[] = {"/etc/passwd", NULL};
  assert_int_equal(fut_create_subprocess_exec(loop, argv3, NULL, &p), -EACCES);
  assert_non_null(strstr(fut_last_error(), "/etc/passwd"));
  /* A missing cwd. */
  fut_spawn_opts_t o;
  fut_spawn_opts_init(&o);
  o.cwd = "/nonexistent-dir";
  o.std_out = FUT_STDIO_PIPE; /* the pipe is undone too */
  char *argv4[] = {"/bin/true", NULL};
  assert_int_equal(fut_create_subprocess_exec(loop, argv4, &o, &p), -ENOENT);
  /* Bad arguments. */
  fut_spawn_opts_init(&o);
  o.std_out = FUT_STDIO_STDOUT;
  assert_int_equal(fut_create_subprocess_exec(loop, argv4, &o, &p), -EINVAL);
  fut_spawn_opts_init(&o);
  int two = 2;
  o.pass_fds = &two;
  o.npass_fds = 1;
  assert_int_equal(fut_create_subprocess_exec(loop, argv4, &o, &p), -EINVAL);
  char *none[] = {NULL};
  assert_int_equal(fut_create_subprocess_exec(loop, none, NULL, &p), -EINVAL);
  drain(loop);
}

/* ---- many children --------------------------------------------------------
 */

#define MANY 200

struct many {
  fut_process_t *p[MANY];
  int codes[MANY];
  int rc;
};

static int many_main(void *arg) {
  struct many *m = arg;
  fut_loop_t *loop = fut_get_running_loop();
  for (int i = 0; i < MANY; i++) {
    char cmd[32];
    snprintf(cmd, sizeof cmd, "exit %d", i % 256);
    int err = fut_create_subprocess_shell(loop, cmd, NULL, &m->p[i]);
    if (err)
      return err;
  }
  /* Waited for in reverse order of exit, roughly. */
  for (int i = MANY - 1; i >= 0; i--) {
    int err = fut_process_wait(m->p[i], &m->codes[i]);
    if (err)
      return err;
  }
  return 0;
}

static void test_process_200_concurrent_children(void **state) {
  fut_loop_t *loop = *state;
  fx_exc_t exc;
  fx_exc_capture(loop, &exc);
  struct many *m = calloc(1, sizeof *m);
  fut_t *t = spawn(loop, many_main, m);
  run_until_done(loop, t);
  assert_int_equal(fut_result(t, NULL), 0);
  fut_unref(t);
  for (int i = 0; i < MANY; i++) {
    assert_int_equal(m->codes[i], i % 256);
    fut_process_unref(m->p[i]);
  }
  free(m);
  assert_int_equal(exc.count, 0); /* no "unknown child process" */
}

/* ---- fds -----------------------------------------------------------------
 */

/* The child's fds as listed by ls (its own directory fd included). */
static char *child_fds(fut_loop_t *loop, const fut_spawn_opts_t *base) {
  fut_spawn_opts_t o = *base;
  o.std_out = FUT_STDIO_PIPE;
  char *argv[] = {"ls", "/proc/self/fd", NULL};
  fut_process_t *p;
  assert_int_equal(fut_create_subprocess_exec(loop, argv, &o, &p), 0);
  struct comm c = {.p = p};
  fut_t *t = spawn(loop, comm_main, &c);
  run_until_done(loop, t);
  fut_unref(t);
  assert_int_equal(c.rc, 0);
  assert_int_equal(c.code, 0);
  fut_process_unref(p);
  char *s = calloc(1, c.outlen + 1);
  memcpy(s, c.out, c.outlen);
  free(c.out);
  for (char *q = s; *q; q++)
    if (*q == '\n')
      *q = ' ';
  return s;
}

static void test_process_close_fds(void **state) {
  fut_loop_t *loop = *state;
  /* Two fds without close-on-exec, above whatever the test runner left
   * open: `leak` goes through unless close_fds, `kept` is passed. */
  int a = open("/dev/null", O_RDONLY);
  assert_true(a >= 0);
  int leak = fcntl(a, F_DUPFD, 40);
  int kept = fcntl(a, F_DUPFD, leak + 10);
  assert_true(leak >= 40 && kept > leak);
  close(a);
  char word[2][16], expect[64];
  snprintf(word[0], sizeof word[0], " %d ", leak);
  snprintf(word[1], sizeof word[1], " %d ", kept);
  fut_spawn_opts_t o;
  fut_spawn_opts_init(&o);
  char *s = child_fds(loop, &o);
  /* 0, 1 (the pipe), 2, and 3: ls's own directory. */
  assert_string_equal(s, "0 1 2 3 ");
  free(s);
  /* A passed fd keeps its number even with close-on-exec set. */
  assert_int_equal(fcntl(kept, F_SETFD, FD_CLOEXEC), 0);
  int pass[] = {kept};
  o.pass_fds = pass;
  o.npass_fds = 1;
  s = child_fds(loop, &o);
  snprintf(expect, sizeof expect, "0 1 2 3 %d ", kept);
  assert_string_equal(s, expect);
  free(s);
  /* close_fds off: exactly our fds without close-on-exec go through (leak,
   * kept, and whatever the test runner gave us that way), plus 0-2 and
   * ls's directory; the library's own (the loop's epoll, the pipes' other
   * ends) do not. */
  assert_int_equal(fcntl(kept, F_SETFD, 0), 0);
  o.close_fds = false;
  o.npass_fds = 0;
  s = child_fds(loop, &o);
  char padded[512];
  snprintf(padded, sizeof padded, " %s", s);
  assert_non_null(strstr(padded, word[0]));
  assert_non_null(strstr(padded, word[1]));
  int inherited = 0;
  for (int fd = 3; fd < 1024; fd++) {
    int fl = fcntl(fd, F_GETFD);
    inherited += fl >= 0 && !(fl & FD_CLOEXEC);
  }
  int listed = 0;
  for (char *q = strtok(padded, " "); q; q = strtok(NULL, " "))
    listed++;
  assert_int_equal(listed, 3 + inherited + 1);
  free(s);
  close(leak);
  close(kept);
  drain(loop);
}

/* ---- stdio options, cwd, env, session --------------------------------------
 */

static char *run_sh(fut_loop_t *loop, const char *cmd, fut_spawn_opts_t *o,
                    int *code) {
  o->std_out = FUT_STDIO_PIPE;
  fut_process_t *p = sh(loop, cmd, o);
  struct comm c = {.p = p};
  fut_t *t = spawn(loop, comm_main, &c);
  run_until_done(loop, t);
  fut_unref(t);
  assert_int_equal(c.rc, 0);
  *code = c.code;
  fut_process_unref(p);
  char *s = calloc(1, c.outlen + 1);
  memcpy(s, c.out, c.outlen);
  free(c.out);
  return s;
}

static void test_process_stdio_cwd_env_session(void **state) {
  fut_loop_t *loop = *state;
  fut_spawn_opts_t o;
  int code;
  char *s;
  /* stderr into stdout. */
  fut_spawn_opts_init(&o);
  o.std_err = FUT_STDIO_STDOUT;
  s = run_sh(loop, "echo a; echo b >&2", &o, &code);
  assert_string_equal(s, "a\nb\n");
  free(s);
  /* stdin from /dev/null. */
  fut_spawn_opts_init(&o);
  o.std_in = FUT_STDIO_DEVNULL;
  s = run_sh(loop, "cat; echo end", &o, &code);
  assert_string_equal(s, "end\n");
  free(s);
  /* stderr to /dev/null. */
  fut_spawn_opts_init(&o);
  o.std_err = FUT_STDIO_DEVNULL;
  s = run_sh(loop, "echo hidden >&2; echo shown", &o, &code);
  assert_string_equal(s, "shown\n");
  free(s);
  /* cwd and env. */
  fut_spawn_opts_init(&o);
  o.cwd = "/";
  char *env[] = {"FUT_TEST_VAR=hello", NULL};
  o.env = env;
  s = run_sh(loop, "pwd; echo $FUT_TEST_VAR; echo ${HOME:-nohome}", &o, &code);
  assert_string_equal(s, "/\nhello\nnohome\n");
  free(s);
  /* A new session: the shell's session id is its pid. */
  fut_spawn_opts_init(&o);
  o.start_new_session = true;
  s = run_sh(loop,
             "read pid comm st ppid pgrp sid rest < /proc/self/stat; "
             "[ $pid = $sid ] && echo leader",
             &o, &code);
  assert_string_equal(s, "leader\n");
  free(s);
  fut_spawn_opts_init(&o);
  s = run_sh(loop,
             "read pid comm st ppid pgrp sid rest < /proc/self/stat; "
             "[ $pid = $sid ] || echo member",
             &o, &code);
  assert_string_equal(s, "member\n");
  free(s);
  /* process_group 0: a new group led by the child (asyncio's
   * process_group=0); by default the child stays in ours. */
  fut_spawn_opts_init(&o);
  assert_int_equal(o.process_group, -1);
  o.process_group = 0;
  s = run_sh(loop,
             "read pid comm st ppid pgrp sid rest < /proc/self/stat; "
             "[ $pid = $pgrp ] && echo group-leader",
             &o, &code);
  assert_string_equal(s, "group-leader\n");
  free(s);
  fut_spawn_opts_init(&o);
  s = run_sh(loop,
             "read pid comm st ppid pgrp sid rest < /proc/self/stat; "
             "[ $pgrp = $(cut -d' ' -f5 /proc/$PPID/stat) ] && echo same-group",
             &o, &code);
  assert_string_equal(s, "same-group\n");
  free(s);
  /* joined with a new session, or below -1: refused */
  fut_process_t *bad = (fut_process_t *)1;
  fut_spawn_opts_init(&o);
  o.process_group = 0;
  o.start_new_session = true;
  assert_int_equal(fut_create_subprocess_shell(loop, "true", &o, &bad),
                   -EINVAL);
  assert_null(bad);
  fut_spawn_opts_init(&o);
  o.process_group = -2;
  assert_int_equal(fut_create_subprocess_shell(loop, "true", &o, &bad),
                   -EINVAL);
  /* A caller's fd as stdout (a socketpair end of ours). */
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  fut_spawn_opts_init(&o);
  o.std_out = sv[1];
  fut_process_t *p = sh(loop, "echo via-fd", &o);
  close(sv[1]);
  assert_int_equal(wait_in_task(loop, p), 0);
  fut_process_unref(p);
  char buf[64] = {0};
  assert_int_equal(read(sv[0], buf, sizeof buf - 1), 7);
  assert_string_equal(buf, "via-fd\n");
  close(sv[0]);
  /* A low fd: the child's stdout is our stderr's slot swapped around
   * (std_in = 1 would be clobbered without the copy). */
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  int saved0 = dup(0);
  assert_int_equal(dup2(sv[1], 0), 0);
  fut_spawn_opts_init(&o);
  o.std_out = 0;
  o.std_in = FUT_STDIO_DEVNULL;
  p = sh(loop, "echo low", &o);
  assert_int_equal(dup2(saved0, 0), 0);
  close(saved0);
  close(sv[1]);
  assert_int_equal(wait_in_task(loop, p), 0);
  fut_process_unref(p);
  memset(buf, 0, sizeof buf);
  assert_int_equal(read(sv[0], buf, sizeof buf - 1), 4);
  assert_string_equal(buf, "low\n");
  close(sv[0]);
  drain(loop);
}

/* ---- with the process pool ------------------------------------------------
 */

static int square(const void *data, size_t len, void **out, size_t *out_len) {
  if (len != sizeof(int))
    return -EINVAL;
  int v;
  memcpy(&v, data, sizeof v);
  v *= v;
  *out = malloc(sizeof v);
  if (!*out)
    return -ENOMEM;
  memcpy(*out, &v, sizeof v);
  *out_len = sizeof v;
  return 0;
}

struct mixed {
  fut_executor_t *ex;
  int rc;
};

static int pool_job(fut_loop_t *loop, fut_executor_t *ex, int v) {
  fut_job_t job = fut_job_bytes(square, &v, sizeof v);
  fut_t *f;
  int err = fut_run_in_executor_job(loop, ex, &job, &f);
  if (err)
    return err;
  const void *d;
  size_t len;
  err = fut_await_bytes(f, &d, &len);
  int r = -1;
  if (!err && len == sizeof r)
    memcpy(&r, d, sizeof r);
  fut_unref(f);
  return err ? err : r;
}

static int mixed_main(void *arg) {
  struct mixed *m = arg;
  fut_loop_t *loop = fut_get_running_loop();
  fut_process_pool_t *pool = fut_executor_self(m->ex);
  /* The pool's fork server and first worker exist. */
  if (pool_job(loop, m->ex, 3) != 9)
    return -EPROTO;
  pid_t server = fut_process_pool_server_pid(pool);
  fut_process_t *p[20];
  for (int i = 0; i < 20; i++) {
    char cmd[32];
    snprintf(cmd, sizeof cmd, "exit %d", 100 + i);
    int err = fut_create_subprocess_shell(loop, cmd, NULL, &p[i]);
    if (err)
      return err;
  }
  /* Pool jobs while our children exit. */
  for (int i = 0; i < 10; i++)
    if (pool_job(loop, m->ex, i) != i * i)
      return -EPROTO;
  int bad = 0;
  for (int i = 0; i < 20; i++) {
    int code;
    int err = fut_process_wait(p[i], &code);
    if (err)
      return err;
    bad += code != 100 + i;
    fut_process_unref(p[i]);
  }
  if (bad)
    return -EPROTO;
  /* The pool's processes were not reaped by our watcher. */
  if (fut_process_pool_server_pid(pool) != server || kill(server, 0) != 0 ||
      fut_process_pool_nworkers(pool) == 0)
    return -ECHILD;
  if (pool_job(loop, m->ex, 12) != 144)
    return -EPROTO;
  return 0;
}

static void test_process_with_process_pool(void **state) {
  fut_loop_t *loop = *state;
  fx_exc_t exc;
  fx_exc_capture(loop, &exc);
  struct mixed m = {0};
  assert_int_equal(fut_process_pool_new(2, &m.ex), 0);
  fut_t *t = spawn(loop, mixed_main, &m);
  run_until_done(loop, t);
  assert_int_equal(fut_result(t, NULL), 0);
  fut_unref(t);
  assert_int_equal(fut_executor_shutdown(m.ex, true, false, FUT_SEC(10)), 0);
  fut_executor_free(m.ex);
  drain(loop);
  assert_int_equal(exc.count, 0);
}

/* ---- the polling fallback ---------------------------------------------------
 */

static int no_pidfd(pid_t pid, unsigned flags) {
  (void)pid;
  (void)flags;
  errno = ENOSYS;
  return -1;
}

static void test_process_pidfd_fallback_polls(void **state) {
  fut_loop_t *loop = *state;
  int (*saved)(pid_t, unsigned) = fut__sys_pidfd_open;
  fut__sys_pidfd_open = no_pidfd;
  int fds0 = fx_open_fds();
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  size_t handles0 = st.live_handles;
  fut_process_t *a = sh(loop, "exit 3", NULL);
  fut_process_t *b = sh(loop, "sleep 10", NULL);
  /* No pidfd for them, and the poll timer is armed. */
  assert_int_equal(fx_open_fds(), fds0);
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_handles, handles0 + 1);
  fut__sys_pidfd_open = saved;
  /* A pidfd child beside them. */
  fut_process_t *c = sh(loop, "exit 4", NULL);
  assert_int_equal(fx_open_fds(), fds0 + 1);
  assert_int_equal(wait_in_task(loop, a), 3);
  assert_int_equal(wait_in_task(loop, c), 4);
  assert_false(fut_process_returncode(b, NULL));
  assert_int_equal(fut_process_kill(b), 0);
  assert_int_equal(wait_in_task(loop, b), -SIGKILL);
  fut_process_unref(a);
  fut_process_unref(b);
  fut_process_unref(c);
  /* Many polled children at once, the same as with pidfds. */
  fut__sys_pidfd_open = no_pidfd;
  struct many *m = calloc(1, sizeof *m);
  fut_t *t = spawn(loop, many_main, m);
  run_until_done(loop, t);
  fut__sys_pidfd_open = saved;
  assert_int_equal(fut_result(t, NULL), 0);
  fut_unref(t);
  for (int i = 0; i < MANY; i++) {
    assert_int_equal(m->codes[i], i % 256);
    fut_process_unref(m->p[i]);
  }
  free(m);
  drain(loop); /* the poll timer is gone: the fixture counts handles */
}

/* ---- lifetimes
 * ---------------------------------------------------------------
 */

static bool children_back(void *arg) {
  return fx_count_children() == *(int *)arg;
}

static void test_process_dropped_handle_still_reaped(void **state) {
  fut_loop_t *loop = *state;
  int base = fx_count_children();
  fut_spawn_opts_t o;
  fut_spawn_opts_init(&o);
  o.std_out = FUT_STDIO_PIPE;
  fut_process_t *p = sh(loop, "echo unread; exit 0", &o);
  fut_process_unref(p); /* fire and forget */
  assert_true(fx_run_until(loop, children_back, &base, FUT_SEC(10)));
  drain(loop);
}

static void test_process_loop_close_kills_children(void **state) {
  fut_loop_t *loop = *state;
  fut_spawn_opts_t o;
  fut_spawn_opts_init(&o);
  o.std_in = o.std_out = FUT_STDIO_PIPE;
  fut_process_t *p = sh(loop, "exec sleep 10", &o);
  fut_process_t *q = sh(loop, "exec sleep 10", NULL);
  fut_process_unref(q);
  assert_int_equal(fut_loop_close(loop), 0);
  int code;
  assert_true(fut_process_returncode(p, &code));
  assert_int_equal(code, -SIGKILL);
  fut_process_unref(p);
}

/* A child the program started itself stays the program's: the watcher
 * never reaps it (no waitpid(-1)), even while it reaps ours around it. */
static void test_process_leaves_foreign_children(void **state) {
  fut_loop_t *loop = *state;
  pid_t mine = fork();
  if (mine == 0)
    _exit(42);
  assert_true(mine > 0);
  fut_process_t *p = sh(loop, "exit 5", NULL);
  assert_int_equal(wait_in_task(loop, p), 5);
  fut_process_unref(p);
  for (int i = 0; i < 20; i++)
    fut_loop_run_once(loop, FUT_MS(1));
  int st = 0;
  assert_int_equal(waitpid(mine, &st, 0), mine);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 42);
}

/* SIGCHLD ignored: the kernel reaps our children itself; the code is 255
 * (asyncio's "unknown child process") and the loop's handler is told. */
static void test_process_sigchld_ignored_reports_255(void **state) {
  fut_loop_t *loop = *state;
  fx_exc_t exc;
  fx_exc_capture(loop, &exc);
  struct sigaction ign = {.sa_handler = SIG_IGN}, old;
  sigemptyset(&ign.sa_mask);
  assert_int_equal(sigaction(SIGCHLD, &ign, &old), 0);
  fut_process_t *p = sh(loop, "exit 3", NULL);
  int code = wait_reaped(loop, p);
  assert_int_equal(sigaction(SIGCHLD, &old, NULL), 0);
  assert_int_equal(code, 255);
  assert_int_equal(exc.count, 1);
  assert_int_equal(exc.err, -ECHILD);
  fut_process_unref(p);
}

/* Cancelling one task's wait leaves the other waiters and the child
 * alone. */
static void test_process_cancel_one_wait(void **state) {
  fut_loop_t *loop = *state;
  fut_process_t *p = sh(loop, "exec sleep 10", NULL);
  fut_t *a = spawn(loop, wait_main, p);
  fut_t *b = spawn(loop, wait_main, p);
  drain(loop);
  assert_true(fut_cancel(a, NULL));
  run_until_done(loop, a);
  assert_true(fut_cancelled(a));
  assert_false(fut_done(b));
  assert_false(fut_process_returncode(p, NULL));
  assert_int_equal(fut_process_kill(p), 0);
  run_until_done(loop, b);
  int64_t code = 0;
  assert_int_equal(fut_result_i64(b, &code), 0);
  assert_int_equal(code, -SIGKILL);
  fut_unref(a);
  fut_unref(b);
  fut_process_unref(p);
}

/* The loop closes while a task is inside communicate (its helpers
 * waiting on the pipes): everything ends, nothing leaks (ASan), the child
 * is killed and reaped. */
static void test_process_loop_close_during_communicate(void **state) {
  fut_loop_t *loop = *state;
  fut_spawn_opts_t o;
  fut_spawn_opts_init(&o);
  o.std_in = o.std_out = o.std_err = FUT_STDIO_PIPE;
  fut_process_t *p = sh(loop, "exec sleep 10", &o);
  struct comm c = {.p = p, .in = "x", .inlen = 1};
  fut_t *t = spawn(loop, comm_main, &c);
  drain(loop);
  assert_false(fut_done(t));
  /* The close reports its pending tasks (asyncio's "Task was destroyed
   * but it is pending!"). */
  fx_exc_t exc;
  fx_exc_capture(loop, &exc);
  assert_int_equal(fut_loop_close(loop), 0);
  assert_true(fut_done(t));
  assert_int_equal(c.rc, -ECANCELED);
  int code;
  assert_true(fut_process_returncode(p, &code));
  assert_int_equal(code, -SIGKILL);
  assert_true(exc.count >= 1);
  fut_unref(t);
  fut_process_unref(p);
}

/* fut_loop_fork: the child's copy of the loop lets go of the parent's
 * children (code 255, no signal through them); the parent still owns and
 * reaps them. */
static void test_process_loop_fork_forgets_parents_children(void **state) {
  fut_loop_t *loop = *state;
  fut_process_t *p = sh(loop, "exec sleep 10", NULL);
  fflush(NULL);
  pid_t child = fork();
  if (child == 0) {
    int code = 0;
    bool ok = fut_loop_fork(loop) == 0 && fut_process_returncode(p, &code) &&
              code == 255 && fut_process_kill(p) == -ESRCH;
    _exit(ok ? 0 : 1);
  }
  assert_true(child > 0);
  int st = 0;
  assert_int_equal(waitpid(child, &st, 0), child);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  assert_false(fut_process_returncode(p, NULL));
  assert_int_equal(fut_process_kill(p), 0);
  assert_int_equal(wait_in_task(loop, p), -SIGKILL);
  fut_process_unref(p);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* a test program's habit; children reset it */
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_process_exit_codes),
      FX_LOOP_TEST(test_process_killed_by_signal),
      FX_LOOP_TEST(test_process_wait_future_form),
      FX_LOOP_TEST(test_process_cancel_one_wait),
      FX_LOOP_TEST(test_process_not_in_task),
      FX_LOOP_TEST(test_process_communicate_10mib_through_cat),
      FX_LOOP_TEST(test_process_communicate_child_ignores_input),
      FX_LOOP_TEST(test_process_communicate_wait_for_timeout_then_kill),
      FX_LOOP_TEST(test_process_pipes_as_streams),
      FX_LOOP_TEST(test_process_exec_missing_binary),
      FX_LOOP_TEST(test_process_200_concurrent_children),
      FX_LOOP_TEST(test_process_close_fds),
      FX_LOOP_TEST(test_process_stdio_cwd_env_session),
      FX_LOOP_TEST(test_process_with_process_pool),
      FX_LOOP_TEST(test_process_pidfd_fallback_polls),
      FX_LOOP_TEST(test_process_dropped_handle_still_reaped),
      FX_LOOP_TEST(test_process_loop_close_kills_children),
      FX_LOOP_TEST(test_process_loop_close_during_communicate),
      FX_LOOP_TEST(test_process_leaves_foreign_children),
      FX_LOOP_TEST(test_process_loop_fork_forgets_parents_children),
      FX_LOOP_TEST(test_process_sigchld_ignored_reports_255),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
