/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the BPF programs share: the maps and globals more than one of them uses
 * (defined once, in maps.bpf.c, and extern everywhere else; the linker joins
 * them), and the small helpers they all need.
 */
#ifndef EPHPORT_MAPS_BPF_H
#define EPHPORT_MAPS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "core_fixes.bpf.h"
/* before tuples.h, whose inline helpers use them */
#define AF_INET	 2
#define AF_INET6 10
#include "tuples.h"

#define IPPROTO_TCP	 6
#define IPPROTO_UDP	 17
#define E2BIG		 7
#define EEXIST		 17
#define EADDRINUSE	 98
#define EADDRNOTAVAIL	 99
#define TCP_NEW_SYN_RECV 12
#define NSEC_PER_SEC	 1000000000ull

#ifdef EPH_MAPS_OWNER
#define EPH_SHARED
#else
#define EPH_SHARED extern
#endif

/*
 * max_entries of "tuples" is set by the loader (--max-tuples). None of the hash
 * maps is preallocated: memory follows use, and an entry deleted meanwhile is
 * freed only after an RCU grace period, so a program still holding it never
 * writes into an entry handed to another key.
 */
EPH_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TUPLES_DEFAULT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tuple_key);
	__type(value, struct tuple_val);
} tuples SEC(".maps");

/* ports held by listeners or bind(): connect() skips them for every destination */
EPH_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PORTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct port_key);
	__type(value, struct port_val);
} ports SEC(".maps");

/* TIME_WAIT sockets no tuple owns (a server's, mostly), per (netns, local port) */
EPH_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_LOCAL_TW);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct port_key);
	__type(value, __s64);
} local_tw SEC(".maps");

/*
 * Active opens that connect()ed from a port they bind()-ed, by socket address:
 * that port, to give back when they close (by then the socket no longer says
 * it was bound). Full: the socket counts as not bound (EPH_STAT_BOUND_FULL).
 */
#define MAX_BOUND 65536

EPH_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_BOUND);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u16);
} bound_socks SEC(".maps");

/*
 * TIME_WAIT minisockets still in their FIN-WAIT-2 sub-state (the peer has not
 * closed), counted in their tuple's states[FIN_WAIT2] as ss lists them, by
 * address: the sub-state changes before the timer is re-armed, so this says
 * where one was counted. Full: counted as TIME_WAIT (EPH_STAT_FW2_FULL).
 */
#define MAX_FW2 65536

EPH_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FW2);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u8);
} fw2 SEC(".maps");

/*
 * Start-up only (bpf/walk.bpf.c): the namespaces still to walk, and who counted
 * each socket there, the walk or an event, by the socket's address. Its size
 * follows the sockets of the namespace being walked; the agent empties it as
 * the walk moves on.
 */
EPH_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_NETNS);
	__type(key, __u32);
	__type(value, __u32); /* enum ns_phase */
} nsphase SEC(".maps");

EPH_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct claim_key);
	__type(value, __u32); /* enum claim_kind */
} claims SEC(".maps");

EPH_SHARED struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EPH_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* --quota: live sockets per (cgroup, destination), kept by the counting programs */
EPH_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_QUOTA);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct quota_key);
	__type(value, __s32);
} cg_ports SEC(".maps");

/* tuples per namespace, once the tuples map is half way to its sharing (tuple_room) */
EPH_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_NETNS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __s64);
} ns_tuples SEC(".maps");

/* failing connect() and bind() per (tuple, process): exact counts, see tuples.h */
EPH_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FAILURES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fail_key);
	__type(value, struct fail_val);
} failures SEC(".maps");

/* one record per (tuple, process) that starts failing, so the agent reports it at once */
EPH_SHARED struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} notices SEC(".maps");

/*
 * Keys of the tuples that changed since the agent's last check, each sent once
 * per check (tuple_changed()): the agent reads those, not the whole map. No
 * wake-up: the agent reads it at its check.
 */
#define CHANGES_BYTES (2 * 1024 * 1024)
EPH_SHARED struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, CHANGES_BYTES);
} changes SEC(".maps");

/* a syscall's first three arguments */
struct sys_args {
	__u64 fd;
	__u64 uaddr;
	__u64 addrlen;
};

/*
 * What a thread's failed port search saw, kept until its connect() returns:
 * the tuple and its counts at that moment. On kernels without bpf_task_pt_regs
 * the syscall entry programs also keep the call's arguments here.
 */
