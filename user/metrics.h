/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* ephport's Prometheus metrics, rendered after each check (metrics.c); metrics_http.h serves them.
 */
#ifndef EPHPORT_METRICS_H
#define EPHPORT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "ephport.h"
#include "cost.h"
#include "promtext.h"

#define METRICS_TOP_DEFAULT 100
/*
 * Per-tuple series for this many tuples at most: their text is then at most
 * METRICS_TEXT_MAX, every label and value as long as it can be (3.3 MiB, about
 * 3.4 KiB a tuple; tests/unit/test_metrics.c), plus about 1 KiB per namespace. The
 * server holds a few texts at once (docs/metrics.md), within the DaemonSet's 128 MiB.
 */
#define METRICS_TOP_MAX	 1000
#define METRICS_TEXT_MAX (7 << 19)

/* counters of tuples the agent forgot (idle expiry), so that sums never go down */
struct retired {
	__u32 netns;
	__u64 connects, failed;
};

struct retired_set {
	struct retired *items;
	size_t len, cap;
	struct u32_index idx;	/* by netns */
	__u64 connects, failed; /* over every namespace, gone ones too */
};

int retired_add(struct retired_set *r, const struct tuple *t);
/* drops namespaces no longer in nl (their series end with them) */
void retired_prune(struct retired_set *r, const struct ns_list *nl);
void retired_free(struct retired_set *r);

/* what one rendering shows */
struct metrics_view {
	const struct tuple_list *tuples; /* every tuple, nearest to exhaustion first */
	const struct ns_list *ns;	 /* as ns_list_build() leaves it */
	const __u8 *levels;		 /* enum level of each tuple; NULL: all ok */
	const __u64 *denials;		 /* guard refusals of each tuple; NULL: the guard is off */
	const struct netns_count *denials_netns; /* refusals per namespace, forgotten tuples too */
	size_t denials_nnetns;
	__u64 denials_total;
	const __u64
		*spreads; /* connects spread to each tuple (its chosen source); NULL: no --spread */
	const struct netns_count *spreads_netns; /* spread connects per namespace */
	size_t spreads_nnetns;
	__u64 spreads_total;
	size_t top; /* per-tuple series for this many tuples */
	const struct retired_set *retired;
	const struct agent_stats *stats;
	const struct cost_reading *cost;
	__u32 max_tuples;
	__u64 lines_dropped, checks;
	__u64 output_errors; /* writes and reopens of the output that failed */
	double last_check_s; /* Unix time of the check this reading is from */
	double start_time_s;
	const char *version;
	struct metrics_nat {
		bool enabled; /* not --no-nat */
		const struct nat_row *rows;
		size_t nrows;
		const struct nat_ns_row *ns;
		size_t nns;
	} nat;
};

/* the Prometheus text exposition format (version 0.0.4) */
void metrics_render(const struct metrics_view *v, struct text *out);
/* metrics_nat.c: the ephport_nat_* families */
void metrics_render_nat(const struct metrics_nat *n, size_t top, struct text *t);

#endif /* EPHPORT_METRICS_H */
