/* bench_net's libuv echo server (built when libuv was found at configure
 * time; only bench_net links it).  uv_read_start reads into one reused
 * 64 KiB buffer; each read is echoed with uv_try_write, and what the
 * socket did not take is copied and queued with uv_write. */
#include "bench_net.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define UV_BUF 65536

typedef struct write_req {
  uv_write_t req;
  char data[]; /* the rest of one echo */
} write_req_t;

static char buf[UV_BUF];
static uv_loop_t loop;
static uv_tcp_t server;
static uv_poll_t stop_poll;
static uv_timer_t bound;

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)h;
  (void)hint;
  *b = uv_buf_init(buf, sizeof buf);
}

static void on_closed(uv_handle_t *h) {
  free(h);
}

static void on_written(uv_write_t *req, int status) {
  uv_handle_t *h = (uv_handle_t *)req->handle;
  free(req);
  if (status < 0 && status != UV_ECANCELED && !uv_is_closing(h))
    uv_close(h, on_closed);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  if (n < 0) {
    uv_close((uv_handle_t *)s, on_closed);
    return;
  }
  if (n == 0)
    return;
  uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
  int w = uv_try_write(s, &out, 1);
  if (w == n)
    return;
  if (w < 0 && w != UV_EAGAIN) {
    uv_close((uv_handle_t *)s, on_closed);
    return;
  }
  size_t done = w < 0 ? 0 : (size_t)w, rest = (size_t)n - done;
  write_req_t *req = malloc(sizeof *req + rest);
  if (!req) {
    uv_close((uv_handle_t *)s, on_closed);
    return;
  }
  memcpy(req->data, b->base + done, rest);
  out = uv_buf_init(req->data, (unsigned)rest);
  if (uv_write(&req->req, s, &out, 1, on_written) != 0) {
    free(req);
    uv_close((uv_handle_t *)s, on_closed);
  }
}

static void on_connection(uv_stream_t *srv, int status) {
  if (status < 0)
    return;
  uv_tcp_t *c = malloc(sizeof *c);
  if (!c)
    return;
  uv_tcp_init(&loop, c);
  if (uv_accept(srv, (uv_stream_t *)c) != 0 || uv_tcp_nodelay(c, 1) != 0 ||
      uv_read_start((uv_stream_t *)c, on_alloc, on_read) != 0)
    uv_close((uv_handle_t *)c, on_closed);
}

static void on_stop(uv_poll_t *p, int status, int events) {
  (void)p;
  (void)status;
  (void)events;
  uv_stop(&loop);
}

static void on_bound(uv_timer_t *t) {
  (void)t;
  uv_stop(&loop);
}

static void close_any(uv_handle_t *h, void *arg) {
  (void)arg;
  if (uv_is_closing(h))
    return;
  /* The connections were malloc'd; the rest are static. */
  int is_conn = h->type == UV_TCP && h != (uv_handle_t *)&server;
  uv_close(h, is_conn ? on_closed : NULL);
}

const char *net_uv_version(void) {
  return uv_version_string();
}

int net_serve_uv(const net_server_cfg_t *cfg) {
  struct sockaddr_in a;
  struct sockaddr_storage got;
  int len = sizeof got, err;
  if ((err = uv_loop_init(&loop)) != 0)
    goto fail;
  uv_ip4_addr("127.0.0.1", cfg->port, &a);
  uv_tcp_init(&loop, &server);
  if ((err = uv_tcp_bind(&server, (const struct sockaddr *)&a, 0)) != 0 ||
      (err = uv_listen((uv_stream_t *)&server, 1024, on_connection)) != 0 ||
      (err = uv_tcp_getsockname(&server, (struct sockaddr *)&got, &len)) != 0)
    goto fail;
  if (cfg->stop_fd >= 0) {
    if ((err = uv_poll_init(&loop, &stop_poll, cfg->stop_fd)) != 0 ||
        (err = uv_poll_start(&stop_poll, UV_READABLE, on_stop)) != 0)
      goto fail;
  }
  uv_timer_init(&loop, &bound);
  uv_timer_start(&bound, on_bound, (uint64_t)(cfg->max_seconds * 1e3), 0);
  if (cfg->ready)
    cfg->ready(ntohs(((struct sockaddr_in *)&got)->sin_port), cfg->ready_arg);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_walk(&loop, close_any, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  if ((err = uv_loop_close(&loop)) != 0)
    goto fail;
  return 0;
fail:
  fprintf(stderr, "libuv: %s\n", uv_strerror(err));
  return err;
}
