/* bench_spawn (issue 11): spawn + wait of /bin/true from a loop task
 * (fut_create_subprocess_exec + fut_process_wait) against plain
 * posix_spawn + waitpid, alternating, in the same run; then the same with
 * the parent holding 1 GiB of touched memory, which shows whether the
 * spawn path copies page tables (fork would; posix_spawn's vfork-style
 * clone does not).
 *
 *   bench_spawn [count per run, default 1000] [MiB to touch, default 1024]
 *
 * Prints the median over 5 runs of µs per spawn + wait for each, and the
 * ratio (target: libfuture within 1.2x of plain). */
#include "bench_common.h"

#include <future.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

extern char **environ;

static char *const true_argv[] = {"/bin/true", NULL};

static uint64_t plain(long n) {
  uint64_t t0 = bench_now();
  for (long i = 0; i < n; i++) {
    pid_t pid;
    BENCH_CHECK(
        posix_spawn(&pid, "/bin/true", NULL, NULL, true_argv, environ) == 0);
    int st;
    BENCH_CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
                WEXITSTATUS(st) == 0);
  }
  return bench_now() - t0;
}

static long fut_n;

static int spawner(void *arg) {
  fut_loop_t *loop = arg;
  fut_spawn_opts_t o;
  fut_spawn_opts_init(&o);
  for (long i = 0; i < fut_n; i++) {
    fut_process_t *p;
    BENCH_CHECK(fut_create_subprocess_exec(loop, true_argv, &o, &p) == 0);
    int code = -1;
    BENCH_CHECK(fut_process_wait(p, &code) == 0 && code == 0);
    fut_process_unref(p);
  }
  return 0;
}

static uint64_t with_loop(long n) {
  fut_loop_t *loop;
  BENCH_CHECK(fut_loop_new(&loop) == 0);
  fut_n = n;
  fut_t *t;
  BENCH_CHECK(fut_create_task(loop, spawner, loop, NULL, &t) == 0);
  uint64_t t0 = bench_now();
  BENCH_CHECK(fut_loop_run_until_complete(loop, t) == 0);
  uint64_t t1 = bench_now();
  fut_unref(t);
  BENCH_CHECK(fut_loop_free(loop) == 0);
  return t1 - t0;
}

static void row(const char *what, long n) {
  double a[BENCH_RUNS], b[BENCH_RUNS];
  int runs = bench_runs();
  plain(n / 10 + 1); /* warm up both */
  with_loop(n / 10 + 1);
  for (int r = 0; r < runs; r++) {
    a[r] = (double)plain(n) / (double)n / 1000.0;
    b[r] = (double)with_loop(n) / (double)n / 1000.0;
  }
  double pa = bench_median(a, runs), pb = bench_median(b, runs);
  char scen[96];
  snprintf(scen, sizeof scen, "spawn + wait /bin/true, %s", what);
  bench_emit_role(scen, "libfuture", "fut", n, pb * 1000.0, "ns/op");
  bench_emit_role(scen, "plain posix_spawn + waitpid", "limit", n, pa * 1000.0,
                  "ns/op");
  printf("%-36s plain %7.1f us   libfuture %7.1f us   %.2fx%s\n", what, pa, pb,
         pb / pa, pb / pa <= 1.2 ? "" : "  (above the 1.2x target)");
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : bench_quick() ? 50 : 1000;
  long mib = argc > 2 ? atol(argv[2]) : bench_quick() ? 64 : 1024;
  if (n < 10 || mib < 0) {
    fprintf(stderr, "usage: bench_spawn [count >= 10] [MiB >= 0]\n");
    return 2;
  }
  printf("spawn + wait of /bin/true, %ld per run, medians of %d runs\n", n,
         BENCH_RUNS);
  row("parent small", n);
  size_t big = (size_t)mib << 20;
  char *mem = big ? mmap(NULL, big, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                  : NULL;
  if (big && mem == MAP_FAILED) {
    printf("(cannot map %ld MiB: the large-parent row is skipped)\n", mib);
    return 0;
  }
  if (big) {
    memset(mem, 1, big); /* touched: page tables exist for all of it */
    char name[64];
    snprintf(name, sizeof name, "parent with %ld MiB touched", mib);
    row(name, n);
    munmap(mem, big);
  }
  return 0;
}
