/* libfuture — process pool internals shared by the files of src/procpool.
 *
 *   pool.c        the pool object: options, creation, submit, shutdown
 *   manager.c     the parent's manager thread: its life, the poll set, the
 *                 control socket, worker records, death handling
 *   dispatch.c    which worker gets which job; non-blocking frame writes
 *   receive.c     frames from workers: reading, checking, delivering
 *   forkserver.c  the constructor, the fork server, starting it
 *   worker.c      a worker's main loop, fut_buf_*
 *   frames.c      frame I/O helpers and function naming
 *   executor.c    the pool as a fut_executor_t
 *
 * Processes: parent (user program, threaded) --fork+exec--> fork server
 * (single-threaded, an exec of /proc/self/exe) --fork--> workers.
 * Sockets: parent <-> server: one SOCK_SEQPACKET control socket (small
 * messages, SCM_RIGHTS); parent <-> each worker: one SOCK_STREAM socket
 * carrying length-prefixed frames. */
#ifndef FUT_PROCPOOL_INTERNAL_H
#define FUT_PROCPOOL_INTERNAL_H

#include "base/internal.h"
#include "base/queue.h"

#include <poll.h>
#include <signal.h>
#include <sys/types.h>

#include "future/process_pool.h"

/* ---- frames on a worker socket ----------------------------------------- */
enum {
  FUT__PP_JOB = 1,    /* parent -> worker: data = arg, aux = module name */
  FUT__PP_RESULT = 2, /* worker -> parent: data = result or nothing,
                         aux = error message */
  FUT__PP_HELLO = 3   /* worker -> parent once: err = initializer's code,
                         aux = its message */
};

enum {
  FUT__PP_KIND_PROC = 0, /* fut_process_pool_job_fn(arg, len, fut_buf_t *) */
  FUT__PP_KIND_BYTES = 1 /* fut_bytes_fn(data, len, &out, &out_len) */
};
#define FUT__PP_KIND_MASK 0xff
/* JOB flag (in err, beside the kind): the job was queued behind a running
 * one.  The worker claims it in the claim table before running it and
 * skips it, sending nothing, when the parent took it back (dispatch.c). */
#define FUT__PP_JOB_CLAIM 0x100

/* The claim table: nclaims words in memory shared by the parent and the
 * workers (a memfd the server maps before forking them).  A queued job of
 * id owns word id % nclaims, holding id << 2 | FUT__PP_CLAIM_*: the worker
 * moves it QUEUED -> RUNNING, the parent QUEUED -> REVOKED; one
 * compare-and-swap wins.  Ids are fresh at every dispatch, so a stale copy
 * of a job in a socket never matches again. */
enum {
  FUT__PP_CLAIM_QUEUED = 1,
  FUT__PP_CLAIM_RUNNING = 2,
  FUT__PP_CLAIM_REVOKED = 3
};
static inline uint64_t fut__pp_claim_word(uint64_t id, unsigned state) {
  return id << 2 | state;
}

#define FUT__PP_MAGIC 0x66757470u /* "futp" */

/* Every frame: this header, then len bytes = data then aux trailing bytes.
 * Data comes first so a received buffer is handed over as the result
 * without a copy, and the argument is 16-byte aligned in the worker. */
struct fut__pp_hdr {
  uint32_t magic; /* FUT__PP_MAGIC */
  uint32_t type;  /* FUT__PP_* */
  uint64_t id;    /* job id (JOB, RESULT) */
  uint64_t len;   /* bytes after the header: data + aux */
  uint64_t off;   /* JOB: function offset in its module */
  int32_t err;    /* RESULT / HELLO: 0 or a negative code;
                     JOB: the function's kind, FUT__PP_KIND_* */
  uint32_t aux;   /* trailing string bytes (module name / message) */
};

/* ---- control messages (parent <-> fork server, SEQPACKET) -------------- */
enum {
  FUT__CTL_READY = 1,   /* server -> parent: a = server pid */
  FUT__CTL_CONFIG = 2,  /* parent -> server: a = max_tasks_per_child,
                           b = initializer offset, c = max_frame; payload:
                           initializer module name NUL, initarg */
  FUT__CTL_SPAWN = 3,   /* parent -> server: a = worker id, fd attached */
  FUT__CTL_SPAWNED = 4, /* server -> parent: a = worker id, b = pid, or
                           b = 0 and c = -errno when fork failed */
  FUT__CTL_DIED = 5,    /* server -> parent: b = pid, c = wait status */
  FUT__CTL_KILL = 6     /* parent -> server: b = pid to SIGKILL */
};

