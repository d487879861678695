// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Connects the guard bound to a --spread source, from the kernel's exact
 * counts per (chosen tuple, cgroup) in the "spreads" map: a connect_spread line
 * at once when a key is first spread to (the kernel sends a notice), then at
 * most one a second while it goes on, each with the count since the previous
 * (cadence.c, as the failure lines). A key quiet for a while leaves the map so
 * that it does not fill; its count stays here, for query and /metrics, until
 * its chosen tuple is forgotten.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cadence.h"
#include "guard.h"
#include "spread.h"
#include "table.h"

struct spread_rec {
	struct spread_key key; /* first: the tree's key */
	struct cadence cad;
	__u64 base; /* counts of the key's earlier entries, out of the map since */
};

struct spreads {
	struct cadence_set set;
	struct guard_info guard;
	struct report *report;
	__u64 lines;
};

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct spread_key));
}

static __u64 spread_count(const void *val)
{
	return ((const struct spread_val *)val)->count;
}

static int add_addr(cJSON *obj, const char *name, __u16 family, const __u8 addr[16])
{
	char s[EPH_ADDRSTRLEN];

	if (addr_format(family, addr, s, sizeof(s)))
		return -EINVAL;
	return cJSON_AddStringToObject(obj, name, s) ? 0 : -ENOMEM;
}

static void spread_emit(void *ctx, void *rec, const void *val)
{
	struct spreads *s = ctx;
	const struct spread_rec *e = rec;
	const struct spread_val *v = val;
	const struct spread_key *k = &e->key;
	cJSON *ev = report_new(s->report, "connect_spread");
	int err = 0;

	if (!ev) {
		report_emit(s->report, NULL);
		return;
	}
	err |= ADD_NUM(ev, "count", v->count - e->cad.reported);
	err |= cJSON_AddStringToObject(ev, "mode", guard_mode_name(s->guard.mode)) ? 0 : -ENOMEM;
	err |= ADD_NUM(ev, "spread_at", s->guard.spread_at);
	err |= attribution_to_json(s->report, ev, v->tgid, v->tid, v->comm, v->uid, k->cgroup_id);
	err |= tuple_key_to_json(&k->tuple, true, ev);
	err |= add_addr(ev, "from_saddr", k->tuple.family, v->from_saddr);
	err |= ADD_NUM(ev, "from_usage", v->from_usage < 0 ? 0 : v->from_usage);
	if (err) {
		cJSON_Delete(ev);
		report_emit(s->report, NULL);
	} else {
		report_emit(s->report, ev);
		s->lines++;
	}
}

/* the entry left the map: its count stays, and a new entry counts on from it */
static bool spread_forget(void *ctx, void *rec)
{
	struct spread_rec *e = rec;

	(void)ctx;
	e->base += e->cad.reported;
	return false;
}

static const struct cadence_ops spread_ops = {
	.key_size = sizeof(struct spread_key),
	.val_size = sizeof(struct spread_val),
	.rec_size = sizeof(struct spread_rec),
	.cad_off = offsetof(struct spread_rec, cad),
	.cmp = key_cmp,
	.count = spread_count,
	.emit = spread_emit,
	.forget = spread_forget,
};

int spreads_new(struct spreads **out, int fd, struct report *r)
{
	struct spreads *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->set = (struct cadence_set){ .ops = &spread_ops, .ctx = s, .fd = fd };
	s->report = r;
	*out = s;
	return 0;
}

void spreads_free(struct spreads *s)
{
	if (!s)
		return;
	cadence_free(&s->set);
	free(s);
}

void spreads_guard(struct spreads *s, const struct guard_info *g)
{
	s->guard = *g;
}

int spreads_notice(struct spreads *s, const struct spread_key *k, __u64 now)
{
	return cadence_notice(&s->set, k, now);
}

int spreads_drain(struct spreads *s, __u64 now, bool final)
{
	return cadence_drain(&s->set, now, final);
}

__u64 spreads_lines(const struct spreads *s)
{
	return s->lines;
}

/* out of the map (nothing counting in it) and its chosen tuple forgotten */
static bool spread_gone(const void *rec, void *arg)
{
	const struct spread_rec *e = rec;

	return !e->cad.count && !table_find(arg, &e->key.tuple);
}

void spreads_prune(struct spreads *s, const struct tuple_table *t)
{
	cadence_prune(&s->set, spread_gone, (void *)t);
}

struct gather {
	const struct tuple_filter *f;
	struct spread_count *c;
	size_t n, cap;
	bool oom;
};

static void gather_one(const void *rec, void *arg)
{
	const struct spread_rec *e = rec;
	struct gather *g = arg;
	struct tuple t = { .key = e->key.tuple };

	if (g->oom || (g->f && !filter_match(g->f, &t)) || !(e->base + e->cad.count))
		return;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 64;
		struct spread_count *c = realloc(g->c, cap * sizeof(*c));

		if (!c) {
			g->oom = true;
			return;
		}
		g->c = c;
		g->cap = cap;
	}
	g->c[g->n++] = (struct spread_count){ .key = e->key, .count = e->base + e->cad.count };
}

