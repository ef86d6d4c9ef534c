/* Servers (asyncio's Server): listening sockets with a read watcher each,
 * accepting up to backlog connections per wakeup.  When accept fails for
 * lack of fds or memory the watchers come off for accept_retry_delay_ns
 * and go back on from a timer: the pending connections wait in the
 * kernel's backlog, the loop does not spin, and the listeners stay. */
#include "net/internal.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void fut_server_opts_init(fut_server_opts_t *o) {
  if (!o)
    return;
  memset(o, 0, sizeof *o);
  o->family = AF_UNSPEC;
  o->backlog = 100;
  o->reuse_address = true;
  o->start_serving = true;
  o->accept_retry_delay_ns = 1000000000ull;
  o->unix_cleanup = true;
}

/* ---- accepting ----------------------------------------------------------- */

static void on_accept(void *arg);

static void listeners_on(fut_server_t *s) {
  for (size_t i = 0; i < s->nls; i++) {
    struct fut__listener *l = &s->ls[i];
    if (!l->on && fut_loop_add_reader(s->loop, l->fd, on_accept, l) == 0)
      l->on = true;
  }
}

static void listeners_off(fut_server_t *s) {
  for (size_t i = 0; i < s->nls; i++)
    if (s->ls[i].on) {
      fut_loop_remove_reader(s->loop, s->ls[i].fd);
      s->ls[i].on = false;
    }
}

static void retry_accept(void *arg) {
  fut_server_t *s = arg;
  fut_handle_unref(s->retry);
  s->retry = NULL;
  if (s->serving && !s->closed)
    listeners_on(s);
}

/* Out of fds or memory: stop accepting for a while. */
static void back_off(fut_server_t *s, int e) {
  listeners_off(s);
  char detail[96];
  snprintf(detail, sizeof detail, "accept: %s; accepting again in %llu ms",
           fut_strerror(-e), (unsigned long long)(s->retry_delay_ns / 1000000));
  fut__report_exception(s->loop, "server out of system resources", -e, NULL,
                        NULL, detail);
  if (!s->retry && fut__call_later_nocapture(s->loop, s->retry_delay_ns,
                                             retry_accept, s, &s->retry) != 0)
    s->retry = NULL; /* no timer: start_serving will turn them on */
}

static void on_accept(void *arg) {
  struct fut__listener *l = arg;
  fut_server_t *s = l->s;
  for (int i = 0; i < s->backlog && l->on; i++) {
    int c = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      int e = errno;
      if (e == EINTR || e == ECONNABORTED || e == EPROTO)
        continue;
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
        back_off(s, e);
      else if (e != EAGAIN && e != EWOULDBLOCK)
        fut__report_exception(s->loop, "server accept failed", -e, NULL, NULL,
                              fut_strerror(-e));
      return;
    }
    void *parg = s->factory_arg;
    int err = s->factory ? s->factory(s->factory_arg, &parg) : 0;
    if (err) {
      close(c); /* refused by the factory */
      continue;
    }
    err = fut__transport_new(s->loop, c, s->proto, parg, s, NULL);
    if (err) {
      /* The factory's argument gets its connection_lost, without a
       * transport, so it can be freed. */
      fut__report_exception(s->loop,
                            "cannot make a transport for an "
                            "accepted connection",
                            err, NULL, NULL, fut_last_error());
      if (s->proto->connection_lost)
        s->proto->connection_lost(NULL, err, parg);
    }
  }
}

/* ---- closing ------------------------------------------------------------- */

static void wake_waiters(fut_server_t *s) {
  if (!s->closed || s->nconns)
    return;
  for (size_t i = 0; i < s->nwaiters; i++) {
    if (fut_state(s->waiters[i]) == FUT_PENDING)
      fut_set_result(s->waiters[i], NULL, NULL);
    fut_unref(s->waiters[i]);
  }
  s->nwaiters = 0;
}

void fut__server_conn_lost(fut_server_t *s, fut_transport_t *t) {
  fut__q_remove(&t->snode);
  s->nconns--;
  wake_waiters(s);
}

void fut_server_close(fut_server_t *s) {
  if (!s || s->closed)
    return;
  s->closed = true;
  s->serving = false;
  if (fut__q_linked(&s->node))
    fut__q_remove(&s->node);
  if (s->retry) {
    fut_handle_cancel(s->retry);
    fut_handle_unref(s->retry);
    s->retry = NULL;
  }
  listeners_off(s);
  for (size_t i = 0; i < s->nls; i++) {
    close(s->ls[i].fd);
    s->ls[i].fd = -1;
  }
  if (s->unix_path) {
    unlink(s->unix_path);
    fut__free(s->unix_path);
    s->unix_path = NULL;
  }
  if (s->forever && fut_state(s->forever) == FUT_PENDING)
    fut_cancel(s->forever, "server closed");
  wake_waiters(s);
}

