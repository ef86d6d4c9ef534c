/* Shared helpers for the benchmark programs: a monotonic clock, repeated
 * runs and their median.  Each program prints one line per scenario:
 *   name  median ns/op  [baseline median ns/op  ratio]  (runs)
 * With BENCH_TSV=1 in the environment (what bench/run sets) each scenario
 * runs once per system after one untimed warm-up run, and every figure
 * also comes as one machine line
 *   @<TAB>scenario<TAB>system<TAB>role<TAB>N<TAB>value<TAB>unit
 * (role: "limit" for a plain-C limit, "peer" for another library, "fut"
 * for libfuture); bench/run keeps only those lines.  BENCH_QUICK=1 asks
 * the programs that read it for a smaller N. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_RUNS 5

static inline int bench_tsv(void) {
  const char *e = getenv("BENCH_TSV");
  return e && *e && *e != '0';
}

static inline int bench_quick(void) {
  const char *e = getenv("BENCH_QUICK");
  return e && *e && *e != '0';
}

/* Repetitions inside one program: one in machine mode (bench/run repeats
 * the programs themselves, round-robin). */
static inline int bench_runs(void) {
  return bench_tsv() ? 1 : BENCH_RUNS;
}

/* One machine line (nothing unless BENCH_TSV is set).  The role comes
 * from the system's name unless given: a plain-C limit names itself so. */
static inline void bench_emit_role(const char *scenario, const char *system,
                                   const char *role, long n, double value,
                                   const char *unit) {
  if (!bench_tsv())
    return;
  printf("@\t%s\t%s\t%s\t%ld\t%.3f\t%s\n", scenario, system, role, n, value,
         unit);
  fflush(stdout);
}

static inline const char *bench_role_of(const char *system) {
  static const char *const limits[] = {"ring buffer", "malloc'd struct",
                                       "raw epoll", "plain", "C loop"};
  if (!system)
    return "fut";
  for (size_t i = 0; i < sizeof limits / sizeof *limits; i++)
    if (strncmp(system, limits[i], strlen(limits[i])) == 0)
      return "limit";
  if (strncmp(system, "libfuture", 9) == 0)
    return "fut";
  return "peer";
}

static inline void bench_emit(const char *scenario, const char *system, long n,
                              double ns) {
  bench_emit_role(scenario, system ? system : "libfuture",
                  bench_role_of(system), n, ns, "ns/op");
}

static inline uint64_t bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int bench_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static inline double bench_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, bench_cmp);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Runs fn(n) `runs` times; fn returns elapsed ns; gives median ns per op. */
static inline double bench_ns_per_op(uint64_t (*fn)(long), long n, int runs) {
  double v[32];
  if (runs == 1) /* one timed run: warm the caches and pools first */
    fn(n);
  for (int i = 0; i < runs; i++)
    v[i] = (double)fn(n) / (double)n;
  return bench_median(v, runs);
}

static inline void bench_report(const char *name, double ns,
                                const char *base_name, double base_ns) {
  if (base_name)
    printf("%-44s %9.2f ns/op   %-26s %9.2f ns/op   ratio %.2fx\n", name, ns,
           base_name, base_ns, ns / base_ns);
  else
    printf("%-44s %9.2f ns/op\n", name, ns);
  fflush(stdout);
}

/* Runs scenario and baseline alternately (so machine noise hits both),
 * BENCH_RUNS times each, and reports the medians and their ratio. */
static inline void bench_pair(const char *name, uint64_t (*fn)(long),
                              const char *base_name, uint64_t (*base)(long),
                              long n) {
  double v[BENCH_RUNS], b[BENCH_RUNS];
  int runs = bench_runs();
  if (runs == 1) { /* one timed run: warm the caches and pools first */
    fn(n);
    if (base)
      base(n);
  }
  for (int i = 0; i < runs; i++) {
    v[i] = (double)fn(n) / (double)n;
    if (base)
      b[i] = (double)base(n) / (double)n;
  }
  double mv = bench_median(v, runs), mb = base ? bench_median(b, runs) : 0;
  bench_report(name, mv, base ? base_name : NULL, mb);
  bench_emit(name, NULL, n, mv);
  if (base)
    bench_emit(name, base_name, n, mb);
}

/* Like bench_pair for k systems (names[0] NULL: libfuture), alternating;
 * each line gives the ratio of libfuture's median to that system's. */
#define BENCH_MAX_SYSTEMS 8
static inline void bench_multi(const char *name, long n, int k,
                               const char *const *names,
                               uint64_t (*const *fns)(long)) {
  double v[BENCH_MAX_SYSTEMS][BENCH_RUNS], m[BENCH_MAX_SYSTEMS];
  int runs = bench_runs();
  if (runs == 1) /* one timed run: warm the caches and pools first */
    for (int s = 0; s < k; s++)
      fns[s](n);
  for (int i = 0; i < runs; i++)
    for (int s = 0; s < k; s++)
      v[s][i] = (double)fns[s](n) / (double)n;
  for (int s = 0; s < k; s++) {
    m[s] = bench_median(v[s], runs);
    bench_emit(name, names[s], n, m[s]);
  }
  for (int s = 1; s < k; s++)
    bench_report(name, m[0], names[s], m[s]);
  if (k == 1)
    bench_report(name, m[0], NULL, 0);
}

#define BENCH_CHECK(expr)                                                      \
  do {                                                                         \
    if (!(expr)) {                                                             \
      fprintf(stderr, "bench: check failed: %s (%s:%d)\n", #expr, __FILE__,    \
              __LINE__);                                                       \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

#endif
