/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Who opens connections to each tuple, and how many lately (openers.c). */
#ifndef EPHPORT_OPENERS_H
#define EPHPORT_OPENERS_H

#include <linux/types.h>

#include "ephport.h"

struct openers;
int openers_new(struct openers **out, __u64 window_ns);
void openers_free(struct openers *o);
/* the openers map read: a sample of each process's count, evicted ones dropped */
int openers_read(struct openers *o, int openers_fd, __u64 now);
/*
 * A "top_processes" array in ev: the processes that opened the most connections
 * to the tuple within the window, most first. The first call after a read sorts
 * the openers once; every line of a check then finds its own by binary search.
 */
int openers_top_to_json(struct openers *o, struct report *r, const struct tuple_key *key, __u64 now,
			cJSON *ev);
/* the sorted view let go: the check's lines are written */
void openers_view_free(struct openers *o);

#endif /* EPHPORT_OPENERS_H */
