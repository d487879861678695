// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's own lines: agent_start, the snapshot every --interval (tuple,
 * netns and stats lines), agent_stop. Pressure and failure lines come from
 * pressure.c and failures.c.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "agent.h"
#include "objects.h"
#include "ephport.skel.h"

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
	for (size_t i = 0; i < a->nsystem_exempt; i++)
		if (!cJSON_AddItemToArray(ex, cJSON_CreateString(a->system_exempt[i])))
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

/* settings.nat: null with --no-nat */
static int nat_settings_to_json(struct agent *a, cJSON *settings)
{
	const struct nat_range *r = &a->opts.nat_range;
	cJSON *n;

	if (!a->nat)
		return cJSON_AddNullToObject(settings, "nat") ? 0 : -ENOMEM;
	if (!(n = cJSON_AddObjectToObject(settings, "nat")) ||
	    !cJSON_AddNumberToObject(n, "warn_at", a->opts.nat_warn) ||
	    !cJSON_AddNumberToObject(n, "critical_at", a->opts.nat_crit))
		return -ENOMEM;
	if (!r->low)
		return cJSON_AddNullToObject(n, "range") ? 0 : -ENOMEM;
	n = cJSON_AddArrayToObject(n, "range");
	return n && cJSON_AddItemToArray(n, cJSON_CreateNumber(r->low)) &&
			       cJSON_AddItemToArray(n, cJSON_CreateNumber(r->high)) ?
		       0 :
		       -ENOMEM;
}

void agent_emit_start(struct agent *a)
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
	    nat_settings_to_json(a, settings) ||
	    !(boot = cJSON_AddObjectToObject(ev, "bootstrap")) ||
	    !cJSON_AddNumberToObject(boot, "netns", a->netns.len) ||
	    !cJSON_AddNumberToObject(boot, "ms", round(a->bootstrap_ms * 10) / 10)) {
		cJSON_Delete(ev);
		ev = NULL;
	}
out:
	report_emit(&a->report, ev);
}

static void emit_netns(struct agent *a, const struct ns_list *nl)
{
	for (size_t i = 0; i < nl->len; i++) {
		cJSON *ev = report_new(&a->report, "netns");

		if (ev && ns_to_json(&nl->items[i], a->opts.spread, a->opts.nspread, ev)) {
			cJSON_Delete(ev);
			ev = NULL;
		}
		report_emit(&a->report, ev);
	}
}

int agent_snapshot(struct agent *a)
{
	const struct tuple_list *l = &a->table.list;
	struct agent_stats st = { .max_tuples = a->opts.max_tuples };
	const __u32 *order;
	cJSON *ev;
	int err;

	err = agent_netns_round(a, false);
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
	agent_forget(a);
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
		   !cJSON_AddNumberToObject(ev, "guard_uncovered", a->guard_uncovered) ||
		   cost_to_json(&a->cost, l->len, a->opts.max_tuples, ev))) {
		cJSON_Delete(ev);
		ev = NULL;
	}
	report_emit(&a->report, ev);
	return 0;
}

void agent_emit_stop(struct agent *a, const char *reason, int signal)
{
	cJSON *ev = report_new(&a->report, "agent_stop");
	char sig[16];

	snprintf(sig, sizeof(sig), "SIG%s", signal ? sigabbrev_np(signal) : "");
	if (ev && (!cJSON_AddStringToObject(ev, "reason", reason) ||
		   (signal && !cJSON_AddStringToObject(ev, "signal", sig)) ||
		   !cJSON_AddNumberToObject(
			   ev, "uptime_s",
			   (mono_ns() - (a->started.tv_sec * 1000000000ull + a->started.tv_nsec)) /
				   1000000000ull))) {
		cJSON_Delete(ev);
		ev = NULL;
	}
	report_emit(&a->report, ev);
}
