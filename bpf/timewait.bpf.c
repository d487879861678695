// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * TIME_WAIT sockets have no state change of their own, but each has a timer,
 * and the timer's tracepoints show its whole life: armed when the minisocket
 * is made (timer_start), disarmed when it expires or is destroyed early by a
 * connect() that reuses it, a RST or its namespace going away (timer_cancel).
 * Each start counts it, each cancel takes it back, where its own fields say
 * (timewait.bpf.h): no record per TIME_WAIT socket, so their number is the
 * kernel's own limit (tcp_max_tw_buckets), however large. Only those still in
 * their FIN-WAIT-2 sub-state are kept, by address ("fw2", fw2_sweep).
 *
 * The timer tracepoints fire with the timer base locked and interrupts off, so
 * the kernel never skips these programs for recursion.
 */
#include "maps.bpf.h"
#include "startup.bpf.h"
#include "timewait.bpf.h"

/* the kernel's tw_timer_handler(), from /proc/kallsyms: tells TIME_WAIT timers apart */
const volatile __u64 tw_timer_fn = 0;

/* the TIME_WAIT socket around a tw_timer: an address, read with probe reads */
static __always_inline const struct tcp_timewait_sock *tw_of_timer(const struct timer_list *timer)
{
	return (const void *)((__u64)timer -
			      bpf_core_field_offset(struct inet_timewait_sock, tw_timer));
}

/* a TIME_WAIT socket was made, or its timer armed again */
SEC("tp_btf/timer_start")
int BPF_PROG(tw_timer_start, struct timer_list *timer, unsigned long expires)
{
	const struct tcp_timewait_sock *tw;
	struct tw_facts f;
	__u32 bucket;
	bool pending;

	if ((__u64)timer->function != tw_timer_fn || !tw_timer_fn)
		return 0;
	tw = tw_of_timer(timer);
	if (!tw_read(tw, &f))
		return 0;
	/* start-up: counted from here, not by the walk */
	pending = ns_pending(f.key.netns);
	if (pending) {
		bucket = bucket_of(f.hash, f.net);
		/* no room to claim it ahead of the walk: the walk will count it */
		if (!walked_past(f.key.netns, bucket) &&
		    !claim_set((__u64)tw, CLAIM_EVENT, f.key.netns, bucket))
			return 0;
	}
	tw_count(&f, (__u64)tw, 1, pending);
	return 0;
}

/* a TIME_WAIT socket expired or was destroyed, or its timer is being re-armed */
SEC("tp_btf/timer_cancel")
int BPF_PROG(tw_timer_cancel, struct timer_list *timer)
{
	const struct tcp_timewait_sock *tw;
	__u32 bucket, kind;
	struct tw_facts f;
	__u64 addr;

	if ((__u64)timer->function != tw_timer_fn || !tw_timer_fn)
		return 0;
	tw = tw_of_timer(timer);
	addr = (__u64)tw;
	if (!tw_read(tw, &f))
		return 0;
	/* start-up: take back only what was counted, by the walk or a start */
	if (ns_pending(f.key.netns)) {
		bucket = bucket_of(f.hash, f.net);
		if (!walked_past(f.key.netns, bucket)) {
			kind = claim_kind(addr, f.key.netns, bucket);
			/* not counted yet: the walk must not count it either */
			if (!kind && claim(addr, CLAIM_DEAD, f.key.netns, bucket) != -EEXIST)
				return 0;
			if (kind == CLAIM_DEAD)
				return 0;
			claim_set(addr, CLAIM_DEAD, f.key.netns, bucket);
		}
	}
	tw_count(&f, addr, -1, false);
	return 0;
}

/*
 * The peer's FIN reached a TIME_WAIT socket in its FIN-WAIT-2 sub-state: it is
 * in TIME_WAIT proper now (tcp_timewait_state_process() sets tw_substate, then
 * re-arms the timer). The timer does not always say so: re-armed into the
 * same wheel bucket, it only gets a new expiry, and neither tracepoint fires.
 * So the agent runs this over "fw2" at each check: a socket found in TIME_WAIT
 * moves there in its tuple. Whoever deletes its entry, this or its timer's
 * cancel, counts its move, once. The memory of a TIME_WAIT socket is never
 * handed to another kind of object, and its entry is deleted before it is
 * freed, so the address reads as a TIME_WAIT socket.
 */
SEC("iter/bpf_map_elem")
int fw2_sweep(struct bpf_iter__bpf_map_elem *ctx)
{
	const __u64 *key = ctx->key;
	const struct tcp_timewait_sock *tw;
	struct tuple_val *val;
	struct tw_facts f;
	__u64 addr;

	if (!key)
		return 0;
	addr = *key;
	tw = (const void *)addr;
	if (BPF_CORE_READ(tw, tw_sk.tw_substate) != EPH_TCP_TIME_WAIT)
		return 0;
	if (bpf_map_delete_elem(&fw2, &addr))
		return 0;
	if (!tw_read(tw, &f))
		return 0;
	val = bpf_map_lookup_elem(&tuples, &f.key);
	if (!val)
		return 0;
	state_add(val, EPH_TCP_FIN_WAIT2, -1);
	state_add(val, EPH_TCP_TIME_WAIT, 1);
	if (f.ts)
		__sync_fetch_and_add(&val->time_wait_ts, 1);
	tuple_changed(&f.key, val);
	return 0;
}
