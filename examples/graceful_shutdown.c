/* Graceful shutdown on SIGINT / SIGTERM: a loop runs a few worker tasks
 * until a signal arrives; the handler (an ordinary loop callback, not a
 * signal handler) cancels every task and stops the loop; main then lets
 * the tasks finish their cancellation, removes the handlers and closes.
 *
 *   graceful_shutdown              runs until ^C or `kill <pid>`
 *   graceful_shutdown --self-test  sends itself SIGTERM after 50 ms
 *
 * Exits 0 after a clean shutdown. */
#include <errno.h>
#include <future.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NWORKERS 3

struct app {
  fut_loop_t *loop;
  fut_t *workers[NWORKERS];
  int signals; /* shutdown signals seen */
};

static int worker(void *arg) {
  int id = (int)(intptr_t)arg;
  for (int tick = 0;; tick++) {
    int err = fut_sleep(FUT_MS(20)); /* -ECANCELED once cancelled */
    if (err) {
      printf("worker %d: %s after %d ticks, cleaning up\n", id,
             fut_err_name(err), tick);
      return err;
    }
  }
}

/* Runs on the loop (from its ready queue), so it may call anything. */
static void on_shutdown(void *arg) {
  struct app *app = arg;
  if (app->signals++)
    return; /* a second ^C while shutting down: already on it */
  printf("shutdown signal: cancelling %d workers\n", NWORKERS);
  for (int i = 0; i < NWORKERS; i++)
    fut_cancel(app->workers[i], "shutdown");
  fut_loop_stop(app->loop);
}

static void send_sigterm(void *unused) {
  (void)unused;
  kill(getpid(), SIGTERM);
}

int main(int argc, char **argv) {
  bool self_test = argc > 1 && strcmp(argv[1], "--self-test") == 0;
  struct app app = {0};
  int err = fut_loop_new(&app.loop);
  if (err) {
    fprintf(stderr, "fut_loop_new: %s\n", fut_strerror(err));
    return 1;
  }
  if ((err =
           fut_loop_add_signal_handler(app.loop, SIGINT, on_shutdown, &app)) ||
      (err =
           fut_loop_add_signal_handler(app.loop, SIGTERM, on_shutdown, &app))) {
    fprintf(stderr, "add_signal_handler: %s (%s)\n", fut_strerror(err),
            fut_last_error());
    fut_loop_free(app.loop);
    return 1;
  }
  int started = 0;
  for (; started < NWORKERS && !err; started++)
    err = fut_create_task(app.loop, worker, (void *)(intptr_t)started, NULL,
                          &app.workers[started]);
  if (!err && self_test)
    err = fut_loop_call_later(app.loop, FUT_MS(50), send_sigterm, NULL, NULL);
  if (!err) {
    printf("running %d workers (pid %d); stop with ^C or SIGTERM\n", NWORKERS,
           (int)getpid());
    err = fut_loop_run_forever(app.loop);
  }

  /* Stopped: the workers were cancelled; let them finish (asyncio's
   * gather(*tasks, return_exceptions=True)). */
  fut_t *all = NULL;
  if (!err)
    err = fut_gather(app.loop, app.workers, NWORKERS,
                     FUT_GATHER_RETURN_EXCEPTIONS, &all);
  if (!err)
    err = fut_loop_run_until_complete(app.loop, all);
  int cancelled = 0;
  for (int i = 0; i < started && app.workers[i]; i++) {
    cancelled += fut_cancelled(app.workers[i]);
    fut_unref(app.workers[i]);
  }
  fut_unref(all);
  /* Closing removes the handlers too; removing them is explicit here. */
  fut_loop_remove_signal_handler(app.loop, SIGINT);
  fut_loop_remove_signal_handler(app.loop, SIGTERM);
  fut_loop_free(app.loop);
  if (err) {
    fprintf(stderr, "failed: %s\n", fut_strerror(err));
    return 1;
  }
  printf("clean shutdown: %d of %d workers cancelled\n", cancelled, NWORKERS);
  return app.signals == 1 && cancelled == NWORKERS ? 0 : 1;
}