struct call {
	struct sys_args args; /* has_args: saved by connect_enter or bind_enter */
	__u64 sk;	      /* the socket: the syscall's fd must lead to it */
	__u8 has_tuple;	      /* set by the port search, cleared by the syscall's exit */
	__u8 has_args;
	__u8 tw_reuse;
	__u8 pad[5];
	__s32 in_use;
	__s32 time_wait;
	__s32 time_wait_ts;
	__u32 port_range;
	struct tuple_key tuple;
};

#define MAX_CALLS 4096 /* threads inside a failing connect() or bind() at once */

/* by thread (pid_tgid); LRU: a call whose exit never comes (io_uring) ages out */
EPH_SHARED struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_CALLS);
	__type(key, __u64);
	__type(value, struct call);
} calls SEC(".maps");

/* settings, fixed at load */
EPH_SHARED const volatile __u32 guard_mode;
EPH_SHARED const volatile __u32 guard_quota;
/* the tuples map's size, fixed at load, and how many it holds (the agent's count, and since) */
EPH_SHARED const volatile __u32 max_tuples;
EPH_SHARED __u64 tuples_count;
/* start-up (bpf/walk.bpf.c): set by the agent */
EPH_SHARED __u32 startup;    /* namespaces still to walk: 0 once all are done */
EPH_SHARED __u32 walk_netns; /* the namespace being walked */
EPH_SHARED __u32 walk_safe;  /* its ehash buckets below this one are walked */
/* the agent's check generation, and keys "changes" had no room for (the agent reads all) */
EPH_SHARED __u32 agent_gen;
/*
 * CLOCK_MONOTONIC as the agent read it at its latest check, twice a second:
 * when connects happen, and (the guard) whether the agent is alive.
 */
EPH_SHARED __u64 agent_clock_ns;
EPH_SHARED __u64 changes_lost;

/* the lookup-or-init of libbpf-tools' maps.bpf.h; the update's error read as an int */
static __always_inline void *lookup_or_init(void *map, const void *key, const void *init, int *err)
{
	void *val = bpf_map_lookup_elem(map, key);

	*err = 0;
	if (val)
		return val;
	*err = map_err(bpf_map_update_elem(map, key, init, BPF_NOEXIST));
	/* -EEXIST: another CPU made it first, which is fine */
	if (*err && *err != -EEXIST)
		return NULL;
	return bpf_map_lookup_elem(map, key);
}

static __always_inline void stat_inc(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &slot);

	if (v)
		*v += 1;
}

static __always_inline bool ipv6_is_v4mapped(const struct in6_addr *a)
{
	return a->in6_u.u6_addr32[0] == 0 && a->in6_u.u6_addr32[1] == 0 &&
	       a->in6_u.u6_addr32[2] == bpf_htonl(0x0000ffff);
}

/*
 * The addresses and port of a socket's tuple (the caller zeroes the key and
 * sets its netns); false unless IPv4/IPv6. Plain loads: skc is a BTF pointer,
 * or a copy on the stack (timewait.bpf.h).
 */
static __always_inline bool addrs_of(const struct sock_common *skc, struct tuple_key *key)
{
	__u16 family = skc->skc_family;

	key->dport = bpf_ntohs(skc->skc_dport);
	if (family == AF_INET6) {
		/* a v4-mapped peer is reached over IPv4 and competes for IPv4 ports */
		if (!ipv6_is_v4mapped(&skc->skc_v6_daddr)) {
			key->family = AF_INET6;
			__builtin_memcpy(key->saddr, &skc->skc_v6_rcv_saddr, 16);
			__builtin_memcpy(key->daddr, &skc->skc_v6_daddr, 16);
			return true;
		}
	} else if (family != AF_INET) {
		return false;
	}
	key->family = AF_INET;
	__builtin_memcpy(key->saddr, &skc->skc_rcv_saddr, 4);
	__builtin_memcpy(key->daddr, &skc->skc_daddr, 4);
	return true;
}

static __always_inline bool tuple_key_of(const struct sock *sk, struct tuple_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->netns = sk->__sk_common.skc_net.net->ns.inum;
	return addrs_of(&sk->__sk_common, key);
}

static __always_inline bool in_range(__u32 range, __u16 port)
{
	return port >= (range & 0xffff) && port <= range >> 16;
}

/*
 * Room for one more tuple of this namespace (TUPLES_SHARE_FROM): the count the
 * namespace holds, made from half that fill on, or NULL while the map is emptier.
 */
