/* Name resolution (asyncio's loop.getaddrinfo / getnameinfo): numeric
 * hosts inline with no thread, names on the loop's DNS pool (at most
 * FUT_DNS_MAX_CONCURRENCY lookups at once), resolver failures as
 * FUT_E_RESOLVE with the host in the message, cancellation while a lookup
 * runs or waits its turn (nothing leaks), the future form, getnameinfo,
 * a loop closed while a lookup runs, and a name with an IPv6 and an IPv4
 * address (servers listen on both, connections fall back from one to the
 * other).  Only "localhost" (from
 * /etc/hosts) and numeric loopback addresses are looked up: a failing
 * name is failed by the shim, so no query ever leaves the machine.
 *
 * This program is linked with -Wl,--wrap=getaddrinfo,--wrap=freeaddrinfo
 * (register_net.cmake): the shim below passes through, except that it can
 * hold the lookups of the fut-dns threads at a gate (to see how many run
 * at once and to cancel them mid-way), fails the name "fail.test" without
 * asking anyone, and counts the lists handed out and not yet freed. */
#include "fixture.h"
#include "task_helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* The network layer's resolver for servers and connections (private:
 * src/net/internal.h, which a test cannot include). */
int fut__resolve(const char *host, int port, int family, int socktype,
                 int flags, struct addrinfo **res);

/* ---- the getaddrinfo shim ------------------------------------------------ */

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_closed;      /* pool lookups wait here */
static int in_flight;         /* pool lookups inside the shim */
static int max_in_flight;     /* the most at once since reset */
static int pool_calls;        /* lookups made on fut-dns threads */
static int other_calls;       /* lookups made on any other thread */
static int pool_done;         /* pool lookups returned */
static atomic_int live_lists; /* lists handed out, not yet freed */

static bool on_dns_thread(void) {
  char name[32] = "";
  pthread_getname_np(pthread_self(), name, sizeof name);
  return strncmp(name, "fut-dns", 7) == 0;
}

int __real_getaddrinfo(const char *host, const char *port,
                       const struct addrinfo *hints, struct addrinfo **res);
int __wrap_getaddrinfo(const char *host, const char *port,
                       const struct addrinfo *hints, struct addrinfo **res);
int __wrap_getaddrinfo(const char *host, const char *port,
                       const struct addrinfo *hints, struct addrinfo **res) {
  bool pool = on_dns_thread();
  pthread_mutex_lock(&gate_mu);
  if (pool) {
    pool_calls++;
    if (++in_flight > max_in_flight)
      max_in_flight = in_flight;
    pthread_cond_broadcast(&gate_cv);
    while (gate_closed)
      pthread_cond_wait(&gate_cv, &gate_mu);
  } else {
    other_calls++;
  }
  pthread_mutex_unlock(&gate_mu);
  int rc;
  if (host && !strcmp(host, "fail.test")) {
    *res = NULL;
    rc = EAI_NONAME;
  } else if (host && !strcmp(host, "dual.test")) {
    /* A name with an IPv6 and an IPv4 loopback address, in that order
     * (glibc's freeaddrinfo frees node by node, so two lists chain). */
    struct addrinfo *v6 = NULL, *v4 = NULL;
    rc = __real_getaddrinfo("::1", port, hints, &v6);
    if (rc == 0 && (rc = __real_getaddrinfo("127.0.0.1", port, hints, &v4))) {
      freeaddrinfo(v6);
      v6 = NULL;
    }
    if (rc == 0) {
      struct addrinfo *tail = v6;
      while (tail->ai_next)
        tail = tail->ai_next;
      tail->ai_next = v4;
    }
    *res = v6;
  } else {
    rc = __real_getaddrinfo(host, port, hints, res);
  }
  if (rc == 0)
    atomic_fetch_add(&live_lists, 1);
  if (pool) {
    pthread_mutex_lock(&gate_mu);
    in_flight--;
    pool_done++;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
  }
  return rc;
}

void __real_freeaddrinfo(struct addrinfo *ai);
void __wrap_freeaddrinfo(struct addrinfo *ai);
void __wrap_freeaddrinfo(struct addrinfo *ai) {
  if (ai)
    atomic_fetch_sub(&live_lists, 1);
  __real_freeaddrinfo(ai);
}

