/* Spawning (asyncio's create_subprocess_exec / _shell): the child's stdio,
 * its fds, posix_spawn, then the streams and the watcher.
 *
 * Why posix_spawn: glibc's is clone(CLONE_VM | CLONE_VFORK) on a stack of
 * its own with every signal blocked, so it copies no page tables, runs no
 * pthread_atfork handler, is safe in a threaded program, and reports the
 * exec's errno (ENOENT, EACCES, ...) as its result: no CLOEXEC error pipe
 * needed, and never "exit 127" for a missing program.  Every step of the
 * child (dup2 of the stdio, closing fds, chdir, setsid, the signal
 * dispositions) is a file action or an attribute. */
#include "process/internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#if defined(__GLIBC__) && defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 34)
#define HAVE_CLOSEFROM_NP 1
#endif
#if __GLIBC_PREREQ(2, 29)
#define HAVE_ADDCHDIR_NP 1
#endif
#endif

void fut_spawn_opts_init(fut_spawn_opts_t *o) {
  if (!o)
    return;
  memset(o, 0, sizeof *o);
  o->std_in = o->std_out = o->std_err = FUT_STDIO_INHERIT;
  o->close_fds = true;
  o->process_group = -1;
}

/* What spawn builds and must undo on failure. */
struct plan {
  int parent[3]; /* our end of each pipe, or -1 */
  int child[3];  /* the fd the child gets as 0, 1, 2, or -1 (inherit) */
  int owned[8];  /* fds opened for the child (pipe ends, /dev/null,
                    copies of low fds), closed after the spawn */
  int nowned;
  bool err_to_out; /* stderr = FUT_STDIO_STDOUT */
};

static void plan_close(struct plan *pl) {
  for (int i = 0; i < pl->nowned; i++)
    close(pl->owned[i]);
  pl->nowned = 0;
  for (int i = 0; i < 3; i++)
    if (pl->parent[i] >= 0) {
      close(pl->parent[i]);
      pl->parent[i] = -1;
    }
}

static int check_stdio(int which, fut_stdio_t v) {
  static const char *names[] = {"std_in", "std_out", "std_err"};
  if (v >= 0) {
    if (fcntl(v, F_GETFD) < 0)
      return fut__error(-EBADF, "spawn: %s: fd %d is not open", names[which],
                        v);
    return 0;
  }
  if (v == FUT_STDIO_INHERIT || v == FUT_STDIO_PIPE || v == FUT_STDIO_DEVNULL)
    return 0;
  if (v == FUT_STDIO_STDOUT && which == 2)
    return 0;
  return fut__error(-EINVAL, "spawn: %s: bad value %d%s", names[which], v,
                    v == FUT_STDIO_STDOUT ? " (FUT_STDIO_STDOUT is for "
                                            "std_err only)"
                                          : "");
}

/* Sets up the child's fd `which` from v. */
static int plan_stdio(struct plan *pl, int which, fut_stdio_t v, int *devnull) {
  if (v == FUT_STDIO_INHERIT || v == FUT_STDIO_STDOUT) {
    pl->child[which] = -1;
    return 0;
  }
  if (v == FUT_STDIO_PIPE) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
      return fut__error(-errno, "spawn: socketpair for the child's fd %d: %s",
                        which, fut_strerror(-errno));
    pl->parent[which] = sv[0];
    pl->owned[pl->nowned++] = sv[1];
    pl->child[which] = sv[1];
    return 0;
  }
  if (v == FUT_STDIO_DEVNULL) {
    if (*devnull < 0) {
      *devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
      if (*devnull < 0)
        return fut__error(-errno, "spawn: /dev/null: %s", fut_strerror(-errno));
      pl->owned[pl->nowned++] = *devnull;
    }
    pl->child[which] = *devnull;
    return 0;
  }
  /* A caller's fd.  One below 3 other than its own slot could be
   * overwritten by an earlier dup2 of the child's stdio (std_in = 1,
   * std_out = 0): the child gets a copy above 2 instead. */
  if (v < 3 && v != which) {
    int c = fcntl(v, F_DUPFD_CLOEXEC, 3);
    if (c < 0)
      return fut__error(-errno, "spawn: dup of fd %d: %s", v,
                        fut_strerror(-errno));
    pl->owned[pl->nowned++] = c;
    v = c;
  }
  pl->child[which] = v;
  return 0;
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

static bool is_passed(const int *sorted, size_t n, int fd) {
  return bsearch(&fd, sorted, n, sizeof *sorted, cmp_int) != NULL;
}

