/* libfuture — socket awaitables (asyncio's loop.sock_* methods).
 *
 * Each call here is an awaitable operation: called inside a task, it tries
 * the syscall at once and, when the socket is not ready, suspends the task
 * until it is (an fd watcher on the running task's loop), then returns.
 * The socket must be non-blocking (O_NONBLOCK, see fut_sock_set_nonblocking)
 * and must not belong to a transport or a server.  accept, connect and
 * sendfile check it (-EINVAL for a blocking socket); the data calls pass
 * MSG_DONTWAIT, so they never block the loop either way.
 *
 *   int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
 *   int err = fut_sock_connect(fd, (struct sockaddr *)&sin, sizeof sin);
 *   if (!err)
 *     err = fut_sock_sendall(fd, "ping", 4);
 *
 * Rules (asyncio's, made strict where asyncio leaves them undefined):
 *   - Called outside a task: FUT_E_NOT_IN_TASK at once, nothing done.
 *   - Cancelling the task while it waits makes the call return -ECANCELED;
 *     its watcher is gone and the socket stays usable.  Nothing is consumed
 *     that the caller does not get: a recv cancelled returns no data, and a
 *     sendall cancelled part-way returns -ECANCELED with *sent (where
 *     asked) telling how many bytes went out.
 *   - One waiter per direction per socket: a second task awaiting a read
 *     (recv, recvfrom, accept) on a socket that already has one returns
 *     -EBUSY at once (asyncio would silently replace the first waiter);
 *     the same for writes (sendall, sendto, connect).  A reader and a
 *     writer may wait on one socket at the same time.  An fd watched with
 *     fut_loop_add_reader / _add_writer is busy in that direction too.
 *   - Errors from the kernel come back as their negative errno (-ECONNRESET,
 *     -ECONNREFUSED, -EPIPE, ...).  SIGPIPE is never raised (MSG_NOSIGNAL).
 *
 * Common errors: FUT_E_NOT_IN_TASK, -ECANCELED, -EBUSY, -EINVAL (negative
 * fd, NULL buffer with a non-zero size, NULL out pointer), -EBADF, -ENOMEM,
 * and the syscall's own -errno.
 *
 * Threads: inside a task, on its loop's thread.
 */
#ifndef FUTURE_SOCK_H
#define FUTURE_SOCK_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sets O_NONBLOCK (and FD_CLOEXEC) on fd.  Returns 0, or -EBADF. */
FUT_EXTERN int fut_sock_set_nonblocking(int fd);

/* Receives up to cap bytes into buf (asyncio sock_recv_into).  *got is the
 * count; 0 with a return of 0 means the peer closed (EOF), or cap was 0
 * (then nothing is read, not even a datagram).  Returns 0 or a negative
 * code. */
FUT_EXTERN int fut_sock_recv_into(int fd, void *buf, size_t cap, size_t *got);

/* Receives up to n bytes into a new buffer (asyncio sock_recv): *data is
 * malloc'd (the caller frees it with free()), *len its length; *len == 0
 * at EOF (then *data is NULL).  Returns 0 or a negative code. */
FUT_EXTERN int fut_sock_recv(int fd, size_t n, void **data, size_t *len);

/* Receives one datagram of up to cap bytes (asyncio sock_recvfrom_into).
 * The sender's address goes to sa (may be NULL) of *salen bytes, and
 * *salen becomes its length.  Returns 0 or a negative code. */
FUT_EXTERN int fut_sock_recvfrom(int fd, void *buf, size_t cap, size_t *got,
                                 struct sockaddr *sa, socklen_t *salen);

/* Sends all len bytes (asyncio sock_sendall), in as many sends as the
 * socket needs; a partial send is completed.  *sent (may be NULL) is the
 * count that went out, len on success.  Returns 0 or a negative code. */
FUT_EXTERN int fut_sock_sendall(int fd, const void *data, size_t len);
FUT_EXTERN int fut_sock_sendall_ex(int fd, const void *data, size_t len,
                                   size_t *sent);

/* Sends one datagram to sa (asyncio sock_sendto; NULL sa on a connected
 * socket).  Returns 0 or a negative code (-EMSGSIZE when too big). */
FUT_EXTERN int fut_sock_sendto(int fd, const void *data, size_t len,
                               const struct sockaddr *sa, socklen_t salen);

/* Accepts a connection (asyncio sock_accept): *conn is a new socket,
 * non-blocking and close-on-exec, owned by the caller.  The peer's address
 * goes to sa / *salen when sa is not NULL.  Returns 0 or a negative code
 * (*conn = -1 on failure). */
FUT_EXTERN int fut_sock_accept(int fd, int *conn, struct sockaddr *sa,
                               socklen_t *salen);

/* Connects fd to sa (asyncio sock_connect): a non-blocking connect whose
 * outcome is read through SO_ERROR once the socket is writable.  Returns
 * 0, or the connect error (-ECONNREFUSED, -ENETUNREACH, -ETIMEDOUT, ...);
 * bound the wait with a timeout scope (fut_timeout_enter) or wait_for.
 * Called again on a socket whose connect was cancelled while it went on,
 * it waits for that connect's outcome. */
FUT_EXTERN int fut_sock_connect(int fd, const struct sockaddr *sa,
                                socklen_t salen);

/* Sends count bytes of the file in_fd from *offset (NULL: its current
 * position) to the socket out_fd (asyncio sock_sendfile), with sendfile(2),
 * falling back to read + send when the kernel refuses sendfile for these
 * fds (-EINVAL, -ENOSYS).  *sent (may be NULL) is the count sent, also on
 * failure; *offset advances by it.  count 0 = to the end of the file.
 * Returns 0 or a negative code (-EINVAL for a socket that is not
 * SOCK_STREAM, as asyncio refuses it, or a negative offset). */
FUT_EXTERN int fut_sock_sendfile(int out_fd, int in_fd, off_t *offset,
                                 size_t count, size_t *sent);

#ifdef __cplusplus
}
#endif
#endif
