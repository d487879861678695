// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The connect guard. At connect() the source address is usually not chosen
 * yet: a socket bound to an address is judged by its own tuple, any other by the
 * most used tuple of its namespace to that destination (guard_dst), with live
 * counts. With --spread, an unbound socket whose tuple is at the spread line is
 * bound to the least used local --spread source instead, port 0 (chosen per
 * destination at connect, IP_BIND_ADDRESS_NO_PORT). Exempt cgroups and their
 * subtrees pass; so does all but TCP.
 */
#include "maps.bpf.h"
#include "failures.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* the errno of a refusal, fixed at load */
const volatile __s32 guard_errno = 99; /* EADDRNOTAVAIL */

/* --spread: the source addresses to spread over, fixed at load */
const volatile struct spread_addr spread_addrs[MAX_SPREAD] = {};
const volatile __u32 spread_count = 0;

/* connects bound to a --spread source, per (chosen tuple, cgroup), for "ephport query" */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SPREADS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct spread_key);
	__type(value, struct spread_val);
} spreads SEC(".maps");

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

/* a tuple as the guard judges it: live usage against its lines */
struct judged {
	struct tuple_key tuple;
	__s32 usage;
	__u32 deny;   /* the usage of the deny line */
	__u32 spread; /* of the spread line */
	struct tuple_val *val;
};

static __always_inline void judge(struct judged *j, const struct ns_limits *nl, __u32 range)
{
	struct tuple_val *v = bpf_map_lookup_elem(&tuples, &j->tuple);
	__s32 own = 0;

	j->val = v;
	j->usage = 0;
	if (v) {
		j->usage = tuple_usage_now(&j->tuple, v);
		own = v->bound;
		if (v->port_range)
			range = v->port_range;
	}
	j->deny = tuple_line(range, nl, own, deny_ppm);
	j->spread = tuple_line(range, nl, own, spread_ppm);
}

static __noinline void spread_count_one(const struct judged *to, const struct judged *from,
					__u64 cgroup_id)
{
	__u64 now = bpf_ktime_get_ns(), pid_tgid = bpf_get_current_pid_tgid();
	struct spread_key sk = { .cgroup_id = cgroup_id };
	struct spread_val *v, init = { .first_ns = now };
	bool wake;
	int err;

	__builtin_memcpy(&sk.tuple, &to->tuple, sizeof(sk.tuple));
	v = lookup_or_init(&spreads, &sk, &init, &err);
	if (!v) {
		if (err == -E2BIG)
			stat_inc(EPH_STAT_SPREADS_FULL);
		return;
	}
	__sync_fetch_and_add(&v->count, 1);
	/* the first, or the first after a quiet second: the agent writes a line */
	wake = now - v->last_ns > NSEC_PER_SEC;
	v->last_ns = now;
	v->tgid = pid_tgid >> 32;
	v->tid = (__u32)pid_tgid;
	v->uid = (__u32)bpf_get_current_uid_gid();
	v->from_usage = from->usage;
	__builtin_memcpy(v->from_saddr, from->tuple.saddr, 16);
	bpf_get_current_comm(v->comm, sizeof(v->comm));
	if (wake)
		notify_of(NOTICE_SPREAD, &sk);
}

/* the agent stopped checking: the limits it left are stale, nobody is held by them */
static __always_inline bool agent_stale(void)
{
	if (bpf_ktime_get_ns() - *(volatile __u64 *)&agent_clock_ns <= GUARD_STALE_NS)
		return false;
	stat_inc(EPH_STAT_GUARD_STALE);
	return true;
}

/*
 * The least used local --spread source below its deny line, as j; false if
 * none is. Ties go to the first listed.
 */
static __noinline bool spread_pick(struct judged *best, const struct judged *from,
				   const struct ns_limits *nl)
{
	struct judged j = {};
	bool found = false;

	__builtin_memcpy(&j.tuple, &from->tuple, sizeof(j.tuple));
	for (__u32 i = 0; i < MAX_SPREAD && i < spread_count; i++) {
		if (!(nl->spread_local & (1u << i)) || spread_addrs[i].family != from->tuple.family)
			continue;
		__builtin_memcpy(j.tuple.saddr, (const void *)spread_addrs[i].addr, 16);
		judge(&j, nl, from->val ? from->val->port_range : 0);
		if (j.usage >= (__s32)j.deny || (found && j.usage >= best->usage))
			continue;
		__builtin_memcpy(best, &j, sizeof(j));
		found = true;
	}
	return found;
}

