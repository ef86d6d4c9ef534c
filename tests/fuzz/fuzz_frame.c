/* Frame-decoder fuzzer: the bytes a worker process sends to the parent on
 * its socket, as the process pool's manager reads them (fut__pp_receive in
 * src/procpool/receive.c, which checks each header before it trusts its
 * lengths, then delivers HELLO and RESULT frames).  A real worker is
 * trusted code, but its frames cross a process boundary: a worker that
 * dies mid-write, or memory it corrupted, must never crash the parent.
 *
 * Input: one configuration byte, then the stream.
 *   bits 0-1  max_frame: 64, 4096, 64 KiB or 1 MiB (bounded, so that the
 *             "frame larger than the buffer" path runs without a GiB
 *             allocation per input)
 *   bits 2-4  jobs in flight on the worker (0-7), with ids 1, 2, ...
 *   bits 5-6  how the stream arrives: in one write, in chunks of 1 byte,
 *             of 7 bytes, or of sizes read from the stream itself
 *   bit  7    allocations fail from the second one of the decoder on
 *             (the -ENOMEM paths)
 * The stream is written into a non-blocking pipe chunk by chunk, calling
 * the decoder after each chunk as the manager's poll loop would, then the
 * write end is closed (the worker's EOF).
 *
 * Checked: the decoder returns 0 (wants more), 1 (EOF or read error),
 * -EPROTO or -ENOMEM and nothing else; it never returns 0 after EOF; every
 * job's done callback runs at most once, and exactly once after the
 * manager's cleanup (which fails what is still in flight); a result has
 * data exactly when it has bytes; nothing leaks (LeakSanitizer).
 *
 * Built with clang -fsanitize=fuzzer,address,undefined (tests/fuzz/
 * CMakeLists.txt); CI runs it for 60 s from tests/fuzz/corpus/frame
 * (`--target fuzz-smoke`). */
#include <future.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procpool/internal.h"

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_frame: invariant failed: %s (line %d)\n", #cond,   \
              __LINE__);                                                       \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#define MAX_JOBS 7

static int done_calls[MAX_JOBS + 1]; /* by job id */

static void job_done(void *ud, int err, void *data, size_t len,
                     const char *msg) {
  uintptr_t id = (uintptr_t)ud;
  CHECK(id >= 1 && id <= MAX_JOBS);
  CHECK(++done_calls[id] == 1);
  CHECK(err <= 0);
  if (err) {
    CHECK(data == NULL);
  } else {
    CHECK((data != NULL) == (len > 0));
  }
  if (msg)
    CHECK(strlen(msg) < 1024);
  free(data);
}

static struct fut__pp_job *new_job(uint64_t id) {
  struct fut__pp_job *j = fut__calloc(1, sizeof *j);
  CHECK(j != NULL);
  j->done = job_done;
  j->ud = (void *)(uintptr_t)id;
  j->started = true;
  j->hdr.magic = FUT__PP_MAGIC;
  j->hdr.type = FUT__PP_JOB;
  j->hdr.id = id;
  return j;
}

/* Calls the decoder until it wants more bytes or stops; returns its last
 * answer. */
static int pump(fut_process_pool_t *p, struct fut__pp_worker *w) {
  int rc = fut__pp_receive(p, w);
  CHECK(rc == 0 || rc == 1 || rc == -EPROTO || rc == -ENOMEM);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t frames[4] = {64, 4096, 64u * 1024u, 1024u * 1024u};
  if (size < 1)
    return 0;
  if (size > 60000)
    size = 60000; /* a pipe's 64 KiB hold it all: writes never block */
  uint8_t cfg = data[0];
  const uint8_t *s = data + 1, *end = data + size;
  memset(done_calls, 0, sizeof done_calls);

  static fut_process_pool_t pool; /* only what the decoder touches */
  memset(&pool, 0, sizeof pool);
  fut_process_pool_t *p = &pool;
  CHECK(pthread_mutex_init(&p->lock, NULL) == 0);
  fut__pp_q_init(&p->pending);
  fut__pp_q_init(&p->retry);
  p->max_frame = frames[cfg & 3];

  struct fut__pp_worker w = {0};
  w.rx = fut__malloc(FUT__PP_RX_CAP);
  CHECK(w.rx != NULL);
  fut__pp_q_init(&w.inflight);
  unsigned njobs = (cfg >> 2) & 7;
  for (unsigned i = 1; i <= njobs; i++)
    fut__pp_q_push(&w.inflight, new_job(i));

  int pfd[2];
  CHECK(pipe2(pfd, O_CLOEXEC | O_NONBLOCK) == 0);
  w.fd = pfd[0];

  unsigned mode = (cfg >> 5) & 3;
  if (cfg & 0x80)
    fut__alloc_fail_after(2, true);
  int rc = 0;
  while (s < end && rc == 0) {
    size_t n = (size_t)(end - s);
    if (mode == 1)
      n = 1;
    else if (mode == 2 && n > 7)
      n = 7;
    else if (mode == 3) {
      size_t want = 1 + *s++ % 64;
      n = (size_t)(end - s) < want ? (size_t)(end - s) : want;
    }
    if (n == 0)
      break;
    CHECK(write(pfd[1], s, n) == (ssize_t)n);
    s += n;
    rc = pump(p, &w);
  }
  close(pfd[1]);
  if (rc == 0) {
    rc = pump(p, &w);
    CHECK(rc != 0); /* EOF is always seen */
  }
  fut__alloc_fail_after(0, false);

  /* The manager's cleanup of a closed worker: what is still in flight
   * fails, the buffers go. */
  fut__pp_fail_queue(&w.inflight, FUT_E_WORKER_DIED, "the worker died");
  close(pfd[0]);
  fut__free(w.rx);
  fut__free(w.big);
  for (unsigned i = 1; i <= njobs; i++)
    CHECK(done_calls[i] == 1);
  pthread_mutex_destroy(&p->lock);
  return 0;
}
