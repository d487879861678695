// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What "ephport query" prints, as the table or one JSON document. The agent
 * writes it (agent_query.c); at 65,536 tuples that is tens of megabytes, so
 * the tuples are written by hand (jsonw.c, and the table's own number
 * formatting) rather than through cJSON and printf.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cgroup.h"
#include "pressure.h"
#include "query.h"

static bool ns_wanted(const struct tuple_filter *f, const struct ns_summary *ns)
{
	return !f->netns_set || ns->inum == f->netns;
}

/* everything but the tuples, with cJSON: one object, its closing brace left off */
static char *json_head(const struct query_req *rq, const struct query_view *v)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *nsarr = cJSON_AddArrayToObject(doc, "netns");
	cJSON *stats = cJSON_AddObjectToObject(doc, "stats");
	cJSON *guard = cJSON_AddObjectToObject(doc, "guard");
	cJSON *denials = cJSON_AddArrayToObject(doc, "denials");
	cJSON *spread = cJSON_AddObjectToObject(doc, "spread");
	char *s = NULL;

	if (!doc || !nsarr || !stats || !guard || !denials || !spread ||
	    spreads_to_json(v->guard, v->spreads, v->nspreads, spread) ||
	    !cJSON_AddNumberToObject(doc, "agent_pid", v->agent) ||
	    stats_to_json(v->st, v->seen, stats) || guard_info_to_json(v->guard, guard) ||
	    guard_denials_to_json(v->denials, v->ndenials, denials) ||
	    nat_section_to_json(v, &rq->filter, doc))
		goto out;
	for (size_t i = 0; i < v->nl->len; i++) {
		cJSON *n;

		if (!ns_wanted(&rq->filter, &v->nl->items[i]))
			continue;
		n = cJSON_CreateObject();
		if (!n)
			goto out;
		cJSON_AddItemToArray(nsarr, n);
		if (ns_to_json(&v->nl->items[i], v->spread, v->nspread, n))
			goto out;
	}
	s = cJSON_PrintUnformatted(doc);
	if (s)
		s[strlen(s) - 1] = 0; /* the '}': the tuples come before it */
out:
	cJSON_Delete(doc);
	return s;
}

#define FLUSH_AT (1024 * 1024)
#define PREFETCH 8

static int flush(FILE *out, struct jsonw *w)
{
	if (w->oom)
		return -ENOMEM;
	if (w->len && fwrite(w->buf, 1, w->len, out) != w->len)
		return -EIO;
	w->len = 0;
	return 0;
}

/* "recent": the agent's latest alerting lines as written, oldest first (--netns applies) */
static void recent_to_json(struct jsonw *w, const struct query_req *rq, const struct query_view *v)
{
	const struct recent_line *l;
	bool first = true;

	jw_key(w, "recent");
	jw_raw(w, "[", 1);
	for (size_t i = 0; v->report && (l = report_recent(v->report, i)); i++) {
		if (rq->filter.netns_set && l->netns != rq->filter.netns)
			continue;
		if (!first)
			jw_raw(w, ",", 1);
		jw_raw(w, l->line, strlen(l->line));
		first = false;
	}
	jw_raw(w, "]", 1);
}

static int print_json(FILE *out, const struct query_req *rq, const struct query_view *v)
{
	char *head = json_head(rq, v);
	struct jsonw w = { 0 };
	int err = 0;

	if (!head)
		return -ENOMEM;
	jw_raw(&w, head, strlen(head));
	cJSON_free(head);
	w.comma = true; /* the head has members */
	jw_key(&w, "tuples");
	jw_open(&w, '[');
	for (size_t i = 0; i < v->norder && !err; i++) {
		/* most used first is no order in memory: the next ones are fetched ahead */
		if (i + PREFETCH < v->norder)
			__builtin_prefetch(&v->tuples->items[v->order[i + PREFETCH]]);
		jw_open(&w, '{');
		tuple_write_json(&v->tuples->items[v->order[i]], &w);
		if (v->levels)
			jw_str(&w, "level", level_name(v->levels[v->order[i]]));
		jw_close(&w, '}');
		if (w.len >= FLUSH_AT)
			err = flush(out, &w);
	}
	jw_close(&w, ']');
	recent_to_json(&w, rq, v);
	jw_raw(&w, "}\n", 2);
	if (!err)
		err = flush(out, &w);
	jw_free(&w);
	return err;
}

