/* Name resolution (asyncio's loop.getaddrinfo / getnameinfo).
 *
 * A numeric host (getaddrinfo with AI_NUMERICHOST succeeds) or a NULL host
 * is resolved in the calling thread.  A name goes to the loop's DNS pool
 * (struct fut__net_state.dns): a thread pool of FUT_DNS_MAX_CONCURRENCY
 * workers named fut-dns_<n>, made on the first lookup that needs it and
 * shut down by net.c when the loop closes.
 *
 * Lifetimes.  A lookup is a heap job (struct job) with two owners: the
 * caller (the awaiting task, or fut_getaddrinfo_future until it returns)
 * and the pool side, released by a done callback on the job's cfuture.
 * That callback runs exactly once however the cfuture ends: the job ran,
 * or it was cancelled before it started (the loop future cancelled, or the
 * pool shut down at loop close).  Whoever lets go last frees the job and
 * a result nobody took, so a task cancelled while its lookup runs leaks
 * nothing: the lookup finishes in its thread and the list is freed there.
 * The future form hands the list to the cfuture as its pointer result
 * with freeaddrinfo as destructor, so the loop future (which keeps the
 * cfuture alive) owns it. */
#include "net/internal.h"

#include <stdio.h>
#include <string.h>

/* ---- errors -------------------------------------------------------------- */

/* The code of a getaddrinfo / getnameinfo failure: a resolver failure is
 * FUT_E_RESOLVE; out of memory and bad flags keep their errno. */
static int gai_code(int rc) {
  switch (rc) {
  case EAI_MEMORY:
    return -ENOMEM;
  case EAI_BADFLAGS:
    return -EINVAL;
  default:
    return FUT_E_RESOLVE;
  }
}

/* Records getaddrinfo's failure rc (errno e for EAI_SYSTEM) for host:port
 * and returns its code. */
static int ai_error(int rc, int e, const char *host, const char *port) {
  const char *sys = rc == EAI_SYSTEM ? fut_strerror(-e) : "";
  return fut__error(gai_code(rc), "cannot resolve '%s'%s%s%s: %s%s%s",
                    host ? host : "(null)", port ? " port '" : "",
                    port ? port : "", port ? "'" : "", gai_strerror(rc),
                    *sys ? ": " : "", sys);
}

