// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's view of source NAT: a conntrack view (nat_ct) for each namespace
 * whose rules do source NAT, found and read in the agent's round of namespaces;
 * their events read as they come (one epoll descriptor over all of them); at each
 * check the NAT tuples ranked, levelled with their own thresholds, and a
 * nat_pressure line for each change of level. docs/nat.md.
 */
#include <errno.h>
#include <stddef.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <cjson/cJSON.h>

#include "ephport.h"
#include "cgroup.h"
#include "metrics.h"
#include "nat.h"
#include "netns.h"

#define EVENTS_PER_NS 8192 /* messages read from one namespace per turn of the loop */

struct nat_ns {
	__u32 inum;
	unsigned int where;
	struct nat_ct *ct;
	struct nat_rules rules;
	__u32 gen;
	bool have_gen, have_ks;
	struct nat_ct_kstats ks, ks_seen, ks_check; /* now, at the latest line, the latest check */
};

/* a local address of a namespace, and who the namespace belongs to, for the origins */
struct addr_ns {
	__u8 addr[16];
	__u32 netns;
	__u32 gen; /* the namespace's reading it is from: older ones are stale */
	char container_id[65];
	char pod_uid[37];
};

/* a namespace's latest reading of its addresses; gen 0: forgotten */
struct ns_gen {
	__u32 inum;
	__u32 gen;
};

/* a NAT tuple's level between checks */
struct nat_level {
	struct nat_ct_key key;
	enum level level;
	__u64 hot_ns;
	bool seen; /* in this check */
};

struct nat_view {
	struct nat_view_opts o;
	int epfd;
	struct nat_ns *ns;
	size_t nns, capns;
	struct u32_index ns_idx;
	/*
	 * every read namespace's addresses, appended at each reading (stale ones stay
	 * until the next check drops them: a reading costs its own addresses, never
	 * all of them)
	 */
	struct addr_ns *addrs;
	size_t naddrs, capaddrs;
	struct ns_gen *gens; /* by namespace: which reading is current */
	size_t ngens, capgens;
	struct u32_index gen_idx;
	__u32 next_gen;
	struct bytes_index addr_idx; /* by address, rebuilt at a check when addrs_changed */
	bool addrs_changed;
	struct nat_level *levels; /* the tuples of the latest check, and those not ok */
	size_t nlevels, caplevels;
	struct bytes_index level_idx; /* by key, rebuilt at each check */
	struct nat_row *rows;
	size_t nrows, caprows;
	struct nat_ns_row *nsrows;
	size_t nnsrows;
};

int nat_view_new(struct nat_view **out, const struct nat_view_opts *o)
{
	struct nat_view *v = calloc(1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	v->o = *o;
	v->ns_idx = (struct u32_index)U32_INDEX_INIT(struct nat_ns, inum);
	v->gen_idx = (struct u32_index)U32_INDEX_INIT(struct ns_gen, inum);
	v->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (v->epfd < 0) {
		free(v);
		return neg_errno();
	}
	*out = v;
	return 0;
}

static void ns_close(struct nat_view *v, struct nat_ns *n)
{
	if (n->ct) {
		epoll_ctl(v->epfd, EPOLL_CTL_DEL, nat_ct_fd(n->ct), NULL);
		nat_ct_close(n->ct);
	}
	nat_rules_free(&n->rules);
}

void nat_view_free(struct nat_view *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->nns; i++)
		ns_close(v, &v->ns[i]);
	close(v->epfd);
	u32_index_free(&v->ns_idx);
	free(v->ns);
	free(v->addrs);
	free(v->gens);
	u32_index_free(&v->gen_idx);
	free(v->addr_idx.slot);
	free(v->levels);
	free(v->level_idx.slot);
	free(v->rows);
	free(v->nsrows);
	free(v);
}

static void ns_remove(struct nat_view *v, long i)
{
	ns_close(v, &v->ns[i]);
	v->ns[i] = v->ns[--v->nns];
	u32_index_rebuild(&v->ns_idx, v->ns, v->nns);
}

/*
 * The pod and container of a namespace, from the cgroup of a process in it: the
 * first found (a pod's is its sandbox's, the lowest pid), whichever way the
 * namespace itself was found (a CNI's /run/netns/cni-... name, or the process)
 */
static void ns_pod(int pid, struct addr_ns *a)
{
	struct cgroup_ids ids;

	if (!cgroup_ids_of_pid(pid, &ids)) {
		memcpy(a->container_id, ids.container_id, sizeof(a->container_id));
		memcpy(a->pod_uid, ids.pod_uid, sizeof(a->pod_uid));
	}
}

