// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ephport agent: load the BPF side, publish its maps, print JSON lines. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent.h"
#include "objects.h"
#include "cgroup.h"
#include "ephport.skel.h"

#define CHECK_EVERY_NS 500000000ull /* pressure checks: twice a second */
#define CHECK_GAP_NS   50000000ull  /* at most this often when notices ask for one */
#define MAX_QUERIES_AT_ONCE 4 /* then the loop goes on; the rest wait in the backlog */
#define METRICS_STALE_NS 5000000000ull /* /metrics rendered at least this often */

static volatile sig_atomic_t stop_signal, reopen_signal;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reopen_signal = 1;
	else
		stop_signal = sig;
}

static bool verbose;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	(void)level;
	/* without --verbose our own one-line errors say what failed */
	return verbose ? vfprintf(stderr, fmt, args) : 0;
}

/*
 * Finds the namespaces there are now and reads their settings for "netns_info".
 * One found after the start-up is newer than the programs: its sockets were all
 * counted as they came. Coming back home must work: anything else would leave
 * the agent elsewhere.
 */
static int netns_round(struct agent *a)
{
	int info_fd = bpf_map__fd(a->skel->maps.netns_info);
	size_t kept = 0;
	int err;

	err = netns_discover(&a->netns, "/proc/self/ns/net");
	if (err) {
		eph_err("cannot list network namespaces: %s", strerror(-err));
		return -1;
	}
	for (size_t i = 0; i < a->netns.len; i++) {
		struct netns *ns = &a->netns.items[i];

		if (!ns->alive) {
			bpf_map_delete_elem(info_fd, &ns->inum);
			continue;
		}
		a->netns.items[kept++] = *ns;
		ns = &a->netns.items[kept - 1];
		if (netns_enter(ns)) {
			a->netns_unreachable++;
			continue;
		}
		err = netns_read_info(&ns->info);
		if (netns_leave(ns, a->home_fd)) {
			eph_err("cannot return to the agent's network namespace: %s",
				strerror(errno));
			return -1;
		}
		if (err)
			continue;
		ns->info.checked_ns = mono_ns();
		snprintf(ns->info.path, sizeof(ns->info.path), "%s",
			 ns->home ? "/proc/self/ns/net" : ns->path);
		bpf_map_update_elem(info_fd, &ns->inum, &ns->info, BPF_ANY);
	}
	a->netns.len = kept;
	return 0;
}

static int guard_to_json(struct agent *a, cJSON *settings)
{
	cJSON *g, *ex;

	if (a->guard.mode == GUARD_OFF)
		return cJSON_AddNullToObject(settings, "guard") ? 0 : -ENOMEM;
	g = cJSON_AddObjectToObject(settings, "guard");
	if (!g || guard_info_to_json(&a->guard, g) || !(ex = cJSON_AddArrayToObject(g, "exempt")))
		return -ENOMEM;
	for (size_t i = 0; i < a->opts.nexempt; i++)
		if (!cJSON_AddItemToArray(ex, cJSON_CreateString(a->opts.exempt[i])))
			return -ENOMEM;
	return 0;
}

static int metrics_to_json(struct agent *a, cJSON *settings)
{
	char url[128];
	cJSON *m;

	if (!a->metrics)
		return cJSON_AddNullToObject(settings, "metrics") ? 0 : -ENOMEM;
	if (!(m = cJSON_AddObjectToObject(settings, "metrics")) ||
	    !cJSON_AddStringToObject(m, "addr", a->opts.metrics_addr) ||
	    metrics_url(a->metrics, url, sizeof(url)) || !cJSON_AddStringToObject(m, "url", url) ||
	    !cJSON_AddNumberToObject(m, "top", a->opts.metrics_top))
		return -ENOMEM;
	return 0;
}

