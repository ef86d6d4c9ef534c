/* The fork server: a fresh exec of /proc/self/exe that forks the workers.
 *
 * Why exec and not a plain fork of the parent: the parent is usually
 * threaded (a thread pool, the pool's own manager thread, the user's
 * threads).  A fork copies only the calling thread; any lock another thread
 * held at that instant (malloc's arenas, a stdio FILE, the loader lock, the
 * user's mutexes) stays locked forever in the child.  pthread_atfork can
 * protect our own locks but not libc's internals nor the user's.  An exec'd
 * image starts with one thread and no inherited lock; workers forked from
 * it are as safe as a fork can be.  The price is naming functions as
 * (module, offset) instead of raw pointers (see frames.c) and one
 * exec per pool.
 *
 * The server's mode is chosen by a library constructor, before the
 * program's main: when the environment holds FUT__PP_ENV=<fd>:<ppid> the
 * constructor never returns.  In a static link the constructor comes with
 * fut__forkserver_start, which the pool calls: same object file. */
#include "procpool/internal.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define FUT__PP_VALGRIND_H 1
#endif
#endif

extern char **environ;

#define CTL_FD 3 /* the control socket's fd number in the server */

/* posix_spawn_file_actions_addclosefrom_np appeared in glibc 2.34; older
 * libcs (or -DFUT_PP_NO_SPAWN, to test it) use fork + exec. */
#if !defined(FUT_PP_NO_SPAWN) && defined(__GLIBC__) &&                         \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define USE_POSIX_SPAWN 1
#else
#define USE_POSIX_SPAWN 0
#endif

/* ---- the server (runs in the exec'd image) ---------------------------- */

struct server {
  int ctl;                /* control socket to the parent */
  int sfd;                /* signalfd for SIGCHLD */
  sigset_t oldmask;       /* mask to restore in workers */
  void (*pipe_disp)(int); /* SIGPIPE disposition inherited through exec
                             (the parent's, or SIG_DFL when it had a
                             handler): restored in workers */
  pid_t *kids;            /* live (unreaped) workers */
  size_t nkids, capkids;
  struct fut__pp_config cfg; /* from the parent's CONFIG message */
};

/* Makes room to record one more worker, before forking it: a worker that
 * could not be recorded would never have its death reported (reap skips
 * unknown children), so its jobs would wait forever.  -ENOMEM: no fork. */
static int reserve_kid(struct server *s) {
  if (s->nkids < s->capkids)
    return 0;
  size_t cap = s->capkids ? s->capkids * 2 : 16;
  pid_t *k = realloc(s->kids, cap * sizeof *k);
  if (!k)
    return -ENOMEM;
  s->kids = k;
  s->capkids = cap;
  return 0;
}

static bool del_kid(struct server *s, pid_t pid) {
  for (size_t i = 0; i < s->nkids; i++)
    if (s->kids[i] == pid) {
      s->kids[i] = s->kids[--s->nkids];
      return true;
    }
  return false;
}

/* Reaps every exited child and reports it. */
static void reap(struct server *s) {
  for (;;) {
    int st;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid <= 0)
      return;
    if (!del_kid(s, pid))
      continue; /* a grandchild adopted? not ours to report */
    struct fut__ctl_msg m = {
        .type = FUT__CTL_DIED, .b = (uint64_t)pid, .c = st};
    (void)fut__pp_ctl_send(s->ctl, &m, NULL, 0, -1);
  }
}

static _Noreturn void server_exit(struct server *s) {
  /* The parent is gone or shut us down: no worker may outlive us. */
  for (size_t i = 0; i < s->nkids; i++)
    kill(s->kids[i], SIGKILL);
  while (s->nkids > 0) {
    int st;
    pid_t pid = waitpid(-1, &st, 0);
    if (pid < 0 && errno != EINTR)
      break;
    if (pid > 0)
      del_kid(s, pid);
  }
  _exit(0);
}

static void spawn(struct server *s, uint64_t wid, int fd) {
  pid_t me = getpid();
  int rerr = reserve_kid(s);
  /* A failed reserve reads as a failed fork: the parent requeues the
   * worker's jobs (or breaks a pool left with no worker). */
  pid_t pid = rerr ? (errno = -rerr, -1) : fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != me)
      _exit(0);
    close(s->ctl);
    close(s->sfd);
    signal(SIGCHLD, SIG_DFL);
    /* Jobs see SIGPIPE as the pool's parent had it, not as the server
     * set it for itself (the worker's own writes use MSG_NOSIGNAL). */
    signal(SIGPIPE, s->pipe_disp);
    sigprocmask(SIG_SETMASK, &s->oldmask, NULL);
    fut__pp_worker_main(fd, &s->cfg);
  }
  int err = pid < 0 ? -errno : 0;
  close(fd);
  if (pid > 0)
    s->kids[s->nkids++] = pid; /* room reserved above */
  struct fut__ctl_msg m = {.type = FUT__CTL_SPAWNED,
                           .a = wid,
                           .b = pid > 0 ? (uint64_t)pid : 0,
                           .c = err};
  (void)fut__pp_ctl_send(s->ctl, &m, NULL, 0, -1);
}

