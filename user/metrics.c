// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * ephport's Prometheus metrics. After each check (twice a second) the agent
 * renders them from the reading it already has (metrics_http.c serves the
 * text). Cardinality is bounded: per-tuple series for the --metrics-top tuples
 * nearest exhaustion, the rest in per-namespace and per-node sums; the counters
 * of tuples the agent forgot are kept so that sums never go down.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ephport.h"
#include "cgroup.h"
#include "metrics.h"
#include "pressure.h"

/* counters of forgotten tuples */

static struct retired *retired_find(struct retired_set *r, __u32 netns, bool create)
{
	long at = u32_index_find(&r->idx, r->items, netns);

	if (at >= 0)
		return &r->items[at];
	if (!create)
		return NULL;
	if (r->len == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct retired *items = realloc(r->items, cap * sizeof(*items));

		if (!items)
			return NULL;
		r->items = items;
		r->cap = cap;
	}
	r->items[r->len] = (struct retired){ .netns = netns };
	r->idx.stride = sizeof(*r->items);
	r->idx.key_off = offsetof(struct retired, netns);
	if (u32_index_added(&r->idx, r->items, r->len + 1))
		return NULL;
	return &r->items[r->len++];
}

int retired_add(struct retired_set *r, const struct tuple *t)
{
	struct retired *n = retired_find(r, t->key.netns, true);

	r->connects += t->val.connects;
	r->failed += t->val.failed_connects;
	if (!n)
		return -ENOMEM;
	n->connects += t->val.connects;
	n->failed += t->val.failed_connects;
	return 0;
}

/* inum's place in nl; nl->len when it is not there */
static size_t ns_index(const struct ns_list *nl, __u32 inum)
{
	const struct ns_summary *ns = ns_lookup(nl, inum);

	return ns ? (size_t)(ns - nl->items) : nl->len;
}

void retired_prune(struct retired_set *r, const struct ns_list *nl)
{
	size_t kept = 0;

	for (size_t i = 0; i < r->len; i++)
		if (ns_index(nl, r->items[i].netns) < nl->len)
			r->items[kept++] = r->items[i];
	if (kept == r->len)
		return;
	r->len = kept;
	u32_index_rebuild(&r->idx, r->items, r->len); /* fewer records: cannot fail */
}

void retired_free(struct retired_set *r)
{
	if (!r)
		return;
	free(r->items);
	u32_index_free(&r->idx);
	memset(r, 0, sizeof(*r));
}

/* rendering */

static void tuple_labels(struct text *t, const struct tuple_key *k)
{
	char saddr[EPH_ADDRSTRLEN], daddr[EPH_ADDRSTRLEN];

	addr_format(k->family, k->saddr, saddr, sizeof(saddr));
	addr_format(k->family, k->daddr, daddr, sizeof(daddr));
	text_printf(t, "netns=\"%u\",family=\"%s\",saddr=\"", k->netns,
		    k->family == AF_INET ? "ipv4" : "ipv6");
	label_value(t, saddr);
	text_printf(t, "\",daddr=\"");
	label_value(t, daddr);
	text_printf(t, "\",dport=\"%u\"", k->dport);
}

/* the live states, as "ephport query" names them */
static const struct {
	int state;
	const char *name;
} live_states[] = {
	{ EPH_TCP_SYN_SENT, "syn_sent" },	{ EPH_TCP_SYN_RECV, "syn_recv" },
	{ EPH_TCP_ESTABLISHED, "established" }, { EPH_TCP_FIN_WAIT1, "fin_wait1" },
	{ EPH_TCP_FIN_WAIT2, "fin_wait2" },	{ EPH_TCP_CLOSE_WAIT, "close_wait" },
	{ EPH_TCP_LAST_ACK, "last_ack" },	{ EPH_TCP_CLOSING, "closing" },
};

enum tuple_field {
	TF_IN_USE,
	TF_TIME_WAIT,
	TF_CAPACITY,
	TF_USAGE,
	TF_UTILIZATION,
	TF_LEVEL,
	TF_CONNECTS,
	TF_FAILED,
	TF_DENIALS,
	TF_SPREADS,
};

static const struct {
	const char *name, *type, *help;
} tuple_families[] = {
	[TF_IN_USE] = { "ephport_tuple_in_use_sockets", "gauge",
			"Live sockets of the tuple in every state but TIME_WAIT." },
	[TF_TIME_WAIT] = { "ephport_tuple_time_wait_sockets", "gauge",
			   "TIME_WAIT sockets of the tuple (its side closed first)." },
	[TF_CAPACITY] = { "ephport_tuple_capacity_ports", "gauge",
			  "Local ports connect() can use for the tuple." },
	[TF_USAGE] = { "ephport_tuple_usage_ports", "gauge",
		       "Ports the tuple holds: in use plus TIME_WAIT not reusable." },
	[TF_UTILIZATION] = { "ephport_tuple_utilization_ratio", "gauge",
			     "Usage divided by capacity, 0 to 1." },
	[TF_LEVEL] = { "ephport_tuple_pressure_level", "gauge",
		       "Pressure level: 0 ok, 1 warning, 2 critical, 3 exhausted." },
	[TF_CONNECTS] = { "ephport_tuple_connects_total", "counter",
			  "Active opens to the tuple since the agent started counting it." },
	[TF_FAILED] = { "ephport_tuple_failed_connects_total", "counter",
			"connect() calls that found no local port for the tuple (EADDRNOTAVAIL)." },
	[TF_DENIALS] = { "ephport_tuple_denials_total", "counter",
			 "connect() calls the guard refused or, in audit mode, would have." },
	[TF_SPREADS] = { "ephport_tuple_connects_spread_total", "counter",
			 "connect() calls the guard bound to this tuple's source (--spread) or, in "
			 "audit mode, would have." },
};

static double tuple_field(const struct metrics_view *v, size_t i, enum tuple_field f)
{
	const struct tuple *t = &v->tuples->items[i];

	switch (f) {
	case TF_IN_USE:
		return t->in_use;
	case TF_TIME_WAIT:
		return t->time_wait;
	case TF_CAPACITY:
		return t->capacity;
	case TF_USAGE:
		return t->usage;
	case TF_UTILIZATION:
		return t->utilization;
	case TF_LEVEL:
		return v->levels ? v->levels[i] : 0;
	case TF_CONNECTS:
		return t->val.connects;
	case TF_FAILED:
		return t->val.failed_connects;
	case TF_DENIALS:
		return v->denials ? v->denials[i] : 0;
	case TF_SPREADS:
		return v->spreads ? v->spreads[i] : 0;
	}
	return NAN;
}

static void render_tuples(const struct metrics_view *v, struct text *t, size_t top)
{
	const struct tuple *items = v->tuples->items;

	family(t, "ephport_tuple_sockets", "gauge",
	       "Sockets of the tuple per TCP state, TIME_WAIT included.");
	for (size_t i = 0; i < top; i++) {
		for (size_t s = 0; s < sizeof(live_states) / sizeof(live_states[0]); s++) {
			text_printf(t, "ephport_tuple_sockets{");
			tuple_labels(t, &items[i].key);
			text_printf(t, ",state=\"%s\"}", live_states[s].name);
			value(t, items[i].val.states[live_states[s].state]);
		}
		text_printf(t, "ephport_tuple_sockets{");
		tuple_labels(t, &items[i].key);
		text_printf(t, ",state=\"time_wait\"}");
		value(t, items[i].time_wait);
	}
	for (size_t f = 0; f < sizeof(tuple_families) / sizeof(tuple_families[0]); f++) {
		if ((f == TF_DENIALS && !v->denials) || (f == TF_SPREADS && !v->spreads))
			continue;
		family(t, tuple_families[f].name, tuple_families[f].type, tuple_families[f].help);
		for (size_t i = 0; i < top; i++) {
			text_printf(t, "%s{", tuple_families[f].name);
			tuple_labels(t, &items[i].key);
			text_printf(t, "}");
			value(t, tuple_field(v, i, f));
		}
	}
}

/* a namespace's sums over all its tuples, exported or not */
enum ns_field {
	NS_TUPLES,
	NS_IN_USE,
	NS_MAX_UTIL,
	NS_CONNECTS,
	NS_FAILED,
	NS_DENIALS,
	NS_SPREADS,
	NS_FIELDS,
};

struct ns_sums {
	char netns[16]; /* the label value */
	double v[NS_FIELDS];
};

