/* The parts of bench_net shared between its files: the echo servers (each
 * run in a child process by bench_net.c, and the protocol one also by
 * echo_protocol_server.c) and the load generator.  Every socket is on
 * 127.0.0.1. */
#ifndef BENCH_NET_H
#define BENCH_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How a server runs.  It listens on 127.0.0.1:port (0: a free port), calls
 * ready(port) once listening, and serves until stop_fd is readable (a byte
 * or EOF; -1: no stop fd) or max_seconds have passed, whichever is first. */
typedef struct net_server_cfg {
  int port;
  int stop_fd;
  double max_seconds;
  void (*ready)(int port, void *arg);
  void *ready_arg;
} net_server_cfg_t;

/* Each returns 0 after a clean stop, else a negative code (after printing
 * why on stderr). */
typedef int (*net_server_fn)(const net_server_cfg_t *cfg);

/* bench_net_raw.c: the limit.  Level-triggered epoll, accept4 non-blocking,
 * one read and one write per request into a 64 KiB buffer reused. */
int net_serve_raw(const net_server_cfg_t *cfg);

#ifdef FUT_BENCH_HAVE_LIBUV
/* bench_net_uv.c: uv_tcp with uv_read_start into one reused buffer,
 * uv_try_write first and uv_write for what it did not take. */
int net_serve_uv(const net_server_cfg_t *cfg);
const char *net_uv_version(void);
#endif

#ifdef FUT_BENCH_HAVE_NET_PROTOCOL
/* bench_net_fut.c: libfuture's protocol API (fut_create_server, a
 * data_received that calls fut_transport_write). */
int net_serve_fut_protocol(const net_server_cfg_t *cfg);
#endif

#ifdef FUT_BENCH_HAVE_NET_STREAMS
/* bench_net_fut.c: libfuture's streams, one task per connection looping
 * fut_reader_read_into / fut_writer_write / fut_writer_drain. */
int net_serve_fut_streams(const net_server_cfg_t *cfg);
#endif

/* ---- the load generator (bench_net_loadgen.c) ------------------------------
 * A closed loop on epoll: each connection sends a message, waits for its
 * whole echo, compares every byte, then sends the next.  Any mismatch,
 * short echo, extra byte, closed connection or stall prints what happened
 * and calls net_fail (which exits non-zero). */
typedef struct net_load_cfg {
  int port;
  int conns;
  size_t msg_size;
  double warmup_seconds;  /* run, but do not count */
  double measure_seconds; /* then count for this long */
  const char *label;      /* for error messages */
  /* Poll without sleeping (epoll_wait timeout 0): a sleeping generator
   * adds its own wake-up to every round trip, the same for every server,
   * which hides their differences when one connection is all there is. */
  bool busy_poll;
  /* Counted mode (fixed_requests > 0; the times above are then unused):
   * fixed_warm requests, then every connection idle and mark(0); then
   * fixed_requests more, every connection idle again, and mark(1).  So the
   * server did exactly fixed_requests echoes between the marks. */
  uint64_t fixed_warm, fixed_requests;
  void (*mark)(int phase, void *arg);
  void *mark_arg;
} net_load_cfg_t;

typedef struct net_load_result {
  uint64_t requests;       /* completed in the measured window */
  uint64_t total_requests; /* completed, warm-up included */
  double seconds;          /* the measured window */
  double p50_us, p99_us;   /* per-request latency in the window */
  double gen_cpu_share;    /* the generator's CPU time / window */
  double gen_run_delay_s;  /* its time runnable but not running in the
                              window (-1: unknown) */
} net_load_result_t;

void net_load_run(const net_load_cfg_t *cfg, net_load_result_t *out);

/* bench_net_cost.c: BENCH_NET_COST=1 (system calls and instructions per
 * request); returns bench_net's exit status.  net_cost_serve runs a server
 * for `bench_net --serve` (the child that valgrind runs). */
int net_cost_main(void);
int net_cost_serve(int argc, char **argv);

/* bench_net.c: the servers by index (raw, libuv, protocol, streams). */
#define NET_SRV_UV 1
#define NET_SRV_PROTO 2
typedef struct net_server_info {
  const char *name;
  net_server_fn fn; /* NULL: not available here */
} net_server_info_t;
int net_servers(const net_server_info_t **out);
/* Pins the calling process to the server's CPU (server) or the load
 * generator's (no-op with one CPU). */
void net_pin(bool server);
/* Whether BENCH_NET_CELLS asks for the cell with this key (unset: all). */
bool net_cell_wanted(const char *key);

/* The run delay in a /proc schedstat file (time runnable but waiting for a
 * CPU: other processes had it), in s; -1 when it cannot be read. */
double net_run_delay_s(const char *schedstat);

/* Reports a failure and exits with status 1 (bench_net.c kills the server
 * child first). */
_Noreturn void net_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif
