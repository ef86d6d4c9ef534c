/* libfuture — name resolution (asyncio's loop.getaddrinfo / getnameinfo).
 *
 * getaddrinfo(3) blocks, so a host name is resolved on a small thread pool
 * that belongs to the loop's network layer, never on the default executor:
 * slow DNS cannot starve the user's jobs, and at most
 * FUT_DNS_MAX_CONCURRENCY lookups per loop run at once (the rest queue).
 * A numeric host ("127.0.0.1", "::1") or a NULL host is resolved in the
 * calling thread, with no thread at all.  The pool's threads start on the
 * first lookup that needs one and stop when the loop closes.
 *
 * Both calls are awaitable operations (see future/sock.h): inside a task,
 * FUT_E_NOT_IN_TASK outside.  Cancelling the task returns -ECANCELED at
 * once; a lookup already running in a thread finishes there and its
 * result is freed.  fut_getaddrinfo_future is the form for callback code.
 *
 * Errors: a resolver failure is FUT_E_RESOLVE, with gai_strerror's text
 * and the host in fut_last_error() (EAI_MEMORY is -ENOMEM, EAI_BADFLAGS
 * -EINVAL).  Common errors: FUT_E_NOT_IN_TASK, -ECANCELED, -EINVAL,
 * -ENOMEM, FUT_E_RESOLVE.
 *
 * Threads: on the loop's thread.
 */
#ifndef FUTURE_DNS_H
#define FUTURE_DNS_H

#include <netdb.h>
#include <stddef.h>
#include <sys/socket.h>

#include "future/future.h"
#include "future/loop.h"
#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Lookups of one loop that run at the same time; more wait their turn. */
#define FUT_DNS_MAX_CONCURRENCY 4

/* Resolves host and port as getaddrinfo(3) with hints (NULL = any family,
 * any type).  port may be NULL or a service name or number.  *res is a
 * list owned by the caller, freed with freeaddrinfo(3).  Returns 0 or a
 * negative code (*res NULL). */
FUT_EXTERN int fut_getaddrinfo(const char *host, const char *port,
                               const struct addrinfo *hints,
                               struct addrinfo **res);

/* The future form: *out resolves to the struct addrinfo list as its
 * pointer result (fut_result; the future owns it and frees it with
 * freeaddrinfo when freed) or fails with FUT_E_RESOLVE.  A numeric host gives a
 * future already done.  Returns 0 or a negative code (then *out is NULL). */
FUT_EXTERN int fut_getaddrinfo_future(fut_loop_t *loop, const char *host,
                                      const char *port,
                                      const struct addrinfo *hints,
                                      fut_t **out);

/* Reverse lookup as getnameinfo(3): host into host[hostlen], service into
 * serv[servlen] (either may be NULL with length 0, not both).  With
 * NI_NUMERICHOST | NI_NUMERICSERV in flags (for what is asked) it runs in
 * the calling thread, else on the DNS pool.  Returns 0 or a negative code
 * (then host and serv are empty strings). */
FUT_EXTERN int fut_getnameinfo(const struct sockaddr *sa, socklen_t salen,
                               char *host, size_t hostlen, char *serv,
                               size_t servlen, int flags);

#ifdef __cplusplus
}
#endif
#endif