static const struct {
	const char *name, *type, *help;
} ns_families[NS_FIELDS] = {
	[NS_TUPLES] = { "ephport_netns_tuples", "gauge", "Destination tuples the namespace has." },
	[NS_IN_USE] = { "ephport_netns_in_use_sockets", "gauge",
			"Live sockets of the namespace's tuples, TIME_WAIT not included." },
	[NS_MAX_UTIL] = { "ephport_netns_max_utilization_ratio", "gauge",
			  "Utilization of the namespace's tuple nearest exhaustion." },
	[NS_CONNECTS] = { "ephport_netns_connects_total", "counter",
			  "Active opens in the namespace since the agent started." },
	[NS_FAILED] = { "ephport_netns_failed_connects_total", "counter",
			"connect() calls in the namespace that found no local port." },
	[NS_DENIALS] = { "ephport_netns_denials_total", "counter",
			 "connect() calls in the namespace the guard refused." },
	[NS_SPREADS] = { "ephport_netns_connects_spread_total", "counter",
			 "connect() calls in the namespace the guard bound to a --spread source." },
};

static void render_netns(const struct metrics_view *v, struct text *t, const struct ns_sums *sums)
{
	const struct ns_list *nl = v->ns;
	static const char *const sides[] = { "client", "server", "other" };

	family(t, "ephport_netns_port_range_first", "gauge",
	       "First port of net.ipv4.ip_local_port_range.");
	for (size_t i = 0; i < nl->len; i++)
		if (nl->items[i].port_range)
			labelled(t, "ephport_netns_port_range_first", "netns", sums[i].netns,
				 PORT_LOW(nl->items[i].port_range));
	family(t, "ephport_netns_port_range_last", "gauge",
	       "Last port of net.ipv4.ip_local_port_range.");
	for (size_t i = 0; i < nl->len; i++)
		if (nl->items[i].port_range)
			labelled(t, "ephport_netns_port_range_last", "netns", sums[i].netns,
				 PORT_HIGH(nl->items[i].port_range));
	family(t, "ephport_netns_time_wait_sockets", "gauge",
	       "TIME_WAIT sockets of the namespace by whose they are: client (a tuple's), "
	       "server (a listener's port), other.");
	for (size_t i = 0; i < nl->len; i++) {
		const struct ns_summary *ns = &nl->items[i];
		const __s64 counts[] = { ns->tw_tuples, ns->tw_server, ns->tw_other };

		for (size_t k = 0; k < 3; k++) {
			text_printf(t, "ephport_netns_time_wait_sockets{netns=\"%s\",side=\"%s\"}",
				    sums[i].netns, sides[k]);
			value(t, counts[k]);
		}
	}
	family(t, "ephport_netns_info", "gauge",
	       "1 per namespace, labelled with the pod UID and container id the cgroup of its "
	       "first process names (empty: none): join on netns.");
	for (size_t i = 0; i < nl->len; i++) {
		struct cgroup_ids ids;

		ns_pod_ids(&nl->items[i], &ids);
		text_printf(t,
			    "ephport_netns_info{netns=\"%s\",pod_uid=\"%s\",container_id=\"%s\"}",
			    sums[i].netns, ids.pod_uid, ids.container_id);
		value(t, 1);
	}
	for (int f = 0; f < NS_FIELDS; f++) {
		if ((f == NS_DENIALS && !v->denials) || (f == NS_SPREADS && !v->spreads))
			continue;
		family(t, ns_families[f].name, ns_families[f].type, ns_families[f].help);
		for (size_t i = 0; i < nl->len; i++)
			labelled(t, ns_families[f].name, "netns", sums[i].netns, sums[i].v[f]);
	}
}

/* one family with a series per program: a field of struct cost_prog, scaled */
static void per_program(struct text *t, const struct cost_reading *c, const char *name,
			const char *help, size_t field, double scale)
{
	family(t, name, "counter", help);
	for (int i = 0; i < c->nprogs; i++)
		labelled(t, name, "program", c->progs[i].name,
			 *(const __u64 *)((const char *)&c->progs[i] + field) * scale);
}

static void per_map(struct text *t, const struct cost_reading *c, const char *name,
		    const char *help, size_t field)
{
	family(t, name, "gauge", help);
	for (size_t i = 0; i < c->nmaps; i++)
		labelled(t, name, "map", c->maps[i].name,
			 *(const __u64 *)((const char *)&c->maps[i] + field));
}

