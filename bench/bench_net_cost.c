/* bench_net's counted mode (BENCH_NET_COST=1): what each echo server costs
 * per request in figures that do not depend on a wall clock shared with
 * other processes.
 *   system calls   the server runs natively; the parent counts the child's
 *                  raw_syscalls:sys_enter with perf_event_open (root, or
 *                  perf_event_paranoid low enough), over exactly N requests
 *                  between two idle points: all, the epoll waits among
 *                  them, and epoll_ctl.  The waits depend on how many
 *                  connections one wake-up finds ready, so on timing; the
 *                  rest does not.
 *   instructions   the server runs under valgrind --tool=callgrind (when
 *                  found); two runs, W + N and W + 3N requests, and the
 *                  difference of their totals over 2N, so start-up,
 *                  connection set-up and teardown cancel out.  Under
 *                  valgrind the server is the slow side, so each wake-up
 *                  finds every connection ready (the most batched case).
 *   churn          connections one after another (connect, one echo,
 *                  close): the server's system calls per connection.
 * Environment: BENCH_NET_CELLS (as for the timed mode, plus "churn"),
 * BENCH_NET_COST_N (measured requests per connection, default 100),
 * BENCH_NET_COST_VALGRIND=0 (system calls only), BENCH_NET_COST_KEEP=1
 * (keep the callgrind files in /tmp for callgrind_annotate). */
#include "bench_net.h"

#include "bench_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define COST_START_MS 60000 /* valgrind starts slowly on a loaded machine */
#define COST_STOP_MS 60000
#define WARM_PER_CONN 10

typedef struct cost_cell {
  const char *key, *name;
  int conns;
  size_t size;
} cost_cell_t;

static const cost_cell_t cost_cells[] = {
    {"c10-1k", "C=10, 1 KiB", 10, 1024},
    {"c10-10k", "C=10, 10 KiB", 10, 10240},
    {"c100-1k", "C=100, 1 KiB", 100, 1024},
    {"c100-10k", "C=100, 10 KiB", 100, 10240},
    {"s6", "S6, 64 B, one connection", 1, 64},
};
#define NCOST (sizeof cost_cells / sizeof cost_cells[0])

enum { K_ALL, K_WAIT, K_CTL, NK };

typedef struct counters {
  int fd[NK];
  uint64_t at[2][NK]; /* at mark 0 and mark 1 */
} counters_t;

static pid_t child = -1;

/* ---- the server side (bench_net --serve INDEX STOP_FD READY_FD) ---------- */

static void report_port(int port, void *arg) {
  int fd = *(int *)arg;
  if (write(fd, &port, sizeof port) != (ssize_t)sizeof port)
    _exit(4);
  close(fd);
}

int net_cost_serve(int argc, char **argv) {
  const net_server_info_t *srv;
  int n = net_servers(&srv);
  if (argc != 5)
    return 2;
  int si = atoi(argv[2]), stop_fd = atoi(argv[3]), ready_fd = atoi(argv[4]);
  if (si < 0 || si >= n || !srv[si].fn || stop_fd < 0 || ready_fd < 0)
    return 2;
  (void)fcntl(stop_fd, F_SETFD, FD_CLOEXEC);
  (void)fcntl(ready_fd, F_SETFD, FD_CLOEXEC);
  signal(SIGPIPE, SIG_IGN);
  net_server_cfg_t sc = {.port = 0,
                         .stop_fd = stop_fd,
                         .max_seconds = 3600,
                         .ready = report_port,
                         .ready_arg = &ready_fd};
  return srv[si].fn(&sc) == 0 ? 0 : 3;
}

/* ---- counting system calls ---------------------------------------------- */

static long tracepoint_id(void) {
  static const char *const paths[] = {
      "/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
      "/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id"};
  for (size_t i = 0; i < 2; i++) {
    FILE *f = fopen(paths[i], "r");
    long id = -1;
    if (!f)
      continue;
    if (fscanf(f, "%ld", &id) != 1)
      id = -1;
    fclose(f);
    if (id >= 0)
      return id;
  }
  return -1;
}

