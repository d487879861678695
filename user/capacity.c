// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The capacity model: how many ports connect() can still use for a tuple.
 *
 *   capacity = ports in ip_local_port_range
 *            - ip_local_reserved_ports inside it
 *            - ports inside it held by listeners or bind() in the namespace
 *              (connect() skips them for every destination), except the
 *              tuple's own bind()-ed sockets, which its usage already counts
 *   usage    = in_use + time_wait - time_wait_reusable
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ephport.h"
#include "cgroup.h"
#include "table.h"

const struct ns_summary *ns_lookup(const struct ns_list *l, __u32 inum)
{
	long at;

	if (!l->idx.nslot) {
		for (size_t i = 0; i < l->len; i++)
			if (l->items[i].inum == inum)
				return &l->items[i];
		return NULL;
	}
	at = u32_index_find(&l->idx, l->items, inum);
	return at >= 0 ? &l->items[at] : NULL;
}

struct ns_summary *ns_find(struct ns_list *l, __u32 inum, bool create)
{
	const struct ns_summary *found = ns_lookup(l, inum);

	if (found)
		return &l->items[found - l->items];
	if (!create)
		return NULL;
	if (l->len == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct ns_summary *items = realloc(l->items, cap * sizeof(*items));

		if (!items)
			return NULL;
		l->items = items;
		l->cap = cap;
	}
	memset(&l->items[l->len], 0, sizeof(l->items[0]));
	l->items[l->len].inum = inum;
	l->idx.stride = sizeof(*l->items);
	l->idx.key_off = offsetof(struct ns_summary, inum);
	if (u32_index_added(&l->idx, l->items, l->len + 1))
		return NULL;
	return &l->items[l->len++];
}

static int ns_add_server(struct ns_summary *ns, __u16 port, __s64 count)
{
	if (ns->nserver == ns->capserver) {
		size_t cap = ns->capserver ? ns->capserver * 2 : 8;
		struct ns_port *p = realloc(ns->server, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		ns->server = p;
		ns->capserver = cap;
	}
	ns->server[ns->nserver].port = port;
	ns->server[ns->nserver++].count = count;
	return 0;
}

static int port_cmp(const void *a, const void *b)
{
	const struct ns_port *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return (int)x->port - (int)y->port;
}

static int ns_cmp(const void *a, const void *b)
{
	const struct ns_summary *x = a, *y = b;

	return x->inum < y->inum ? -1 : x->inum > y->inum;
}

/* what a namespace's tuples add to it: their TIME_WAIT sockets, the newest connect's range */
static int ns_add_agg(struct ns_list *l, const struct ns_agg *a)
{
	struct ns_summary *ns = ns_find(l, a->inum, true);

	if (!ns)
		return -ENOMEM;
	ns->tw_tuples += a->tw_tuples;
	if (!ns->has_info && a->port_range &&
	    (!ns->port_range || a->newest_connect > ns->newest_connect)) {
		ns->port_range = a->port_range;
		ns->tw_reuse = a->tw_reuse;
		ns->newest_connect = a->newest_connect;
	}
	return 0;
}

struct agg_walk {
	struct ns_list *l;
	int err;
};

static void agg_visit(const struct ns_agg *a, void *arg)
{
	struct agg_walk *w = arg;

	if (!w->err)
		w->err = ns_add_agg(w->l, a);
}

int ns_set_info(struct ns_list *l, __u32 inum, const struct netns_info *info)
{
	struct ns_summary *ns = ns_find(l, inum, true);

	if (!ns)
		return -ENOMEM;
	ns->has_info = true;
	ns->info = *info;
	ns->port_range = info->port_range;
	ns->tw_reuse = info->tw_reuse;
	return 0;
}

static int info_batch(const void *keys, const void *vals, size_t n, void *arg)
{
	int err = 0;

	for (size_t i = 0; i < n && !err; i++)
		err = ns_set_info(arg, ((const __u32 *)keys)[i],
				  &((const struct netns_info *)vals)[i]);
	return err;
}

static int ports_batch(const void *keys, const void *vals, size_t n, void *arg)
{
	struct ns_summary *ns;

	for (size_t i = 0; i < n; i++) {
		const struct port_key *k = &((const struct port_key *)keys)[i];
		const struct port_val *v = &((const struct port_val *)vals)[i];

		/* one entry per port, so counting entries counts distinct ports */
		if (v->listeners <= 0 && v->bound <= 0)
			continue;
		if (!(ns = ns_find(arg, k->netns, true)))
			return -ENOMEM;
		if (ns->port_range && k->port >= PORT_LOW(ns->port_range) &&
		    k->port <= PORT_HIGH(ns->port_range))
			ns->bound_in_range++;
	}
	return 0;
}

static int local_tw_batch(const void *keys, const void *vals, size_t n, void *arg)
{
	struct ns_summary *ns;
	int err = 0;

	for (size_t i = 0; i < n && !err; i++) {
		const struct port_key *k = &((const struct port_key *)keys)[i];
		__s64 count = ((const __s64 *)vals)[i];

		if (!count)
			continue;
		if (!(ns = ns_find(arg, k->netns, true)))
			return -ENOMEM;
		if (k->port == 0) {
			ns->tw_other += count;
		} else {
			ns->tw_server += count;
			err = ns_add_server(ns, k->port, count);
		}
	}
	return err;
}

/*
 * Every namespace any map mentions, added to those l has (the agent's own
 * readings, ns_set_info()); its tuples' totals from tuples (a reading of the
 * map) or table (the agent's copy), either may be NULL. Any fd may be -1 (that
 * map is left out). Pointers into l->items stay valid until the next
 * ns_find(..., true).
 */
int ns_list_build(struct ns_list *l, const struct tuple_list *tuples,
		  const struct tuple_table *table, int info_fd, int ports_fd, int local_tw_fd)
{
	int err = 0;

	if (info_fd >= 0)
		err = map_read_each(info_fd, sizeof(__u32), sizeof(struct netns_info), info_batch,
				    l);
	for (size_t i = 0; !err && tuples && i < tuples->len; i++) {
		const struct tuple *t = &tuples->items[i];
		struct ns_agg a = {
			.inum = t->key.netns,
			.tw_tuples = t->time_wait,
			.port_range = t->val.port_range,
			.tw_reuse = t->val.tw_reuse,
			.newest_connect = t->val.last_connect_ns,
		};

		err = ns_add_agg(l, &a);
	}
	if (!err && table) {
		struct agg_walk w = { .l = l };

		table_ns_each(table, agg_visit, &w);
		err = w.err;
	}
	/* after the ranges: a port counts when it is in its namespace's range */
	if (!err && ports_fd >= 0)
		err = map_read_each(ports_fd, sizeof(struct port_key), sizeof(struct port_val),
				    ports_batch, l);
	if (!err && local_tw_fd >= 0)
		err = map_read_each(local_tw_fd, sizeof(struct port_key), sizeof(__s64),
				    local_tw_batch, l);
	if (err)
		return err;
	for (size_t i = 0; i < l->len; i++)
		if (l->items[i].nserver)
			qsort(l->items[i].server, l->items[i].nserver, sizeof(struct ns_port),
			      port_cmp);
	if (l->len)
		qsort(l->items, l->len, sizeof(*l->items), ns_cmp);
	return l->idx.nslot ? u32_index_rebuild(&l->idx, l->items, l->len) : 0;
}

void ns_list_free(struct ns_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->len; i++)
		free(l->items[i].server);
	free(l->items);
	u32_index_free(&l->idx);
	l->items = NULL;
	l->len = l->cap = 0;
}