/* a table row built by hand: printf costs microseconds a row, and a host has 65,536 */
/* rows are gathered here and written 64 KiB at a time */
struct rows {
	char buf[65536];
	size_t len;
};

#define ROW_MAX 1024 /* longer than any row: 19 columns of at most 21 bytes, two addresses */

static void put(struct rows *r, const char *s, size_t n)
{
	n = n < sizeof(r->buf) - r->len ? n : sizeof(r->buf) - r->len;
	memcpy(r->buf + r->len, s, n);
	r->len += n;
}

static void pad(struct rows *r, size_t n)
{
	n = n < sizeof(r->buf) - r->len ? n : sizeof(r->buf) - r->len;
	memset(r->buf + r->len, ' ', n);
	r->len += n;
}

/* a column after one space: s (n bytes) left aligned (left) or right aligned in width w */
static void col(struct rows *r, const char *s, size_t n, size_t w, bool left)
{
	pad(r, 1 + (!left && n < w ? w - n : 0));
	put(r, s, n);
	if (left && n < w)
		pad(r, w - n);
}

/* v in decimal, ending just before end; returns where it starts */
static char *itoa_s(char *end, __s64 v)
{
	__u64 u = v < 0 ? -(__u64)v : (__u64)v;

	do {
		*--end = '0' + u % 10;
		u /= 10;
	} while (u);
	if (v < 0)
		*--end = '-';
	return end;
}

/* v right aligned in width w after one space, written in place from its last digit */
static void num(struct rows *r, __s64 v, size_t w)
{
	__u64 u = v < 0 ? -(__u64)v : (__u64)v;
	size_t n = (v < 0) + 1;
	char *p;

	for (__u64 x = u; x >= 10; x /= 10)
		n++;
	n = 1 + (n > w ? n : w);
	if (n > sizeof(r->buf) - r->len)
		return;
	p = r->buf + r->len + n;
	r->len += n;
	do {
		*--p = '0' + u % 10;
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	while (p > r->buf + r->len - n)
		*--p = ' ';
}

/* utilization as a percentage with one decimal, as "%6.1f" prints it */
static void percent(struct rows *r, double util)
{
	__s64 tenths = (__s64)(util * 1000 + (util >= 0 ? 0.5 : -0.5));
	char tmp[32], *end = tmp + sizeof(tmp), *p;

	*--end = '0' + (char)(tenths < 0 ? -tenths % 10 : tenths % 10);
	*--end = '.';
	p = itoa_s(end, tenths / 10);
	if (tenths < 0 && tenths > -10)
		*--p = '-';
	col(r, p, tmp + sizeof(tmp) - p, 6, false);
}

/* source and destination ([v6]:port) as the table shows them; their lengths */
static void endpoints(const struct tuple *t, char *src, size_t *srclen, char *dst, size_t *dstlen)
{
	char port[8], *end = port + sizeof(port), *q, *p = dst;

	*srclen = addr_put(t->key.family, t->key.saddr, src);
	if (t->key.family == AF_INET6)
		*p++ = '[';
	p += addr_put(t->key.family, t->key.daddr, p);
	if (t->key.family == AF_INET6)
		*p++ = ']';
	*p++ = ':';
	q = itoa_s(end, t->key.dport);
	memcpy(p, q, end - q);
	*dstlen = p + (end - q) - dst;
}

static int print_tuples(FILE *out, const struct query_view *v)
{
	char src[EPH_ADDRSTRLEN], dst[EPH_ADDRSTRLEN + 8];
	size_t wsrc = 3, wdst = 3, ns, nd;
	struct rows *r = malloc(sizeof(*r));

	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < v->norder; i++) {
		if (i + PREFETCH < v->norder)
			__builtin_prefetch(&v->tuples->items[v->order[i + PREFETCH]]);
		endpoints(&v->tuples->items[v->order[i]], src, &ns, dst, &nd);
		wsrc = ns > wsrc ? ns : wsrc;
		wdst = nd > wdst ? nd : wdst;
	}
	fprintf(out,
		"%-10s %-*s %-*s %6s %7s %8s %7s %8s %7s %6s %6s %7s %8s %7s %7s %8s %9s %7s\n",
		"NETNS", (int)wsrc, "SRC", (int)wdst, "DST", "UTIL%", "USAGE", "CAPACITY", "IN_USE",
		"SYN_SENT", "ESTAB", "FIN_W1", "FIN_W2", "CLOSE_W", "LAST_ACK", "CLOSING", "TIME_W",
		"TW_REUSE", "CONNECTS", "FAILED");
	r->len = 0;
	for (size_t i = 0; i < v->norder; i++) {
		const struct tuple *t = &v->tuples->items[v->order[i]];
		const __s32 *s = t->val.states;
		char id[24], *idend = id + sizeof(id), *idp = itoa_s(idend, t->key.netns);

		if (i + PREFETCH < v->norder)
			__builtin_prefetch(&v->tuples->items[v->order[i + PREFETCH]]);
		endpoints(t, src, &ns, dst, &nd);
		put(r, idp, idend - idp);
		pad(r, idend - idp < 10 ? 10 - (idend - idp) : 0);
		col(r, src, ns, wsrc, true);
		col(r, dst, nd, wdst, true);
		percent(r, t->utilization);
		num(r, t->usage, 7);
		num(r, t->capacity, 8);
		num(r, t->in_use, 7);
		num(r, s[EPH_TCP_SYN_SENT], 8);
		num(r, s[EPH_TCP_ESTABLISHED], 7);
		num(r, s[EPH_TCP_FIN_WAIT1], 6);
		num(r, s[EPH_TCP_FIN_WAIT2], 6);
		num(r, s[EPH_TCP_CLOSE_WAIT], 7);
		num(r, s[EPH_TCP_LAST_ACK], 8);
		num(r, s[EPH_TCP_CLOSING], 7);
		num(r, t->time_wait, 7);
		num(r, t->reusable, 8);
		num(r, (__s64)t->val.connects, 9);
		num(r, (__s64)t->val.failed_connects, 7);
		put(r, "\n", 1);
		if (r->len > sizeof(r->buf) - ROW_MAX || i + 1 == v->norder) {
			if (fwrite(r->buf, 1, r->len, out) != r->len) {
				free(r);
				return -EIO;
			}
			r->len = 0;
		}
	}
	free(r);
	return 0;
}

