/* libfuture — transports and protocols, servers, datagram endpoints
 * (asyncio's callback network API: loop.create_connection, create_server,
 * create_unix_connection, create_unix_server, create_datagram_endpoint).
 *
 * A protocol is a table of callbacks the loop calls on its thread, from
 * its ready queue, never inline inside the call that caused them; a
 * transport is the connection they act on.  A write tries send(2) at once
 * and buffers only what the kernel did not take; the buffered bytes go out
 * when the socket is writable.  Reading uses one receive buffer per loop
 * (data_received's bytes are valid until it returns), or the protocol's
 * own buffer (get_buffer / buffer_updated: asyncio's BufferedProtocol).
 * Every socket is non-blocking and close-on-exec, TCP sockets have
 * TCP_NODELAY (as asyncio), and no send ever raises SIGPIPE.
 *
 *   static void on_data(fut_transport_t *t, const void *d, size_t n,
 *                       void *arg) {
 *     fut_transport_write(t, d, n); // echo
 *   }
 *   static const fut_protocol_t echo = {.data_received = on_data};
 *   ...
 *   fut_server_t *srv;
 *   fut_create_server(loop, &echo, NULL, NULL, "127.0.0.1", 8888, NULL,
 *                     &srv);
 *
 * Life of a connection (asyncio's): connection_made, then data_received
 * any number of times, then eof_received at most once, then
 * connection_lost exactly once.  After connection_lost the loop drops its
 * reference to the transport; a transport pointer passed to a callback is
 * borrowed (fut_transport_ref keeps it longer).
 *
 * Flow control: when the write buffer grows above the high-water mark the
 * protocol's pause_writing runs; when it drains to the low-water mark,
 * resume_writing (defaults 64 KiB and 16 KiB, asyncio's).
 *
 * Awaitable operations (create_connection, create_unix_connection, and
 * create_server with a host name to resolve) follow future/sock.h's rules.
 * create_server with a numeric or NULL host, create_unix_server and
 * fut_transport_from_fd never suspend and work outside tasks as well.
 *
 * Common errors: -EINVAL (NULL or bad argument), -ENOMEM, FUT_E_CLOSED (the
 * loop is closed), -EPIPE (writing to a transport that is closing or
 * lost), FUT_E_NOT_IN_TASK, -ECANCELED, FUT_E_RESOLVE (future/dns.h), and
 * the socket calls' own -errno.
 *
 * Threads: everything here on the loop's thread, except that ref/unref may
 * be called from any thread that holds a reference.
 */
#ifndef FUTURE_TRANSPORT_H
#define FUTURE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "future/future.h"
#include "future/loop.h"
#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fut_transport fut_transport_t;
typedef struct fut_server fut_server_t;

/* ---- protocols ------------------------------------------------------------
 * Any member may be NULL (nothing to do).  arg is the protocol argument
 * given with the connection (or made by the server's factory). */
typedef struct fut_protocol {
  /* The connection is up; t is ready for writes. */
  void (*connection_made)(fut_transport_t *t, void *arg);
  /* len > 0 bytes arrived; data is valid until the callback returns. */
  void (*data_received)(fut_transport_t *t, const void *data, size_t len,
                        void *arg);
  /* The peer closed its side.  Return true to keep the transport open for
   * writing (a half-close); false (or a NULL member) closes it. */
  bool (*eof_received)(fut_transport_t *t, void *arg);
  /* The connection is gone: err 0 after a clean close or EOF, else why
   * (-ECONNRESET, -EPIPE, FUT_E_CLOSED when the loop closed first).  Last
   * call with arg: free it here.  t is NULL only for a server's
   * connection whose transport could not be made after the factory gave
   * arg (-ENOMEM). */
  void (*connection_lost)(fut_transport_t *t, int err, void *arg);
  /* The write buffer crossed the high-water mark, and came back down. */
  void (*pause_writing)(fut_transport_t *t, void *arg);
  void (*resume_writing)(fut_transport_t *t, void *arg);
  /* BufferedProtocol: when get_buffer is set, the transport receives into
   * the buffer it returns (*cap bytes, at least 1; NULL or 0 aborts the
   * connection with -ENOBUFS) and calls buffer_updated with the count
   * instead of data_received.  sizehint is a suggestion (65536). */
  void *(*get_buffer)(fut_transport_t *t, size_t sizehint, size_t *cap,
                      void *arg);
  void (*buffer_updated)(fut_transport_t *t, size_t nbytes, void *arg);
} fut_protocol_t;