/* A numeric form of sa for messages. */
static const char *sa_str(const struct sockaddr *sa, socklen_t salen, char *buf,
                          size_t cap) {
  char h[NI_MAXHOST], s[NI_MAXSERV];
  if (getnameinfo(sa, salen, h, sizeof h, s, sizeof s,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    snprintf(buf, cap, "an address of family %d", sa->sa_family);
  else if (sa->sa_family == AF_INET6)
    snprintf(buf, cap, "[%s]:%s", h, s);
  else
    snprintf(buf, cap, "%s:%s", h, s);
  return buf;
}

static int ni_error(int rc, int e, const struct sockaddr *sa, socklen_t salen) {
  char a[NI_MAXHOST + NI_MAXSERV + 8];
  const char *sys = rc == EAI_SYSTEM ? fut_strerror(-e) : "";
  return fut__error(gai_code(rc), "cannot look up the name of %s: %s%s%s",
                    sa_str(sa, salen, a, sizeof a), gai_strerror(rc),
                    *sys ? ": " : "", sys);
}

static void free_ai(void *p) {
  freeaddrinfo(p);
}

/* ---- the job ------------------------------------------------------------- */

enum { JOB_ADDRINFO, JOB_NAMEINFO };

struct job {
  atomic_uint refs;     /* the caller + the pool side (cfuture callback) */
  atomic_bool finished; /* the lookup ran: rc, sys_errno and the results
                           below are written (release / acquire) */
  int kind;             /* JOB_* */
  int rc;               /* getaddrinfo's / getnameinfo's return */
  int sys_errno;        /* errno after it, for EAI_SYSTEM */
  /* getaddrinfo */
  const char *host;      /* in tail, or NULL */
  const char *port;      /* in tail, or NULL */
  struct addrinfo hints; /* flags, family, socktype, protocol */
  bool to_cf;            /* the list becomes the cfuture's result */
  struct addrinfo *res;  /* the list until a task takes it */
  /* getnameinfo */
  struct sockaddr_storage sa;
  socklen_t salen;
  int flags;
  char *hbuf, *sbuf; /* in tail, or NULL */
  size_t hlen, slen;
  char tail[]; /* strings and buffers */
};

static void job_release(struct job *j) {
  if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (j->res)
    freeaddrinfo(j->res);
  fut__free(j);
}

/* The cfuture is done (the job ran, or will never run): the pool side
 * lets go.  Any thread. */
static void job_cf_done(fut_cfuture_t *cf, void *arg) {
  (void)cf;
  job_release(arg);
}

/* Runs in a fut-dns worker.  Touches nothing of j once cf may be done:
 * the pool side's reference goes with cf's completion. */
static int job_run(void *arg, fut_cfuture_t *cf) {
  struct job *j = arg;
  struct addrinfo *res = NULL;
  int rc, e;
  errno = 0;
  if (j->kind == JOB_ADDRINFO)
    rc = getaddrinfo(j->host, j->port, &j->hints, &res);
  else
    rc = getnameinfo((const struct sockaddr *)&j->sa, j->salen, j->hbuf,
                     (socklen_t)j->hlen, j->sbuf, (socklen_t)j->slen, j->flags);
  e = errno;
  j->rc = rc;
  j->sys_errno = e;
  bool to_cf = rc == 0 && j->to_cf;
  if (!to_cf)
    j->res = res;
  /* The message becomes the cfuture's (and so the future form's)
   * exception message; a task records it again on its own thread. */
  int code = 0;
  if (rc)
    code = j->kind == JOB_ADDRINFO
               ? ai_error(rc, e, j->host, j->port)
               : ni_error(rc, e, (const struct sockaddr *)&j->sa, j->salen);
  atomic_store_explicit(&j->finished, true, memory_order_release);
  /* Last: completing cf may free j. */
  if (to_cf && fut_cfuture_set_result(cf, res, free_ai) != 0)
    freeaddrinfo(res); /* cannot happen: cf is ours and running */
  return code;         /* otherwise fut_job_run completes cf after this */
}

/* A getaddrinfo job (one reference: the caller's). */
static struct job *job_addrinfo(const char *host, const char *port,
                                const struct addrinfo *hints, bool to_cf) {
  size_t hl = host ? strlen(host) + 1 : 0, pl = port ? strlen(port) + 1 : 0;
  struct job *j = fut__calloc(1, sizeof *j + hl + pl);
  if (!j)
    return NULL;
  atomic_init(&j->refs, 1);
  atomic_init(&j->finished, false);
  j->kind = JOB_ADDRINFO;
  if (host)
    j->host = memcpy(j->tail, host, hl);
  if (port)
    j->port = memcpy(j->tail + hl, port, pl);
  if (hints) {
    j->hints.ai_flags = hints->ai_flags;
    j->hints.ai_family = hints->ai_family;
    j->hints.ai_socktype = hints->ai_socktype;
    j->hints.ai_protocol = hints->ai_protocol;
  } else {
    j->hints.ai_family = AF_UNSPEC;
  }
  j->to_cf = to_cf;
  return j;
}

/* ---- the pool ------------------------------------------------------------ */

static int dns_pool(fut_loop_t *loop, fut_executor_t **out) {
  struct fut__net_state *st = fut__net_state(loop);
  if (!st)
    return -ENOMEM;
  if (st->closing)
    return fut__error(FUT_E_CLOSED, "name resolution: the loop is closing");
  if (st->dns && fut__thread_pool_forked(st->dns)) {
    /* The loop was carried into a forked child: the parent's pool has no
     * threads here. */
    fut_executor_free(st->dns);
    st->dns = NULL;
  }
  if (!st->dns) {
    fut_thread_pool_opts_t o;
    fut_thread_pool_opts_init(&o);
    o.max_workers = FUT_DNS_MAX_CONCURRENCY;
    o.name_prefix = "fut-dns";
    int err = fut_thread_pool_new_ex(&o, &st->dns);
    if (err)
      return err;
  }
  *out = st->dns;
  return 0;
}

/* Runs j on the loop's DNS pool; *out is the loop future of the lookup.
 * On success the pool side holds a reference to j (taken here); on
 * failure j is as it was. */
static int submit(fut_loop_t *loop, struct job *j, fut_t **out) {
  *out = NULL;
  fut_executor_t *pool = NULL;
  int err = dns_pool(loop, &pool);
  if (err)
    return err;
  atomic_store_explicit(&j->refs, 2, memory_order_relaxed);
  fut_cfuture_t *cf;
  if ((err = fut_executor_submit(pool, job_run, j, &cf))) {
    atomic_store_explicit(&j->refs, 1, memory_order_relaxed);
    return err;
  }
  /* A fresh cfuture's first callback takes no allocation, so this cannot
   * fail; if it did, the pool side's reference is settled here. */
  if ((err = fut_cfuture_add_done_callback(cf, job_cf_done, j))) {
    if (!fut_cfuture_cancel(cf))
      (void)fut_cfuture_exception(cf, FUT_FOREVER, NULL); /* it runs */
    job_release(j);
    fut_cfuture_unref(cf);
    return err;
  }
  err = fut_wrap_future(loop, cf, out);
  if (err)
    fut_cfuture_cancel(cf); /* nobody will read it */
  fut_cfuture_unref(cf);
  return err;
}

/* Waits in task t for j on the pool.  Returns 0 (j finished without error)
 * or a negative code, recorded on this thread. */
static int await_job(struct fut__task *t, struct job *j) {
  fut_t *f;
  int err = submit(t->x.fut.loop, j, &f);
  if (err)
    return err;
  err = fut_await(f, NULL);
  if (err && !fut_done(f))
    fut_cancel(f, NULL); /* the task is being closed: stop waiting */
  fut_unref(f);
  if (err == -ECANCELED ||
      !atomic_load_explicit(&j->finished, memory_order_acquire))
    return err;
  if (j->rc)
    return j->kind == JOB_ADDRINFO
               ? ai_error(j->rc, j->sys_errno, j->host, j->port)
               : ni_error(j->rc, j->sys_errno, (const struct sockaddr *)&j->sa,
                          j->salen);
  return err;
}

/* ---- getaddrinfo --------------------------------------------------------- */

/* Resolves inline when host is NULL or numeric.  Returns 0 (*res set), 1
 * (a name: look it up on the pool), or a negative code. */
static int addrinfo_inline(const char *host, const char *port,
                           const struct addrinfo *hints,
                           struct addrinfo **res) {
  struct addrinfo h;
  memset(&h, 0, sizeof h);
  if (hints) {
    h.ai_flags = hints->ai_flags;
    h.ai_family = hints->ai_family;
    h.ai_socktype = hints->ai_socktype;
    h.ai_protocol = hints->ai_protocol;
  }
  bool user_numeric = h.ai_flags & AI_NUMERICHOST;
  if (host)
    h.ai_flags |= AI_NUMERICHOST;
  errno = 0;
  int rc = getaddrinfo(host, port, &h, res);
  if (rc == 0)
    return 0;
  int e = errno;
  *res = NULL;
  if (host && rc == EAI_NONAME && !user_numeric)
    return 1;
  return ai_error(rc, e, host, port);
}

static int check_names(const char *what, const char *host, const char *port) {
  if (!host && !port)
    return fut__error(-EINVAL, "%s: host and port are both NULL", what);
  return 0;
}

/* getaddrinfo inside task t. */
static int addrinfo_task(struct fut__task *t, const char *host,
                         const char *port, const struct addrinfo *hints,
                         struct addrinfo **res) {
  int err = addrinfo_inline(host, port, hints, res);
  if (err <= 0)
    return err;
  struct job *j = job_addrinfo(host, port, hints, false);
  if (!j)
    return fut__error(-ENOMEM, "cannot resolve '%s': out of memory", host);
  err = await_job(t, j);
  if (!err) {
    *res = j->res;
    j->res = NULL;
  }
  job_release(j);
  return err;
}

int fut_getaddrinfo(const char *host, const char *port,
                    const struct addrinfo *hints, struct addrinfo **res) {
  static const char what[] = "fut_getaddrinfo";
  if (res)
    *res = NULL;
  struct fut__task *t = fut__task_current(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (!res)
    return fut__error(-EINVAL, "%s: NULL res", what);
  int err = check_names(what, host, port);
  return err ? err : addrinfo_task(t, host, port, hints, res);
}

int fut_getaddrinfo_future(fut_loop_t *loop, const char *host, const char *port,
                           const struct addrinfo *hints, fut_t **out) {
  static const char what[] = "fut_getaddrinfo_future";
  if (!out)
    return fut__error(-EINVAL, "%s: NULL out", what);
  *out = NULL;
  if (!loop)
    return fut__error(-EINVAL, "%s: NULL loop", what);
  int err = check_names(what, host, port);
  if (err)
    return err;
  fut_t *f;
  struct addrinfo *res;
  int rc = addrinfo_inline(host, port, hints, &res);
  if (rc <= 0) {
    /* Known now: a future already done.  A resolver failure is the
     * future's exception, as a later one would be. */
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fut_last_error());
    if ((err = fut_new(loop, &f))) {
      if (res)
        freeaddrinfo(res);
      return err;
    }
    err = rc == 0 ? fut_set_result(f, res, free_ai)
                  : fut_set_exception(f, rc, "%s", msg);
    if (err) {
      if (res)
        freeaddrinfo(res);
      fut_unref(f);
      return err;
    }
    *out = f;
    return 0;
  }
  if ((err = fut__check_usable(loop)))
    return err;
  struct job *j = job_addrinfo(host, port, hints, true);
  if (!j)
    return fut__error(-ENOMEM, "%s: out of memory", what);
  err = submit(loop, j, out);
  job_release(j); /* the pool side keeps it while it runs */
  return err;
}

int fut__resolve(const char *host, int port, int family, int socktype,
                 int flags, struct addrinfo **res) {
  static const char what[] = "name resolution";
  *res = NULL;
  struct fut__task *t = fut__task_current(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (port < 0 || port > 65535)
    return fut__error(-EINVAL, "port %d is out of range (0 to 65535)", port);
  char serv[8];
  snprintf(serv, sizeof serv, "%d", port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family;
  hints.ai_socktype = socktype;
  hints.ai_flags = flags | AI_NUMERICSERV;
  return addrinfo_task(t, host && *host ? host : NULL, serv, &hints, res);
}

/* ---- getnameinfo --------------------------------------------------------- */

/* The most of a caller's host or service buffer used. */
#define NAME_CAP 4096u

int fut_getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
                    size_t hostlen, char *serv, size_t servlen, int flags) {
  static const char what[] = "fut_getnameinfo";
  if (host && hostlen)
    host[0] = '\0';
  if (serv && servlen)
    serv[0] = '\0';
  struct fut__task *t = fut__task_current(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (!sa || salen == 0 || salen > sizeof(struct sockaddr_storage))
    return fut__error(-EINVAL, "%s: %s", what,
                      !sa ? "NULL address" : "address length out of range");
  if ((!host && hostlen) || (!serv && servlen))
    return fut__error(-EINVAL, "%s: a NULL %s buffer of non-zero length", what,
                      !host && hostlen ? "host" : "service");
  if (!hostlen)
    host = NULL;
  if (!servlen)
    serv = NULL;
  if (!host && !serv)
    return fut__error(-EINVAL, "%s: neither host nor service asked", what);
  /* getnameinfo takes socklen_t lengths and never writes more than a
   * host name or a Unix path: a bigger buffer is used in part. */
  if (hostlen > NAME_CAP)
    hostlen = NAME_CAP;
  if (servlen > NAME_CAP)
    servlen = NAME_CAP;
  int rc;
  if ((!host || (flags & NI_NUMERICHOST)) &&
      (!serv || (flags & NI_NUMERICSERV))) {
    errno = 0;
    rc = getnameinfo(sa, salen, host, (socklen_t)hostlen, serv,
                     (socklen_t)servlen, flags);
    if (rc) {
      int e = errno;
      if (host)
        host[0] = '\0';
      if (serv)
        serv[0] = '\0';
      return ni_error(rc, e, sa, salen);
    }
    return 0;
  }
  struct job *j = fut__calloc(1, sizeof *j + hostlen + servlen);
  if (!j)
    return fut__error(-ENOMEM, "%s: out of memory", what);
  atomic_init(&j->refs, 1);
  atomic_init(&j->finished, false);
  j->kind = JOB_NAMEINFO;
  memcpy(&j->sa, sa, salen);
  j->salen = salen;
  j->flags = flags;
  j->hbuf = host ? j->tail : NULL;
  j->hlen = hostlen;
  j->sbuf = serv ? j->tail + hostlen : NULL;
  j->slen = servlen;
  int err = await_job(t, j);
  if (!err) {
    if (host)
      memcpy(host, j->hbuf, hostlen);
    if (serv)
      memcpy(serv, j->sbuf, servlen);
  }
  job_release(j);
  return err;
}
