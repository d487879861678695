/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Pressure levels per tuple, with hysteresis, and the agent's pressure events (pressure.c). */
#ifndef EPHPORT_PRESSURE_H
#define EPHPORT_PRESSURE_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "ephport.h"

enum level {
	LEVEL_OK,
	LEVEL_WARNING,
	LEVEL_CRITICAL,
	LEVEL_EXHAUSTED, /* a connect() found no port for the tuple */
};

const char *level_name(enum level l);

struct alert_cfg {
	double warn;	 /* utilization of warning */
	double crit;	 /* utilization of critical */
	double margin;	 /* a level clears only below its threshold minus this */
	__u64 hold_ns;	 /* ... and after this long below it */
	__u64 window_ns; /* rates, forecasts and top processes look this far back */
};

/*
 * The next level of a tuple at level cur: up at once, down only after hold_ns
 * below the lower level's threshold minus the margin. *hot_ns is the last time
 * the tuple was at (or, within the margin, near) its level.
 */
enum level level_next(const struct alert_cfg *c, enum level cur, double util, bool failing,
		      __u64 now, __u64 *hot_ns);

/* the agent's side: tuples being watched, who opens connections to them */
struct pressure;
int pressure_new(struct pressure **p, const struct alert_cfg *cfg, struct report *r);
void pressure_free(struct pressure *p);
/* a notice from the kernel: connect() found no port for this tuple just now */
void pressure_failing(struct pressure *p, const struct tuple_key *key);
/* reads the openers map; its per-process counts feed top_processes */
int pressure_openers(struct pressure *p, int openers_fd, __u64 now);
/*
 * A check: the tuples that changed (all of them after a full read) and those
 * being watched are looked at; pressure events on level changes.
 */
struct tuple_table;
/*
 * The time a check spends on pressure lines: when more tuples change level at once
 * than fit in it, the others change, each with its line, at the following checks.
 */
#define PRESSURE_LINES_NS (200 * 1000000ull)
/* every_tuple: capacities moved (a namespace's range changed), not only the changed tuples' */
int pressure_check(struct pressure *p, const struct tuple_table *t, struct ns_list *nl, __u64 now,
		   bool every_tuple);
void pressure_levels(struct pressure *p, const struct tuple_table *t, __u8 *levels);
/* a tuple's level at the latest check */
enum level pressure_level(struct pressure *p, const struct tuple_key *key);
/* tuples not at ok now */
size_t pressure_active(const struct pressure *p);
struct spread_state;
/* how --spread stands for a tuple's destination, for its hints (none: no --spread) */
typedef void (*spread_state_fn)(void *ctx, const struct tuple *t, const struct ns_summary *ns,
				struct spread_state *st);
void pressure_spread_hook(struct pressure *p, spread_state_fn fn, void *ctx);

#endif /* EPHPORT_PRESSURE_H */
