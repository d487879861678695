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

static void tuple_write_json_slow(const struct tuple *t, struct jsonw *w);

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

/*
 * The kernel's counters ("stats"): their name in stats lines and query, and the
 * reason label of ephport_lost_events_total for those that are a loss.
 */
const struct stat_name eph_stat_names[EPH_STAT_MAX] = {
	/* clang-format off */
	[EPH_STAT_TUPLES_FULL] =   { "tuples_dropped",	       "tuples_full" },
	[EPH_STAT_TUPLE_MISSING] = { "tuple_missing",	       "tuple_missing" },
	[EPH_STAT_TIMEWAIT_FULL] = { "time_wait_dropped",      "timewait_full" },
	[EPH_STAT_PORTS_FULL] =	   { "ports_dropped",	       "ports_full" },
	[EPH_STAT_FAILURES_FULL] = { "failures_dropped",       "failures_full" },
	[EPH_STAT_NOTICES_LOST] =  { "notices_lost",	       "notices_lost" },
	[EPH_STAT_DENIALS_FULL] =  { "denials_dropped",	       "denials_full" },
	[EPH_STAT_QUOTA_FULL] =	   { "quota_dropped",	       "quota_full" },
	[EPH_STAT_FW2_FULL] =	   { "fin_wait2_as_time_wait", "fin_wait2_full" },
	[EPH_STAT_BOUND_FULL] =	   { "bound_untracked",	       "bound_full" },
	/* no loss: a change the backstop counted, a connect that took its tuple back */
	[EPH_STAT_CAUGHT] =	   { "events_caught",	       NULL },
	[EPH_STAT_CLAIMS_FULL] =   { "startup_claims_dropped", "startup_claims_full" },
	[EPH_STAT_RETIRE_RACES] =  { "tuple_retire_recounts",  NULL },
	[EPH_STAT_GUARD_STALE] =   { "guard_stale_passes",     NULL },
	[EPH_STAT_NS_SHARE] =	   { "tuples_over_share",      "netns_share" },
	[EPH_STAT_GUARD_DST_FULL] = { "guard_dst_waits",       NULL },
	[EPH_STAT_SPREADS_FULL] =  { "spreads_dropped",	       "spreads_full" },
	[EPH_STAT_SPREAD_FAILED] = { "spread_bind_failed",     NULL },
	/* clang-format on */
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

struct list_read {
	const struct tuple_filter *f;
	struct tuple_list *out;
};

static int list_read_batch(const void *keys, const void *vals, size_t n, void *arg)
{
	struct list_read *r = arg;
	int err = 0;

	for (size_t i = 0; i < n && !err; i++) {
		struct tuple t = { .key = ((const struct tuple_key *)keys)[i],
				   .val = ((const struct tuple_val *)vals)[i] };

		r->out->seen++;
		tuple_finish(&t);
		if (!r->f || filter_match(r->f, &t))
			err = tuple_list_push(r->out, &t);
	}
	return err;
}

/* room for every entry the map can hold: pages never written cost no memory */
static int list_reserve(int map_fd, struct tuple_list *l)
{
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info);
	struct tuple *items;

	if (bpf_obj_get_info_by_fd(map_fd, &info, &len) || info.max_entries <= l->cap)
		return 0;
	items = realloc(l->items, info.max_entries * sizeof(*items));
	if (!items)
		return -ENOMEM;
	l->items = items;
	l->cap = info.max_entries;
	return 0;
}

int tuple_list_read(int map_fd, const struct tuple_filter *f, struct tuple_list *out)
{
	struct list_read r = { .f = f, .out = out };
	int err = f ? 0 : list_reserve(map_fd, out);

	return err ? err :
		     map_read_each(map_fd, sizeof(struct tuple_key), sizeof(struct tuple_val),
				   list_read_batch, &r);
}