static int read_config(struct server *s) {
  static char pl[FUT__CTL_MAX_PAYLOAD + 1];
  struct fut__ctl_msg m;
  size_t n = 0;
  int fd = -1;
  int err = fut__pp_ctl_recv(s->ctl, &m, pl, FUT__CTL_MAX_PAYLOAD, &n, &fd);
  if (err)
    return err;
  if (m.type != FUT__CTL_CONFIG) {
    if (fd >= 0)
      close(fd);
    return -EPROTO;
  }
  if (fd >= 0) {
    /* The claim table: mapped once here, inherited by every worker. */
    void *t = m.d && m.d <= (1u << 24)
                  ? mmap(NULL, m.d * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                         MAP_SHARED, fd, 0)
                  : MAP_FAILED;
    close(fd);
    if (t == MAP_FAILED)
      return -ENOMEM; /* the parent would queue jobs we cannot claim */
    s->cfg.claims = t;
    s->cfg.nclaims = (size_t)m.d;
  }
  s->cfg.max_tasks = (unsigned)m.a;
  s->cfg.max_frame = (size_t)m.c;
  s->cfg.has_init = m.has_init != 0;
  s->cfg.init_off = m.b;
  if (s->cfg.has_init) {
    size_t name_len = strnlen(pl, n);
    if (name_len == n)
      return -EPROTO;
    s->cfg.init_module = strdup(pl);
    s->cfg.initarg_len = n - name_len - 1;
    /* 16-byte aligned like job arguments. */
    s->cfg.initarg = aligned_alloc(16, (s->cfg.initarg_len + 16) & ~(size_t)15);
    if (!s->cfg.init_module || !s->cfg.initarg)
      return -ENOMEM;
    memcpy(s->cfg.initarg, pl + name_len + 1, s->cfg.initarg_len);
  }
  return 0;
}

/* One message from the parent: SPAWN a worker on the passed socket, or
 * KILL one of ours.  EOF or a broken socket ends the server. */
static void handle_request(struct server *s) {
  struct fut__ctl_msg m;
  int fd = -1;
  int err = fut__pp_ctl_recv(s->ctl, &m, NULL, 0, NULL, &fd);
  if (err == -EPIPE || (err && err != -EAGAIN && err != -EPROTO))
    server_exit(s);
  if (err)
    return;
  if (m.type == FUT__CTL_SPAWN && fd >= 0) {
    spawn(s, m.a, fd);
    fd = -1;
  } else if (m.type == FUT__CTL_KILL) {
    pid_t pid = (pid_t)m.b;
    for (size_t i = 0; i < s->nkids; i++)
      if (s->kids[i] == pid)
        kill(pid, SIGKILL);
  }
  if (fd >= 0)
    close(fd);
}

static _Noreturn void server_main(int ctl, pid_t parent) {
  struct server s = {.ctl = ctl, .sfd = -1};
  /* Die with the pool's manager thread (the spawning thread is the one
   * PR_SET_PDEATHSIG watches); if it died before this line, we were
   * reparented already: leave. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(0);
  fcntl(ctl, F_SETFD, FD_CLOEXEC); /* it had to survive one exec only */
  /* A parent ignoring SIGCHLD would make our children auto-reaped and
   * their statuses lost. */
  signal(SIGCHLD, SIG_DFL);
  /* exec kept SIG_IGN if the parent ignored SIGPIPE, else it is SIG_DFL. */
  s.pipe_disp = signal(SIGPIPE, SIG_IGN);
  if (s.pipe_disp == SIG_ERR)
    s.pipe_disp = SIG_DFL;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, &s.oldmask);
  sigdelset(&s.oldmask, SIGCHLD);
  s.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (s.sfd < 0)
    _exit(127);
  struct fut__ctl_msg ready = {.type = FUT__CTL_READY, .a = (uint64_t)getpid()};
  if (fut__pp_ctl_send(ctl, &ready, NULL, 0, -1) || read_config(&s))
    _exit(127);

  for (;;) {
    struct pollfd p[2] = {{ctl, POLLIN, 0}, {s.sfd, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      server_exit(&s);
    }
    if (p[1].revents) {
      struct signalfd_siginfo si;
      while (read(s.sfd, &si, sizeof si) > 0) {
      }
      reap(&s);
    }
    if (p[0].revents)
      handle_request(&s);
  }
}