/* the current reading of a namespace's addresses: set to gen (0: forget them) */
static int gen_set(struct nat_view *v, __u32 inum, __u32 gen)
{
	long i = u32_index_find(&v->gen_idx, v->gens, inum);

	v->addrs_changed = true;
	if (i >= 0) {
		v->gens[i].gen = gen;
		return 0;
	}
	if (!gen)
		return 0;
	if (array_grow(&v->gens, v->ngens, &v->capgens, sizeof(*v->gens), 64))
		return -ENOMEM;
	v->gens[v->ngens++] = (struct ns_gen){ .inum = inum, .gen = gen };
	if (u32_index_added(&v->gen_idx, v->gens, v->ngens)) {
		v->ngens--;
		return -ENOMEM;
	}
	return 0;
}

static bool addr_current(const struct nat_view *v, const struct addr_ns *a)
{
	long i = u32_index_find(&v->gen_idx, v->gens, a->netns);

	return i >= 0 && v->gens[i].gen == a->gen;
}

/* stale addresses and forgotten namespaces dropped, the address index made again */
static void addrs_compact(struct nat_view *v)
{
	size_t w = 0;

	for (size_t r = 0; r < v->naddrs; r++)
		if (addr_current(v, &v->addrs[r]))
			v->addrs[w++] = v->addrs[r];
	v->naddrs = w;
	w = 0;
	for (size_t r = 0; r < v->ngens; r++)
		if (v->gens[r].gen)
			v->gens[w++] = v->gens[r];
	if (w != v->ngens) {
		v->ngens = w;
		u32_index_rebuild(&v->gen_idx, v->gens, v->ngens);
	}
	if (!bytes_index_rebuild(&v->addr_idx, v->addrs, v->naddrs, sizeof(*v->addrs),
				 offsetof(struct addr_ns, addr), 16))
		v->addrs_changed = false;
}

/* the namespace's addresses as of now (getifaddrs: inside it); the old ones go stale */
static void addrs_read(struct nat_view *v, __u32 inum, int pid)
{
	struct addr_ns who = { .netns = inum, .gen = ++v->next_gen };
	struct ifaddrs *ifa, *i;

	if (!who.gen) /* 0 means forgotten: skipped when the count wraps */
		who.gen = ++v->next_gen;
	ns_pod(pid, &who);
	if (gen_set(v, inum, who.gen))
		return;
	if (getifaddrs(&ifa))
		return;
	for (i = ifa; i; i = i->ifa_next) {
		struct addr_ns a = who;
		int fam = i->ifa_addr ? i->ifa_addr->sa_family : AF_UNSPEC;

		if (fam == AF_INET)
			memcpy(a.addr, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
		else if (fam == AF_INET6)
			memcpy(a.addr, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
		else
			continue;
		/* loopback is everyone's: it names no namespace */
		if ((fam == AF_INET && a.addr[0] == 127) ||
		    (fam == AF_INET6 && IN6_IS_ADDR_LOOPBACK((struct in6_addr *)a.addr)))
			continue;
		if (array_grow(&v->addrs, v->naddrs, &v->capaddrs, sizeof(*v->addrs), 64))
			break;
		v->addrs[v->naddrs++] = a;
	}
	freeifaddrs(ifa);
}

int nat_view_read_ns(struct nat_view *v, __u32 inum, int pid)
{
	long i = u32_index_find(&v->ns_idx, v->ns, inum);
	unsigned int where = 0;
	struct nat_ns *n;
	__u32 gen;
	int err;

	err = nat_detect(&where);
	if (err)
		return err;
	/* every namespace's: one that translates may come later, and name it an origin */
	addrs_read(v, inum, pid);
	if (!where) {
		if (i >= 0)
			ns_remove(v, i);
		return 0;
	}
	if (i < 0) {
		struct nat_ct_opts co = { .rcvbuf = v->o.rcvbuf };
		struct nat_ct *ct = nat_ct_open(inum, &co);
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = inum };

		if (!ct)
			return neg_errno();
		if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, nat_ct_fd(ct), &ev)) {
			err = neg_errno();
			nat_ct_close(ct);
			return err;
		}
		if (array_grow(&v->ns, v->nns, &v->capns, sizeof(*v->ns), 8)) {
			epoll_ctl(v->epfd, EPOLL_CTL_DEL, nat_ct_fd(ct), NULL);
			nat_ct_close(ct);
			return -ENOMEM;
		}
		v->ns[v->nns++] = (struct nat_ns){ .inum = inum, .ct = ct };
		if (u32_index_added(&v->ns_idx, v->ns, v->nns)) {
			ns_remove(v, v->nns - 1);
			return -ENOMEM;
		}
		i = v->nns - 1;
	}
	n = &v->ns[i];
	n->where = where;
	/* the rules again only when the ruleset changed (legacy iptables has no generation) */
	err = nat_ruleset_gen(&gen);
	if (err || !n->have_gen || gen != n->gen || (where & NAT_IN_LEGACY)) {
		struct nat_rules fresh = { 0 };

		if (!nat_rules_read(&fresh)) {
			nat_rules_free(&n->rules);
			n->rules = fresh;
			n->gen = gen;
			n->have_gen = !err;
		} else {
			nat_rules_free(&fresh);
		}
	}
	if (!nat_ct_read_kstats(n->ct, &n->ks) && !n->have_ks) {
		n->ks_seen = n->ks;
		n->have_ks = true;
	}
	return 0;
}