static void shim_reset(void) {
  pthread_mutex_lock(&gate_mu);
  gate_closed = false;
  in_flight = max_in_flight = pool_calls = other_calls = pool_done = 0;
  pthread_mutex_unlock(&gate_mu);
}

static void gate(bool closed) {
  pthread_mutex_lock(&gate_mu);
  gate_closed = closed;
  pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&gate_mu);
}

static int shim_read(const int *v) {
  pthread_mutex_lock(&gate_mu);
  int x = *v;
  pthread_mutex_unlock(&gate_mu);
  return x;
}

/* Waits (any thread, a bounded time) until *v reaches want. */
static bool shim_wait(const int *v, int want) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pthread_mutex_lock(&gate_mu);
  while (*v < want) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (t.tv_sec - t0.tv_sec > 5)
      break;
    struct timespec nap = {0, 1000000};
    pthread_mutex_unlock(&gate_mu);
    nanosleep(&nap, NULL);
    pthread_mutex_lock(&gate_mu);
  }
  bool ok = *v >= want;
  pthread_mutex_unlock(&gate_mu);
  return ok;
}

/* In a task: sleeps until *v reaches want (at most ~5 s). */
static void task_wait(const int *v, int want) {
  for (int i = 0; i < 5000 && shim_read(v) < want; i++)
    assert_int_equal(fut_sleep(FUT_MS(1)), 0);
  assert_true(shim_read(v) >= want);
}

/* Lists not yet freed reach 0 (their frees may run in worker threads
 * a moment after a lookup returned). */
static bool lists_freed(void) {
  for (int i = 0; i < 5000 && atomic_load(&live_lists) != 0; i++) {
    struct timespec nap = {0, 1000000};
    nanosleep(&nap, NULL);
  }
  return atomic_load(&live_lists) == 0;
}

static bool no_lists(void *arg) {
  (void)arg;
  return atomic_load(&live_lists) == 0;
}

/* ---- helpers ------------------------------------------------------------- */

/* Threads of this process whose name starts with "fut-dns". */
static int dns_threads(void) {
  DIR *d = opendir("/proc/self/task");
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char path[300], name[64] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    if (fgets(name, sizeof name, f) && !strncmp(name, "fut-dns", 7))
      n++;
    fclose(f);
  }
  closedir(d);
  return n;
}

static int threads(void) {
  return fx_count_dir("/proc/self/task");
}

static fut_t *go(fut_task_fn fn, void *arg) {
  fut_t *t;
  assert_int_equal(fut_create_task(fut_get_running_loop(), fn, arg, NULL, &t),
                   0);
  return t;
}

static struct addrinfo hints_of(int family, int socktype, int flags) {
  struct addrinfo h;
  memset(&h, 0, sizeof h);
  h.ai_family = family;
  h.ai_socktype = socktype;
  h.ai_flags = flags;
  return h;
}

/* "host:port" of the first entry of res. */
static void first_addr(const struct addrinfo *res, char *buf, size_t cap) {
  char h[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (res->ai_family == AF_INET) {
    const struct sockaddr_in *in = (const void *)res->ai_addr;
    inet_ntop(AF_INET, &in->sin_addr, h, sizeof h);
    port = ntohs(in->sin_port);
  } else if (res->ai_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const void *)res->ai_addr;
    inet_ntop(AF_INET6, &in6->sin6_addr, h, sizeof h);
    port = ntohs(in6->sin6_port);
  }
  snprintf(buf, cap, "%s:%u", h, port);
}

struct lookup {
  const char *host, *port;
  struct addrinfo hints;
  bool no_hints;
  int rc;
  char addr[64];
  char msg[256];
  struct addrinfo *res;
  bool keep; /* keep res (else freed at once) */
};

static int do_lookup(void *arg) {
  struct lookup *l = arg;
  l->rc = fut_getaddrinfo(l->host, l->port, l->no_hints ? NULL : &l->hints,
                          &l->res);
  snprintf(l->msg, sizeof l->msg, "%s", fut_last_error());
  if (!l->rc) {
    first_addr(l->res, l->addr, sizeof l->addr);
    if (!l->keep) {
      freeaddrinfo(l->res);
      l->res = NULL;
    }
  }
  return 0;
}

