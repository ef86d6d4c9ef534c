/* An echo over loopback with the socket awaitables (asyncio's loop.sock_*
 * methods) and the resolver, in the shape of:
 *
 *   async def serve_one(lsock):
 *       conn, _ = await loop.sock_accept(lsock)
 *       while data := await loop.sock_recv(conn, 4096):
 *           await loop.sock_sendall(conn, data)
 *       conn.close()
 *
 *   async def main():
 *       info = await loop.getaddrinfo('localhost', 0, family=AF_INET,
 *                                     type=SOCK_STREAM)
 *       lsock = socket.socket(); lsock.bind(info[0][4]); lsock.listen()
 *       server = asyncio.create_task(serve_one(lsock))
 *       sock = socket.socket()
 *       await loop.sock_connect(sock, lsock.getsockname())
 *       await loop.sock_sendall(sock, b'hello, echo')
 *       sock.shutdown(SHUT_WR)
 *       print('echo:', await loop.sock_recv(sock, 4096))
 *
 * "localhost" is looked up on the loop's DNS threads; the sockets are
 * non-blocking and each call suspends only its task. */
#include <errno.h>
#include <future.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int serve_one(void *arg) {
  int lfd = *(int *)arg, conn;
  int err = fut_sock_accept(lfd, &conn, NULL, NULL);
  if (err)
    return err;
  char buf[4096];
  size_t n;
  while (!(err = fut_sock_recv_into(conn, buf, sizeof buf, &n)) && n > 0)
    if ((err = fut_sock_sendall(conn, buf, n)))
      break;
  close(conn);
  return err;
}

static int echo(int lfd) {
  struct sockaddr_storage addr;
  socklen_t alen = sizeof addr;
  if (getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0)
    return -errno;
  int fd =
      socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  static const char msg[] = "hello, echo";
  int err = fut_sock_connect(fd, (struct sockaddr *)&addr, alen);
  if (!err)
    err = fut_sock_sendall(fd, msg, strlen(msg));
  char back[64];
  size_t got = 0, n = 0;
  if (!err)
    shutdown(fd, SHUT_WR);
  while (!err && got < sizeof back &&
         !(err = fut_sock_recv_into(fd, back + got, sizeof back - got, &n)) &&
         n > 0)
    got += n;
  if (!err)
    printf("echo: %.*s\n", (int)got, back);
  close(fd);
  return err;
}

static int main_task(void *arg) {
  (void)arg;
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
  struct addrinfo *res;
  int err = fut_getaddrinfo("localhost", "0", &hints, &res);
  if (err) {
    fprintf(stderr, "%s\n", fut_last_error());
    return err;
  }
  char host[NI_MAXHOST];
  err = fut_getnameinfo(res->ai_addr, res->ai_addrlen, host, sizeof host, NULL,
                        0, NI_NUMERICHOST);
  if (!err)
    printf("localhost is %s\n", host);
  int lfd = socket(res->ai_family,
                   res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (lfd < 0 || bind(lfd, res->ai_addr, res->ai_addrlen) < 0 ||
      listen(lfd, 8) < 0) {
    err = -errno;
    freeaddrinfo(res);
    if (lfd >= 0)
      close(lfd);
    return err;
  }
  freeaddrinfo(res);
  fut_t *server;
  err = fut_create_task(fut_get_running_loop(), serve_one, &lfd, NULL, &server);
  if (!err) {
    err = echo(lfd);
    if (err)
      fut_cancel(server, NULL); /* it may still wait in accept */
    int serr = fut_await(server, NULL);
    if (!err)
      err = serr;
    fut_unref(server);
  }
  close(lfd);
  return err;
}

int main(void) {
  int err = fut_run(main_task, NULL, NULL);
  if (err)
    fprintf(stderr, "main failed: %s\n", fut_strerror(err));
  return err ? 1 : 0;
}
