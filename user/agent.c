// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ephport agent: load the BPF side, publish its maps, print JSON lines. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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
#include "cgroup.h"
#include "ephport.skel.h"

#define CHECK_EVERY_NS 500000000ull /* pressure checks: twice a second */
#define CHECK_GAP_NS   50000000ull  /* at most this often when notices ask for one */

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
	    !cJSON_AddStringToObject(ev, "pin_dir", EPH_PIN_DIR) ||
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
static size_t expire_idle(struct agent *a, const struct tuple_list *l)
{
	int fd = bpf_map__fd(a->skel->maps.tuples), rfd = bpf_map__fd(a->skel->maps.retiring);
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

static int read_counts(struct agent *a, struct tuple_list *list, struct ns_list *nl)
{
	int err = tuple_list_read(bpf_map__fd(a->skel->maps.tuples), NULL, list);

	if (!err)
		err = ns_list_build(nl, list, bpf_map__fd(a->skel->maps.netns_info),
				    bpf_map__fd(a->skel->maps.ports),
				    bpf_map__fd(a->skel->maps.local_tw));
	if (err) {
		eph_err("cannot read the BPF maps: %s", strerror(-err));
		return err;
	}
	tuple_list_capacity(list, nl);
	tuple_list_sort(list);
	return 0;
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
	struct tuple_list list = { 0 };
	struct ns_list nl = { 0 };
	struct agent_stats st = { .max_tuples = a->opts.max_tuples };
	size_t expired;
	cJSON *ev;
	int err;

	err = netns_round(a);
	if (err)
		return err;
	err = read_counts(a, &list, &nl);
	if (!err)
		err = stats_read(bpf_map__fd(a->skel->maps.stats), &st);
	if (err)
		goto cleanup;
	for (size_t i = 0; i < list.len; i++) {
		if (list.items[i].in_use <= 0 && list.items[i].time_wait <= 0)
			continue;
		ev = report_new(&a->report, "tuple");
		if (ev && tuple_to_json(&list.items[i], ev)) {
			cJSON_Delete(ev);
			ev = NULL;
		}
		report_emit(&a->report, ev);
	}
	emit_netns(a, &nl);
	prune_zero(bpf_map__fd(a->skel->maps.ports), sizeof(struct port_val), port_val_zero);
	prune_zero(bpf_map__fd(a->skel->maps.local_tw), sizeof(__s64), s64_zero);
	expired = expire_idle(a, &list);
	ev = report_new(&a->report, "stats");
	if (ev && (stats_to_json(&st, list.seen - expired, ev) ||
		   !cJSON_AddNumberToObject(ev, "tuples_expired", a->tuples_expired) ||
		   !cJSON_AddNumberToObject(ev, "lines_dropped", report_dropped(&a->report)) ||
		   !cJSON_AddNumberToObject(ev, "failure_lines", failures_lines(a->failures)) ||
		   !cJSON_AddNumberToObject(ev, "pressure_checks", a->checks) ||
		   !cJSON_AddNumberToObject(ev, "pressure_active", pressure_active(a->pressure)) ||
		   !cJSON_AddNumberToObject(ev, "netns", a->netns.len) ||
		   !cJSON_AddNumberToObject(ev, "netns_unreachable", a->netns_unreachable) ||
		   !cJSON_AddNumberToObject(ev, "tuple_retire_races", a->retire_races) ||
		   cost_to_json(&a->cost, list.seen - expired, a->opts.max_tuples, ev))) {
		cJSON_Delete(ev);
		ev = NULL;
	}
	report_emit(&a->report, ev);
cleanup:
	ns_list_free(&nl);
	tuple_list_free(&list);
	return err;
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
	failures_notice(a->failures, &n->key, &a->latest_ns, &a->latest, mono_ns());
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
	return 0;
}

/* /metrics from this check's reading; the previous text stays if this one fails */
static void metrics_update(struct agent *a)
{
	const struct tuple_list *l = &a->latest;
	struct agent_stats st = { .max_tuples = a->opts.max_tuples };
	struct cost_reading cost;
	struct timespec now;
	struct text t = { 0 };
	__u64 *denials = NULL, denials_total = 0;
	struct netns_count *denials_netns = NULL;
	size_t denials_nnetns = 0;
	__u8 *levels = calloc(l->len + 1, sizeof(*levels));

	if (!levels)
		return;
	for (size_t i = 0; i < l->len; i++)
		levels[i] = pressure_level(a->pressure, &l->items[i].key);
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
	metrics_beat(a->metrics);
	free(levels);
	free(denials);
	free(denials_netns);
}

static int check(struct agent *a)
{
	__u64 now = mono_ns();
	int err;

	fw2_sweep(a->skel);
	tuple_list_free(&a->latest);
	ns_list_free(&a->latest_ns);
	err = read_counts(a, &a->latest, &a->latest_ns);
	if (err)
		return err;
	a->checks++;
	a->last_check = now;
	a->skel->bss->agent_clock_ns = now;
	a->check_now = false;
	/* failures first: they tell the pressure check which tuples are failing */
	failures_drain(a->failures, &a->latest_ns, &a->latest, now, false);
	pressure_openers(a->pressure, bpf_map__fd(a->skel->maps.openers), now);
	err = pressure_check(a->pressure, &a->latest, &a->latest_ns, now);
	if (err)
		eph_err("pressure check: %s", strerror(-err));
	if (a->guard.mode != GUARD_OFF) {
		err = guard_refresh(bpf_map__fd(a->skel->maps.guard_dst), &a->latest, &a->latest_ns,
				    a->opts.deny_at);
		if (err >= 0)
			a->skel->bss->guard_dst_count = err;
		else
			eph_err("guard: cannot update the destinations near the line: %s",
				strerror(-err));
	}
	if (a->metrics)
		metrics_update(a);
	return 0;
}

static int run_loop(struct agent *a)
{
	__u64 interval_ns = a->opts.interval * 1000000000ull;
	__u64 next_snap = mono_ns() + interval_ns, next_check = mono_ns(), now;
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
		/* a signal ends the wait with -EINTR */
		err = ring_buffer__poll(a->notices,
					wake > now ? (wake - now + 999999) / 1000000 : 0);
		if (err < 0 && err != -EINTR) {
			eph_err("cannot read the notice ring buffer: %s", strerror(-err));
			return -1;
		}
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
	emit_start(&a);
	agent_degrade_notes(&a);
	err = run_loop(&a);
	/* failures counted since the last check, so that the counts add up */
	ring_buffer__consume(a.notices);
	failures_drain(a.failures, &a.latest_ns, &a.latest, mono_ns(), true);
	emit_stop(&a, err ? "error" : "signal");
	ret = err ? 1 : 0;
cleanup:
	/* first: probes see the agent go before its pins do */
	metrics_stop(a.metrics);
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
	tuple_list_free(&a.latest);
	ns_list_free(&a.latest_ns);
	if (a.report.cgroups)
		cgroup_resolver_close(a.report.cgroups);
	/* a stuck output gets two seconds; what is left then is lost */
	if (a.report.sink)
		sink_close(a.report.sink, 2000);
	netns_set_free(&a.netns);
	if (a.home_fd >= 0)
		close(a.home_fd);
	agent_lock_release(lock_fd);
	return ret;
}
