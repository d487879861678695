/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The agent's view of source NAT (nat.c): which namespaces have it, their conntrack
 * counts per NAT tuple (nat_ct.c) and the port ranges of their rules (nat_rules.c),
 * levels per NAT tuple with their own thresholds, nat_pressure lines, and the rows
 * query and /metrics show. docs/nat.md.
 */
#ifndef EPHPORT_NAT_H
#define EPHPORT_NAT_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "nat_ct.h"
#include "nat_rules.h"
#include "pressure.h"

struct report;

#define NAT_ORIGINS_SHOWN 5 /* origins a row names, the most entries first */
/*
 * conntrack events are read this long after the previous read at the soonest: one
 * read of many messages costs less per event than a wake-up per few (docs/nat.md)
 */
#define NAT_BATCH_NS (20 * 1000000ull)

struct nat_origin_row {
	__u8 addr[16];
	__u32 entries;
	__u32 netns; /* the namespace the address is local in, 0 unknown */
	char container_id[65];
	char pod_uid[37];
};

/* one NAT tuple as query, metrics and nat_pressure lines show it */
struct nat_row {
	struct nat_ct_key key;
	__u32 usage;
	__u32 states[NAT_CT_NSTATES];
	struct nat_range range; /* what capacity is, and where it came from */
	__u32 capacity;
	double utilization;
	enum level level;
	__u32 norigins; /* all of them; the first NAT_ORIGINS_SHOWN are in origins */
	struct nat_origin_row origins[NAT_ORIGINS_SHOWN];
};

/* per namespace with source NAT */
struct nat_ns_row {
	__u32 netns;
	unsigned int where; /* NAT_IN_* */
	__u32 tuples, entries;
	struct nat_ct_kstats ks; /* insert_failed, drop as read last */
	struct nat_ct_stats st;
};

struct nat_view_opts {
	struct alert_cfg alert; /* --nat-warn-at, --nat-critical-at, the agent's margin and hold */
	struct nat_range override; /* --nat-range; low 0: none */
	int rcvbuf;		   /* 0: nat_ct's default */
};

struct nat_view;

int nat_view_new(struct nat_view **v, const struct nat_view_opts *o);
void nat_view_free(struct nat_view *v);
/*
 * While inside namespace inum (the agent's round): finds whether it has source
 * NAT, opens or closes its conntrack view, reads its rules when they changed,
 * its conntrack statistics, and its local addresses (for the origins; pid, a
 * process in it, 0 none, names its container and pod). 0, or
 * -errno of a reading (the namespace keeps what it had).
 */
int nat_view_read_ns(struct nat_view *v, __u32 inum, int pid);
/* the namespace is gone */
void nat_view_forget(struct nat_view *v, __u32 inum);
/* an fd readable when any namespace has conntrack events; -1 when none is watched */
int nat_view_fd(const struct nat_view *v);
/* reads what events are pending, a bounded number per namespace */
void nat_view_process(struct nat_view *v);
/* levels brought up to date, a nat_pressure line for each change; rows then current */
void nat_view_check(struct nat_view *v, struct report *r, __u64 now);
/* the rows as of the latest check, most utilized first; valid until the next check */
const struct nat_row *nat_view_rows(const struct nat_view *v, size_t *n);
const struct nat_ns_row *nat_view_namespaces(const struct nat_view *v, size_t *n);
size_t nat_view_active(const struct nat_view *v); /* rows at warning or above */
struct metrics_nat;
/* what /metrics shows: nothing when v is NULL (--no-nat) */
struct metrics_nat nat_view_metrics(const struct nat_view *v);

/* nat_json.c: a row as JSON (query and nat_pressure lines) */
struct cJSON;
int nat_row_to_json(const struct nat_row *r, struct cJSON *obj);
const char *nat_protocol_name(__u8 protocol);

#endif /* EPHPORT_NAT_H */
