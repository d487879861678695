/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Where a TIME_WAIT socket counts, for its timer's programs (timewait.bpf.c)
 * and the start-up walk (walk.bpf.c). Nothing is kept per TIME_WAIT socket but
 * the few still in FIN-WAIT-2 ("fw2"): its own fields say where it counts.
 */
#ifndef EPHPORT_TIMEWAIT_BPF_H
#define EPHPORT_TIMEWAIT_BPF_H

#include "maps.bpf.h"

/* what a TIME_WAIT socket says of itself, read with probe reads (any pointer) */
struct tw_facts {
	struct tuple_key key;
	const struct net *net;
	__u32 hash; /* its ehash bucket's hash */
	__u16 sport;
	__u8 substate; /* TCP_TIME_WAIT, or TCP_FIN_WAIT2 while the peer has not closed */
	__u8 ts;       /* TCP timestamps were on: tcp_tw_reuse may take it */
	__s8 cbind;    /* its port was chosen by connect(): 1, 0, or -1 unknown */
};

/*
 * A TIME_WAIT socket's fields, up to the last one read: one probe read into a
 * copy, then plain CO-RE loads from the copy (each probe read is a helper call).
 * That part is about 250 bytes on 6.1 to 6.18; TW_COPY leaves room for debug
 * kernels' larger timer_list. On a kernel where it would not fit, TIME_WAIT
 * sockets go uncounted and say so in "time_wait_dropped".
 */
#define TW_COPY 320

static __always_inline bool tw_read(const struct tcp_timewait_sock *tw, struct tw_facts *f)
{
	__u64 copy[TW_COPY / 8];
	const struct tcp_timewait_sock *c = (const void *)copy;
	const struct sock_common *skc = &c->tw_sk.__tw_common;
	const struct net *net;
	__u32 size = bpf_core_field_offset(struct tcp_timewait_sock, tw_ts_recent_stamp) +
		     bpf_core_field_size(struct tcp_timewait_sock, tw_ts_recent_stamp);

	__builtin_memset(f, 0, sizeof(*f));
	if (size > sizeof(copy)) {
		stat_inc(EPH_STAT_TIMEWAIT_FULL);
		return false;
	}
	if (bpf_probe_read_kernel(copy, size, tw) || !addrs_of(skc, &f->key))
		return false;
	net = skc->skc_net.net;
	f->net = net;
	f->key.netns = BPF_CORE_READ(net, ns.inum);
	f->hash = skc->skc_hash;
	f->sport = skc->skc_num;
	f->substate = c->tw_sk.tw_substate;
	/* whatever size this kernel gives it */
	f->ts = BPF_CORE_READ_BITFIELD(c, tw_ts_recent_stamp) != 0;
	f->cbind = tw_connect_bound(&c->tw_sk);
	return true;
}

/*
 * A TIME_WAIT socket with no tuple, found by the start-up walk or made while
 * its namespace is walked: a client's if the kernel says connect() chose its
 * port (6.17+), else if no listener holds its port and the port is in the range.
 */
static __always_inline bool tw_client_like(const struct tw_facts *f)
{
	if (f->cbind >= 0)
		return f->cbind == 1;
	return !has_listener(f->key.netns, f->sport) && in_range(port_range_read(f->net), f->sport);
}

/*
 * A TIME_WAIT socket starts (delta 1) or stops (-1) counting: in its tuple if
 * there is one (make: at start-up, the walk may make it for a client's), in
 * local_tw if not. The same test at both ends keeps them paired: the agent
 * never forgets a tuple that has TIME_WAIT sockets.
 */
static __always_inline void tw_count(const struct tw_facts *f, __u64 addr, int delta, bool make)
{
	struct port_key pk = { .netns = f->key.netns, .port = f->sport };
	struct tuple_val *val = bpf_map_lookup_elem(&tuples, &f->key);
	__u32 state = EPH_TCP_TIME_WAIT;
	const struct net *net = f->net;
	__s64 *n, zero = 0;
	__u8 one = 1;
	int err;

	if (!val && make && delta > 0 && tw_client_like(f))
		val = tuple_get_or_make(&f->key, port_range_read(net),
					BPF_CORE_READ(net, ipv4.sysctl_tcp_tw_reuse));
	if (val) {
		if (delta > 0 && f->substate == EPH_TCP_FIN_WAIT2) {
			err = map_err(bpf_map_update_elem(&fw2, &addr, &one, BPF_NOEXIST));
			if (!err)
				state = EPH_TCP_FIN_WAIT2;
			else if (err == -E2BIG)
				stat_inc(EPH_STAT_FW2_FULL);
		} else if (delta < 0 && !bpf_map_delete_elem(&fw2, &addr)) {
			state = EPH_TCP_FIN_WAIT2;
		}
		state_add(val, state, delta);
		if (state == EPH_TCP_TIME_WAIT && f->ts)
			__sync_fetch_and_add(&val->time_wait_ts, delta);
		tuple_changed(&f->key, val);
		return;
	}
	if (delta > 0) {
		n = lookup_or_init(&local_tw, &pk, &zero, &err);
		if (err == -E2BIG)
			stat_inc(EPH_STAT_TIMEWAIT_FULL);
	} else {
		n = bpf_map_lookup_elem(&local_tw, &pk);
	}
	if (n)
		__sync_fetch_and_add(n, delta);
}

#endif /* EPHPORT_TIMEWAIT_BPF_H */
