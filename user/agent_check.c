// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's check, twice a second: the tuples that changed read afresh
 * (agent_refresh, also for each query), failures and pressure, the guard's
 * list, /metrics. Its work follows what changed, not how many tuples there are.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent.h"
#include "ephport.skel.h"

#define METRICS_STALE_NS 5000000000ull /* /metrics rendered at least this often */

/* keys of the tuples that changed, as the kernel sent them: at most what a full read costs */
static int on_change(void *ctx, void *data, size_t size)
{
	struct agent *a = ctx;

	if (size < sizeof(struct tuple_key) || a->chg_overflow)
		return 0;
	if (a->nchg == a->capchg) {
		size_t cap = a->capchg ? a->capchg * 2 : 256;
		struct tuple_key *k;

		if (a->nchg > a->table.list.len / 4 + 1024 ||
		    !(k = realloc(a->chg_keys, cap * sizeof(*k)))) {
			a->chg_overflow = true;
			return 0;
		}
		a->chg_keys = k;
		a->capchg = cap;
	}
	memcpy(&a->chg_keys[a->nchg++], data, sizeof(struct tuple_key));
	return 0;
}

/* a namespace's settings a tuple's capacity depends on: changed, its tuples are computed again */
static bool ns_capacity_same(const struct ns_summary *x, const struct ns_summary *y)
{
	return x && y && x->port_range == y->port_range && x->tw_reuse == y->tw_reuse &&
	       x->has_info == y->has_info && x->bound_in_range == y->bound_in_range &&
	       (!x->has_info || x->info.reserved == y->info.reserved);
}

static void capacity_update(struct agent *a, struct ns_list *old)
{
	struct tuple_table *t = &a->table;
	__u32 *redo = calloc(a->latest_ns.len + 1, sizeof(*redo));
	size_t nredo = 0;

	for (size_t i = 0; redo && !t->all_changed && i < a->latest_ns.len; i++) {
		struct ns_summary *now = &a->latest_ns.items[i];

		if (!ns_capacity_same(now, ns_find(old, now->inum, false)))
			redo[nredo++] = now->inum;
	}
	if (!redo || t->all_changed || nredo) {
		/* rare: a namespace's range, reuse, reserved or bound ports changed */
		for (size_t i = 0; i < t->list.len; i++) {
			struct tuple *x = &t->list.items[i];

			if (!redo || t->all_changed ||
			    bsearch(&x->key.netns, redo, nredo, sizeof(*redo), u32_cmp))
				tuple_capacity(x, ns_find(&a->latest_ns, x->key.netns, false));
		}
		a->capacity_redone = true;
		t->version++;
	}
	free(redo);
	for (size_t i = 0; i < t->nchanges; i++) {
		struct tuple *x = table_find(t, &t->changes[i].key);

		if (x)
			tuple_capacity(x, ns_find(&a->latest_ns, x->key.netns, false));
	}
}

static struct ns_limits ns_limits_of(const struct ns_summary *ns)
{
	struct ns_limits l = { .bound = ns ? ns->bound_in_range : 0 };

	if (ns && ns->has_info) {
		l.reserved = ns->info.reserved;
		l.spread_local = ns->info.spread_local;
	}
	return l;
}

/*
 * What the programs need of each namespace for capacities and spreading
 * ("ns_limits"), written where it changed: an entry only where one is not 0.
 */
static void ns_limits_update(struct agent *a, const struct ns_list *old)
{
	int fd = bpf_map__fd(a->skel->maps.ns_limits);

	for (size_t i = 0; i < a->latest_ns.len; i++) {
		const struct ns_summary *now = &a->latest_ns.items[i];
		struct ns_limits l = ns_limits_of(now),
				 was = ns_limits_of(ns_lookup(old, now->inum));

		if (!memcmp(&l, &was, sizeof(l)) && ns_lookup(old, now->inum))
			continue;
		if (l.reserved || l.bound || l.spread_local)
			bpf_map_update_elem(fd, &now->inum, &l, BPF_ANY);
		else
			bpf_map_delete_elem(fd, &now->inum);
	}
	for (size_t i = 0; i < old->len; i++)
		if (!ns_lookup(&a->latest_ns, old->items[i].inum))
			bpf_map_delete_elem(fd, &old->items[i].inum);
}

