/* Transports and protocols (asyncio's "TCP echo server/client using
 * protocols" example): a server whose protocol writes back what it
 * receives, and a client protocol that sends one message, prints the echo
 * and closes.  Both run on one loop, on loopback. */
#include <errno.h>
#include <future.h>
#include <stdio.h>
#include <string.h>

/* ---- the server's protocol ---- */
static void server_data(fut_transport_t *t, const void *data, size_t len,
                        void *arg) {
  (void)arg;
  printf("server received %zu bytes: %.*s\n", len, (int)len,
         (const char *)data);
  fut_transport_write(t, data, len); /* sent at once, buffered if need be */
  fut_transport_close(t);
}
static const fut_protocol_t server_proto = {.data_received = server_data};

/* ---- the client's protocol ---- */
struct client {
  const char *message;
  fut_t *done; /* resolved by connection_lost */
};
static void client_made(fut_transport_t *t, void *arg) {
  struct client *c = arg;
  fut_transport_write(t, c->message, strlen(c->message));
  printf("client sent: %s\n", c->message);
}
static void client_data(fut_transport_t *t, const void *data, size_t len,
                        void *arg) {
  (void)t;
  (void)arg;
  printf("client received: %.*s\n", (int)len, (const char *)data);
}
static void client_lost(fut_transport_t *t, int err, void *arg) {
  (void)t;
  struct client *c = arg;
  printf("the server closed the connection (%s)\n", fut_strerror(err));
  fut_set_result(c->done, NULL, NULL);
}
static const fut_protocol_t client_proto = {.connection_made = client_made,
                                            .data_received = client_data,
                                            .connection_lost = client_lost};

static int main_task(void *arg) {
  (void)arg;
  fut_loop_t *loop = fut_get_running_loop();
  fut_server_t *server;
  int err = fut_create_server(loop, &server_proto, NULL, NULL, "127.0.0.1", 0,
                              NULL, &server);
  if (err)
    return err;
  struct client c = {.message = "Hello World!"};
  fut_transport_t *t = NULL;
  err = fut_new(loop, &c.done);
  if (!err)
    err = fut_create_connection(&client_proto, &c, "127.0.0.1",
                                fut_server_port(server), NULL, &t);
  if (!err)
    err = fut_await(c.done, NULL); /* until connection_lost */
  fut_transport_unref(t);
  fut_unref(c.done);
  fut_server_close(server);
  if (!err)
    err = fut_server_wait_closed(server);
  fut_server_unref(server);
  return err;
}

int main(void) {
  fut_t *main_t = NULL;
  int err = fut_run(main_task, NULL, &main_t);
  fut_unref(main_t);
  if (err) {
    fprintf(stderr, "echo_protocol: %s (%s)\n", fut_strerror(err),
            fut_last_error());
    return 1;
  }
  return 0;
}
