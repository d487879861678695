// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The agent's copy of the tuples: table_top() keeps every tuple findable, in one slot each. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "table.h"

#define NTUPLES 100
#define NSLOT	256

/*
 * A table of NTUPLES tuples as table.c would hold them, made through table_find()
 * alone (the hash is table.c's own): each item goes into the one free slot from
 * which table_find() finds it, the first free one along its key's probe.
 */
static void table_make(struct tuple_table *t)
{
	memset(t, 0, sizeof(*t));
	t->list.items = calloc(NTUPLES, sizeof(*t->list.items));
	t->slot = calloc(NSLOT, sizeof(*t->slot));
	cr_assert(t->list.items && t->slot);
	t->list.len = t->list.cap = t->list.seen = NTUPLES;
	t->nslot = NSLOT;
	for (__u32 i = 0; i < NTUPLES; i++) {
		struct tuple *x = &t->list.items[i];
		bool placed = false;

		x->key.family = AF_INET;
		x->key.netns = 7;
		x->key.dport = 1000 + i;
		for (size_t p = 0; p < NSLOT && !placed; p++) {
			if (t->slot[p])
				continue;
			t->slot[p] = i + 1;
			placed = table_find(t, &x->key) == x;
			if (!placed)
				t->slot[p] = 0;
		}
		cr_assert(placed, "tuple %u has no slot", i);
	}
}

/* every tuple found where it is, and no slot besides theirs */
static void assert_consistent(const struct tuple_table *t)
{
	size_t used = 0;

	for (size_t p = 0; p < t->nslot; p++)
		used += t->slot[p] != 0;
	cr_assert_eq(used, t->list.len, "%zu slots used for %zu tuples", used, t->list.len);
	for (size_t i = 0; i < t->list.len; i++)
		cr_assert_eq(table_find(t, &t->list.items[i].key), &t->list.items[i], "tuple %zu",
			     i);
}

Test(table, top_moves_tuples_and_keeps_them_findable)
{
	struct tuple_table t;

	table_make(&t);
	assert_consistent(&t);
	srand(16);
	/* the order changes between checks, as usage does: each time other tuples move */
	for (int round = 0; round < 50; round++) {
		for (size_t i = 0; i < t.list.len; i++)
			t.list.items[i].utilization = (rand() % 1000) / 1000.0;
		cr_assert_eq(table_top(&t, 40), 0);
		assert_consistent(&t);
		for (size_t i = 1; i < 40; i++)
			cr_assert_geq(t.list.items[i - 1].utilization, t.list.items[i].utilization);
	}
	table_free(&t);
}