/* A server's protocol factory: gives the protocol argument of each
 * accepted connection in *arg, from the server's factory_arg.  Returns 0,
 * or a negative code to refuse the connection (it is closed at once). */
typedef int (*fut_protocol_factory_fn)(void *factory_arg, void **arg);

/* ---- transports ------------------------------------------------------------
 */

/* Writes len bytes: sends what the socket takes now and buffers the rest,
 * so the call never blocks and never loses data.  Returns 0, or -EPIPE
 * when the transport is closing or lost (nothing written), -ENOMEM (then
 * nothing is buffered; the part sent is gone, so the transport is aborted
 * with -ENOMEM), -EINVAL. */
FUT_EXTERN int fut_transport_write(fut_transport_t *t, const void *data,
                                   size_t len);
/* Writes iovcnt buffers as one (sendmsg / writev at once, the rest
 * buffered).  Returns and errors as fut_transport_write. */
FUT_EXTERN int fut_transport_writev(fut_transport_t *t, const struct iovec *iov,
                                    int iovcnt);
/* Closes the write side after the buffered data (shutdown SHUT_WR).
 * Returns 0, or -EPIPE when closing, -ENOTSUP on a datagram transport
 * (can_write_eof false). */
FUT_EXTERN int fut_transport_write_eof(fut_transport_t *t);
FUT_EXTERN bool fut_transport_can_write_eof(const fut_transport_t *t);
/* Closes after the buffered data is sent; connection_lost(0) follows.
 * No-op when already closing. */
FUT_EXTERN void fut_transport_close(fut_transport_t *t);
/* Closes now, dropping buffered data; connection_lost(0) follows. */
FUT_EXTERN void fut_transport_abort(fut_transport_t *t);
FUT_EXTERN bool fut_transport_is_closing(const fut_transport_t *t);
/* Stops / restarts calling data_received (the reader watcher goes away). */
FUT_EXTERN void fut_transport_pause_reading(fut_transport_t *t);
FUT_EXTERN void fut_transport_resume_reading(fut_transport_t *t);
FUT_EXTERN bool fut_transport_is_reading(const fut_transport_t *t);
/* Bytes buffered, not yet sent. */
FUT_EXTERN size_t fut_transport_get_write_buffer_size(const fut_transport_t *t);
/* Sets the water marks (asyncio's rules: high 0 and low 0 = defaults,
 * only high = low is high / 4, only low = high is 4 * low).  Returns 0, or
 * -EINVAL when low > high. */
FUT_EXTERN int fut_transport_set_write_buffer_limits(fut_transport_t *t,
                                                     size_t high, size_t low);
FUT_EXTERN void fut_transport_get_write_buffer_limits(const fut_transport_t *t,
                                                      size_t *high,
                                                      size_t *low);

/* What fut_transport_get_extra_info can tell. */
typedef enum fut_extra {
  FUT_EXTRA_PEERNAME, /* struct sockaddr of the peer */
  FUT_EXTRA_SOCKNAME, /* struct sockaddr of our end */
  FUT_EXTRA_SOCKET    /* int: the fd (borrowed: do not close it) */
} fut_extra_t;
/* Copies the item into out of *len bytes and sets *len to its size.
 * Returns 0, -ENOBUFS when *len is too small (*len tells the size needed),
 * -ENOTCONN (no peer), -EBADF (transport lost), -EINVAL. */
FUT_EXTERN int fut_transport_get_extra_info(const fut_transport_t *t,
                                            fut_extra_t what, void *out,
                                            socklen_t *len);
/* The socket fd, or -1 once the transport is lost. */
FUT_EXTERN int fut_transport_fd(const fut_transport_t *t);
FUT_EXTERN fut_loop_t *fut_transport_loop(const fut_transport_t *t);
/* The protocol argument (as given, or made by the server's factory). */
FUT_EXTERN void *fut_transport_protocol_arg(const fut_transport_t *t);

/* Takes a reference; returns t. */
FUT_EXTERN fut_transport_t *fut_transport_ref(fut_transport_t *t);
/* Drops a reference.  The loop keeps its own until connection_lost ran,
 * so dropping yours never closes the transport: close it first. */
FUT_EXTERN void fut_transport_unref(fut_transport_t *t);

/* Wraps a connected stream socket (asyncio connect_accepted_socket):
 * takes ownership of fd (made non-blocking and close-on-exec; closed on
 * failure too), calls connection_made soon.  *out is a reference owned by
 * the caller (NULL allowed: the loop keeps the transport until
 * connection_lost).  Works with socketpair(2) ends and Unix sockets.
 * Returns 0 or a negative code. */
