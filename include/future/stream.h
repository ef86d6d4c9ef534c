/* libfuture — streams (asyncio's StreamReader / StreamWriter,
 * open_connection, start_server and their Unix forms).
 *
 * A stream is a reader and a writer over one transport, for tasks: the
 * reader's calls suspend the task until enough data arrived, the writer's
 * write never suspends and drain waits for the write buffer to come down
 * to its low-water mark.  The same pair wraps any connected stream fd
 * (fut_stream_from_fd: sockets, socketpairs, pipes' read ends are not
 * supported yet).
 *
 *   static int echo(fut_reader_t *r, fut_writer_t *w, void *arg) {
 *     char buf[4096];
 *     size_t n;
 *     int err;
 *     while (!(err = fut_reader_read_into(r, buf, sizeof buf, &n)) && n)
 *       if ((err = fut_writer_write(w, buf, n)) || (err = fut_writer_drain(w)))
 *         break;
 *     return err;
 *   }
 *   ...
 *   fut_start_server(echo, NULL, "127.0.0.1", 8888, NULL, &server);
 *
 * asyncio's exceptions that carry data keep it in the out parameters:
 *   - FUT_E_INCOMPLETE_READ (IncompleteReadError): EOF came first; *data /
 *     *len hold the partial bytes (owned by the caller), and the reader is
 *     at EOF.
 *   - FUT_E_LIMIT_OVERRUN (LimitOverrunError): no separator within the
 *     reader's limit; *len tells how many bytes were looked at (asyncio's
 *     consumed), *data is NULL, and the data stays in the reader.
 * Data handed out (read, readexactly, readline, readuntil) is malloc'd and
 * owned by the caller, who frees it with free(); it is not NUL-terminated.
 *
 * One reader at a time: a read while another task waits on the same
 * reader returns -EBUSY (asyncio's RuntimeError).  Cancelling a waiting
 * read returns -ECANCELED and consumes nothing.  Once the connection
 * failed (reset, ...), reads return that error (asyncio: the reader's
 * exception), after EOF they return 0 bytes.
 *
 * Ownership: open_connection and the server's handler get one reference to
 * the reader and one to the writer.  fut_reader_unref / fut_writer_unref
 * drop them; when both are gone the transport is closed (asyncio closes it
 * when the writer is collected).  A start_server handler's references are
 * the library's: it closes the writer and drops both when the handler
 * returns (take your own with _ref to keep them).
 *
 * Common errors: FUT_E_NOT_IN_TASK, -ECANCELED, -EBUSY, -EINVAL, -ENOMEM,
 * -EPIPE (writing after close), -ECONNRESET and other connection errors,
 * FUT_E_INCOMPLETE_READ, FUT_E_LIMIT_OVERRUN, FUT_E_RESOLVE.
 *
 * Threads: on the loop's thread; reads and drain inside tasks.
 */
#ifndef FUTURE_STREAM_H
#define FUTURE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "future/loop.h"
#include "future/transport.h"
#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fut_reader fut_reader_t;
typedef struct fut_writer fut_writer_t;

/* asyncio's default limit: 64 KiB. */
#define FUT_STREAM_LIMIT_DEFAULT ((size_t)65536)
/* fut_reader_read's n for "until EOF" (asyncio read(-1)). */
#define FUT_READ_ALL SIZE_MAX

typedef struct fut_stream_opts {
  /* The reader's limit for readline / readuntil, and the buffer size above
   * which the reader pauses the transport (2 * limit, as asyncio). */
  size_t limit;
  /* The writer's water marks for drain (0, 0 = 64 KiB, 16 KiB). */
  size_t write_high, write_low;
  /* Stack of each start_server handler task (0 = the task default). */
  size_t handler_stack_size;
} fut_stream_opts_t;

/* Fills *o with the defaults. */
FUT_EXTERN void fut_stream_opts_init(fut_stream_opts_t *o);

/* A server handler: runs as a new task for each connection.  Its return
 * value is the task's: -ECONNRESET and -EPIPE (the peer went away) count
 * as a normal end, another error is reported to the loop's exception
 * handler when the task is freed (asyncio logs a failed client callback). */
typedef int (*fut_stream_handler_fn)(fut_reader_t *r, fut_writer_t *w,
                                     void *arg);

/* ---- opening ---------------------------------------------------------------
 */

/* Connects to host:port (awaitable; see fut_create_connection, whose opts
 * it takes; stream opts may be NULL).  Returns 0 or a negative code. */
FUT_EXTERN int fut_open_connection(const char *host, int port,
                                   const fut_connect_opts_t *copts,
                                   const fut_stream_opts_t *opts,
                                   fut_reader_t **reader,
                                   fut_writer_t **writer);
/* Same on a Unix socket at path.  Returns 0 or a negative code. */
FUT_EXTERN int fut_open_unix_connection(const char *path,
                                        const fut_stream_opts_t *opts,
                                        fut_reader_t **reader,
                                        fut_writer_t **writer);
/* Serves host:port, running handler(reader, writer, arg) as a task per
 * connection (see fut_create_server for host, port, sopts and when it
 * suspends).  Returns 0 or a negative code. */
FUT_EXTERN int fut_start_server(fut_loop_t *loop, fut_stream_handler_fn handler,
                                void *arg, const char *host, int port,
                                const fut_server_opts_t *sopts,
                                const fut_stream_opts_t *opts,
                                fut_server_t **out);
