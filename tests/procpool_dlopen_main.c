/* test_procpool_dlopened: a program that does not link libfuture but
 * dlopens it (as a Python extension or a plugin host would).  Its
 * /proc/self/exe has no libfuture constructor, so the exec'd fork server is
 * just this program again: it must not hang fut_process_pool_create.
 *
 * Bug: fut_process_pool_create waited for the fork server's READY with no time
 * limit; the exec'd foreign program never answers and keeps the control
 * socket open, so fut_process_pool_create hung forever.
 *
 * Not a cmocka test file (the glob would link it with libfuture). */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct fut_process_pool fut_process_pool_t;
typedef int (*pp_new_fn)(const void *opts, fut_process_pool_t **out);
typedef const char *(*last_error_fn)(void);

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int main(void) {
  if (getenv("FUT_FORKSERVER_FD")) {
    /* The exec'd "fork server": a foreign program that never answers. */
    for (;;)
      pause();
  }
  void *lib = dlopen(LIBFUTURE_PATH, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  pp_new_fn pp_new =
      (pp_new_fn)(uintptr_t)dlsym(lib, "fut_process_pool_create");
  last_error_fn last = (last_error_fn)(uintptr_t)dlsym(lib, "fut_last_error");
  if (!pp_new || !last) {
    fprintf(stderr, "dlsym failed\n");
    return 1;
  }
  /* The test harness kills us at its timeout if this hangs. */
  uint64_t t0 = now_ms();
  fut_process_pool_t *p = (fut_process_pool_t *)1;
  int rc = pp_new(NULL, &p);
  uint64_t dt = now_ms() - t0;
  printf("fut_process_pool_create: %d after %llu ms: %s\n", rc,
         (unsigned long long)dt, last());
  if (rc != -ETIMEDOUT || p != NULL) {
    fprintf(stderr, "want -ETIMEDOUT and NULL\n");
    return 1;
  }
  /* The server was killed and reaped: no child is left. */
  if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD) {
    fprintf(stderr, "a child process is left behind\n");
    return 1;
  }
  return 0;
}