FUT_EXTERN int fut_transport_from_fd(fut_loop_t *loop, int fd,
                                     const fut_protocol_t *proto, void *arg,
                                     fut_transport_t **out);

/* Awaitable (asyncio's loop.sendfile on a transport): sends count bytes
 * (0: to the end) of the file in_fd from *offset (NULL: its position) on
 * the transport's socket, after the data already buffered, with
 * sendfile(2) or read + send (see fut_sock_sendfile).  Writes are refused
 * with -EBUSY meanwhile.  *sent (may be NULL) is the count sent.  Returns
 * 0, or -EPIPE (closing or lost), -EBUSY, -ECANCELED, FUT_E_NOT_IN_TASK,
 * or the socket's error (the transport is then lost with it). */
FUT_EXTERN int fut_transport_sendfile(fut_transport_t *t, int in_fd,
                                      off_t *offset, size_t count,
                                      size_t *sent);

/* ---- connections -----------------------------------------------------------
 */

typedef struct fut_connect_opts {
  /* AF_UNSPEC (default), AF_INET or AF_INET6: which addresses to try. */
  int family;
  /* Bind the local end first (NULL = none); a numeric host. */
  const char *local_host;
  int local_port;
  /* RFC 8305 happy eyeballs: start the next address this long after the
   * previous one began, without waiting for it to fail.  0 (asyncio's
   * default) = try the addresses one after the other. */
  uint64_t happy_eyeballs_delay_ns;
  /* Interleave address families (asyncio's interleave; 0 = 1 when happy
   * eyeballs is on). */
  int interleave;
} fut_connect_opts_t;

/* Fills *o with the defaults. */
FUT_EXTERN void fut_connect_opts_init(fut_connect_opts_t *o);

/* Opens a TCP connection to host:port (awaitable): resolves host (see
 * future/dns.h), tries each address until one connects, then calls
 * connection_made.  *out is a reference owned by the caller.  Returns 0,
 * or the last address's connect error (-ECONNREFUSED, ...) when none
 * connects, FUT_E_RESOLVE, -ECANCELED; the sockets tried are closed. */
FUT_EXTERN int fut_create_connection(const fut_protocol_t *proto, void *arg,
                                     const char *host, int port,
                                     const fut_connect_opts_t *opts,
                                     fut_transport_t **out);
/* Same on a Unix stream socket at path (awaitable).  Returns 0 or a
 * negative code (-ENOENT, -ECONNREFUSED, -ENAMETOOLONG, ...). */
FUT_EXTERN int fut_create_unix_connection(const fut_protocol_t *proto,
                                          void *arg, const char *path,
                                          fut_transport_t **out);

/* ---- servers ---------------------------------------------------------------
 */

typedef struct fut_server_opts {
  int family;         /* AF_UNSPEC (default): every address of host */
  int backlog;        /* listen(2) backlog and accepts per wakeup; 100 */
  bool reuse_address; /* SO_REUSEADDR; true (asyncio's default on Unix) */
  bool reuse_port;    /* SO_REUSEPORT; false */
  bool start_serving; /* accept at once; true.  false: start_serving */
  /* After accept fails for lack of fds (EMFILE, ENFILE, ENOBUFS, ENOMEM)
   * the server stops accepting for this long, then tries again: no busy
   * loop, and no listener lost.  Default 1 s (asyncio's). */
  uint64_t accept_retry_delay_ns;
  /* Unix servers: remove a stale socket file at path before bind, and the
   * file when the server closes (asyncio's cleanup_socket); true. */
  bool unix_cleanup;
} fut_server_opts_t;

/* Fills *o with the defaults. */
FUT_EXTERN void fut_server_opts_init(fut_server_opts_t *o);

/* Listens on every address of host (NULL = all interfaces, IPv4 and IPv6)
 * at port (0 = a free port, the same on each socket when possible) and
 * makes a transport with proto for each connection; factory (may be NULL:
 * then the argument is factory_arg itself) gives each its argument.  With
 * a host name to resolve this is an awaitable operation; with a numeric or
 * NULL host it also works outside a task, on loop's thread (inside a task,
 * loop may be NULL for the running loop).  *out is owned by the caller:
 * fut_server_close, then fut_server_unref.  Returns 0 or a negative code
 * (-EADDRINUSE, -EACCES, ...; nothing is left listening). */
