// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The NAT part of "ephport query": the source-NATed conntrack entries per NAT
 * tuple, as a table and as the "nat" and "nat_netns" sections of --json.
 * docs/nat.md, docs/query.md.
 */
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "query.h"

static bool nat_wanted(const struct tuple_filter *f, __u32 netns)
{
	return !f->netns_set || netns == f->netns;
}

static int nat_ns_to_json(const struct nat_ns_row *n, cJSON *obj)
{
	cJSON *where = cJSON_AddArrayToObject(obj, "rules");

	if (!where || ADD_NUM(obj, "netns", n->netns) || ADD_NUM(obj, "tuples", n->tuples) ||
	    ADD_NUM(obj, "entries", n->entries) ||
	    ADD_NUM(obj, "insert_failed", n->ks.insert_failed) ||
	    ADD_NUM(obj, "drop", n->ks.drop) || ADD_NUM(obj, "events", n->st.events) ||
	    ADD_NUM(obj, "resyncs", n->st.dumps ? n->st.dumps - 1 : 0) ||
	    ADD_NUM(obj, "events_lost", n->st.enobufs))
		return -ENOMEM;
	if ((n->where & NAT_IN_NFT) && !cJSON_AddItemToArray(where, cJSON_CreateString("nftables")))
		return -ENOMEM;
	if ((n->where & NAT_IN_LEGACY) &&
	    !cJSON_AddItemToArray(where, cJSON_CreateString("iptables-legacy")))
		return -ENOMEM;
	return 0;
}

int nat_section_to_json(const struct query_view *v, const struct tuple_filter *f, cJSON *doc)
{
	cJSON *rows = cJSON_AddArrayToObject(doc, "nat");
	cJSON *nss = cJSON_AddArrayToObject(doc, "nat_netns");

	if (!rows || !nss || !cJSON_AddBoolToObject(doc, "nat_enabled", v->nat_enabled))
		return -ENOMEM;
	for (size_t i = 0; i < v->nnat; i++) {
		cJSON *o;

		if (!nat_wanted(f, v->nat[i].key.netns))
			continue;
		o = cJSON_CreateObject();
		if (!o || !cJSON_AddItemToArray(rows, o) || nat_row_to_json(&v->nat[i], o))
			return -ENOMEM;
	}
	for (size_t i = 0; i < v->nnat_ns; i++) {
		cJSON *o;

		if (!nat_wanted(f, v->nat_ns[i].netns))
			continue;
		o = cJSON_CreateObject();
		if (!o || !cJSON_AddItemToArray(nss, o) || nat_ns_to_json(&v->nat_ns[i], o))
			return -ENOMEM;
	}
	return 0;
}

void print_nat(FILE *out, const struct query_view *v, const struct tuple_filter *f)
{
	char s[EPH_ADDRSTRLEN], d[EPH_ADDRSTRLEN + 8], o[EPH_ADDRSTRLEN];
	bool head = false;

	size_t nns = 0;

	/* nothing at all where no namespace in view has source NAT (or --no-nat) */
	for (size_t i = 0; i < v->nnat_ns; i++)
		nns += nat_wanted(f, v->nat_ns[i].netns);
	if (!nns)
		return;
	for (size_t i = 0; i < v->nnat; i++) {
		const struct nat_row *r = &v->nat[i];
		const struct nat_ct_key *k = &r->key;
		bool tcp = k->protocol == IPPROTO_TCP;

		if (!nat_wanted(f, k->netns))
			continue;
		if (!head) {
			fprintf(out,
				"\n%-10s %-5s %-39s %-46s %7s %8s %6s %-9s %6s %6s %6s %6s  %s\n",
				"NETNS", "PROTO", "NAT_SADDR", "DST", "USAGE", "CAPACITY", "UTIL",
				"LEVEL", "SYN", "ESTAB", "TW", "OTHER", "TOP_ORIGIN");
			head = true;
		}
		if (addr_format(k->family, k->saddr, s, sizeof(s)) ||
		    addr_format(k->family, k->daddr, o, sizeof(o)))
			continue;
		snprintf(d, sizeof(d), k->family == AF_INET6 ? "[%s]:%u" : "%s:%u", o, k->dport);
		if (!r->norigins || addr_format(k->family, r->origins[0].addr, o, sizeof(o)))
			snprintf(o, sizeof(o), "-");
		fprintf(out, "%-10u %-5s %-39s %-46s %7u %8u %5.1f%% %-9s %6u %6u %6u %6u  %s",
			k->netns, nat_protocol_name(k->protocol), s, d, r->usage, r->capacity,
			100 * r->utilization, level_name(r->level),
			tcp ? r->states[NAT_CT_SYN_SENT] : 0,
			tcp ? r->states[NAT_CT_ESTABLISHED] : r->states[NAT_CT_UDP],
			tcp ? r->states[NAT_CT_TIME_WAIT] : 0,
			tcp ? r->states[NAT_CT_CLOSE] + r->states[NAT_CT_OTHER] : 0, o);
		if (r->norigins)
			fprintf(out, " (%u, of %u origins)", r->origins[0].entries, r->norigins);
		fprintf(out, "\n");
	}
	if (!head)
		fprintf(out,
			"\nnat: no source-NATed connections in %zu namespaces with NAT rules\n",
			nns);
}
