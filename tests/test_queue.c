/* White-box test of the one intrusive list (src/base/queue.h) against a
 * reference model: random inserts at either end and random removals of
 * linked and unlinked nodes, checking after every step the order both
 * ways, the length and each node's "linked" answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "base/queue.h"

#define N 64
#define STEPS 20000

struct item {
  int id;
  struct fut__qnode node;
};

static uint64_t rng = 0x243f6a8885a308d3u;
static uint32_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)rng;
}

/* The model: ids in list order. */
static int model[N];
static int model_len;

static int model_find(int id) {
  for (int i = 0; i < model_len; i++)
    if (model[i] == id)
      return i;
  return -1;
}

static void check(const struct fut__qnode *head, struct item *items) {
  int i = 0;
  const struct fut__qnode *n;
  FUT__Q_FOREACH(n, head) {
    assert_true(i < model_len);
    assert_int_equal(fut__q_data(n, struct item, node)->id, model[i]);
    i++;
  }
  assert_int_equal(i, model_len);
  /* Backwards through prev. */
  for (n = head->prev, i = model_len - 1; n != head; n = n->prev, i--)
    assert_int_equal(fut__q_data(n, struct item, node)->id, model[i]);
  assert_int_equal(i, -1);
  assert_int_equal(fut__q_empty(head), model_len == 0);
  const struct fut__qnode *first = fut__q_first(head);
  if (model_len == 0)
    assert_null(first);
  else
    assert_int_equal(fut__q_data(first, struct item, node)->id, model[0]);
  for (int id = 0; id < N; id++)
    assert_int_equal(fut__q_linked(&items[id].node), model_find(id) >= 0);
}

static void test_queue_matches_model(void **state) {
  (void)state;
  struct item items[N];
  struct fut__qnode head;
  fut__q_init(&head);
  /* Half the nodes start zeroed (as calloc leaves them), half initialised:
   * both read as unlinked. */
  memset(items, 0, sizeof items);
  for (int id = 0; id < N; id++) {
    items[id].id = id;
    if (id % 2)
      fut__q_init(&items[id].node);
  }
  check(&head, items);
  for (int step = 0; step < STEPS; step++) {
    int id = (int)(next_rand() % N);
    int at = model_find(id);
    switch (next_rand() % 3) {
    case 0: /* insert at the tail, if not linked */
      if (at >= 0)
        break;
      fut__q_insert_tail(&head, &items[id].node);
      model[model_len++] = id;
      break;
    case 1: /* insert at the head, if not linked */
      if (at >= 0)
        break;
      fut__q_insert_head(&head, &items[id].node);
      memmove(model + 1, model, sizeof *model * (size_t)model_len);
      model[0] = id;
      model_len++;
      break;
    default: /* remove, linked or not (removing twice is harmless) */
      fut__q_remove(&items[id].node);
      if (at >= 0) {
        memmove(model + at, model + at + 1,
                sizeof *model * (size_t)(model_len - at - 1));
        model_len--;
      }
      break;
    }
    check(&head, items);
  }
  /* Drain by taking the first node, as the library's close paths do. */
  struct fut__qnode *n;
  while ((n = fut__q_first(&head))) {
    assert_int_equal(fut__q_data(n, struct item, node)->id, model[0]);
    fut__q_remove(n);
    memmove(model, model + 1, sizeof *model * (size_t)--model_len);
  }
  assert_int_equal(model_len, 0);
  check(&head, items);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_queue_matches_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
