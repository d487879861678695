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
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <bpf/bpf.h>

#include "cadence.h"
#include "failures.h"
#include "table.h"
#include "guard.h"
#include "pressure.h"

struct failing {
	struct fail_key key; /* first: the tree's key */
	struct cadence cad;
};

struct failures {
	struct cadence_set set;
	struct guard_info guard;
	struct report *report;
	struct pressure *pressure;
	struct ns_list *nl; /* of the drain or notice at hand */
	const struct tuple_table *table;
	__u64 lines;
};

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct fail_key));
}

static __u64 fail_count(const void *val)
{
	return ((const struct fail_val *)val)->count;
}

static void failure_grew(void *ctx, void *rec, const void *val)
{
	struct failures *f = ctx;
	const struct failing *e = rec;

	if (((const struct fail_val *)val)->has_tuple && e->key.kind == FAIL_CONNECT && f->pressure)
		pressure_failing(f->pressure, &e->key.tuple);
}

static void failure_emit(void *ctx, void *rec, const void *val);

static const struct cadence_ops failure_ops = {
	.key_size = sizeof(struct fail_key),
	.val_size = sizeof(struct fail_val),
	.rec_size = sizeof(struct failing),
	.cad_off = offsetof(struct failing, cad),
	.cmp = key_cmp,
	.count = fail_count,
	.grew = failure_grew,
	.emit = failure_emit,
};

int failures_new(struct failures **out, int fd, struct report *r, struct pressure *p)
{
	struct failures *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->set = (struct cadence_set){ .ops = &failure_ops, .ctx = f, .fd = fd };
	f->report = r;
	f->pressure = p;
	*out = f;
	return 0;
}

void failures_free(struct failures *f)
{
	if (!f)
		return;
	cadence_free(&f->set);
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

static void failure_emit(void *ctx, void *rec, const void *val)
{
	struct failures *f = ctx;
	const struct failing *e = rec;
	const struct fail_val *v = val;
	struct ns_list *nl = f->nl;
	const struct tuple_table *l = f->table;
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
	err |= ADD_NUM(ev, "count", v->count - e->cad.reported);
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
}

int failures_notice(struct failures *f, const struct fail_key *k, struct ns_list *nl,
		    const struct tuple_table *l, __u64 now)
{
	f->nl = nl;
	f->table = l;
	return cadence_notice(&f->set, k, now);
}

int failures_drain(struct failures *f, struct ns_list *nl, const struct tuple_table *l, __u64 now,
		   bool final)
{
	f->nl = nl;
	f->table = l;
	return cadence_drain(&f->set, now, final);
}
