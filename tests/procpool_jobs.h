/* Jobs and helpers shared by the process pool tests.  Jobs live in the
 * test executable: workers resolve them as (main program, offset). */
#ifndef TESTS_PROCPOOL_JOBS_H
#define TESTS_PROCPOOL_JOBS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "future.h"
#include "future/process_pool.h"

#define FUT_TEST_UNUSED __attribute__((unused))

/* ---- a blocking completion for the pool-level API ----------------------- */

struct waiter {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  bool done;
  bool refuse; /* start callback says "cancelled" */
  int err;
  void *data;
  size_t len;
  char msg[512];
};

FUT_TEST_UNUSED static void waiter_init(struct waiter *w) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->cv, NULL);
}

FUT_TEST_UNUSED static void waiter_done(void *ud, int err, void *data,
                                        size_t len, const char *msg) {
  struct waiter *w = ud;
  pthread_mutex_lock(&w->lock);
  w->err = err;
  w->data = data;
  w->len = len;
  snprintf(w->msg, sizeof w->msg, "%s", msg ? msg : "");
  w->done = true;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->lock);
}

FUT_TEST_UNUSED static bool waiter_start(void *ud) {
  struct waiter *w = ud;
  return !w->refuse;
}

FUT_TEST_UNUSED static int waiter_wait(struct waiter *w) {
  pthread_mutex_lock(&w->lock);
  while (!w->done)
    pthread_cond_wait(&w->cv, &w->lock);
  pthread_mutex_unlock(&w->lock);
  return w->err;
}

FUT_TEST_UNUSED static bool waiter_is_done(struct waiter *w) {
  pthread_mutex_lock(&w->lock);
  bool d = w->done;
  pthread_mutex_unlock(&w->lock);
  return d;
}

FUT_TEST_UNUSED static void waiter_destroy(struct waiter *w) {
  free(w->data);
  pthread_mutex_destroy(&w->lock);
  pthread_cond_destroy(&w->cv);
}

/* ---- jobs -------------------------------------------------------------- */

/* arg: int64 n; result: int64 n * n. */
FUT_TEST_UNUSED static int job_square(const void *arg, size_t len,
                                      fut_buf_t *out) {
  int64_t n;
  if (len != sizeof n)
    return fut_buf_errorf(out, -EINVAL, "want 8 bytes, got %zu", len);
  memcpy(&n, arg, sizeof n);
  n *= n;
  return fut_buf_append(out, &n, sizeof n);
}

/* Fails with -EDOM and a message naming its argument. */
FUT_TEST_UNUSED static int job_fail(const void *arg, size_t len,
                                    fut_buf_t *out) {
  (void)arg;
  return fut_buf_errorf(out, -EDOM, "job_fail got %zu bytes", len);
}

/* Result: the worker's pid as int64. */
FUT_TEST_UNUSED static int job_getpid(const void *arg, size_t len,
                                      fut_buf_t *out) {
  (void)arg;
  (void)len;
  int64_t pid = getpid();
  return fut_buf_append(out, &pid, sizeof pid);
}

/* Result: every argument byte xor 0x5a (same length). */
FUT_TEST_UNUSED static int job_xor(const void *arg, size_t len,
                                   fut_buf_t *out) {
  unsigned char *o = fut_buf_resize(out, len);
  if (!o)
    return -ENOMEM;
  const unsigned char *a = arg;
  for (size_t i = 0; i < len; i++)
    o[i] = a[i] ^ 0x5a;
  return 0;
}

/* arg: uint64 n; result: n bytes (to overflow a small max_frame). */
FUT_TEST_UNUSED static int job_big_result(const void *arg, size_t len,
                                          fut_buf_t *out) {
  uint64_t n;
  if (len != sizeof n)
    return -EINVAL;
  memcpy(&n, arg, sizeof n);
  if (!fut_buf_resize(out, n))
    return 0; /* the pool reports the recorded failure */
  return 0;
}

/* arg: int exit status.  Calls exit() in the worker. */
FUT_TEST_UNUSED static int job_exit(const void *arg, size_t len,
                                    fut_buf_t *out) {
  (void)out;
  int code = 3;
  if (len == sizeof code)
    memcpy(&code, arg, sizeof code);
  exit(code);
}

/* Kills its own worker. */
FUT_TEST_UNUSED static int job_suicide(const void *arg, size_t len,
                                       fut_buf_t *out) {
  (void)arg;
  (void)len;
  (void)out;
  raise(SIGKILL);
  return 0;
}

FUT_TEST_UNUSED static int job_positive(const void *arg, size_t len,
                                        fut_buf_t *out) {
  (void)arg;
  (void)len;
  (void)out;
  return 7;
}

