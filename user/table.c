// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's copy of the "tuples" map. A check reads the tuples whose keys the
 * kernel sent to "changes" since the last one (bpf/maps.bpf.h), each with one
 * lookup, and finds them here by a hash of the key; the whole map is read only
 * at start-up and when "changes" had no room (repair). Each namespace's totals
 * that come from its tuples are kept up to date the same way.
 */
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "table.h"

static __u64 key_hash(const struct tuple_key *k)
{
	__u64 w[5], h = 0x9e3779b97f4a7c15ull;

	_Static_assert(sizeof(*k) == sizeof(w), "a tuple key is five words");
	memcpy(w, k, sizeof(w));
	for (int i = 0; i < 5; i++) {
		h ^= w[i];
		h *= 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	return h;
}

/* the slot that holds key, or the empty slot where it would go */
static size_t slot_of(const struct tuple_table *t, const struct tuple_key *key)
{
	size_t mask = t->nslot - 1, i = key_hash(key) & mask;

	while (t->slot[i] && memcmp(&t->list.items[t->slot[i] - 1].key, key, sizeof(*key)))
		i = (i + 1) & mask;
	return i;
}

struct tuple *table_find(const struct tuple_table *t, const struct tuple_key *key)
{
	size_t i;

	if (!t->nslot)
		return NULL;
	i = slot_of(t, key);
	return t->slot[i] ? &t->list.items[t->slot[i] - 1] : NULL;
}

static int rehash(struct tuple_table *t, size_t want)
{
	size_t n = 64;
	__u32 *slot;

	while (n < want * 2)
		n *= 2;
	if (n == t->nslot)
		return 0;
	slot = calloc(n, sizeof(*slot));
	if (!slot)
		return -ENOMEM;
	free(t->slot);
	t->slot = slot;
	t->nslot = n;
	for (size_t i = 0; i < t->list.len; i++)
		t->slot[slot_of(t, &t->list.items[i].key)] = i + 1;
	return 0;
}

static int ns_cmp(const void *a, const void *b)
{
	const struct ns_agg *x = a, *y = b;

	return x->inum < y->inum ? -1 : x->inum > y->inum;
}

static struct ns_agg *ns_get(struct tuple_table *t, __u32 inum, bool create)
{
	struct ns_agg probe = { .inum = inum }, *n, **found = tfind(&probe, &t->ns, ns_cmp);

	if (found || !create)
		return found ? *found : NULL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->inum = inum;
	found = tsearch(n, &t->ns, ns_cmp);
	if (!found || *found != n) {
		free(n);
		return found ? *found : NULL;
	}
	return n;
}

const struct ns_agg *table_ns(const struct tuple_table *t, __u32 inum)
{
	return ns_get((struct tuple_table *)t, inum, false);
}

/* a tuple enters (sign 1) or leaves (-1) its namespace's totals */
static int ns_account(struct tuple_table *t, const struct tuple *x, int sign)
{
	struct ns_agg *n = ns_get(t, x->key.netns, sign > 0);

	if (!n)
		return sign > 0 ? -ENOMEM : 0;
	n->tw_tuples += sign * x->time_wait;
	n->ntuples += sign;
	if (sign > 0 && x->val.port_range &&
	    (!n->port_range || x->val.last_connect_ns > n->newest_connect)) {
		n->port_range = x->val.port_range;
		n->tw_reuse = x->val.tw_reuse;
		n->newest_connect = x->val.last_connect_ns;
	}
	if (!n->ntuples) {
		tdelete(n, &t->ns, ns_cmp);
		free(n);
	}
	return 0;
}

static int change_note(struct tuple_table *t, const struct tuple *old, const struct tuple_key *key,
		       bool gone)
{
	struct table_change *c;

	if (t->nchanges == t->capchanges) {
		size_t cap = t->capchanges ? t->capchanges * 2 : 64;

		c = realloc(t->changes, cap * sizeof(*c));
		if (!c)
			return -ENOMEM;
		t->changes = c;
		t->capchanges = cap;
	}
	c = &t->changes[t->nchanges++];
	*c = (struct table_change){ .key = *key, .gone = gone, .made = !old };
	if (old) {
		c->old_util = old->utilization;
		c->old_capacity = old->capacity;
	}
	return 0;
}

static void table_drop(struct tuple_table *t, const struct tuple_key *key);

/* key's new reading (val), or its removal (val NULL) */
static int table_set(struct tuple_table *t, const struct tuple_key *key,
		     const struct tuple_val *val)
{
	struct tuple fresh = { .key = *key }, *have = table_find(t, key);
	int err;

	err = change_note(t, have, key, !val);
	if (err)
		return err;
	t->version++;
	if (have)
		ns_account(t, have, -1);
	if (!val) {
		if (have)
			table_drop(t, key);
		return 0;
	}
	fresh.val = *val;
	tuple_finish(&fresh);
	if (have) {
		*have = fresh;
		return ns_account(t, have, 1);
	}
	if ((t->list.len + 1) * 2 > t->nslot && (err = rehash(t, t->list.len + 1)))
		return err;
	err = tuple_list_push(&t->list, &fresh);
	if (err)
		return err;
	t->slot[slot_of(t, key)] = t->list.len;
	t->list.seen = t->list.len;
	return ns_account(t, &fresh, 1);
}

/* the item and its slot go; the namespace totals are the caller's */
static void table_drop(struct tuple_table *t, const struct tuple_key *key)
{
	size_t mask = t->nslot - 1, hole, i, home;
	__u32 idx, last;

	if (!t->nslot)
		return;
	hole = slot_of(t, key);
	if (!t->slot[hole])
		return;
	idx = t->slot[hole] - 1;
	/* backward-shift deletion: no tombstones */
	for (i = (hole + 1) & mask; t->slot[i]; i = (i + 1) & mask) {
		home = key_hash(&t->list.items[t->slot[i] - 1].key) & mask;
		if (((i - home) & mask) >= ((i - hole) & mask)) {
			t->slot[hole] = t->slot[i];
			hole = i;
		}
	}
	t->slot[hole] = 0;
	last = t->list.len - 1;
	if (idx != last) {
		t->list.items[idx] = t->list.items[last];
		t->slot[slot_of(t, &t->list.items[idx].key)] = idx + 1;
	}
	t->list.len--;
	t->list.seen = t->list.len;
	t->version++;
}

void table_remove(struct tuple_table *t, const struct tuple_key *key)
{
	struct tuple *have = table_find(t, key);

	if (!have)
		return;
	ns_account(t, have, -1);
	table_drop(t, key);
}

static void table_swap(struct tuple_table *t, size_t i, size_t j)
{
	struct tuple tmp;
	size_t si, sj;

	if (i == j)
		return;
	/* the slots first: slot_of() matches a slot by the item it points at, before it moves */
	si = slot_of(t, &t->list.items[i].key);
	sj = slot_of(t, &t->list.items[j].key);
	tmp = t->list.items[i];
	t->list.items[i] = t->list.items[j];
	t->list.items[j] = tmp;
	t->slot[si] = j + 1;
	t->slot[sj] = i + 1;
}

/* heap of the n best so far, the least of them at the root */
static void sift_down(const struct tuple *items, __u32 *h, size_t n, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1;
		__u32 x;

		if (c >= n)
			return;
		if (c + 1 < n && tuple_order_cmp(&items[h[c + 1]], &items[h[c]]) > 0)
			c++;
		if (tuple_order_cmp(&items[h[c]], &items[h[i]]) <= 0)
			return;
		x = h[c];
		h[c] = h[i];
		h[i] = x;
		i = c;
	}
}

