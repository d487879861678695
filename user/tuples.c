// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Reading, filtering, sorting and rendering the kernel's per-tuple counts. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ephport.h"

/* the states that hold a local port, in the order users read them */
static const struct {
	const char *name;
	int state;
} live_states[] = {
	/* clang-format off */
	{ "syn_sent", EPH_TCP_SYN_SENT },
	{ "syn_recv", EPH_TCP_SYN_RECV }, /* simultaneous open only */
	{ "established", EPH_TCP_ESTABLISHED },
	{ "fin_wait1", EPH_TCP_FIN_WAIT1 },
	{ "fin_wait2", EPH_TCP_FIN_WAIT2 },
	{ "close_wait", EPH_TCP_CLOSE_WAIT },
	{ "last_ack", EPH_TCP_LAST_ACK },
	{ "closing", EPH_TCP_CLOSING },
	/* clang-format on */
};

static const char *const stat_names[EPH_STAT_MAX] = {
	[EPH_STAT_TUPLES_FULL] = "tuples_dropped",
	[EPH_STAT_TUPLE_MISSING] = "tuple_missing",
	[EPH_STAT_TIMEWAIT_FULL] = "time_wait_dropped",
	[EPH_STAT_PORTS_FULL] = "ports_dropped",
	[EPH_STAT_FAILURES_FULL] = "failures_dropped",
	[EPH_STAT_NOTICES_LOST] = "notices_lost",
	[EPH_STAT_DENIALS_FULL] = "denials_dropped",
	[EPH_STAT_QUOTA_FULL] = "quota_dropped",
	[EPH_STAT_FW2_FULL] = "fin_wait2_as_time_wait",
	[EPH_STAT_BOUND_FULL] = "bound_untracked",
	[EPH_STAT_CAUGHT] = "events_caught",
	[EPH_STAT_CLAIMS_FULL] = "startup_claims_dropped",
	[EPH_STAT_RETIRE_RACES] = "tuple_retire_recounts",
};

bool filter_match(const struct tuple_filter *f, const struct tuple *t)
{
	const struct tuple_key *k = &t->key;

	if (f->netns_set && k->netns != f->netns)
		return false;
	if (f->src_set && (k->family != f->src_family || memcmp(k->saddr, f->src, 16)))
		return false;
	if (f->dst_set && (k->family != f->dst_family || memcmp(k->daddr, f->dst, 16)))
		return false;
	if (f->dport_set && k->dport != f->dport)
		return false;
	return true;
}

/*
 * Derived values; the capacity as far as the tuple alone tells (see capacity.c).
 * A count below zero is no number of sockets: a change the kernel ran no program
 * for (docs/kernels.md) left it there, or a delta that came before the start-up
 * walk's count. It shows as 0.
 */
void tuple_finish(struct tuple *t)
{
	for (size_t i = 0; i < EPH_TCP_STATES; i++)
		t->val.states[i] = t->val.states[i] < 0 ? 0 : t->val.states[i];
	t->val.time_wait_ts = t->val.time_wait_ts < 0 ? 0 : t->val.time_wait_ts;
	t->in_use = 0;
	for (size_t i = 0; i < sizeof(live_states) / sizeof(live_states[0]); i++)
		t->in_use += t->val.states[live_states[i].state];
	t->time_wait = t->val.states[EPH_TCP_TIME_WAIT];
	tuple_capacity(t, NULL);
}

int tuple_list_push(struct tuple_list *l, const struct tuple *t)
{
	if (l->len == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct tuple *items = realloc(l->items, cap * sizeof(*items));

		if (!items)
			return -ENOMEM;
		l->items = items;
		l->cap = cap;
	}
	l->items[l->len++] = *t;
	return 0;
}

int tuple_list_read(int map_fd, const struct tuple_filter *f, struct tuple_list *out)
{
	struct tuple_key *keys;
	struct tuple_val *vals;
	size_t n;
	int err;

	err = map_read_all(map_fd, sizeof(*keys), sizeof(*vals), (void **)&keys, (void **)&vals,
			   &n);
	if (err)
		return err;
	for (size_t i = 0; i < n && !err; i++) {
		struct tuple t = { .key = keys[i], .val = vals[i] };

		out->seen++;
		tuple_finish(&t);
		if (!f || filter_match(f, &t))
			err = tuple_list_push(out, &t);
	}
	free(keys);
	free(vals);
	return err;
}

