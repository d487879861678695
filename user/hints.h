/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What to do about a tuple under pressure, from its numbers (hints.c). */
#ifndef EPHPORT_HINTS_H
#define EPHPORT_HINTS_H

#include <stddef.h>
#include <linux/types.h>

#include "ephport.h"

/* what the numbers say to do: one advice and the measured reason behind it */
struct hint {
	const char *id;
	char advice[192];
	char reason[256];
};

/* --spread as it stands for a tuple's destination in its namespace */
struct spread_state {
	int addrs;   /* --spread addresses local there, of its family; -1: no --spread */
	int below;   /* of those, below the deny line to the destination */
	bool active; /* connects to the destination were spread lately */
};

struct hint_input {
	const struct tuple *t;
	__u32 port_range;      /* low | high << 16 */
	int tw_reuse;	       /* net.ipv4.tcp_tw_reuse, -1 unknown */
	double connects_per_s; /* NAN unknown */
	__u64 bound_recent;    /* active opens bound before connect() within the window */
	size_t sources;	       /* source addresses in use towards this daddr:dport, this netns */
	size_t destinations; /* daddrs in use on this dport and family, this netns (1 or 2: more) */
	struct spread_state spread;
};

#define MAX_HINTS 6
/* the hints that apply, most useful first; at least one */
size_t hints_build(const struct hint_input *in, struct hint *out, size_t max);
int hint_to_json(const struct hint *h, cJSON *obj);

#endif /* EPHPORT_HINTS_H */
