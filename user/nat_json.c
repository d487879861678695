// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * NAT tuples in words: a row as JSON (query's nat section, nat_pressure lines),
 * the nat_pressure line with the namespace's insert_failed and drop counters,
 * and the hints for a NAT tuple under pressure. docs/nat.md, docs/events.md.
 */
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cjson/cJSON.h>

#include "ephport.h"
#include "nat.h"
#include "sink.h"

const char *nat_protocol_name(__u8 protocol)
{
	return protocol == IPPROTO_TCP ? "tcp" : protocol == IPPROTO_UDP ? "udp" : "other";
}

static const char *range_source_name(__u8 s)
{
	return s == NAT_RANGE_OVERRIDE ? "override" : s == NAT_RANGE_RULE ? "rule" : "default";
}

static int add_addr(cJSON *obj, const char *name, int family, const __u8 *addr)
{
	char buf[64];

	if (addr_format(family, addr, buf, sizeof(buf)))
		return -EINVAL;
	return cJSON_AddStringToObject(obj, name, buf) ? 0 : -ENOMEM;
}

static int origins_to_json(const struct nat_row *r, cJSON *obj)
{
	cJSON *arr = cJSON_AddArrayToObject(obj, "origins");
	size_t shown = r->norigins < NAT_ORIGINS_SHOWN ? r->norigins : NAT_ORIGINS_SHOWN;

	if (!arr)
		return -ENOMEM;
	for (size_t i = 0; i < shown; i++) {
		const struct nat_origin_row *o = &r->origins[i];
		cJSON *x = cJSON_CreateObject();

		if (!x || !cJSON_AddItemToArray(arr, x))
			return -ENOMEM;
		if (add_addr(x, "saddr", r->key.family, o->addr) ||
		    ADD_NUM(x, "entries", o->entries))
			return -ENOMEM;
		if (o->netns && ADD_NUM(x, "netns", o->netns))
			return -ENOMEM;
		if (o->container_id[0] &&
		    !cJSON_AddStringToObject(x, "container_id", o->container_id))
			return -ENOMEM;
		if (o->pod_uid[0] && !cJSON_AddStringToObject(x, "pod_uid", o->pod_uid))
			return -ENOMEM;
	}
	return ADD_NUM(obj, "origins_total", r->norigins);
}

int nat_row_to_json(const struct nat_row *r, cJSON *obj)
{
	const struct nat_ct_key *k = &r->key;
	cJSON *states, *range;

	if (ADD_NUM(obj, "netns", k->netns) ||
	    !cJSON_AddStringToObject(obj, "protocol", nat_protocol_name(k->protocol)) ||
	    !cJSON_AddStringToObject(obj, "family", k->family == AF_INET6 ? "ipv6" : "ipv4") ||
	    add_addr(obj, "saddr", k->family, k->saddr) ||
	    add_addr(obj, "daddr", k->family, k->daddr) || ADD_NUM(obj, "dport", k->dport) ||
	    ADD_NUM(obj, "usage", r->usage) || ADD_NUM(obj, "capacity", r->capacity) ||
	    ADD_NUM(obj, "utilization", r->utilization) ||
	    !cJSON_AddStringToObject(obj, "level", level_name(r->level)))
		return -ENOMEM;
	range = cJSON_AddObjectToObject(obj, "range");
	if (!range || ADD_NUM(range, "low", r->range.low) ||
	    ADD_NUM(range, "high", r->range.high) ||
	    !cJSON_AddStringToObject(range, "source", range_source_name(r->range.source)) ||
	    !cJSON_AddBoolToObject(range, "ambiguous", r->range.ambiguous))
		return -ENOMEM;
	states = cJSON_AddObjectToObject(obj, "states");
	if (!states)
		return -ENOMEM;
	for (int s = 0; s < NAT_CT_NSTATES; s++) {
		/* tcp has its five, udp its one */
		if ((s == NAT_CT_UDP) != (k->protocol == IPPROTO_UDP))
			continue;
		if (ADD_NUM(states, nat_ct_state_name(s), r->states[s]))
			return -ENOMEM;
	}
	return origins_to_json(r, obj);
}

