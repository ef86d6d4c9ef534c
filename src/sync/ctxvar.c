/* Context variables (asyncio's contextvars, simplified): a context is a
 * persistent singly-linked list of (variable, value) cells, newest first,
 * shared by reference.  Copying a context for a new task is taking a
 * reference to its head; a set pushes a cell in front of the setter's own
 * head; a get walks to the first cell of the variable.  Cells are never
 * modified once shared, so a context may be read from two threads at once
 * (fut_to_thread); only the reference counts are atomic.
 *
 * Where "the current context" lives: a task's in its sync_ctx field (given
 * by the task layer's inherit hook at creation); a fut_to_thread
 * function's in a slot of the worker's stack (a thread-local override
 * points to it while the function runs); everywhere else in the thread's
 * own context (a thread-local head, released at thread exit). */
#include "sync/groups.h"

#include <pthread.h>
#include <stdatomic.h>

struct fut_ctxvar {
  void *dflt;  /* the value where the variable was never set */
  uint64_t id; /* unique in the process, never reused: cells of a freed
                  variable match no later one at the same address */
};

static atomic_uint_fast64_t last_id;

struct fut__ctx_cell {
  atomic_uint refs;           /* contexts and cells pointing here */
  uint64_t var;               /* the variable's id */
  void *value;                /* borrowed from the user */
  struct fut__ctx_cell *next; /* older cells (a reference), or NULL */
};

/* The thread's own context (outside tasks). */
static _Thread_local struct fut__ctx_cell *thread_ctx;

/* Releases a thread's own context when the thread exits: the key's value
 * is set (to anything non-NULL) by the first set outside a task. */
static pthread_key_t thread_key;
static bool have_key; /* written once, under thread_key_once */
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;

static void thread_exit(void *unused) {
  (void)unused;
  fut__ctx_unref(thread_ctx);
  thread_ctx = NULL;
}

static void thread_key_init(void) {
  /* Without a key the contexts stay until the process ends. */
  have_key = pthread_key_create(&thread_key, thread_exit) == 0;
}

struct fut__ctx_cell *fut__ctx_ref(struct fut__ctx_cell *c) {
  if (c)
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
  return c;
}

void fut__ctx_unref(struct fut__ctx_cell *c) {
  while (c &&
         atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) {
    struct fut__ctx_cell *next = c->next;
    fut__free(c);
    c = next; /* iterative: long chains cannot overflow the stack */
  }
}

/* Set while a fut_to_thread function runs in this thread: its context. */
static _Thread_local struct fut__ctx_cell **override_ctx;

struct fut__ctx_cell **fut__ctx_override(struct fut__ctx_cell **slot) {
  struct fut__ctx_cell **old = override_ctx;
  override_ctx = slot;
  return old;
}

/* The slot holding the current context's head.  A running task's own
 * comes first: a task resumed from inside a context-bound callback (a
 * wake-up) still runs in its own context. */
static struct fut__ctx_cell **current_slot(void) {
  struct fut__task *t = fut__task_running();
  if (t)
    return (struct fut__ctx_cell **)&t->sync_ctx;
  if (override_ctx)
    return override_ctx;
  return &thread_ctx;
}

/* ---- the task layer's hooks ------------------------------------------- */

/* A new task copies the current context: its creator's, a context-bound
 * callback's, or the thread's own. */
static void *inherit(struct fut__task *parent) {
  (void)parent; /* current_slot() finds it */
  return fut__ctx_ref(*current_slot());
}

static void release(void *ctx, void *group) {
  fut__ctx_unref(ctx);
  fut_error_group_unref(group);
}

static const struct fut__task_hooks hooks = {inherit, release};

/* ---- the loop layer's hooks: callbacks bound to a context -------------- */

static void ctx_ref(void *ctx) {
  fut__ctx_ref(ctx);
}

static void ctx_unref(void *ctx) {
  fut__ctx_unref(ctx);
}

