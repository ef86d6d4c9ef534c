/* The network layer's loop part: its per-loop state, made on first use,
 * and what fut_loop_close does with what is still open (servers closed,
 * transports lost with FUT_E_CLOSED so that every fd goes back, the DNS
 * pool shut down). */
#include "net/internal.h"

static int net_part = -1;

static void net_close(fut_loop_t *loop, void *state) {
  struct fut__net_state *st = state;
  (void)loop;
  st->closing = true;
  while (!fut__q_empty(&st->servers)) {
    fut_server_t *s =
        fut__container_of(fut__q_first(&st->servers), fut_server_t, node);
    fut_server_close(s); /* unlinks it */
  }
  /* Each transport gets its connection_lost now (the ready queue will not
   * run again), so protocol arguments are freed and fds closed. */
  while (!fut__q_empty(&st->transports)) {
    fut_transport_t *t =
        fut__container_of(fut__q_first(&st->transports), fut_transport_t, node);
    fut__transport_force_close(t, FUT_E_CLOSED);
    fut__transport_lost_now(t);
  }
  if (st->dns) {
    fut_executor_shutdown(st->dns, true, true, FUT_FOREVER);
    fut_executor_free(st->dns);
  }
  fut__free(st->rbuf);
  fut__free(st);
}

__attribute__((constructor)) static void net_part_init(void) {
  static const struct fut__loop_part part = {
      .name = "network", .rank = FUT__RANK_NET, .close = net_close};
  net_part = fut__loop_part_register(&part);
}

struct fut__net_state *fut__net_state_peek(const fut_loop_t *loop) {
  return fut__loop_part(loop, net_part);
}

struct fut__net_state *fut__net_state(fut_loop_t *loop) {
  struct fut__net_state *st = fut__loop_part(loop, net_part);
  if (st)
    return st;
  st = fut__calloc(1, sizeof *st);
  char *rbuf = fut__malloc(FUT__NET_RBUF);
  if (!st || !rbuf) {
    fut__free(st);
    fut__free(rbuf);
    fut__error(-ENOMEM, "out of memory for the loop's network state");
    return NULL;
  }
  st->rbuf = rbuf;
  fut__q_init(&st->transports);
  fut__q_init(&st->servers);
  fut__loop_part_set(loop, net_part, st);
  return st;
}
