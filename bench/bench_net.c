/* Network echo: TCP echo servers on 127.0.0.1, driven by one closed-loop
 * load generator (bench_net_loadgen.c) that checks every byte.
 *   servers  raw epoll (the limit), libuv (when found at configure time),
 *            libfuture's protocol API and its streams API (one task per
 *            connection)
 *   cells    C = 10 and 100 connections x 1 KiB and 10 KiB messages, and
 *            S6: 64-byte ping-pong over one connection (us per round trip)
 * Each server runs in a forked child pinned to the first allowed CPU, the
 * generator in this process on the second (no pinning with one CPU); in S6
 * the generator busy-polls, so a round trip holds one wake-up only: the
 * server's.  The servers take turns (round-robin, the first one rotating
 * with the run), and the figures are medians over the runs: req/s, p99
 * latency, the server's CPU time per request (user + system from wait4's
 * rusage over the child's whole life, divided by every request it served,
 * warm-up and the final drain included) and req/s as a ratio to raw
 * epoll's in the same run.
 *
 * Environment: BENCH_NET_SECONDS (per cell and run, default 2),
 * BENCH_NET_RUNS (default 5), BENCH_NET_QUICK=1 (0.3 s, 1 run),
 * BENCH_NET_CELLS=c10-1k,c10-10k,c100-1k,c100-10k,s6 (a subset; default
 * all), BENCH_NET_COST=1 (the counted mode instead: system calls and
 * instructions per request, bench_net_cost.c).
 * Exits 1 on any echo mismatch, a server that fails to start or stop
 * cleanly, or a stall; the PASS/FAIL line about the targets does not
 * change the exit status. */
#include "bench_net.h"

#include "bench_common.h"

#include <future.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_RUNS 31
#define START_MS 5000 /* a server must listen within this */
#define STOP_MS 5000  /* and exit within this after being told to */

enum { RAW, UV, PROTO, STREAMS, NSERVERS };
_Static_assert(UV == NET_SRV_UV && PROTO == NET_SRV_PROTO,
               "bench_net.h's server indices");

typedef struct server {
  const char *name;
  net_server_fn fn; /* NULL: not available (why says why) */
  const char *why;
} server_t;

typedef struct cell {
  const char *key; /* for BENCH_NET_CELLS */
  const char *name;
  int conns;
  size_t size;
  bool s6; /* ping-pong: report us per round trip */
} cell_t;

typedef struct sample {
  double rps, p99_us, cpu_us, gen_share;
  double runq; /* share of time generator + server waited for a CPU */
} sample_t;

static server_t servers[NSERVERS] = {
    [RAW] = {"raw epoll", net_serve_raw, NULL},
#ifdef FUT_BENCH_HAVE_LIBUV
    [UV] = {"libuv", net_serve_uv, NULL},
#else
    [UV] = {"libuv", NULL, "not installed"},
#endif
#ifdef FUT_BENCH_HAVE_NET_PROTOCOL
    [PROTO] = {"libfuture protocol", net_serve_fut_protocol, NULL},
#else
    [PROTO] = {"libfuture protocol", NULL,
               "not built (no fut_create_server in this libfuture)"},
#endif
#ifdef FUT_BENCH_HAVE_NET_STREAMS
    [STREAMS] = {"libfuture streams", net_serve_fut_streams, NULL},
#else
    [STREAMS] = {"libfuture streams", NULL,
                 "not built (no fut_start_server in this libfuture)"},
#endif
};

static const cell_t cells[] = {
    {"c10-1k", "C=10, 1 KiB", 10, 1024, false},
    {"c10-10k", "C=10, 10 KiB", 10, 10240, false},
    {"c100-1k", "C=100, 1 KiB", 100, 1024, false},
    {"c100-10k", "C=100, 10 KiB", 100, 10240, false},
    {"s6", "S6 ping-pong, 64 B, one connection", 1, 64, true},
};
#define NCELLS (sizeof cells / sizeof cells[0])

static double seconds = 2.0, warmup = 0.25;
static int runs = BENCH_RUNS;
static int cpu_server = -1, cpu_gen = -1;
static pid_t child = -1;
static int unclean_stops;

/* Per cell: the median of each figure, and of each ratio to raw epoll. */
static struct {
  bool done;
  sample_t med[NSERVERS];
  double ratio[NSERVERS];     /* req/s over raw's (S6: us/rt over raw's) */
  double cpu_ratio[NSERVERS]; /* CPU us/req / raw's */
} result[NCELLS];

void net_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "bench_net: FAIL: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
  exit(1);
}

static double env_double(const char *name, double def, double lo, double hi) {
  const char *s = getenv(name);
  if (!s || !*s)
    return def;
  char *end;
  double v = strtod(s, &end);
  if (*end || !(v >= lo && v <= hi)) {
    fprintf(stderr, "bench_net: %s=%s: want a number in [%g, %g]\n", name, s,
            lo, hi);
    exit(2);
  }
  return v;
}

/* The server on the first allowed CPU, the generator on the second. */
static void choose_cpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0)
    return;
  for (int i = 0, seen = 0; i < CPU_SETSIZE && seen < 2; i++) {
    if (!CPU_ISSET(i, &set))
      continue;
    if (seen++ == 0)
      cpu_server = i;
    else
      cpu_gen = i;
  }
  if (cpu_gen < 0) {
    cpu_server = -1;
    return;
  }
  CPU_ZERO(&set);
  CPU_SET(cpu_gen, &set);
  BENCH_CHECK(sched_setaffinity(0, sizeof set, &set) == 0);
}

int net_servers(const net_server_info_t **out) {
  static net_server_info_t info[NSERVERS];
  for (int i = 0; i < NSERVERS; i++)
    info[i] = (net_server_info_t){servers[i].name, servers[i].fn};
  *out = info;
  return NSERVERS;
}

void net_pin(bool server) {
  choose_cpus();
  if (!server || cpu_server < 0)
    return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu_server, &set);
  sched_setaffinity(0, sizeof set, &set);
}

static void pin_server(void) {
  if (cpu_server < 0)
    return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu_server, &set);
  sched_setaffinity(0, sizeof set, &set);
}

static void report_port(int port, void *arg) {
  int fd = *(int *)arg;
  if (write(fd, &port, sizeof port) != (ssize_t)sizeof port)
    _exit(4);
  close(fd);
}

