/* A TCP echo server on libfuture's protocol API, as a program of its own
 * (the server bench_net measures as "libfuture protocol"):
 *   echo_protocol_server [--port N] [--seconds S]
 * listens on 127.0.0.1:N (default 0: a free port, printed), echoes every
 * byte back, and exits after S seconds (default 60; at most 86400).
 * Try it: ./echo_protocol_server --port 8888 --seconds 30 & then
 * nc 127.0.0.1 8888. */
#include "bench_net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_port(int port, void *arg) {
  const net_server_cfg_t *cfg = arg;
  printf("echo_protocol_server: echoing on 127.0.0.1:%d for %g s\n", port,
         cfg->max_seconds);
  fflush(stdout);
}

static int usage(void) {
  fprintf(stderr, "usage: echo_protocol_server [--port N (0..65535)] "
                  "[--seconds S (0 < S <= 86400)]\n");
  return 2;
}

int main(int argc, char **argv) {
  net_server_cfg_t cfg = {.port = 0, .stop_fd = -1, .max_seconds = 60};
  for (int i = 1; i < argc; i++) {
    char *end;
    if (i + 1 >= argc)
      return usage();
    if (strcmp(argv[i], "--port") == 0) {
      long p = strtol(argv[++i], &end, 10);
      if (*end || p < 0 || p > 65535)
        return usage();
      cfg.port = (int)p;
    } else if (strcmp(argv[i], "--seconds") == 0) {
      double s = strtod(argv[++i], &end);
      if (*end || !(s > 0 && s <= 86400))
        return usage();
      cfg.max_seconds = s;
    } else {
      return usage();
    }
  }
  cfg.ready = print_port;
  cfg.ready_arg = &cfg;
  return net_serve_fut_protocol(&cfg) == 0 ? 0 : 1;
}
