/* Tasks and timers as N grows (issue 17), beside asyncio and libev in the
 * same run when they are installed:
 *   tasks N      N live tasks that each wait on a gate; then each makes K
 *                await round trips (a future resolved by call_soon):
 *                create per task (until all wait), resident bytes per idle
 *                task (RSS delta / N), await round trip with N alive;
 *                each again in compact mode (FUT_TASK_COMPACT: "(compact)"
 *                rows);
 *   lifecycle A  create, one fut_sleep(0), finish, unref, A alive at once;
 *   timers N     S4: N call_later timers over 1..100 ms, run until all
 *                fire: CPU ns per timer and wake-ups (voluntary context
 *                switches of the loop thread); S4': started then all
 *                cancelled, ns per timer; bytes per pending timer with a
 *                handle (RSS delta / N, a fresh loop).
 * Environment (all optional):
 *   BENCH_SCALE_QUICK=1     small sizes (tasks 1e4 and 1e5, timers 1e4 and
 *                           1e5), under a minute in all; BENCH_QUICK=1
 *                           (bench/run's) too
 *   BENCH_TSV=1             also one machine line per figure and system
 *                           (bench_common.h), for bench/run's table
 *   BENCH_SCALE_N=a,b,..    live-task counts (default 1e4,1e5,1e6; a size
 *                           the free memory cannot hold is skipped)
 *   BENCH_SCALE_ALIVE=..    lifecycle sizes (default 10,1000,100000;
 *                           quick: 10,1000,10000)
 *   BENCH_SCALE_TIMERS=..   timer counts (default 1e4,1e5,1e6)
 *   BENCH_SCALE_BIG=1       adds 1e7 timers
 *   BENCH_SCALE_STACK=bytes task stack size (default: the library's)
 *   BENCH_SCALE_ONLY=tasks,lifecycle,timers   the sections to run
 *   BENCH_SCALE_VERBOSE=1   the await phase's page faults and CPU time
 *   BENCH_SCALE_PY=path     the asyncio script (default: beside this
 *                           source); BENCH_SCALE_NO_PEERS=1 skips asyncio
 *                           and libev
 * Usage: bench_scale */
#include <future.h>

#include <malloc.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench_common.h"

#ifdef FUT_BENCH_HAVE_LIBEV
#include <ev.h>
#endif

static bool quick, peers = true;
static size_t stack_size;
static const char *py_script;

/* ---- helpers ---------------------------------------------------------- */

static uint64_t cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long wakeups(void) {
  struct rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_nvcsw;
}

static double tv_ns(const struct timeval *a, const struct timeval *b) {
  return ((double)(a->tv_sec - b->tv_sec) * 1e6 +
          (double)(a->tv_usec - b->tv_usec)) *
         1e3;
}

/* Resident bytes of the process (after giving free heap memory back, so a
 * delta counts what lives, not what malloc kept). */
static double rss_bytes(void) {
  malloc_trim(0);
  FILE *f = fopen("/proc/self/statm", "re");
  long size = 0, res = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
      res = 0;
    fclose(f);
  }
  return (double)res * (double)sysconf(_SC_PAGESIZE);
}

/* Bytes of page tables (VmPTE): not part of RSS, but one per 2 MiB of
 * address space a task touches in. */
static double pte_bytes(void) {
  FILE *f = fopen("/proc/self/status", "re");
  char line[256];
  double kb = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmPTE: %lf kB", &kb) == 1)
      break;
  if (f)
    fclose(f);
  return kb * 1024;
}

static double mem_available(void) {
  FILE *f = fopen("/proc/meminfo", "re");
  char line[256];
  double kb = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1)
      break;
  if (f)
    fclose(f);
  return kb * 1024;
}

static const char *pretty(long n, char *buf, size_t len) {
  long p = 0, m = n;
  while (m >= 10 && m % 10 == 0) {
    m /= 10;
    p++;
  }
  if (m == 1 && p >= 4)
    snprintf(buf, len, "10^%ld", p);
  else
    snprintf(buf, len, "%ld", n);
  return buf;
}

/* Parses "a,b,c" (numbers may be written 1e6) into out; returns count. */
static int parse_list(const char *env, const char *dflt, long *out, int cap) {
  const char *s = getenv(env);
  if (!s || !*s)
    s = dflt;
  int n = 0;
  while (*s && n < cap) {
    char *end;
    double v = strtod(s, &end);
    if (end == s)
      break;
    out[n++] = (long)v;
    s = *end == ',' ? end + 1 : end;
  }
  return n;
}