/* The file actions: stdio, pass_fds, close_fds, cwd. */
static int build_actions(posix_spawn_file_actions_t *fa, const struct plan *pl,
                         const fut_spawn_opts_t *o, const int *pass,
                         size_t npass) {
  int err = 0;
  for (int i = 0; i < 3 && !err; i++)
    if (pl->child[i] >= 0)
      /* dup2 onto itself clears close-on-exec (glibc 2.29, POSIX 2024). */
      err = posix_spawn_file_actions_adddup2(fa, pl->child[i], i);
  if (!err && pl->err_to_out)
    err = posix_spawn_file_actions_adddup2(fa, 1, 2);
  for (size_t i = 0; i < npass && !err; i++)
    err = posix_spawn_file_actions_adddup2(fa, pass[i], pass[i]);
  if (!err && o->close_fds) {
    int top = npass ? pass[npass - 1] : 2;
    /* The gaps between the passed fds: close() of an fd that is not open
     * is no error in the child. */
    for (int fd = 3; fd < top && !err; fd++)
      if (!is_passed(pass, npass, fd))
        err = posix_spawn_file_actions_addclose(fa, fd);
#ifdef HAVE_CLOSEFROM_NP
    if (!err)
      err = posix_spawn_file_actions_addclosefrom_np(fa, top + 1);
#else
    /* Without closefrom: whatever is open now (an fd another thread opens
     * meanwhile without O_CLOEXEC may leak). */
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (!err && d && (e = readdir(d)))
      if (e->d_name[0] != '.' && atoi(e->d_name) > top)
        err = posix_spawn_file_actions_addclose(fa, atoi(e->d_name));
    if (d)
      closedir(d);
#endif
  }
  if (!err && o->cwd) {
#ifdef HAVE_ADDCHDIR_NP
    err = posix_spawn_file_actions_addchdir_np(fa, o->cwd);
#else
    err = ENOTSUP;
#endif
  }
  return err ? fut__error(-err, "spawn: file actions: %s", fut_strerror(-err))
             : 0;
}

static int do_spawn(pid_t *pid, char *const argv[], const struct plan *pl,
                    const fut_spawn_opts_t *o, const int *pass, size_t npass) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  int err = posix_spawn_file_actions_init(&fa);
  if (err)
    return fut__error(-err, "spawn: %s", fut_strerror(-err));
  if ((err = posix_spawnattr_init(&at))) {
    posix_spawn_file_actions_destroy(&fa);
    return fut__error(-err, "spawn: %s", fut_strerror(-err));
  }
  int rc = build_actions(&fa, pl, o, pass, npass);
  if (!rc) {
    /* Every signal at its default disposition (an ignored one would stay
     * ignored across exec: SIGPIPE above all) and an empty mask. */
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (o->start_new_session)
      flags |= POSIX_SPAWN_SETSID;
    if (o->process_group >= 0) {
      flags |= POSIX_SPAWN_SETPGROUP;
      (void)posix_spawnattr_setpgroup(&at, o->process_group);
    }
    (void)posix_spawnattr_setsigdefault(&at, &all);
    (void)posix_spawnattr_setsigmask(&at, &none);
    (void)posix_spawnattr_setflags(&at, flags);
    char *const *envp = o->env ? o->env : environ;
    err = strchr(argv[0], '/')
              ? posix_spawn(pid, argv[0], &fa, &at, argv, envp)
              : posix_spawnp(pid, argv[0], &fa, &at, argv, envp);
    if (err)
      rc = fut__error(-err, "cannot run '%s'%s%s%s: %s", argv[0],
                      o->cwd ? " (in " : "", o->cwd ? o->cwd : "",
                      o->cwd ? ")" : "", fut_strerror(-err));
  }
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  return rc;
}

/* Checks pass_fds and returns a sorted copy in *out (NULL when none). */
static int sorted_pass(const fut_spawn_opts_t *o, int **out) {
  *out = NULL;
  if (!o->npass_fds)
    return 0;
  if (!o->pass_fds)
    return fut__error(-EINVAL, "spawn: npass_fds %zu with NULL pass_fds",
                      o->npass_fds);
  int *s = fut__malloc(o->npass_fds * sizeof *s);
  if (!s)
    return fut__error(-ENOMEM, "spawn: out of memory");
  for (size_t i = 0; i < o->npass_fds; i++) {
    int fd = o->pass_fds[i];
    if (fd < 3 || fcntl(fd, F_GETFD) < 0) {
      fut__free(s);
      return fut__error(fd < 3 ? -EINVAL : -EBADF,
                        "spawn: pass_fds[%zu] = %d %s", i, fd,
                        fd < 3 ? "(the stdio fds are std_in / std_out / "
                                 "std_err)"
                               : "is not open");
    }
    s[i] = fd;
  }
  qsort(s, o->npass_fds, sizeof *s, cmp_int);
  *out = s;
  return 0;
}