FUT_EXTERN int fut_create_server(fut_loop_t *loop, const fut_protocol_t *proto,
                                 fut_protocol_factory_fn factory,
                                 void *factory_arg, const char *host, int port,
                                 const fut_server_opts_t *opts,
                                 fut_server_t **out);
/* Listens on a Unix stream socket at path.  Returns 0 or a negative code
 * (-EADDRINUSE when a live server has the path). */
FUT_EXTERN int fut_create_unix_server(fut_loop_t *loop,
                                      const fut_protocol_t *proto,
                                      fut_protocol_factory_fn factory,
                                      void *factory_arg, const char *path,
                                      const fut_server_opts_t *opts,
                                      fut_server_t **out);

/* Starts accepting (a no-op when serving).  Returns 0, or FUT_E_CLOSED
 * after fut_server_close. */
FUT_EXTERN int fut_server_start_serving(fut_server_t *s);
FUT_EXTERN bool fut_server_is_serving(const fut_server_t *s);
/* Stops listening and closes the listening sockets; connections already
 * made stay open (asyncio's Server.close).  Idempotent. */
FUT_EXTERN void fut_server_close(fut_server_t *s);
/* Also aborts every connection the server made (asyncio 3.13
 * close_clients / abort_clients in one). */
FUT_EXTERN void fut_server_close_clients(fut_server_t *s);
/* Awaitable: returns once the server is closed and every connection it
 * made is lost.  Returns 0, -ECANCELED, FUT_E_NOT_IN_TASK. */
FUT_EXTERN int fut_server_wait_closed(fut_server_t *s);
/* The future form of fut_server_wait_closed, for callback code: *out
 * resolves (to a NULL result) once the server is closed and every
 * connection it made is lost; already done when that holds now.
 * Cancelling it cancels nothing else.  Returns 0, -EINVAL, -ENOMEM. */
FUT_EXTERN int fut_server_wait_closed_future(fut_server_t *s, fut_t **out);
/* Awaitable: starts serving and waits until the task is cancelled, then
 * closes the server (asyncio's serve_forever).  Returns -ECANCELED (the
 * way it ends), FUT_E_CLOSED when already closed, FUT_E_NOT_IN_TASK. */
FUT_EXTERN int fut_server_serve_forever(fut_server_t *s);
/* The listening sockets: copies up to cap fds into fds (borrowed) and
 * returns how many there are. */
FUT_EXTERN size_t fut_server_sockets(const fut_server_t *s, int *fds,
                                     size_t cap);
/* The port of the first listening socket (0 for Unix servers), handy after
 * binding port 0. */
FUT_EXTERN int fut_server_port(const fut_server_t *s);
/* Connections made and not yet lost. */
FUT_EXTERN size_t fut_server_active_connections(const fut_server_t *s);
/* asyncio's Server.get_loop: returns the loop the server was created on
 * (also once closed), or NULL for a NULL server.  Errors: none. */
FUT_EXTERN fut_loop_t *fut_server_loop(const fut_server_t *s);
FUT_EXTERN fut_server_t *fut_server_ref(fut_server_t *s);
/* Drops a reference; the last one closes the server first. */
FUT_EXTERN void fut_server_unref(fut_server_t *s);

/* ---- datagrams ------------------------------------------------------------
 * asyncio's create_datagram_endpoint: a UDP socket whose datagrams arrive
 * one per datagram_received.  The transport is a fut_transport_t: close
 * (sends what is queued first, then connection_lost(0)), abort (drops the
 * queue), is_closing, get_write_buffer_size, the water marks and
 * get_extra_info work as on streams; write, writev and write_eof do not
 * (-EINVAL, -EINVAL, -ENOTSUP), nor pause_reading (a no-op).
 *
 *   static void on_dgram(fut_transport_t *t, const void *d, size_t n,
 *                        const struct sockaddr *sa, socklen_t salen,
 *                        void *arg) {
 *     fut_transport_sendto(t, d, n, sa, salen); // echo
 *   }
 *   static const fut_datagram_protocol_t echo = {.datagram_received =
 *                                                    on_dgram};
 *   ...
 *   fut_transport_t *t;
 *   fut_create_datagram_endpoint(loop, &echo, NULL, "127.0.0.1", 9999,
 *                                NULL, 0, NULL, &t);
 */