static double tv_s(struct timeval tv) {
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Runs server s in a child for one run of cell c. */
static void measure(const server_t *s, const cell_t *c, sample_t *out) {
  int stop[2], ready[2], port = 0, status = 0;
  BENCH_CHECK(pipe2(stop, O_CLOEXEC) == 0 && pipe2(ready, O_CLOEXEC) == 0);
  fflush(stdout);
  fflush(stderr);
  uint64_t born = bench_now();
  child = fork();
  BENCH_CHECK(child >= 0);
  if (child == 0) {
    close(stop[1]);
    close(ready[0]);
    pin_server();
    signal(SIGPIPE, SIG_IGN);
    net_server_cfg_t sc = {.port = 0,
                           .stop_fd = stop[0],
                           .max_seconds = warmup + seconds + 30,
                           .ready = report_port,
                           .ready_arg = &ready[1]};
    _exit(s->fn(&sc) == 0 ? 0 : 3);
  }
  close(stop[0]);
  close(ready[1]);
  struct pollfd p = {.fd = ready[0], .events = POLLIN};
  if (poll(&p, 1, START_MS) != 1 ||
      read(ready[0], &port, sizeof port) != (ssize_t)sizeof port || port <= 0)
    net_fail("%s did not start listening within %d ms", s->name, START_MS);
  close(ready[0]);

  char label[128];
  snprintf(label, sizeof label, "%s, %s", s->name, c->name);
  net_load_cfg_t lc = {.port = port,
                       .conns = c->conns,
                       .msg_size = c->size,
                       .warmup_seconds = warmup,
                       .measure_seconds = seconds,
                       .label = label,
                       .busy_poll = c->s6 && cpu_server >= 0};
  net_load_result_t r;
  net_load_run(&lc, &r);
  char stat[64];
  snprintf(stat, sizeof stat, "/proc/%d/schedstat", (int)child);
  double srv_wait = net_run_delay_s(stat);
  double life = (double)(bench_now() - born) / 1e9;

  /* EOF on the stop pipe; then the child's rusage, waiting at most
   * STOP_MS before killing it. */
  close(stop[1]);
  struct rusage ru;
  pid_t got = 0;
  for (int i = 0; i < STOP_MS && got == 0; i++) {
    got = wait4(child, &status, WNOHANG, &ru);
    if (got == 0)
      nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
  }
  if (got != child) {
    fprintf(stderr,
            "bench_net: %s did not exit within %d ms of the stop; "
            "killed\n",
            s->name, STOP_MS);
    kill(child, SIGKILL);
    BENCH_CHECK(wait4(child, &status, 0, &ru) == child);
    unclean_stops++;
  } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "bench_net: %s stopped uncleanly (%s %d)\n", s->name,
            WIFEXITED(status) ? "exit status" : "signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    unclean_stops++;
  }
  child = -1;
  if (r.requests == 0 || r.total_requests == 0)
    net_fail("%s: no request completed", label);
  out->rps = (double)r.requests / r.seconds;
  out->p99_us = r.p99_us;
  out->cpu_us =
      (tv_s(ru.ru_utime) + tv_s(ru.ru_stime)) * 1e6 / (double)r.total_requests;
  out->gen_share = r.gen_cpu_share;
  out->runq = srv_wait < 0 || r.gen_run_delay_s < 0
                  ? -1
                  : r.gen_run_delay_s / r.seconds + srv_wait / life;
}

static void run_cell(size_t ci) {
  const cell_t *c = &cells[ci];
  static sample_t smp[NSERVERS][MAX_RUNS];
  double v[MAX_RUNS];
  for (int run = 0; run < runs; run++)
    for (int k = 0; k < NSERVERS; k++) {
      int si = (k + run) % NSERVERS;
      if (servers[si].fn)
        measure(&servers[si], c, &smp[si][run]);
    }

  result[ci].done = true;
  printf("\n%s\n", c->name);
  printf("  %-20s %10s %7s %9s %11s %10s %8s %7s\n", "server",
         c->s6 ? "us/rt" : "req/s", "x raw", "p99 us", "CPU us/req",
         "CPU x raw", "gen CPU", "runq");
  for (int si = 0; si < NSERVERS; si++) {
    const server_t *s = &servers[si];
    if (!s->fn) {
      printf("  %-20s %s\n", s->name, s->why);
      continue;
    }
    sample_t *m = &result[ci].med[si];
#define MEDIAN(field, expr)                                                    \
  do {                                                                         \
    for (int i = 0; i < runs; i++)                                             \
      v[i] = (expr);                                                           \
    field = bench_median(v, runs);                                             \
  } while (0)
    MEDIAN(m->rps, smp[si][i].rps);
    MEDIAN(m->p99_us, smp[si][i].p99_us);
    MEDIAN(m->cpu_us, smp[si][i].cpu_us);
    MEDIAN(m->gen_share, smp[si][i].gen_share);
    MEDIAN(m->runq, smp[si][i].runq);
    /* S6 compares time per round trip: raw's rate over this one's. */
    MEDIAN(result[ci].ratio[si], c->s6 ? smp[RAW][i].rps / smp[si][i].rps
                                       : smp[si][i].rps / smp[RAW][i].rps);
    MEDIAN(result[ci].cpu_ratio[si], smp[si][i].cpu_us / smp[RAW][i].cpu_us);
#undef MEDIAN
    printf("  %-20s %10.*f %7.2f %9.1f %11.2f %10.2f %7.0f%% %6.0f%%\n",
           s->name, c->s6 ? 2 : 0, c->s6 ? 1e6 / m->rps : m->rps,
           result[ci].ratio[si], m->p99_us, m->cpu_us, result[ci].cpu_ratio[si],
           m->gen_share * 100, m->runq * 100);
    char scen[96];
    if (c->s6) {
      snprintf(scen, sizeof scen, "%s, two processes (per round trip)",
               c->name);
      bench_emit(scen, s->name, 1, 1e9 / m->rps);
    } else {
      snprintf(scen, sizeof scen, "echo %s: server CPU per request", c->name);
      bench_emit(scen, s->name, c->conns, m->cpu_us * 1000);
    }
  }
  fflush(stdout);
}

