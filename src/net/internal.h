/* libfuture — the network layer's private interface.  Includes the task
 * and executor layers (and so future, loop and base).  Never installed.
 *
 *   net.c        the layer's loop part: per-loop state (receive buffer,
 *                DNS pool, live transports and servers), close at loop close
 *   wait_fd.c    a task waits for one fd to be readable / writable
 *   sock.c       socket awaitables (future/sock.h)
 *   sendfile.c   fut_sock_sendfile
 *   dns.c        getaddrinfo / getnameinfo on the layer's own thread pool
 *   addr.c       numeric host + port to sockaddr, socket setup helpers
 *   transport.c  stream transports: reading, the write buffer, closing
 *   transport_sendfile.c  fut_transport_sendfile (loop.sendfile)
 *   server.c     listening sockets, accept batches, EMFILE back-off
 *   connect.c    create_connection (resolve, try addresses, happy eyeballs)
 *   datagram.c   datagram transports
 *   stream.c     readers, writers, open_connection, start_server
 */
#ifndef FUT_NET_INTERNAL_H
#define FUT_NET_INTERNAL_H

#include "exec/internal.h"
#include "task/internal.h"

#include "future/dns.h"
#include "future/sock.h"
#include "future/stream.h"
#include "future/transport.h"

#include <netdb.h>
#include <sys/socket.h>

/* Close rank of the network's loop part: after the tasks (a task may hold
 * a stream) and before the executors (the DNS pool is a thread pool). */
#define FUT__RANK_NET 35

/* Bytes of the per-loop receive buffer (asyncio reads up to 256 KiB; 64 KiB
 * takes a whole loopback segment and stays in L2). */
#define FUT__NET_RBUF 65536

/* ---- per-loop state (net.c) ---------------------------------------------- */
struct fut__net_state {
  char *rbuf;                   /* FUT__NET_RBUF bytes, shared by every
                                   transport's data_received */
  fut_executor_t *dns;          /* the DNS thread pool, NULL until needed */
  struct fut__qnode transports; /* live transports (t->node) */
  struct fut__qnode servers;    /* servers not closed (s->node) */
  bool closing;                 /* fut_loop_close is closing the layer */
};

/* The layer's state on loop, made on first use.  NULL with -ENOMEM
 * recorded when it cannot be made. */
struct fut__net_state *fut__net_state(fut_loop_t *loop);
/* The state if made, else NULL (never allocates). */
struct fut__net_state *fut__net_state_peek(const fut_loop_t *loop);

/* ---- waiting for an fd inside a task (wait_fd.c) ----------------------- */
#define FUT__WAIT_READ 1u
#define FUT__WAIT_WRITE 2u
/* Suspends the running task t until fd is readable (FUT__WAIT_READ) or
 * writable.  Returns 0, -ECANCELED (the watcher is gone), -EBUSY (that
 * direction is already watched on this loop), or the add_reader error. */
int fut__wait_fd(struct fut__task *t, int fd, unsigned dir);

/* ---- addresses and sockets (addr.c) ---------------------------------------
 */
/* Parses a numeric host (or NULL: the wildcard of family, AF_INET6 dual
 * stack when AF_UNSPEC) and port into a sockaddr.  Returns 0, or 1 when
 * host is not numeric (a name to resolve), or -EINVAL. */
int fut__addr_numeric(const char *host, int port, int family,
                      struct sockaddr_storage *ss, socklen_t *len);
/* Fills a sockaddr_un for path.  Returns 0, -ENAMETOOLONG, -EINVAL. */
int fut__addr_unix(const char *path, struct sockaddr_storage *ss,
                   socklen_t *len);
/* socket(2) non-blocking and close-on-exec.  Returns the fd or -errno. */
int fut__socket(int family, int type, int protocol);
/* Resolves host:port for a task (numeric inline, else on the DNS pool;
 * hints' family/socktype/flags).  Returns 0 or a negative code; *res for
 * freeaddrinfo. */
int fut__resolve(const char *host, int port, int family, int socktype,
                 int flags, struct addrinfo **res);

/* ---- transports (transport.c) ----------------------------------------------
 */
enum fut__transport_kind { FUT__T_STREAM, FUT__T_DGRAM };

/* A queued datagram (datagram.c). */
struct fut__dgram;