/* Runs before main in every program linking libfuture; a no-op unless
 * this process is a fork server the pool just exec'd.  The marker is
 * removed from the environment at once so workers' own children (and
 * anything a job execs) run normally. */
__attribute__((constructor(101))) static void forkserver_ctor(void) {
  const char *v = getenv(FUT__PP_ENV);
  if (!v)
    return;
  int fd = -1;
  long ppid = -1;
  int n = 0;
  if (sscanf(v, "%d:%ld%n", &fd, &ppid, &n) != 2 || v[n] != '\0' || fd < 0 ||
      ppid <= 0)
    return; /* not ours: leave the program alone */
  unsetenv(FUT__PP_ENV);
  /* A stray variable (not set by us) must not hijack the program: ours
   * always comes with a SEQPACKET socket at fd. */
  int type = 0;
  socklen_t tl = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 ||
      type != SOCK_SEQPACKET)
    return;
  server_main(fd, (pid_t)ppid);
}

/* ---- starting it (runs in the parent) --------------------------------- */

/* The server's environment: ours without a stale marker, then the marker
 * naming its control fd and its parent (written into marker, cap bytes).
 * A fut__calloc'd array of borrowed strings, or NULL.  Built before the
 * fork or spawn: between fork and exec in a threaded process only
 * async-signal-safe calls are allowed. */
static char **server_env(char *marker, size_t cap, pid_t parent) {
  size_t nenv = 0;
  for (char **e = environ; e && *e; e++)
    nenv++;
  char **envp = fut__calloc(nenv + 2, sizeof *envp);
  if (!envp)
    return NULL;
  size_t k = 0;
  size_t plen = strlen(FUT__PP_ENV);
  for (char **e = environ; e && *e; e++)
    if (strncmp(*e, FUT__PP_ENV, plen) != 0 || (*e)[plen] != '=')
      envp[k++] = *e;
  snprintf(marker, cap, "%s=%d:%ld", FUT__PP_ENV, CTL_FD, (long)parent);
  envp[k++] = marker;
  envp[k] = NULL;
  return envp;
}

static char *server_argv[] = {(char *)"libfuture-forkserver", NULL};

#if USE_POSIX_SPAWN
/* Starts /proc/self/exe with fd as its CTL_FD, every other fd closed and
 * an empty signal mask: its pid, or -1 with errno set.
 *
 * posix_spawn (clone with CLONE_VFORK in glibc) copies no page tables and
 * runs no pthread_atfork handler of the program: nothing but dup2,
 * closefrom, the signal mask and exec happens in the child. */
static pid_t exec_server(const char *exe, int fd, char **envp, pid_t parent) {
  (void)parent;
  sigset_t empty;
  sigemptyset(&empty);
  pid_t pid = -1;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  int err = posix_spawn_file_actions_init(&fa);
  if (!err) {
    err = posix_spawnattr_init(&at);
    if (err)
      posix_spawn_file_actions_destroy(&fa);
  }
  if (!err) {
    /* dup2 onto itself clears close-on-exec (POSIX 2017, glibc 2.29). */
    err = posix_spawn_file_actions_adddup2(&fa, fd, CTL_FD);
    if (!err)
      err = posix_spawn_file_actions_addclosefrom_np(&fa, CTL_FD + 1);
    if (!err)
      err = posix_spawnattr_setsigmask(&at, &empty);
    if (!err)
      err = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    if (!err)
      err = posix_spawn(&pid, exe, &fa, &at, server_argv, envp);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
  }
  if (err) {
    errno = err;
    return -1;
  }
  return pid;
}
#else
static void close_from(int lowfd) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, (unsigned)lowfd, ~0u, 0u) == 0)
    return;
#endif
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536)
    max = 65536;
  for (int fd = lowfd; fd < max; fd++)
    close(fd);
}

/* As the posix_spawn version, with fork and only async-signal-safe calls
 * before the exec. */
static pid_t exec_server(const char *exe, int fd, char **envp, pid_t parent) {
  sigset_t empty;
  sigemptyset(&empty);
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    if (fd == CTL_FD) {
      fcntl(fd, F_SETFD, 0);
    } else if (dup2(fd, CTL_FD) < 0) {
      _exit(127);
    }
    close_from(CTL_FD + 1);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    execve(exe, server_argv, envp);
    _exit(127);
  }
  return pid;
}
#endif

/* How long the exec'd fork server may take to say READY (an exec and a
 * constructor: milliseconds, even on a loaded machine). */