struct fut__ctl_msg {
  uint32_t type;     /* FUT__CTL_* */
  uint32_t has_init; /* CONFIG: an initializer is set */
  uint64_t a, b;
  int64_t c;
  uint64_t d; /* CONFIG: words of the claim table (its memfd attached), or
                 0 without one */
};

#define FUT__CTL_MAX_PAYLOAD                                                   \
  (64u * 1024u) /* initarg + name, fits one                                    \
                   SEQPACKET message */
#define FUT__PP_ENV "FUT_FORKSERVER_FD"

/* ---- frames.c ------------------------------------------------------------ */
/* Where a function lives, as the worker can find it again. */
struct fut__fn_name {
  char module[4096]; /* dl_iterate_phdr name; "" = the main executable */
  size_t module_len;
  uint64_t off; /* address - module load bias */
};
/* Names the code address fn: fails with FUT_E_NOT_SENDABLE when no loaded
 * module maps it executable. */
int fut__pp_name_fn(uintptr_t fn, struct fut__fn_name *out);
/* Resolves (module, off) in this process: 0 and *fn, or
 * FUT_E_NOT_SENDABLE.  May dlopen a module that is not loaded yet. */
int fut__pp_resolve_fn(const char *module, uint64_t off, uintptr_t *fn);

/* Blocking I/O of exactly n bytes (retries EINTR and short transfers).
 * Return 0, -errno, or -EPIPE on EOF. */
int fut__pp_write_all(int fd, const void *p, size_t n);
int fut__pp_read_all(int fd, void *p, size_t n);
/* SEQPACKET control messages with an optional fd and payload. */
int fut__pp_ctl_send(int fd, const struct fut__ctl_msg *m, const void *pl,
                     size_t pl_len, int pass_fd);
/* Receives one message: 0, -EPIPE on EOF, -errno.  *fd gets a passed fd
 * (close-on-exec) or -1; *pl_len the payload bytes copied into pl (up to
 * pl_cap). */
int fut__pp_ctl_recv(int fd, struct fut__ctl_msg *m, void *pl, size_t pl_cap,
                     size_t *pl_len, int *passed_fd);
/* "killed by signal 9 (SIGKILL)" / "exited with status 3" for a wait
 * status, into buf. */
void fut__pp_describe_status(int status, char *buf, size_t cap);

/* ---- forkserver.c -------------------------------------------------------- */
/* Forks and execs the fork server (from the calling thread, which becomes
 * its PR_SET_PDEATHSIG parent).  *ctl receives the parent's end of the
 * control socket, *pid the server's pid.  Waits for READY.  The
 * constructor that turns an exec'd image into the server lives in the same
 * object file, so linking this function links it. */
int fut__forkserver_start(int *ctl, pid_t *pid);

/* ---- worker.c ------------------------------------------------------------ */
struct fut__pp_config {
  unsigned max_tasks; /* 0 = unlimited */
  size_t max_frame;   /* cap on payload bytes */
  bool has_init;
  uint64_t init_off; /* initializer offset */
  char *init_module; /* malloc'd */
  void *initarg;     /* malloc'd */
  size_t initarg_len;
  _Atomic uint64_t *claims; /* the claim table, or NULL */
  size_t nclaims;
};
/* A worker's life: initializer, HELLO, then jobs until EOF or max_tasks.
 * Never returns. */
_Noreturn void fut__pp_worker_main(int sock, const struct fut__pp_config *c);

/* ---- the pool (pool.c and the manager's files) --------------------------- */

/* One job, from submit to completion; one allocation holding the header
 * and the payload right after it, so a frame goes out as one iovec. */