/* ---- numeric hosts: inline, no thread ------------------------------------ */

struct numeric {
  struct lookup l[4];
  int resolve_rc;
  char resolve_addr[64];
  int threads_before, threads_after;
  bool future_done;
  int future_rc;
  char future_addr[64];
};

static int numeric_main(void *arg) {
  struct numeric *n = arg;
  n->threads_before = threads();
  for (int i = 0; i < 4; i++)
    do_lookup(&n->l[i]);
  struct addrinfo *res;
  n->resolve_rc = fut__resolve("127.0.0.1", 9, AF_INET, SOCK_STREAM, 0, &res);
  if (!n->resolve_rc) {
    first_addr(res, n->resolve_addr, sizeof n->resolve_addr);
    freeaddrinfo(res);
  }
  /* The future form: a numeric host gives a future already done. */
  fut_t *f;
  struct addrinfo h = hints_of(AF_INET, SOCK_DGRAM, 0);
  assert_int_equal(
      fut_getaddrinfo_future(fut_get_running_loop(), "127.0.0.1", "53", &h, &f),
      0);
  n->future_done = fut_done(f);
  void *p;
  n->future_rc = fut_result(f, &p);
  if (!n->future_rc)
    first_addr(p, n->future_addr, sizeof n->future_addr);
  fut_unref(f);
  n->threads_after = threads();
  return 0;
}

static void test_numeric_host_without_thread(void **state) {
  fut_loop_t *loop = *state;
  shim_reset();
  struct numeric n = {0};
  n.l[0] = (struct lookup){.host = "127.0.0.1",
                           .port = "8080",
                           .hints = hints_of(AF_UNSPEC, SOCK_STREAM, 0)};
  n.l[1] = (struct lookup){
      .host = "::1", .port = "80", .hints = hints_of(AF_INET6, SOCK_STREAM, 0)};
  n.l[2] = (struct lookup){.host = NULL,
                           .port = "7",
                           .hints = hints_of(AF_INET, SOCK_STREAM, AI_PASSIVE)};
  n.l[3] = (struct lookup){.host = "127.0.0.1", .port = NULL, .no_hints = true};
  assert_int_equal(run_main(loop, numeric_main, &n), 0);
  static const char *want[4] = {"127.0.0.1:8080", "::1:80", "0.0.0.0:7",
                                "127.0.0.1:0"};
  for (int i = 0; i < 4; i++) {
    if (n.l[i].rc)
      fail_msg("lookup %d: %s (%s)", i, fut_err_name(n.l[i].rc), n.l[i].msg);
    assert_string_equal(n.l[i].addr, want[i]);
  }
  assert_int_equal(n.resolve_rc, 0);
  assert_string_equal(n.resolve_addr, "127.0.0.1:9");
  assert_true(n.future_done);
  assert_int_equal(n.future_rc, 0);
  assert_string_equal(n.future_addr, "127.0.0.1:53");
  /* No thread was started, and no lookup went to a pool. */
  assert_int_equal(n.threads_after, n.threads_before);
  assert_int_equal(dns_threads(), 0);
  assert_int_equal(shim_read(&pool_calls), 0);
  assert_true(lists_freed());
}

/* ---- a name: through the pool -------------------------------------------- */

struct named {
  struct lookup l;
  int resolve_rc;
  char resolve_addr[64];
  int dns_threads;
};

static int named_main(void *arg) {
  struct named *n = arg;
  do_lookup(&n->l);
  struct addrinfo *res;
  n->resolve_rc = fut__resolve("localhost", 443, AF_INET, SOCK_STREAM, 0, &res);
  if (!n->resolve_rc) {
    first_addr(res, n->resolve_addr, sizeof n->resolve_addr);
    freeaddrinfo(res);
  }
  n->dns_threads = dns_threads();
  return 0;
}

