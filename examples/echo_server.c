/* An echo server with streams, one task per connection (asyncio's
 * start_server example), on one loop per thread: each loop listens on the
 * same port with SO_REUSEPORT and the kernel spreads the connections, the
 * way one process uses every core.
 *
 *   echo_server [--host 127.0.0.1] [--port 8888] [--loops N]
 *               [--seconds S] [--max-conns M]
 *
 * It prints "listening on HOST port PORT with N loops", serves until
 * M connections finished, S seconds passed or SIGINT / SIGTERM, then
 * prints how many connections each loop served. */
#include <errno.h>
#include <future.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LOOPS 64

struct loop_ctx {
  pthread_t thread;
  fut_loop_t *loop;
  fut_server_t *server;
  int index;
  long served; /* connections handled by this loop (its thread only) */
  int err;
};

static const char *host = "127.0.0.1";
static int port = 8888;
static atomic_long finished;
static volatile sig_atomic_t stop_asked;
static pthread_mutex_t ready_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;
static int nready;

static int handle_client(fut_reader_t *r, fut_writer_t *w, void *arg) {
  struct loop_ctx *c = arg;
  c->served++;
  char buf[16384];
  size_t n;
  int err;
  while (!(err = fut_reader_read_into(r, buf, sizeof buf, &n)) && n)
    if ((err = fut_writer_write(w, buf, n)) || (err = fut_writer_drain(w)))
      break;
  atomic_fetch_add(&finished, 1);
  return err == -ECONNRESET ? 0 : err; /* a client that resets is fine */
}

static void stop_loop(void *arg) {
  fut_loop_stop(arg);
}

static void *serve(void *arg) {
  struct loop_ctx *c = arg;
  fut_server_opts_t so;
  fut_server_opts_init(&so);
  so.reuse_port = true;
  so.backlog = 1024;
  c->err = fut_loop_new(&c->loop);
  if (!c->err)
    c->err = fut_start_server(c->loop, handle_client, c, host, port, &so, NULL,
                              &c->server);
  if (c->err)
    fprintf(stderr, "loop %d: %s (%s)\n", c->index, fut_strerror(c->err),
            fut_last_error());
  pthread_mutex_lock(&ready_lock);
  nready++;
  pthread_cond_signal(&ready_cond);
  pthread_mutex_unlock(&ready_lock);
  if (!c->err)
    fut_loop_run_forever(c->loop);
  if (c->server) {
    fut_server_close(c->server);
    fut_server_unref(c->server);
  }
  if (c->loop) {
    fut_loop_close(c->loop); /* ends handler tasks, closes connections */
    fut_loop_free(c->loop);
  }
  return NULL;
}

static void on_signal(int sig) {
  (void)sig;
  stop_asked = 1;
}

static int start_loop(struct loop_ctx *c) {
  int rc = pthread_create(&c->thread, NULL, serve, c);
  if (rc)
    return -rc;
  pthread_mutex_lock(&ready_lock);
  while (nready <= c->index)
    pthread_cond_wait(&ready_cond, &ready_lock);
  pthread_mutex_unlock(&ready_lock);
  return c->err;
}

int main(int argc, char **argv) {
  int nloops = 1;
  double seconds = 0;
  long max_conns = 0;
  for (int i = 1; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) {
      fprintf(stderr, "%s needs a value\n", a);
      return 2;
    }
    if (!strcmp(a, "--host"))
      host = v;
    else if (!strcmp(a, "--port"))
      port = atoi(v);
    else if (!strcmp(a, "--loops"))
      nloops = atoi(v);
    else if (!strcmp(a, "--seconds"))
      seconds = atof(v);
    else if (!strcmp(a, "--max-conns"))
      max_conns = atol(v);
    else {
      fprintf(stderr,
              "usage: %s [--host H] [--port P] [--loops N] [--seconds S] "
              "[--max-conns M]\n",
              argv[0]);
      return 2;
    }
  }
  if (nloops < 1 || nloops > MAX_LOOPS) {
    fprintf(stderr, "--loops must be 1 to %d\n", MAX_LOOPS);
    return 2;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  static struct loop_ctx loops[MAX_LOOPS];
  int started = 0, err = 0;
  for (int i = 0; i < nloops && !err; i++) {
    loops[i].index = i;
    err = start_loop(&loops[i]);
    started++;
    /* Port 0: the first loop picked one, the others share it. */
    if (!err && i == 0 && port == 0)
      port = fut_server_port(loops[0].server);
  }
  if (!err) {
    printf("listening on %s port %d with %d loops\n", host, port, nloops);
    fflush(stdout);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
      nanosleep(&(struct timespec){0, 10000000}, NULL);
      clock_gettime(CLOCK_MONOTONIC, &now);
      double el = (double)(now.tv_sec - t0.tv_sec) +
                  (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
      if (stop_asked || (seconds > 0 && el >= seconds) ||
          (max_conns > 0 && atomic_load(&finished) >= max_conns))
        break;
    }
  }
  for (int i = 0; i < started; i++) {
    if (loops[i].loop && !loops[i].err)
      fut_loop_call_soon_threadsafe(loops[i].loop, stop_loop, loops[i].loop);
    pthread_join(loops[i].thread, NULL);
  }
  if (err) {
    fprintf(stderr, "echo_server: %s\n", fut_strerror(err));
    return 1;
  }
  for (int i = 0; i < nloops; i++)
    printf("loop %d: %ld connections\n", i, loops[i].served);
  return 0;
}
