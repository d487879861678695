// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * connect_failed and bind_failed lines from the kernel's exact per (tuple,
 * process) counts in the "failures" map. A (tuple, process) gets a line at once
 * when it starts failing (the kernel sends a notice), then at most one a second
 * while it keeps failing, each with the failures since the previous line: the
 * counts of its lines add up to the failures the process saw.
 */
#include <errno.h>
#include <math.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <bpf/bpf.h>

#include "failures.h"
#include "table.h"
#include "guard.h"
#include "pressure.h"

#define LINE_EVERY_NS 1000000000ull  /* one line a second per (tuple, process) at most */
#define IDLE_NS	      10000000000ull /* forget a (tuple, process) quiet this long */

struct failing {
	struct fail_key key; /* first: the tree's key */
	__u64 reported;	     /* failures in lines so far */
	__u64 line_ns;	     /* when the latest line was made */
	__u64 change_ns;     /* when the count last grew */
	__u64 count;	     /* at the latest reading */
};

struct failures {
	int fd;
	struct guard_info guard;
	struct report *report;
	struct pressure *pressure;
	void *tree;
	__u64 lines;
};

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct fail_key));
}

int failures_new(struct failures **out, int fd, struct report *r, struct pressure *p)
{
	struct failures *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->fd = fd;
	f->report = r;
	f->pressure = p;
	*out = f;
	return 0;
}

void failures_free(struct failures *f)
{
	if (!f)
		return;
	tdestroy(f->tree, free);
	free(f);
}

void failures_guard(struct failures *f, const struct guard_info *g)
{
	f->guard = *g;
}

__u64 failures_lines(const struct failures *f)
{
	return f->lines;
}

static int add_str(cJSON *obj, const char *name, const char *value)
{
	return cJSON_AddStringToObject(obj, name, value) ? 0 : -ENOMEM;
}

static struct failing *failing_get(struct failures *f, const struct fail_key *k)
{
	struct failing *e, **found = tfind(k, &f->tree, key_cmp);

	if (found)
		return *found;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->key = *k;
	found = tsearch(e, &f->tree, key_cmp);
	if (!found || *found != e) {
		free(e);
		return found ? *found : NULL;
	}
	return e;
}

/* the tuple's counts at the latest failure, and its capacity as the agent knows it now */
static int usage_to_json(const struct fail_key *k, const struct fail_val *v, struct ns_list *nl,
			 const struct tuple_table *l, cJSON *ev)
{
	const struct tuple *in = v->has_tuple && l ? table_find(l, &k->tuple) : NULL;
	struct tuple t = { .key = k->tuple };

	if (!v->has_tuple) {
		return cJSON_AddNullToObject(ev, "usage") &&
				       cJSON_AddNullToObject(ev, "capacity") &&
				       cJSON_AddNullToObject(ev, "utilization") ?
			       0 :
			       -ENOMEM;
	}
	if (in)
		t.val.bound = in->val.bound;
	t.val.port_range = v->port_range;
	t.val.tw_reuse = v->tw_reuse;
	t.val.time_wait_ts = v->time_wait_ts;
	/* below zero is no number of sockets (tuple_finish) */
	t.in_use = v->in_use < 0 ? 0 : v->in_use;
	t.time_wait = v->time_wait < 0 ? 0 : v->time_wait;
	tuple_capacity(&t, ns_find(nl, k->tuple.netns, false));
	return ADD_NUM(ev, "in_use", t.in_use)		     ?:
		       ADD_NUM(ev, "time_wait", t.time_wait) ?:
		       ADD_NUM(ev, "usage", t.usage)	     ?:
		       ADD_NUM(ev, "capacity", t.capacity)   ?:
		       ADD_NUM(ev, "utilization", round(t.utilization * 10000) / 10000);
}

static void failure_emit(struct failures *f, struct failing *e, const struct fail_val *v,
			 struct ns_list *nl, const struct tuple_table *l, __u64 now)
{
	const struct fail_key *k = &e->key;
	bool bind = k->kind == FAIL_BIND, denied = k->kind == DENY_USAGE || k->kind == DENY_QUOTA;
	cJSON *ev = report_new(f->report, bind	 ? "bind_failed" :
					  denied ? "connect_denied" :
						   "connect_failed");
	const struct ns_summary *ns = ns_find(nl, k->tuple.netns, false);
	int err = 0;