static int tuple_cmp(const void *a, const void *b)
{
	const struct tuple *x = a, *y = b;

	if (x->utilization != y->utilization)
		return x->utilization > y->utilization ? -1 : 1;
	if (x->usage != y->usage)
		return x->usage > y->usage ? -1 : 1;
	if (x->in_use != y->in_use)
		return x->in_use > y->in_use ? -1 : 1;
	if (x->val.failed_connects != y->val.failed_connects)
		return x->val.failed_connects > y->val.failed_connects ? -1 : 1;
	if (x->val.connects != y->val.connects)
		return x->val.connects > y->val.connects ? -1 : 1;
	return memcmp(&x->key, &y->key, sizeof(x->key));
}

/* nearest to exhaustion first; ties broken so that the order is stable between runs */
void tuple_list_sort(struct tuple_list *l)
{
	if (l->len)
		qsort(l->items, l->len, sizeof(*l->items), tuple_cmp);
}

void tuple_list_free(struct tuple_list *l)
{
	free(l->items);
	l->items = NULL;
	l->len = l->cap = l->seen = 0;
}

/* netns, family, saddr and, with the destination, daddr and dport: every line's key */
int tuple_key_to_json(const struct tuple_key *k, bool destination, cJSON *obj)
{
	char addr[EPH_ADDRSTRLEN];
	int err;

	err = ADD_NUM(obj, "netns", k->netns);
	err |= cJSON_AddStringToObject(obj, "family", k->family == AF_INET ? "ipv4" : "ipv6") ?
		       0 :
		       -ENOMEM;
	if (addr_format(k->family, k->saddr, addr, sizeof(addr)))
		return -EINVAL;
	err |= cJSON_AddStringToObject(obj, "saddr", addr) ? 0 : -ENOMEM;
	if (!destination)
		return err ? -ENOMEM : 0;
	if (addr_format(k->family, k->daddr, addr, sizeof(addr)))
		return -EINVAL;
	err |= cJSON_AddStringToObject(obj, "daddr", addr) ? 0 : -ENOMEM;
	err |= ADD_NUM(obj, "dport", k->dport);
	return err ? -ENOMEM : 0;
}

int tuple_to_json(const struct tuple *t, cJSON *obj)
{
	int err = tuple_key_to_json(&t->key, true, obj);

	if (err)
		return err;
	for (size_t i = 0; i < sizeof(live_states) / sizeof(live_states[0]); i++)
		err |= ADD_NUM(obj, live_states[i].name, t->val.states[live_states[i].state]);
	err |= ADD_NUM(obj, "time_wait", t->time_wait);
	err |= ADD_NUM(obj, "time_wait_reusable", t->reusable);
	err |= ADD_NUM(obj, "in_use", t->in_use);
	err |= ADD_NUM(obj, "usage", t->usage);
	err |= ADD_NUM(obj, "capacity", t->capacity);
	err |= ADD_NUM(obj, "utilization", round(t->utilization * 10000) / 10000);
	err |= ADD_NUM(obj, "connects", t->val.connects);
	err |= ADD_NUM(obj, "failed_connects", t->val.failed_connects);
	err |= ADD_NUM(obj, "bound_connects", t->val.bound_connects);
	return err ? -ENOMEM : 0;
}

int stats_read(int stats_fd, struct agent_stats *st)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *vals;
	int err = 0;

	if (ncpu < 0)
		return ncpu;
	vals = calloc(ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (__u32 slot = 0; slot < EPH_STAT_MAX; slot++) {
		st->counters[slot] = 0;
		if (bpf_map_lookup_elem(stats_fd, &slot, vals)) {
			err = -errno;
			break;
		}
		for (int cpu = 0; cpu < ncpu; cpu++)
			st->counters[slot] += vals[cpu];
	}
	free(vals);
	return err;
}

int stats_to_json(const struct agent_stats *st, size_t tuples, cJSON *obj)
{
	int err = 0;

	err |= ADD_NUM(obj, "tuples", tuples);
	err |= ADD_NUM(obj, "max_tuples", st->max_tuples);
	for (int i = 0; i < EPH_STAT_MAX; i++)
		err |= ADD_NUM(obj, stat_names[i], st->counters[i]);
	return err ? -ENOMEM : 0;
}
