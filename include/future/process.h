/* libfuture — subprocesses (asyncio's create_subprocess_exec,
 * create_subprocess_shell and asyncio.subprocess.Process).
 *
 *   fut_spawn_opts_t o;
 *   fut_spawn_opts_init(&o);
 *   o.std_out = FUT_STDIO_PIPE;
 *   fut_process_t *p;
 *   char *argv[] = {"ls", "-l", "/", NULL};
 *   int err = fut_create_subprocess_exec(loop, argv, &o, &p);
 *   ...                             // in a task:
 *   void *line;
 *   size_t len;
 *   while (!fut_reader_readline(fut_process_stdout(p), &line, &len) && len)
 *     fwrite(line, 1, len, stdout), free(line);
 *   int code;
 *   fut_process_wait(p, &code);     // 0..255, or -signo
 *   fut_process_unref(p);
 *
 * Spawning: posix_spawn (glibc: clone(CLONE_VM | CLONE_VFORK), no page
 * table copy, no pthread_atfork handler runs), so it is safe from a
 * threaded program and an exec failure (no such file, not executable, a bad
 * cwd) comes back as this call's error (-ENOENT, -EACCES, ...), never as
 * an exit status 127.  A program name without '/' is searched in PATH.
 * The child starts with every signal at its default disposition and an
 * empty signal mask.
 *
 * The child's pipes (FUT_STDIO_PIPE) are AF_UNIX stream socketpairs, not
 * pipe(2)s: the library's transports and streams (future/stream.h) drive
 * them.  For the child they read and write like pipes (EOF when we close
 * our end, EPIPE / SIGPIPE when it writes after we closed ours); only a
 * program that insists on S_ISFIFO or lseek sees the difference.
 *
 * The child watcher: each child gets a pidfd (pidfd_open, Linux 5.3)
 * watched by the loop; when it becomes readable the child is reaped with
 * waitpid(pid).  Without pidfd_open (ENOSYS, or no fd left), the loop polls
 * waitpid(pid, WNOHANG) for that child on a short timer (1 ms, doubling up
 * to 10 ms).  Either way only the children this layer started are reaped:
 * never waitpid(-1), so the process pool, a signal handler or the program
 * keep theirs.  A process whose handle was dropped is still reaped (no
 * zombie).  Closing the loop kills (SIGKILL) and reaps the children still
 * running (asyncio kills them when their transport closes).  A program that
 * sets SIGCHLD to SIG_IGN makes the kernel reap the children: their code is
 * then 255 (asyncio's "unknown child process").  In a forked child,
 * fut_loop_fork makes the loop let go of the parent's children: they read
 * as reaped with 255 there (send_signal: -ESRCH).
 *
 * Ownership: fut_create_subprocess_* gives one reference to the process,
 * dropped with fut_process_unref; the pipes' reader and writer are
 * borrowed from it (take your own with fut_reader_ref / fut_writer_ref to
 * keep one longer).  Dropping the last reference closes our ends of the
 * pipes.
 *
 * Awaitable calls (fut_process_wait, fut_process_communicate) follow
 * future/sock.h's rules: inside a task of the process's loop, cancelling
 * the task makes them return -ECANCELED with nothing half-done.
 *
 * Common errors: -EINVAL (NULL or bad argument), -ENOMEM, FUT_E_CLOSED
 * (the loop is closed), FUT_E_NOT_IN_TASK, FUT_E_OTHER_LOOP, -ECANCELED,
 * -ESRCH (signalling a process already reaped), and the spawn's own
 * -errno (-ENOENT, -EACCES, -ENOEXEC, -ENOTDIR, -EMFILE, -EAGAIN, ...).
 *
 * Threads: everything here on the loop's thread (the process belongs to
 * the loop it was created on).
 */
#ifndef FUTURE_PROCESS_H
#define FUTURE_PROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "future/future.h"
#include "future/loop.h"
#include "future/stream.h"
#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fut_process fut_process_t;

/* What one of the child's standard fds is: one of the constants below, or
 * an fd >= 0 of ours (borrowed: the child gets a copy of it). */