int table_top(struct tuple_table *t, size_t n)
{
	const struct tuple *items = t->list.items;
	struct tuple_key *keys;
	size_t len = t->list.len;
	bool moved = false;
	__u32 *h;

	n = n < len ? n : len;
	if (!n)
		return 0;
	h = malloc(n * sizeof(*h));
	keys = malloc(n * sizeof(*keys));
	if (!h || !keys) {
		free(h);
		free(keys);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		h[i] = i;
	for (size_t i = n / 2; i-- > 0;)
		sift_down(items, h, n, i);
	for (size_t i = n; i < len; i++) {
		if (tuple_order_cmp(&items[i], &items[h[0]]) >= 0)
			continue;
		h[0] = i;
		sift_down(items, h, n, 0);
	}
	tuple_index_sort(&t->list, h, n);
	/* by key: each swap moves what a later index points at */
	for (size_t i = 0; i < n; i++)
		keys[i] = items[h[i]].key;
	for (size_t i = 0; i < n; i++) {
		size_t j = t->slot[slot_of(t, &keys[i])] - 1;

		if (j != i) {
			table_swap(t, i, j);
			moved = true;
		}
	}
	free(keys);
	free(h);
	t->version += moved;
	return 0;
}

static void ns_free_all(struct tuple_table *t)
{
	tdestroy(t->ns, free);
	t->ns = NULL;
}

int table_read_all(struct tuple_table *t, int map_fd)
{
	int err;

	/* the old reading goes first: two of them at 65,536 tuples would double the memory */
	t->list.len = t->list.seen = 0;
	err = tuple_list_read(map_fd, NULL, &t->list);
	if (err) {
		t->list.len = t->list.seen = 0;
		if (t->slot)
			memset(t->slot, 0, t->nslot * sizeof(*t->slot));
		ns_free_all(t);
		return err;
	}
	ns_free_all(t);
	t->nchanges = 0;
	t->all_changed = true;
	t->version++;
	err = rehash(t, t->list.len);
	if (!err && t->list.len)
		memset(t->slot, 0, t->nslot * sizeof(*t->slot));
	for (size_t i = 0; !err && i < t->list.len; i++) {
		t->slot[slot_of(t, &t->list.items[i].key)] = i + 1;
		err = ns_account(t, &t->list.items[i], 1);
	}
	return err;
}

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct tuple_key));
}