static void render_health(const struct metrics_view *v, struct text *t)
{
	const struct cost_reading *c = v->cost;

	family(t, "ephport_build_info", "gauge", "The agent's version; always 1.");
	labelled(t, "ephport_build_info", "version", v->version, 1);
	plain(t, "ephport_ready", "gauge", "1 once the start-up walk and the first check are done.",
	      1);
	plain(t, "ephport_last_check_timestamp_seconds", "gauge",
	      "Unix time of the check these figures come from.", v->last_check_s);
	plain(t, "ephport_pressure_checks_total", "counter", "Pressure checks done.", v->checks);
	plain(t, "ephport_lines_dropped_total", "counter",
	      "Event lines dropped because the output did not keep up.", v->lines_dropped);
	plain(t, "ephport_output_errors_total", "counter",
	      "Writes to the output that failed (a full disk, an I/O error), and reopens on "
	      "SIGHUP that failed.",
	      v->output_errors);
	if (v->stats) {
		family(t, "ephport_lost_events_total", "counter",
		       "What the BPF programs could not record, by reason: a full map, a lost "
		       "notice, a socket with no tuple.");
		for (int i = 0; i < EPH_STAT_MAX; i++)
			if (eph_stat_names[i].lost_reason)
				labelled(t, "ephport_lost_events_total", "reason",
					 eph_stat_names[i].lost_reason, v->stats->counters[i]);
		plain(t, "ephport_events_caught_total", "counter",
		      "State changes the kernel skipped running the main program for, counted "
		      "by the backstop program.",
		      v->stats->counters[EPH_STAT_CAUGHT]);
	}
	if (c) {
		plain(t, "ephport_bpf_stats_enabled", "gauge",
		      "1 when kernel.bpf_stats_enabled=1: program run counts and times are kept.",
		      c->bpf_stats);
		/* the kernel counts runs and their time only while bpf_stats is on */
		if (c->bpf_stats) {
			per_program(t, c, "ephport_bpf_program_runs_total",
				    "Runs of each BPF program (while bpf_stats is on).",
				    offsetof(struct cost_prog, runs), 1);
			per_program(t, c, "ephport_bpf_program_run_seconds_total",
				    "Time spent in each BPF program (while bpf_stats is on).",
				    offsetof(struct cost_prog, run_time_ns), 1e-9);
		}
		per_program(t, c, "ephport_bpf_program_missed_runs_total",
			    "Events the kernel did not run a program for, because it was already "
			    "running on that CPU.",
			    offsetof(struct cost_prog, missed), 1);
		per_map(t, c, "ephport_map_max_entries",
			"Entries each BPF map can hold (--max-tuples; fixed for the others).",
			offsetof(struct cost_map, max_entries));
		per_map(t, c, "ephport_map_memory_bytes",
			"Kernel memory of each BPF map, as the kernel counts it.",
			offsetof(struct cost_map, bytes));
		if (c->rss_kib)
			plain(t, "process_resident_memory_bytes", "gauge",
			      "Resident memory of the agent.", c->rss_kib * 1024.0);
		plain(t, "process_cpu_seconds_total", "counter",
		      "CPU time of the agent, user and system.", c->cpu_us / 1e6);
		plain(t, "ephport_check_seconds_total", "counter",
		      "Time the agent spent in its checks: over ephport_pressure_checks_total, "
		      "a check's mean duration.",
		      c->check_ns_total / 1e9);
	}
	if (v->max_tuples)
		plain(t, "ephport_tuples_map_fill_ratio", "gauge",
		      "Tuples tracked divided by --max-tuples.",
		      fmin(1, (double)v->tuples->seen / v->max_tuples));
	plain(t, "process_start_time_seconds", "gauge", "Unix time the agent started.",
	      v->start_time_s);
}

/* counts per namespace into field f of its sums */
static void ns_counts(const struct ns_list *nl, struct ns_sums *sums, enum ns_field f,
		      const struct netns_count *c, size_t n)
{
	for (size_t j = 0; c && j < n; j++) {
		size_t i = ns_index(nl, c[j].netns);

		if (i < nl->len)
			sums[i].v[f] = c[j].count;
	}
}

