// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The connect guard. At connect() the source address is usually not chosen
 * yet: a socket bound to an address is judged by its own tuple, any other by the
 * most used tuple of its namespace to that destination (guard_dst), with live
 * counts. Exempt cgroups and their subtrees pass; so does all but TCP.
 */
#include "maps.bpf.h"
#include "failures.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* the errno of a refusal, fixed at load */
const volatile __s32 guard_errno = 99; /* EADDRNOTAVAIL */

/* destinations near the deny line, kept by the agent, and how many there are */
__u32 guard_dst_count = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_GUARD_DST);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct guard_key);
	__type(value, struct guard_val);
} guard_dst SEC(".maps");

/* cgroups whose processes (their whole subtree) the guard lets through */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_GUARD_EXEMPT);
	__type(key, __u64);
	__type(value, __u8);
} guard_exempt SEC(".maps");

/* refusals per (tuple, cgroup, reason), for "ephport query" */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_DENIALS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct denial_key);
	__type(value, __u64);
} denials SEC(".maps");

/* written by the agent only, pinned for "ephport query" and "ephport guard status" */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct guard_info);
} guard_info SEC(".maps");
static __always_inline bool guard_exempted(void)
{
	__u64 id = bpf_get_current_cgroup_id();
	__u8 *how = bpf_map_lookup_elem(&guard_exempt, &id);

	if (how)
		return true;
	for (int level = 0; level < 32; level++) {
		id = bpf_get_current_ancestor_cgroup_id(level);
		if (!id)
			break;
		how = bpf_map_lookup_elem(&guard_exempt, &id);
		if (how && *how == EXEMPT_SUBTREE)
			return true;
	}
	return false;
}