static __always_inline bool tuple_room(__u32 netns, __s64 **mine)
{
	__u64 n = *(volatile __u64 *)&tuples_count;
	__s64 zero = 0;
	int err;

	*mine = NULL;
	if (max_tuples < TUPLES_SHARE_MIN || n < TUPLES_SHARE_FROM(max_tuples) / 2)
		return true;
	*mine = lookup_or_init(&ns_tuples, &netns, &zero, &err);
	if (*mine && n >= TUPLES_SHARE_FROM(max_tuples) && **mine >= TUPLES_NS_SHARE(max_tuples)) {
		stat_inc(EPH_STAT_NS_SHARE);
		return false;
	}
	return true;
}

/* a tuple, made if need be with its namespace's settings (NULL if there is no room) */
static __always_inline struct tuple_val *tuple_get_or_make(const struct tuple_key *key, __u32 range,
							   __u8 reuse)
{
	struct tuple_val *val, init = {};
	__s64 *mine;
	int err;

	val = bpf_map_lookup_elem(&tuples, key);
	if (val)
		return val;
	if (!tuple_room(key->netns, &mine))
		return NULL;
	init.born_ns = bpf_ktime_get_ns();
	init.port_range = range;
	init.tw_reuse = reuse;
	val = lookup_or_init(&tuples, key, &init, &err);
	if (err == -E2BIG)
		stat_inc(EPH_STAT_TUPLES_FULL);
	if (val && !err) {
		__sync_fetch_and_add(&tuples_count, 1);
		if (mine)
			__sync_fetch_and_add(mine, 1);
	}
	return val;
}

/* the tuple of an active open, made at its first connect; net is a BTF pointer */
static __always_inline struct tuple_val *tuple_get_or_create(const struct tuple_key *key,
							     const struct net *net)
{
	struct tuple_val *val = bpf_map_lookup_elem(&tuples, key);

	return val ?: tuple_get_or_make(key, port_range_of(net), net->ipv4.sysctl_tcp_tw_reuse);
}

static __always_inline void state_add(struct tuple_val *val, __u32 state, int delta)
{
	__u64 idx = state;

	if (idx >= EPH_TCP_STATES || idx == EPH_TCP_CLOSE)
		return;
	/* clang tests a copy of idx; the mask bounds the register that indexes */
	barrier_var(idx);
	idx &= EPH_TCP_STATES - 1;
	__sync_fetch_and_add(&val->states[idx], delta);
}

/*
 * Called after a tuple's counts changed: its first change since the agent's
 * last check sends its key to "changes". The counts are written first, so a
 * change the agent's reading missed reads the new generation and is sent.
 */
static __always_inline void tuple_changed(const struct tuple_key *key, struct tuple_val *val)
{
	__u32 gen = *(volatile __u32 *)&agent_gen;

	if (val->gen == gen)
		return;
	val->gen = gen;
	if (bpf_ringbuf_output(&changes, (void *)key, sizeof(*key), BPF_RB_NO_WAKEUP))
		__sync_fetch_and_add(&changes_lost, 1);
}

/* a port of a namespace gains or loses a listener or a bind()-ed socket */
static __always_inline void ports_add(__u32 netns, __u16 port, int listeners, int bound)
{
	struct port_key pk = { .netns = netns, .port = port };
	struct port_val *pv, zero = {};
	int err;

	if (listeners < 0 || bound < 0) {
		pv = bpf_map_lookup_elem(&ports, &pk);
	} else {
		pv = lookup_or_init(&ports, &pk, &zero, &err);
		if (err == -E2BIG)
			stat_inc(EPH_STAT_PORTS_FULL);
	}
	if (!pv)
		return;
	if (listeners)
		__sync_fetch_and_add(&pv->listeners, listeners);
	if (bound)
		__sync_fetch_and_add(&pv->bound, bound);
}

static __always_inline bool has_listener(__u32 netns, __u16 port)
{
	struct port_key pk = { .netns = netns, .port = port };
	struct port_val *pv = bpf_map_lookup_elem(&ports, &pk);

	return pv && pv->listeners > 0;
}

/* sockets of a tuple in every state but TIME_WAIT */
static __always_inline __s32 tuple_live(const struct tuple_val *val)
{
	__s32 n = 0;

	for (int i = EPH_TCP_ESTABLISHED; i <= EPH_TCP_CLOSING; i++)
		if (i != EPH_TCP_TIME_WAIT && i != EPH_TCP_CLOSE)
			n += val->states[i];
	return n;
}