void metrics_render(const struct metrics_view *v, struct text *t)
{
	const struct tuple_list *l = v->tuples;
	const struct ns_list *nl = v->ns;
	size_t top = v->top < l->len ? v->top : l->len;
	struct ns_sums *sums = calloc(nl->len + 1, sizeof(*sums));
	__u64 at_level[LEVEL_EXHAUSTED + 1] = { 0 };
	__u64 connects = v->retired ? v->retired->connects : 0;
	__u64 failed = v->retired ? v->retired->failed : 0;
	__s64 in_use = 0, time_wait = 0;
	double max_util = 0;
	size_t last = 0;

	if (!sums) {
		t->oom = true;
		return;
	}
	/* namespaces by binary search: tens of thousands of them must not make this quadratic */
	for (size_t i = 0; i < nl->len; i++) {
		snprintf(sums[i].netns, sizeof(sums[i].netns), "%u", nl->items[i].inum);
		time_wait +=
			nl->items[i].tw_tuples + nl->items[i].tw_server + nl->items[i].tw_other;
	}
	for (size_t j = 0; v->retired && j < v->retired->len; j++) {
		size_t i = ns_index(nl, v->retired->items[j].netns);

		if (i < nl->len) {
			sums[i].v[NS_CONNECTS] = v->retired->items[j].connects;
			sums[i].v[NS_FAILED] = v->retired->items[j].failed;
		}
	}
	/* the denials map is never pruned: its sums never go down */
	ns_counts(nl, sums, NS_DENIALS, v->denials ? v->denials_netns : NULL, v->denials_nnetns);
	ns_counts(nl, sums, NS_SPREADS, v->spreads ? v->spreads_netns : NULL, v->spreads_nnetns);
	for (size_t i = 0; i < l->len; i++) {
		const struct tuple *tu = &l->items[i];
		__u8 level = v->levels ? v->levels[i] : 0;
		double *s;

		/* tuples of one namespace mostly come together: try the previous one first;
		 * nl->len: a namespace the list lacks, summed in the spare slot */
		if (last >= nl->len || nl->items[last].inum != tu->key.netns)
			last = ns_index(nl, tu->key.netns);
		s = sums[last].v;
		s[NS_TUPLES]++;
		s[NS_IN_USE] += tu->in_use;
		s[NS_MAX_UTIL] = fmax(s[NS_MAX_UTIL], tu->utilization);
		s[NS_CONNECTS] += tu->val.connects;
		s[NS_FAILED] += tu->val.failed_connects;
		in_use += tu->in_use;
		max_util = fmax(max_util, tu->utilization);
		connects += tu->val.connects;
		failed += tu->val.failed_connects;
		if (level <= LEVEL_EXHAUSTED)
			at_level[level]++;
	}

	render_tuples(v, t, top);
	render_netns(v, t, sums);
	plain(t, "ephport_tuples", "gauge", "Destination tuples tracked on this node.", l->len);
	plain(t, "ephport_tuples_exported", "gauge",
	      "Tuples with their own series here (--metrics-top).", top);
	plain(t, "ephport_in_use_sockets", "gauge",
	      "Live sockets of every tuple, TIME_WAIT not included.", in_use);
	plain(t, "ephport_time_wait_sockets", "gauge", "TIME_WAIT sockets of every namespace.",
	      time_wait);
	plain(t, "ephport_max_utilization_ratio", "gauge",
	      "Utilization of the tuple nearest exhaustion on this node.", max_util);
	family(t, "ephport_tuples_at_level", "gauge", "Tuples at each pressure level above ok.");
	for (int lv = LEVEL_WARNING; lv <= LEVEL_EXHAUSTED; lv++)
		labelled(t, "ephport_tuples_at_level", "level", level_name(lv), at_level[lv]);
	plain(t, "ephport_connects_total", "counter", "Active opens since the agent started.",
	      connects);
	plain(t, "ephport_failed_connects_total", "counter",
	      "connect() calls that found no local port (EADDRNOTAVAIL).", failed);
	if (v->denials)
		plain(t, "ephport_denials_total", "counter",
		      "connect() calls the guard refused or, in audit mode, would have.",
		      v->denials_total);
	if (v->spreads)
		plain(t, "ephport_connects_spread_total", "counter",
		      "connect() calls the guard bound to a --spread source or, in audit mode, "
		      "would have.",
		      v->spreads_total);
	metrics_render_nat(&v->nat, v->top, t);
	render_health(v, t);
	free(sums);
}