static void print_netns(FILE *out, const struct query_view *v, const struct tuple_filter *f)
{
	char range[16], reserved[12], reuse[4], pod[40];
	struct cgroup_ids ids;

	fprintf(out, "\n%-10s %-12s %8s %6s %8s %9s %9s %8s  %-36s %s\n", "NETNS", "PORT_RANGE",
		"RESERVED", "BOUND", "TW_REUSE", "TW_CLIENT", "TW_SERVER", "TW_OTHER", "POD",
		"PATH");
	for (size_t i = 0; i < v->nl->len; i++) {
		const struct ns_summary *ns = &v->nl->items[i];

		if (!ns_wanted(f, ns))
			continue;
		snprintf(range, sizeof(range), "-");
		snprintf(reuse, sizeof(reuse), "-");
		snprintf(reserved, sizeof(reserved), "-");
		if (ns->port_range) {
			snprintf(range, sizeof(range), "%u-%u", PORT_LOW(ns->port_range),
				 PORT_HIGH(ns->port_range));
			snprintf(reuse, sizeof(reuse), "%u", ns->tw_reuse);
		}
		if (ns->has_info)
			snprintf(reserved, sizeof(reserved), "%u", ns->info.reserved);
		/* the pod's UID; outside Kubernetes the short container id, as docker ps has it */
		ns_pod_ids(ns, &ids);
		if (ids.pod_uid[0])
			snprintf(pod, sizeof(pod), "%s", ids.pod_uid);
		else if (ids.container_id[0])
			snprintf(pod, sizeof(pod), "container:%.12s", ids.container_id);
		else
			snprintf(pod, sizeof(pod), "-");
		fprintf(out, "%-10u %-12s %8s %6u %8s %9lld %9lld %8lld  %-36s %s\n", ns->inum,
			range, reserved, ns->bound_in_range, reuse, (long long)ns->tw_tuples,
			(long long)ns->tw_server, (long long)ns->tw_other, pod,
			ns->has_info && ns->info.path[0] ? ns->info.path : "-");
	}
}