/*
 * The tuples that changed since the last check read afresh, the namespaces
 * from their maps, the capacities that could have moved computed again. The
 * whole map is read at start-up and when "changes" lost a key.
 */
int agent_refresh(struct agent *a)
{
	int fd = bpf_map__fd(a->skel->maps.tuples), err;
	__u64 lost = a->skel->bss->changes_lost;
	struct ns_list old = a->latest_ns;

	/* the counts the table is to set right, before the table is read */
	agent_share_snapshot(a);
	/* first: a change from now on sends its key again (bpf/maps.bpf.h) */
	a->skel->data->agent_gen++;
	a->nchg = 0;
	a->chg_overflow = false;
	err = ring_buffer__consume(a->changes);
	if (err >= 0 && (a->full_read || a->chg_overflow || lost != a->changes_lost)) {
		a->full_reads += !a->full_read;
		a->full_read = false;
		a->changes_lost = lost;
		err = table_read_all(&a->table, fd);
	} else if (err >= 0) {
		err = table_read_keys(&a->table, fd, a->chg_keys, a->nchg);
	}
	memset(&a->latest_ns, 0, sizeof(a->latest_ns));
	/* each namespace's settings as the agent read them inside, from memory: the
	 * "netns_info" map is for others to read */
	for (size_t i = 0; err >= 0 && i < a->netns.len; i++)
		if (a->netns.items[i].info.checked_ns)
			err = ns_set_info(&a->latest_ns, a->netns.items[i].inum,
					  &a->netns.items[i].info);
	if (err >= 0)
		err = ns_list_build(&a->latest_ns, NULL, &a->table, -1,
				    bpf_map__fd(a->skel->maps.ports),
				    bpf_map__fd(a->skel->maps.local_tw));
	if (err < 0) {
		ns_list_free(&old);
		a->full_read = true;
		eph_err("cannot read the BPF maps: %s", strerror(-err));
		return err;
	}
	capacity_update(a, &old);
	ns_limits_update(a, &old);
	ns_list_free(&old);
	return 0;
}

/* the tuples, most used first, as indices into the table; sorted again only after a change */
const __u32 *agent_sorted_view(struct agent *a)
{
	const struct tuple_table *t = &a->table;
	__u32 *idx;

	if (a->order && a->order_version == t->version)
		return a->order;
	idx = realloc(a->order, (t->list.len + 1) * sizeof(*idx));
	if (!idx)
		return NULL;
	for (size_t i = 0; i < t->list.len; i++)
		idx[i] = i;
	tuple_index_sort(&t->list, idx, t->list.len);
	a->order = idx;
	a->order_version = t->version;
	return idx;
}

/*
 * A tuple started failing: its line goes out now, and a check follows at once.
 * A (tuple, cgroup) was first spread to: its line goes out now.
 */
static int on_notice(void *ctx, void *data, size_t size)
{
	struct agent *a = ctx;
	const struct notice *n = data;

	if (size < sizeof(*n))
		return 0;
	if (n->type == NOTICE_SPREAD) {
		spreads_notice(a->spreads, &n->spread, mono_ns());
	} else if (n->type == NOTICE_FAILURE) {
		failures_notice(a->failures, &n->key, &a->latest_ns, &a->table, mono_ns());
		a->check_now = true;
	}
	return 0;
}

/* for a pressure line's hints: how --spread stands for the tuple's destination */
static void spread_state_of(void *ctx, const struct tuple *t, const struct ns_summary *ns,
			    struct spread_state *st)
{
	struct agent *a = ctx;

	spreads_state(a->spreads, t, ns, &a->table, st);
}

