/* libfuture — the process layer's private interface: the child watcher
 * (pidfd) and subprocesses (asyncio's create_subprocess_exec / _shell).
 * Includes the signal layer's header (and so every layer below).  Never
 * installed.
 *
 *   watcher.c      the layer's loop part: children not yet reaped, their
 *                  pidfd watchers or the waitpid(pid, WNOHANG) poll, reaping,
 *                  killing what is left at loop close
 *   spawn.c        spawn options, posix_spawn, the child's stdio
 *   process.c      the process object: wait, signals, pipes, references
 *   communicate.c  fut_process_communicate
 */
#ifndef FUT_PROCESS_INTERNAL_H
#define FUT_PROCESS_INTERNAL_H

#include "signal/internal.h"

#include "future/process.h"

#include <sys/types.h>

/* Close rank of the process layer's loop part: after the tasks (a task may
 * wait on a child) and before the network (whose transports are the
 * pipes). */
#define FUT__RANK_PROCESS 37

struct fut_process {
  fut_loop_t *loop;
  uint32_t refs;           /* the caller's, plus the watcher's until reaped */
  pid_t pid;               /* the child; never reused while !reaped (only we
                              reap it) */
  int pidfd;               /* readable at exit; -1 when polled or reaped */
  bool reaped;             /* waitpid collected it: code is valid */
  bool polled;             /* no pidfd: the state's poll timer reaps it */
  int code;                /* exit status 0..255, or -signo */
  fut_writer_t *in;        /* stdin's writer (a reference), or NULL */
  fut_reader_t *out, *err; /* stdout's / stderr's reader (references) */
  fut_t **waiters;         /* wait futures (references), resolved at reap */
  size_t nwaiters, capwaiters;
  struct fut__qnode node; /* in the state's live list until reaped */
};

/* ---- the child watcher (watcher.c) ------------------------------------- */

/* pidfd_open(2); a hook so that tests can make it fail (ENOSYS) and
 * exercise the polling fallback.  Returns the fd or -1 with errno set. */
extern int (*fut__sys_pidfd_open)(pid_t pid, unsigned flags);

/* Starts watching p's child (p->pid set, p->refs counts the watcher's
 * reference already): a pidfd watcher, or the poll.  Returns 0, or a
 * negative code when neither can be set up (the caller kills and reaps). */
int fut__child_watch(fut_process_t *p);
/* Reaps p's child now, blocking (after a SIGKILL; spawn's failure path). */
void fut__child_reap_now(fut_process_t *p);

/* ---- the process object (process.c) ------------------------------------ */

/* The child is gone with code: resolves the waiters. */
void fut__process_exited(fut_process_t *p, int code);
/* 0 when called in a task of p's loop, else the error (recorded) for
 * `what`: FUT_E_NOT_IN_TASK, -EINVAL, FUT_E_OTHER_LOOP. */
int fut__process_task_check(const fut_process_t *p, const char *what);

#endif
