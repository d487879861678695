// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The ephport_nat_* families of /metrics: the NAT tuples nearest exhaustion with
 * their own series (the same --metrics-top as tuples), sums over all of them, and
 * each NAT namespace's conntrack counters. docs/metrics.md, docs/nat.md.
 */
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "ephport.h"
#include "metrics.h"
#include "nat.h"
#include "promtext.h"

static void nat_labels(struct text *t, const struct nat_ct_key *k)
{
	char saddr[EPH_ADDRSTRLEN], daddr[EPH_ADDRSTRLEN];

	addr_format(k->family, k->saddr, saddr, sizeof(saddr));
	addr_format(k->family, k->daddr, daddr, sizeof(daddr));
	text_printf(t, "netns=\"%u\",protocol=\"%s\",family=\"%s\",saddr=\"", k->netns,
		    nat_protocol_name(k->protocol), k->family == AF_INET ? "ipv4" : "ipv6");
	label_value(t, saddr);
	text_printf(t, "\",daddr=\"");
	label_value(t, daddr);
	text_printf(t, "\",dport=\"%u\"", k->dport);
}

enum nat_field { NF_USAGE, NF_CAPACITY, NF_UTILIZATION, NF_LEVEL, NF_FIELDS };

static const struct {
	const char *name, *help;
} nat_families[NF_FIELDS] = {
	[NF_USAGE] = { "ephport_nat_tuple_usage",
		       "Source-NATed conntrack entries of the NAT tuple: translated ports held." },
	[NF_CAPACITY] = { "ephport_nat_tuple_capacity",
			  "Ports of the range the NAT tuple draws from (docs/nat.md)." },
	[NF_UTILIZATION] = { "ephport_nat_tuple_utilization_ratio", "Usage over capacity." },
	[NF_LEVEL] = { "ephport_nat_tuple_level",
		       "Pressure level: 0 ok, 1 warning, 2 critical, 3 exhausted." },
};

static double nat_field(const struct nat_row *r, enum nat_field f)
{
	switch (f) {
	case NF_USAGE:
		return r->usage;
	case NF_CAPACITY:
		return r->capacity;
	case NF_UTILIZATION:
		return r->utilization;
	default:
		return r->level;
	}
}

void metrics_render_nat(const struct metrics_nat *n, size_t top, struct text *t)
{
	__u64 at_level[LEVEL_EXHAUSTED + 1] = { 0 }, entries = 0;
	double max_util = 0;

	if (!n->enabled)
		return;
	top = top < n->nrows ? top : n->nrows;
	family(t, "ephport_nat_tuple_entries", "gauge",
	       "Source-NATed conntrack entries of the NAT tuple per state.");
	for (size_t i = 0; i < top; i++) {
		const struct nat_row *r = &n->rows[i];

		for (int s = 0; s < NAT_CT_NSTATES; s++) {
			if ((s == NAT_CT_UDP) != (r->key.protocol == IPPROTO_UDP))
				continue;
			text_printf(t, "ephport_nat_tuple_entries{");
			nat_labels(t, &r->key);
			text_printf(t, ",state=\"%s\"}", nat_ct_state_name(s));
			value(t, r->states[s]);
		}
	}
	for (int f = 0; f < NF_FIELDS; f++) {
		family(t, nat_families[f].name, "gauge", nat_families[f].help);
		for (size_t i = 0; i < top; i++) {
			text_printf(t, "%s{", nat_families[f].name);
			nat_labels(t, &n->rows[i].key);
			text_printf(t, "}");
			value(t, nat_field(&n->rows[i], f));
		}
	}
	for (size_t i = 0; i < n->nrows; i++) {
		entries += n->rows[i].usage;
		max_util = fmax(max_util, n->rows[i].utilization);
		at_level[n->rows[i].level]++;
	}
	plain(t, "ephport_nat_tuples", "gauge", "NAT tuples with source-NATed entries.", n->nrows);
	plain(t, "ephport_nat_entries", "gauge", "Source-NATed conntrack entries counted.",
	      entries);
	plain(t, "ephport_nat_max_utilization_ratio", "gauge",
	      "Utilization of the NAT tuple nearest exhaustion on this node.", max_util);
	family(t, "ephport_nat_tuples_at_level", "gauge",
	       "NAT tuples at each pressure level above ok.");
	for (int lv = LEVEL_WARNING; lv <= LEVEL_EXHAUSTED; lv++)
		labelled(t, "ephport_nat_tuples_at_level", "level", level_name(lv), at_level[lv]);
	family(t, "ephport_nat_insert_failed_total", "counter",
	       "Conntrack insert_failed of a namespace with source NAT: flows the NAT found no "
	       "port for, among other clashes.");
	for (size_t i = 0; i < n->nns; i++)
		text_printf(t, "ephport_nat_insert_failed_total{netns=\"%u\"} %llu\n",
			    n->ns[i].netns, (unsigned long long)n->ns[i].ks.insert_failed);
	family(t, "ephport_nat_drop_total", "counter",
	       "Conntrack drop of a namespace with source NAT: packets dropped for it.");
	for (size_t i = 0; i < n->nns; i++)
		text_printf(t, "ephport_nat_drop_total{netns=\"%u\"} %llu\n", n->ns[i].netns,
			    (unsigned long long)n->ns[i].ks.drop);
	family(t, "ephport_nat_events_lost_total", "counter",
	       "Times conntrack events were lost (ENOBUFS) and the namespace was dumped again.");
	for (size_t i = 0; i < n->nns; i++)
		text_printf(t, "ephport_nat_events_lost_total{netns=\"%u\"} %llu\n", n->ns[i].netns,
			    (unsigned long long)n->ns[i].st.enobufs);
}