/* what alerts need: pressure levels, failure lines, the notice ring buffer */
int agent_watch_setup(struct agent *a)
{
	struct alert_cfg cfg = {
		.warn = a->opts.warn,
		.crit = a->opts.crit,
		.margin = a->opts.margin,
		.hold_ns = a->opts.hold * 1000000000ull,
		/* rates and top processes: over the last interval, 2 to 30 s */
		.window_ns = (a->opts.interval < 2  ? 2 :
			      a->opts.interval > 30 ? 30 :
						      a->opts.interval) *
			     1000000000ull,
	};

	if (pressure_new(&a->pressure, &cfg, &a->report) ||
	    failures_new(&a->failures, bpf_map__fd(a->skel->maps.failures), &a->report,
			 a->pressure) ||
	    spreads_new(&a->spreads, bpf_map__fd(a->skel->maps.spreads), &a->report)) {
		eph_err("out of memory");
		return -ENOMEM;
	}
	pressure_spread_hook(a->pressure, spread_state_of, a);
	if (!a->opts.no_nat) {
		struct nat_view_opts no = {
			.alert = cfg,
			.override = a->opts.nat_range,
		};

		no.alert.warn = a->opts.nat_warn;
		no.alert.crit = a->opts.nat_crit;
		if (nat_view_new(&a->nat, &no)) {
			eph_err("cannot set up the source NAT view: %s", strerror(errno));
			return -ENOMEM;
		}
	}
	a->notices = ring_buffer__new(bpf_map__fd(a->skel->maps.notices), on_notice, a, NULL);
	if (!a->notices) {
		eph_err("cannot set up the notice ring buffer: %s", strerror(errno));
		return neg_errno();
	}
	a->changes = ring_buffer__new(bpf_map__fd(a->skel->maps.changes), on_change, a, NULL);
	if (!a->changes) {
		eph_err("cannot set up the changes ring buffer: %s", strerror(errno));
		return neg_errno();
	}
	a->full_read = true;
	return 0;
}

/* /metrics from this check's reading; the previous text stays if this one fails */
static void metrics_update(struct agent *a)
{
	const struct tuple_list *l = &a->table.list;
	struct agent_stats st = { .max_tuples = a->opts.max_tuples };
	struct cost_reading cost;
	struct timespec now;
	struct text t = { 0 };
	__u64 *denials = NULL, denials_total = 0;
	struct netns_count *denials_netns = NULL;
	size_t denials_nnetns = 0;
	__u64 *spreads = NULL, spreads_total = 0;
	struct netns_count *spreads_netns = NULL;
	size_t spreads_nnetns = 0;
	__u8 *levels = calloc(l->len + 1, sizeof(*levels));

	/* the text wants the tuples it shows one by one first, most used first */
	if (!levels || table_top(&a->table, a->opts.metrics_top))
		goto out;
	pressure_levels(a->pressure, &a->table, levels);
	if (a->guard.mode != GUARD_OFF) {
		denials = calloc(l->len + 1, sizeof(*denials));
		if (denials &&
		    guard_denials_sums(bpf_map__fd(a->skel->maps.denials), l, denials,
				       &denials_netns, &denials_nnetns, &denials_total)) {
			free(denials);
			denials = NULL;
		}
	}
	if (a->guard.mode != GUARD_OFF && a->guard.nspread) {
		spreads = calloc(l->len + 1, sizeof(*spreads));
		if (spreads && spreads_sums(a->spreads, l, spreads, &spreads_netns, &spreads_nnetns,
					    &spreads_total)) {
			free(spreads);
			spreads = NULL;
		}
	}
	cost_read(&a->cost, &cost);
	clock_gettime(CLOCK_REALTIME, &now);
	retired_prune(&a->retired, &a->latest_ns);
	metrics_render(
		&(struct metrics_view){
			.tuples = l,
			.ns = &a->latest_ns,
			.levels = levels,
			.denials = denials,
			.denials_netns = denials_netns,
			.denials_nnetns = denials_nnetns,
			.denials_total = denials_total,
			.spreads = spreads,
			.spreads_netns = spreads_netns,
			.spreads_nnetns = spreads_nnetns,
			.spreads_total = spreads_total,
			.top = a->opts.metrics_top,
			.retired = &a->retired,
			.stats = stats_read(bpf_map__fd(a->skel->maps.stats), &st) ? NULL : &st,
			.cost = &cost,
			.max_tuples = a->opts.max_tuples,
			.lines_dropped = report_dropped(&a->report),
			.output_errors = sink_errors(a->report.sink),
			.checks = a->checks,
			.last_check_s = now.tv_sec + now.tv_nsec / 1e9,
			.start_time_s = a->start_time_s,
			.version = EPHPORT_VERSION,
			.nat = nat_view_metrics(a->nat),
		},
		&t);
	metrics_publish(a->metrics, &t);
out:
	free(levels);
	free(denials);
	free(denials_netns);
	free(spreads);
	free(spreads_netns);
}