void nat_view_forget(struct nat_view *v, __u32 inum)
{
	long i = u32_index_find(&v->ns_idx, v->ns, inum);

	if (i >= 0)
		ns_remove(v, i);
	gen_set(v, inum, 0);
}

int nat_view_fd(const struct nat_view *v)
{
	return v->nns ? v->epfd : -1;
}

void nat_view_process(struct nat_view *v)
{
	struct epoll_event ev[16];
	int n = epoll_wait(v->epfd, ev, 16, 0);

	for (int i = 0; i < n; i++) {
		long k = u32_index_find(&v->ns_idx, v->ns, ev[i].data.u32);

		if (k >= 0)
			nat_ct_process(v->ns[k].ct, EVENTS_PER_NS);
	}
}

/* a tuple's level: found among the latest check's, or new (appended, not indexed) */
static struct nat_level *level_of(struct nat_view *v, const struct nat_ct_key *key)
{
	long i = bytes_index_find(&v->level_idx, v->levels, sizeof(*v->levels),
				  offsetof(struct nat_level, key), sizeof(*key), key);

	if (i >= 0)
		return &v->levels[i];
	if (array_grow(&v->levels, v->nlevels, &v->caplevels, sizeof(*v->levels), 16))
		return NULL;
	v->levels[v->nlevels] = (struct nat_level){ .key = *key };
	return &v->levels[v->nlevels++];
}

/* the origins of a row: the NAT_ORIGINS_SHOWN with the most entries, most first */
static void origins_fill(const struct nat_view *v, const struct nat_ct *ct,
			 const struct nat_ct_tuple *t, struct nat_row *r)
{
	const struct nat_ct_origin *o = NULL;
	size_t n = 0;

	while ((o = nat_ct_next_origin(ct, t, o))) {
		struct nat_origin_row x = { .entries = o->count };
		size_t k;

		r->norigins++;
		memcpy(x.addr, o->addr, 16);
		for (k = n; k > 0 && r->origins[k - 1].entries < x.entries; k--)
			if (k < NAT_ORIGINS_SHOWN)
				r->origins[k] = r->origins[k - 1];
		if (k < NAT_ORIGINS_SHOWN) {
			r->origins[k] = x;
			n += n < NAT_ORIGINS_SHOWN;
		}
	}
	for (size_t k = 0; k < n; k++) {
		long a = bytes_index_find(&v->addr_idx, v->addrs, sizeof(*v->addrs),
					  offsetof(struct addr_ns, addr), 16, r->origins[k].addr);

		if (a < 0)
			continue;
		r->origins[k].netns = v->addrs[a].netns;
		memcpy(r->origins[k].container_id, v->addrs[a].container_id,
		       sizeof(r->origins[k].container_id));
		memcpy(r->origins[k].pod_uid, v->addrs[a].pod_uid, sizeof(r->origins[k].pod_uid));
	}
}

static int row_cmp(const void *a, const void *b)
{
	const struct nat_row *x = a, *y = b;

	if (x->utilization != y->utilization)
		return x->utilization < y->utilization ? 1 : -1;
	return x->usage < y->usage ? 1 : x->usage > y->usage ? -1 : 0;
}

static struct nat_row *row_add(struct nat_view *v)
{
	if (array_grow(&v->rows, v->nrows, &v->caprows, sizeof(*v->rows), 64))
		return NULL;
	memset(&v->rows[v->nrows], 0, sizeof(v->rows[0]));
	return &v->rows[v->nrows++];
}

void nat_emit_change(struct report *r, const struct nat_row *row, enum level was,
		     const struct nat_ns_row *ns, const struct nat_ct_kstats *seen);

