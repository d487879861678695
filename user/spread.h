/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Connects the guard spread over --spread sources (spread.c): connect_spread
 * lines from the "spreads" map, and its counts for query, /metrics and the
 * pressure hints.
 */
#ifndef EPHPORT_SPREAD_H
#define EPHPORT_SPREAD_H

#include <stdbool.h>
#include <linux/types.h>

#include "ephport.h"
#include "hints.h"

struct spreads;
struct tuple_table;

/* fd: the "spreads" map */
int spreads_new(struct spreads **s, int fd, struct report *r);
void spreads_free(struct spreads *s);
/* the guard's settings, for the lines */
void spreads_guard(struct spreads *s, const struct guard_info *g);
/* a notice: this (chosen tuple, cgroup) was just spread to, its line now */
int spreads_notice(struct spreads *s, const struct spread_key *k, __u64 now);
/* every entry: lines for counts not reported yet; final: all of them, now */
int spreads_drain(struct spreads *s, __u64 now, bool final);
__u64 spreads_lines(const struct spreads *s);
/* the counts of chosen tuples t no longer has, all out of the map, forgotten */
void spreads_prune(struct spreads *s, const struct tuple_table *t);

/* spread connects since the agent started, per (chosen tuple, cgroup) */
struct spread_count {
	struct spread_key key;
	__u64 count;
};

/* those f keeps (NULL: all), most first, into *out (malloc'd) */
int spreads_read(const struct spreads *s, const struct tuple_filter *f, struct spread_count **out,
		 size_t *n);
/* sums as guard_denials_sums has them: per tuple of l, per namespace, in all */
int spreads_sums(const struct spreads *s, const struct tuple_list *l, __u64 *per_tuple,
		 struct netns_count **by_netns, size_t *nnetns, __u64 *total);
/* query's "spread": the settings, and the counts as "connects" */
int spreads_to_json(const struct guard_info *g, const struct spread_count *c, size_t n, cJSON *obj);
/* {"addresses": [...], "spread_at": x}, or null without --spread, as name in obj */
int spread_settings_to_json(const struct guard_info *g, const char *name, cJSON *obj);

/*
 * For a pressure line's hint: the --spread addresses local in t's namespace of
 * t's family (*addrs), those of them below the deny line to t's destination
 * (*below), and whether connects to that destination were spread lately.
 */
void spreads_state(const struct spreads *s, const struct tuple *t, const struct ns_summary *ns,
		   const struct tuple_table *table, struct spread_state *st);

#endif /* EPHPORT_SPREAD_H */