/* with --spread: the addresses local in each namespace ("-": none, or not read yet) */
static void print_spread_local(FILE *out, const struct query_view *v, const struct tuple_filter *f)
{
	char text[EPH_ADDRSTRLEN];

	if (!v->nspread)
		return;
	fprintf(out, "\n%-10s %s\n", "NETNS", "SPREAD_LOCAL");
	for (size_t i = 0; i < v->nl->len; i++) {
		const struct ns_summary *ns = &v->nl->items[i];
		const char *sep = "";

		if (!ns_wanted(f, ns))
			continue;
		fprintf(out, "%-10u ", ns->inum);
		for (size_t j = 0; ns_spread_next(ns, v->spread, v->nspread, &j, text); j++) {
			fprintf(out, "%s%s", sep, text);
			sep = ",";
		}
		fprintf(out, "%s\n", *sep ? "" : "-");
	}
}

static void print_guard(FILE *out, const struct query_view *v)
{
	const struct guard_info *g = v->guard;
	cJSON *arr;

	fprintf(out, "\nguard: %s", guard_mode_name(g->mode));
	if (g->mode == GUARD_OFF) {
		fprintf(out, "\n");
		return;
	}
	fprintf(out, " on %s, deny at %.2f, errno %s", g->root, g->deny_at,
		guard_errno_name(g->deny_errno));
	if (g->quota)
		fprintf(out, ", quota %u", g->quota);
	fprintf(out, "\n");
	arr = cJSON_CreateArray();
	if (!v->ndenials || !arr || guard_denials_to_json(v->denials, v->ndenials, arr)) {
		cJSON_Delete(arr);
		return;
	}
	fprintf(out, "%-10s %-39s %-46s %10s %-11s %9s\n", "NETNS", "SRC", "DST", "CGROUP_ID",
		"REASON", "DENIED");
	for (cJSON *d = arr->child; d; d = d->next) {
		char dst[64];

		snprintf(dst, sizeof(dst), "%s:%d", cJSON_GetObjectItem(d, "daddr")->valuestring,
			 cJSON_GetObjectItem(d, "dport")->valueint);
		fprintf(out, "%-10.0f %-39s %-46s %10.0f %-11s %9.0f\n",
			cJSON_GetObjectItem(d, "netns")->valuedouble,
			cJSON_GetObjectItem(d, "saddr")->valuestring, dst,
			cJSON_GetObjectItem(d, "cgroup_id")->valuedouble,
			cJSON_GetObjectItem(d, "reason")->valuestring,
			cJSON_GetObjectItem(d, "count")->valuedouble);
	}
	cJSON_Delete(arr);
}

/* the --spread settings, and the connects spread per (chosen source, destination, cgroup) */
static void print_spread(FILE *out, const struct query_view *v)
{
	const struct guard_info *g = v->guard;
	char s[EPH_ADDRSTRLEN], d[EPH_ADDRSTRLEN + 8];

	if (g->mode == GUARD_OFF || !g->nspread)
		return;
	fprintf(out, "spread: from %.2f over", g->spread_at);
	for (__u32 i = 0; i < g->nspread && i < MAX_SPREAD; i++)
		if (!addr_format(g->spread[i].family, g->spread[i].addr, s, sizeof(s)))
			fprintf(out, "%s %s", i ? "," : "", s);
	fprintf(out, "\n");
	if (!v->nspreads)
		return;
	fprintf(out, "%-10s %-39s %-46s %10s %9s\n", "NETNS", "SRC", "DST", "CGROUP_ID", "SPREAD");
	for (size_t i = 0; i < v->nspreads; i++) {
		const struct tuple_key *k = &v->spreads[i].key.tuple;
		struct tuple t = { .key = *k };
		size_t ns, nd;

		endpoints(&t, s, &ns, d, &nd);
		fprintf(out, "%-10u %-39.*s %-46.*s %10llu %9llu\n", k->netns, (int)ns, s, (int)nd,
			d, (unsigned long long)v->spreads[i].key.cgroup_id,
			(unsigned long long)v->spreads[i].count);
	}
}

int query_render(FILE *out, const struct query_req *rq, const struct query_view *v)
{
	int err;

	if (rq->json)
		return print_json(out, rq, v);
	err = print_tuples(out, v);
	if (err)
		return err;
	print_netns(out, v, &rq->filter);
	print_spread_local(out, v, &rq->filter);
	print_guard(out, v);
	print_spread(out, v);
	print_nat(out, v, &rq->filter);
	return 0;
}
