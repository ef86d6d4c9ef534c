/* Task groups (asyncio.TaskGroup, taskgroups.py of Python 3.12+ with the
 * later fixes: gh-128550 done callbacks always scheduled, gh-155433 a
 * remaining outer cancel kept) and their error groups.
 *
 * State: the group keeps its pending tasks in a list of links, each link
 * holding a reference to its task and a done callback on it.  A task's
 * done callback removes its link, records a failure and, for the first
 * one, aborts the group (cancels the tasks) and cancels the parent.
 * fut_taskgroup_exit waits on a plain future that the last done callback
 * completes, in a loop, because the wait itself may be cancelled several
 * times. */
#include "sync/groups.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* ---- error groups ------------------------------------------------------ */

struct eg_entry {
  int code;
  char *msg;                /* fut__malloc'd, or NULL */
  fut_error_group_t *child; /* a reference, or NULL */
};

struct fut_error_group {
  atomic_uint refs;
  size_t n, cap;
  struct eg_entry *e;
};

static fut_error_group_t *eg_new(void) {
  fut_error_group_t *eg = fut__calloc(1, sizeof *eg);
  if (eg)
    atomic_init(&eg->refs, 1);
  return eg;
}

/* Appends (code, copy of msg, reference to child); -ENOMEM leaves eg
 * unchanged. */
static int eg_add(fut_error_group_t *eg, int code, const char *msg,
                  const fut_error_group_t *child) {
  if (eg->n == eg->cap) {
    size_t cap = eg->cap ? eg->cap * 2 : 4;
    struct eg_entry *e = fut__realloc(eg->e, cap * sizeof *e);
    if (!e)
      return -ENOMEM;
    eg->e = e;
    eg->cap = cap;
  }
  char *copy = NULL;
  if (msg && !(copy = fut__strdup(msg)))
    return -ENOMEM;
  eg->e[eg->n++] = (struct eg_entry){code, copy, fut_error_group_ref(child)};
  return 0;
}

size_t fut_error_group_count(const fut_error_group_t *eg) {
  return eg ? eg->n : 0;
}

int fut_error_group_code(const fut_error_group_t *eg, size_t i) {
  return eg && i < eg->n ? eg->e[i].code : 0;
}

const char *fut_error_group_message(const fut_error_group_t *eg, size_t i) {
  return eg && i < eg->n ? eg->e[i].msg : NULL;
}

const fut_error_group_t *fut_error_group_child(const fut_error_group_t *eg,
                                               size_t i) {
  return eg && i < eg->n ? eg->e[i].child : NULL;
}

bool fut_error_group_contains(const fut_error_group_t *eg, int code) {
  for (size_t i = 0; eg && i < eg->n; i++)
    if (eg->e[i].code == code || fut_error_group_contains(eg->e[i].child, code))
      return true;
  return false;
}

static size_t eg_format(const fut_error_group_t *eg, char *buf, size_t size,
                        size_t at, int depth) {
  for (size_t i = 0; eg && i < eg->n; i++) {
    const struct eg_entry *e = &eg->e[i];
    char line[512];
    int k = snprintf(line, sizeof line, "%*s%s: %s%s%s\n", depth * 2, "",
                     fut_err_name(e->code), fut_strerror(e->code),
                     e->msg ? ": " : "", e->msg ? e->msg : "");
    if (k < 0)
      continue;
    size_t len = (size_t)k < sizeof line ? (size_t)k : sizeof line - 1;
    if (at < size) {
      size_t room = size - at - 1;
      memcpy(buf + at, line, len < room ? len : room);
      buf[at + (len < room ? len : room)] = '\0';
    }
    at += len;
    at = eg_format(e->child, buf, size, at, depth + 1);
  }
  return at;
}

size_t fut_error_group_format(const fut_error_group_t *eg, char *buf,
                              size_t size) {
  if (buf && size)
    buf[0] = '\0';
  return eg_format(eg, buf, buf ? size : 0, 0, 0);
}

fut_error_group_t *fut_error_group_ref(const fut_error_group_t *eg) {
  fut_error_group_t *m = (fut_error_group_t *)eg;
  if (m)
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
  return m;
}