static void emit_start(struct agent *a)
{
	cJSON *ev = report_new(&a->report, "agent_start");
	cJSON *settings, *boot;

	if (!ev)
		goto out;
	if (!cJSON_AddStringToObject(ev, "version", EPHPORT_VERSION) ||
	    kernel_to_json(&a->kernel, ev) || !cJSON_AddNumberToObject(ev, "pid", getpid()) ||
	    !cJSON_AddStringToObject(ev, "pin_dir", EPH_PIN_DIR) || objects_to_json(ev) ||
	    !(settings = cJSON_AddObjectToObject(ev, "settings")) ||
	    !cJSON_AddNumberToObject(settings, "interval", a->opts.interval) ||
	    !cJSON_AddNumberToObject(settings, "max_tuples", a->opts.max_tuples) ||
	    !cJSON_AddNumberToObject(settings, "tuple_idle", a->opts.tuple_idle) ||
	    !cJSON_AddNumberToObject(settings, "warn_at", a->opts.warn) ||
	    !cJSON_AddNumberToObject(settings, "critical_at", a->opts.crit) ||
	    !cJSON_AddNumberToObject(settings, "clear_margin", a->opts.margin) ||
	    !cJSON_AddNumberToObject(settings, "hold", a->opts.hold) ||
	    !(a->opts.output ? cJSON_AddStringToObject(settings, "output", a->opts.output) :
			       cJSON_AddNullToObject(settings, "output")) ||
	    guard_to_json(a, settings) || metrics_to_json(a, settings) ||
	    !(boot = cJSON_AddObjectToObject(ev, "bootstrap")) ||
	    !cJSON_AddNumberToObject(boot, "netns", a->netns.len) ||
	    !cJSON_AddNumberToObject(boot, "ms", round(a->bootstrap_ms * 10) / 10)) {
		cJSON_Delete(ev);
		ev = NULL;
	}
out:
	report_emit(&a->report, ev);
}

static bool tuple_idle(const struct tuple *t, __u64 now_ns, __u64 idle_ns)
{
	/* a connect newer than now_ns (it came after the clock was read) is not idle */
	return !t->in_use && !t->val.states[EPH_TCP_TIME_WAIT] &&
	       t->val.last_connect_ns <= now_ns && now_ns - t->val.last_connect_ns >= idle_ns;
}

#define MAX_RETIRING 1024 /* the "retiring" map's size: tuples forgotten per snapshot */

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

/*
 * Ports no longer held and local TIME_WAIT counts back at zero, so that a host
 * binding ever new ports does not fill the maps. Read again right before the
 * delete; a socket taking that port in the microseconds between is not counted.
 */
static void prune_zero(int fd, size_t vsz, bool (*is_zero)(const void *))
{
	struct port_key *keys;
	char *vals, fresh[16];
	size_t n;

	if (vsz > sizeof(fresh) ||
	    map_read_all(fd, sizeof(*keys), vsz, (void **)&keys, (void **)&vals, &n))
		return;
	for (size_t i = 0; i < n; i++)
		if (is_zero(vals + i * vsz) && !bpf_map_lookup_elem(fd, &keys[i], fresh) &&
		    is_zero(fresh))
			bpf_map_delete_elem(fd, &keys[i]);
	free(keys);
	free(vals);
}

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
	if (err >= 0)
		err = ns_list_build(&a->latest_ns, NULL, &a->table,
				    bpf_map__fd(a->skel->maps.netns_info),
				    bpf_map__fd(a->skel->maps.ports),
				    bpf_map__fd(a->skel->maps.local_tw));
	if (err < 0) {
		ns_list_free(&old);
		a->full_read = true;
		eph_err("cannot read the BPF maps: %s", strerror(-err));
		return err;
	}
	capacity_update(a, &old);
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

static void emit_netns(struct agent *a, const struct ns_list *nl)
{
	for (size_t i = 0; i < nl->len; i++) {
		cJSON *ev = report_new(&a->report, "netns");

		if (ev && ns_to_json(&nl->items[i], ev)) {
			cJSON_Delete(ev);
			ev = NULL;
		}
		report_emit(&a->report, ev);
	}
}

