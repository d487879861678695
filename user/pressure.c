// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Pressure: a level per tuple (ok, warning, critical, exhausted) from its
 * utilization and its failing connects, with hysteresis so that a tuple hovering
 * at a line does not flap, and a "pressure" event on each change carrying what
 * an on-call engineer needs: the counts, the rate, a forecast, who is opening
 * the connections, and a hint chosen from those numbers (series.c and hints.c
 * work those out).
 */
#include <errno.h>
#include <math.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "hints.h"
#include "openers.h"
#include "series.h"
#include "pressure.h"
#include "table.h"

#define NSEC_PER_SEC 1e9

static const char *const level_names[] = { "ok", "warning", "critical", "exhausted" };

const char *level_name(enum level l)
{
	return l <= LEVEL_EXHAUSTED ? level_names[l] : "unknown";
}

/* the level utilization alone gives, each threshold lowered by `lower` */
static enum level level_of(const struct alert_cfg *c, double util, double lower)
{
	if (util >= c->crit - lower)
		return LEVEL_CRITICAL;
	if (util >= c->warn - lower)
		return LEVEL_WARNING;
	return LEVEL_OK;
}

enum level level_next(const struct alert_cfg *c, enum level cur, double util, bool failing,
		      __u64 now, __u64 *hot_ns)
{
	enum level raw = failing ? LEVEL_EXHAUSTED : level_of(c, util, 0);
	enum level near = level_of(c, util, c->margin);

	if (raw >= cur || near >= cur) {
		/* at its level, above it, or within the margin below it */
		*hot_ns = now;
		return raw > cur ? raw : cur;
	}
	if (now - *hot_ns < c->hold_ns)
		return cur;
	/* the lower level starts its own hold now */
	*hot_ns = now;
	return near;
}

/* the agent's state: tsearch(3) trees keyed by the first bytes of each entry */

struct tracked {
	struct tuple_key key; /* first: the tree's key */
	enum level level;
	__u64 hot_ns;
	__u64 failed; /* failed_connects at the previous check */
	bool failing; /* a notice arrived since the previous check */
	bool have_failed;
	double util; /* at the latest check */
	struct series series;
};

struct pressure {
	struct alert_cfg cfg;
	struct report *report;
	void *tracked;
	struct openers *openers;
	size_t active;
	/* made at a check's first line, for all its lines: however many tuples change
	 * level at once, a line looks up its neighbours and openers, never scans */
	const struct tuple **near; /* tuples in use by namespace, family, dport, daddr */
	size_t nnear;
	size_t emitted; /* lines of the check under way */
	bool have_views;
	spread_state_fn spread_fn;
	void *spread_ctx;
};

static int tracked_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct tuple_key));
}

void pressure_spread_hook(struct pressure *p, spread_state_fn fn, void *ctx)
{
	p->spread_fn = fn;
	p->spread_ctx = ctx;
}

