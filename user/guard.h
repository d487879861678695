/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The connect guard's user side (guard.c). */
#ifndef EPHPORT_GUARD_H
#define EPHPORT_GUARD_H

#include <stddef.h>
#include <linux/types.h>

#include "ephport.h"
#include "opts.h"

/* what a refused connect() gets: --deny-errno's values */
extern const struct opt_choice guard_errnos[];
const char *guard_errno_name(__u32 e);
/* 'ephport guard status's options */
extern const struct opts_cmd guard_cmd;
const char *guard_mode_name(__u32 mode);
/* the maps guard_refresh keeps, and the programs' count of guard_dst's entries */
struct guard_maps {
	int dst_fd;
	int tuples_fd;
	__u32 *count;
};
/* destinations near the deny line into the guard_dst map; others out */
int guard_refresh(const struct guard_maps *m, const struct tuple_list *l, struct ns_list *nl,
		  __u32 watch_ppm, size_t *uncovered);
int guard_info_read(struct guard_info *gi);
int guard_info_to_json(const struct guard_info *gi, cJSON *obj);

struct denial;
int guard_denials_read(int failures_fd, struct denial **out, size_t *len);
/*
 * Refusals summed: per tuple of l over cgroups and reasons into per_tuple[l->len],
 * and over the whole map (tuples forgotten since included) per namespace, into
 * *by_netns (malloc'd, *nnetns long) and *total.
 */
int guard_denials_sums(int denials_fd, const struct tuple_list *l, __u64 *per_tuple,
		       struct netns_count **by_netns, size_t *nnetns, __u64 *total);
int guard_denials_to_json(const struct denial *d, size_t n, cJSON *arr);

#endif /* EPHPORT_GUARD_H */