int tuple_order_cmp(const struct tuple *x, const struct tuple *y)
{

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

static int tuple_cmp(const void *a, const void *b)
{
	return tuple_order_cmp(a, b);
}

/* nearest to exhaustion first; ties broken so that the order is stable between runs */
void tuple_list_sort(struct tuple_list *l)
{
	if (l->len)
		qsort(l->items, l->len, sizeof(*l->items), tuple_cmp);
}

static int tuple_index_cmp(const void *a, const void *b, void *arg)
{
	const struct tuple *items = arg;

	return tuple_order_cmp(&items[*(const __u32 *)a], &items[*(const __u32 *)b]);
}

/* idx[] (indices into l) in tuple_list_sort()'s order, the tuples left where they are */
void tuple_index_sort(const struct tuple_list *l, __u32 *idx, size_t n)
{
	if (n)
		qsort_r(idx, n, sizeof(*idx), tuple_index_cmp, l->items);
}

void tuple_list_free(struct tuple_list *l)
{
	if (!l)
		return;
	free(l->items);
	l->items = NULL;
	l->len = l->cap = l->seen = 0;
}

/* netns, family, saddr and, with the destination, daddr and dport: every line's key */
void tuple_key_write_json(const struct tuple_key *k, bool destination, struct jsonw *w)
{
	jw_u64(w, "netns", k->netns);
	jw_str(w, "family", k->family == AF_INET ? "ipv4" : "ipv6");
	jw_addr(w, "saddr", k->family, k->saddr);
	if (!destination)
		return;
	jw_addr(w, "daddr", k->family, k->daddr);
	jw_u64(w, "dport", k->dport);
}

/* the members of w's one object moved into obj */
static int move_members(struct jsonw *w, cJSON *obj)
{
	cJSON *parsed = w->oom ? NULL : cJSON_Parse(w->buf), *item;

	jw_free(w);
	if (!parsed)
		return -ENOMEM;
	while ((item = parsed->child)) {
		cJSON_DetachItemViaPointer(parsed, item);
		if (!cJSON_AddItemToObject(obj, item->string, item)) {
			cJSON_Delete(item);
			cJSON_Delete(parsed);
			return -ENOMEM;
		}
	}
	cJSON_Delete(parsed);
	return 0;
}

/* tuple_key_write_json() into a cJSON object: failure and denial lines */
int tuple_key_to_json(const struct tuple_key *k, bool destination, cJSON *obj)
{
	struct jsonw w = { 0 };

	if (k->family != AF_INET && k->family != AF_INET6)
		return -EINVAL;
	jw_open(&w, '{');
	tuple_key_write_json(k, destination, &w);
	jw_close(&w, '}');
	return move_members(&w, obj);
}

cJSON *tuple_cgroup_item(cJSON *arr, const struct tuple_key *k, __u64 cgroup_id)
{
	cJSON *o = cJSON_CreateObject();

	if (!o || !cJSON_AddItemToArray(arr, o)) {
		cJSON_Delete(o);
		return NULL;
	}
	return tuple_key_to_json(k, true, o) || ADD_NUM(o, "cgroup_id", cgroup_id) ? NULL : o;
}

/* a tuple's members into a cJSON object (pressure lines), from tuple_write_json()'s text */
int tuple_to_json(const struct tuple *t, cJSON *obj)
{
	struct jsonw w = { 0 };

	if (t->key.family != AF_INET && t->key.family != AF_INET6)
		return -EINVAL;
	jw_open(&w, '{');
	tuple_write_json(t, &w);
	jw_close(&w, '}');
	return move_members(&w, obj);
}

/* v in decimal at p; returns the end */
static char *put_dec(char *p, __s64 v)
{
	char tmp[24];
	int i = sizeof(tmp);
	__u64 u = v < 0 ? -(__u64)v : (__u64)v;

	if (v >= 0 && v < 10) { /* most counts of most tuples */
		*p = '0' + v;
		return p + 1;
	}
	do {
		tmp[--i] = '0' + u % 10;
		u /= 10;
	} while (u);
	if (v < 0)
		*p++ = '-';
	memcpy(p, tmp + i, sizeof(tmp) - i);
	return p + sizeof(tmp) - i;
}

/* a member's name with its quotes, colon and the comma before it */
#define PUT_KEY(p, lit) (memcpy((p), "," lit ":", sizeof(lit) + 1), (p) + sizeof(lit) + 1)

/* members' names as written: comma, quotes and colon; copied whole, len of them used */
struct put_key {
	char text[24];
	size_t len;
};
#define KEY_TEXT(name)                           \
	{                                        \
		"," #name ":", sizeof(#name) + 1 \
	}

static const struct put_key state_keys[] = {
	/* live_states' names, in its order */
	KEY_TEXT("syn_sent"),  KEY_TEXT("syn_recv"),  KEY_TEXT("established"),
	KEY_TEXT("fin_wait1"), KEY_TEXT("fin_wait2"), KEY_TEXT("close_wait"),
	KEY_TEXT("last_ack"),  KEY_TEXT("closing"),
};
static const struct put_key count_keys[] = {
	KEY_TEXT("time_wait"), KEY_TEXT("time_wait_reusable"), KEY_TEXT("in_use"),
	KEY_TEXT("usage"),     KEY_TEXT("capacity"),
};
_Static_assert(sizeof(state_keys) / sizeof(state_keys[0]) ==
		       sizeof(live_states) / sizeof(live_states[0]),
	       "a written name per live state");

/*
 * tuple_to_json()'s members, written straight into the buffer: a snapshot or a
 * query writes one per tuple, 65,536 of them at most, and cJSON and printf
 * take most of a second for that. The numbers read as cJSON prints them.
 */
void tuple_write_json(const struct tuple *t, struct jsonw *w)
{
	const struct tuple_key *k = &t->key;
	const __s64 counts[] = { t->time_wait, t->reusable, t->in_use, t->usage, t->capacity };
	__s64 util = llround(t->utilization * 10000);
	char buf[1024], *p = buf;

	if (k->family != AF_INET || llabs(util) > 1000000000000ll ||
	    t->val.connects >= (1ull << 53) || t->val.failed_connects >= (1ull << 53) ||
	    t->val.bound_connects >= (1ull << 53)) {
		tuple_write_json_slow(t, w);
		return;
	}
	/* the first member gets its comma only after others */
	p = PUT_KEY(p, "\"netns\"");
	p = put_dec(p, k->netns);
	p = PUT_KEY(p, "\"family\"");
	p = (memcpy(p, "\"ipv4\"", 6), p + 6);
	p = PUT_KEY(p, "\"saddr\"");
	*p++ = '"';
	p += addr_put(AF_INET, k->saddr, p);
	*p++ = '"';
	p = PUT_KEY(p, "\"daddr\"");
	*p++ = '"';
	p += addr_put(AF_INET, k->daddr, p);
	*p++ = '"';
	p = PUT_KEY(p, "\"dport\"");
	p = put_dec(p, k->dport);
	for (size_t i = 0; i < sizeof(live_states) / sizeof(live_states[0]); i++) {
		p = (memcpy(p, state_keys[i].text, sizeof(state_keys[i].text)),
		     p + state_keys[i].len);
		p = put_dec(p, t->val.states[live_states[i].state]);
	}
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		p = (memcpy(p, count_keys[i].text, sizeof(count_keys[i].text)),
		     p + count_keys[i].len);
		p = put_dec(p, counts[i]);
	}
	/* utilization in ten-thousandths, as "%1.15g" prints it: no trailing zeros */
	p = PUT_KEY(p, "\"utilization\"");
	if (util < 0) {
		*p++ = '-';
		util = -util;
	}
	p = put_dec(p, util / 10000);
	if (util % 10000) {
		int frac = util % 10000, digits = 4;

		while (frac % 10 == 0) {
			frac /= 10;
			digits--;
		}
		*p++ = '.';
		for (int d = digits - 1; d >= 0; d--) {
			p[d] = '0' + frac % 10;
			frac /= 10;
		}
		p += digits;
	}
	p = PUT_KEY(p, "\"connects\"");
	p = put_dec(p, t->val.connects);
	p = PUT_KEY(p, "\"failed_connects\"");
	p = put_dec(p, t->val.failed_connects);
	p = PUT_KEY(p, "\"bound_connects\"");
	p = put_dec(p, t->val.bound_connects);
	/* buf starts with a comma: the object's first member has none unless others came */
	jw_raw(w, w->comma ? buf : buf + 1, (size_t)(p - buf) - !w->comma);
	w->comma = true;
}

