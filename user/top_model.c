// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ephport top's model: the agent's answers in, the lines of a frame out (top.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "top.h"

static const char *const sort_names[TOP_SORT_N] = { "utilization", "connects/s", "TIME_WAIT",
						    "destination" };
static const char *const levels[] = { "ok", "warning", "critical", "exhausted" };

const char *top_sort_name(enum top_sort s)
{
	return s < TOP_SORT_N ? sort_names[s] : "?";
}

static int level_of(const char *name)
{
	for (size_t i = 0; name && i < sizeof(levels) / sizeof(levels[0]); i++)
		if (!strcmp(name, levels[i]))
			return (int)i;
	return -1;
}

static double num(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *obj, const char *name)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, name));

	return s ? s : "";
}

/* "addr:port", IPv6 in brackets */
static void endpoint(char *buf, size_t len, const char *addr, double port)
{
	snprintf(buf, len, strchr(addr, ':') ? "[%s]:%.0f" : "%s:%.0f", addr, port);
}

static int key_cmp(const void *a, const void *b)
{
	const struct top_row *x = a, *y = b;
	int c;

	if (x->netns != y->netns)
		return x->netns < y->netns ? -1 : 1;
	c = strcmp(x->src, y->src);
	return c ? c : strcmp(x->dst, y->dst);
}

static int grow(void **items, size_t *cap, size_t want, size_t size)
{
	void *p;

	if (want <= *cap)
		return 0;
	p = realloc(*items, want * size);
	if (!p)
		return -ENOMEM;
	*items = p;
	*cap = want;
	return 0;
}

static int take_tuples(struct top_state *s, const cJSON *arr)
{
	const cJSON *t;
	size_t n = 0;

	if (grow((void **)&s->rows, &s->cap_rows, cJSON_GetArraySize(arr) + 1, sizeof(*s->rows)))
		return -ENOMEM;
	cJSON_ArrayForEach(t, arr)
	{
		struct top_row *r = &s->rows[n++];
		const cJSON *lv = cJSON_GetObjectItemCaseSensitive(t, "level");

		memset(r, 0, sizeof(*r));
		r->netns = (__u64)num(t, "netns");
		snprintf(r->src, sizeof(r->src), "%s", str(t, "saddr"));
		endpoint(r->dst, sizeof(r->dst), str(t, "daddr"), num(t, "dport"));
		r->usage = (__u64)num(t, "usage");
		r->capacity = (__u64)num(t, "capacity");
		r->time_wait = (__u64)num(t, "time_wait");
		r->connects = (__u64)num(t, "connects");
		r->failed = (__u64)num(t, "failed_connects");
		r->util = num(t, "utilization");
		r->level = lv ? level_of(cJSON_GetStringValue(lv)) : -1;
		r->rate = -1;
		r->full_in = -1;
	}
	s->nrows = n;
	return 0;
}

/* rates and the time to full, from the answer before */
static void take_rates(struct top_state *s)
{
	double dt = s->at - s->prev_at;

	for (size_t i = 0; s->prev && dt > 0 && i < s->nrows; i++) {
		struct top_row *r = &s->rows[i];
		const struct top_row *p = bsearch(r, s->prev, s->nprev, sizeof(*r), key_cmp);
		double grows;

		if (!p)
			continue;
		if (r->connects >= p->connects)
			r->rate = (double)(r->connects - p->connects) / dt;
		grows = ((double)r->usage - (double)p->usage) / dt;
		if (r->capacity && r->usage >= r->capacity)
			r->full_in = 0;
		else if (grows > 0)
			r->full_in = (double)(r->capacity - r->usage) / grows;
	}
}

static int keep_previous(struct top_state *s)
{
	struct top_row *p = malloc((s->nrows + 1) * sizeof(*p));

	if (!p)
		return -ENOMEM;
	memcpy(p, s->rows, s->nrows * sizeof(*p));
	qsort(p, s->nrows, sizeof(*p), key_cmp);
	free(s->prev);
	s->prev = p;
	s->nprev = s->nrows;
	s->prev_at = s->at;
	return 0;
}