static void test_localhost_through_pool(void **state) {
  fut_loop_t *loop = *state;
  shim_reset();
  struct named n = {.l = {.host = "localhost",
                          .port = "80",
                          .hints = hints_of(AF_INET, SOCK_STREAM, 0)}};
  assert_int_equal(run_main(loop, named_main, &n), 0);
  if (n.l.rc)
    fail_msg("localhost: %s (%s)", fut_err_name(n.l.rc), n.l.msg);
  assert_string_equal(n.l.addr, "127.0.0.1:80");
  assert_int_equal(n.resolve_rc, 0);
  assert_string_equal(n.resolve_addr, "127.0.0.1:443");
  /* Both lookups ran on the pool, whose threads stay until close (a
   * second may start when the first has not gone back to waiting yet
   * as the next lookup comes). */
  assert_int_equal(shim_read(&pool_calls), 2);
  assert_true(n.dns_threads >= 1 && n.dns_threads <= 2);
  assert_true(lists_freed());
}

/* ---- names that do not resolve ------------------------------------------- */

struct failing {
  struct lookup l;
  int timeout_rc;
};

static int failing_main(void *arg) {
  struct failing *f = arg;
  fut_timeout_t *to;
  assert_int_equal(fut_timeout_enter(FUT_SEC(5), &to), 0);
  do_lookup(&f->l);
  f->timeout_rc = fut_timeout_exit(to, f->l.rc);
  return 0;
}

static void test_resolver_failure_message(void **state) {
  fut_loop_t *loop = *state;
  shim_reset();
  struct failing f = {.l = {.host = "fail.test", .port = "443"}};
  f.l.no_hints = true;
  assert_int_equal(run_main(loop, failing_main, &f), 0);
  assert_int_equal(f.l.rc, FUT_E_RESOLVE);
  assert_null(f.l.res);
  /* The host, the port and gai_strerror's text. */
  assert_non_null(strstr(f.l.msg, "'fail.test'"));
  assert_non_null(strstr(f.l.msg, "443"));
  assert_non_null(strstr(f.l.msg, gai_strerror(EAI_NONAME)));
  assert_int_equal(shim_read(&pool_calls), 1);
}

/* ---- at most FUT_DNS_MAX_CONCURRENCY at once ----------------------------- */

#define NLOOKUPS 10

struct many {
  struct lookup l[NLOOKUPS];
  int in_flight_held, dns_threads_held, max_held;
  int dns_threads_end;
};

static int many_main(void *arg) {
  struct many *m = arg;
  fut_t *t[NLOOKUPS];
  gate(true);
  for (int i = 0; i < NLOOKUPS; i++)
    t[i] = go(do_lookup, &m->l[i]);
  /* The pool takes 4; the other 6 wait their turn. */
  task_wait(&in_flight, FUT_DNS_MAX_CONCURRENCY);
  assert_int_equal(fut_sleep(FUT_MS(30)), 0);
  m->in_flight_held = shim_read(&in_flight);
  m->max_held = shim_read(&max_in_flight);
  m->dns_threads_held = dns_threads();
  gate(false);
  for (int i = 0; i < NLOOKUPS; i++) {
    fut_await(t[i], NULL);
    fut_unref(t[i]);
  }
  m->dns_threads_end = dns_threads();
  return 0;
}

static void test_concurrency_bounded(void **state) {
  fut_loop_t *loop = *state;
  shim_reset();
  struct many m;
  memset(&m, 0, sizeof m);
  for (int i = 0; i < NLOOKUPS; i++)
    m.l[i] = (struct lookup){.host = "localhost",
                             .port = "80",
                             .hints = hints_of(AF_INET, SOCK_STREAM, 0)};
  assert_int_equal(run_main(loop, many_main, &m), 0);
  assert_int_equal(m.in_flight_held, FUT_DNS_MAX_CONCURRENCY);
  assert_int_equal(m.max_held, FUT_DNS_MAX_CONCURRENCY);
  assert_int_equal(m.dns_threads_held, FUT_DNS_MAX_CONCURRENCY);
  for (int i = 0; i < NLOOKUPS; i++) {
    if (m.l[i].rc)
      fail_msg("lookup %d: %s (%s)", i, fut_err_name(m.l[i].rc), m.l[i].msg);
    assert_string_equal(m.l[i].addr, "127.0.0.1:80");
  }
  assert_int_equal(shim_read(&pool_calls), NLOOKUPS);
  assert_int_equal(shim_read(&max_in_flight), FUT_DNS_MAX_CONCURRENCY);
  assert_true(m.dns_threads_end <= FUT_DNS_MAX_CONCURRENCY);
  assert_true(lists_freed());
}