/* Opens one sys_enter counter on pid, narrowed by filter (NULL: all).
 * Returns the fd or -errno. */
static int open_counter(long id, pid_t pid, const char *filter) {
  struct perf_event_attr a;
  memset(&a, 0, sizeof a);
  a.type = PERF_TYPE_TRACEPOINT;
  a.size = sizeof a;
  a.config = (uint64_t)id;
  a.inherit = 1;
  int fd =
      (int)syscall(SYS_perf_event_open, &a, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
  if (fd < 0)
    return -errno;
  if (filter && ioctl(fd, PERF_EVENT_IOC_SET_FILTER, filter) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  return fd;
}

static void wait_filter(char *buf, size_t len) {
  int n = 0;
  buf[0] = '\0';
#ifdef SYS_epoll_wait
  n += snprintf(buf + n, len - (size_t)n, "id == %d || ", SYS_epoll_wait);
#endif
  n += snprintf(buf + n, len - (size_t)n, "id == %d || id == %d",
                SYS_epoll_pwait, 441 /* epoll_pwait2 */);
}

static int open_counters(pid_t pid, counters_t *c) {
  long id = tracepoint_id();
  if (id < 0)
    return -ENOENT;
  char wf[128], cf[32];
  wait_filter(wf, sizeof wf);
  snprintf(cf, sizeof cf, "id == %d", SYS_epoll_ctl);
  const char *filters[NK] = {NULL, wf, cf};
  for (int k = 0; k < NK; k++) {
    c->fd[k] = open_counter(id, pid, filters[k]);
    if (c->fd[k] < 0) {
      int err = c->fd[k];
      while (k-- > 0)
        close(c->fd[k]);
      return err;
    }
  }
  return 0;
}

static void on_mark(int phase, void *arg) {
  counters_t *c = arg;
  for (int k = 0; k < NK; k++)
    if (read(c->fd[k], &c->at[phase][k], sizeof(uint64_t)) !=
        (ssize_t)sizeof(uint64_t))
      c->at[phase][k] = 0;
}

/* ---- one server run ------------------------------------------------------ */

/* Starts server si in a child (under callgrind writing cg_out when set);
 * returns the port and sets *stop_w. */
static int start_server(int si, const char *cg_out, int *stop_w) {
  int stop[2], ready[2], port = 0;
  BENCH_CHECK(pipe2(stop, O_CLOEXEC) == 0 && pipe2(ready, O_CLOEXEC) == 0);
  fflush(stdout);
  fflush(stderr);
  child = fork();
  BENCH_CHECK(child >= 0);
  if (child == 0) {
    close(stop[1]);
    close(ready[0]);
    net_pin(true);
    (void)fcntl(stop[0], F_SETFD, 0);
    (void)fcntl(ready[1], F_SETFD, 0);
    char a_si[16], a_stop[16], a_ready[16], a_out[600];
    snprintf(a_si, sizeof a_si, "%d", si);
    snprintf(a_stop, sizeof a_stop, "%d", stop[0]);
    snprintf(a_ready, sizeof a_ready, "%d", ready[1]);
    if (cg_out) {
      /* valgrind's launcher would read /proc/self/exe as itself. */
      char self[512];
      ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
      if (len <= 0)
        _exit(127);
      self[len] = '\0';
      snprintf(a_out, sizeof a_out, "--callgrind-out-file=%s", cg_out);
      execlp("valgrind", "valgrind", "--tool=callgrind", "-q", a_out, self,
             "--serve", a_si, a_stop, a_ready, (char *)NULL);
    } else {
      execl("/proc/self/exe", "bench_net", "--serve", a_si, a_stop, a_ready,
            (char *)NULL);
    }
    _exit(127);
  }
  close(stop[0]);
  close(ready[1]);
  struct pollfd p = {.fd = ready[0], .events = POLLIN};
  if (poll(&p, 1, COST_START_MS) != 1 ||
      read(ready[0], &port, sizeof port) != (ssize_t)sizeof port || port <= 0)
    net_fail("server %d did not start listening within %d ms", si,
             COST_START_MS);
  close(ready[0]);
  *stop_w = stop[1];
  return port;
}

static void stop_server(int stop_w) {
  close(stop_w);
  int status = 0;
  pid_t got = 0;
  for (int i = 0; i < COST_STOP_MS && got == 0; i++) {
    got = waitpid(child, &status, WNOHANG);
    if (got == 0)
      nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
  }
  if (got != child) {
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    net_fail("a server did not exit within %d ms of the stop", COST_STOP_MS);
  }
  child = -1;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    net_fail("a server stopped uncleanly (status %d)", status);
}

static void load(const cost_cell_t *c, int port, const char *label, uint64_t n,
                 counters_t *ctr) {
  net_load_cfg_t lc = {.port = port,
                       .conns = c->conns,
                       .msg_size = c->size,
                       .label = label,
                       .fixed_warm = (uint64_t)c->conns * WARM_PER_CONN,
                       .fixed_requests = n,
                       .mark = ctr ? on_mark : NULL,
                       .mark_arg = ctr};
  net_load_result_t r;
  net_load_run(&lc, &r);
  if (r.requests != n)
    net_fail("%s: %llu requests measured, %llu asked", label,
             (unsigned long long)r.requests, (unsigned long long)n);
}

/* System calls per request: all, waits, epoll_ctl (-1: cannot count). */
static int count_syscalls(int si, const cost_cell_t *c, const char *label,
                          uint64_t n, double out[NK]) {
  int stop_w;
  int port = start_server(si, NULL, &stop_w);
  counters_t ctr;
  int err = open_counters(child, &ctr);
  if (err) {
    stop_server(stop_w);
    return err;
  }
  load(c, port, label, n, &ctr);
  for (int k = 0; k < NK; k++) {
    out[k] = (double)(ctr.at[1][k] - ctr.at[0][k]) / (double)n;
    close(ctr.fd[k]);
  }
  stop_server(stop_w);
  return 0;
}

/* Connection churn: K connections one after another, each connect, one
 * 64-byte echo, close; the server's system calls per connection, counted
 * until they settle (the server closed its side).  Returns 0 or -errno. */
#define CHURN_CONNS 200
static int count_churn(int si, double out[NK]) {
  int stop_w;
  int port = start_server(si, NULL, &stop_w);
  counters_t ctr;
  int err = open_counters(child, &ctr);
  if (err) {
    stop_server(stop_w);
    return err;
  }
  on_mark(0, &ctr);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  char msg[64], back[64];
  memset(msg, 'x', sizeof msg);
  for (int i = 0; i < CHURN_CONNS; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    size_t got = 0;
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        send(fd, msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t)sizeof msg)
      net_fail("churn: connect or send failed: %s", strerror(errno));
    while (got < sizeof back) {
      ssize_t n = recv(fd, back + got, sizeof back - got, 0);
      if (n <= 0)
        net_fail("churn: the echo did not come back");
      got += (size_t)n;
    }
    if (memcmp(msg, back, sizeof msg) != 0)
      net_fail("churn: the echo differs");
    close(fd);
  }
  /* Settled: no system call for 100 ms. */
  uint64_t last = UINT64_MAX;
  for (int i = 0; i < 500; i++) {
    on_mark(1, &ctr);
    if (ctr.at[1][K_ALL] == last)
      break;
    last = ctr.at[1][K_ALL];
    nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
  }
  for (int k = 0; k < NK; k++) {
    out[k] = (double)(ctr.at[1][k] - ctr.at[0][k]) / CHURN_CONNS;
    close(ctr.fd[k]);
  }
  stop_server(stop_w);
  return 0;
}

/* The "totals:" line of a callgrind output file (0: not found). */
static uint64_t cg_total(const char *path) {
  FILE *f = fopen(path, "r");
  char line[256];
  unsigned long long v = 0;
  if (!f)
    return 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "totals: %llu", &v) == 1 ||
        sscanf(line, "summary: %llu", &v) == 1)
      break;
  fclose(f);
  if (getenv("BENCH_NET_COST_KEEP"))
    fprintf(stderr, "bench_net: kept %s\n", path);
  else
    unlink(path);
  return v;
}

