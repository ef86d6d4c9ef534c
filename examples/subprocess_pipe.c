/* Subprocesses: runs a command (default `ls -l /`, or the arguments given)
 * with its stdout on a pipe, reads the output line by line from a task,
 * giving each line at most one second, prints it, then waits for the
 * exit code (negative: the signal that killed it). */
#include <errno.h>
#include <future.h>
#include <stdio.h>
#include <stdlib.h>

static int main_task(void *arg) {
  char **argv = arg;
  fut_spawn_opts_t o;
  fut_spawn_opts_init(&o);
  o.std_out = FUT_STDIO_PIPE; /* everything else inherited */
  fut_process_t *p;
  int err = fut_create_subprocess_exec(fut_get_running_loop(), argv, &o, &p);
  if (err) {
    fprintf(stderr, "%s\n", fut_last_error()); /* "cannot run 'x': ..." */
    return err;
  }
  fut_reader_t *out = fut_process_stdout(p); /* borrowed from p */
  size_t lines = 0;
  for (;;) {
    fut_timeout_t *t;
    void *line;
    size_t len;
    if ((err = fut_timeout_enter(FUT_SEC(1), &t)))
      break;
    err = fut_timeout_exit(t, fut_reader_readline(out, &line, &len));
    if (err || len == 0) /* -ETIMEDOUT, or EOF */
      break;
    printf("%3zu| %.*s", ++lines, (int)len, (char *)line);
    free(line);
  }
  if (err == -ETIMEDOUT) {
    fprintf(stderr, "no line within 1 s: killing %ld\n",
            (long)fut_process_pid(p));
    fut_process_kill(p);
  }
  int code;
  int werr = fut_process_wait(p, &code);
  if (!werr)
    printf("exit code %d, %zu lines\n", code, lines);
  fut_process_unref(p);
  return err ? err : werr ? werr : code ? -ECHILD : 0;
}

int main(int argc, char **argv) {
  static char *dflt[] = {"ls", "-l", "/", NULL};
  int err = fut_run(main_task, argc > 1 ? argv + 1 : dflt, NULL);
  if (err)
    fprintf(stderr, "subprocess_pipe: %s\n", fut_strerror(err));
  return err ? 1 : 0;
}
