// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's upkeep between checks: the round of network namespaces (found,
 * read inside, forgotten when gone) and forgetting what no longer holds a
 * port, so that the maps do not fill with the past.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent.h"
#include "cgroup.h"
#include "ephport.skel.h"

static void netns_forget(const struct netns *ns, void *arg)
{
	struct agent *a = arg;

	bpf_map_delete_elem(bpf_map__fd(a->skel->maps.netns_info), &ns->inum);
	if (a->nat)
		nat_view_forget(a->nat, ns->inum);
}

/* a namespace to read, and whether it holds tuples */
struct to_read {
	struct netns *ns;
	bool tuples;
};

/* never read before read ones, among those the ones with tuples first, then the oldest */
static int to_read_cmp(const void *a, const void *b)
{
	const struct to_read *x = a, *y = b;

	if (!x->ns->tried_ns != !y->ns->tried_ns)
		return x->ns->tried_ns ? 1 : -1;
	if (x->tuples != y->tuples)
		return x->tuples ? -1 : 1;
	return x->ns->tried_ns < y->ns->tried_ns ? -1 : x->ns->tried_ns > y->ns->tried_ns;
}

/*
 * A namespace's pod, from the cgroup of its first process (the lowest pid: usually
 * a pod's sandbox), read again when that process changes, so a namespace whose
 * inode number is reused comes with its own. The process must still be in the
 * namespace after the read, or a pid reused meanwhile would name another pod.
 * True when *pod was written; what cannot be read now is tried at the next round.
 */
static bool netns_pod_read(struct netns *ns, struct netns_pod *pod)
{
	struct cgroup_ids ids = { 0 };
	char path[40];
	struct stat st;

	if (ns->pid == ns->pod_pid)
		return false;
	if (ns->pid) { /* none: a /run/netns name that no process is in */
		snprintf(path, sizeof(path), "/proc/%d/ns/net", ns->pid);
		if (cgroup_ids_of_pid(ns->pid, &ids) || stat(path, &st) ||
		    (__u32)st.st_ino != ns->inum)
			return false;
	}
	cgroup_ids_pack(&ids, pod);
	ns->pod_pid = ns->pid;
	return true;
}

/* one namespace's settings read inside it; -errno only when the agent cannot come home */
static int netns_read_one(struct agent *a, struct netns *ns, int info_fd)
{
	struct netns_info fresh;
	int err;

	ns->tried_ns = mono_ns();
	if (netns_enter(ns)) {
		a->netns_unreachable++;
		return 0;
	}
	/* a reading that fails leaves the last one */
	fresh = ns->info;
	err = netns_read_info(&fresh);
	/* one that cannot be read keeps the last mask: the guard goes on spreading as it did */
	if (!err && a->opts.nspread)
		spread_local_read(a->opts.spread, a->opts.nspread, &fresh.spread_local);
	/* a reading that fails leaves what it had: the next round tries again */
	if (!err && a->nat)
		nat_view_read_ns(a->nat, ns->inum, ns->pid);
	if (netns_leave(ns, a->home_fd)) {
		eph_err("cannot return to the agent's network namespace: %s", strerror(errno));
		return neg_errno();
	}
	if (err)
		return 0;
	netns_pod_read(ns, &fresh.pod);
	ns->info = fresh;
	ns->info.checked_ns = mono_ns();
	snprintf(ns->info.path, sizeof(ns->info.path), "%s",
		 ns->home ? "/proc/self/ns/net" : ns->path);
	bpf_map_update_elem(info_fd, &ns->inum, &ns->info, BPF_ANY);
	return 0;
}

/* those already read that hold tuples, or the agent's own, oldest first */
static int renew_cmp(const void *a, const void *b)
{
	const struct to_read *x = a, *y = b;

	return x->ns->tried_ns < y->ns->tried_ns ? -1 : x->ns->tried_ns > y->ns->tried_ns;
}