/* what to do about a NAT tuple under pressure, most useful first */
static int hints_to_json(const struct nat_row *r, __u64 failed_rise, cJSON *obj)
{
	cJSON *arr = cJSON_AddArrayToObject(obj, "hints");
	char advice[256], reason[256];
	double tw = r->usage ? (double)r->states[NAT_CT_TIME_WAIT] / r->usage : 0;

#define HINT(id_, ...)                                                \
	do {                                                          \
		cJSON *h_ = cJSON_CreateObject();                     \
		if (!h_ || !cJSON_AddItemToArray(arr, h_) ||          \
		    !cJSON_AddStringToObject(h_, "id", (id_)) ||      \
		    !cJSON_AddStringToObject(h_, "advice", advice) || \
		    !cJSON_AddStringToObject(h_, "reason", reason))   \
			return -ENOMEM;                               \
	} while (0)

	if (!arr)
		return -ENOMEM;
	snprintf(advice, sizeof(advice),
		 "translate to more source addresses (snat to an address range, more egress "
		 "addresses): each one adds its own %u ports towards this destination",
		 r->capacity);
	snprintf(reason, sizeof(reason), "%u of %u ports of one translated address are held",
		 r->usage, r->capacity);
	HINT("nat_more_addresses");
	if (r->range.source != NAT_RANGE_DEFAULT && r->capacity < 64512) {
		snprintf(advice, sizeof(advice),
			 "widen the port range of the NAT rule (%u-%u now; without one the kernel "
			 "draws from 1024-65535)",
			 r->range.low, r->range.high);
		snprintf(reason, sizeof(reason), "the rule's range has %u ports", r->capacity);
		HINT("nat_port_range");
	}
	if (tw >= 0.3) {
		snprintf(advice, sizeof(advice),
			 "shorten net.netfilter.nf_conntrack_tcp_timeout_time_wait (120 s by "
			 "default), or reuse connections (keep-alive, pools)");
		snprintf(reason, sizeof(reason), "%u of the %u entries are in TIME_WAIT",
			 r->states[NAT_CT_TIME_WAIT], r->usage);
		HINT("nat_time_wait");
	}
	if (failed_rise) {
		snprintf(advice, sizeof(advice),
			 "the NAT found no free port for some flows: use fully random port "
			 "allocation (nft masquerade fully-random, iptables --random-fully) and "
			 "more addresses");
		snprintf(reason, sizeof(reason),
			 "insert_failed rose by %llu in the namespace since the last line",
			 (unsigned long long)failed_rise);
		HINT("nat_insert_failed");
	}
#undef HINT
	return 0;
}

void nat_emit_change(struct report *rep, const struct nat_row *row, enum level was,
		     const struct nat_ns_row *ns, const struct nat_ct_kstats *seen)
{
	cJSON *ev = report_new(rep, "nat_pressure");
	__u64 failed_rise = 0, drop_rise = 0;

	if (ns && seen) {
		failed_rise = ns->ks.insert_failed - seen->insert_failed;
		drop_rise = ns->ks.drop - seen->drop;
	}
	if (ev &&
	    (nat_row_to_json(row, ev) ||
	     !cJSON_AddStringToObject(ev, "previous_level", level_name(was)) ||
	     (ns && (ADD_NUM(ev, "insert_failed", ns->ks.insert_failed) ||
		     ADD_NUM(ev, "insert_failed_rise", failed_rise) ||
		     ADD_NUM(ev, "drop", ns->ks.drop) || ADD_NUM(ev, "drop_rise", drop_rise))) ||
	     (row->level != LEVEL_OK && hints_to_json(row, failed_rise, ev)))) {
		cJSON_Delete(ev);
		ev = NULL;
	}
	report_emit(rep, ev);
}