/* Same on a Unix socket at path.  Returns 0 or a negative code. */
FUT_EXTERN int fut_start_unix_server(fut_loop_t *loop,
                                     fut_stream_handler_fn handler, void *arg,
                                     const char *path,
                                     const fut_server_opts_t *sopts,
                                     const fut_stream_opts_t *opts,
                                     fut_server_t **out);
/* Wraps a connected stream socket (taken over, even on failure).  Never
 * suspends.  Returns 0 or a negative code. */
FUT_EXTERN int fut_stream_from_fd(fut_loop_t *loop, int fd,
                                  const fut_stream_opts_t *opts,
                                  fut_reader_t **reader, fut_writer_t **writer);

/* ---- the reader (awaitable reads) ------------------------------------------
 */

/* Up to n bytes (n FUT_READ_ALL: everything until EOF), as soon as any are
 * there; *len 0 at EOF.  Returns 0 or a negative code. */
FUT_EXTERN int fut_reader_read(fut_reader_t *r, size_t n, void **data,
                               size_t *len);
/* Up to cap bytes into buf (no allocation): the fast path.  When nothing
 * is buffered the socket receives straight into buf while the call waits,
 * so buf must not be shared with another read in progress.  *got 0 at
 * EOF.  Returns 0 or a negative code. */
FUT_EXTERN int fut_reader_read_into(fut_reader_t *r, void *buf, size_t cap,
                                    size_t *got);
/* Exactly n bytes.  Returns 0, or FUT_E_INCOMPLETE_READ with the partial
 * bytes at EOF, or another negative code. */
FUT_EXTERN int fut_reader_readexactly(fut_reader_t *r, size_t n, void **data,
                                      size_t *len);
/* Like readexactly into buf (cap >= n).  Returns 0, or
 * FUT_E_INCOMPLETE_READ (*got the partial count), or a negative code. */
FUT_EXTERN int fut_reader_readexactly_into(fut_reader_t *r, void *buf, size_t n,
                                           size_t *got);
/* Through the next sep (sep included in *data).  Returns 0,
 * FUT_E_INCOMPLETE_READ at EOF (the partial bytes, the reader emptied),
 * FUT_E_LIMIT_OVERRUN (data left in the reader), -EINVAL (empty sep). */
FUT_EXTERN int fut_reader_readuntil(fut_reader_t *r, const void *sep,
                                    size_t seplen, void **data, size_t *len);
/* One line through "\n" (asyncio readline): at EOF the partial line
 * (maybe empty) with 0; over the limit FUT_E_LIMIT_OVERRUN after dropping
 * the long line (through its "\n" when found, else the buffer), as
 * asyncio's ValueError.  Returns 0 or a negative code. */
FUT_EXTERN int fut_reader_readline(fut_reader_t *r, void **data, size_t *len);
/* True once EOF arrived and the buffer is empty. */
FUT_EXTERN bool fut_reader_at_eof(const fut_reader_t *r);
/* Bytes buffered and not yet read. */
FUT_EXTERN size_t fut_reader_buffered(const fut_reader_t *r);
FUT_EXTERN fut_reader_t *fut_reader_ref(fut_reader_t *r);
/* Drops a reference (see Ownership above). */
FUT_EXTERN void fut_reader_unref(fut_reader_t *r);

/* ---- the writer ------------------------------------------------------------
 */

/* Writes (never suspends; see fut_transport_write).  Returns 0 or a
 * negative code (-EPIPE after close). */
FUT_EXTERN int fut_writer_write(fut_writer_t *w, const void *data, size_t len);
/* Writes iovcnt buffers.  Returns 0 or a negative code. */
FUT_EXTERN int fut_writer_writev(fut_writer_t *w, const struct iovec *iov,
                                 int iovcnt);
/* Awaitable flow control (asyncio's drain): returns at once unless the
 * write buffer went above the high-water mark, and then waits until it is
 * back at the low-water mark.  So after it, at most high bytes wait.
 * Returns 0, the connection's error once lost (-ECONNRESET, -EPIPE),
 * -ECANCELED. */
FUT_EXTERN int fut_writer_drain(fut_writer_t *w);
/* Closes the write side after the buffered data.  Returns 0 or a negative
 * code (-ENOTSUP when the transport cannot). */
FUT_EXTERN int fut_writer_write_eof(fut_writer_t *w);
FUT_EXTERN bool fut_writer_can_write_eof(const fut_writer_t *w);
/* Closes the transport after the buffered data (never suspends). */
FUT_EXTERN void fut_writer_close(fut_writer_t *w);
FUT_EXTERN bool fut_writer_is_closing(const fut_writer_t *w);
/* Awaitable: waits until the connection is lost.  Returns 0 or its
 * error code, -ECANCELED. */
FUT_EXTERN int fut_writer_wait_closed(fut_writer_t *w);
/* The transport under the stream (borrowed; get_extra_info on it). */
FUT_EXTERN fut_transport_t *fut_writer_transport(const fut_writer_t *w);
FUT_EXTERN fut_writer_t *fut_writer_ref(fut_writer_t *w);
/* Drops a reference (see Ownership above). */
FUT_EXTERN void fut_writer_unref(fut_writer_t *w);

#ifdef __cplusplus
}
#endif
#endif