struct fut_transport {
  fut_loop_t *loop;
  int fd;
  uint32_t refs;      /* the loop holds one until connection_lost ran */
  uint8_t kind;       /* enum fut__transport_kind */
  bool is_unix;       /* AF_UNIX: no TCP_NODELAY, no write_eof */
  bool closing;       /* close/abort/lost started: no more writes */
  bool lost;          /* connection_lost scheduled or ran */
  bool reading;       /* the protocol wants data (not paused) */
  bool reader_on;     /* the read watcher is registered */
  bool writer_on;     /* the write watcher is registered */
  bool eof_pending;   /* write_eof asked: shutdown when the buffer empties */
  bool eof_written;   /* shutdown(SHUT_WR) done */
  bool eof_received;  /* the peer's EOF was seen */
  bool paused_proto;  /* pause_writing was called, resume not yet */
  bool connected;     /* datagrams: connect(2)ed to a peer */
  bool sendfile_busy; /* fut_transport_sendfile owns the socket */
  int lost_err;       /* the error connection_lost will get */
  char *rbuf; /* the loop's shared receive buffer (FUT__NET_RBUF bytes) */
  const fut_protocol_t *proto;           /* stream transports */
  const fut_datagram_protocol_t *dproto; /* datagram transports */
  void *arg;
  /* The write buffer: bytes [whead, wlen) of wbuf are waiting. */
  char *wbuf;
  size_t whead, wlen, wcap;
  size_t high, low; /* water marks */
  /* Datagram queue (datagram.c): FIFO of copies waiting for writable. */
  struct fut__qnode dq;
  size_t dq_bytes;
  fut_t *empty_waiter;     /* resolved when the write buffer empties or
                              the transport is lost (transport_sendfile.c) */
  fut_server_t *server;    /* the server that accepted it (a reference), or
                              NULL */
  struct fut__qnode node;  /* in the state's transports */
  struct fut__qnode snode; /* in server->conns when server != NULL */
};

/* Makes a stream transport over fd (taken: closed on failure) and
 * schedules connection_made.  Returns 0 or a negative code; *out is a new
 * reference when out is not NULL. */
int fut__transport_new(fut_loop_t *loop, int fd, const fut_protocol_t *proto,
                       void *arg, fut_server_t *server, fut_transport_t **out);
/* Starts the loss of t with err (0 = clean): watchers off, buffer
 * dropped, connection_lost scheduled.  Idempotent. */
void fut__transport_force_close(fut_transport_t *t, int err);
/* Registers t's read watcher and schedules connection_made.  On failure
 * t is unlinked and freed and its fd closed.  Returns 0 or a negative
 * code. */
int fut__transport_start(fut_transport_t *t, fut_cb on_readable);
/* Shared by stream and datagram transports: common allocation and the
 * scheduled connection_lost. */
fut_transport_t *fut__transport_alloc(fut_loop_t *loop, int fd, uint8_t kind);
void fut__transport_schedule_lost(fut_transport_t *t, int err);
/* Runs the pending connection_lost now (loop close). */
void fut__transport_lost_now(fut_transport_t *t);
/* The water marks after set_write_buffer_limits' rules.  Returns 0 or
 * -EINVAL. */
int fut__water_marks(size_t high, size_t low, size_t *h, size_t *l);
/* Calls pause_writing / resume_writing as the buffer size crossed the
 * marks (both kinds). */
void fut__transport_flow(fut_transport_t *t, size_t buffered);

/* datagram.c: the transport-close hook (frees the queue). */
void fut__dgram_clear(fut_transport_t *t);

/* ---- servers (server.c) -----------------------------------------------------
 */
struct fut__listener {
  fut_server_t *s;
  int fd;
  bool on; /* its read watcher is registered */
};
struct fut_server {
  fut_loop_t *loop;
  uint32_t refs;
  const fut_protocol_t *proto;
  fut_protocol_factory_fn factory;
  void *factory_arg;
  struct fut__listener *ls; /* listening sockets */
  size_t nls;
  bool serving;
  bool closed;
  bool is_unix; /* listens on a Unix socket (no TCP_NODELAY) */
  int backlog;
  uint64_t retry_delay_ns;
  fut_handle_t *retry;     /* the accept back-off timer, or NULL */
  char *unix_path;         /* to unlink at close, or NULL */
  struct fut__qnode conns; /* live transports (t->snode) */
  size_t nconns;
  fut_t **waiters; /* wait_closed's futures, resolved when
                      closed and nconns == 0 */
  size_t nwaiters, capwaiters;
  fut_t *forever;         /* serve_forever's future, or NULL */
  struct fut__qnode node; /* in the state's servers while not closed */
  /* streams (stream.c): the handler when made by fut_start_server. */
  void *stream_ctx;
  void (*stream_ctx_free)(void *ctx);
};

/* A transport of the server is lost (transport.c calls it). */
void fut__server_conn_lost(fut_server_t *s, fut_transport_t *t);

#endif