/* ---- cancelled while the lookup runs or waits ---------------------------- */

#define NCANCEL (FUT_DNS_MAX_CONCURRENCY + 2)

struct cancel {
  struct lookup l[NCANCEL];
  int await_rc[NCANCEL];
  int in_flight_after_cancel;
  uint64_t cancel_ns;
};

static int cancel_main(void *arg) {
  struct cancel *c = arg;
  fut_t *t[NCANCEL];
  gate(true);
  for (int i = 0; i < NCANCEL; i++) {
    c->l[i].keep = true; /* nothing to free if it were to succeed */
    t[i] = go(do_lookup, &c->l[i]);
  }
  task_wait(&in_flight, FUT_DNS_MAX_CONCURRENCY);
  /* 4 lookups are inside getaddrinfo, 2 queued: cancel them all.  The
   * tasks return at once, without waiting for the lookups. */
  uint64_t t0 = fut_loop_time(NULL);
  for (int i = 0; i < NCANCEL; i++)
    assert_true(fut_cancel(t[i], "stop"));
  for (int i = 0; i < NCANCEL; i++) {
    c->await_rc[i] = fut_await(t[i], NULL);
    fut_unref(t[i]);
  }
  c->cancel_ns = fut_loop_time(NULL) - t0;
  c->in_flight_after_cancel = shim_read(&in_flight);
  gate(false);
  return 0;
}

static void test_cancel_during_lookup_leaks_nothing(void **state) {
  fut_loop_t *loop = *state;
  shim_reset();
  struct cancel c;
  memset(&c, 0, sizeof c);
  for (int i = 0; i < NCANCEL; i++)
    c.l[i] = (struct lookup){.host = "localhost",
                             .port = "80",
                             .hints = hints_of(AF_INET, SOCK_STREAM, 0)};
  assert_int_equal(run_main(loop, cancel_main, &c), 0);
  for (int i = 0; i < NCANCEL; i++) {
    assert_int_equal(c.l[i].rc, -ECANCELED);
    assert_null(c.l[i].res);
  }
  assert_int_equal(c.in_flight_after_cancel, FUT_DNS_MAX_CONCURRENCY);
  assert_true(c.cancel_ns < FUT_SEC(1));
  /* The running lookups finish in their threads and their lists are
   * freed there; the queued ones never run. */
  assert_true(shim_wait(&pool_done, FUT_DNS_MAX_CONCURRENCY));
  assert_true(lists_freed());
  for (int i = 0; i < 20; i++)
    fut_loop_run_once(loop, FUT_MS(1));
  assert_int_equal(shim_read(&pool_calls), FUT_DNS_MAX_CONCURRENCY);
}

/* ---- the future form, from callback code --------------------------------- */

