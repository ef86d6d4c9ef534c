/* fut_loop_run_until_complete: run_forever until a future is done.  A
 * future-layer call on the loop's public API; the future it waits for is
 * kept as this file's loop part state, so a stale stop callback of an
 * earlier run (see stop_cb) can tell it is stale. */
#include "future/internal.h"

/* The part's state on a loop is the future run_until_complete waits for
 * (not a reference), NULL outside it; never set at close (a running loop
 * cannot close), hence no close hook. */
static int ruc_part;

__attribute__((constructor)) static void ruc_part_init(void) {
  static const struct fut__loop_part part = {.name = "run_until_complete"};
  ruc_part = fut__loop_part_register(&part);
}

/* Stops only the run_until_complete that registered it: when f completes
 * in the iteration where something else stopped the loop, the dispatch
 * carrying this callback is still queued after run_until_complete returned
 * and must not stop a later run. */
static void stop_cb(fut_t *f, void *arg) {
  fut_loop_t *loop = arg;
  if (fut__loop_part(loop, ruc_part) == f)
    fut_loop_stop(loop);
}

int fut_loop_run_until_complete(fut_loop_t *loop, fut_t *f) {
  if (!loop || !f)
    return fut__error(-EINVAL, "fut_loop_run_until_complete: NULL %s",
                      !loop ? "loop" : "future");
  if (f->loop != loop)
    return fut__error(FUT_E_OTHER_LOOP, "fut_loop_run_until_complete: the "
                                        "future belongs to another loop");
  if (loop->running)
    return fut__error(FUT_E_RUNNING, "fut_loop_run_until_complete: the loop "
                                     "is already running");
  int err = fut__add_done_callback(f, stop_cb, loop);
  if (err)
    return err;
  fut_ref(f);
  fut__loop_part_set(loop, ruc_part, f);
  err = fut_loop_run_forever(loop);
  fut__loop_part_set(loop, ruc_part, NULL);
  fut_remove_done_callback(f, stop_cb, loop);
  if (err == 0) {
    if (!fut_done(f))
      err = fut__error(FUT_E_STOPPED, "fut_loop_run_until_complete: the loop "
                                      "stopped before the future completed");
    else
      err = fut_result(f, NULL);
  }
  fut_unref(f);
  return err;
}
