// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Bounded lines from a BPF hash map of exact counts (cadence.h): the first at
 * once, then at most one a second per key while it goes on, each with the
 * count since the previous line. The kernel counts; this only decides when a
 * line is due, and takes quiet keys out of the map so that it does not fill.
 */
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "ephport.h"
#include "cadence.h"

static struct cadence *cad(const struct cadence_set *s, void *rec)
{
	return (struct cadence *)((char *)rec + s->ops->cad_off);
}

void *cadence_find(const struct cadence_set *s, const void *key)
{
	void **found = tfind(key, &s->tree, s->ops->cmp);

	return found ? *found : NULL;
}

void *cadence_get(struct cadence_set *s, const void *key)
{
	void *rec = cadence_find(s, key), **found;

	if (rec)
		return rec;
	rec = calloc(1, s->ops->rec_size);
	if (!rec)
		return NULL;
	memcpy(rec, key, s->ops->key_size);
	found = tsearch(rec, &s->tree, s->ops->cmp);
	if (!found || *found != rec) {
		free(rec);
		return found ? *found : NULL;
	}
	return rec;
}

static void line(struct cadence_set *s, void *rec, const void *val, __u64 now)
{
	struct cadence *c = cad(s, rec);

	s->ops->emit(s->ctx, rec, val);
	/* counted as reported either way: a line lost is in lines_dropped, not sent twice */
	c->reported = s->ops->count(val);
	c->line_ns = now;
}

/* one entry of the map, read at now; final: the agent stops, report what is left */
static void update(struct cadence_set *s, void *rec, const void *val, __u64 now, bool final)
{
	struct cadence *c = cad(s, rec);
	__u64 n = s->ops->count(val);

	if (n != c->count) {
		c->count = n;
		c->change_ns = now;
		if (s->ops->grew)
			s->ops->grew(s->ctx, rec, val);
	}
	if (n > c->reported && (final || !c->line_ns || now - c->line_ns >= CADENCE_LINE_NS))
		line(s, rec, val, now);
}

int cadence_notice(struct cadence_set *s, const void *key, __u64 now)
{
	_Alignas(8) char val[CADENCE_VAL_MAX];
	void *rec;

	if (bpf_map_lookup_elem(s->fd, key, val))
		return 0; /* already reported and forgotten */
	rec = cadence_get(s, key);
	if (!rec)
		return -ENOMEM;
	update(s, rec, val, now, false);
	return 0;
}

/*
 * Quiet for a while and all reported: out of the map. Its copy is taken out
 * and checked at once, so that a count that came meanwhile is not lost.
 */
static void forget(struct cadence_set *s, void *rec, const void *key, __u64 now)
{
	struct cadence *c = cad(s, rec);
	_Alignas(8) char val[CADENCE_VAL_MAX];

	if (bpf_map_lookup_and_delete_elem(s->fd, key, val))
		return;
	if (s->ops->count(val) > c->reported)
		line(s, rec, val, now);
	if (s->ops->forget && !s->ops->forget(s->ctx, rec)) {
		memset(c, 0, sizeof(*c));
		return;
	}
	tdelete(rec, &s->tree, s->ops->cmp);
	free(rec);
}

int cadence_drain(struct cadence_set *s, __u64 now, bool final)
{
	const struct cadence_ops *o = s->ops;
	char *keys = NULL, *vals = NULL;
	size_t n = 0;
	int err;

	err = map_read_all(s->fd, o->key_size, o->val_size, (void **)&keys, (void **)&vals, &n);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		const void *key = keys + i * o->key_size, *val = vals + i * o->val_size;
		void *rec = cadence_get(s, key);
		struct cadence *c;

		if (!rec) {
			err = -ENOMEM;
			break;
		}
		update(s, rec, val, now, final);
		c = cad(s, rec);
		if (!final && o->count(val) == c->reported && now - c->change_ns >= CADENCE_IDLE_NS)
			forget(s, rec, key, now);
	}
	free(keys);
	free(vals);
	return err;
}

struct walk_arg {
	void (*fn)(const void *rec, void *arg);
	void *arg;
};

static void walk_one(const void *node, VISIT which, void *arg)
{
	struct walk_arg *w = arg;

	if (which == postorder || which == leaf)
		w->fn(*(void *const *)node, w->arg);
}

void cadence_walk(const struct cadence_set *s, void (*fn)(const void *rec, void *arg), void *arg)
{
	struct walk_arg w = { fn, arg };

	twalk_r(s->tree, walk_one, &w);
}

struct prune_arg {
	bool (*drop)(const void *rec, void *arg);
	void *arg;
	void **gone;
	size_t n, cap;
	bool oom;
};

static void prune_one(const void *rec, void *arg)
{
	struct prune_arg *p = arg;

	if (p->oom || !p->drop(rec, p->arg))
		return;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		void **g = realloc(p->gone, cap * sizeof(*g));

		if (!g) {
			p->oom = true; /* the rest at the next prune */
			return;
		}
		p->gone = g;
		p->cap = cap;
	}
	p->gone[p->n++] = (void *)rec;
}

void cadence_prune(struct cadence_set *s, bool (*drop)(const void *rec, void *arg), void *arg)
{
	struct prune_arg p = { .drop = drop, .arg = arg };

	/* gathered first: a tree is not changed while it is walked */
	cadence_walk(s, prune_one, &p);
	for (size_t i = 0; i < p.n; i++) {
		tdelete(p.gone[i], &s->tree, s->ops->cmp);
		free(p.gone[i]);
	}
	free(p.gone);
}

void cadence_free(struct cadence_set *s)
{
	tdestroy(s->tree, free);
	s->tree = NULL;
}
