/* Process pool plumbing shared by the parent, the fork server and the
 * workers: naming functions across address spaces, blocking frame I/O and
 * the control socket's messages. */
#include "procpool/internal.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- naming functions ---------------------------------------------------- */

struct find_addr {
  uintptr_t addr; /* the code address looked for */
  bool first;     /* the next callback is the main program */
  bool found;
  struct fut__fn_name *out;
};

/* True when addr falls in an executable PT_LOAD segment of the module. */
static bool in_exec_segment(const struct dl_phdr_info *info, uintptr_t addr) {
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
      continue;
    uintptr_t start = info->dlpi_addr + ph->p_vaddr;
    if (addr >= start && addr - start < ph->p_memsz)
      return true;
  }
  return false;
}

static int find_addr_cb(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  struct find_addr *fa = data;
  bool main_prog = fa->first;
  fa->first = false;
  if (!in_exec_segment(info, fa->addr))
    return 0;
  /* The main program is named "" by the loader; other modules by the path
   * they were loaded from, which the worker's loader resolves the same way
   * (it is an exec of the same program with the same environment). */
  const char *name = main_prog ? "" : info->dlpi_name;
  if (!name)
    name = "";
  size_t n = strlen(name);
  if (!main_prog && n == 0)
    return 0; /* an unnamed module other than main (vdso): not reachable */
  if (n >= sizeof fa->out->module)
    return 0;
  memcpy(fa->out->module, name, n + 1);
  fa->out->module_len = n;
  fa->out->off = fa->addr - info->dlpi_addr;
  fa->found = true;
  return 1;
}

int fut__pp_name_fn(uintptr_t fn, struct fut__fn_name *out) {
  struct find_addr fa = {fn, true, false, out};
  dl_iterate_phdr(find_addr_cb, &fa);
  if (!fa.found)
    return fut__error(FUT_E_NOT_SENDABLE,
                      "function %#lx is not in the executable code of any "
                      "loaded module (JIT or heap code cannot be sent to a "
                      "worker process)",
                      (unsigned long)fn);
  return 0;
}

struct find_mod {
  const char *module; /* "" = main program */
  uint64_t off;
  bool first;
  bool found; /* module seen */
  bool ok;    /* and off is executable code in it */
  uintptr_t fn;
};

static int find_mod_cb(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  struct find_mod *fm = data;
  bool main_prog = fm->first;
  fm->first = false;
  if (fm->module[0] == '\0' ? !main_prog
                            : (main_prog || !info->dlpi_name ||
                               strcmp(info->dlpi_name, fm->module) != 0))
    return 0;
  fm->found = true;
  uintptr_t addr = info->dlpi_addr + (uintptr_t)fm->off;
  if (addr >= info->dlpi_addr && in_exec_segment(info, addr)) {
    fm->ok = true;
    fm->fn = addr;
  }
  return 1;
}

int fut__pp_resolve_fn(const char *module, uint64_t off, uintptr_t *fn) {
  struct find_mod fm = {module, off, true, false, false, 0};
  dl_iterate_phdr(find_mod_cb, &fm);
  if (!fm.found && module[0] != '\0') {
    /* A library the parent dlopen'ed after startup: load the same path.
     * The handle is kept for the worker's life on purpose. */
    if (dlopen(module, RTLD_NOW | RTLD_GLOBAL)) {
      fm.first = true;
      dl_iterate_phdr(find_mod_cb, &fm);
    }
  }
  if (!fm.ok)
    return fut__error(FUT_E_NOT_SENDABLE,
                      "worker %d cannot resolve function at offset %#llx of "
                      "module '%s' (%s)",
                      (int)getpid(), (unsigned long long)off,
                      module[0] ? module : "<main program>",
                      fm.found ? "not code" : "module not loadable");
  *fn = fm.fn;
  return 0;
}

/* ---- blocking I/O ----------------------------------------------------------
 */

int fut__pp_write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

int fut__pp_read_all(int fd, void *p, size_t n) {
  char *c = p;
  while (n > 0) {
    ssize_t r = read(fd, c, n);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (r == 0)
      return -EPIPE;
    c += r;
    n -= (size_t)r;
  }
  return 0;
}

/* ---- control messages --------------------------------------------------- */

int fut__pp_ctl_send(int fd, const struct fut__ctl_msg *m, const void *pl,
                     size_t pl_len, int pass_fd) {
  struct iovec iov[2] = {{(void *)m, sizeof *m}, {(void *)pl, pl_len}};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } cm;
  struct msghdr mh = {0};
  mh.msg_iov = iov;
  mh.msg_iovlen = pl_len ? 2 : 1;
  if (pass_fd >= 0) {
    memset(&cm, 0, sizeof cm);
    mh.msg_control = cm.buf;
    mh.msg_controllen = sizeof cm.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  for (;;) {
    ssize_t r = sendmsg(fd, &mh, MSG_NOSIGNAL);
    if (r >= 0)
      return 0;
    if (errno != EINTR)
      return -errno;
  }
}

int fut__pp_ctl_recv(int fd, struct fut__ctl_msg *m, void *pl, size_t pl_cap,
                     size_t *pl_len, int *passed_fd) {
  struct iovec iov[2] = {{m, sizeof *m}, {pl, pl_cap}};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } cm;
  struct msghdr mh = {0};
  mh.msg_iov = iov;
  mh.msg_iovlen = pl_cap ? 2 : 1;
  mh.msg_control = cm.buf;
  mh.msg_controllen = sizeof cm.buf;
  if (passed_fd)
    *passed_fd = -1;
  ssize_t r;
  do
    r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    return -errno;
  if (r == 0)
    return -EPIPE;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int got;
      memcpy(&got, CMSG_DATA(c), sizeof got);
      if (passed_fd && *passed_fd < 0)
        *passed_fd = got;
      else
        close(got);
    }
  }
  if ((size_t)r < sizeof *m || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
    if (passed_fd && *passed_fd >= 0) {
      close(*passed_fd);
      *passed_fd = -1;
    }
    return -EPROTO;
  }
  if (pl_len)
    *pl_len = (size_t)r - sizeof *m;
  return 0;
}

void fut__pp_describe_status(int status, char *buf, size_t cap) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char *name = sigabbrev_np(sig);
    snprintf(buf, cap, "killed by signal %d (SIG%s)%s", sig, name ? name : "?",
             WCOREDUMP(status) ? ", core dumped" : "");
  } else if (WIFEXITED(status)) {
    snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
  } else {
    snprintf(buf, cap, "ended with wait status %#x", (unsigned)status);
  }
}