/* the --spread addresses local in the namespace: none until the agent read it from inside */
static int spread_to_json(const struct ns_summary *ns, const struct spread_addr *spread,
			  size_t nspread, cJSON *obj)
{
	cJSON *arr = cJSON_AddArrayToObject(obj, "spread_addresses");
	char text[EPH_ADDRSTRLEN];

	if (!arr)
		return -ENOMEM;
	for (size_t i = 0; ns_spread_next(ns, spread, nspread, &i, text); i++)
		if (!cJSON_AddItemToArray(arr, cJSON_CreateString(text)))
			return -ENOMEM;
	return 0;
}

bool ns_spread_next(const struct ns_summary *ns, const struct spread_addr *spread, size_t nspread,
		    size_t *i, char text[EPH_ADDRSTRLEN])
{
	for (; ns->has_info && *i < nspread && *i < MAX_SPREAD; ++*i)
		if (ns->info.spread_local & 1u << *i &&
		    !addr_format(spread[*i].family, spread[*i].addr, text, EPH_ADDRSTRLEN))
			return true;
	return false;
}

void ns_pod_ids(const struct ns_summary *ns, struct cgroup_ids *ids)
{
	ids->container_id[0] = ids->pod_uid[0] = '\0';
	if (ns->has_info)
		cgroup_ids_unpack(&ns->info.pod, ids);
}

/* container_id and pod_uid: those of the namespace's first process, or null */
static int ns_pod_to_json(const struct ns_summary *ns, cJSON *obj)
{
	struct cgroup_ids ids;
	int err = 0;

	ns_pod_ids(ns, &ids);
	err |= !(ids.container_id[0] ?
			 cJSON_AddStringToObject(obj, "container_id", ids.container_id) :
			 cJSON_AddNullToObject(obj, "container_id"));
	err |= !(ids.pod_uid[0] ? cJSON_AddStringToObject(obj, "pod_uid", ids.pod_uid) :
				  cJSON_AddNullToObject(obj, "pod_uid"));
	return err ? -ENOMEM : 0;
}