static bool section(const char *name) {
  const char *only = getenv("BENCH_SCALE_ONLY");
  return !only || !*only || strstr(only, name) != NULL;
}

/* N of the rows being printed, for the machine lines. */
static long row_n;

/* A row for the eye, and with BENCH_TSV=1 one machine line for libfuture
 * and one for the peer (when measured), as bench/run reads them. */
static void row(const char *name, double v, const char *unit, const char *peer,
                double pv) {
  const char *u = !strcmp(unit, "ns") ? "ns/op" : *unit ? unit : "count";
  bench_emit_role(name, "libfuture", "fut", row_n, v, u);
  if (peer && pv > 0)
    bench_emit_role(name, peer, "peer", row_n, pv, u);
  if (peer && pv > 0)
    printf("%-44s %10.1f %-5s  %-8s %10.1f %-5s ratio %.2fx\n", name, v, unit,
           peer, pv, unit, v / pv);
  else
    printf("%-44s %10.1f %s\n", name, v, unit);
  fflush(stdout);
}

/* Runs the asyncio script with args; parses up to n numbers from its one
 * line of output.  Returns how many were read (0: not run). */
static int run_py(const char *args, double *out, int n) {
  if (!peers || !py_script)
    return 0;
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "python3 '%s' %s 2>/dev/null", py_script, args);
  FILE *p = popen(cmd, "r");
  if (!p)
    return 0;
  int got = 0;
  for (; got < n; got++)
    if (fscanf(p, "%lf", &out[got]) != 1)
      break;
  pclose(p);
  return got;
}

/* ---- tasks: create, resident, await with N alive ------------------------ */

struct scale {
  fut_loop_t *loop;
  long n, k;
  long started, parked;
  fut_t *gate, *all_waiting, *gate2, *all_parked;
};

static void resolve(void *arg) {
  fut_set_result(arg, NULL, NULL);
}

static int scale_task(void *arg) {
  struct scale *s = arg;
  if (++s->started == s->n)
    fut_set_result(s->all_waiting, NULL, NULL);
  int rc = fut_await(s->gate, NULL);
  for (long i = 0; rc == 0 && i < s->k; i++) {
    fut_t *f;
    if ((rc = fut_new(s->loop, &f)) != 0)
      break;
    fut_loop_call_soon(s->loop, resolve, f, NULL);
    rc = fut_await(f, NULL);
    fut_unref(f);
  }
  /* Parked until every task made its round trips: finishing (the stack
   * going back to the cache or the kernel) is not part of the await. */
  if (++s->parked == s->n)
    fut_set_result(s->all_parked, NULL, NULL);
  if (rc == 0)
    rc = fut_await(s->gate2, NULL);
  return rc;
}