static __always_inline void denial_count(const struct tuple_key *t, __u64 cgroup_id, __u16 kind)
{
	struct denial_key dk = { .cgroup_id = cgroup_id, .kind = kind };
	__u64 *n, zero = 0;
	int err;

	__builtin_memcpy(&dk.tuple, t, sizeof(*t));
	n = lookup_or_init(&denials, &dk, &zero, &err);
	if (err == -E2BIG)
		stat_inc(EPH_STAT_DENIALS_FULL);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/*
 * The slow path: the destination is near the line or the cgroup has a quota.
 * Kept out of line, so that the usual connect() does not pay for its stack.
 */
static __noinline int guard_judge(const struct guard_key *gk, const struct guard_val *gv,
				  const void *src, __u64 cgroup_id)
{
	struct call c = { .has_tuple = 1 };
	struct fail_key fk = { .protocol = IPPROTO_TCP };
	struct tuple_val *val;
	__s32 usage, *held;

	if (guard_quota) {
		struct quota_key qk = { .cgroup_id = cgroup_id, .dst = *gk };

		held = bpf_map_lookup_elem(&cg_ports, &qk);
		if (held && *held >= (__s32)guard_quota)
			fk.kind = DENY_QUOTA;
	}
	if (!fk.kind && !gv)
		return 1;
	if (gv) {
		__builtin_memcpy(&c.tuple, &gv->tuple, sizeof(c.tuple));
	} else {
		c.tuple.dport = gk->dport;
		c.tuple.family = gk->family;
		__builtin_memcpy(c.tuple.daddr, gk->daddr, 16);
	}
	c.tuple.netns = gk->netns;
	if (src && gk->family == AF_INET)
		__builtin_memcpy(c.tuple.saddr, src, 4);
	else if (src)
		__builtin_memcpy(c.tuple.saddr, src, 16);
	val = bpf_map_lookup_elem(&tuples, &c.tuple);
	if (val) {
		c.in_use = tuple_live(val);
		c.time_wait = val->states[EPH_TCP_TIME_WAIT];
		c.time_wait_ts = val->time_wait_ts;
		c.port_range = val->port_range;
		c.tw_reuse = val->tw_reuse;
	} else {
		c.has_tuple = 0;
	}
	if (!fk.kind) {
		usage = c.in_use + c.time_wait - (gv->reuse ? c.time_wait_ts : 0);
		if (!val || usage < (__s32)gv->deny_usage)
			return 1;
		fk.kind = DENY_USAGE;
	}
	if (guard_exempted())
		return 1;
	/* an agent that stopped checking holds no limit anyone should be refused by */
	if (bpf_ktime_get_ns() - *(volatile __u64 *)&agent_clock_ns > GUARD_STALE_NS) {
		stat_inc(EPH_STAT_GUARD_STALE);
		return 1;
	}
	__builtin_memcpy(&fk.tuple, &c.tuple, sizeof(fk.tuple));
	fk.tgid = bpf_get_current_pid_tgid() >> 32;
	fail_count(&fk, &c);
	denial_count(&c.tuple, cgroup_id, fk.kind);
	if (guard_mode != GUARD_ENFORCE)
		return 1;
	/* without the helper, a refused connect() fails with EPERM */
	if (HAVE_SET_RETVAL)
		bpf_set_retval(-guard_errno);
	return 0;
}

/* 1 lets the connect() through, 0 refuses it */
static __always_inline int guard(struct bpf_sock_addr *ctx, struct guard_key *gk, const void *src)
{
	const struct tcp_sock *tp;
	const struct sock *sk;
	struct guard_val *gv;

	if (ctx->protocol != IPPROTO_TCP || !ctx->sk)
		return 1; /* UDP, raw: not ours */
	/* no destination anywhere near the line: the usual case, and the cheapest */
	if (!guard_dst_count && !guard_quota)
		return 1;
	tp = bpf_skc_to_tcp_sock(ctx->sk);
	if (!tp)
		return 1;
	sk = (const struct sock *)tp;
	gk->netns = sk->__sk_common.skc_net.net->ns.inum;
	gv = bpf_map_lookup_elem(&guard_dst, gk);
	if (!gv && !guard_quota)
		return 1; /* far from the line: the usual case */
	return guard_judge(gk, gv, src, sock_cgroup_id(sk));
}

SEC("cgroup/connect4")
int guard_connect4(struct bpf_sock_addr *ctx)
{
	struct guard_key gk = { .family = AF_INET, .dport = bpf_ntohs(ctx->user_port) };
	__u32 src = ctx->sk ? ctx->sk->src_ip4 : 0;

	__builtin_memcpy(gk.daddr, &ctx->user_ip4, 4);
	return guard(ctx, &gk, src ? &src : NULL);
}

SEC("cgroup/connect6")
int guard_connect6(struct bpf_sock_addr *ctx)
{
	struct guard_key gk = { .family = AF_INET6, .dport = bpf_ntohs(ctx->user_port) };
	__u32 daddr[4], src[4] = {};

	daddr[0] = ctx->user_ip6[0];
	daddr[1] = ctx->user_ip6[1];
	daddr[2] = ctx->user_ip6[2];
	daddr[3] = ctx->user_ip6[3];
	if (ctx->sk) {
		src[0] = ctx->sk->src_ip6[0];
		src[1] = ctx->sk->src_ip6[1];
		src[2] = ctx->sk->src_ip6[2];
		src[3] = ctx->sk->src_ip6[3];
	}
	/* an IPv4-mapped peer is reached over IPv4, with IPv4 ports */
	if (!daddr[0] && !daddr[1] && daddr[2] == bpf_htonl(0x0000ffff)) {
		gk.family = AF_INET;
		__builtin_memcpy(gk.daddr, &daddr[3], 4);
		return guard(ctx, &gk, src[3] ? &src[3] : NULL);
	}
	__builtin_memcpy(gk.daddr, daddr, 16);
	return guard(ctx, &gk, (src[0] | src[1] | src[2] | src[3]) ? src : NULL);
}