void fut_server_close_clients(fut_server_t *s) {
  if (!s)
    return;
  fut_server_close(s);
  struct fut__qnode *n;
  FUT__Q_FOREACH(n, &s->conns) {
    fut_transport_t *t = fut__container_of(n, fut_transport_t, snode);
    fut__transport_force_close(t, 0);
  }
}

fut_server_t *fut_server_ref(fut_server_t *s) {
  if (s)
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
  return s;
}

void fut_server_unref(fut_server_t *s) {
  if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
    return;
  fut_server_close(s);
  for (size_t i = 0; i < s->nwaiters; i++)
    fut_unref(s->waiters[i]);
  fut__free(s->waiters);
  fut__free(s->ls);
  if (s->stream_ctx_free)
    s->stream_ctx_free(s->stream_ctx);
  fut__free(s);
}

/* ---- the awaitable calls ---------------------------------------------------
 */

int fut_server_start_serving(fut_server_t *s) {
  if (!s)
    return fut__error(-EINVAL, "fut_server_start_serving: NULL server");
  if (s->closed)
    return fut__error(FUT_E_CLOSED, "fut_server_start_serving: the server is "
                                    "closed");
  s->serving = true;
  if (!s->retry)
    listeners_on(s);
  return 0;
}

bool fut_server_is_serving(const fut_server_t *s) {
  return s && s->serving && !s->closed;
}

int fut_server_wait_closed_future(fut_server_t *s, fut_t **out) {
  if (out)
    *out = NULL;
  if (!s || !out)
    return fut__error(-EINVAL, "fut_server_wait_closed_future: NULL %s",
                      !s ? "server" : "out");
  fut_t *f;
  int err = fut_new(s->loop, &f);
  if (err)
    return err;
  if (s->closed && s->nconns == 0) {
    fut_set_result(f, NULL, NULL);
  } else {
    if (s->nwaiters == s->capwaiters) {
      size_t cap = s->capwaiters ? 2 * s->capwaiters : 4;
      fut_t **w = fut__realloc(s->waiters, cap * sizeof *w);
      if (!w) {
        fut_unref(f);
        return fut__error(-ENOMEM, "fut_server_wait_closed: out of memory");
      }
      s->waiters = w;
      s->capwaiters = cap;
    }
    s->waiters[s->nwaiters++] = fut_ref(f); /* the server's reference */
  }
  *out = f;
  return 0;
}

int fut_server_wait_closed(fut_server_t *s) {
  if (!fut__task_current("fut_server_wait_closed"))
    return FUT_E_NOT_IN_TASK;
  if (!s)
    return fut__error(-EINVAL, "fut_server_wait_closed: NULL server");
  if (s->closed && s->nconns == 0)
    return 0;
  fut_t *f;
  int err = fut_server_wait_closed_future(s, &f);
  if (err)
    return err;
  fut_server_ref(s);
  err = fut_await(f, NULL);
  fut_unref(f);
  fut_server_unref(s);
  return err;
}

int fut_server_serve_forever(fut_server_t *s) {
  struct fut__task *t = fut__task_current("fut_server_serve_forever");
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (!s)
    return fut__error(-EINVAL, "fut_server_serve_forever: NULL server");
  if (s->closed)
    return fut__error(FUT_E_CLOSED, "fut_server_serve_forever: the server is "
                                    "closed");
  if (s->forever)
    return fut__error(-EBUSY, "fut_server_serve_forever: already serving "
                              "forever in another task");
  int err = fut_server_start_serving(s);
  if (err)
    return err;
  fut_t *f;
  if ((err = fut_new(s->loop, &f)))
    return err;
  fut_server_ref(s);
  s->forever = f;
  err = fut_await(f, NULL);
  s->forever = NULL;
  fut_unref(f);
  fut_server_close(s);
  fut_server_unref(s);
  return err ? err : -ECANCELED;
}

/* ---- introspection ---------------------------------------------------------
 */

size_t fut_server_sockets(const fut_server_t *s, int *fds, size_t cap) {
  if (!s || s->closed)
    return 0;
  for (size_t i = 0; i < s->nls && i < cap; i++)
    fds[i] = s->ls[i].fd;
  return s->nls;
}

int fut_server_port(const fut_server_t *s) {
  if (!s || s->closed || s->nls == 0)
    return 0;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(s->ls[0].fd, (struct sockaddr *)&ss, &len) < 0)
    return 0;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return 0;
}

size_t fut_server_active_connections(const fut_server_t *s) {
  return s ? s->nconns : 0;
}

fut_loop_t *fut_server_loop(const fut_server_t *s) {
  return s ? s->loop : NULL;
}