static double count_instructions(int si, const cost_cell_t *c,
                                 const char *label, uint64_t n) {
  uint64_t tot[2];
  for (int r = 0; r < 2; r++) {
    char path[128];
    snprintf(path, sizeof path, "/tmp/bench_net_cost.%d.%d.%d.cg",
             (int)getpid(), si, r);
    int stop_w;
    int port = start_server(si, path, &stop_w);
    load(c, port, label, r ? 3 * n : n, NULL);
    stop_server(stop_w);
    tot[r] = cg_total(path);
    if (!tot[r])
      return -1;
  }
  return ((double)tot[1] - (double)tot[0]) / (double)(2 * n);
}

/* Per cell and server (raw, libuv, protocol, streams): instructions and
 * system calls (waits excluded) per request, -1 when not measured; the
 * churn's system calls (waits excluded) per connection. */
static double got_ins[NCOST][4], got_sys[NCOST][4], churn[4];

/* protocol against libuv over every cell measured: the largest ratio of
 * instructions (and of system calls), and whether the protocol server did
 * fewer instructions and no more system calls everywhere. */
static void print_verdict(void) {
  const int U = NET_SRV_UV, P = NET_SRV_PROTO;
  double worst_i = -1, worst_s = -1;
  for (size_t ci = 0; ci < NCOST; ci++) {
    if (got_ins[ci][U] > 0 && got_ins[ci][P] > 0 &&
        got_ins[ci][P] / got_ins[ci][U] > worst_i)
      worst_i = got_ins[ci][P] / got_ins[ci][U];
    if (got_sys[ci][U] > 0 && got_sys[ci][P] > 0 &&
        got_sys[ci][P] / got_sys[ci][U] > worst_s)
      worst_s = got_sys[ci][P] / got_sys[ci][U];
  }
  printf("\nprotocol vs libuv (counted): instructions/request ");
  if (worst_i < 0)
    printf("n/a");
  else
    printf("%s (worst %.2fx libuv's)", worst_i < 1 ? "FEWER" : "NOT FEWER",
           worst_i);
  printf("; syscalls/request, waits excluded ");
  if (worst_s < 0)
    printf("n/a");
  else
    printf("%s (worst %.2fx)", worst_s <= 1.001 ? "NO MORE" : "MORE", worst_s);
  printf("; syscalls/connection, waits excluded ");
  if (churn[U] > 0 && churn[P] > 0)
    printf("%.2f vs %.2f\n", churn[P], churn[U]);
  else
    printf("n/a\n");
}

