// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Openers: the kernel counts connects per (tuple, process) in the openers map
 * (an LRU); this keeps a ring of samples of each count, so that a pressure line
 * can name who opened the most connections to its tuple within the window.
 */
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "openers.h"

#define TOP_PROCESSES  5
#define OPENER_SAMPLES 16

struct opener {
	struct opener_key key; /* first: the tree's key */
	struct opener_val val;
	__u64 t[OPENER_SAMPLES], c[OPENER_SAMPLES];
	unsigned int head, len;
	bool seen;
};

struct openers {
	void *tree; /* tsearch(3), by key */
	__u64 window_ns;
	/* made at a check's first line, for all its lines: the openers in key order,
	 * so by tuple first */
	void **sorted;
	size_t nsorted;
	bool have_view;
};

static int opener_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct opener_key));
}

int openers_new(struct openers **out, __u64 window_ns)
{
	struct openers *o = calloc(1, sizeof(*o));

	if (!o)
		return -ENOMEM;
	o->window_ns = window_ns;
	*out = o;
	return 0;
}

void openers_free(struct openers *o)
{
	if (!o)
		return;
	openers_view_free(o);
	tdestroy(o->tree, free);
	free(o);
}

int openers_read(struct openers *os, int fd, __u64 now)
{
	struct opener_key *keys = NULL;
	struct opener_val *vals = NULL;
	void **all;
	size_t n = 0, nall;
	int err;

	openers_view_free(os); /* it points into the tree, which changes now */
	err = map_read_all(fd, sizeof(*keys), sizeof(*vals), (void **)&keys, (void **)&vals, &n);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		struct opener *o, **found = tfind(&keys[i], &os->tree, opener_cmp);

		if (found) {
			o = *found;
		} else {
			o = calloc(1, sizeof(*o));
			if (!o)
				break;
			o->key = keys[i];
			if (!tsearch(o, &os->tree, opener_cmp)) {
				free(o);
				break;
			}
		}
		o->val = vals[i];
		o->seen = true;
		/* a sample every eighth of the window: the ring spans two windows */
		if (!o->len || now - o->t[(o->head + OPENER_SAMPLES - 1) % OPENER_SAMPLES] >=
				       os->window_ns / 8) {
			o->t[o->head] = now;
			o->c[o->head] = vals[i].connects;
			o->head = (o->head + 1) % OPENER_SAMPLES;
			if (o->len < OPENER_SAMPLES)
				o->len++;
		}
	}
	free(keys);
	free(vals);
	/* entries the LRU map evicted */
	all = tree_items(os->tree, &nall);
	for (size_t i = 0; i < nall; i++) {
		struct opener *o = all[i];

		if (!o->seen) {
			tdelete(o, &os->tree, opener_cmp);
			free(o);
		} else {
			o->seen = false;
		}
	}
	free(all);
	return 0;
}

/* connects an opener made within the window */
static __u64 opener_recent(const struct opener *o, __u64 now, __u64 window_ns)
{
	__u64 base = 0;

	for (unsigned int i = 0; i < o->len; i++) {
		unsigned int j = (o->head + OPENER_SAMPLES - 1 - i) % OPENER_SAMPLES;

		if (o->t[j] + window_ns <= now) {
			base = o->c[j];
			break;
		}
	}
	return o->val.connects > base ? o->val.connects - base : 0;
}

static int recent_cmp(const void *a, const void *b)
{
	const __u64 *x = a, *y = b;

	return x[0] < y[0] ? 1 : x[0] > y[0] ? -1 : 0;
}

void openers_view_free(struct openers *o)
{
	free(o->sorted);
	o->sorted = NULL;
	o->nsorted = 0;
	o->have_view = false;
}

int openers_top_to_json(struct openers *os, struct report *r, const struct tuple_key *key,
			__u64 now, cJSON *ev)
{
	cJSON *arr = cJSON_AddArrayToObject(ev, "top_processes");
	size_t lo = 0, hi, n = 0, end;
	__u64(*top)[2];
	void **all;
	int err = 0;

	if (!os->have_view) {
		os->sorted = tree_items(os->tree, &os->nsorted);
		os->have_view = true;
	}
	all = os->sorted;
	/* the first opener of the tuple: the openers are in key order, tuple first */
	hi = os->nsorted;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(&((struct opener *)all[mid])->key.tuple, key, sizeof(*key)) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (end = lo; end < os->nsorted &&
		       !memcmp(&((struct opener *)all[end])->key.tuple, key, sizeof(*key));
	     end++)
		;
	top = calloc(end - lo + 1, sizeof(*top));
	if (!arr || !top) {
		free(top);
		return -ENOMEM;
	}
	for (size_t i = lo; i < end; i++) {
		__u64 recent = opener_recent(all[i], now, os->window_ns);

		if (recent) {
			top[n][0] = recent;
			top[n++][1] = i;
		}
	}
	qsort(top, n, sizeof(*top), recent_cmp);
	for (size_t i = 0; i < n && i < TOP_PROCESSES && !err; i++) {
		struct opener *o = all[top[i][1]];
		cJSON *proc = cJSON_CreateObject();

		if (!proc || !cJSON_AddItemToArray(arr, proc)) {
			cJSON_Delete(proc);
			err = -ENOMEM;
			break;
		}
		err = attribution_to_json(r, proc, o->key.tgid, 0, o->val.comm, o->val.uid, o->val.cgroup_id) ?:
			      ADD_NUM(proc, "connects", top[i][0]);
	}
	free(top);
	return err;
}