/* the same with jsonw's general writers: IPv6, and numbers beyond the fast path */
static void tuple_write_json_slow(const struct tuple *t, struct jsonw *w)
{
	tuple_key_write_json(&t->key, true, w);
	for (size_t i = 0; i < sizeof(live_states) / sizeof(live_states[0]); i++)
		jw_s64(w, live_states[i].name, t->val.states[live_states[i].state]);
	jw_s64(w, "time_wait", t->time_wait);
	jw_s64(w, "time_wait_reusable", t->reusable);
	jw_s64(w, "in_use", t->in_use);
	jw_s64(w, "usage", t->usage);
	jw_s64(w, "capacity", t->capacity);
	jw_double(w, "utilization", round(t->utilization * 10000) / 10000);
	jw_u64(w, "connects", t->val.connects);
	jw_u64(w, "failed_connects", t->val.failed_connects);
	jw_u64(w, "bound_connects", t->val.bound_connects);
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
		err |= ADD_NUM(obj, eph_stat_names[i].line, st->counters[i]);
	return err ? -ENOMEM : 0;
}

struct tuple_count {
	struct tuple_key tuple;
	__u64 count;
};

static int tuple_count_cmp(const void *a, const void *b)
{
	return memcmp(&((const struct tuple_count *)a)->tuple,
		      &((const struct tuple_count *)b)->tuple, sizeof(struct tuple_key));
}

