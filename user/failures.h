/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* connect_failed and bind_failed lines from the "failures" map (failures.c). */
#ifndef EPHPORT_FAILURES_H
#define EPHPORT_FAILURES_H

#include <stdbool.h>
#include <linux/types.h>

#include "ephport.h"

struct tuple_table;

struct failures;
struct pressure;

/* fd: the "failures" map; p (may be NULL) hears of tuples that fail */
int failures_new(struct failures **f, int fd, struct report *r, struct pressure *p);
void failures_free(struct failures *f);
/* a notice: this (tuple, process) just started failing */
int failures_notice(struct failures *f, const struct fail_key *k, struct ns_list *nl,
		    const struct tuple_table *l, __u64 now);
/* every entry: lines for counts not reported yet; final: all of them, now */
int failures_drain(struct failures *f, struct ns_list *nl, const struct tuple_table *l, __u64 now,
		   bool final);
__u64 failures_lines(const struct failures *f);
/* the guard's settings, for connect_denied lines */
void failures_guard(struct failures *f, const struct guard_info *g);

#endif /* EPHPORT_FAILURES_H */