/* ---- targets ---------------------------------------------------------------
 * Over the C cells measured: the worst (lowest or highest) of a ratio. */

typedef double (*ratio_fn)(size_t ci);

static double rps_ratio(size_t ci, int si) {
  return result[ci].ratio[si];
}
static double proto_rps(size_t ci) {
  return rps_ratio(ci, PROTO);
}
static double streams_rps(size_t ci) {
  return rps_ratio(ci, STREAMS);
}
static double proto_cpu(size_t ci) {
  return result[ci].cpu_ratio[PROTO];
}
static double streams_cpu(size_t ci) {
  return result[ci].cpu_ratio[STREAMS];
}
static double proto_vs_uv(size_t ci) {
  return result[ci].med[PROTO].rps / result[ci].med[UV].rps;
}
static double proto_cpu_vs_uv(size_t ci) {
  return result[ci].med[PROTO].cpu_us / result[ci].med[UV].cpu_us;
}

static bool all_pass = true;

/* Prints "what: PASS (worst r, cell)" when ratio f is at least bound in
 * every C cell (low) or at most bound (!low); strict: above / below it.
 * counts: whether it joins the final verdict. */
static void check(const char *what, ratio_fn f, bool low, double bound,
                  bool strict, bool counts) {
  double worst = 0;
  const char *where = NULL;
  for (size_t ci = 0; ci < NCELLS; ci++) {
    if (cells[ci].s6 || !result[ci].done)
      continue;
    double r = f(ci);
    if (!where || (low ? r < worst : r > worst)) {
      worst = r;
      where = cells[ci].name;
    }
  }
  if (!where) {
    printf("%s: n/a (no C cell run)", what);
    return;
  }
  bool ok = low ? (strict ? worst > bound : worst >= bound)
                : (strict ? worst < bound : worst <= bound);
  if (counts)
    all_pass &= ok;
  printf("%s: %s (worst %.2f, %s)", what, ok ? "PASS" : "FAIL", worst, where);
}

/* Names the cells where a server or the generator waited for its CPU
 * more than 5% of the time (median): there the figures measure the other
 * processes as much as the servers. */
static void print_noise(void) {
  bool any = false;
  for (size_t ci = 0; ci < NCELLS; ci++) {
    double worst = 0;
    for (int si = 0; si < NSERVERS && result[ci].done; si++)
      if (servers[si].fn && result[ci].med[si].runq > worst)
        worst = result[ci].med[si].runq;
    if (worst > 0.05) {
      printf("%s%s (runq %.0f%%)",
             any ? ", "
                 : "\nNOISY: other processes "
                   "took the CPUs in ",
             cells[ci].name, worst * 100);
      any = true;
    }
  }
  if (any)
    printf("; rerun those on a quiet machine\n");
}

