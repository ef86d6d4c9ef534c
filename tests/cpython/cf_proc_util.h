/* Helpers for the process pool ports of Lib/test/test_concurrent_futures/:
 * a gate that works across processes (workers are forks of the pool's
 * fork server, not of the test, so they share only the file system with
 * it), bytes jobs, and the check that a test leaves no child behind. */
#ifndef FUT_TESTS_CPYTHON_CF_PROC_UTIL_H
#define FUT_TESTS_CPYTHON_CF_PROC_UTIL_H

#include "cf_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "future/process_pool.h"

static inline void pp_sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  while (nanosleep(&ts, &ts) != 0)
    ;
}

static inline uint64_t pp_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- a file-system gate --------------------------------------------------
 * A directory: each job that reaches the gate appends one byte to
 * "started", then polls (every 2 ms, at most 30 s) for the file "go". */
struct fgate {
  char dir[64];
};

static inline void fgate_init(struct fgate *g) {
  snprintf(g->dir, sizeof g->dir, "/tmp/fut_cf_XXXXXX");
  assert_non_null(mkdtemp(g->dir));
}

static inline int fgate_started(struct fgate *g) {
  char p[128];
  snprintf(p, sizeof p, "%s/started", g->dir);
  struct stat st;
  return stat(p, &st) == 0 ? (int)st.st_size : 0;
}

/* Waits (bounded, 30 s) until n jobs reached the gate. */
static inline void fgate_wait_started(struct fgate *g, int n) {
  for (int i = 0; i < 15000 && fgate_started(g) < n; i++)
    pp_sleep_ns(2000000);
  assert_true(fgate_started(g) >= n);
}

static inline void fgate_open(struct fgate *g) {
  char p[128];
  snprintf(p, sizeof p, "%s/go", g->dir);
  int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  close(fd);
}

static inline void fgate_destroy(struct fgate *g) {
  char p[128];
  snprintf(p, sizeof p, "%s/started", g->dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/go", g->dir);
  unlink(p);
  rmdir(g->dir);
}

/* The job side: data is the directory's path.  Returns 0 once the gate
 * opened, -ETIMEDOUT after 30 s. */
static inline int fgate_pass(const void *data, size_t len) {
  char dir[PATH_MAX], p[PATH_MAX + 16];
  if (len == 0 || len >= sizeof dir)
    return -EINVAL;
  memcpy(dir, data, len);
  dir[len] = '\0';
  snprintf(p, sizeof p, "%s/started", dir);
  int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    return -errno;
  ssize_t w = write(fd, "s", 1);
  close(fd);
  if (w != 1)
    return -EIO;
  snprintf(p, sizeof p, "%s/go", dir);
  for (int i = 0; i < 15000; i++) {
    if (access(p, F_OK) == 0)
      return 0;
    pp_sleep_ns(2000000);
  }
  return -ETIMEDOUT;
}

/* A bytes job blocked on the gate; empty result (None). */
static inline int fgate_job(const void *data, size_t len, void **out,
                            size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  return fgate_pass(data, len);
}

static inline fut_job_t fgate_jobdesc(struct fgate *g) {
  return fut_job_bytes(fgate_job, g->dir, strlen(g->dir));
}

/* ---- bytes jobs ---------------------------------------------------------- */

static inline int pp_out_i64(int64_t v, void **out, size_t *out_len) {
  int64_t *r = malloc(sizeof *r);
  if (!r)
    return -ENOMEM;
  *r = v;
  *out = r;
  *out_len = sizeof *r;
  return 0;
}

static inline int pp_in_i64(const void *data, size_t len, int64_t *v) {
  if (len != sizeof *v)
    return -EINVAL;
  memcpy(v, data, sizeof *v);
  return 0;
}

/* time.sleep(n ns); result None */
static inline int pp_sleep_job(const void *data, size_t len, void **out,
                               size_t *out_len) {
  int64_t ns;
  int err = pp_in_i64(data, len, &ns);
  if (err)
    return err;
  pp_sleep_ns((uint64_t)ns);
  *out = NULL;
  *out_len = 0;
  return 0;
}

/* abs(n) */
static inline int pp_abs_job(const void *data, size_t len, void **out,
                             size_t *out_len) {
  int64_t n;
  int err = pp_in_i64(data, len, &n);
  return err ? err : pp_out_i64(n < 0 ? -n : n, out, out_len);
}

/* mul(x, y) over a struct mul */
static inline int pp_mul_job(const void *data, size_t len, void **out,
                             size_t *out_len) {
  struct mul m;
  if (len != sizeof m)
    return -EINVAL;
  memcpy(&m, data, sizeof m);
  return pp_out_i64(m.x * m.y, out, out_len);
}

/* os.getpid() */
static inline int pp_getpid_job(const void *data, size_t len, void **out,
                                size_t *out_len) {
  (void)data;
  (void)len;
  return pp_out_i64(getpid(), out, out_len);
}

static inline fut_cfuture_t *pp_submit(fut_executor_t *ex, fut_bytes_fn fn,
                                       const void *data, size_t len) {
  fut_job_t job = fut_job_bytes(fn, data, len);
  fut_cfuture_t *cf = NULL;
  assert_int_equal(fut_executor_submit_job(ex, &job, &cf), 0);
  return cf;
}

static inline fut_cfuture_t *pp_submit_i64(fut_executor_t *ex, fut_bytes_fn fn,
                                           int64_t v) {
  return pp_submit(ex, fn, &v, sizeof v);
}

/* The int64 result of cf; *err gets the outcome's code. */
static inline int64_t pp_result_i64(fut_cfuture_t *cf, uint64_t timeout,
                                    int *err) {
  const void *d = NULL;
  size_t n = 0;
  *err = fut_cfuture_result_bytes(cf, timeout, &d, &n);
  if (*err)
    return 0;
  assert_int_equal(n, sizeof(int64_t));
  int64_t v;
  memcpy(&v, d, sizeof v);
  return v;
}

/* ---- what a test leaves behind ------------------------------------------- */

/* Processes whose parent is this process (the pools' fork servers; their
 * workers are the fork servers' children), zombies included. */
static inline int pp_children(void) {
  DIR *d = opendir("/proc");
  if (!d)
    return -1;
  int n = 0;
  pid_t me = getpid();
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "re");
    if (!f)
      continue;
    size_t r = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[r] = '\0';
    char *rp = strrchr(buf, ')');
    char state;
    int ppid;
    if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == me)
      n++;
  }
  closedir(d);
  return n;
}

/* Waits (bounded, 10 s) until no child is left; returns how many are. */
static inline int pp_children_settle(void) {
  int n = pp_children();
  for (int i = 0; i < 5000 && n != 0; i++) {
    pp_sleep_ns(2000000);
    n = pp_children();
  }
  return n;
}

static inline int pp_threads(void) {
  return fx_count_dir("/proc/self/task");
}

/* Waits (bounded, 10 s) until the thread count is at most want. */
static inline int pp_threads_settle(int want) {
  int n = pp_threads();
  for (int i = 0; i < 5000 && n > want; i++) {
    pp_sleep_ns(2000000);
    n = pp_threads();
  }
  return n;
}

/* cmocka setup/teardown: every test starts and ends without children. */
static inline int pp_no_children(void **state) {
  (void)state;
  assert_int_equal(pp_children_settle(), 0);
  return 0;
}

#endif