static void bench_tasks(long n, long k, bool compact, double *create_ns,
                        double *res_b, double *await_ns) {
  fut_loop_t *loop;
  BENCH_CHECK(fut_loop_new(&loop) == 0);
  struct scale s = {.loop = loop, .n = n, .k = k};
  BENCH_CHECK(
      fut_new(loop, &s.gate) == 0 && fut_new(loop, &s.all_waiting) == 0 &&
      fut_new(loop, &s.gate2) == 0 && fut_new(loop, &s.all_parked) == 0);
  fut_task_opts_t opts;
  fut_task_opts_init(&opts);
  if (stack_size)
    opts.stack_size = stack_size;
  if (compact)
    opts.flags = FUT_TASK_COMPACT;
  double r0 = rss_bytes(), p0 = pte_bytes();
  struct rusage cu0, cu1;
  getrusage(RUSAGE_THREAD, &cu0);
  uint64_t t0 = bench_now();
  for (long i = 0; i < n; i++) {
    fut_t *t;
    int rc = fut_create_task(loop, scale_task, &s, &opts, &t);
    if (rc) {
      fprintf(stderr, "bench_scale: task %ld: %s\n", i, fut_strerror(rc));
      exit(1);
    }
    fut_unref(t); /* the loop keeps it until it is done */
  }
  BENCH_CHECK(fut_loop_run_until_complete(loop, s.all_waiting) == 0);
  uint64_t t1 = bench_now();
  getrusage(RUSAGE_THREAD, &cu1);
  double r1 = rss_bytes(), p1 = pte_bytes();
  if (getenv("BENCH_SCALE_VERBOSE")) {
    printf("  [page tables: %.0f B per idle task (VmPTE delta, not in "
           "RSS)]\n",
           (p1 - p0) / (double)n);
    /* The creation's CPU beside its wall time (the first touch of each
     * new stack's top page is the cost, docs/tasks.md). */
    printf("  [create: CPU user %.1f + sys %.1f ns per task, %.2f minor "
           "faults per task]\n",
           tv_ns(&cu1.ru_utime, &cu0.ru_utime) / (double)n,
           tv_ns(&cu1.ru_stime, &cu0.ru_stime) / (double)n,
           (double)(cu1.ru_minflt - cu0.ru_minflt) / (double)n);
  }
  fut_set_result(s.gate, NULL, NULL);
  struct rusage u0, u1;
  getrusage(RUSAGE_THREAD, &u0);
  uint64_t c2 = cpu_now();
  uint64_t t2 = bench_now();
  BENCH_CHECK(fut_loop_run_until_complete(loop, s.all_parked) == 0);
  uint64_t t3 = bench_now();
  uint64_t c3 = cpu_now();
  getrusage(RUSAGE_THREAD, &u1);
  /* What the await phase cost beside its time: page faults and CPU (the
   * cliff hunt of docs/tasks.md). */
  if (getenv("BENCH_SCALE_VERBOSE"))
    printf("  [awaits: %ld minor faults, %.2f per task; CPU %.1f ns per "
           "await (user %.1f, sys %.1f), wall %.1f; %ld involuntary "
           "switches]\n",
           u1.ru_minflt - u0.ru_minflt,
           (double)(u1.ru_minflt - u0.ru_minflt) / (double)n,
           (double)(c3 - c2) / ((double)n * (double)(k + 1)),
           tv_ns(&u1.ru_utime, &u0.ru_utime) / ((double)n * (double)(k + 1)),
           tv_ns(&u1.ru_stime, &u0.ru_stime) / ((double)n * (double)(k + 1)),
           (double)(t3 - t2) / ((double)n * (double)(k + 1)),
           u1.ru_nivcsw - u0.ru_nivcsw);
  fut_set_result(s.gate2, NULL, NULL);
  BENCH_CHECK(fut_loop_run_until_complete(loop, s.gate2) == 0);
  /* Let the last tasks finish: one more turn with nothing left. */
  fut_loop_run_once(loop, 0);
  fut_loop_run_once(loop, 0);
  fut_unref(s.gate);
  fut_unref(s.gate2);
  fut_unref(s.all_waiting);
  fut_unref(s.all_parked);
  fut_loop_free(loop);
  *create_ns = (double)(t1 - t0) / (double)n;
  *res_b = (r1 - r0) / (double)n;
  /* The gate's wake-up is one round trip too. */
  *await_ns = (double)(t3 - t2) / ((double)n * (double)(k + 1));
}

static void section_tasks(void) {
  long ns[16];
  int nn =
      parse_list("BENCH_SCALE_N", quick ? "1e4,1e5" : "1e4,1e5,1e6", ns, 16);
  for (int i = 0; i < nn; i++) {
    long n = ns[i];
    row_n = n;
    char p[32], name[96], args[64];
    pretty(n, p, sizeof p);
    /* About 6 KiB per task (a stack page, the task, page tables, the
     * queues), 8 KiB with margin: skip a size memory cannot hold. */
    if ((double)n * 8192 > 0.7 * mem_available()) {
      printf("tasks, %s live: skipped (MemAvailable %.0f MiB too small)\n", p,
             mem_available() / 1048576);
      continue;
    }
    long k = (quick ? 500000 : 2000000) / n;
    k = k < 4 ? 4 : k > 100 ? 100 : k;
    double c, r, a, cc, cr, ca, py[3] = {0, 0, 0};
    bench_tasks(n, k, false, &c, &r, &a);
    bench_tasks(n, k, true, &cc, &cr, &ca);
    snprintf(args, sizeof args, "tasks %ld %ld", n, k);
    if (run_py(args, py, 3) != 3)
      py[0] = py[1] = py[2] = 0;
    snprintf(name, sizeof name, "create %s tasks that wait, per task", p);
    row(name, c, "ns", "asyncio", py[0]);
    snprintf(name, sizeof name, "resident per idle task, %s alive", p);
    row(name, r, "B", "asyncio", py[1]);
    snprintf(name, sizeof name, "await round trip, %s live tasks (k=%ld)", p,
             k);
    row(name, a, "ns", "asyncio", py[2]);
    /* Compact mode (FUT_TASK_COMPACT): the same tasks on a shared run
     * stack, their frames copied out and back. */
    snprintf(name, sizeof name, "create %s tasks that wait (compact)", p);
    row(name, cc, "ns", "asyncio", py[0]);
    snprintf(name, sizeof name, "resident per idle task (compact), %s alive",
             p);
    row(name, cr, "B", "asyncio", py[1]);
    snprintf(name, sizeof name, "await round trip (compact), %s live (k=%ld)",
             p, k);
    row(name, ca, "ns", "asyncio", py[2]);
  }
}