/* Our pipe ends as streams: stdin's writer, stdout's / stderr's reader. */
static int make_streams(fut_process_t *p, struct plan *pl,
                        const fut_spawn_opts_t *o) {
  for (int i = 0; i < 3; i++) {
    if (pl->parent[i] < 0)
      continue;
    int fd = pl->parent[i];
    pl->parent[i] = -1; /* the stream owns it, even on failure */
    fut_reader_t *r;
    fut_writer_t *w;
    int err = fut_stream_from_fd(p->loop, fd, o->stream, &r, &w);
    if (err)
      return err;
    if (i == 0) {
      p->in = w;
      fut_reader_unref(r);
    } else {
      *(i == 1 ? &p->out : &p->err) = r;
      fut_writer_unref(w);
    }
  }
  return 0;
}

int fut_create_subprocess_exec(fut_loop_t *loop, char *const argv[],
                               const fut_spawn_opts_t *opts,
                               fut_process_t **out) {
  if (out)
    *out = NULL;
  if (!loop || !argv || !argv[0] || !argv[0][0] || !out)
    return fut__error(-EINVAL, "fut_create_subprocess_exec: %s",
                      !loop               ? "NULL loop"
                      : !out              ? "NULL out"
                      : !argv || !argv[0] ? "no program"
                                          : "empty program name");
  int err = fut__check_usable(loop);
  if (err)
    return err;
  fut_spawn_opts_t o;
  if (opts)
    o = *opts;
  else
    fut_spawn_opts_init(&o);
  if ((err = check_stdio(0, o.std_in)) || (err = check_stdio(1, o.std_out)) ||
      (err = check_stdio(2, o.std_err)))
    return err;
  if (o.process_group < -1 || (o.process_group >= 0 && o.start_new_session))
    return fut__error(
        -EINVAL, "spawn: process_group %d%s", (int)o.process_group,
        o.process_group < -1 ? " (-1 keeps ours, 0 a new group, > 0 that group)"
                             : " with start_new_session (a session leader "
                               "cannot change its group)");
  int *pass;
  if ((err = sorted_pass(&o, &pass)))
    return err;
  struct plan pl = {.parent = {-1, -1, -1}, .child = {-1, -1, -1}};
  pl.err_to_out = o.std_err == FUT_STDIO_STDOUT;
  int devnull = -1;
  fut_process_t *p = fut__calloc(1, sizeof *p);
  if (!p) {
    fut__free(pass);
    return fut__error(-ENOMEM, "spawn: out of memory");
  }
  p->loop = loop;
  p->refs = 1;
  p->pidfd = -1;
  fut__q_init(&p->node);
  if (!(err = plan_stdio(&pl, 0, o.std_in, &devnull)) &&
      !(err = plan_stdio(&pl, 1, o.std_out, &devnull)) &&
      !(err = plan_stdio(&pl, 2, o.std_err, &devnull)))
    err = make_streams(p, &pl, &o);
  if (!err)
    err = do_spawn(&p->pid, argv, &pl, &o, pass, o.npass_fds);
  plan_close(&pl);
  fut__free(pass);
  if (err) {
    fut_process_unref(p);
    return err;
  }
  p->refs++; /* the watcher's */
  if ((err = fut__child_watch(p))) {
    /* Neither a pidfd watcher nor the poll (no memory): a child nobody
     * would reap must not run. */
    (void)kill(p->pid, SIGKILL);
    int st;
    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {
    }
    p->refs--;
    fut_process_unref(p);
    return err;
  }
  *out = p;
  return 0;
}

int fut_create_subprocess_shell(fut_loop_t *loop, const char *cmd,
                                const fut_spawn_opts_t *o,
                                fut_process_t **out) {
  if (out)
    *out = NULL;
  if (!cmd)
    return fut__error(-EINVAL, "fut_create_subprocess_shell: NULL command");
  char *argv[] = {(char *)"/bin/sh", (char *)"-c", (char *)cmd, NULL};
  return fut_create_subprocess_exec(loop, argv, o, out);
}