static int snapshot(struct agent *a)
{
	const struct tuple_list *l = &a->table.list;
	struct agent_stats st = { .max_tuples = a->opts.max_tuples };
	const __u32 *order;
	cJSON *ev;
	int err;

	err = netns_round(a);
	if (err)
		return err;
	err = stats_read(bpf_map__fd(a->skel->maps.stats), &st);
	if (err) {
		eph_err("cannot read the BPF maps: %s", strerror(-err));
		return err;
	}
	order = agent_sorted_view(a);
	for (size_t i = 0; order && i < l->len; i++) {
		const struct tuple *t = &l->items[order[i]];

		if (t->in_use <= 0 && t->time_wait <= 0)
			continue;
		report_emit_tuple(&a->report, t);
	}
	report_flush(&a->report);
	emit_netns(a, &a->latest_ns);
	prune_zero(bpf_map__fd(a->skel->maps.ports), sizeof(struct port_val), port_val_zero);
	prune_zero(bpf_map__fd(a->skel->maps.local_tw), sizeof(__s64), s64_zero);
	expire_idle(a);
	ev = report_new(&a->report, "stats");
	if (ev && (stats_to_json(&st, l->len, ev) ||
		   !cJSON_AddNumberToObject(ev, "tuples_expired", a->tuples_expired) ||
		   !cJSON_AddNumberToObject(ev, "lines_dropped", report_dropped(&a->report)) ||
		   !cJSON_AddNumberToObject(ev, "failure_lines", failures_lines(a->failures)) ||
		   !cJSON_AddNumberToObject(ev, "pressure_checks", a->checks) ||
		   !cJSON_AddNumberToObject(ev, "pressure_active", pressure_active(a->pressure)) ||
		   !cJSON_AddNumberToObject(ev, "netns", a->netns.len) ||
		   !cJSON_AddNumberToObject(ev, "netns_unreachable", a->netns_unreachable) ||
		   !cJSON_AddNumberToObject(ev, "tuple_retire_races", a->retire_races) ||
		   !cJSON_AddNumberToObject(ev, "tuple_full_reads", a->full_reads) ||
		   cost_to_json(&a->cost, l->len, a->opts.max_tuples, ev))) {
		cJSON_Delete(ev);
		ev = NULL;
	}
	report_emit(&a->report, ev);
	return 0;
}

static void emit_stop(struct agent *a, const char *reason)
{
	cJSON *ev = report_new(&a->report, "agent_stop");
	char sig[16];

	snprintf(sig, sizeof(sig), "SIG%s", stop_signal ? sigabbrev_np(stop_signal) : "");
	if (ev && (!cJSON_AddStringToObject(ev, "reason", reason) ||
		   (stop_signal && !cJSON_AddStringToObject(ev, "signal", sig)) ||
		   !cJSON_AddNumberToObject(
			   ev, "uptime_s",
			   (mono_ns() - (a->started.tv_sec * 1000000000ull + a->started.tv_nsec)) /
				   1000000000ull))) {
		cJSON_Delete(ev);
		ev = NULL;
	}
	report_emit(&a->report, ev);
}

/*
 * A pressure check: every tuple read afresh, failures reported, levels moved.
 * Twice a second, and at once (within CHECK_GAP_NS) when a notice says a tuple
 * just started failing, so a level change shows within a second.
 */
static int on_notice(void *ctx, void *data, size_t size)
{
	struct agent *a = ctx;
	const struct notice *n = data;

	if (size < sizeof(*n) || n->type != NOTICE_FAILURE)
		return 0;
	failures_notice(a->failures, &n->key, &a->latest_ns, &a->table.list, mono_ns());
	a->check_now = true;
	return 0;
}

/* what alerts need: pressure levels, failure lines, the notice ring buffer */
static int watch_setup(struct agent *a)
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
			 a->pressure)) {
		eph_err("out of memory");
		return -1;
	}
	a->notices = ring_buffer__new(bpf_map__fd(a->skel->maps.notices), on_notice, a, NULL);
	if (!a->notices) {
		eph_err("cannot set up the notice ring buffer: %s", strerror(errno));
		return -1;
	}
	a->changes = ring_buffer__new(bpf_map__fd(a->skel->maps.changes), on_change, a, NULL);
	if (!a->changes) {
		eph_err("cannot set up the changes ring buffer: %s", strerror(errno));
		return -1;
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
			.top = a->opts.metrics_top,
			.retired = &a->retired,
			.stats = stats_read(bpf_map__fd(a->skel->maps.stats), &st) ? NULL : &st,
			.cost = &cost,
			.max_tuples = a->opts.max_tuples,
			.lines_dropped = report_dropped(&a->report),
			.checks = a->checks,
			.last_check_s = now.tv_sec + now.tv_nsec / 1e9,
			.start_time_s = a->start_time_s,
			.version = EPHPORT_VERSION,
		},
		&t);
	metrics_publish(a->metrics, &t);