typedef int fut_stdio_t;
/* The child shares ours (asyncio's None). */
#define FUT_STDIO_INHERIT (-1)
/* A new pipe to us: the process's reader / writer (asyncio's PIPE). */
#define FUT_STDIO_PIPE (-2)
/* /dev/null (asyncio's DEVNULL). */
#define FUT_STDIO_DEVNULL (-3)
/* stderr only: wherever the child's stdout goes (asyncio's STDOUT). */
#define FUT_STDIO_STDOUT (-4)

typedef struct fut_spawn_opts {
  /* The child's fds 0, 1 and 2 (default FUT_STDIO_INHERIT). */
  fut_stdio_t std_in, std_out, std_err;
  /* The child's working directory (NULL: ours). */
  const char *cwd;
  /* The child's environment, a NULL-terminated "NAME=value" array (NULL:
   * ours). */
  char *const *env;
  /* Close every fd above 2 in the child except pass_fds (default true).
   * When false the child inherits our fds without close-on-exec (the
   * library's own are all close-on-exec). */
  bool close_fds;
  /* fds (> 2) the child keeps under the same numbers (their close-on-exec
   * flag is cleared in the child only). */
  const int *pass_fds;
  size_t npass_fds;
  /* setsid() in the child: a new session and process group. */
  bool start_new_session;
  /* The pipes' stream options (limit, write water marks); NULL: the
   * defaults. */
  const fut_stream_opts_t *stream;
  /* setpgid() in the child (asyncio's process_group): -1 (the default)
   * keeps ours, 0 makes a new group led by the child, > 0 joins that
   * group.  Not with start_new_session (-EINVAL). */
  pid_t process_group;
} fut_spawn_opts_t;

/* Fills *o with the defaults: everything inherited, close_fds true,
 * process_group -1. */
FUT_EXTERN void fut_spawn_opts_init(fut_spawn_opts_t *o);

/* ---- spawning -------------------------------------------------------------
 */

/* Starts argv[0] (searched in our PATH, not o->env's, when it has no
 * '/') with the arguments
 * argv (NULL-terminated, copied as the exec needs them) and the options o
 * (NULL: the defaults).  Never suspends: the child is running (or has
 * already failed to exec, which is this call's error) when it returns.
 * *out receives a reference the caller owns (NULL on failure).  Returns 0
 * or a negative code.  Errors: -EINVAL (NULL loop, argv, argv[0] or out,
 * a bad stdio value, FUT_STDIO_STDOUT on stdin or stdout, a pass fd < 3),
 * the exec's -errno with a message naming the program (-ENOENT no such
 * file, -EACCES not executable, -ENOEXEC, -ENOTDIR, -ENOENT for a missing
 * cwd), -EMFILE, -ENOMEM, -EAGAIN (process limit), FUT_E_CLOSED,
 * FUT_E_WRONG_THREAD. */
FUT_EXTERN int fut_create_subprocess_exec(fut_loop_t *loop, char *const argv[],
                                          const fut_spawn_opts_t *o,
                                          fut_process_t **out);
/* Runs cmd with "/bin/sh -c cmd" (asyncio's create_subprocess_shell; the
 * caller quotes).  Returns 0 or a negative code.  Errors: as
 * fut_create_subprocess_exec. */
FUT_EXTERN int fut_create_subprocess_shell(fut_loop_t *loop, const char *cmd,
                                           const fut_spawn_opts_t *o,
                                           fut_process_t **out);

/* ---- the process ----------------------------------------------------------
 */

/* The child's process id. */
FUT_EXTERN pid_t fut_process_pid(const fut_process_t *p);
/* asyncio's returncode: true once the child was reaped, with *code its
 * exit status (0..255) or -signo when a signal killed it; false while it
 * runs (*code untouched).  code may be NULL. */
FUT_EXTERN bool fut_process_returncode(const fut_process_t *p, int *code);
/* The loop the process belongs to. */
FUT_EXTERN fut_loop_t *fut_process_loop(const fut_process_t *p);