void fut_error_group_unref(fut_error_group_t *eg) {
  if (!eg || atomic_fetch_sub_explicit(&eg->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (size_t i = 0; i < eg->n; i++) {
    fut__free(eg->e[i].msg);
    fut_error_group_unref(eg->e[i].child);
  }
  fut__free(eg->e);
  fut__free(eg);
}

const fut_error_group_t *fut_task_error_group(const fut_t *task) {
  if (!fut_is_task(task))
    return NULL;
  const struct fut__task *t = fut__task_of(task);
  return t->cold ? t->cold->sync_group : NULL;
}

/* ---- task groups ------------------------------------------------------- */

struct link {
  struct fut__qnode node;  /* in g->tasks while the task is pending */
  fut_t *task;             /* a reference */
  struct fut_taskgroup *g; /* NULL once the group forgot the task */
};

struct fut_taskgroup {
  fut_loop_t *loop;             /* the parent's, once entered */
  fut_t *parent;                /* a reference to the parent task, once
                                   entered; dropped at exit */
  struct fut__qnode tasks;      /* links of pending tasks, oldest first */
  size_t ntasks;                /* length of tasks */
  fut_error_group_t *errors;    /* failures so far, or NULL */
  fut_t *on_completed;          /* what exit awaits, or NULL */
  bool entered;                 /* enter succeeded (never cleared) */
  bool exiting;                 /* exit began */
  bool exited;                  /* exit returned */
  bool aborting;                /* the tasks were cancelled: refuse more */
  bool parent_cancel_requested; /* the group cancelled its parent */
  bool cancel_on_enter;         /* fut_taskgroup_cancel came before enter */
  bool lost_errors;             /* an error could not be recorded (memory) */
};

int fut_taskgroup_new(fut_taskgroup_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_taskgroup_new: NULL out");
  fut_taskgroup_t *g = fut__calloc(1, sizeof *g);
  if (!(*out = g))
    return fut__error(-ENOMEM, "fut_taskgroup_new: out of memory");
  fut__q_init(&g->tasks);
  return 0;
}

size_t fut_taskgroup_size(const fut_taskgroup_t *g) {
  return g ? g->ntasks : 0;
}

const fut_error_group_t *fut_taskgroup_errors(const fut_taskgroup_t *g) {
  return g && g->errors && g->errors->n ? g->errors : NULL;
}

static void record(fut_taskgroup_t *g, int code, const char *msg,
                   const fut_error_group_t *child) {
  if (!g->errors && !(g->errors = eg_new())) {
    g->lost_errors = true;
    return;
  }
  if (eg_add(g->errors, code, msg, child)) {
    /* Keep the code at least: the group must not look clean. */
    if (eg_add(g->errors, code, NULL, NULL))
      g->lost_errors = true;
  }
}

static bool has_errors(const fut_taskgroup_t *g) {
  return (g->errors && g->errors->n) || g->lost_errors;
}

static void abort_tasks(fut_taskgroup_t *g) {
  g->aborting = true;
  struct fut__qnode *n;
  FUT__Q_FOREACH(n, &g->tasks) {
    struct link *l = fut__q_data(n, struct link, node);
    if (!fut_done(l->task))
      fut_cancel(l->task, NULL);
  }
}

static void on_task_done(fut_t *task, void *arg) {
  struct link *l = arg;
  fut_taskgroup_t *g = l->g;
  if (!g) { /* the group was freed without exit */
    fut_unref(l->task);
    fut__free(l);
    return;
  }
  fut__q_remove(&l->node);
  g->ntasks--;
  l->task = NULL;
  fut__free(l);
  if (g->on_completed && !g->ntasks && !fut_done(g->on_completed))
    fut_set_result(g->on_completed, NULL, NULL);
  if (fut_cancelled(task)) {
    fut_unref(task);
    return;
  }
  const char *msg = NULL;
  int code = fut_exception(task, &msg);
  if (code == 0) {
    fut_unref(task);
    return;
  }
  const fut_error_group_t *child =
      code == FUT_E_GROUP ? fut_task_error_group(task) : NULL;
  record(g, code, msg, child);
  if (fut_done(g->parent)) {
    /* asyncio handles it though it should not happen. */
    fut__report_exception(g->loop,
                          "a TaskGroup task failed after its parent task "
                          "completed",
                          code, task, NULL, msg);
  } else if (!g->aborting && !g->parent_cancel_requested) {
    abort_tasks(g);
    g->parent_cancel_requested = true;
    fut_cancel(g->parent, NULL);
  }
  fut_unref(task);
}

int fut_taskgroup_enter(fut_taskgroup_t *g) {
  if (!g)
    return fut__error(-EINVAL, "fut_taskgroup_enter: NULL group");
  struct fut__task *t = fut__task_current("fut_taskgroup_enter");
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (g->entered)
    return fut__error(FUT_E_INVALID_STATE,
                      "fut_taskgroup_enter: the group was entered already");
  /* The record a failing exit keeps its error group in: taken now, so
   * that exit never loses the group for want of memory. */
  if (!fut__task_cold(t))
    return fut__error(-ENOMEM, "fut_taskgroup_enter: out of memory");
  g->entered = true;
  g->parent = fut_ref(&t->x.fut);
  g->loop = fut_get_loop(g->parent);
  if (g->cancel_on_enter)
    fut_taskgroup_cancel(g);
  return 0;
}

int fut_taskgroup_create_task(fut_taskgroup_t *g, fut_task_fn fn, void *arg,
                              const fut_task_opts_t *opts, fut_t **out) {
  if (out)
    *out = NULL;
  if (!g || !fn)
    return fut__error(-EINVAL, "fut_taskgroup_create_task: NULL %s",
                      !g ? "group" : "function");
  if (!g->entered)
    return fut__error(FUT_E_INVALID_STATE,
                      "fut_taskgroup_create_task: the group was not entered");
  if (g->exited || (g->exiting && !g->ntasks))
    return fut__error(FUT_E_GROUP_SHUTDOWN,
                      "fut_taskgroup_create_task: the group is finished");
  if (g->aborting)
    return fut__error(FUT_E_GROUP_SHUTDOWN,
                      "fut_taskgroup_create_task: the group is shutting "
                      "down");
  struct link *l = fut__calloc(1, sizeof *l);
  if (!l)
    return fut__error(-ENOMEM, "fut_taskgroup_create_task: out of memory");
  fut_t *t;
  int err = fut_create_task(g->loop, fn, arg, opts, &t);
  if (err) {
    fut__free(l);
    return err;
  }
  /* Always through the loop, even when t is done (gh-128550). */
  if ((err = fut__add_done_callback(t, on_task_done, l))) {
    fut_cancel(t, NULL); /* it never started: it ends without running */
    fut_unref(t);
    fut__free(l);
    return err;
  }
  l->task = out ? fut_ref(t) : t; /* the group's reference */
  l->g = g;
  fut__q_insert_tail(&g->tasks, &l->node);
  g->ntasks++;
  if (out)
    *out = t;
  return 0;
}

void fut_taskgroup_cancel(fut_taskgroup_t *g) {
  if (!g)
    return;
  if (!g->entered) {
    g->cancel_on_enter = true;
    return;
  }
  if (g->exited || (g->exiting && !g->ntasks))
    return;
  if (!g->aborting) {
    abort_tasks(g);
    if (g->parent && !g->parent_cancel_requested) {
      g->parent_cancel_requested = true;
      fut_cancel(g->parent, NULL);
    }
  }
}

int fut_taskgroup_exit(fut_taskgroup_t *g, int err) {
  if (!g)
    return fut__error(-EINVAL, "fut_taskgroup_exit: NULL group");
  struct fut__task *t = fut__task_current("fut_taskgroup_exit");
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (!g->entered || g->exiting || &t->x.fut != g->parent)
    return fut__error(FUT_E_INVALID_STATE, "fut_taskgroup_exit: %s",
                      !g->entered  ? "the group was not entered"
                      : g->exiting ? "the group was exited already"
                                   : "not called by the group's parent task");
  g->exiting = true;
  bool propagate_cancel = err == -ECANCELED;
  if (err && !g->aborting)
    abort_tasks(g);
  bool pending_cancel = false;
  while (g->ntasks) {
    if (!g->on_completed) {
      int e = fut_new(g->loop, &g->on_completed);
      if (e) {
        /* No memory to wait properly: yield until the tasks are done. */
        if (fut_yield() == -ECANCELED)
          goto cancelled;
        continue;
      }
    }
    if (fut_await(g->on_completed, NULL) == -ECANCELED) {
    cancelled:
      pending_cancel = true;
      if (!g->aborting) {
        /* The parent is being cancelled from outside the group. */
        propagate_cancel = true;
        abort_tasks(g);
      }
    }
    fut_unref(g->on_completed);
    g->on_completed = NULL;
  }
  if (g->parent_cancel_requested) {
    if (fut_task_uncancel(g->parent) == 0)
      propagate_cancel = false;
    else if (!propagate_cancel)
      propagate_cancel = pending_cancel; /* gh-155433 */
  }
  int rc = 0;
  if (propagate_cancel && !has_errors(g)) {
    rc = -ECANCELED;
  } else {
    if (err && err != -ECANCELED) /* a nested group's code carries it */
      record(g, err, NULL,
             err == FUT_E_GROUP && t->cold ? t->cold->sync_group : NULL);
    if (has_errors(g)) {
      /* Keep an outer cancel pending, its count stable. */
      if (fut_task_cancelling(g->parent)) {
        fut_task_uncancel(g->parent);
        fut_cancel(g->parent, NULL);
      }
      /* Kept in the task's cold fields, made at enter. */
      struct fut__task_cold *cold = g->errors ? t->cold : NULL;
      if (cold) {
        FUT__ASSERT(fut__sync_hooks_installed()); /* releases it */
        fut_error_group_unref(cold->sync_group);
        cold->sync_group = fut_error_group_ref(g->errors);
      }
      rc = fut__error(FUT_E_GROUP,
                      "fut_taskgroup_exit: %zu unhandled error(s) in a "
                      "TaskGroup",
                      fut_error_group_count(g->errors));
    }
  }
  g->exited = true;
  fut_unref(g->parent);
  g->parent = NULL;
  return rc;
}

void fut_taskgroup_free(fut_taskgroup_t *g) {
  if (!g)
    return;
  struct fut__qnode *n;
  while ((n = fut__q_first(&g->tasks))) {
    struct link *l = fut__q_data(n, struct link, node);
    fut__q_remove(&l->node);
    l->g = NULL; /* its done callback releases it */
    fut_cancel(l->task, NULL);
  }
  fut_unref(g->on_completed);
  fut_unref(g->parent);
  fut_error_group_unref(g->errors);
  fut__free(g);
}