out:
	free(levels);
	free(denials);
	free(denials_netns);
}

/* a tuple near the guard's line, before or after this check's changes */
static bool guard_concerned(const struct agent *a)
{
	const struct tuple_table *t = &a->table;
	double half = a->opts.deny_at / 2;

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
static int check(struct agent *a)
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
	a->check_now = false;
	changed = a->table.all_changed || a->table.nchanges || a->capacity_redone;
	/* failures first: they tell the pressure check which tuples are failing */
	failures_drain(a->failures, &a->latest_ns, &a->table.list, now, false);
	pressure_openers(a->pressure, bpf_map__fd(a->skel->maps.openers), now);
	err = pressure_check(a->pressure, &a->table, &a->latest_ns, now);
	if (err)
		eph_err("pressure check: %s", strerror(-err));
	if (a->guard.mode != GUARD_OFF && guard_concerned(a)) {
		err = guard_refresh(bpf_map__fd(a->skel->maps.guard_dst), &a->table.list,
				    &a->latest_ns, a->opts.deny_at);
		if (err >= 0)
			a->skel->bss->guard_dst_count = err;
		else
			eph_err("guard: cannot update the destinations near the line: %s",
				strerror(-err));
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
	return 0;
}

static int run_loop(struct agent *a)
{
	__u64 interval_ns = a->opts.interval * 1000000000ull;
	__u64 next_snap = mono_ns() + interval_ns, next_check = mono_ns(), now;
	struct pollfd pfd[2];
	int err;

	while (!stop_signal) {
		__u64 wake = next_check < next_snap ? next_check : next_snap;

		if (reopen_signal) {
			reopen_signal = 0;
			sink_reopen(a->report.sink);
		}
		if (a->check_now && a->last_check + CHECK_GAP_NS < wake)
			wake = a->last_check + CHECK_GAP_NS;
		now = mono_ns();
		/* notices and questions; a signal ends the wait early */
		pfd[0] = (struct pollfd){ .fd = ring_buffer__epoll_fd(a->notices), .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = a->query_fd, .events = POLLIN };
		err = poll(pfd, 2, wake > now ? (wake - now + 999999) / 1000000 : 0);
		if (err < 0 && errno != EINTR) {
			eph_err("cannot wait for notices: %s", strerror(errno));
			return -1;
		}
		err = ring_buffer__consume(a->notices);
		if (err < 0) {
			eph_err("cannot read the notice ring buffer: %s", strerror(-err));
			return -1;
		}
		for (int i = 0; i < MAX_QUERIES_AT_ONCE && (pfd[1].revents & POLLIN); i++)
			agent_query_serve(a);
		if (stop_signal)
			break;
		now = mono_ns();
		if (now >= next_check || (a->check_now && now >= a->last_check + CHECK_GAP_NS)) {
			if (check(a))
				return -1;
			while (next_check <= now)
				next_check += CHECK_EVERY_NS;
		}
		if (now >= next_snap) {
			if (snapshot(a))
				return -1;
			while (next_snap <= now)
				next_snap += interval_ns;
		}
	}
	return 0;
}

int cmd_agent(int argc, char **argv)
{
	struct agent a = { .opts = { .interval = 10,
				     .warn = 0.80,
				     .crit = 0.95,
				     .margin = 0.05,
				     .hold = 30,
				     .output_kib = 4096,
				     .deny_at = 0.98,
				     .deny_errno = EADDRNOTAVAIL,
				     .max_tuples = MAX_TUPLES_DEFAULT,
				     .tuple_idle = 600,
				     .metrics_top = METRICS_TOP_DEFAULT } };
	struct sigaction sa = { .sa_handler = on_signal };
	int lock_fd = -1, ret = 1, err;
	long holder = 0;

	a.home_fd = -1;
	a.query_fd = -1;

	err = agent_parse_opts(argc, argv, &a.opts);
	if (err)
		return err > 0 ? 0 : EXIT_USAGE;
	verbose = a.opts.verbose;
	libbpf_set_print(libbpf_print);
	if (a.opts.host)
		snprintf(a.host, sizeof(a.host), "%s", a.opts.host);
	else if (gethostname(a.host, sizeof(a.host) - 1))
		snprintf(a.host, sizeof(a.host), "unknown");

	if (agent_preflight(&a))
		return 1;
	agent_degrade_settings(&a);
	err = agent_lock_acquire(&lock_fd, &holder);
	if (err == -EBUSY) {
		eph_err("another ephport agent is already running (pid %ld); stop it first",
			holder);
		return 1;
	} else if (err) {
		eph_err("cannot take the agent lock %s: %s", EPH_LOCK_PATH, strerror(-err));
		return 1;
	}

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (a.opts.metrics_addr) {
		err = metrics_start(&a.metrics, &a.opts.metrics);
		if (err) {
			eph_err("cannot serve metrics on %s: %s", a.opts.metrics_addr,
				strerror(-err));
			goto cleanup;
		}
	}
	{
		struct timespec rt;

		clock_gettime(CLOCK_REALTIME, &rt);
		a.start_time_s = rt.tv_sec + rt.tv_nsec / 1e9;
	}
	a.report.host = a.host;
	err = sink_open(&a.report.sink, a.opts.output, a.opts.output_kib * 1024);
	if (err) {
		eph_err("cannot open %s for appending: %s", a.opts.output, strerror(-err));
		goto cleanup;
	}
	/* without it, lines name the cgroup by id only */
	if (cgroup_resolver_open(&a.report.cgroups))
		a.report.cgroups = NULL;

	a.home_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (a.home_fd < 0) {
		eph_err("cannot open /proc/self/ns/net: %s", strerror(errno));
		goto cleanup;
	}
	a.retiring = calloc(MAX_RETIRING, sizeof(*a.retiring));
	if (!a.retiring) {
		eph_err("cannot allocate memory");
		goto cleanup;
	}
	if (agent_ensure_bpffs() || agent_load_bpf(&a) || agent_pin_maps(&a) || watch_setup(&a) ||
	    agent_guard_setup(&a))
		goto cleanup;
	clock_gettime(CLOCK_MONOTONIC, &a.started);
	/* the namespaces there are before attaching; the walk counts what they held */
	if (startup_prepare(&a.startup, a.skel, &a.netns) || agent_attach_bpf(&a) ||
	    startup_walk(&a.startup, a.skel->links.walk, &a.netns, a.home_fd) || netns_round(&a))
		goto cleanup;
	a.bootstrap_ms = (mono_ns() - (a.started.tv_sec * 1000000000ull + a.started.tv_nsec)) / 1e6;
	cost_init(&a.cost, a.skel);
	if (agent_query_listen(&a))
		goto cleanup;
	emit_start(&a);
	agent_degrade_notes(&a);
	err = run_loop(&a);
	/* failures counted since the last check, so that the counts add up */
	ring_buffer__consume(a.notices);
	failures_drain(a.failures, &a.latest_ns, &a.table.list, mono_ns(), true);
	emit_stop(&a, err ? "error" : "signal");
	ret = err ? 1 : 0;
cleanup:
	/* first: probes and queries see the agent go before its pins do */
	metrics_stop(a.metrics);
	agent_query_close(&a);
	retired_free(&a.retired);
	if (a.pinned)
		agent_unpin_all();
	if (a.cost.skel)
		cost_free(&a.cost);
	ring_buffer__free(a.notices);
	startup_free(&a.startup);
	free(a.retiring);
	bpf_link__destroy(a.guard4);
	bpf_link__destroy(a.guard6);
	ephport_bpf__destroy(a.skel);
	failures_free(a.failures);
	pressure_free(a.pressure);
	table_free(&a.table);
	free(a.order);
	ring_buffer__free(a.changes);
	free(a.chg_keys);
	ns_list_free(&a.latest_ns);
	if (a.report.cgroups)
		cgroup_resolver_close(a.report.cgroups);
	/* a stuck output gets two seconds; what is left then is lost */
	if (a.report.sink)
		sink_close(a.report.sink, 2000);
	jw_free(&a.report.line);
	netns_set_free(&a.netns);
	if (a.home_fd >= 0)
		close(a.home_fd);
	agent_lock_release(lock_fd);
	return ret;
}