/*
 * Finds the namespaces there are now and reads their settings, kept for the
 * checks and published in "netns_info".
 * One found after the start-up is newer than the programs: its sockets were all
 * counted as they came. Coming back home must work: anything else would leave
 * the agent elsewhere.
 * A round reads for NETNS_ROUND_NS at most, unless all is set (start-up). Its
 * first half renews, oldest first, the namespaces already read that hold tuples
 * (and the agent's own); the rest goes to the namespaces never read (those with
 * tuples before the others), then to those read longest ago. So a user who
 * makes namespaces by the thousand (unshare -rn needs no privilege) slows the
 * first reading of theirs, never a check, nor the renewal of the namespaces
 * whose connections are counted.
 */
int agent_netns_round(struct agent *a, bool all)
{
	int info_fd = bpf_map__fd(a->skel->maps.netns_info);
	struct to_read *order, *renew;
	size_t nrenew = 0;
	__u64 start;
	int err;

	err = netns_discover(&a->netns, "/proc/self/ns/net");
	if (!err)
		err = netns_prune(&a->netns, netns_forget, a);
	if (err) {
		eph_err("cannot list network namespaces: %s", strerror(-err));
		return err;
	}
	/* the pods of those read before, where their first process changed: no setns needed */
	for (size_t i = 0; i < a->netns.len; i++) {
		struct netns *ns = &a->netns.items[i];

		if (ns->info.checked_ns && netns_pod_read(ns, &ns->info.pod))
			bpf_map_update_elem(info_fd, &ns->inum, &ns->info, BPF_ANY);
	}
	order = malloc((a->netns.len + 1) * sizeof(*order));
	renew = malloc((a->netns.len + 1) * sizeof(*renew));
	if (!order || !renew) {
		free(order);
		free(renew);
		eph_err("cannot allocate memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < a->netns.len; i++) {
		order[i].ns = &a->netns.items[i];
		order[i].tuples = table_ns(&a->table, order[i].ns->inum) != NULL;
		if (order[i].ns->tried_ns && (order[i].tuples || order[i].ns->home))
			renew[nrenew++] = order[i];
	}
	qsort(order, a->netns.len, sizeof(*order), to_read_cmp);
	qsort(renew, nrenew, sizeof(*renew), renew_cmp);
	start = mono_ns();
	for (size_t i = 0; !err && !all && i < nrenew; i++) {
		if (i && mono_ns() - start >= NETNS_ROUND_NS / 2)
			break;
		err = netns_read_one(a, renew[i].ns, info_fd);
	}
	for (size_t i = 0; !err && i < a->netns.len; i++) {
		if (order[i].ns->tried_ns >= start)
			continue; /* renewed above */
		if (!all && mono_ns() - start >= NETNS_ROUND_NS)
			break;
		err = netns_read_one(a, order[i].ns, info_fd);
	}
	free(order);
	free(renew);
	return err;
}

static bool tuple_idle(const struct tuple *t, __u64 now_ns, __u64 idle_ns)
{
	/* a connect newer than now_ns (it came after the clock was read) is not idle */
	return !t->in_use && !t->val.states[EPH_TCP_TIME_WAIT] &&
	       t->val.last_connect_ns <= now_ns && now_ns - t->val.last_connect_ns >= idle_ns;
}

/*
 * Forget tuples with no socket in use and no connect for --tuple-idle seconds, so
 * that a host talking to ever new destinations does not fill the map for good.
 * In two steps, a snapshot apart: marked retiring, then deleted if still idle
 * and no connect took the mark back (bpf/count.bpf.c). A connect() that reads
 * the tuple in the microseconds between the agent's last look and its delete is
 * counted in a tuple that is gone: the agent sees the mark taken back after the
 * delete and counts it (tuple_retire_races). docs/capacity.md.
 */
static size_t expire_idle(struct agent *a)
{
	int fd = bpf_map__fd(a->skel->maps.tuples), rfd = bpf_map__fd(a->skel->maps.retiring);
	const struct tuple_list *l = &a->table.list;
	__u64 idle_ns = a->opts.tuple_idle * 1000000000ull, now_ns = mono_ns();
	struct tuple fresh;
	size_t expired = 0, n = 0;
	__u8 one = 1;

	/* the second step for the ones marked last time: no program reads old marks now */
	if (a->nretiring && bpf_sync(&a->startup))
		a->nretiring = 0;
	for (size_t i = 0; i < a->nretiring; i++) {
		fresh.key = a->retiring[i];
		if (bpf_map_lookup_elem(rfd, &fresh.key, &one))
			continue; /* a connect took it back */
		if (!bpf_map_lookup_elem(fd, &fresh.key, &fresh.val)) {
			tuple_finish(&fresh);
			if (tuple_idle(&fresh, now_ns, idle_ns) &&
			    !bpf_map_delete_elem(fd, &fresh.key)) {
				expired++;
				retired_add(&a->retired, &fresh);
				table_remove(&a->table, &fresh.key);
			}
		}
		if (bpf_map_delete_elem(rfd, &fresh.key))
			a->retire_races++;
	}
	a->nretiring = 0;
	a->skel->bss->retiring_count = 0;
	if (!a->opts.tuple_idle)
		goto out;
	for (size_t i = 0; i < l->len && n < MAX_RETIRING; i++) {
		if (!tuple_idle(&l->items[i], now_ns, idle_ns) ||
		    bpf_map_update_elem(rfd, &l->items[i].key, &one, BPF_NOEXIST))
			continue;
		a->retiring[n++] = l->items[i].key;
	}
	a->nretiring = n;
	a->skel->bss->retiring_count = n;
out:
	a->tuples_expired += expired;
	return expired;
}

static bool port_val_zero(const void *v)
{
	const struct port_val *p = v;

	return p->listeners <= 0 && p->bound <= 0;
}

static bool s64_zero(const void *v)
{
	return *(const __s64 *)v == 0;
}

static bool s32_none(const void *v)
{
	return *(const __s32 *)v <= 0;
}

/*
 * Ports no longer held, local TIME_WAIT counts back at zero, (cgroup,
 * destination) pairs holding no socket, so that a host binding ever new ports
 * or a node starting ever new pods does not fill the maps. Read again right
 * before the delete; a socket taking that entry in the microseconds between is
 * not counted (for --quota: the cgroup may open one socket more).
 */
static void prune_zero(int fd, size_t ksz, size_t vsz, bool (*is_zero)(const void *))
{
	char *keys, *vals, fresh[16];
	size_t n;

	if (vsz > sizeof(fresh) || map_read_all(fd, ksz, vsz, (void **)&keys, (void **)&vals, &n))
		return;
	for (size_t i = 0; i < n; i++)
		if (is_zero(vals + i * vsz) && !bpf_map_lookup_elem(fd, keys + i * ksz, fresh) &&
		    is_zero(fresh))
			bpf_map_delete_elem(fd, keys + i * ksz);
	free(keys);
	free(vals);
}

/* refusals of tuples the agent no longer has: they go with their tuple */
static void prune_denials(struct agent *a)
{
	int fd = bpf_map__fd(a->skel->maps.denials);
	struct denial_key *keys;
	__u64 *vals;
	size_t n;

	if (map_read_all(fd, sizeof(*keys), sizeof(*vals), (void **)&keys, (void **)&vals, &n))
		return;
	for (size_t i = 0; i < n; i++)
		if (!table_find(&a->table, &keys[i].tuple))
			bpf_map_delete_elem(fd, &keys[i]);
	free(keys);
	free(vals);
}

/*
 * At each snapshot: ports, TIME_WAIT counts and quota counts back at zero,
 * tuples idle too long and the refusals counted for them, forgotten.
 */
void agent_forget(struct agent *a)
{
	prune_zero(bpf_map__fd(a->skel->maps.ports), sizeof(struct port_key),
		   sizeof(struct port_val), port_val_zero);
	prune_zero(bpf_map__fd(a->skel->maps.local_tw), sizeof(struct port_key), sizeof(__s64),
		   s64_zero);
	prune_zero(bpf_map__fd(a->skel->maps.cg_ports), sizeof(struct quota_key), sizeof(__s32),
		   s32_none);
	expire_idle(a);
	prune_denials(a);
	spreads_prune(a->spreads, &a->table);
}

/*
 * The counts the programs share the tuples map by (tuple_room in
 * bpf/maps.bpf.h): the map's, and, from half way to the sharing on, each
 * namespace's. The programs add one at each tuple they make; at each check the
 * agent adds what its table says they lack (tuples made before the counting,
 * forgotten ones), measured against the counts as they were before the table
 * was read (agent_share_snapshot). It never writes a count over: a tuple a
 * program made and counted meanwhile stays counted. Written over with the
 * table's counts, it was lost until the next check, and a namespace making
 * tuples fast went past its share by as many as it made in that time (84 in a
 * TCG guest of Debian's 6.12, which filled a 400-tuple map). A tuple made
 * between the snapshot and the table's reading is counted twice until the next
 * check: too many, never too few.
 */
void agent_share_snapshot(struct agent *a)
{
	int fd = bpf_map__fd(a->skel->maps.ns_tuples);

	a->share_count = __atomic_load_n(&a->skel->bss->tuples_count, __ATOMIC_SEQ_CST);
	free(a->share_keys);
	free(a->share_vals);
	a->share_keys = NULL;
	a->share_vals = NULL;
	a->share_n = 0;
	if (map_read_all(fd, sizeof(*a->share_keys), sizeof(*a->share_vals),
			 (void **)&a->share_keys, (void **)&a->share_vals, &a->share_n)) {
		a->share_keys = NULL;
		a->share_vals = NULL;
		a->share_n = 0;
	}
}

struct share_adj {
	int adj_fd, fd;
	const struct agent *a;
	__u32 *keys; /* those written to ns_tuples_adj */
	size_t n, cap;
};

static void share_adj_add(struct share_adj *s, __u32 inum, __s64 delta)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		__u32 *keys = realloc(s->keys, cap * sizeof(*keys));

		if (!keys)
			return;
		s->keys = keys;
		s->cap = cap;
	}
	if (!bpf_map_update_elem(s->adj_fd, &inum, &delta, BPF_ANY))
		s->keys[s->n++] = inum;
}