/* What a callback scheduled now captures: the running task's context, a
 * bound callback's or a fut_to_thread function's (the override); never a
 * thread's own (plain code binds nothing).  NULL when empty. */
static void *capture_here(void) {
  struct fut__ctx_cell **slot = current_slot();
  return slot == &thread_ctx ? NULL : fut__ctx_ref(*slot);
}

/* A bound callback's context is current through the override, as a
 * fut_to_thread function's: sets inside it push onto the callback's own
 * slot (the frame's), never onto the scheduler's context. */
static void *ctx_enter(void **slot) {
  return fut__ctx_override((struct fut__ctx_cell **)slot);
}

static void ctx_leave(void *prev) {
  fut__ctx_override(prev);
}

static const struct fut__ctx_hooks ctx_hooks = {
    ctx_ref, ctx_unref, capture_here, ctx_enter, ctx_leave};

__attribute__((constructor)) static void ctxvar_init(void) {
  fut__task_hooks = &hooks;
  fut__ctx_hooks = &ctx_hooks;
}

struct fut__ctx_cell *fut__ctx_current(void) {
  return fut__ctx_ref(*current_slot());
}

bool fut__sync_hooks_installed(void) {
  return fut__task_hooks == &hooks;
}

/* ---- public ------------------------------------------------------------ */

int fut_ctxvar_new(void *default_value, fut_ctxvar_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_ctxvar_new: NULL out");
  *out = fut__calloc(1, sizeof **out);
  if (!*out)
    return fut__error(-ENOMEM, "fut_ctxvar_new: out of memory");
  (*out)->dflt = default_value;
  (*out)->id = atomic_fetch_add_explicit(&last_id, 1, memory_order_relaxed) + 1;
  return 0;
}

void fut_ctxvar_free(fut_ctxvar_t *var) {
  fut__free(var);
}

static const struct fut__ctx_cell *find(const fut_ctxvar_t *var) {
  for (const struct fut__ctx_cell *c = *current_slot(); c; c = c->next)
    if (c->var == var->id)
      return c;
  return NULL;
}

void *fut_ctxvar_get(const fut_ctxvar_t *var) {
  if (!var)
    return NULL;
  const struct fut__ctx_cell *c = find(var);
  return c ? c->value : var->dflt;
}

bool fut_ctxvar_isset(const fut_ctxvar_t *var) {
  return var && find(var);
}

int fut_ctxvar_set(fut_ctxvar_t *var, void *value) {
  if (!var)
    return fut__error(-EINVAL, "fut_ctxvar_set: NULL variable");
  struct fut__ctx_cell **slot = current_slot();
  struct fut__ctx_cell *head = *slot;
  /* A head cell of this variable that nobody else shares may be updated
   * in place: keeps a loop of sets from growing the list. */
  if (head && head->var == var->id &&
      atomic_load_explicit(&head->refs, memory_order_acquire) == 1) {
    head->value = value;
    return 0;
  }
  struct fut__ctx_cell *c = fut__malloc(sizeof *c);
  if (!c)
    return fut__error(-ENOMEM, "fut_ctxvar_set: out of memory");
  atomic_init(&c->refs, 1);
  c->var = var->id;
  c->value = value;
  c->next = head; /* takes over the slot's reference */
  *slot = c;
  /* A task's first value: its loop now has a context the callbacks
   * scheduled there may capture (the task layer drops the count when the
   * task goes, as for a task created with a context). */
  struct fut__task *t;
  if (!head && (t = fut__task_running()) &&
      slot == (struct fut__ctx_cell **)&t->sync_ctx)
    fut__ctx_live_add(t->x.fut.loop, 1);
  if (slot == &thread_ctx && !head) {
    pthread_once(&thread_key_once, thread_key_init);
    if (have_key)
      pthread_setspecific(thread_key, &thread_key); /* any non-NULL */
  }
  return 0;
}
