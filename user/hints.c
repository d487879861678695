// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Hints: what the numbers of a tuple under pressure say to do. Each hint is
 * one advice and the measured reason behind it, most useful first: ports bound
 * before connect(), TIME_WAIT, a narrow port range, one source or one
 * destination address, and when none of those, the open connections.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>

#include "hints.h"

#define FULL_RANGE (65535 - 1024 + 1) /* the widest ip_local_port_range */

static __u32 range_size(__u32 range)
{
	return range && PORT_HIGH(range) >= PORT_LOW(range) ?
		       PORT_HIGH(range) - PORT_LOW(range) + 1 :
		       0;
}

static void hint_set(struct hint *h, const char *id, const char *advice, const char *reason)
{
	h->id = id;
	snprintf(h->advice, sizeof(h->advice), "%s", advice);
	snprintf(h->reason, sizeof(h->reason), "%s", reason);
}

size_t hints_build(const struct hint_input *in, struct hint *out, size_t max)
{
	const struct tuple *t = in->t;
	__s64 tw = t->time_wait - t->reusable, usage = t->usage > 0 ? t->usage : 0;
	__u32 size = range_size(in->port_range);
	char advice[192], reason[256];
	size_t n = 0;

	if (max > MAX_HINTS)
		max = MAX_HINTS;
	/* first: what the guard does about it already, and what is left */
	if (n < max && in->spread.active && in->spread.addrs > 0) {
		snprintf(advice, sizeof(advice),
			 "spreading over %d source addresses, %d below the deny line%s",
			 in->spread.addrs, in->spread.below,
			 in->spread.below ? "" :
					    ": add --spread addresses local to this namespace");
		hint_set(&out[n++], "spreading", advice,
			 "--spread binds new unbound connects to this destination to its least "
			 "used source address once this tuple is at --spread-at");
	}
	if (n < max && (t->val.bound > 0 || in->bound_recent > 0)) {
		snprintf(reason, sizeof(reason),
			 "%lld sockets to this destination hold a port bound before connect() "
			 "(%llu such connects in the window): each such port is taken from every "
			 "destination",
			 (long long)(t->val.bound > 0 ? t->val.bound : 0),
			 (unsigned long long)in->bound_recent);
		hint_set(&out[n++], "bind_before_connect",
			 "set IP_BIND_ADDRESS_NO_PORT before bind(), or do not bind() client "
			 "sockets, so the port is chosen per destination",
			 reason);
	}
	if (n < max && usage > 0 && tw * 2 >= usage) {
		double life = NAN;
		int len;

		if (!isnan(in->connects_per_s) && in->connects_per_s > 0)
			life = (double)(t->in_use > 0 ? t->in_use : 0) / in->connects_per_s;
		snprintf(advice, sizeof(advice),
			 "reuse connections (HTTP keepalive, connection pooling)%s",
			 in->tw_reuse == 1 ? "" : " or set net.ipv4.tcp_tw_reuse=1 on this host");
		len = snprintf(reason, sizeof(reason),
			       "TIME_WAIT holds %lld of the %lld ports in use (%.0f%%)",
			       (long long)tw, (long long)usage, 100.0 * (double)tw / (double)usage);
		if (!isnan(life) && len > 0 && (size_t)len < sizeof(reason)) {
			char lives[32];

			/* open / rate (Little's law); below 10 ms it only says short */
			if (life < 0.01)
				snprintf(lives, sizeof(lives), "under 10 ms");
			else
				snprintf(lives, sizeof(lives), "about %.2f s", life);
			snprintf(reason + len, sizeof(reason) - len,
				 "; connections live %s (%lld open at %.1f connects/s)", lives,
				 (long long)t->in_use, in->connects_per_s);
		}
		hint_set(&out[n++], "time_wait", advice, reason);
	}
	if (n < max && size && size < FULL_RANGE) {
		snprintf(reason, sizeof(reason),
			 "net.ipv4.ip_local_port_range is %u-%u: %u ports, of %u possible",
			 PORT_LOW(in->port_range), PORT_HIGH(in->port_range), size, FULL_RANGE);
		hint_set(&out[n++], "narrow_range",
			 "widen net.ipv4.ip_local_port_range (up to 1024-65535) in this network "
			 "namespace",
			 reason);
	}
	if (n < max && in->sources <= 1) {
		snprintf(reason, sizeof(reason),
			 "every connection to this destination comes from one source address: "
			 "one tuple holds at most %lld ports",
			 (long long)t->capacity);
		hint_set(&out[n++], "single_source",
			 "add source addresses (e.g. nginx proxy_bind with split_clients): each "
			 "brings its own set of ports",
			 reason);
	}
	if (n < max && in->destinations <= 1) {
		snprintf(reason, sizeof(reason),
			 "one destination address serves port %u from this namespace: all "
			 "connections share its %lld ports",
			 t->key.dport, (long long)t->capacity);
		hint_set(&out[n++], "single_destination",
			 "spread connections over more destination addresses or ports (more "
			 "backends, or several ports per backend)",
			 reason);
	}
	if (n == 0 && max > 0) {
		snprintf(reason, sizeof(reason),
			 "%lld ports in use of %lld, %lld of them open connections",
			 (long long)usage, (long long)t->capacity, (long long)t->in_use);
		hint_set(&out[n++], "open_connections",
			 "fewer concurrent connections to this destination (a smaller pool), "
			 "or more source or destination addresses",
			 reason);
	}
	return n;
}

int hint_to_json(const struct hint *h, cJSON *obj)
{
	return cJSON_AddStringToObject(obj, "id", h->id) &&
			       cJSON_AddStringToObject(obj, "advice", h->advice) &&
			       cJSON_AddStringToObject(obj, "reason", h->reason) ?
		       0 :
		       -ENOMEM;
}