void nat_view_check(struct nat_view *v, struct report *r, __u64 now)
{
	struct nat_ns_row *nsrows = realloc(v->nsrows, (v->nns + 1) * sizeof(*nsrows));
	size_t w = 0;

	if (v->addrs_changed)
		addrs_compact(v);

	v->nrows = 0;
	if (nsrows)
		v->nsrows = nsrows;
	v->nnsrows = nsrows ? v->nns : 0;
	for (size_t i = 0; i < v->nlevels; i++)
		v->levels[i].seen = false;
	for (size_t i = 0; i < v->nns; i++) {
		struct nat_ns *n = &v->ns[i];
		const struct nat_ct_tuple *t = NULL;
		struct nat_ns_row *nr = nsrows ? &nsrows[i] : NULL;
		bool failing;

		nat_ct_process(n->ct, EVENTS_PER_NS);
		/* the statistics file was opened inside the namespace: read from here */
		n->ks_check = n->ks;
		if (!nat_ct_read_kstats(n->ct, &n->ks) && !n->have_ks) {
			n->ks_seen = n->ks_check = n->ks;
			n->have_ks = true;
		}
		/* a NAT that found no port drops the packet and counts insert_failed */
		failing = n->have_ks && n->ks.insert_failed > n->ks_check.insert_failed;
		if (nr) {
			*nr = (struct nat_ns_row){ .netns = n->inum,
						   .where = n->where,
						   .ks = n->ks };
			nat_ct_get_stats(n->ct, &nr->st);
			nr->tuples = nr->st.tuples;
			nr->entries = nr->st.entries;
		}
		while ((t = nat_ct_next_tuple(n->ct, t))) {
			struct nat_row *row = row_add(v);
			struct nat_level *lv;
			enum level was;

			if (!row)
				break;
			row->key = t->key;
			row->usage = t->usage;
			memcpy(row->states, t->states, sizeof(row->states));
			nat_range_for(&n->rules, &v->o.override, t->key.family, t->key.protocol,
				      t->key.saddr, &row->range);
			row->capacity = nat_range_size(&row->range);
			row->utilization = row->capacity ? (double)row->usage / row->capacity : 1;
			lv = level_of(v, &t->key);
			if (!lv)
				continue;
			lv->seen = true;
			was = lv->level;
			lv->level = level_next(
				&v->o.alert, lv->level, row->utilization,
				failing && row->utilization >= v->o.alert.crit - v->o.alert.margin,
				now, &lv->hot_ns);
			row->level = lv->level;
			if (lv->level == was)
				continue;
			origins_fill(v, n->ct, t, row);
			nat_emit_change(r, row, was, nr, n->have_ks ? &n->ks_seen : NULL);
			n->ks_seen = n->ks;
		}
	}
	/* a tuple that is gone is ok again: it says so if it was not */
	for (size_t i = 0; i < v->nlevels; i++) {
		struct nat_level *lv = &v->levels[i];

		if (!lv->seen && lv->level != LEVEL_OK) {
			struct nat_row gone = { .key = lv->key, .level = LEVEL_OK };

			nat_emit_change(r, &gone, lv->level, NULL, NULL);
			lv->level = LEVEL_OK;
		}
		if (lv->level != LEVEL_OK || lv->seen)
			v->levels[w++] = *lv;
	}
	v->nlevels = w;
	bytes_index_rebuild(&v->level_idx, v->levels, v->nlevels, sizeof(*v->levels),
			    offsetof(struct nat_level, key), sizeof(struct nat_ct_key));
	if (v->nrows) /* qsort's array may not be NULL, even empty */
		qsort(v->rows, v->nrows, sizeof(*v->rows), row_cmp);
	/* the origins of the rows shown: query and metrics show the first ones */
	for (size_t i = 0; i < v->nrows; i++) {
		struct nat_row *row = &v->rows[i];
		long k = u32_index_find(&v->ns_idx, v->ns, row->key.netns);
		const struct nat_ct_tuple *t = k >= 0 ? nat_ct_find(v->ns[k].ct, &row->key) : NULL;

		row->norigins = 0;
		if (t)
			origins_fill(v, v->ns[k].ct, t, row);
	}
}

const struct nat_row *nat_view_rows(const struct nat_view *v, size_t *n)
{
	*n = v->nrows;
	return v->rows;
}

const struct nat_ns_row *nat_view_namespaces(const struct nat_view *v, size_t *n)
{
	*n = v->nnsrows;
	return v->nsrows;
}

struct metrics_nat nat_view_metrics(const struct nat_view *v)
{
	if (!v)
		return (struct metrics_nat){ .enabled = false };
	return (struct metrics_nat){ .enabled = true,
				     .rows = v->rows,
				     .nrows = v->nrows,
				     .ns = v->nsrows,
				     .nns = v->nnsrows };
}

size_t nat_view_active(const struct nat_view *v)
{
	size_t n = 0;

	for (size_t i = 0; i < v->nrows; i++)
		n += v->rows[i].level != LEVEL_OK;
	return n;
}