static void print_targets(void) {
  const size_t s6 = NCELLS - 1;
  print_noise();
  printf("\n");
  if (!servers[PROTO].fn || !servers[STREAMS].fn) {
    printf("targets: NOT MEASURED (libfuture's network layer is not built "
           "here)\n");
    return;
  }
  /* BENCHMARKS.md words its targets in server CPU per request: the
   * generator saturates its core near raw epoll's rate, so req/s hides
   * differences between the servers.  Shown, not part of the verdict. */
  printf("CPU per request (information, BENCHMARKS.md): ");
  check("protocol <= 1.05x raw", proto_cpu, false, 1.05, false, false);
  printf("; ");
  check("streams <= 1.25x raw", streams_cpu, false, 1.25, false, false);
  if (servers[UV].fn) {
    printf("; ");
    check("protocol < libuv", proto_cpu_vs_uv, false, 1.0, true, false);
  }
  printf("\n");

  printf("targets: ");
  check("protocol >= 0.95x raw req/s", proto_rps, true, 0.95, false, true);
  printf("; ");
  if (servers[UV].fn)
    check("protocol ahead of libuv (req/s ratio)", proto_vs_uv, true, 1.0, true,
          true);
  else
    printf("protocol ahead of libuv: n/a (libuv not installed)");
  printf("; ");
  check("streams >= 0.85x raw req/s", streams_rps, true, 0.85, false, true);
  printf("; S6 streams <= 1.10x raw us/rt: ");
  if (result[s6].done) {
    double r6 = result[s6].ratio[STREAMS];
    all_pass &= r6 <= 1.10;
    printf("%s (%.2f)", r6 <= 1.10 ? "PASS" : "FAIL", r6);
  } else {
    printf("n/a (not run)");
  }
  printf(" => %s\n", all_pass ? "PASS" : "FAIL");
}

/* BENCH_NET_CELLS: a comma-separated list of cell keys (default: all). */
bool net_cell_wanted(const char *key) {
  const char *list = getenv("BENCH_NET_CELLS");
  if (!list || !*list)
    return true;
  size_t n = strlen(key);
  for (const char *p = list; (p = strstr(p, key)) != NULL; p += n)
    if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
      return true;
  return false;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--serve") == 0)
    return net_cost_serve(argc, argv);
  if (argc > 1) {
    fprintf(stderr, "usage: bench_net (settings through BENCH_NET_* "
                    "environment variables)\n");
    return 2;
  }
  if (getenv("BENCH_NET_COST") && atoi(getenv("BENCH_NET_COST")))
    return net_cost_main();
  bool quick = (getenv("BENCH_NET_QUICK") && atoi(getenv("BENCH_NET_QUICK"))) ||
               bench_quick();
  if (quick) {
    seconds = 0.3;
    warmup = 0.1;
    runs = 1;
  }
  seconds = env_double("BENCH_NET_SECONDS", seconds, 0.05, 60);
  runs = (int)env_double("BENCH_NET_RUNS", bench_tsv() ? 1 : runs, 1, MAX_RUNS);
  if (warmup > seconds / 2)
    warmup = seconds / 2;
  signal(SIGPIPE, SIG_IGN);
  choose_cpus();

  printf("bench_net: TCP echo on 127.0.0.1, closed-loop load generator "
         "checking every byte\n");
  if (cpu_server >= 0)
    printf("servers on CPU %d, load generator on CPU %d; ", cpu_server,
           cpu_gen);
  else
    printf("one CPU: nothing pinned; ");
  printf("%.2f s per cell after %.2f s warm-up, medians of %d round-robin "
         "run%s%s\n",
         seconds, warmup, runs, runs == 1 ? "" : "s",
         quick ? " (quick mode: rough figures)" : "");
#ifdef FUT_BENCH_HAVE_LIBUV
  printf("libuv %s; ", net_uv_version());
#else
  printf("libuv: not installed; ");
#endif
  printf("libfuture %s\n", fut_version_string());
  printf("CPU us/req: the server child's utime + stime / requests it "
         "served; gen CPU: the generator's share of its core (100%%: the "
         "generator is the bottleneck); runq: time generator and server "
         "spent runnable but waiting for their CPU, summed (above a few %%: "
         "other processes took the CPUs and the figures are noise)\n");
  fflush(stdout);

  for (size_t ci = 0; ci < NCELLS; ci++)
    if (net_cell_wanted(cells[ci].key))
      run_cell(ci);
  print_targets();
  if (unclean_stops) {
    fprintf(stderr,
            "bench_net: FAIL: %d server run(s) did not stop cleanly (see "
            "above)\n",
            unclean_stops);
    return 1;
  }
  return 0;
}