/* arg: directory holding FIFOs "started" and "go".  Writes its pid into
 * "started" (which blocks until the test reads it: proof the job runs),
 * then blocks until the test writes a byte into "go". */
FUT_TEST_UNUSED static int gate_body(const void *arg, size_t len) {
  char dir[PATH_MAX], path[PATH_MAX + 16];
  if (len == 0 || len >= sizeof dir)
    return -EINVAL;
  memcpy(dir, arg, len);
  dir[len] = '\0';
  snprintf(path, sizeof path, "%s/started", dir);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int pid = getpid();
  ssize_t w = write(fd, &pid, sizeof pid);
  close(fd);
  if (w != sizeof pid)
    return -EIO;
  snprintf(path, sizeof path, "%s/go", dir);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  char c = 0;
  ssize_t r = read(fd, &c, 1);
  close(fd);
  return r == 1 ? c : -EPIPE;
}

FUT_TEST_UNUSED static int job_gate(const void *arg, size_t len,
                                    fut_buf_t *out) {
  int c = gate_body(arg, len);
  if (c < 0)
    return c;
  char ch = (char)c;
  return fut_buf_append(out, &ch, 1);
}

/* Result: int64 count of the worker's open fds other than 0, 1, 2 (the
 * directory stream used to count them included). */
FUT_TEST_UNUSED static int job_count_fds(const void *arg, size_t len,
                                         fut_buf_t *out) {
  (void)arg;
  (void)len;
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return -errno;
  int64_t n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (e->d_name[0] != '.' && atoi(e->d_name) > 2)
      n++;
  closedir(d);
  return fut_buf_append(out, &n, sizeof n);
}

/* Initializer: stores its argument (an int64) for job_init_value. */
FUT_TEST_UNUSED static int64_t init_value = -1;
FUT_TEST_UNUSED static int init_store(const void *arg, size_t len) {
  if (len != sizeof init_value)
    return -EINVAL;
  memcpy(&init_value, arg, len);
  return 0;
}
FUT_TEST_UNUSED static int init_refuse(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  return -EACCES;
}
FUT_TEST_UNUSED static int job_init_value(const void *arg, size_t len,
                                          fut_buf_t *out) {
  (void)arg;
  (void)len;
  return fut_buf_append(out, &init_value, sizeof init_value);
}

/* ---- helpers ----------------------------------------------------------- */

/* The gate's FIFOs in a fresh temporary directory. */
struct gate {
  char dir[64];
};

static inline void gate_init(struct gate *g) {
  snprintf(g->dir, sizeof g->dir, "/tmp/fut_pp_XXXXXX");
  if (!mkdtemp(g->dir))
    abort();
  char p[128];
  snprintf(p, sizeof p, "%s/started", g->dir);
  if (mkfifo(p, 0600))
    abort();
  snprintf(p, sizeof p, "%s/go", g->dir);
  if (mkfifo(p, 0600))
    abort();
}

/* Blocks until a gate job runs; returns its worker's pid. */
static inline int gate_wait_started(struct gate *g) {
  char p[128];
  snprintf(p, sizeof p, "%s/started", g->dir);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    abort();
  int pid = -1;
  if (read(fd, &pid, sizeof pid) != sizeof pid)
    pid = -1;
  close(fd);
  return pid;
}

static inline void gate_open(struct gate *g) {
  char p[128];
  snprintf(p, sizeof p, "%s/go", g->dir);
  int fd = open(p, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    abort();
  if (write(fd, "g", 1) != 1)
    abort();
  close(fd);
}

static inline void gate_destroy(struct gate *g) {
  char p[128];
  snprintf(p, sizeof p, "%s/started", g->dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/go", g->dir);
  unlink(p);
  rmdir(g->dir);
}

static inline int count_dir(const char *path) {
  DIR *d = opendir(path);
  if (!d)
    return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

/* Threads are removed from /proc/self/task a moment after pthread_join
 * returns (the kernel clears the tid before it unhashes the task): wait up
 * to 2 s for the count to drop to want. */
static inline int threads_settle(int want) {
  int n = count_dir("/proc/self/task");
  for (int i = 0; i < 2000 && n > want; i++) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    n = count_dir("/proc/self/task");
  }
  return n;
}

/* Zombie (state Z) children of pid, found by scanning /proc. */
static inline int zombies_of(pid_t parent) {
  DIR *d = opendir("/proc");
  if (!d)
    return -1;
  int n = 0;
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
    if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == parent &&
        state == 'Z')
      n++;
  }
  closedir(d);
  return n;
}

#endif