static void test_future_form(void **state) {
  fut_loop_t *loop = *state;
  shim_reset();
  struct addrinfo h = hints_of(AF_INET, SOCK_STREAM, 0);
  fut_t *f;
  assert_int_equal(fut_getaddrinfo_future(loop, "localhost", "80", &h, &f), 0);
  assert_false(fut_done(f));
  run_until_done(loop, f);
  void *p;
  assert_int_equal(fut_result(f, &p), 0);
  char addr[64];
  first_addr(p, addr, sizeof addr);
  assert_string_equal(addr, "127.0.0.1:80");
  assert_int_equal(atomic_load(&live_lists), 1); /* owned by the future */
  fut_unref(f);
  assert_true(lists_freed());

  /* A failure is the future's exception. */
  assert_int_equal(fut_getaddrinfo_future(loop, "fail.test", NULL, &h, &f), 0);
  run_until_done(loop, f);
  const char *msg;
  assert_int_equal(fut_exception(f, &msg), FUT_E_RESOLVE);
  assert_non_null(msg);
  assert_non_null(strstr(msg, "fail.test"));
  fut_unref(f);

  /* Cancelled while the lookup runs: its list is freed when it ends. */
  gate(true);
  assert_int_equal(fut_getaddrinfo_future(loop, "localhost", "80", &h, &f), 0);
  assert_true(shim_wait(&in_flight, 1));
  assert_true(fut_cancel(f, NULL));
  fut_unref(f);
  gate(false);
  assert_true(shim_wait(&pool_done, 3));
  /* The list lives in the job's concurrent future until the loop takes
   * the late outcome in (and drops it). */
  assert_true(fx_run_until(loop, no_lists, NULL, FUT_SEC(5)));

  /* Argument errors are the call's. */
  f = (fut_t *)&h;
  assert_int_equal(fut_getaddrinfo_future(NULL, "localhost", "80", &h, &f),
                   -EINVAL);
  assert_null(f);
  assert_int_equal(fut_getaddrinfo_future(loop, NULL, NULL, &h, &f), -EINVAL);
  assert_int_equal(fut_getaddrinfo_future(loop, "x", "80", &h, NULL), -EINVAL);
}

/* ---- getnameinfo --------------------------------------------------------- */

struct names {
  int rc[6];
  char host[6][NI_MAXHOST];
  char serv[6][NI_MAXSERV];
  int threads_before, threads_numeric;
};

static int names_main(void *arg) {
  struct names *n = arg;
  struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(8080)};
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(53)};
  in6.sin6_addr = in6addr_loopback;
  const int numeric = NI_NUMERICHOST | NI_NUMERICSERV;
  n->threads_before = threads();
  n->rc[0] = fut_getnameinfo((struct sockaddr *)&in, sizeof in, n->host[0],
                             NI_MAXHOST, n->serv[0], NI_MAXSERV, numeric);
  n->rc[1] = fut_getnameinfo((struct sockaddr *)&in6, sizeof in6, n->host[1],
                             NI_MAXHOST, n->serv[1], NI_MAXSERV, numeric);
  /* Only the host asked, numeric: inline too. */
  n->rc[2] = fut_getnameinfo((struct sockaddr *)&in, sizeof in, n->host[2],
                             NI_MAXHOST, NULL, 0, NI_NUMERICHOST);
  /* A truncated address: the resolver's error. */
  n->rc[3] = fut_getnameinfo((struct sockaddr *)&in, 4, n->host[3], NI_MAXHOST,
                             n->serv[3], NI_MAXSERV, numeric);
  n->threads_numeric = threads();
  /* A name for 127.0.0.1 (from /etc/hosts) on the pool. */
  n->rc[4] = fut_getnameinfo((struct sockaddr *)&in, sizeof in, n->host[4],
                             NI_MAXHOST, n->serv[4], NI_MAXSERV, 0);
  n->rc[5] = fut_getnameinfo(NULL, sizeof in, n->host[5], NI_MAXHOST, NULL, 0,
                             numeric);
  return 0;
}

static void test_getnameinfo(void **state) {
  fut_loop_t *loop = *state;
  shim_reset();
  struct names n;
  memset(&n, 0, sizeof n);
  assert_int_equal(run_main(loop, names_main, &n), 0);
  assert_int_equal(n.rc[0], 0);
  assert_string_equal(n.host[0], "127.0.0.1");
  assert_string_equal(n.serv[0], "8080");
  assert_int_equal(n.rc[1], 0);
  assert_string_equal(n.host[1], "::1");
  assert_string_equal(n.serv[1], "53");
  assert_int_equal(n.rc[2], 0);
  assert_string_equal(n.host[2], "127.0.0.1");
  assert_int_equal(n.rc[3], FUT_E_RESOLVE);
  assert_string_equal(n.host[3], "");
  assert_int_equal(n.threads_numeric, n.threads_before);
  assert_int_equal(n.rc[4], 0);
  assert_true(n.host[4][0] != '\0');
  assert_true(n.serv[4][0] != '\0');
  assert_int_equal(dns_threads(), 1);
  assert_int_equal(n.rc[5], -EINVAL);
}

