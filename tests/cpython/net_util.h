/* Shared by the network ports of test_base_events.py and test_events.py:
 * CPython's MyProto / MyBaseProto (a protocol recording its state, bytes
 * and the transport) and loopback helpers.  Include after fixture.h. */
#ifndef TESTS_CPYTHON_NET_UTIL_H
#define TESTS_CPYTHON_NET_UTIL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* MyBaseProto: state INITIAL -> CONNECTED -> (EOF) -> CLOSED, the bytes
 * received (kept when keep is set), the transport (a reference once
 * made).  A protocol callback found in the wrong state sets bad_state
 * (checked by the tests: assertions inside callbacks would unwind through
 * the loop). */
enum { ST_INITIAL, ST_CONNECTED, ST_EOF, ST_CLOSED };

typedef struct my_proto {
  int state;
  bool bad_state;
  size_t nbytes;
  int lost_err;
  bool keep;           /* keep the bytes in data */
  unsigned char *data; /* what arrived, when keep */
  size_t cap;
  const void *reply; /* written back on each data_received (may be NULL) */
  size_t reply_len;
  const void *greeting; /* written at connection_made (MyProto) */
  size_t greeting_len;
  fut_loop_t *stop_on_lost; /* loop.stop() at connection_lost */
  fut_transport_t *transport;
} my_proto_t;

static inline void mp_made(fut_transport_t *t, void *arg) {
  my_proto_t *p = arg;
  if (p->state != ST_INITIAL)
    p->bad_state = true;
  p->state = ST_CONNECTED;
  p->transport = fut_transport_ref(t);
  if (p->greeting)
    (void)fut_transport_write(t, p->greeting, p->greeting_len);
}
static inline void mp_data(fut_transport_t *t, const void *d, size_t n,
                           void *arg) {
  my_proto_t *p = arg;
  if (p->state != ST_CONNECTED)
    p->bad_state = true;
  if (p->keep) {
    if (p->nbytes + n > p->cap) {
      p->cap = (p->nbytes + n) * 2;
      p->data = realloc(p->data, p->cap);
    }
    if (p->data)
      memcpy(p->data + p->nbytes, d, n);
  }
  p->nbytes += n;
  if (p->reply)
    (void)fut_transport_write(t, p->reply, p->reply_len);
}
static inline bool mp_eof(fut_transport_t *t, void *arg) {
  (void)t;
  my_proto_t *p = arg;
  if (p->state != ST_CONNECTED)
    p->bad_state = true;
  p->state = ST_EOF;
  return false;
}
static inline void mp_lost(fut_transport_t *t, int err, void *arg) {
  (void)t;
  my_proto_t *p = arg;
  if (p->state != ST_CONNECTED && p->state != ST_EOF)
    p->bad_state = true;
  p->state = ST_CLOSED;
  p->lost_err = err;
  if (p->stop_on_lost)
    fut_loop_call_soon(p->stop_on_lost, fx_stop_cb, p->stop_on_lost, NULL);
}
static const fut_protocol_t my_proto = {
    .connection_made = mp_made,
    .data_received = mp_data,
    .eof_received = mp_eof,
    .connection_lost = mp_lost,
};

/* Drops what the protocol holds. */
static inline void my_proto_free(my_proto_t *p) {
  fut_transport_unref(p->transport);
  p->transport = NULL;
  free(p->data);
  p->data = NULL;
}

static inline bool mp_closed(void *arg) {
  return ((my_proto_t *)arg)->state == ST_CLOSED;
}
static inline bool mp_connected(void *arg) {
  return ((my_proto_t *)arg)->state != ST_INITIAL;
}
static inline bool mp_has_bytes(void *arg) {
  return ((my_proto_t *)arg)->nbytes > 0;
}

/* 127.0.0.1:port */
static inline struct sockaddr_in loopback4(int port) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sin;
}

/* A socket of type bound to 127.0.0.1 at a free port (listening when
 * listen_too); *port receives the port. */
static inline int bound_loopback(int type, bool listen_too, int *port) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sin = loopback4(0);
  assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
  if (listen_too)
    assert_int_equal(listen(fd, 8), 0);
  socklen_t len = sizeof sin;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
  *port = ntohs(sin.sin_port);
  return fd;
}

/* A blocking client connected to 127.0.0.1:port. */
static inline int connect_loopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sin = loopback4(port);
  assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
  return fd;
}

/* Closes server s and runs loop until it is closed. */
static inline void close_server(fut_loop_t *loop, fut_server_t *s) {
  fut_server_close(s);
  fut_t *w;
  assert_int_equal(fut_server_wait_closed_future(s, &w), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, w), 0);
  fut_unref(w);
  fut_server_unref(s);
}

#endif
