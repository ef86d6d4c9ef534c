/* asyncio's run_in_executor example, line for line in C:
 *
 *   def blocking_io():
 *       with open('/dev/urandom', 'rb') as f:
 *           return f.read(100)
 *
 *   def cpu_bound():
 *       return sum(i * i for i in range(10 ** 7))
 *
 *   async def main():
 *       loop = asyncio.get_running_loop()
 *       result = await loop.run_in_executor(None, blocking_io)
 *       print('default thread pool', result)
 *       with concurrent.futures.ThreadPoolExecutor() as pool:
 *           result = await loop.run_in_executor(pool, blocking_io)
 *           print('custom thread pool', result)
 *       with concurrent.futures.ProcessPoolExecutor() as pool:
 *           result = await loop.run_in_executor(pool, cpu_bound)
 *           print('custom process pool', result)
 *
 *   asyncio.run(main())
 *
 * It prints what Python prints: the bytes in Python's b'...' notation and
 * the exact sum, 333333283333335000000 (more than 64 bits: unsigned
 * __int128 here). */
#include <errno.h>
#include <fcntl.h>
#include <future.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__extension__ typedef unsigned __int128 u128;

/* File operations (such as logging) can block the event loop: run them in
 * a thread pool. */
static int blocking_io(void *arg, fut_cfuture_t *result) {
  (void)arg;
  char buf[100];
  size_t got = 0;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  while (got < sizeof buf) { /* f.read(100): /dev/urandom gives them all */
    ssize_t n = read(fd, buf + got, sizeof buf - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int err = n < 0 ? -errno : -EIO;
      close(fd);
      return err;
    }
    got += (size_t)n;
  }
  close(fd);
  return fut_cfuture_set_result_bytes(result, buf, got);
}

/* CPU-bound operations will block the event loop: in general it is
 * preferable to run them in a process pool.  A process pool job maps
 * argument bytes to result bytes: here none in, 16 bytes (the u128) out. */
static int cpu_bound(const void *arg, size_t len, void **out,
                     size_t *out_len) {
  (void)arg;
  (void)len;
  u128 sum = 0;
  for (uint64_t i = 0; i < 10000000u; i++)
    sum += (u128)i * i;
  u128 *r = malloc(sizeof *r);
  if (!r)
    return -ENOMEM;
  memcpy(r, &sum, sizeof sum);
  *out = r;
  *out_len = sizeof *r;
  return 0;
}

/* print(bytes): Python's repr of a bytes object. */
static void print_bytes(const char *label, const void *data, size_t len) {
  const unsigned char *p = data;
  bool squote = memchr(p, '\'', len) != NULL;
  bool dquote = memchr(p, '"', len) != NULL;
  char q = squote && !dquote ? '"' : '\'';
  printf("%s b%c", label, q);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = p[i];
    if (c == '\\' || c == (unsigned char)q)
      printf("\\%c", c);
    else if (c == '\t')
      fputs("\\t", stdout);
    else if (c == '\n')
      fputs("\\n", stdout);
    else if (c == '\r')
      fputs("\\r", stdout);
    else if (c < 0x20 || c >= 0x7f)
      printf("\\x%02x", c);
    else
      putchar(c);
  }
  printf("%c\n", q);
}

/* print(int) for an unsigned 128-bit integer. */
static void print_u128(const char *label, u128 v) {
  char digits[40];
  int n = 0;
  do {
    digits[n++] = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v);
  printf("%s ", label);
  while (n > 0)
    putchar(digits[--n]);
  putchar('\n');
}

/* await loop.run_in_executor(ex, job) and print the bytes. */
static int run_io(fut_loop_t *loop, fut_executor_t *ex, const char *label) {
  fut_t *f;
  int err = fut_run_in_executor(loop, ex, blocking_io, NULL, &f);
  if (err)
    return err;
  const void *data;
  size_t len;
  err = fut_await_bytes(f, &data, &len);
  if (!err)
    print_bytes(label, data, len);
  fut_unref(f);
  return err;
}

static int async_main(void *arg) {
  (void)arg;
  fut_loop_t *loop = fut_get_running_loop();
  fut_executor_t *pool;

  /* 1. Run in the default loop's executor. */
  int err = run_io(loop, NULL, "default thread pool");
  if (err)
    return fut_task_fail(err, "default thread pool: %s", fut_strerror(err));

  /* 2. Run in a custom thread pool ("with" = free: shutdown(wait)). */
  if ((err = fut_thread_pool_new(0, &pool)))
    return fut_task_fail(err, "thread pool: %s", fut_last_error());
  err = run_io(loop, pool, "custom thread pool");
  fut_executor_free(pool);
  if (err)
    return fut_task_fail(err, "custom thread pool: %s", fut_strerror(err));

  /* 3. Run in a custom process pool. */
  if ((err = fut_process_pool_new(0, &pool)))
    return fut_task_fail(err, "process pool: %s", fut_last_error());
  fut_job_t job = fut_job_bytes(cpu_bound, NULL, 0);
  fut_t *f;
  err = fut_run_in_executor_job(loop, pool, &job, &f);
  if (!err) {
    const void *data;
    size_t len;
    err = fut_await_bytes(f, &data, &len);
    if (!err && len == sizeof(u128)) {
      u128 sum;
      memcpy(&sum, data, sizeof sum);
      print_u128("custom process pool", sum);
    } else if (!err) {
      err = -EPROTO;
    }
    fut_unref(f);
  }
  fut_executor_free(pool);
  if (err)
    return fut_task_fail(err, "custom process pool: %s", fut_strerror(err));
  return 0;
}

int main(void) {
  fut_t *main_task;
  int err = fut_run(async_main, NULL, &main_task);
  if (err) {
    const char *msg = NULL;
    if (main_task)
      fut_exception(main_task, &msg);
    fprintf(stderr, "run_in_executor: %s\n", msg ? msg : fut_strerror(err));
  }
  fut_unref(main_task);
  return err ? 1 : 0;
}