	if (!ev) {
		report_emit(f->report, NULL);
		return;
	}
	err |= ADD_NUM(ev, "count", v->count - e->reported);
	if (!denied)
		err |= add_str(ev, "errno", bind ? "EADDRINUSE" : "EADDRNOTAVAIL");
	else if (f->guard.mode == GUARD_AUDIT)
		err |= cJSON_AddNullToObject(ev, "errno") ? 0 : -ENOMEM;
	else
		err |= add_str(ev, "errno", guard_errno_name(f->guard.deny_errno));
	if (denied) {
		err |= add_str(ev, "mode", guard_mode_name(f->guard.mode));
		err |= add_str(ev, "reason", k->kind == DENY_QUOTA ? "quota" : "utilization");
		err |= ADD_NUM(ev, "deny_at", f->guard.deny_at);
		err |= f->guard.quota ? ADD_NUM(ev, "quota", f->guard.quota) :
					(cJSON_AddNullToObject(ev, "quota") ? 0 : -ENOMEM);
	}
	err |= attribution_to_json(f->report, ev, k->tgid, v->tid, v->comm, v->uid, v->cgroup_id);
	err |= tuple_key_to_json(&k->tuple, !bind, ev);
	if (bind) {
		err |= cJSON_AddStringToObject(ev, "protocol",
					       k->protocol == IPPROTO_UDP ? "udp" : "tcp") ?
			       0 :
			       -ENOMEM;
		err |= ns && ns->port_range ?
			       ADD_NUM(ev, "port_range_size",
				       PORT_HIGH(ns->port_range) - PORT_LOW(ns->port_range) + 1) :
			       (cJSON_AddNullToObject(ev, "port_range_size") ? 0 : -ENOMEM);
		err |= ADD_NUM(ev, "bound_ports_in_range", ns ? ns->bound_in_range : 0);
	} else {
		err |= usage_to_json(k, v, nl, l, ev);
	}
	if (err) {
		cJSON_Delete(ev);
		report_emit(f->report, NULL);
	} else {
		report_emit(f->report, ev);
		f->lines++;
	}
	/* counted as reported either way: a line lost is in lines_dropped, not sent twice */
	e->reported = v->count;
	e->line_ns = now;
}

/* one entry of the map, read at now; final: the agent stops, report what is left */
static void failure_update(struct failures *f, struct failing *e, const struct fail_val *v,
			   struct ns_list *nl, const struct tuple_table *l, __u64 now, bool final)
{
	if (v->count != e->count) {
		e->count = v->count;
		e->change_ns = now;
		if (v->has_tuple && e->key.kind == FAIL_CONNECT && f->pressure)
			pressure_failing(f->pressure, &e->key.tuple);
	}
	if (v->count > e->reported && (final || !e->line_ns || now - e->line_ns >= LINE_EVERY_NS))
		failure_emit(f, e, v, nl, l, now);
}

int failures_notice(struct failures *f, const struct fail_key *k, struct ns_list *nl,
		    const struct tuple_table *l, __u64 now)
{
	struct fail_val v;
	struct failing *e;

	if (bpf_map_lookup_elem(f->fd, k, &v))
		return 0; /* already reported and forgotten */
	e = failing_get(f, k);
	if (!e)
		return -ENOMEM;
	failure_update(f, e, &v, nl, l, now, false);
	return 0;
}

int failures_drain(struct failures *f, struct ns_list *nl, const struct tuple_table *l, __u64 now,
		   bool final)
{
	struct fail_key *keys = NULL;
	struct fail_val *vals = NULL, v;
	size_t n = 0;
	int err;

	err = map_read_all(f->fd, sizeof(*keys), sizeof(*vals), (void **)&keys, (void **)&vals, &n);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		struct failing *e = failing_get(f, &keys[i]);

		if (!e) {
			err = -ENOMEM;
			break;
		}
		failure_update(f, e, &vals[i], nl, l, now, final);
		if (final || vals[i].count != e->reported || now - e->change_ns < IDLE_NS)
			continue;
		/*
		 * Quiet for a while and all reported: forget it. The map's copy is taken
		 * out and checked at once, so a failure that came meanwhile is not lost.
		 */
		if (bpf_map_lookup_and_delete_elem(f->fd, &keys[i], &v))
			continue;
		if (v.count > e->reported)
			failure_emit(f, e, &v, nl, l, now);
		tdelete(e, &f->tree, key_cmp);
		free(e);
	}
	free(keys);
	free(vals);
	return err;
}