/* ---- outside a task, bad arguments --------------------------------------- */

struct bad {
  int rc[8];
  struct addrinfo *res;
};

static int bad_main(void *arg) {
  struct bad *b = arg;
  struct addrinfo h = hints_of(AF_INET, SOCK_STREAM, 0);
  b->rc[0] = fut_getaddrinfo("localhost", "80", &h, NULL);
  b->rc[1] = fut_getaddrinfo(NULL, NULL, &h, &b->res);
  b->rc[2] = fut__resolve("127.0.0.1", 70000, AF_INET, SOCK_STREAM, 0, &b->res);
  b->rc[3] = fut__resolve("127.0.0.1", -1, AF_INET, SOCK_STREAM, 0, &b->res);
  struct addrinfo badflags = hints_of(AF_INET, SOCK_STREAM, 0x40000000);
  b->rc[4] = fut_getaddrinfo("127.0.0.1", "80", &badflags, &b->res);
  char host[8];
  b->rc[5] = fut_getnameinfo(NULL, 0, host, sizeof host, NULL, 0, 0);
  struct sockaddr_in in = {.sin_family = AF_INET};
  b->rc[6] =
      fut_getnameinfo((struct sockaddr *)&in, sizeof in, NULL, 4, NULL, 0, 0);
  b->rc[7] =
      fut_getnameinfo((struct sockaddr *)&in, sizeof in, NULL, 0, NULL, 0, 0);
  return 0;
}

static void test_not_in_task_and_bad_arguments(void **state) {
  fut_loop_t *loop = *state;
  shim_reset();
  struct addrinfo *res = (struct addrinfo *)&res;
  assert_int_equal(fut_getaddrinfo("127.0.0.1", "80", NULL, &res),
                   FUT_E_NOT_IN_TASK);
  assert_null(res);
  assert_non_null(strstr(fut_last_error(), "fut_getaddrinfo"));
  res = (struct addrinfo *)&res;
  assert_int_equal(fut__resolve("127.0.0.1", 80, AF_INET, SOCK_STREAM, 0, &res),
                   FUT_E_NOT_IN_TASK);
  assert_null(res);
  struct sockaddr_in in = {.sin_family = AF_INET};
  char host[16] = "stale", serv[16] = "stale";
  assert_int_equal(fut_getnameinfo((struct sockaddr *)&in, sizeof in, host,
                                   sizeof host, serv, sizeof serv,
                                   NI_NUMERICHOST | NI_NUMERICSERV),
                   FUT_E_NOT_IN_TASK);
  assert_string_equal(host, "");
  assert_string_equal(serv, "");

  struct bad b = {0};
  assert_int_equal(run_main(loop, bad_main, &b), 0);
  for (int i = 0; i < 8; i++)
    if (b.rc[i] != -EINVAL)
      fail_msg("call %d: %s, want EINVAL", i, fut_err_name(b.rc[i]));
  assert_null(b.res);
  assert_int_equal(shim_read(&pool_calls), 0);
}

/* ---- the loop closed while a lookup runs --------------------------------- */

static void *open_gate_later(void *arg) {
  (void)arg;
  struct timespec nap = {0, 50000000};
  nanosleep(&nap, NULL);
  gate(false);
  return NULL;
}

static bool one_in_flight(void *arg) {
  (void)arg;
  return shim_read(&in_flight) == 1;
}

static void test_loop_close_during_lookup(void **state) {
  fut_loop_t *loop = *state;
  shim_reset();
  fx_exc_t exc;
  fx_exc_capture(loop, &exc); /* "Task was destroyed but it is pending!" */
  struct lookup l = {.host = "localhost",
                     .port = "80",
                     .hints = hints_of(AF_INET, SOCK_STREAM, 0)};
  gate(true);
  fut_t *t;
  assert_int_equal(fut_create_task(loop, do_lookup, &l, NULL, &t), 0);
  assert_true(fx_run_until(loop, one_in_flight, NULL, FUT_SEC(5)));
  /* Closing cancels the task (its await returns at once) and shuts the
   * DNS pool down, which waits for the lookup: the gate opens soon. */
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, open_gate_later, NULL), 0);
  assert_int_equal(fut_loop_close(loop), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(l.rc, -ECANCELED);
  assert_true(fut_done(t));
  fut_unref(t);
  assert_int_equal(shim_read(&pool_done), 1);
  assert_true(lists_freed());
  assert_int_equal(dns_threads(), 0); /* the pool stopped with the loop */
}