/* a tuple near the guard's line, before or after this check's changes */
static bool guard_concerned(const struct agent *a)
{
	const struct tuple_table *t = &a->table;
	double half = (double)a->skel->rodata->watch_ppm / PPM;

	if (t->all_changed || a->capacity_redone)
		return true;
	for (size_t i = 0; i < t->nchanges; i++) {
		const struct tuple *x = table_find(t, &t->changes[i].key);

		if (t->changes[i].old_util >= half || (x && x->utilization >= half))
			return true;
	}
	return false;
}

/*
 * A check: the tuples that changed read afresh, failures reported, levels
 * moved, the guard's list and /metrics brought up to date. Twice a second, and
 * at once (within CHECK_GAP_NS) when a notice says a tuple just started
 * failing, so a level change shows within a second. What it costs follows what
 * changed: with nothing changed only the tuples being watched are looked at.
 */
int agent_check(struct agent *a)
{
	__u64 now = mono_ns();
	bool changed;
	int err;

	fw2_sweep(a->skel);
	err = agent_refresh(a);
	if (err)
		return err;
	a->checks++;
	a->last_check = now;
	a->skel->bss->agent_clock_ns = now;
	agent_tuples_share(a);
	a->check_now = false;
	changed = a->table.all_changed || a->table.nchanges || a->capacity_redone;
	/* failures first: they tell the pressure check which tuples are failing */
	failures_drain(a->failures, &a->latest_ns, &a->table, now, false);
	spreads_drain(a->spreads, now, false);
	pressure_openers(a->pressure, bpf_map__fd(a->skel->maps.openers), now);
	err = pressure_check(a->pressure, &a->table, &a->latest_ns, now, a->capacity_redone);
	if (err)
		eph_err("pressure check: %s", strerror(-err));
	if (a->nat)
		nat_view_check(a->nat, &a->report, now);
	if (a->guard.mode != GUARD_OFF && guard_concerned(a)) {
		size_t uncovered = 0;

		struct guard_maps m = {
			.dst_fd = bpf_map__fd(a->skel->maps.guard_dst),
			.tuples_fd = bpf_map__fd(a->skel->maps.tuples),
			.count = &a->skel->bss->guard_dst_count,
		};

		err = guard_refresh(&m, &a->table.list, &a->latest_ns, a->skel->rodata->watch_ppm,
				    &uncovered);
		if (err < 0)
			eph_err("guard: cannot update the destinations near the line: %s",
				strerror(-err));
		if (uncovered && !a->guard_uncovered)
			eph_err("guard: %zu destinations near the line do not fit in guard_dst "
				"(%u): the furthest from it, and the most of any one namespace, "
				"are "
				"not guarded",
				uncovered, MAX_GUARD_DST);
		a->guard_uncovered = uncovered;
	}
	/* with nothing changed the text stays, its health figures renewed every few seconds */
	if (a->metrics && (changed || now - a->metrics_ns >= METRICS_STALE_NS)) {
		metrics_update(a);
		a->metrics_ns = now;
	}
	if (a->metrics)
		metrics_beat(a->metrics);
	table_changes_clear(&a->table);
	a->capacity_redone = false;
	cost_check_done(&a->cost, mono_ns() - now);
	return 0;
}
