// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The start-up walk: an iter/tcp program the agent runs in each namespace that
 * existed before it, counting the sockets that were there before the events
 * could. Listeners come first, then the established hash, bucket by bucket in
 * order; "walk_bucket" says where it is, and the agent moves "walk_safe" up
 * behind it (startup.bpf.h says how the walk and the events share the work).
 *
 * The agent reads the walk in chunks, and a chunk must end where a bucket
 * begins. Before Linux 6.16 ("bpf: tcp: Avoid socket skips and repeats during
 * iteration") the iterator resumes inside a bucket by skipping as many sockets
 * as it had shown there, so a socket that left the bucket in between makes it
 * skip one it never showed. So the program writes only at the first socket of
 * each bucket: a read ends when that write no longer fits, and the socket is
 * shown again, first in its bucket, by the next read. A read also ends once it
 * holds as many bytes as read() asked for, after the next socket is taken,
 * which may be inside a bucket: so the agent asks for more than the iterator's
 * buffer can hold (user/startup.c).
 */
#include "maps.bpf.h"
#include "startup.bpf.h"
#include "timewait.bpf.h"

/* the established hash bucket the walk is in */
__u32 walk_bucket = 0;

/* written at each bucket's start: 32,768 buckets fill a read (bpf_iter's 8 pages) */
#define BUCKET_MARK 1

static __always_inline void walk_listener(const struct tcp_sock *tp, __u32 netns)
{
	__u16 port = tp->inet_conn.icsk_inet.sk.__sk_common.skc_num;

	if (!claim((__u64)tp, CLAIM_VISITED, netns, CLAIM_NO_BUCKET))
		ports_add(netns, port, 1, 0);
}

static __always_inline void walk_timewait(const struct tcp_timewait_sock *tw, __u32 bucket)
{
	struct tw_facts f;

	if (!tw_read(tw, &f))
		return;
	/* a timer no longer pending: it died before we got here */
	if (!BPF_CORE_READ(tw, tw_sk.tw_timer.entry.pprev))
		return;
	/* counted unless an event did: one that found "claims" full did not */
	if (claim((__u64)tw, CLAIM_VISITED, f.key.netns, bucket) != -EEXIST)
		tw_count(&f, (__u64)tw, 1, true);
}

/* an active open found by the walk: a listener's children keep its backlog */
static __always_inline void walk_full(const struct tcp_sock *tp, __u32 state, __u32 bucket)
{
	const struct sock *sk = (const struct sock *)tp;
	const struct inet_bind_bucket *tb = tp->inet_conn.icsk_bind_hash;
	const struct sock_common *skc = &sk->__sk_common;
	const struct net *net = skc->skc_net.net;
	struct tuple_val *val;
	struct tuple_key key;
	__u64 addr = (__u64)sk;
	__u16 port = skc->skc_num;
	/* a bucket made by bind() (fastreuse >= 0) keeps the port from every connect() */
	bool bound = tb && tb->fastreuse >= 0;

	if (sk->sk_max_ack_backlog || sk->sk_protocol != IPPROTO_TCP || !tuple_key_of(sk, &key))
		return;
	if (!bound && !in_range(port_range_of(net), port))
		return;
	/* the state was read before the claim: an event after it moves it on */
	if (claim(addr, CLAIM_VISITED, key.netns, bucket) == -EEXIST)
		return;
	val = tuple_get_or_create(&key, net);
	if (!val)
		return;
	state_add(val, state, 1);
	if (bound && !map_err(bpf_map_update_elem(&bound_socks, &addr, &port, BPF_ANY))) {
		__sync_fetch_and_add(&val->bound, 1);
		ports_add(key.netns, port, 0, 1);
	}
	if (guard_quota)
		quota_add(sock_cgroup_id(sk), &key, 1);
	tuple_changed(&key, val);
}

/* the iterator is in the established hash (its own state says so) */
static __always_inline bool in_ehash(const struct bpf_iter_meta *meta)
{
	const struct tcp_iter_state *st = BPF_CORE_READ(meta, seq, private);

	return BPF_CORE_READ(st, state) == TCP_SEQ_STATE_ESTABLISHED;
}

SEC("iter/tcp")
int walk(struct bpf_iter__tcp *ctx)
{
	static const __u8 mark[BUCKET_MARK];
	struct sock_common *skc = ctx->sk_common;
	const struct tcp_timewait_sock *tw;
	const struct tcp_sock *tp;
	__u32 state, bucket;

	if (!skc)
		return 0;
	state = skc->skc_state;
	/* the listening hash first (a listener closing meanwhile is in CLOSE) */
	if (!in_ehash(ctx->meta)) {
		tp = state == EPH_TCP_LISTEN ? bpf_skc_to_tcp_sock(skc) : NULL;
		if (tp)
			walk_listener(tp, skc->skc_net.net->ns.inum);
		return 0;
	}
	bucket = bucket_of(skc->skc_hash, skc->skc_net.net);
	if (bucket != walk_bucket) {
		/* no room: this read ends here, and the next shows it again */
		if (bpf_seq_write(ctx->meta->seq, mark, sizeof(mark)))
			return 0;
		walk_bucket = bucket;
	}
	switch (state) {
	case EPH_TCP_TIME_WAIT:
		tw = bpf_skc_to_tcp_timewait_sock(skc);
		if (tw)
			walk_timewait(tw, bucket);
		break;
	case TCP_NEW_SYN_RECV:
	case EPH_TCP_CLOSE: /* closed after the walk took it: holds no port now */
		break;
	default:
		tp = bpf_skc_to_tcp_sock(skc);
		if (tp)
			walk_full(tp, state, bucket);
	}
	return 0;
}