struct fut__pp_job {
  struct fut__qnode node;          /* in the pool's pending queue, the retry
                                      queue or a worker's in-flight FIFO */
  fut_process_pool_start_cb start; /* NULL, or asked once before dispatch */
  fut_process_pool_done_cb done;   /* called exactly once */
  void *ud;
  bool started;           /* start() said yes: no longer cancellable */
  struct fut__pp_hdr hdr; /* the JOB frame header */
  char payload[];         /* arg bytes then module name (hdr.len) */
};

/* A FIFO of jobs; initialised with fut__pp_q_init (a zeroed one is not
 * empty but broken). */
struct fut__pp_jobq {
  struct fut__qnode head; /* fut__pp_job.node, oldest first */
  size_t len;             /* jobs in it */
};

enum {
  FUT__W_LIVE,  /* socket open; may receive jobs unless retiring */
  FUT__W_CLOSED /* socket closed (EOF, or by us); waiting for DIED */
};

struct fut__pp_worker {
  struct fut__qnode node;       /* in the pool's workers list */
  uint64_t wid;                 /* unique per pool, names it in SPAWN */
  pid_t pid;                    /* 0 until SPAWNED */
  int fd;                       /* parent end, non-blocking; -1 once closed */
  int state;                    /* FUT__W_* */
  bool retiring;                /* max_tasks jobs dispatched: no more */
  bool hello;                   /* HELLO received: it got through its
                                   start-up (initializer included) */
  bool dead;                    /* DIED received: status is valid */
  int status;                   /* wait status from DIED */
  unsigned dispatched;          /* jobs ever sent to it */
  struct fut__pp_jobq inflight; /* sent (or being sent), oldest first; the
                                   head is the job it runs */
  struct fut__pp_job *send_job; /* first in-flight job not fully written,
                                   NULL when all are */
  bool wbroken;                 /* a write failed: it gets no more jobs */
  bool suspect;                 /* jobs were taken back from it: none is
                                   queued behind its running job until it
                                   answers again */
  const char *kill_reason;      /* static text when we killed it, or NULL */
  size_t send_off;              /* bytes of send_job's frame written */
  char *rx;                     /* FUT__PP_RX_CAP bytes, rx[rx_pos..rx_len)
                                   unread */
  size_t rx_pos, rx_len;
  bool have_hdr; /* hdr holds the current frame's header */
  struct fut__pp_hdr hdr;
  char *big;      /* payload of a frame larger than rx */
  size_t big_got; /* bytes of big received */
};

/* A worker's input buffer in the parent (receive.c). */
#define FUT__PP_RX_CAP (64u * 1024u)

struct fut_process_pool {
  /* Immutable after fut_process_pool_create. */
  unsigned fork_gen; /* fut__fork_generation() at creation */
  unsigned max_workers;
  unsigned max_tasks;
  size_t max_frame;
  pthread_t thread; /* the manager */
  int evfd;         /* doorbell: submit/shutdown -> manager */
  struct fut__fn_name init_name;
  bool has_init;
  void *initarg; /* fut__malloc'd copy */
  size_t initarg_len;

  pthread_mutex_t lock;
  pthread_cond_t cv;           /* signals start_done, finished */
  struct fut__pp_jobq pending; /* lock: submitted, not yet dispatched */
  uint64_t next_id;            /* lock */
  bool sleeping;               /* lock: manager is (about to be) in poll */
  bool rung;                   /* lock: evfd written, not yet drained */
  bool shutdown;               /* lock: no more submits */
  bool abandon;                /* lock: shutdown timed out: kill, fail */
  size_t torn;                 /* lock: jobs the teardown failed, and
                                  workers it killed in their start-up */
  bool broken;                 /* lock: the pool failed for good */
  bool start_done;             /* lock: the manager finished starting */
  int start_err;               /* lock: its result */
  bool finished;               /* lock: the manager tore everything down */
  bool joined;                 /* lock: someone joined (or joins) thread,
                                  or it was detached */
  bool orphaned;               /* lock: detached; the manager frees the
                                  pool when it finishes */
  char broken_msg[256];        /* lock: why the pool broke */

  _Atomic pid_t server_pid; /* 0 when no server */
  atomic_uint nworkers;     /* live workers */

