/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The agent's copy of the "tuples" map (table.c), kept current by reading only
 * the tuples the kernel says changed ("changes", bpf/maps.bpf.h).
 */
#ifndef EPHPORT_TABLE_H
#define EPHPORT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "ephport.h"

/* a tuple's namespace totals that come from its tuples: time_wait, the newest connect's range */
struct ns_agg {
	__u32 inum;
	__s64 tw_tuples;
	__u32 port_range;
	__u8 tw_reuse;
	__u64 newest_connect;
	__s64 ntuples;
};

/* a tuple changed at the latest refresh, and what it was before */
struct table_change {
	struct tuple_key key;
	bool gone, made; /* deleted from the map; new in it */
	double old_util;
	__s64 old_capacity;
};

struct tuple_table {
	struct tuple_list list; /* unsorted; a removal moves the last item into the hole */
	__u32 *slot;		/* open addressing: item index + 1, 0 empty */
	size_t nslot;		/* a power of two, at least twice the items */
	void *ns;		/* struct ns_agg by inum (tsearch) */
	struct table_change *changes;
	size_t nchanges, capchanges;
	bool all_changed; /* the latest refresh read the whole map */
	__u64 version;	  /* moves with every change of the items or their order */
};

struct tuple *table_find(const struct tuple_table *t, const struct tuple_key *key);
/*
 * Reads note what changed in changes[] (all_changed after a whole read) until
 * the caller has looked at it and clears it: a query between two checks
 * reads too, and the next check still sees what it read.
 */
void table_changes_clear(struct tuple_table *t);
/* every tuple read afresh (start-up, repair): every tuple counts as changed */
int table_read_all(struct tuple_table *t, int map_fd);
/* the tuples of keys[] read afresh; the others are as they were */
int table_read_keys(struct tuple_table *t, int map_fd, const struct tuple_key *keys, size_t n);
/* a tuple the agent deleted from the map */
void table_remove(struct tuple_table *t, const struct tuple_key *key);
const struct ns_agg *table_ns(const struct tuple_table *t, __u32 inum);
/* calls fn for each namespace's totals */
void table_ns_each(const struct tuple_table *t, void (*fn)(const struct ns_agg *, void *),
		   void *arg);
/* the n most used tuples to the front of the list, in order; the rest in no order */
int table_top(struct tuple_table *t, size_t n);
void table_free(struct tuple_table *t);

#endif /* EPHPORT_TABLE_H */