int net_cost_main(void) {
  for (size_t ci = 0; ci < NCOST; ci++)
    for (int k = 0; k < 4; k++)
      got_ins[ci][k] = got_sys[ci][k] = -1;
  for (int k = 0; k < 4; k++)
    churn[k] = -1;
  const net_server_info_t *srv;
  int ns = net_servers(&srv);
  long per_conn = 100;
  const char *e = getenv("BENCH_NET_COST_N");
  if (e && *e) {
    per_conn = atol(e);
    if (per_conn < 1 || per_conn > 1000000) {
      fprintf(stderr, "bench_net: BENCH_NET_COST_N=%s: want 1..1000000\n", e);
      return 2;
    }
  }
  bool vg = !(getenv("BENCH_NET_COST_VALGRIND") &&
              strcmp(getenv("BENCH_NET_COST_VALGRIND"), "0") == 0) &&
            system("valgrind --version >/dev/null 2>&1") == 0;
  signal(SIGPIPE, SIG_IGN);
  net_pin(false);
  printf("bench_net counted mode: per request, over %ld requests per "
         "connection after %d of warm-up\n",
         per_conn, WARM_PER_CONN);
  printf("sys: system calls of the server (perf raw_syscalls:sys_enter), "
         "of which waits (epoll_wait/pwait/pwait2) and epoll_ctl; "
         "instr: instructions (callgrind, %s)\n",
         vg ? "two runs, difference" : "valgrind not used");
  for (size_t ci = 0; ci < NCOST; ci++) {
    const cost_cell_t *c = &cost_cells[ci];
    if (!net_cell_wanted(c->key))
      continue;
    uint64_t n = (uint64_t)per_conn * (uint64_t)c->conns;
    printf("\n%s\n  %-20s %8s %8s %8s %8s %10s\n", c->name, "server", "sys",
           "waits", "ctl", "sys-wait", "instr");
    for (int si = 0; si < ns; si++) {
      if (!srv[si].fn)
        continue;
      char label[128];
      snprintf(label, sizeof label, "%s, %s (counted)", srv[si].name, c->name);
      double sc[NK];
      int err = count_syscalls(si, c, label, n, sc);
      double ins = vg ? count_instructions(si, c, label, n) : -1;
      if (si < 4) {
        got_ins[ci][si] = ins;
        got_sys[ci][si] = err ? -1 : sc[K_ALL] - sc[K_WAIT];
      }
      printf("  %-20s", srv[si].name);
      if (err)
        printf(" %8s %8s %8s %8s", "n/a", "", "", "");
      else
        printf(" %8.3f %8.3f %8.3f %8.3f", sc[K_ALL], sc[K_WAIT], sc[K_CTL],
               sc[K_ALL] - sc[K_WAIT]);
      if (ins >= 0)
        printf(" %10.0f\n", ins);
      else
        printf(" %10s\n", "n/a");
      fflush(stdout);
      char scen[128];
      const char *role = bench_role_of(srv[si].name);
      if (!err) {
        snprintf(scen, sizeof scen, "echo %s: server syscalls per request",
                 c->name);
        bench_emit_role(scen, srv[si].name, role, c->conns, sc[K_ALL],
                        "syscalls/req");
        snprintf(scen, sizeof scen,
                 "echo %s: server syscalls per request, waits excluded",
                 c->name);
        bench_emit_role(scen, srv[si].name, role, c->conns,
                        sc[K_ALL] - sc[K_WAIT], "syscalls/req");
      }
      if (ins >= 0) {
        snprintf(scen, sizeof scen, "echo %s: server instructions per request",
                 c->name);
        bench_emit_role(scen, srv[si].name, role, c->conns, ins, "instr/req");
      }
    }
  }
  if (net_cell_wanted("churn")) {
    printf("\nChurn: %d connections one after another (connect, one 64-byte "
           "echo, close), per connection\n  %-20s %8s %8s %8s %8s\n",
           CHURN_CONNS, "server", "sys", "waits", "ctl", "sys-wait");
    for (int si = 0; si < ns; si++) {
      if (!srv[si].fn)
        continue;
      double sc[NK];
      int err = count_churn(si, sc);
      printf("  %-20s", srv[si].name);
      if (err) {
        printf(" n/a (%s)\n", strerror(-err));
        continue;
      }
      printf(" %8.3f %8.3f %8.3f %8.3f\n", sc[K_ALL], sc[K_WAIT], sc[K_CTL],
             sc[K_ALL] - sc[K_WAIT]);
      if (si < 4)
        churn[si] = sc[K_ALL] - sc[K_WAIT];
      const char *role = bench_role_of(srv[si].name);
      bench_emit_role("echo churn: server syscalls per connection (one 64 B "
                      "echo)",
                      srv[si].name, role, CHURN_CONNS, sc[K_ALL],
                      "syscalls/conn");
      bench_emit_role("echo churn: server syscalls per connection, waits "
                      "excluded",
                      srv[si].name, role, CHURN_CONNS, sc[K_ALL] - sc[K_WAIT],
                      "syscalls/conn");
    }
  }
  print_verdict();
  return 0;
}