  /* Manager thread only. */
  int ctl;                   /* control socket to the server */
  struct fut__qnode workers; /* fut__pp_worker.node, newest first */
  unsigned nlive;            /* workers in FUT__W_LIVE */
  unsigned nspawning;        /* SPAWN sent, SPAWNED not yet received */
  bool spawn_blocked;        /* a spawn failed softly: no new try
                                before spawn_retry_at (or, while other
                                workers live, the next poll event) */
  uint64_t spawn_retry_at;   /* fut__now() when the back-off ends */
  unsigned spawn_fails;      /* soft failures since the last worker made */
  uint64_t spawn_first_fail; /* fut__now() of the first of them */
  int spawn_err;             /* the last one's error and what failed */
  const char *spawn_what;
  uint64_t next_wid;
  struct fut__pp_jobq retry; /* started jobs of dead workers: first */
  _Atomic uint64_t *claims;  /* the claim table (mmap), or NULL: then no
                                job is queued behind a running one */
  size_t nclaims;
  uint64_t next_jid;           /* job ids are fresh at every dispatch */
  struct pollfd *pfds;         /* poll set, pcap entries */
  struct fut__pp_worker **pws; /* pws[i]: the worker of a poll entry */
  size_t pcap;                 /* entries of pfds and pws */
};

/* ---- the parent's pool descriptors across fork() (pool.c) ---------------
 * Every descriptor a pool holds in the parent (its doorbell, the control
 * socket, each worker's socket) is created close-on-exec and recorded in a
 * process-wide set; a pthread_atfork child handler closes the set in the
 * child of a plain fork(), so that child keeps no end of the pool alive and
 * the parent's workers and fork server still see EOF when the parent closes
 * its ends.  Creation and closing happen under the set's lock, which the
 * fork's prepare handler takes too: a fork never sees a pool fd unrecorded. */

/* socketpair(AF_UNIX, type | SOCK_CLOEXEC) recording both ends: 0 or
 * -errno. */
int fut__pp_socketpair(int type, int sv[2]);
/* eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), recorded: the fd or -errno. */
int fut__pp_eventfd(void);
/* Forgets fd (without closing it): it becomes a plain descriptor that a
 * fork's child keeps (the fork server's end before its own fork). */
void fut__pp_fd_forget(int fd);
/* Closes a recorded fd and forgets it. */
void fut__pp_close(int fd);

/* fut_process_pool_submit for either kind of function (pool.c). */
int fut__pp_submit_kind(fut_process_pool_t *pool, int kind, uintptr_t fn,
                        const void *arg, size_t len,
                        fut_process_pool_start_cb start,
                        fut_process_pool_done_cb done, void *ud);
/* Lets go of the pool without waiting: if the manager still runs (after a
 * shutdown that did not wait), it frees the pool itself when done. */
void fut__pp_detach(fut_process_pool_t *pool);

/* Frees the pool's memory (the manager thread is gone or is the caller). */
void fut__pp_free(fut_process_pool_t *pool);

/* Under pool->lock: wakes the manager if it sleeps (pool.c).  Retries
 * EINTR; returns 0, or -errno of a failed write (then not rung). */
int fut__pp_ring(fut_process_pool_t *pool);

/* ---- manager.c: the manager thread (every function below runs on it) ---- */
void *fut__pp_manager(void *pool);
/* Calls the job's done callback with err and msg, and frees the job. */
void fut__pp_job_fail(struct fut__pp_job *j, int err, const char *msg);
/* fut__pp_job_fail for every job of q, in order; q ends empty. */
void fut__pp_fail_queue(struct fut__pp_jobq *q, int err, const char *msg);
/* Marks the pool broken (new submits fail; the first message is kept) and
 * fails every queued job with FUT_E_BROKEN_POOL. */
void fut__pp_set_broken(fut_process_pool_t *pool, const char *fmt, ...)
    FUT_PRINTF(2, 3);
bool fut__pp_is_broken(fut_process_pool_t *pool);
/* Asks the fork server for a new worker: its record, live and empty, or
 * NULL when it cannot be made (the pool may then be broken). */
struct fut__pp_worker *fut__pp_spawn(fut_process_pool_t *pool);
/* Test hook (fault injection): the next n attempts to make a worker fail
 * as if socketpair(2) had returned EMFILE; 0 ends it.  Any thread. */