static int netns_count_cmp(const void *a, const void *b)
{
	__u32 x = ((const struct netns_count *)a)->netns,
	      y = ((const struct netns_count *)b)->netns;

	return x < y ? -1 : x > y;
}

int tuple_counts_sum(const void *items, size_t n, size_t size, size_t count_off,
		     const struct tuple_list *l, __u64 *per_tuple, struct netns_count **by_netns,
		     size_t *nnetns, __u64 *total)
{
	struct netns_count *ns = calloc(n + 1, sizeof(*ns));
	struct tuple_count probe = { 0 }, *c = calloc(n + 1, sizeof(*c));
	size_t nns = 0;

	if (!ns || !c) {
		free(ns);
		free(c);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const char *item = (const char *)items + i * size;

		memcpy(&c[i].tuple, item, sizeof(c[i].tuple));
		memcpy(&c[i].count, item + count_off, sizeof(c[i].count));
	}
	*total = 0;
	for (size_t i = 0; i < n; i++) {
		ns[i].netns = c[i].tuple.netns;
		ns[i].count = c[i].count;
		*total += c[i].count;
	}
	/* sorted, then each namespace's run summed: no search per entry */
	qsort(ns, n, sizeof(*ns), netns_count_cmp);
	for (size_t i = 0; i < n; i++) {
		if (nns && ns[nns - 1].netns == ns[i].netns)
			ns[nns - 1].count += ns[i].count;
		else
			ns[nns++] = ns[i];
	}
	*by_netns = ns;
	*nnetns = nns;
	qsort(c, n, sizeof(*c), tuple_count_cmp);
	for (size_t i = 0; i < l->len; i++) {
		size_t lo = 0, hi = n;

		per_tuple[i] = 0;
		probe.tuple = l->items[i].key;
		/* the first count of this tuple, then its others after it */
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (tuple_count_cmp(&c[mid], &probe) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < n && !tuple_count_cmp(&c[lo], &probe); lo++)
			per_tuple[i] += c[lo].count;
	}
	free(c);
	return 0;
}