#define START_TIMEOUT_NS ((uint64_t)10 * 1000000000u)

/* The server's first message into *m: 0, -errno, or -ETIMEDOUT.  Bounded:
 * when libfuture was dlopen'ed, /proc/self/exe has no fork server
 * constructor and the exec'd image is the host program itself, which never
 * answers and keeps the socket open. */
static int first_message(int ctl, struct fut__ctl_msg *m) {
  uint64_t deadline = fut__now() + START_TIMEOUT_NS;
  for (uint64_t now; (now = fut__now()) < deadline;) {
    struct pollfd pf = {ctl, POLLIN, 0};
    int ms = (int)((deadline - now + 999999u) / 1000000u);
    int r = poll(&pf, 1, ms);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0)
      break;
    return r < 0 ? -errno : fut__pp_ctl_recv(ctl, m, NULL, 0, NULL, NULL);
  }
  return -ETIMEDOUT;
}

/* The server did not say READY (err: why, or 0 for a wrong message):
 * closes its socket (so a live server exits), kills one that hangs, reaps
 * it and returns the error. */
static int start_failed(int ctl, pid_t pid, int err) {
  fut__pp_close(ctl);
  if (err == -ETIMEDOUT)
    kill(pid, SIGKILL);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (err == -ETIMEDOUT)
    return fut__error(err,
                      "process pool: the fork server (exec of "
                      "/proc/self/exe) did not answer within %u s: "
                      "is libfuture loaded at program start (not "
                      "dlopen'ed)?",
                      (unsigned)(START_TIMEOUT_NS / 1000000000u));
  return fut__error(err ? err : -EPROTO,
                    "process pool: the fork server (exec of "
                    "/proc/self/exe) did not start: %s",
                    err ? fut_strerror(err) : "bad handshake");
}

/* Under valgrind, /proc/self/exe is valgrind's tool (the process's real
 * image), which refuses to run as "libfuture-forkserver": the pool could
 * not start.  There the kernel's link is not the program, but valgrind
 * answers readlink("/proc/self/exe") with the program's path, which we
 * exec instead.  Valgrind does not follow the exec (unless
 * --trace-children=yes): the fork server and the workers run natively, and
 * memcheck checks the pool's side in this process. */
static bool under_valgrind(void) {
#ifdef FUT__PP_VALGRIND_H
  if (RUNNING_ON_VALGRIND)
    return true;
#endif
  /* Without the header: valgrind preloads its vgpreload_*.so. */
  const char *pre = getenv("LD_PRELOAD");
  return pre && strstr(pre, "vgpreload_");
}

/* The image to exec as the fork server, into buf: /proc/self/exe (robust
 * to the program's file being renamed or replaced), or under valgrind the
 * program's path. */
static const char *server_exe(char *buf, size_t cap) {
  if (under_valgrind()) {
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n > 0 && buf[0] == '/') {
      buf[n] = '\0';
      return buf;
    }
  }
  return "/proc/self/exe";
}

int fut__forkserver_start(int *ctl_out, pid_t *pid_out) {
  *ctl_out = -1;
  *pid_out = 0;
  int sv[2];
  int err = fut__pp_socketpair(SOCK_SEQPACKET, sv);
  if (err)
    return fut__error(err, "process pool: socketpair: %s", strerror(-err));
  pid_t parent = getpid();
  char marker[64];
  char **envp = server_env(marker, sizeof marker, parent);
  if (!envp) {
    fut__pp_close(sv[0]);
    fut__pp_close(sv[1]);
    return fut__error(-ENOMEM, "process pool: out of memory");
  }
#if !USE_POSIX_SPAWN
  /* fork() runs the pool's atfork child handler, which closes recorded
   * fds: the server's end must survive until its dup2. */
  fut__pp_fd_forget(sv[1]);
#endif
  char exe_buf[PATH_MAX];
  const char *exe = server_exe(exe_buf, sizeof exe_buf);
  pid_t pid = exec_server(exe, sv[1], envp, parent);
  int saved = errno;
  fut__free(envp);
#if USE_POSIX_SPAWN
  fut__pp_close(sv[1]);
#else
  close(sv[1]);
#endif
  if (pid < 0) {
    fut__pp_close(sv[0]);
    return fut__error(-saved, "process pool: starting the fork server (%s): %s",
                      exe, strerror(saved));
  }
  struct fut__ctl_msg m;
  err = first_message(sv[0], &m);
  if (err || m.type != FUT__CTL_READY || m.a != (uint64_t)pid)
    return start_failed(sv[0], pid, err);
  *ctl_out = sv[0];
  *pid_out = pid;
  return 0;
}