void fut__pp_fail_next_spawn(unsigned n);

/* ---- dispatch.c ---------------------------------------------------------- */
/* Sends queued jobs to workers while some have room (spawning workers on
 * demand), then writes what the sockets take without blocking. */
void fut__pp_dispatch(fut_process_pool_t *pool);
/* On the manager thread, under pool->lock: jobs are queued and a worker
 * (or a new one) has room for one. */
bool fut__pp_dispatchable(fut_process_pool_t *pool);
/* Jobs of q that were queued behind a running job and never started:
 * their claims are revoked (the worker skips them if it ever reads them). */
void fut__pp_release_claims(fut_process_pool_t *pool, struct fut__pp_jobq *q);
/* Writes what it can of the worker's unsent frames. */
void fut__pp_flush_out(struct fut__pp_worker *w);

/* ---- receive.c ----------------------------------------------------------- */
/* Reads and delivers what the worker sent.  Returns 0 when the socket is
 * drained for now, 1 at EOF (or a read error), -EPROTO on garbage,
 * -ENOMEM when a large result finds no memory. */
int fut__pp_receive(fut_process_pool_t *pool, struct fut__pp_worker *w);

/* ---- job queues and the worker list, on base/queue.h ------------------- */

static inline void fut__pp_q_init(struct fut__pp_jobq *q) {
  fut__q_init(&q->head);
  q->len = 0;
}

static inline void fut__pp_q_push(struct fut__pp_jobq *q,
                                  struct fut__pp_job *j) {
  fut__q_insert_tail(&q->head, &j->node);
  q->len++;
}

static inline void fut__pp_q_push_front(struct fut__pp_jobq *q,
                                        struct fut__pp_job *j) {
  fut__q_insert_head(&q->head, &j->node);
  q->len++;
}

/* The oldest job, or NULL when q is empty. */
static inline struct fut__pp_job *
fut__pp_q_first(const struct fut__pp_jobq *q) {
  struct fut__qnode *n = fut__q_first(&q->head);
  return n ? fut__q_data(n, struct fut__pp_job, node) : NULL;
}

/* The job after j in q, or NULL. */
static inline struct fut__pp_job *fut__pp_q_next(const struct fut__pp_jobq *q,
                                                 const struct fut__pp_job *j) {
  struct fut__qnode *n = j->node.next;
  return n == &q->head ? NULL : fut__q_data(n, struct fut__pp_job, node);
}

/* Unlinks and returns the oldest job, or NULL when q is empty. */
static inline struct fut__pp_job *fut__pp_q_pop(struct fut__pp_jobq *q) {
  struct fut__pp_job *j = fut__pp_q_first(q);
  if (j) {
    fut__q_remove(&j->node);
    q->len--;
  }
  return j;
}

/* Moves every job of from to the tail of to, in order; from ends empty. */
static inline void fut__pp_q_move(struct fut__pp_jobq *to,
                                  struct fut__pp_jobq *from) {
  for (struct fut__pp_job *j; (j = fut__pp_q_pop(from));)
    fut__pp_q_push(to, j);
}

/* Moves every job of from to the front of to, in order; from ends empty. */
static inline void fut__pp_q_move_front(struct fut__pp_jobq *to,
                                        struct fut__pp_jobq *from) {
  struct fut__qnode *after = &to->head;
  for (struct fut__pp_job *j; (j = fut__pp_q_pop(from)); after = &j->node) {
    fut__q_insert_head(after, &j->node); /* links j right after `after` */
    to->len++;
  }
}

/* The pool's workers, newest first: the first, or the one after w; NULL at
 * the end. */
static inline struct fut__pp_worker *
fut__pp_first_worker(const fut_process_pool_t *p) {
  struct fut__qnode *n = fut__q_first(&p->workers);
  return n ? fut__q_data(n, struct fut__pp_worker, node) : NULL;
}
static inline struct fut__pp_worker *
fut__pp_next_worker(const fut_process_pool_t *p,
                    const struct fut__pp_worker *w) {
  struct fut__qnode *n = w->node.next;
  return n == &p->workers ? NULL : fut__q_data(n, struct fut__pp_worker, node);
}

#endif