/* ---- a host name with two addresses: servers and connections ------------- */

static int dual_made;
static void dual_made_cb(fut_transport_t *t, void *arg) {
  (void)t;
  (void)arg;
  dual_made++;
}
static const fut_protocol_t dual_proto = {.connection_made = dual_made_cb};

static bool have_ipv6_loopback(void) {
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                           .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0)
    close(fd);
  return ok;
}

static int dual_main(void *arg) {
  (void)arg;
  dual_made = 0;
  fut_server_t *s;
  /* One name, two addresses: a listening socket for each, one port. */
  assert_int_equal(fut_create_server(NULL, &dual_proto, NULL, NULL, "dual.test",
                                     0, NULL, &s),
                   0);
  int fds[4];
  assert_int_equal(fut_server_sockets(s, fds, 4), 2);
  int port = fut_server_port(s);
  int fams = 0;
  for (int i = 0; i < 2; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fds[i], (struct sockaddr *)&ss, &len), 0);
    fams |= ss.ss_family == AF_INET6 ? 1 : 2;
    int p = ss.ss_family == AF_INET6
                ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    assert_int_equal(p, port);
  }
  assert_int_equal(fams, 3);
  /* create_connection to the name, one address after the other and then
   * with happy eyeballs: both addresses listen, each attempt connects. */
  fut_connect_opts_t o;
  fut_connect_opts_init(&o);
  for (int round = 0; round < 2; round++) {
    o.happy_eyeballs_delay_ns = round ? 10000000 : 0;
    fut_transport_t *t;
    assert_int_equal(
        fut_create_connection(&dual_proto, NULL, "dual.test", port, &o, &t), 0);
    fut_transport_abort(t);
    fut_transport_unref(t);
  }
  fut_server_close_clients(s);
  assert_int_equal(fut_server_wait_closed(s), 0);
  fut_server_unref(s);
  /* A server on the IPv4 address only: connecting to the name finds
   * ::1 refused and goes on to 127.0.0.1, with and without happy
   * eyeballs. */
  assert_int_equal(fut_create_server(NULL, &dual_proto, NULL, NULL, "127.0.0.1",
                                     0, NULL, &s),
                   0);
  port = fut_server_port(s);
  for (int round = 0; round < 2; round++) {
    o.happy_eyeballs_delay_ns = round ? 10000000 : 0;
    fut_transport_t *t;
    assert_int_equal(
        fut_create_connection(&dual_proto, NULL, "dual.test", port, &o, &t), 0);
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    assert_int_equal(
        fut_transport_get_extra_info(t, FUT_EXTRA_PEERNAME, &peer, &pl), 0);
    assert_int_equal(peer.ss_family, AF_INET);
    fut_transport_abort(t);
    fut_transport_unref(t);
  }
  fut_server_close_clients(s);
  assert_int_equal(fut_server_wait_closed(s), 0);
  fut_server_unref(s);
  return 0;
}

static void test_host_with_two_addresses(void **state) {
  if (!have_ipv6_loopback())
    skip();
  shim_reset();
  assert_int_equal(run_main(*state, dual_main, NULL), 0);
  assert_int_equal(atomic_load(&live_lists), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_numeric_host_without_thread),
      FX_LOOP_TEST(test_localhost_through_pool),
      FX_LOOP_TEST(test_resolver_failure_message),
      FX_LOOP_TEST(test_concurrency_bounded),
      FX_LOOP_TEST(test_cancel_during_lookup_leaks_nothing),
      FX_LOOP_TEST(test_future_form),
      FX_LOOP_TEST(test_getnameinfo),
      FX_LOOP_TEST(test_not_in_task_and_bad_arguments),
      FX_LOOP_TEST(test_loop_close_during_lookup),
      FX_LOOP_TEST(test_host_with_two_addresses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
