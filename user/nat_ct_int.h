/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Inside nat_ct: the state nat_ct.c (sockets, parsing) and nat_ct_agg.c (counts
 * per conntrack id and per NAT tuple) share. Not for other files.
 */
#ifndef EPHPORT_NAT_CT_INT_H
#define EPHPORT_NAT_CT_INT_H

#include "nat_ct.h"

/* seconds ahead the expiry wheel sees: a longer timeout is left to the DESTROY event */
#define NAT_WHEEL 1024

/* open addressing over a pool: slot = pool index + 1, 0 empty; never over 3/4 full */
struct nat_ix {
	__u32 *slot;
	__u32 mask; /* slots - 1 (a power of two), or 0 before the first insert */
	__u32 n;
};

/* what one conntrack entry counted as */
struct nat_entry {
	__u32 id;
	__u32 tuple;	    /* index in tuples; next free entry when unused */
	__u32 origin;	    /* index in origins */
	__u32 gen;	    /* the dump (or event) generation that saw it last */
	__u32 expires;	    /* TIME_WAIT, CLOSE: when, in nat->now_s seconds; 0 not on the wheel */
	__u32 wprev, wnext; /* the wheel slot's list, + 1 */
	__u8 state;	    /* enum nat_ct_state */
	__u8 used;
	__u8 evented; /* seen in an event: it sends them */
};

struct nat_ct {
	__u32 netns;
	int ev_fd, dump_fd, stat_fd;
	__u32 dump_seq, portid;
	unsigned resync_ms;
	__u64 last_dump_ns;
	__u32 gen;
	__u32 now_s;	/* monotonic seconds, set before messages are handled */
	__u32 wheel_at; /* the second the wheel has expired entries up to */
	__u32 *wheel;	/* NAT_WHEEL list heads (entry + 1), by expires */
	struct nat_ct_stats st;

	struct nat_entry *entries;
	__u32 nentries, cap_entries, free_entry; /* free list head + 1 */
	struct nat_ix entry_ix;

	struct nat_ct_tuple *tuples; /* usage 0: unused, .first_origin its next free + 1 */
	__u32 ntuples, cap_tuples, free_tuple;
	struct nat_ix tuple_ix;

	struct nat_ct_origin *origins; /* count 0: unused, .next its next free + 1 */
	__u32 norigins, cap_origins, free_origin;
	struct nat_ix origin_ix;

	char *buf; /* receive buffers */
};

/* what one message says of an entry */
struct nat_flow {
	struct nat_ct_key key;
	__u8 origin[16];
	__u32 id;
	int state;   /* enum nat_ct_state, or -1: not in this message (keep) */
	int timeout; /* CTA_TIMEOUT, seconds left, or -1: not in this message */
};

/* counts the entry as flow says (new, moved or unchanged); 0 or -ENOMEM */
int nat_agg_upsert(struct nat_ct *nat, const struct nat_flow *f, bool from_dump);
/* the entry with this id no longer counts (if it did) */
void nat_agg_remove(struct nat_ct *nat, __u32 id);
/* removes the entries whose gen is not nat->gen: the dump did not see them */
void nat_agg_sweep(struct nat_ct *nat);
/* removes the TIME_WAIT and CLOSE entries whose timeout passed by nat->now_s */
void nat_agg_expire(struct nat_ct *nat);
void nat_agg_free(struct nat_ct *nat);

#endif /* EPHPORT_NAT_CT_INT_H */
