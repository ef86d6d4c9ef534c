/* An echo client with streams (asyncio's open_connection example): C
 * connections at once, one task each, each sending M lines and checking
 * every echoed byte.
 *
 *   echo_client [--host 127.0.0.1] [--port 8888] [--connections C]
 *               [--messages M]
 *
 * Prints "C connections x M messages: ok" and exits 0, or the first error
 * and exits 1. */
#include <errno.h>
#include <future.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *host = "127.0.0.1";
static int port = 8888;
static int nconns = 1, nmsgs = 3;

static int client(void *arg) {
  int id = (int)(intptr_t)arg;
  fut_reader_t *r;
  fut_writer_t *w;
  int err = fut_open_connection(host, port, NULL, NULL, &r, &w);
  if (err)
    return err;
  for (int i = 0; i < nmsgs && !err; i++) {
    char line[64];
    int len = snprintf(line, sizeof line, "client %d message %d\n", id, i);
    void *echo = NULL;
    size_t n = 0;
    if (!(err = fut_writer_write(w, line, (size_t)len)))
      err = fut_reader_readline(r, &echo, &n);
    if (!err && (n != (size_t)len || memcmp(echo, line, n)))
      err = -EPROTO; /* the echo differs */
    free(echo);
  }
  fut_writer_close(w);
  if (!err)
    err = fut_writer_wait_closed(w);
  fut_reader_unref(r);
  fut_writer_unref(w);
  return err;
}

static int main_task(void *arg) {
  (void)arg;
  fut_loop_t *loop = fut_get_running_loop();
  fut_t **tasks = calloc((size_t)nconns, sizeof *tasks);
  if (!tasks)
    return -ENOMEM;
  int first_err = 0;
  for (int i = 0; i < nconns; i++) {
    int err =
        fut_create_task(loop, client, (void *)(intptr_t)i, NULL, &tasks[i]);
    if (err && !first_err)
      first_err = err;
  }
  for (int i = 0; i < nconns; i++) {
    if (!tasks[i])
      continue;
    int err = fut_await(tasks[i], NULL);
    if (err && !first_err) {
      first_err = err;
      fprintf(stderr, "connection %d: %s\n", i, fut_strerror(err));
    }
    fut_unref(tasks[i]);
  }
  free(tasks);
  return first_err;
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--host"))
      host = argv[i + 1];
    else if (!strcmp(argv[i], "--port"))
      port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--connections"))
      nconns = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--messages"))
      nmsgs = atoi(argv[i + 1]);
  }
  if (nconns < 1 || nmsgs < 0) {
    fprintf(stderr,
            "usage: %s [--host H] [--port P] [--connections C] "
            "[--messages M]\n",
            argv[0]);
    return 2;
  }
  fut_t *main_t = NULL;
  int err = fut_run(main_task, NULL, &main_t);
  fut_unref(main_t);
  if (err) {
    fprintf(stderr, "echo_client: %s\n", fut_strerror(err));
    return 1;
  }
  printf("%d connections x %d messages: ok\n", nconns, nmsgs);
  return 0;
}