/* Awaitable: waits until the child exits and is reaped.  *code (code may
 * be NULL) receives the exit status 0..255, or -signo when a signal killed
 * it.  Returns 0 at once when already reaped.  Unlike asyncio it does not
 * read the pipes: a child blocked writing a full stdout pipe nobody reads
 * never exits (use fut_process_communicate).  Returns 0 or a negative
 * code.  Errors: FUT_E_NOT_IN_TASK, FUT_E_OTHER_LOOP, -EINVAL,
 * -ECANCELED, -ENOMEM. */
FUT_EXTERN int fut_process_wait(fut_process_t *p, int *code);
/* The form for callback code: *out receives a new future (the caller's
 * reference) that completes with the exit code as its integer result
 * (fut_result_i64) when the child is reaped, at once if it was.
 * Cancelling it only stops that wait.  Returns 0 or a negative code.
 * Errors: -EINVAL, -ENOMEM, FUT_E_CLOSED. */
FUT_EXTERN int fut_process_wait_future(fut_process_t *p, fut_t **out);

/* Sends signo to the child.  Returns 0 or a negative code.  Errors:
 * -ESRCH once the child was reaped (nothing is sent: its pid may belong to
 * another process by now), -EINVAL (bad signal), -EPERM. */
FUT_EXTERN int fut_process_send_signal(fut_process_t *p, int signo);
/* send_signal(SIGTERM).  Returns 0 or a negative code.  Errors: as
 * fut_process_send_signal. */
FUT_EXTERN int fut_process_terminate(fut_process_t *p);
/* send_signal(SIGKILL).  Returns 0 or a negative code.  Errors: as
 * fut_process_send_signal. */
FUT_EXTERN int fut_process_kill(fut_process_t *p);

/* Awaitable (asyncio's communicate): writes inlen bytes of in to the
 * child's stdin and closes it (even with no input, as asyncio and
 * subprocess.Popen do, so a filter sees EOF), reads its stdout and stderr
 * until EOF, all at once so that no full pipe can block either side, then waits
 * for the child to exit.  *out / *outlen and *err / *errlen (each pointer may
 * be NULL: that output is read and dropped) receive malloc'd bytes the caller
 * frees with free(), NULL / 0 for a stream that is not a pipe.  A child that
 * stops reading its stdin early (EPIPE) is not an error.  On any error
 * (including -ECANCELED, e.g. from fut_wait_for or a timeout block) nothing is
 * returned (the outputs are NULL / 0), the bytes read so far are dropped and
 * the child is left running.  Returns 0 or a negative code.  Errors:
 * FUT_E_NOT_IN_TASK, FUT_E_OTHER_LOOP, -EINVAL (input given but stdin is not a
 * pipe), -EBUSY (another task reads one of the pipes), -ECANCELED, -ENOMEM, a
 * pipe's error. */
FUT_EXTERN int fut_process_communicate(fut_process_t *p, const void *in,
                                       size_t inlen, void **out, size_t *outlen,
                                       void **err, size_t *errlen);

/* The writer of the child's stdin, NULL unless it is FUT_STDIO_PIPE
 * (borrowed from p). */
FUT_EXTERN fut_writer_t *fut_process_stdin(const fut_process_t *p);
/* The reader of the child's stdout, NULL unless it is FUT_STDIO_PIPE
 * (borrowed from p). */
FUT_EXTERN fut_reader_t *fut_process_stdout(const fut_process_t *p);
/* The reader of the child's stderr, NULL unless it is FUT_STDIO_PIPE
 * (borrowed from p). */
FUT_EXTERN fut_reader_t *fut_process_stderr(const fut_process_t *p);

/* Takes a reference; returns p. */
FUT_EXTERN fut_process_t *fut_process_ref(fut_process_t *p);
/* Drops a reference; the last one closes our ends of the pipes (the
 * child, if running, is still reaped when it exits).  NULL is a no-op. */
FUT_EXTERN void fut_process_unref(fut_process_t *p);

#ifdef __cplusplus
}
#endif
#endif