int table_read_keys(struct tuple_table *t, int map_fd, const struct tuple_key *keys, size_t n)
{
	struct tuple_key *sorted = n ? malloc(n * sizeof(*sorted)) : NULL;
	struct tuple_val val;
	int err = 0;

	if (!n)
		return 0;
	if (!sorted)
		return -ENOMEM;
	/* a key may come twice: once read is enough */
	memcpy(sorted, keys, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), key_cmp);
	for (size_t i = 0; i < n && !err; i++) {
		if (i && !memcmp(&sorted[i], &sorted[i - 1], sizeof(*sorted)))
			continue;
		if (!bpf_map_lookup_elem(map_fd, &sorted[i], &val))
			err = table_set(t, &sorted[i], &val);
		else if (errno == ENOENT)
			err = table_find(t, &sorted[i]) ? table_set(t, &sorted[i], NULL) : 0;
		else
			err = -errno;
	}
	free(sorted);
	return err;
}

struct ns_walk {
	void (*fn)(const struct ns_agg *, void *);
	void *arg;
};

static __thread struct ns_walk ns_walk_now;

static void ns_visit(const void *node, VISIT which, int depth)
{
	(void)depth;
	if (which == postorder || which == leaf)
		ns_walk_now.fn(*(const struct ns_agg *const *)node, ns_walk_now.arg);
}

void table_ns_each(const struct tuple_table *t, void (*fn)(const struct ns_agg *, void *),
		   void *arg)
{
	ns_walk_now = (struct ns_walk){ fn, arg };
	twalk(t->ns, ns_visit);
}

void table_changes_clear(struct tuple_table *t)
{
	t->nchanges = 0;
	t->all_changed = false;
}

void table_free(struct tuple_table *t)
{
	if (!t)
		return;
	tuple_list_free(&t->list);
	free(t->slot);
	free(t->changes);
	ns_free_all(t);
	memset(t, 0, sizeof(*t));
}