int pressure_new(struct pressure **out, const struct alert_cfg *cfg, struct report *r)
{
	struct pressure *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->cfg = *cfg;
	p->report = r;
	if (openers_new(&p->openers, cfg->window_ns)) {
		free(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

void pressure_free(struct pressure *p)
{
	if (!p)
		return;
	tdestroy(p->tracked, free);
	openers_free(p->openers);
	free(p);
}

size_t pressure_active(const struct pressure *p)
{
	return p->active;
}

static struct tracked *tracked_get(struct pressure *p, const struct tuple_key *key, bool create)
{
	struct tracked *t, **found = tfind(key, &p->tracked, tracked_cmp);

	if (found || !create)
		return found ? *found : NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->key = *key;
	found = tsearch(t, &p->tracked, tracked_cmp);
	if (!found || *found != t) {
		free(t);
		return found ? *found : NULL;
	}
	return t;
}

enum level pressure_level(struct pressure *p, const struct tuple_key *key)
{
	struct tracked *t = tracked_get(p, key, false);

	return t ? t->level : LEVEL_OK;
}

void pressure_failing(struct pressure *p, const struct tuple_key *key)
{
	struct tracked *t = tracked_get(p, key, true);

	if (t)
		t->failing = true;
}

int pressure_openers(struct pressure *p, int fd, __u64 now)
{
	return openers_read(p->openers, fd, now);
}

static int add_rounded_or_null(cJSON *obj, const char *name, double v, double scale)
{
	if (isnan(v) || isinf(v))
		return cJSON_AddNullToObject(obj, name) ? 0 : -ENOMEM;
	return ADD_NUM(obj, name, round(v * scale) / scale);
}

/* the order of the neighbour view; with_daddr false: by namespace, family and dport only */
static int near_cmp(const struct tuple_key *a, const struct tuple_key *b, bool with_daddr)
{
	if (a->netns != b->netns)
		return a->netns < b->netns ? -1 : 1;
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	if (a->dport != b->dport)
		return a->dport < b->dport ? -1 : 1;
	return with_daddr ? memcmp(a->daddr, b->daddr, 16) : 0;
}

static int near_sort_cmp(const void *a, const void *b)
{
	return near_cmp(&(*(const struct tuple *const *)a)->key,
			&(*(const struct tuple *const *)b)->key, true);
}

/* the first of the view not below k (upper: not at or below k) */
static size_t near_bound(const struct pressure *p, const struct tuple_key *k, bool with_daddr,
			 bool upper)
{
	size_t lo = 0, hi = p->nnear;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = near_cmp(&p->near[mid]->key, k, with_daddr);

		if (c < 0 || (upper && c == 0))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* the views a check's lines share: made once, at its first line (O(n log n)) */
static void views_make(struct pressure *p, const struct tuple_list *l)
{
	size_t n = 0;

	p->have_views = true;
	p->near = malloc((l->len + 1) * sizeof(*p->near));
	for (size_t i = 0; p->near && i < l->len; i++)
		if (l->items[i].usage > 0)
			p->near[n++] = &l->items[i];
	p->nnear = n;
	if (p->near)
		qsort(p->near, n, sizeof(*p->near), near_sort_cmp);
}

static void views_free(struct pressure *p)
{
	free(p->near);
	p->near = NULL;
	p->nnear = 0;
	p->have_views = false;
	openers_view_free(p->openers);
}

/*
 * Sources in use towards a tuple's daddr:dport, and destination addresses in use
 * on its dport, in its namespace; the hints only ask whether each is one or more.
 */
static void neighbours(const struct pressure *p, const struct tuple *t, size_t *sources,
		       size_t *destinations)
{
	size_t from, to;

	if (!p->near) {
		/* no memory for the view: not known, and no hint says there is only one */
		*sources = *destinations = 2;
		return;
	}
	from = near_bound(p, &t->key, true, false);
	to = near_bound(p, &t->key, true, true);
	*sources = to - from;
	*destinations = near_bound(p, &t->key, false, true) - near_bound(p, &t->key, false, false) >
					*sources ?
				2 :
				1;
}

static void pressure_emit(struct pressure *p, struct tracked *tr, enum level prev,
			  const struct tuple *t, const struct ns_summary *ns,
			  const struct tuple_list *l, __u64 now)
{
	const struct sample *base = series_base(&tr->series, now, p->cfg.window_ns);
	struct hint_input in = { .t = t, .tw_reuse = -1, .spread.addrs = -1 };
	struct hint hints[MAX_HINTS];
	cJSON *ev = report_new(p->report, "pressure"), *range, *arr, *h;
	size_t nhints;
	double slope;
	int err = 0;

	if (!ev) {
		report_emit(p->report, NULL);
		return;
	}
	in.port_range = t->val.port_range ? t->val.port_range : (ns ? ns->port_range : 0);
	if (ns && (ns->has_info || ns->port_range))
		in.tw_reuse = ns->tw_reuse;
	else if (t->val.port_range)
		in.tw_reuse = t->val.tw_reuse;
	in.connects_per_s = series_rate(&tr->series, now, p->cfg.window_ns);
	if (base && t->val.bound_connects > base->bound_connects)
		in.bound_recent = t->val.bound_connects - base->bound_connects;
	if (!p->have_views)
		views_make(p, l);
	neighbours(p, t, &in.sources, &in.destinations);
	if (p->spread_fn)
		p->spread_fn(p->spread_ctx, t, ns, &in.spread);
	slope = series_slope(&tr->series, now, p->cfg.window_ns);
	nhints = hints_build(&in, hints, MAX_HINTS);

	err |= cJSON_AddStringToObject(ev, "level", level_name(tr->level)) ? 0 : -ENOMEM;
	err |= cJSON_AddStringToObject(ev, "previous_level", level_name(prev)) ? 0 : -ENOMEM;
	err |= tuple_to_json(t, ev);
	if (in.port_range && (range = cJSON_AddArrayToObject(ev, "port_range"))) {
		cJSON_AddItemToArray(range, cJSON_CreateNumber(PORT_LOW(in.port_range)));
		cJSON_AddItemToArray(range, cJSON_CreateNumber(PORT_HIGH(in.port_range)));
	} else {
		err |= cJSON_AddNullToObject(ev, "port_range") ? 0 : -ENOMEM;
	}
	err |= in.tw_reuse >= 0 ? ADD_NUM(ev, "tw_reuse", in.tw_reuse) :
				  (cJSON_AddNullToObject(ev, "tw_reuse") ? 0 : -ENOMEM);
	err |= add_rounded_or_null(ev, "connects_per_s", in.connects_per_s, 10);
	err |= add_rounded_or_null(ev, "seconds_to_exhaustion",
				   tr->level == LEVEL_EXHAUSTED ?
					   0 :
					   forecast_exhaustion(t->usage, t->capacity, slope),
				   10);
	err |= ADD_NUM(ev, "window_s", round(p->cfg.window_ns / NSEC_PER_SEC));
	err |= openers_top_to_json(p->openers, p->report, &t->key, now, ev);
	h = cJSON_AddObjectToObject(ev, "hint");
	arr = cJSON_AddArrayToObject(ev, "hints");
	err |= !h || !arr ? -ENOMEM : hint_to_json(&hints[0], h);
	for (size_t i = 0; i < nhints && arr; i++) {
		cJSON *o = cJSON_CreateObject();

		if (!o || !cJSON_AddItemToArray(arr, o) || hint_to_json(&hints[i], o))
			err = -ENOMEM;
	}
	if (err) {
		cJSON_Delete(ev);
		report_emit(p->report, NULL);
		return;
	}
	report_emit(p->report, ev);
}

/*
 * one tuple at one check; t is NULL for a tracked tuple no longer in the map.
 * A level change found when may_emit is false waits, with what it was made of,
 * for a check with time for its line.
 */
static void check_one(struct pressure *p, struct tracked *tr, const struct tuple *t,
		      struct ns_list *nl, const struct tuple_list *l, __u64 now, bool may_emit)
{
	struct tuple gone = { .key = tr->key };
	struct sample x = { .t_ns = now };
	enum level prev = tr->level, next;
	bool failing = tr->failing;
	__u64 hot = tr->hot_ns;

	if (!t) {
		t = &gone;
		tuple_capacity(&gone, ns_find(nl, gone.key.netns, false));
	}
	if (tr->have_failed && t->val.failed_connects > tr->failed)
		failing = true;
	tr->failed = t->val.failed_connects;
	tr->have_failed = true;
	x.usage = t->usage;
	x.connects = t->val.connects;
	x.bound_connects = t->val.bound_connects;
	series_add(&tr->series, &x);
	tr->util = t->utilization;
	next = level_next(&p->cfg, prev, t->utilization, failing, now, &hot);
	if (next != prev && !may_emit) {
		tr->failing = failing;
		return;
	}
	tr->failing = false;
	tr->hot_ns = hot;
	tr->level = next;
	if (next != prev) {
		pressure_emit(p, tr, prev, t, ns_find(nl, t->key.netns, false), l, now);
		p->emitted++;
	}
}

/* a tuple that changed starts being watched at a quarter of the warning line */
static int watch_if_near(struct pressure *p, const struct tuple *t)
{
	struct tracked *tr;

	if (t->utilization < p->cfg.warn / 4 || tracked_get(p, &t->key, false))
		return 0;
	tr = tracked_get(p, &t->key, true);
	if (!tr)
		return -ENOMEM;
	/* failures from before it was watched are not new */
	tr->failed = t->val.failed_connects;
	tr->have_failed = true;
	return 0;
}

int pressure_check(struct pressure *p, const struct tuple_table *tt, struct ns_list *nl, __u64 now,
		   bool every_tuple)
{
	/* watched from a quarter of the warning line: the rate and trend are known by then */
	double watch = p->cfg.warn / 4;
	const struct tuple_list *l = &tt->list;
	void **all;
	size_t nall;
	__u64 start;
	int err = 0;

	/* a tuple below the watch line that did not change, nor its capacity, is still below it */
	every_tuple |= tt->all_changed;
	if (every_tuple)
		for (size_t i = 0; i < l->len && !err; i++)
			err = watch_if_near(p, &l->items[i]);
	for (size_t i = 0; !every_tuple && i < tt->nchanges && !err; i++) {
		const struct tuple *t = table_find(tt, &tt->changes[i].key);

		if (t)
			err = watch_if_near(p, t);
	}
	if (err)
		return err;
	all = tree_items(p->tracked, &nall);
	start = mono_ns();
	p->active = 0;
	p->emitted = 0;
	for (size_t i = 0; i < nall; i++) {
		struct tracked *tr = all[i];
		/* lines for PRESSURE_LINES_NS at most, and one at least: the rest next time */
		bool may_emit = !p->emitted || mono_ns() - start < PRESSURE_LINES_NS;

		check_one(p, tr, table_find(tt, &tr->key), nl, l, now, may_emit);
		if (tr->level != LEVEL_OK) {
			p->active++;
		} else if (!tr->failing && tr->util < watch) {
			tdelete(tr, &p->tracked, tracked_cmp);
			free(tr);
		}
	}
	free(all);
	views_free(p);
	return 0;
}

/* levels[i]: the level of the table's tuple i; from the tuples being watched, the rest are ok */
void pressure_levels(struct pressure *p, const struct tuple_table *tt, __u8 *levels)
{
	size_t nall;
	void **all = tree_items(p->tracked, &nall);

	memset(levels, LEVEL_OK, tt->list.len);
	for (size_t i = 0; i < nall; i++) {
		const struct tracked *tr = all[i];
		const struct tuple *t = table_find(tt, &tr->key);

		if (t)
			levels[t - tt->list.items] = tr->level;
	}
	free(all);
}
