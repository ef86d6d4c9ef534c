/* Shared helpers for the benchmark programs: a monotonic clock, repeated
 * runs and their median.  Each program prints one line per scenario:
 *   name  median ns/op  [baseline median ns/op  ratio]  (runs) */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BENCH_RUNS 5

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
  for (int i = 0; i < BENCH_RUNS; i++) {
    v[i] = (double)fn(n) / (double)n;
    if (base)
      b[i] = (double)base(n) / (double)n;
  }
  bench_report(name, bench_median(v, BENCH_RUNS), base ? base_name : NULL,
               base ? bench_median(b, BENCH_RUNS) : 0);
}

#define BENCH_CHECK(expr)                                                     \
  do {                                                                        \
    if (!(expr)) {                                                            \
      fprintf(stderr, "bench: check failed: %s (%s:%d)\n", #expr, __FILE__,  \
              __LINE__);                                                      \
      exit(1);                                                                \
    }                                                                         \
  } while (0)

#endif