typedef struct fut_datagram_protocol {
  void (*connection_made)(fut_transport_t *t, void *arg);
  /* One datagram (len may be 0); data valid until the callback returns.
   * addr is the sender (NULL when the sender has no address, as an
   * unnamed Unix socket). */
  void (*datagram_received)(fut_transport_t *t, const void *data, size_t len,
                            const struct sockaddr *addr, socklen_t addrlen,
                            void *arg);
  /* A queued datagram could not be sent, or a receive failed
   * (-ECONNREFUSED when an ICMP error answered a datagram of a connected
   * endpoint, ...); the datagram is dropped and the endpoint stays open
   * (asyncio's error_received). */
  void (*error_received)(fut_transport_t *t, int err, void *arg);
  /* As fut_protocol_t's: last call with arg (FUT_E_CLOSED when the loop
   * closed first). */
  void (*connection_lost)(fut_transport_t *t, int err, void *arg);
  /* The queue crossed the high-water mark, and came back down. */
  void (*pause_writing)(fut_transport_t *t, void *arg);
  void (*resume_writing)(fut_transport_t *t, void *arg);
} fut_datagram_protocol_t;

typedef struct fut_datagram_opts {
  int family;           /* AF_UNSPEC (default): from the addresses */
  bool reuse_port;      /* SO_REUSEPORT; false */
  bool allow_broadcast; /* SO_BROADCAST; false */
} fut_datagram_opts_t;

/* Fills *o with the defaults. */
FUT_EXTERN void fut_datagram_opts_init(fut_datagram_opts_t *o);

/* Makes a UDP endpoint bound to local_host:local_port and, with
 * remote_host set, connected to remote_host:remote_port: then only that
 * peer's datagrams arrive and sendto takes a NULL address.  A NULL (or
 * empty) local_host with a local_port binds the wildcard at that port: of
 * the remote's family, or with no remote of both families (IPv6 taking
 * IPv4 too; IPv4 alone where the host has no IPv6).  With local_port 0
 * nothing is bound (connect or the first sendto picks the port), and with
 * no remote either opts->family must name the family (asyncio's rule).  A
 * host name is resolved, which is an awaitable operation: outside a task
 * of loop the hosts must be numeric.  The local and remote addresses are
 * paired by family, each family tried in turn (asyncio's order).  Inside a
 * task, loop may be NULL for the running loop.  With allow_broadcast and a
 * remote the socket is connected too (asyncio leaves it unconnected): to
 * hear replies from any host, give no remote and pass the broadcast
 * address to sendto.  connection_made follows from the ready queue (never
 * inline).  *out is a reference owned by the caller.  Returns 0,
 * or -EINVAL (NULL proto or out, a port out of range, a family other than
 * AF_UNSPEC, AF_INET or AF_INET6, a numeric host of another family, local
 * and remote without a family in common, no address, no local port and
 * no family), FUT_E_NOT_IN_TASK (a name
 * outside a task), FUT_E_RESOLVE, -ECANCELED, FUT_E_CLOSED, the socket
 * calls' -EADDRINUSE, -EADDRNOTAVAIL, -EACCES, ... (the first family's
 * when every family failed; no socket is left open). */
FUT_EXTERN int fut_create_datagram_endpoint(
    fut_loop_t *loop, const fut_datagram_protocol_t *proto, void *arg,
    const char *local_host, int local_port, const char *remote_host,
    int remote_port, const fut_datagram_opts_t *opts, fut_transport_t **out);
/* Sends one datagram of len bytes (0 allowed) to sa; never blocks.  When
 * nothing is queued it is sent at once; when the socket cannot take it
 * (or others wait) it is copied into the queue, sent in order when the
 * socket is writable, and counts len + 8 bytes in the write buffer size
 * (pause_writing above the high-water mark).  On a connected endpoint sa
 * is NULL (or the peer's own address).  Errors of an immediate send are
 * returned and error_received is not called (asyncio calls it instead);
 * a queued datagram that fails later goes to error_received.  Returns 0,
 * or -EPIPE (closing or lost), -EMSGSIZE (more than a UDP datagram holds:
 * 65527 bytes, 65507 over IPv4), -EDESTADDRREQ (sa NULL on an unconnected
 * endpoint), -EINVAL (NULL t, NULL data with len > 0, a stream transport,
 * a bad salen, an address other than the connected peer's: asyncio's
 * ValueError), -ENOMEM (nothing queued), or the immediate send's -errno
 * (-ECONNREFUSED after an ICMP error, -ENETUNREACH, -EAFNOSUPPORT, ...). */
FUT_EXTERN int fut_transport_sendto(fut_transport_t *t, const void *data,
                                    size_t len, const struct sockaddr *sa,
                                    socklen_t salen);

#ifdef __cplusplus
}
#endif
#endif