static int most_first(const void *a, const void *b)
{
	const struct spread_count *x = a, *y = b;

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return key_cmp(&x->key, &y->key);
}

int spreads_read(const struct spreads *s, const struct tuple_filter *f, struct spread_count **out,
		 size_t *n)
{
	struct gather g = { .f = f };

	cadence_walk(&s->set, gather_one, &g);
	if (g.oom) {
		free(g.c);
		return -ENOMEM;
	}
	if (g.n) /* none spread: g.c is NULL, which qsort() may not take */
		qsort(g.c, g.n, sizeof(*g.c), most_first);
	*out = g.c;
	*n = g.n;
	return 0;
}

int spreads_sums(const struct spreads *s, const struct tuple_list *l, __u64 *per_tuple,
		 struct netns_count **by_netns, size_t *nnetns, __u64 *total)
{
	struct spread_count *c = NULL;
	size_t n = 0;
	int err = spreads_read(s, NULL, &c, &n);

	if (!err)
		err = tuple_counts_sum(c, n, sizeof(*c), offsetof(struct spread_count, count), l,
				       per_tuple, by_netns, nnetns, total);
	free(c);
	return err;
}

/* "addresses" and "spread_at" into obj: [] and null without --spread */
static int settings_members(const struct guard_info *g, cJSON *obj)
{
	cJSON *arr = cJSON_AddArrayToObject(obj, "addresses");

	if (!arr || (g->nspread ? ADD_NUM(obj, "spread_at", g->spread_at) :
				  !cJSON_AddNullToObject(obj, "spread_at")))
		return -ENOMEM;
	for (__u32 i = 0; i < g->nspread && i < MAX_SPREAD; i++) {
		char s[EPH_ADDRSTRLEN];
		cJSON *str;

		if (addr_format(g->spread[i].family, g->spread[i].addr, s, sizeof(s)))
			return -EINVAL;
		str = cJSON_CreateString(s);
		if (!str || !cJSON_AddItemToArray(arr, str)) {
			cJSON_Delete(str);
			return -ENOMEM;
		}
	}
	return 0;
}

int spread_settings_to_json(const struct guard_info *g, const char *name, cJSON *obj)
{
	cJSON *o;

	if (!g->nspread)
		return cJSON_AddNullToObject(obj, name) ? 0 : -ENOMEM;
	o = cJSON_AddObjectToObject(obj, name);
	return o ? settings_members(g, o) : -ENOMEM;
}

int spreads_to_json(const struct guard_info *g, const struct spread_count *c, size_t n, cJSON *obj)
{
	cJSON *arr = cJSON_AddArrayToObject(obj, "connects");

	if (!arr || settings_members(g, obj))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		cJSON *o = tuple_cgroup_item(arr, &c[i].key.tuple, c[i].key.cgroup_id);

		if (!o || ADD_NUM(o, "count", c[i].count))
			return -ENOMEM;
	}
	return 0;
}

struct dest_probe {
	const struct tuple_key *t;
	bool active;
};

/* a key to t's destination that the map still holds: spread within CADENCE_IDLE_NS or so */
static void dest_active(const void *rec, void *arg)
{
	const struct spread_rec *e = rec;
	struct dest_probe *p = arg;
	const struct tuple_key *k = &e->key.tuple;

	if (e->cad.count && k->netns == p->t->netns && k->dport == p->t->dport &&
	    k->family == p->t->family && !memcmp(k->daddr, p->t->daddr, 16))
		p->active = true;
}

void spreads_state(const struct spreads *s, const struct tuple *t, const struct ns_summary *ns,
		   const struct tuple_table *table, struct spread_state *st)
{
	const struct guard_info *g = &s->guard;
	__u32 deny_ppm = (__u32)llround(g->deny_at * PPM);
	struct dest_probe p = { .t = &t->key };

	*st = (struct spread_state){ .addrs = -1 };
	if (!g->nspread || g->mode == GUARD_OFF || !ns || !ns->has_info)
		return;
	st->addrs = 0;
	for (__u32 i = 0; i < g->nspread && i < MAX_SPREAD; i++) {
		struct tuple x = { .key = t->key };
		const struct tuple *have;

		if (!(ns->info.spread_local & (1u << i)) || g->spread[i].family != t->key.family)
			continue;
		st->addrs++;
		memcpy(x.key.saddr, g->spread[i].addr, 16);
		have = table_find(table, &x.key);
		if (!have) {
			/* no socket to it yet: its whole capacity */
			tuple_capacity(&x, ns);
			have = &x;
		}
		st->below += have->usage < (__s64)line_usage(have->capacity, deny_ppm);
	}
	cadence_walk(&s->set, dest_active, &p);
	st->active = p.active;
}
