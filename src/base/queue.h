/* libfuture — the one intrusive list: a circular doubly linked list with a
 * sentinel head, embedded in the objects it links (no allocation).
 *
 * A node that is not in a list points to itself (or is all zeroes, as
 * calloc leaves it), so "is it linked?" is one cheap test and removing a
 * node twice is harmless.  Not thread-safe: the owner of the list
 * serialises access (the loop thread, or a lock the owner names). */
#ifndef FUT_BASE_QUEUE_H
#define FUT_BASE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

struct fut__qnode {
  struct fut__qnode *prev, *next; /* self (or NULL) when not linked */
};

/* An empty list head, or an unlinked node. */
static inline void fut__q_init(struct fut__qnode *n) {
  n->prev = n->next = n;
}

static inline bool fut__q_empty(const struct fut__qnode *head) {
  return head->next == head;
}

static inline bool fut__q_linked(const struct fut__qnode *n) {
  return n->next != NULL && n->next != n;
}

static inline void fut__q_insert_tail(struct fut__qnode *head,
                                      struct fut__qnode *n) {
  n->prev = head->prev;
  n->next = head;
  head->prev->next = n;
  head->prev = n;
}

static inline void fut__q_insert_head(struct fut__qnode *head,
                                      struct fut__qnode *n) {
  n->next = head->next;
  n->prev = head;
  head->next->prev = n;
  head->next = n;
}

/* Unlinks n if it is linked and leaves it unlinked. */
static inline void fut__q_remove(struct fut__qnode *n) {
  if (fut__q_linked(n)) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
  }
  fut__q_init(n);
}

/* The first node, or NULL when the list is empty. */
static inline struct fut__qnode *fut__q_first(const struct fut__qnode *head) {
  return head->next == head ? NULL : head->next;
}

/* The object of type `type` whose member `field` is node n. */
#define fut__q_data(n, type, field)                                            \
  ((type *)(void *)((char *)(n)-offsetof(type, field)))

/* Iterates n over the list; the body must not unlink n (take the first
 * node in a loop to drain instead). */
#define FUT__Q_FOREACH(n, head)                                                \
  for ((n) = (head)->next; (n) != (head); (n) = (n)->next)

#endif