static int take_namespaces(struct top_state *s, const cJSON *arr)
{
	const cJSON *n;
	size_t k = 0;

	if (grow((void **)&s->ns, &s->cap_ns, cJSON_GetArraySize(arr) + 1, sizeof(*s->ns)))
		return -ENOMEM;
	cJSON_ArrayForEach(n, arr)
	{
		struct top_ns *ns = &s->ns[k++];
		const cJSON *range = cJSON_GetObjectItemCaseSensitive(n, "port_range");
		const char *path = str(n, "path");

		memset(ns, 0, sizeof(*ns));
		ns->netns = (__u64)num(n, "netns");
		snprintf(ns->name, sizeof(ns->name), "%s", *path ? path : "-");
		if (cJSON_GetArraySize(range) == 2) {
			ns->low = (__u32)cJSON_GetArrayItem(range, 0)->valuedouble;
			ns->high = (__u32)cJSON_GetArrayItem(range, 1)->valuedouble;
		}
		ns->tw_reuse = (int)num(n, "tw_reuse");
		ns->worst_level = -1;
	}
	s->nns = k;
	for (size_t i = 0; i < s->nrows; i++)
		for (size_t j = 0; j < s->nns; j++) {
			struct top_ns *ns = &s->ns[j];

			if (ns->netns != s->rows[i].netns)
				continue;
			ns->tuples++;
			if (s->rows[i].util >= ns->worst) {
				ns->worst = s->rows[i].util;
				ns->worst_level = s->rows[i].level;
			}
			break;
		}
	return 0;
}

/* an alerting line in one line of text */
static void recent_text(const cJSON *e, char *buf, size_t len)
{
	const char *ts = str(e, "ts"), *ev = str(e, "event");
	char clock[9] = "--:--:--", dst[56];

	if (strlen(ts) >= 19)
		memcpy(clock, ts + 11, 8);
	endpoint(dst, sizeof(dst), str(e, "daddr"), num(e, "dport"));
	if (!strcmp(ev, "pressure") || !strcmp(ev, "nat_pressure")) {
		snprintf(buf, len, "%s %.0f %s %s %s%s%s > %s %.0f/%.0f", clock, num(e, "netns"),
			 ev, str(e, "level"), str(e, "protocol"), *str(e, "protocol") ? " " : "",
			 str(e, "saddr"), dst, num(e, "usage"), num(e, "capacity"));
	} else {
		const char *pod = str(e, "pod_uid"), *ctr = str(e, "container_id");

		snprintf(buf, len, "%s %.0f %s %s[%.0f] > %s x%.0f%s%.12s%s%s", clock,
			 num(e, "netns"), ev, str(e, "comm"), num(e, "pid"), dst, num(e, "count"),
			 *ctr ? " container " : "", ctr, *pod ? " pod " : "", pod);
	}
}

static void take_recent(struct top_state *s, const cJSON *arr)
{
	int n = cJSON_GetArraySize(arr), first = n > TOP_RECENT ? n - TOP_RECENT : 0;

	s->nrecent = 0;
	for (int i = first; i < n; i++)
		recent_text(cJSON_GetArrayItem(arr, i), s->recent[s->nrecent++],
			    sizeof(s->recent[0]));
}

int top_take(struct top_state *s, const char *json, double now)
{
	cJSON *doc = cJSON_Parse(json);
	const cJSON *tuples = cJSON_GetObjectItemCaseSensitive(doc, "tuples"), *nat, *n;
	int err = -EINVAL;

	if (!cJSON_IsArray(tuples))
		goto out;
	s->at = now;
	err = take_tuples(s, tuples);
	if (err)
		goto out;
	take_rates(s);
	err = keep_previous(s);
	if (!err)
		err = take_namespaces(s, cJSON_GetObjectItemCaseSensitive(doc, "netns"));
	if (err)
		goto out;
	s->agent_pid = (long)num(doc, "agent_pid");
	s->map_tuples = (__u64)num(cJSON_GetObjectItemCaseSensitive(doc, "stats"), "tuples");
	nat = cJSON_GetObjectItemCaseSensitive(doc, "nat");
	s->nat_tuples = s->nat_hot = 0;
	cJSON_ArrayForEach(n, nat)
	{
		s->nat_tuples++;
		s->nat_hot += level_of(str(n, "level")) > 0;
	}
	take_recent(s, cJSON_GetObjectItemCaseSensitive(doc, "recent"));
out:
	cJSON_Delete(doc);
	return err;
}

void top_free(struct top_state *s)
{
	free(s->rows);
	free(s->ns);
	free(s->prev);
	memset(s, 0, sizeof(*s));
}
