/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Bounded lines from a BPF hash map of counts (cadence.c): a key gets a line
 * at once when the kernel sends a notice, then at most one a second while its
 * count grows, each with the count since the previous line, so that the counts
 * of its lines add up. A key quiet for a while, all reported, leaves the map.
 * failures.c (per tuple and process) and spread.c (per tuple and cgroup).
 */
#ifndef EPHPORT_CADENCE_H
#define EPHPORT_CADENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#define CADENCE_LINE_NS 1000000000ull  /* one line a second per key at most */
#define CADENCE_IDLE_NS 10000000000ull /* a key quiet this long leaves the map */
#define CADENCE_VAL_MAX 256	       /* the largest map value */

/* where a key's lines stand: in the user's record, after its key */
struct cadence {
	__u64 reported;	 /* counts in lines so far */
	__u64 line_ns;	 /* when the latest line was made */
	__u64 change_ns; /* when the count last grew */
	__u64 count;	 /* at the latest reading */
};

struct cadence_ops {
	size_t key_size, val_size; /* of the map */
	size_t rec_size;	   /* a record: the key first, a struct cadence at cad_off */
	size_t cad_off;
	int (*cmp)(const void *a, const void *b); /* of two records, by key */
	__u64 (*count)(const void *val);
	/* the count of rec's entry grew (may be NULL) */
	void (*grew)(void *ctx, void *rec, const void *val);
	/* a line for rec: its count since the previous is count(val) - reported */
	void (*emit)(void *ctx, void *rec, const void *val);
	/* rec's entry left the map, all of it reported: true frees rec (NULL: always) */
	bool (*forget)(void *ctx, void *rec);
};

struct cadence_set {
	const struct cadence_ops *ops;
	void *ctx;
	int fd;
	void *tree; /* records by key */
};

/* rec's place, made (zeroed but for the key) if new; NULL when out of memory */
void *cadence_get(struct cadence_set *s, const void *key);
void *cadence_find(const struct cadence_set *s, const void *key);
/* a notice: key's line now, if the map has it */
int cadence_notice(struct cadence_set *s, const void *key, __u64 now);
/* every entry: lines for counts not reported yet; final: all of them, now */
int cadence_drain(struct cadence_set *s, __u64 now, bool final);
/* each record, in key order */
void cadence_walk(const struct cadence_set *s, void (*fn)(const void *rec, void *arg), void *arg);
/* records fn says to drop (the map's entry stays) */
void cadence_prune(struct cadence_set *s, bool (*drop)(const void *rec, void *arg), void *arg);
void cadence_free(struct cadence_set *s);

#endif /* EPHPORT_CADENCE_H */