/* a namespace with tuples the snapshot had no count for */
static void share_new_ns(const struct ns_agg *ns, void *arg)
{
	struct share_adj *s = arg;
	const struct agent *a = s->a;

	for (size_t i = 0; i < a->share_n; i++)
		if (a->share_keys[i] == ns->inum)
			return;
	if (ns->ntuples > 0)
		share_adj_add(s, ns->inum, ns->ntuples);
}

void agent_tuples_share(struct agent *a)
{
	struct share_adj s = {
		.adj_fd = bpf_map__fd(a->skel->maps.ns_tuples_adj),
		.fd = bpf_map__fd(a->skel->maps.ns_tuples),
		.a = a,
	};
	__u64 n = a->table.list.len;
	char buf[64];
	ssize_t r;
	int it;

	/* what the map lacks or has too many of: added, as the programs add */
	if (n != a->share_count)
		__atomic_fetch_add(&a->skel->bss->tuples_count, n - a->share_count,
				   __ATOMIC_SEQ_CST);
	a->ns_share_counting = a->opts.max_tuples >= TUPLES_SHARE_MIN &&
			       n >= TUPLES_SHARE_FROM(a->opts.max_tuples) / 2;
	for (size_t i = 0; i < a->share_n; i++) {
		const struct ns_agg *ns = table_ns(&a->table, a->share_keys[i]);
		__s64 have = ns ? ns->ntuples : 0, delta = have - a->share_vals[i];

		/* not counting, or a namespace without tuples: a count a program
		 * makes meanwhile is lost, and found missing at the next check */
		if (!a->ns_share_counting || (!have && !a->share_vals[i]))
			bpf_map_delete_elem(s.fd, &a->share_keys[i]);
		else if (delta)
			share_adj_add(&s, a->share_keys[i], delta);
	}
	if (a->ns_share_counting)
		table_ns_each(&a->table, share_new_ns, &s);
	if (!s.n) {
		free(s.keys);
		return;
	}
	/* bpf/maps.bpf.c: each difference added to the count with an atomic add */
	it = bpf_iter_create(bpf_link__fd(a->skel->links.ns_tuples_adjust));
	if (it >= 0) {
		while ((r = read(it, buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR))
			;
		close(it);
	}
	for (size_t i = 0; i < s.n; i++)
		bpf_map_delete_elem(s.adj_fd, &s.keys[i]);
	free(s.keys);
}
