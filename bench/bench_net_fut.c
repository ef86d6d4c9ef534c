/* bench_net's libfuture echo servers: the protocol API (callbacks) and the
 * streams API (one task per connection).  Both run a loop of their own
 * with fut_loop_run_forever until the stop fd is readable or the time
 * bound passes, then close their server and every connection, let the
 * loop finish them, and free the loop. */
#include "bench_net.h"

#include <errno.h>
#include <future.h>
#include <stdio.h>

#include "future/transport.h"
#ifdef FUT_BENCH_HAVE_NET_STREAMS
#include "future/stream.h"
#endif

#define FUT_ECHO_BUF 65536
#define FUT_ECHO_BACKLOG 1024

static void on_stop(void *arg) {
  fut_loop_stop(arg);
}

typedef int (*make_server_fn)(fut_loop_t *loop, int port,
                              const fut_server_opts_t *opts,
                              fut_server_t **out);

static int report(const char *name, const char *what, int err) {
  fprintf(stderr, "%s: %s: %s\n", name, what, fut_strerror(err));
  return err;
}

/* Lets the loop finish the connections close_clients aborted (their
 * connection_lost callbacks, the streams' handler tasks): bounded, 1 s. */
static int finish(fut_loop_t *loop, fut_server_t *srv, const char *name) {
  for (int i = 0; i < 1000 && fut_server_active_connections(srv) > 0; i++)
    if (fut_loop_run_once(loop, FUT_MS(1)) != 0)
      break;
  for (int i = 0; i < 100 && fut_loop_backend_timeout(loop) == 0; i++)
    fut_loop_run_once(loop, 0);
  size_t left = fut_server_active_connections(srv);
  if (left) {
    fprintf(stderr,
            "%s: %zu connections still active 1 s after "
            "fut_server_close_clients\n",
            name, left);
    return -EBUSY;
  }
  return 0;
}

static int run_server(const net_server_cfg_t *cfg, const char *name,
                      make_server_fn make) {
  fut_loop_t *loop;
  fut_server_t *srv = NULL;
  fut_handle_t *bound = NULL;
  fut_server_opts_t opts;
  int err = fut_loop_new(&loop);
  if (err)
    return report(name, "fut_loop_new", err);
  fut_server_opts_init(&opts);
  opts.backlog = FUT_ECHO_BACKLOG;
  if ((err = make(loop, cfg->port, &opts, &srv)) != 0) {
    report(name, "creating the server", err);
    goto out;
  }
  if (cfg->stop_fd >= 0 &&
      (err = fut_loop_add_reader(loop, cfg->stop_fd, on_stop, loop)) != 0) {
    report(name, "fut_loop_add_reader", err);
    goto out;
  }
  if ((err = fut_loop_call_later(loop, (uint64_t)(cfg->max_seconds * 1e9),
                                 on_stop, loop, &bound)) != 0) {
    report(name, "fut_loop_call_later", err);
    goto out;
  }
  if (cfg->ready)
    cfg->ready(fut_server_port(srv), cfg->ready_arg);
  if ((err = fut_loop_run_forever(loop)) != 0) {
    report(name, "fut_loop_run_forever", err);
    goto out;
  }
  if (cfg->stop_fd >= 0)
    fut_loop_remove_reader(loop, cfg->stop_fd);
  fut_handle_cancel(bound);
  fut_server_close_clients(srv);
  err = finish(loop, srv, name);
out:
  if (bound)
    fut_handle_unref(bound);
  if (srv)
    fut_server_unref(srv);
  int ferr = fut_loop_free(loop);
  if (ferr && !err)
    err = report(name, "fut_loop_free", ferr);
  return err;
}

/* ---- protocol --------------------------------------------------------------
 */

#ifdef FUT_BENCH_HAVE_NET_PROTOCOL
static void echo_data(fut_transport_t *t, const void *data, size_t len,
                      void *arg) {
  (void)arg;
  if (fut_transport_write(t, data, len) != 0)
    fut_transport_abort(t);
}

static const fut_protocol_t echo_protocol = {.data_received = echo_data};

static int make_protocol(fut_loop_t *loop, int port,
                         const fut_server_opts_t *opts, fut_server_t **out) {
  return fut_create_server(loop, &echo_protocol, NULL, NULL, "127.0.0.1", port,
                           opts, out);
}

int net_serve_fut_protocol(const net_server_cfg_t *cfg) {
  return run_server(cfg, "libfuture protocol", make_protocol);
}
#endif

/* ---- streams ---------------------------------------------------------------
 */

#ifdef FUT_BENCH_HAVE_NET_STREAMS
/* Each handler reads into a buffer of its own (on its stack): a waiting
 * read_into receives straight into it, so buffers cannot be shared. */
static int echo_handler(fut_reader_t *r, fut_writer_t *w, void *arg) {
  char stream_buf[16384];
  size_t n;
  int err;
  (void)arg;
  while (!(err = fut_reader_read_into(r, stream_buf, sizeof stream_buf, &n)) &&
         n)
    if ((err = fut_writer_write(w, stream_buf, n)) ||
        (err = fut_writer_drain(w)))
      break;
  /* A peer that goes away, or the server closing the connection, ends the
   * handler quietly; anything else is reported by the loop. */
  switch (err) {
  case -ECONNRESET:
  case -EPIPE:
  case -ECONNABORTED:
  case -ECANCELED:
    return 0;
  default:
    return err;
  }
}

static int make_streams(fut_loop_t *loop, int port,
                        const fut_server_opts_t *opts, fut_server_t **out) {
  return fut_start_server(loop, echo_handler, NULL, "127.0.0.1", port, opts,
                          NULL, out);
}

int net_serve_fut_streams(const net_server_cfg_t *cfg) {
  return run_server(cfg, "libfuture streams", make_streams);
}
#endif