/* binds the socket to the chosen source, port 0; 0 or -errno */
static __always_inline int spread_bind(struct bpf_sock_addr *ctx, const struct judged *to,
				       bool v6_socket)
{
	if (!v6_socket) {
		struct sockaddr_in sa = { .sin_family = AF_INET };

		__builtin_memcpy(&sa.sin_addr, to->tuple.saddr, 4);
		return bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa));
	} else {
		struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };

		if (to->tuple.family == AF_INET) { /* an IPv4-mapped destination */
			sa.sin6_addr.in6_u.u6_addr32[2] = bpf_htonl(0x0000ffff);
			__builtin_memcpy(&sa.sin6_addr.in6_u.u6_addr32[3], to->tuple.saddr, 4);
		} else {
			__builtin_memcpy(&sa.sin6_addr, to->tuple.saddr, 16);
		}
		return bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa));
	}
}

/*
 * j, unbound, is at its spread line: bound to the least used local --spread
 * source below its deny line, if there is one. 1: done (the connect goes
 * through), 0: judged as it is.
 */
static __noinline int spread_try(struct bpf_sock_addr *ctx, const struct judged *j,
				 const struct ns_limits *nl, __u64 cgroup_id)
{
	struct judged to;

	if (!spread_pick(&to, j, nl))
		return 0;
	if (guard_exempted() || agent_stale())
		return 1;
	spread_count_one(&to, j, cgroup_id);
	if (guard_mode != GUARD_ENFORCE)
		return 1; /* audit: counted, not bound */
	if (!spread_bind(ctx, &to, ctx->family == AF_INET6))
		return 1;
	/* bound meanwhile, or the address went: judged as it is */
	stat_inc(EPH_STAT_SPREAD_FAILED);
	return 0;
}

/* a refusal: counted per (tuple, process) and (tuple, cgroup); 1 lets it through (audit) */
static __noinline int deny(const struct judged *j, __u16 kind, __u64 cgroup_id)
{
	struct fail_key fk = { .protocol = IPPROTO_TCP, .kind = kind };
	struct call c = { .has_tuple = 1 };

	__builtin_memcpy(&c.tuple, &j->tuple, sizeof(c.tuple));
	if (j->val) {
		c.in_use = tuple_live(j->val);
		c.time_wait = j->val->states[EPH_TCP_TIME_WAIT];
		c.time_wait_ts = j->val->time_wait_ts;
		c.port_range = j->val->port_range;
		c.tw_reuse = j->val->tw_reuse;
	} else {
		c.has_tuple = 0;
	}
	__builtin_memcpy(&fk.tuple, &c.tuple, sizeof(fk.tuple));
	fk.tgid = bpf_get_current_pid_tgid() >> 32;
	fail_count(&fk, &c);
	denial_count(&c.tuple, cgroup_id, kind);
	if (guard_mode != GUARD_ENFORCE)
		return 1;
	/* without the helper, a refused connect() fails with EPERM */
	if (HAVE_SET_RETVAL)
		bpf_set_retval(-guard_errno);
	return 0;
}

/*
 * The slow path: the destination is near the line or the cgroup has a quota.
 * Kept out of line, so that the usual connect() does not pay for its stack.
 */
static __noinline int guard_judge(struct bpf_sock_addr *ctx, const struct guard_key *gk,
				  const struct guard_val *gv, const void *src, __u64 cgroup_id)
{
	/* the application bound neither address nor port: the guard may choose */
	bool unbound = !src && ctx->sk && !ctx->sk->src_port;
	const struct ns_limits *nl;
	struct judged j = {};
	__u16 kind = 0;
	__s32 *held;

	if (guard_quota) {
		struct quota_key qk = { .cgroup_id = cgroup_id, .dst = *gk };

		held = bpf_map_lookup_elem(&cg_ports, &qk);
		if (held && *held >= (__s32)guard_quota)
			kind = DENY_QUOTA;
	}
	if (!kind && !gv)
		return 1;
	if (gv) {
		__builtin_memcpy(&j.tuple, &gv->tuple, sizeof(j.tuple));
	} else {
		j.tuple.dport = gk->dport;
		j.tuple.family = gk->family;
		__builtin_memcpy(j.tuple.daddr, gk->daddr, 16);
	}
	j.tuple.netns = gk->netns;
	if (src && gk->family == AF_INET)
		__builtin_memcpy(j.tuple.saddr, src, 4);
	else if (src)
		__builtin_memcpy(j.tuple.saddr, src, 16);
	nl = bpf_map_lookup_elem(&ns_limits, &gk->netns);
	judge(&j, nl, 0);
	if (!kind && unbound && spread_count && nl && nl->spread_local && j.val &&
	    j.usage >= (__s32)j.spread && spread_try(ctx, &j, nl, cgroup_id))
		return 1;
	if (!kind) {
		if (!j.val || j.usage < (__s32)j.deny)
			return 1;
		kind = DENY_USAGE;
	}
	if (guard_exempted() || agent_stale())
		return 1;
	return deny(&j, kind, cgroup_id);
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
	return guard_judge(ctx, gk, gv, src, sock_cgroup_id(sk));
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