/* ---- lifecycle with A alive ------------------------------------------- */

struct life {
  long alive, done;
  fut_t *all_done;
};

static int life_task(void *arg) {
  struct life *l = arg;
  int rc = fut_sleep(0);
  if (++l->done == l->alive)
    fut_set_result(l->all_done, NULL, NULL);
  return rc;
}

static uint64_t life_round(fut_loop_t *loop, long alive,
                           const fut_task_opts_t *opts) {
  struct life l = {.alive = alive};
  BENCH_CHECK(fut_new(loop, &l.all_done) == 0);
  uint64_t t0 = bench_now();
  for (long i = 0; i < alive; i++) {
    fut_t *t;
    BENCH_CHECK(fut_create_task(loop, life_task, &l, opts, &t) == 0);
    fut_unref(t);
  }
  BENCH_CHECK(fut_loop_run_until_complete(loop, l.all_done) == 0);
  uint64_t t = bench_now() - t0;
  fut_unref(l.all_done);
  return t;
}

static void section_lifecycle(void) {
  long as[16];
  int na = parse_list("BENCH_SCALE_ALIVE",
                      quick ? "10,1000,10000" : "10,1000,100000", as, 16);
  long total = quick ? 50000 : 1000000;
  fut_task_opts_t opts, copts;
  fut_task_opts_init(&opts);
  if (stack_size)
    opts.stack_size = stack_size;
  copts = opts;
  copts.flags = FUT_TASK_COMPACT;
  for (int i = 0; i < na; i++) {
    long alive = as[i];
    row_n = alive;
    long rounds = total / alive < 1 ? 1 : total / alive;
    uint64_t t = 0, tc = 0;
    for (int mode = 0; mode < 2; mode++) {
      const fut_task_opts_t *o = mode ? &copts : &opts;
      fut_loop_t *loop;
      BENCH_CHECK(fut_loop_new(&loop) == 0);
      life_round(loop, alive, o); /* warm up: stacks, rings, slabs */
      uint64_t *acc = mode ? &tc : &t;
      for (long r = 0; r < rounds; r++)
        *acc += life_round(loop, alive, o);
      fut_loop_free(loop);
    }
    char p[32], name[96], args[64];
    double py[1] = {0};
    snprintf(args, sizeof args, "lifecycle %ld %ld", alive, rounds);
    if (run_py(args, py, 1) != 1)
      py[0] = 0;
    snprintf(name, sizeof name, "task lifecycle, %s alive",
             pretty(alive, p, sizeof p));
    row(name, (double)t / ((double)alive * (double)rounds), "ns", "asyncio",
        py[0]);
    snprintf(name, sizeof name, "task lifecycle (compact), %s alive", p);
    row(name, (double)tc / ((double)alive * (double)rounds), "ns", "asyncio",
        py[0]);
  }
}

/* ---- timers (S4) ------------------------------------------------------ */