int ns_to_json(const struct ns_summary *ns, const struct spread_addr *spread, size_t nspread,
	       cJSON *obj)
{
	cJSON *range, *server;
	int err = 0;

	err |= ADD_NUM(obj, "netns", ns->inum);
	if (ns->has_info && ns->info.path[0])
		err |= cJSON_AddStringToObject(obj, "path", ns->info.path) ? 0 : -ENOMEM;
	else
		err |= cJSON_AddNullToObject(obj, "path") ? 0 : -ENOMEM;
	err |= ns_pod_to_json(ns, obj);
	if (ns->port_range) {
		range = cJSON_AddArrayToObject(obj, "port_range");
		if (!range)
			return -ENOMEM;
		cJSON_AddItemToArray(range, cJSON_CreateNumber(PORT_LOW(ns->port_range)));
		cJSON_AddItemToArray(range, cJSON_CreateNumber(PORT_HIGH(ns->port_range)));
		err |= cJSON_GetArraySize(range) == 2 ? 0 : -ENOMEM;
		err |= ADD_NUM(obj, "tw_reuse", ns->tw_reuse);
	} else {
		err |= cJSON_AddNullToObject(obj, "port_range") ? 0 : -ENOMEM;
		err |= cJSON_AddNullToObject(obj, "tw_reuse") ? 0 : -ENOMEM;
	}
	if (ns->has_info) {
		err |= ADD_NUM(obj, "reserved_ports", ns->info.reserved);
		err |= ADD_NUM(obj, "tcp_max_tw_buckets", ns->info.max_tw);
	} else {
		err |= cJSON_AddNullToObject(obj, "reserved_ports") ? 0 : -ENOMEM;
		err |= cJSON_AddNullToObject(obj, "tcp_max_tw_buckets") ? 0 : -ENOMEM;
	}
	err |= ADD_NUM(obj, "bound_ports_in_range", ns->bound_in_range);
	err |= ADD_NUM(obj, "time_wait_client", ns->tw_tuples);
	err |= ADD_NUM(obj, "time_wait_server", ns->tw_server);
	err |= ADD_NUM(obj, "time_wait_other", ns->tw_other);
	server = cJSON_AddArrayToObject(obj, "server_time_wait");
	if (!server)
		return -ENOMEM;
	for (size_t i = 0; i < ns->nserver; i++) {
		cJSON *p = cJSON_CreateObject();

		if (!p)
			return -ENOMEM;
		cJSON_AddItemToArray(server, p);
		err |= ADD_NUM(p, "port", ns->server[i].port);
		err |= ADD_NUM(p, "time_wait", ns->server[i].count);
	}
	if (nspread)
		err |= spread_to_json(ns, spread, nspread, obj);
	return err ? -ENOMEM : 0;
}

void tuple_capacity(struct tuple *t, const struct ns_summary *ns)
{
	__u32 range = t->val.port_range ? t->val.port_range : (ns ? ns->port_range : 0);
	__u8 tw_reuse = ns && ns->has_info ? ns->tw_reuse : t->val.tw_reuse;

	/* the programs compute the same at each connect (bpf/guard.bpf.c) */
	t->capacity = capacity_of(range, ns && ns->has_info ? ns->info.reserved : 0,
				  ns ? ns->bound_in_range : 0, t->val.bound);

	t->reusable = 0;
	if (tw_reuse == 1 || (tw_reuse == 2 && tuple_is_loopback(&t->key)))
		t->reusable = t->val.time_wait_ts > 0 ? t->val.time_wait_ts : 0;
	if (t->reusable > t->time_wait)
		t->reusable = t->time_wait > 0 ? t->time_wait : 0;
	t->usage = t->in_use + t->time_wait - t->reusable;
	if (t->capacity > 0)
		t->utilization = (double)t->usage / (double)t->capacity;
	else
		t->utilization = t->usage > 0 ? 1.0 : 0.0;
}

/*
 * Ports of a net.ipv4.ip_local_reserved_ports list ("8080,9000-9100", or empty)
 * that fall inside range.
 */
int reserved_ports_count(const char *list, __u32 range, __u32 *count)
{
	unsigned long lo = PORT_LOW(range), hi = PORT_HIGH(range);
	const char *p = list;
	__u32 n = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	while (*p && *p != '\n') {
		unsigned long a, b;
		char *end;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		a = strtoul(p, &end, 10);
		b = a;
		if (*end == '-') {
			p = end + 1;
			if (*p < '0' || *p > '9')
				return -EINVAL;
			b = strtoul(p, &end, 10);
		}
		if (a > 65535 || b > 65535 || b < a)
			return -EINVAL;
		if (b >= lo && a <= hi)
			n += (b < hi ? b : hi) - (a > lo ? a : lo) + 1;
		p = end;
		if (*p == ',')
			p++;
		else if (*p && *p != '\n')
			return -EINVAL;
	}
	*count = n;
	return 0;
}
