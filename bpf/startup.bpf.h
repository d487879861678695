/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Start-up: counting sockets that existed before the agent, each exactly once
 * although the walk that finds them races with the events of the same sockets.
 *
 * The agent lists the namespaces it finds before it attaches anything and marks
 * them pending ("nsphase"); a namespace made later can only hold new sockets. In
 * a pending namespace every socket is claimed once, by its address, in
 * "claims": by the walk (CLAIM_VISITED) or by the first event that sees it
 * (CLAIM_EVENT), whichever inserts first. The walk counts the sockets it claims
 * in the state it read before claiming; an event that claims a socket counts
 * it in its new state only; later events of a claimed socket move it as usual.
 * A TIME_WAIT socket that dies before the walk reaches it is claimed dead and
 * never counted. If "claims" is full, an event leaves a socket it cannot claim
 * uncounted and the walk counts what it cannot claim ("startup_claims_dropped":
 * a count may then be off by the few sockets both touched in the same instant).
 *
 * The walk goes through the namespace's ehash buckets in order. Claims of the
 * buckets below "walk_safe" are dropped by the agent as the walk moves on (after
 * an RCU grace period, so no program still decides on them): there every socket
 * has been walked and events count as usual, without looking at claims. A
 * claim's key holds its bucket, so a socket that took a dropped one's memory
 * since, in a bucket ahead, has a claim of its own that the drop does not touch.
 * Memory follows the sockets touched during the start-up, never the host's.
 */
#ifndef EPHPORT_STARTUP_BPF_H
#define EPHPORT_STARTUP_BPF_H

#include "maps.bpf.h"

/* the namespace still has sockets the walk has not counted */
static __always_inline bool ns_pending(__u32 netns)
{
	return startup && bpf_map_lookup_elem(&nsphase, &netns);
}

/* a socket's ehash bucket, as the iter/tcp walk goes through them */
static __always_inline __u32 bucket_of(__u32 hash, const struct net *net)
{
	return hash & ehash_mask_of(net);
}

/* the walk of this namespace has gone past this bucket: no claim is needed there */
static __always_inline bool walked_past(__u32 netns, __u32 bucket)
{
	return netns == walk_netns && bucket < walk_safe;
}

static __always_inline __u32 claim_kind(__u64 addr, __u32 netns, __u32 bucket)
{
	struct claim_key k = { .addr = addr, .netns = netns, .bucket = CLAIM_NO_BUCKET };
	__u32 *kind = bpf_map_lookup_elem(&claims, &k);

	/* connecting (or listening) since the walk began: claimed with no bucket */
	if (kind || bucket == CLAIM_NO_BUCKET)
		return kind ? *kind : 0;
	k.bucket = bucket;
	kind = bpf_map_lookup_elem(&claims, &k);
	return kind ? *kind : 0;
}

/* claim a socket for kind; 0, or -EEXIST when someone claimed it first */
static __always_inline int claim(__u64 addr, __u32 kind, __u32 netns, __u32 bucket)
{
	struct claim_key k = { .addr = addr, .netns = netns, .bucket = bucket };
	int err;

	if (bucket != CLAIM_NO_BUCKET && claim_kind(addr, netns, CLAIM_NO_BUCKET))
		return -EEXIST;
	err = map_err(bpf_map_update_elem(&claims, &k, &kind, BPF_NOEXIST));
	if (err == -E2BIG)
		stat_inc(EPH_STAT_CLAIMS_FULL);
	return err;
}

/* set a claim whoever had it (an event's TIME_WAIT socket, re-armed or dead); false if full */
static __always_inline bool claim_set(__u64 addr, __u32 kind, __u32 netns, __u32 bucket)
{
	struct claim_key k = { .addr = addr, .netns = netns, .bucket = bucket };

	if (map_err(bpf_map_update_elem(&claims, &k, &kind, BPF_ANY)) != -E2BIG)
		return true;
	stat_inc(EPH_STAT_CLAIMS_FULL);
	return false;
}

enum event_claim {
	EVENT_MOVES,  /* counted before (by the walk or an earlier event): moved as usual */
	EVENT_FIRST,  /* this event is the first to see it: counted in its new state */
	EVENT_NO_ROOM /* "claims" is full: left to the walk, which counts what it cannot claim */
};

/* an event of a full socket in a pending namespace: who counts it */
static __always_inline enum event_claim event_claim(__u64 addr, __u32 netns, __u32 bucket)
{
	int err;

	if (claim_kind(addr, netns, bucket))
		return EVENT_MOVES;
	err = claim(addr, CLAIM_EVENT, netns, bucket);
	if (!err)
		return EVENT_FIRST;
	/* -EEXIST: the walk claimed it between our lookup and our insert */
	return err == -EEXIST ? EVENT_MOVES : EVENT_NO_ROOM;
}

#endif /* EPHPORT_STARTUP_BPF_H */