/* --quota: a cgroup's sockets to a destination, one more or one less */
static __always_inline void quota_add(__u64 cgroup_id, const struct tuple_key *t, int delta)
{
	struct quota_key qk = { .cgroup_id = cgroup_id };
	__s32 *n, zero = 0;
	int err;

	qk.dst.netns = t->netns;
	qk.dst.dport = t->dport;
	qk.dst.family = t->family;
	__builtin_memcpy(qk.dst.daddr, t->daddr, 16);
	if (delta < 0) {
		n = bpf_map_lookup_elem(&cg_ports, &qk);
	} else {
		n = lookup_or_init(&cg_ports, &qk, &zero, &err);
		if (err == -E2BIG)
			stat_inc(EPH_STAT_QUOTA_FULL);
	}
	if (n)
		__sync_fetch_and_add(n, delta);
}

/*
 * The guard's destinations near the line (bpf/guard.bpf.c), and how many there
 * are: kept exact by both sides with atomic adds, so that while it is 0 a
 * connect() costs the guard one load.
 */
EPH_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_GUARD_DST);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct guard_key);
	__type(value, struct guard_val);
} guard_dst SEC(".maps");
EPH_SHARED __u32 guard_dst_count;

/* what the agent read of a namespace that capacity needs, and its local --spread addresses */
EPH_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_NS_LIMITS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct ns_limits);
} ns_limits SEC(".maps");

/* the lines in millionths, fixed at load: deny, spread, and watch (the lower of deny/2, spread) */
EPH_SHARED const volatile __u32 deny_ppm;
EPH_SHARED const volatile __u32 spread_ppm;
EPH_SHARED const volatile __u32 watch_ppm;

static __always_inline bool addr6_eq(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* a tuple's usage now: in use and TIME_WAIT, less the TIME_WAIT connect() may reuse */
static __always_inline __s32 tuple_usage_now(const struct tuple_key *k, const struct tuple_val *v)
{
	__s32 tw = v->states[EPH_TCP_TIME_WAIT], reusable = 0, live = tuple_live(v);

	if (v->tw_reuse == 1 || (v->tw_reuse == 2 && tuple_is_loopback(k)))
		reusable = v->time_wait_ts < tw ? v->time_wait_ts : tw;
	if (reusable < 0)
		reusable = 0;
	return (live > 0 ? live : 0) + (tw > 0 ? tw : 0) - reusable;
}

/* the usage at which a tuple reaches a line, with its namespace's limits (NULL: none) */
static __always_inline __u32 tuple_line(__u32 range, const struct ns_limits *nl, __s32 own,
					__u32 ppm)
{
	return line_usage(capacity_of(range, nl ? nl->reserved : 0, nl ? nl->bound : 0, own), ppm);
}

/*
 * An active open took its tuple to the watch line or beyond: its destination
 * gets an entry in guard_dst now, within this connect(), so that the next
 * connect() to it is judged, however soon it comes. If another tuple holds the
 * entry, the more used of the two does. The agent keeps the last quarter of
 * the map for its own fair sharing (user/guard.c).
 */
static __always_inline void guard_watch(const struct tuple_key *key, const struct tuple_val *val)
{
	const struct ns_limits *nl = bpf_map_lookup_elem(&ns_limits, &key->netns);
	struct guard_key gk = { .netns = key->netns, .dport = key->dport, .family = key->family };
	struct guard_val *gv, init = {};
	struct tuple_val *other;
	__s32 usage = tuple_usage_now(key, val);

	if (usage < (__s32)tuple_line(val->port_range, nl, val->bound, watch_ppm))
		return;
	__builtin_memcpy(gk.daddr, key->daddr, 16);
	gv = bpf_map_lookup_elem(&guard_dst, &gk);
	if (!gv) {
		if (guard_dst_count >= MAX_GUARD_DST - MAX_GUARD_DST / 4) {
			stat_inc(EPH_STAT_GUARD_DST_FULL);
			return;
		}
		__builtin_memcpy(&init.tuple, key, sizeof(*key));
		if (!bpf_map_update_elem(&guard_dst, &gk, &init, BPF_NOEXIST))
			__sync_fetch_and_add(&guard_dst_count, 1);
		return;
	}
	if (addr6_eq(gv->tuple.saddr, key->saddr))
		return;
	other = bpf_map_lookup_elem(&tuples, &gv->tuple);
	if (!other || tuple_usage_now(&gv->tuple, other) < usage)
		__builtin_memcpy(gv->tuple.saddr, key->saddr, 16);
}

/* the current thread's entry in "calls", made if asked */
static __always_inline struct call *call_of_current(bool create)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct call init = {};
	int err;

	if (!create)
		return bpf_map_lookup_elem(&calls, &id);
	return lookup_or_init(&calls, &id, &init, &err);
}

#endif /* EPHPORT_MAPS_BPF_H */