static uint64_t rng = 88172645463325252u;
static uint64_t xorshift(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static fut_loop_t *tloop;
static long counter, target;
static fut_handle_t **handles;

static void timer_cb(void *arg) {
  (void)arg;
  if (++counter == target)
    fut_loop_stop(tloop);
}

struct fire {
  double cpu_ns, wake;
};

static struct fire s4_fire(long n) {
  counter = 0;
  target = n;
  long w0 = wakeups();
  uint64_t c0 = cpu_now();
  for (long i = 0; i < n; i++)
    fut_loop_call_later(tloop, FUT_MS(1 + xorshift() % 100), timer_cb, NULL,
                        NULL);
  BENCH_CHECK(fut_loop_run_forever(tloop) == 0);
  uint64_t c1 = cpu_now();
  BENCH_CHECK(counter == n);
  return (struct fire){(double)(c1 - c0) / (double)n, (double)(wakeups() - w0)};
}

static double s4_cancel(long n) {
  uint64_t t0 = bench_now();
  for (long i = 0; i < n; i++)
    fut_loop_call_later(tloop, FUT_MS(1 + xorshift() % 100), timer_cb, NULL,
                        &handles[i]);
  for (long i = 0; i < n; i++) {
    fut_handle_cancel(handles[i]);
    fut_handle_unref(handles[i]);
  }
  uint64_t t = bench_now() - t0;
  fut_loop_stats_t st;
  fut_loop_stats(tloop, &st);
  BENCH_CHECK(st.pending_timers == 0);
  return (double)t / (double)n;
}

/* Everything a pending timer with a handle holds: handle and tier entry.
 * Deadlines count from one reading of the clock, as libev's do from its
 * cached ev_now: on a loaded machine the starts can outlast the delays,
 * and timers already due by the last start would be measured in the
 * structure that fires them, not where a pending timer waits. */
static double timer_bytes(long n) {
  fut_loop_t *loop;
  BENCH_CHECK(fut_loop_new(&loop) == 0);
  double r0 = rss_bytes();
  uint64_t t0 = fut_loop_time(loop);
  for (long i = 0; i < n; i++)
    BENCH_CHECK(fut_loop_call_at(loop, t0 + FUT_MS(1 + xorshift() % 100),
                                 timer_cb, NULL, &handles[i]) == 0);
  double r1 = rss_bytes();
  for (long i = 0; i < n; i++) {
    fut_handle_cancel(handles[i]);
    fut_handle_unref(handles[i]);
  }
  fut_loop_free(loop);
  return (r1 - r0) / (double)n;
}

#ifdef FUT_BENCH_HAVE_LIBEV
/* libev's timers, the same scenarios.  Linked into this benchmark only. */
static struct ev_loop *evl;
static ev_timer *ev_timers;

static void ev_timer_cb(struct ev_loop *l, ev_timer *w, int revents) {
  (void)w;
  (void)revents;
  if (++counter == target)
    ev_break(l, EVBREAK_ALL);
}

static struct fire ev_fire(long n) {
  counter = 0;
  target = n;
  long w0 = wakeups();
  uint64_t c0 = cpu_now();
  ev_now_update(evl);
  for (long i = 0; i < n; i++) {
    ev_timer_init(&ev_timers[i], ev_timer_cb,
                  (double)(1 + xorshift() % 100) / 1000.0, 0.);
    ev_timer_start(evl, &ev_timers[i]);
  }
  ev_run(evl, 0);
  uint64_t c1 = cpu_now();
  BENCH_CHECK(counter == n);
  return (struct fire){(double)(c1 - c0) / (double)n, (double)(wakeups() - w0)};
}

static double ev_cancel(long n) {
  uint64_t t0 = bench_now();
  ev_now_update(evl);
  for (long i = 0; i < n; i++) {
    ev_timer_init(&ev_timers[i], ev_timer_cb,
                  (double)(1 + xorshift() % 100) / 1000.0, 0.);
    ev_timer_start(evl, &ev_timers[i]);
  }
  for (long i = 0; i < n; i++)
    ev_timer_stop(evl, &ev_timers[i]);
  return (double)(bench_now() - t0) / (double)n;
}

/* The ev_timer itself (the user's memory, libev's handle) and libev's
 * heap entry, on a fresh loop. */
static double ev_bytes(long n) {
  struct ev_loop *l = ev_loop_new(EVFLAG_AUTO);
  BENCH_CHECK(l);
  double r0 = rss_bytes();
  ev_timer *ts = malloc(sizeof *ts * (size_t)n);
  BENCH_CHECK(ts);
  for (long i = 0; i < n; i++) {
    ev_timer_init(&ts[i], ev_timer_cb, (double)(1 + xorshift() % 100) / 1000.0,
                  0.);
    ev_timer_start(l, &ts[i]);
  }
  double r1 = rss_bytes();
  for (long i = 0; i < n; i++)
    ev_timer_stop(l, &ts[i]);
  free(ts);
  ev_loop_destroy(l);
  return (r1 - r0) / (double)n;
}
#endif

static int cmp_fire(const void *a, const void *b) {
  double x = ((const struct fire *)a)->cpu_ns;
  double y = ((const struct fire *)b)->cpu_ns;
  return (x > y) - (x < y);
}

static void section_timers(void) {
  long ns[16];
  int nn = parse_list("BENCH_SCALE_TIMERS", quick ? "1e4,1e5" : "1e4,1e5,1e6",
                      ns, 15);
  const char *big = getenv("BENCH_SCALE_BIG");
  if (big && *big == '1')
    ns[nn++] = 10000000;
  long maxn = 0;
  for (int i = 0; i < nn; i++)
    maxn = ns[i] > maxn ? ns[i] : maxn;
  handles = malloc(sizeof *handles * (size_t)maxn);
  BENCH_CHECK(handles);
  memset(handles, 0, sizeof *handles * (size_t)maxn); /* resident now */
  BENCH_CHECK(fut_loop_new(&tloop) == 0);
#ifdef FUT_BENCH_HAVE_LIBEV
  bool ev = peers;
  ev_timers = ev ? malloc(sizeof *ev_timers * (size_t)maxn) : NULL;
  evl = ev ? ev_loop_new(EVFLAG_AUTO) : NULL;
  BENCH_CHECK(!ev || (ev_timers && evl));
#else
  if (peers)
    printf("(libev not found at build time: no libev column)\n");
#endif
  for (int i = 0; i < nn; i++) {
    long n = ns[i];
    row_n = n;
    int runs = quick || n >= 1000000 ? 1 : 3;
    struct fire f[3], e[3] = {{0, 0}, {0, 0}, {0, 0}};
    double c[3], ce[3] = {0, 0, 0};
    for (int r = 0; r < runs; r++) { /* alternating with libev */
      f[r] = s4_fire(n);
#ifdef FUT_BENCH_HAVE_LIBEV
      if (ev)
        e[r] = ev_fire(n);
#endif
      c[r] = s4_cancel(n);
#ifdef FUT_BENCH_HAVE_LIBEV
      if (ev)
        ce[r] = ev_cancel(n);
#endif
    }
    qsort(f, (size_t)runs, sizeof *f, cmp_fire);
    qsort(e, (size_t)runs, sizeof *e, cmp_fire);
    char p[32], name[96];
    pretty(n, p, sizeof p);
    snprintf(name, sizeof name, "S4 %s timers 1..100 ms fire, CPU/timer", p);
    row(name, f[runs / 2].cpu_ns, "ns", "libev", e[runs / 2].cpu_ns);
    snprintf(name, sizeof name, "S4 %s timers, wake-ups (vol. ctx sw.)", p);
    row(name, f[runs / 2].wake, "", "libev", e[runs / 2].wake);
    snprintf(name, sizeof name, "S4' %s timers start then cancel", p);
    row(name, bench_median(c, runs), "ns", "libev", bench_median(ce, runs));
  }
  long bn = maxn < 1000000 ? maxn : 1000000;
  char p[32], name[96];
  snprintf(name, sizeof name, "bytes per pending timer w/ handle, %s",
           pretty(bn, p, sizeof p));
  double eb = 0;
#ifdef FUT_BENCH_HAVE_LIBEV
  if (ev)
    eb = ev_bytes(bn);
#endif
  row_n = bn;
  row(name, timer_bytes(bn), "B", "libev", eb);
#ifdef FUT_BENCH_HAVE_LIBEV
  if (ev) {
    ev_loop_destroy(evl);
    free(ev_timers);
  }
#endif
  fut_loop_free(tloop);
  free(handles);
}

int main(void) {
  const char *q = getenv("BENCH_SCALE_QUICK");
  quick = (q && *q == '1') || bench_quick(); /* bench/run's BENCH_QUICK */
  const char *np = getenv("BENCH_SCALE_NO_PEERS");
  peers = !(np && *np == '1');
  const char *st = getenv("BENCH_SCALE_STACK");
  stack_size = st ? (size_t)strtoull(st, NULL, 0) : 0;
  py_script = getenv("BENCH_SCALE_PY");
#ifdef FUT_BENCH_SCALE_PY
  if (!py_script)
    py_script = FUT_BENCH_SCALE_PY;
#endif
  if (peers && (!py_script || access(py_script, R_OK) != 0 ||
                system("python3 -c 'import asyncio' >/dev/null 2>&1") != 0)) {
    printf("(python3 or %s not available: no asyncio column)\n",
           py_script ? py_script : "bench_scale.py");
    py_script = NULL;
  }
  printf("libfuture %s, bench_scale%s; MemAvailable %.0f MiB\n",
         fut_version_string(), quick ? " (quick)" : "",
         mem_available() / 1048576);
  if (section("tasks"))
    section_tasks();
  if (section("lifecycle"))
    section_lifecycle();
  if (section("timers"))
    section_timers();
  return 0;
}
