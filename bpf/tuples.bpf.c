// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Live ephemeral port usage per destination tuple, counted in the kernel.
 *
 * Full sockets: an active open shows as CLOSE -> SYN_SENT (the port is not chosen
 * yet); from then on the socket is remembered in "sockets" and every state change
 * moves one unit between the per-state counters of its tuple. Accepted sockets
 * never pass through SYN_SENT, so they are never counted. Listeners are
 * remembered too: connect() skips their ports for every destination.
 *
 * TIME_WAIT sockets have no state event, but each has a timer, and the timer
 * tracepoints show its whole life: armed when the minisocket is made
 * (timer_start), disarmed when it expires or is destroyed early by a connect()
 * that reuses it, a RST or its namespace going away (timer_cancel). The closing
 * socket's FIN_WAIT2/CLOSING -> CLOSE event, right after it is made, says whose
 * it is. No TIME_WAIT socket is counted that the kernel did not make (a RST
 * close, tcp_max_tw_buckets reached) and none outlives the kernel's.
 *
 * An iter/tcp walk, run by the agent in each network namespace, counts what
 * existed before the agent started and repairs what a lost event got wrong.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "core_fixes.bpf.h"
#include "tuples.h"

#define AF_INET		 2
#define AF_INET6	 10
#define IPPROTO_TCP	 6
#define IPPROTO_UDP	 17
#define E2BIG		 7
#define EADDRINUSE	 98
#define EADDRNOTAVAIL	 99
#define TCP_NEW_SYN_RECV 12
#define NSEC_PER_SEC	 1000000000ull

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* the kernel's tw_timer_handler(), from /proc/kallsyms: tells TIME_WAIT timers apart */
const volatile __u64 tw_timer_fn = 0;
/* set by the agent before each walk; entries a walk did not see are gone */
__u32 walk_gen = 0;
/* CLOCK_MONOTONIC as the agent last read it, twice a second: when connects happen */
__u64 agent_clock_ns = 0;

/*
 * max_entries of the big hash maps are set by the loader (--max-tuples, ...).
 * None is preallocated: memory follows use, and an entry deleted meanwhile is
 * freed only after an RCU grace period, so a program still holding it never
 * writes into an entry that was handed to another key.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TUPLES_DEFAULT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tuple_key);
	__type(value, struct tuple_val);
} tuples SEC(".maps");

/* tracked active opens and listeners, by socket address */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SOCKETS_DEFAULT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct sock_val);
} sockets SEC(".maps");

/*
 * How many "sockets" entries hash to each slot. Most state changes are of
 * sockets ephport does not track (accepted ones); a zero here says so without a
 * lookup in "sockets", whose buckets are too many to stay in the CPU's caches.
 * A slot is raised before its entry is made and lowered after it is deleted.
 */
#define SOCK_SLOT_BITS 14
#define SOCK_SLOTS     (1 << SOCK_SLOT_BITS)
static __u32 sock_slots[SOCK_SLOTS];

/* every TIME_WAIT socket of the host, by its 4-tuple */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TIMEWAIT_DEFAULT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tw_key);
	__type(value, struct tw_val);
} timewait SEC(".maps");

/* ports held by listeners or bind(): connect() skips them for every destination */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PORTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct port_key);
	__type(value, struct port_val);
} ports SEC(".maps");

/* TIME_WAIT sockets that are no tuple's: servers' per local port, others at port 0 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_LOCAL_TW);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct port_key);
	__type(value, __s64);
} local_tw SEC(".maps");

/* written by the agent only, pinned for "ephport query" */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_NETNS);
	__type(key, __u32);
	__type(value, struct netns_info);
} netns_info SEC(".maps");

/*
 * A timer the kernel re-arms is taken off its wheel and put back in one go, on
 * one CPU with interrupts off: timer_cancel then timer_start. The cancel leaves
 * the entry here so that the start puts it back as it was.
 */
struct rearm {
	__u64 timer;
	__u64 at_ns; /* when the cancel ran: a re-arm's start follows within microseconds */
	struct tw_key key;
	struct tw_val val;
};

#define REARM_WINDOW_NS 100000

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rearm);
} rearms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EPH_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* failing connect() and bind() per (tuple, process): exact counts, see tuples.h */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FAILURES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fail_key);
	__type(value, struct fail_val);
} failures SEC(".maps");

/* who opens connections to the tuples that use much of their range */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_OPENERS);
	__type(key, struct opener_key);
	__type(value, struct opener_val);
} openers SEC(".maps");

/* one record per (tuple, process) that starts failing, so the agent reports it at once */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} notices SEC(".maps");

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

/* by thread (pid_tgid); LRU: a call whose exit never comes (io_uring) ages out */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_CALLS);
	__type(key, __u64);
	__type(value, struct call);
} calls SEC(".maps");

/* the guard's settings, fixed at load */
const volatile __u32 guard_mode = GUARD_OFF;
const volatile __s32 guard_errno = 99; /* EADDRNOTAVAIL */
const volatile __u32 guard_quota = 0;

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

/* --quota: live sockets per (cgroup, destination) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_QUOTA);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct quota_key);
	__type(value, __s32);
} cg_ports SEC(".maps");

/* refusals per (tuple, cgroup, reason), for "ephport query" */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FAILURES);
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

static __always_inline void stat_inc(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &slot);

	if (v)
		*v += 1;
}

/* the current thread's entry in "calls", made if asked */
static __always_inline struct call *call_of_current(bool create)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct call *c = bpf_map_lookup_elem(&calls, &id), init = {};

	if (c || !create)
		return c;
	bpf_map_update_elem(&calls, &id, &init, BPF_NOEXIST);
	return bpf_map_lookup_elem(&calls, &id);
}

static __always_inline bool ipv6_is_v4mapped(const struct in6_addr *a)
{
	return a->in6_u.u6_addr32[0] == 0 && a->in6_u.u6_addr32[1] == 0 &&
	       a->in6_u.u6_addr32[2] == bpf_htonl(0x0000ffff);
}

/*
 * The tuple part of a socket or TIME_WAIT socket (the caller zeroes the key);
 * false unless IPv4/IPv6. Plain loads: the pointers are BTF pointers here.
 */
static __always_inline bool addrs_of(const struct sock_common *skc, struct tuple_key *key)
{
	__u16 family = skc->skc_family;

	key->netns = skc->skc_net.net->ns.inum;
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
	if (sk->sk_protocol != IPPROTO_TCP)
		return false;
	__builtin_memset(key, 0, sizeof(*key));
	return addrs_of(&sk->__sk_common, key);
}

static __always_inline bool tw_key_of(const struct inet_timewait_sock *tw, struct tw_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->sport = tw->__tw_common.skc_num;
	return addrs_of(&tw->__tw_common, (struct tuple_key *)k);
}

static __always_inline bool in_range(__u32 range, __u16 port)
{
	return port >= (range & 0xffff) && port <= range >> 16;
}

static __always_inline struct tuple_val *tuple_get_or_create(const struct tuple_key *key,
							     const struct net *net)
{
	struct tuple_val *val, init = {};

	val = bpf_map_lookup_elem(&tuples, key);
	if (val)
		return val;
	init.born_ns = bpf_ktime_get_ns();
	init.port_range = port_range_of(net);
	init.tw_reuse = net->ipv4.sysctl_tcp_tw_reuse;
	/* -EEXIST means another CPU created it first: fine */
	if (map_err(bpf_map_update_elem(&tuples, key, &init, BPF_NOEXIST)) == -E2BIG) {
		stat_inc(EPH_STAT_TUPLES_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&tuples, key);
}

/* the tuple a socket counts in, unless it expired or was made anew since */
static __always_inline struct tuple_val *tuple_of(const struct tuple_key *key, __u64 born)
{
	struct tuple_val *val = bpf_map_lookup_elem(&tuples, key);

	if (!val || val->born_ns != born) {
		stat_inc(EPH_STAT_TUPLE_MISSING);
		return NULL;
	}
	return val;
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

/* a port of a namespace gains or loses a listener or a bind()-ed socket */
static __always_inline void ports_add(__u32 netns, __u16 port, int listeners, int bound)
{
	struct port_key pk = { .netns = netns, .port = port };
	struct port_val *pv, zero = {};

	pv = bpf_map_lookup_elem(&ports, &pk);
	if (!pv) {
		if (listeners < 0 || bound < 0)
			return; /* it never fitted */
		if (map_err(bpf_map_update_elem(&ports, &pk, &zero, BPF_NOEXIST)) == -E2BIG) {
			stat_inc(EPH_STAT_PORTS_FULL);
			return;
		}
		pv = bpf_map_lookup_elem(&ports, &pk);
		if (!pv)
			return;
	}
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

static __always_inline void local_tw_add(__u32 netns, __u16 port, int delta)
{
	struct port_key pk = { .netns = netns, .port = port };
	__s64 *n, zero = 0;

	n = bpf_map_lookup_elem(&local_tw, &pk);
	if (!n) {
		if (delta < 0)
			return; /* it never fitted */
		bpf_map_update_elem(&local_tw, &pk, &zero, BPF_NOEXIST);
		n = bpf_map_lookup_elem(&local_tw, &pk);
		if (!n)
			return;
	}
	__sync_fetch_and_add(n, delta);
}

/*
 * One TIME_WAIT socket starts or stops counting where its side says; val is its
 * tuple when the caller has it already, else NULL.
 */
static __always_inline void tw_account(const struct tw_key *k, const struct tw_val *v, __u32 side,
				       int delta, struct tuple_val *val)
{
	switch (side) {
	case TW_CLIENT:
		if (!val)
			val = tuple_of((const struct tuple_key *)k, v->tuple_born);
		if (!val)
			return;
		state_add(val, EPH_TCP_TIME_WAIT, delta);
		if (v->ts)
			__sync_fetch_and_add(&val->time_wait_ts, delta);
		break;
	case TW_SERVER:
		local_tw_add(k->netns, k->sport, delta);
		break;
	case TW_OTHER:
		local_tw_add(k->netns, 0, delta);
		break;
	}
}

/*
 * Gives an unclassified TIME_WAIT socket its side. The exchange makes it count
 * once even when the kernel destroys it on another CPU at the same moment.
 */
static __always_inline void tw_classify(const struct tw_key *k, __u32 side, __u64 tuple_born,
					struct tuple_val *val, const bool atomics)
{
	struct tw_val *v = bpf_map_lookup_elem(&timewait, k);

	if (!v || v->side != TW_UNCLASSIFIED)
		return;
	v->tuple_born = tuple_born;
	if (ATOMIC_CMPXCHG(&v->side, TW_UNCLASSIFIED, side, atomics) == TW_UNCLASSIFIED)
		tw_account(k, v, side, 1, val);
}

/* the kernel destroyed it; returns the side it was counted on */
static __always_inline __u32 tw_gone(const struct tw_key *k, struct tw_val *v, const bool atomics)
{
	__u32 side = ATOMIC_XCHG(&v->side, TW_GONE, atomics);

	tw_account(k, v, side, -1, NULL);
	bpf_map_delete_elem(&timewait, k);
	return side;
}

/* --quota: a cgroup's sockets to a destination, one more or one less */
static __always_inline void quota_add(__u64 cgroup_id, const struct tuple_key *t, int delta)
{
	struct quota_key qk = { .cgroup_id = cgroup_id };
	__s32 *n, zero = 0;

	qk.dst.netns = t->netns;
	qk.dst.dport = t->dport;
	qk.dst.family = t->family;
	__builtin_memcpy(qk.dst.daddr, t->daddr, 16);
	n = bpf_map_lookup_elem(&cg_ports, &qk);
	if (!n) {
		if (delta < 0)
			return;
		bpf_map_update_elem(&cg_ports, &qk, &zero, BPF_NOEXIST);
		n = bpf_map_lookup_elem(&cg_ports, &qk);
		if (!n)
			return;
	}
	__sync_fetch_and_add(n, delta);
}

/* takes back what a "sockets" entry counted; returns an active socket's tuple */
static __always_inline struct tuple_val *sock_uncount(const struct sock_val *sv)
{
	struct tuple_val *val;

	if (sv->kind == SOCK_LISTENER) {
		ports_add(sv->key.netns, sv->lport, -1, 0);
		return NULL;
	}
	if (sv->bound)
		ports_add(sv->key.netns, sv->lport, 0, -1);
	if (guard_quota)
		quota_add(sv->cgroup_id, &sv->key, -1);
	val = tuple_of(&sv->key, sv->tuple_born);
	if (!val)
		return NULL;
	state_add(val, sv->state, -1);
	if (sv->bound)
		__sync_fetch_and_add(&val->bound, -1);
	return val;
}

static __always_inline __u32 *sock_slot(__u64 skaddr)
{
	__u32 lo, i;

	/* a 32-bit move makes a number of the pointer, as far as the verifier goes */
	asm volatile("%0 = %1" : "=w"(lo) : "w"((__u32)skaddr));
	/* sockets are cache-line aligned: a multiplicative hash of the rest */
	i = ((lo >> 6) * 2654435761u) >> (32 - SOCK_SLOT_BITS);
	return &sock_slots[i & (SOCK_SLOTS - 1)];
}

static __always_inline struct sock_val *sock_tracked(__u64 skaddr)
{
	if (!*sock_slot(skaddr))
		return NULL;
	return bpf_map_lookup_elem(&sockets, &skaddr);
}

/* whoever deletes the entry takes its counts back: exactly once */
static __always_inline bool sock_untrack(__u64 skaddr)
{
	if (bpf_map_delete_elem(&sockets, &skaddr))
		return false;
	__sync_fetch_and_add(sock_slot(skaddr), -1);
	return true;
}

/* an entry already at this address is a socket whose CLOSE we missed */
static __always_inline void forget_stale(__u64 skaddr)
{
	struct sock_val *stale = sock_tracked(skaddr);

	if (!stale)
		return;
	stat_inc(EPH_STAT_STALE_SOCKETS);
	if (sock_untrack(skaddr))
		sock_uncount(stale);
}

/*
 * Counts a socket in "sockets" once, whoever sees it first: the state event or
 * the start-up walk (BPF_NOEXIST decides).
 */
static __always_inline bool sock_track(__u64 skaddr, const struct sock_val *sv)
{
	__u32 *slot = sock_slot(skaddr);
	int err;

	__sync_fetch_and_add(slot, 1);
	err = bpf_map_update_elem(&sockets, &skaddr, sv, BPF_NOEXIST);
	if (!err)
		return true;
	__sync_fetch_and_add(slot, -1);
	if (err == -E2BIG)
		stat_inc(EPH_STAT_SOCKETS_FULL);
	return false;
}

static __always_inline void listener_track(const struct sock *sk, __u64 skaddr)
{
	struct sock_val sv = {
		.state = EPH_TCP_LISTEN,
		.kind = SOCK_LISTENER,
		.lport = sk->__sk_common.skc_num,
	};

	sv.key.netns = sk->__sk_common.skc_net.net->ns.inum;
	if (sock_track(skaddr, &sv))
		ports_add(sv.key.netns, sv.lport, 1, 0);
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

/* a tuple holding an eighth of its port range or more: its openers are recorded */
static __always_inline bool tuple_watched(const struct tuple_val *val)
{
	__u32 range = val->port_range;
	__s32 size = (__s32)(range >> 16) - (__s32)(range & 0xffff) + 1;

	return range && (tuple_live(val) + val->states[EPH_TCP_TIME_WAIT]) * 8 >= size;
}

static __always_inline void opener_note(const struct tuple_key *key)
{
	struct opener_key ok = { .tgid = bpf_get_current_pid_tgid() >> 32 };
	struct opener_val *ov, init = {};

	__builtin_memcpy(&ok.tuple, key, sizeof(*key));
	ov = bpf_map_lookup_elem(&openers, &ok);
	if (ov) {
		__sync_fetch_and_add(&ov->connects, 1);
		return;
	}
	init.connects = 1;
	init.cgroup_id = bpf_get_current_cgroup_id();
	init.tid = (__u32)bpf_get_current_pid_tgid();
	init.uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(init.comm, sizeof(init.comm));
	/* another CPU made it meanwhile: that one connect goes unnamed */
	bpf_map_update_elem(&openers, &ok, &init, BPF_NOEXIST);
}

/*
 * An active open (or, in a walk, an active socket found), counted in state;
 * live: seen as it happened, by the process that called connect().
 */
static __always_inline void active_track(const struct sock *sk, __u64 skaddr, __u32 state,
					 bool bound, bool live)
{
	const struct net *net = sk->__sk_common.skc_net.net;
	struct sock_val sv = { .state = state, .kind = SOCK_ACTIVE, .bound = bound };
	struct tuple_val *val;
	__u32 range;
	__u64 now;
	__u8 reuse;

	if (guard_quota)
		sv.cgroup_id = sock_cgroup_id(sk);
	if (!tuple_key_of(sk, &sv.key))
		return;
	val = tuple_get_or_create(&sv.key, net);
	if (!val)
		return;
	sv.tuple_born = val->born_ns;
	sv.lport = sk->__sk_common.skc_num;
	if (state == EPH_TCP_SYN_SENT) {
		__sync_fetch_and_add(&val->connects, 1);
		/*
		 * Written only when they change, so that CPUs opening connections to
		 * one tuple share its cache line. The agent's clock costs no clock
		 * read, and idle expiry counts in seconds.
		 */
		now = agent_clock_ns;
		if (val->last_connect_ns != now)
			val->last_connect_ns = now;
		range = port_range_of(net);
		if (val->port_range != range)
			val->port_range = range;
		reuse = net->ipv4.sysctl_tcp_tw_reuse;
		if (val->tw_reuse != reuse)
			val->tw_reuse = reuse;
		if (bound)
			__sync_fetch_and_add(&val->bound_connects, 1);
		if (live && tuple_watched(val))
			opener_note(&sv.key);
	}
	if (!sock_track(skaddr, &sv))
		return;
	state_add(val, state, 1);
	if (guard_quota)
		quota_add(sv.cgroup_id, &sv.key, 1);
	if (bound) {
		ports_add(sv.key.netns, sv.lport, 0, 1);
		__sync_fetch_and_add(&val->bound, 1);
	}
}

/*
 * SYN_SENT -> CLOSE while the socket is still SS_UNCONNECTED: connect() failed
 * before it returned, which for TCP means __inet_hash_connect() found no usable
 * port (EADDRNOTAVAIL). Refused or timed-out connects close later, as SS_CONNECTING.
 * The port fields cannot tell: CLOSE zeroes skc_num first, and inet_sport keeps
 * the port of an earlier attempt on a reused socket.
 */
static __always_inline bool connect_got_no_port(const struct sock *sk, int oldstate, int newstate)
{
	struct socket *sock;

	if (oldstate != EPH_TCP_SYN_SENT || newstate != EPH_TCP_CLOSE)
		return false;
	sock = sk->sk_socket;
	return sock && sock->state == SS_UNCONNECTED;
}

/*
 * connect()'s port search failed: the thread's syscall exit reports it, with the
 * tuple and its counts as they were at this moment.
 */
static __always_inline void port_search_failed(const struct sock *sk, const struct tuple_key *key,
					       struct tuple_val *val)
{
	struct call *c;

	__sync_fetch_and_add(&val->failed_connects, 1);
	/* a connect() from io_uring or the kernel leaves it unread: counted in the tuple only */
	c = call_of_current(true);
	if (!c)
		return;
	c->sk = (__u64)sk;
	c->has_tuple = 1;
	__builtin_memcpy(&c->tuple, key, sizeof(*key));
	c->in_use = tuple_live(val);
	c->time_wait = val->states[EPH_TCP_TIME_WAIT];
	c->time_wait_ts = val->time_wait_ts;
	c->port_range = val->port_range;
	c->tw_reuse = val->tw_reuse;
}

/* the states from which tcp_time_wait() closes a socket into a TIME_WAIT socket */
static __always_inline bool may_leave_timewait(int oldstate, int newstate)
{
	return newstate == EPH_TCP_CLOSE &&
	       (oldstate == EPH_TCP_FIN_WAIT2 || oldstate == EPH_TCP_CLOSING ||
		oldstate == EPH_TCP_FIN_WAIT1);
}

/*
 * Whose a TIME_WAIT socket is when its closing socket was not tracked: the
 * kernel's connect-bind flag where it has one, else a listener on the local port
 * (a server's), else a port inside the range (a client's).
 */
static __always_inline __u32 tw_guess_side(const struct tw_key *k, const struct net *net, int cbind)
{
	if (cbind == 1)
		return TW_CLIENT;
	if (has_listener(k->netns, k->sport))
		return TW_SERVER;
	if (cbind == 0)
		return TW_OTHER; /* a bind()-ed port or an orphaned accepted socket */
	if (in_range(port_range_of(net), k->sport))
		return TW_CLIENT;
	return TW_OTHER;
}

/* a tuple's generation, made if need be; 0 if the map is full */
static __always_inline __u64 tuple_born_of(const struct tw_key *k, const struct net *net)
{
	struct tuple_val *val = tuple_get_or_create((const struct tuple_key *)k, net);

	return val ? val->born_ns : 0;
}

/* a socket ephport does not track closed first: an accepted one, most likely */
static __always_inline void untracked_close(const struct sock *sk, const bool atomics)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);
	const struct net *net = sk->__sk_common.skc_net.net;
	struct tw_val *v;
	struct tw_key k;
	__u32 side;
	__u64 born = 0;

	if (!tp || !tuple_key_of(sk, (struct tuple_key *)&k))
		return;
	/* CLOSE has zeroed skc_num already; inet_sport still holds the port */
	k.sport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	k.pad = 0;
	v = bpf_map_lookup_elem(&timewait, &k);
	if (!v || v->side != TW_UNCLASSIFIED)
		return;
	side = tw_guess_side(&k, net, v->cbind);
	if (side == TW_CLIENT && !(born = tuple_born_of(&k, net)))
		return;
	tw_classify(&k, side, born, NULL, atomics);
}

/*
 * Moves the socket's unit from the state it is counted in (not the event's
 * oldstate) to the new one, so that an event the kernel skipped (a program does
 * not run while it already runs on that CPU) is repaired by the next one.
 */
static __always_inline void tracked_change(const struct sock *sk, __u64 skaddr, int oldstate,
					   int newstate, const bool atomics)
{
	struct sock_val *sv = sock_tracked(skaddr);
	struct tuple_val *val;
	struct tw_key k;
	bool no_port;

	if (!sv && newstate != EPH_TCP_CLOSE)
		return; /* an accepted socket: the usual case of an untracked one */
	no_port = connect_got_no_port(sk, oldstate, newstate);
	if (!sv) {
		struct tuple_key key;

		if (may_leave_timewait(oldstate, newstate))
			untracked_close(sk, atomics);
		/* not tracked (the socket map was full): still count the failure */
		else if (no_port && tuple_key_of(sk, &key) &&
			 (val = bpf_map_lookup_elem(&tuples, &key)))
			port_search_failed(sk, &key, val);
		return;
	}
	if (newstate == EPH_TCP_CLOSE) {
		if (!sock_untrack(skaddr))
			return;
		/* one tuple lookup serves the close, the failure and the TIME_WAIT socket */
		val = sock_uncount(sv);
		if (!val)
			return;
		if (no_port)
			port_search_failed(sk, &sv->key, val);
		if (may_leave_timewait(oldstate, newstate) && sv->lport) {
			__builtin_memcpy(&k, &sv->key, sizeof(sv->key));
			k.sport = sv->lport;
			k.pad = 0;
			tw_classify(&k, TW_CLIENT, sv->tuple_born, val, atomics);
		}
		return;
	}
	if (sv->kind != SOCK_ACTIVE)
		return;
	val = tuple_of(&sv->key, sv->tuple_born);
	if (val) {
		state_add(val, sv->state, -1);
		state_add(val, newstate, 1);
	}
	/* the port is chosen after CLOSE -> SYN_SENT */
	if (!sv->lport)
		sv->lport = sk->__sk_common.skc_num;
	sv->state = newstate;
}

static __always_inline int set_state(const struct sock *sk, int oldstate, int newstate,
				     const bool atomics)
{
	__u64 skaddr = (__u64)sk;

	/*
	 * A listener's new child, and its handshake done: the commonest events of a
	 * server, never ours. (An active open reaches SYN_RECV only by a
	 * simultaneous open; it stays counted as SYN_SENT until it leaves
	 * ESTABLISHED.)
	 */
	if (newstate == EPH_TCP_SYN_RECV ||
	    (oldstate == EPH_TCP_SYN_RECV && newstate == EPH_TCP_ESTABLISHED))
		return 0;
	if (oldstate == EPH_TCP_CLOSE && newstate == EPH_TCP_SYN_SENT) {
		forget_stale(skaddr);
		/* the port is picked after this event unless bind() already took one */
		active_track(sk, skaddr, EPH_TCP_SYN_SENT, sk->__sk_common.skc_num != 0, true);
	} else if (newstate == EPH_TCP_LISTEN) {
		forget_stale(skaddr);
		listener_track(sk, skaddr);
	} else {
		tracked_change(sk, skaddr, oldstate, newstate, atomics);
	}
	return 0;
}

/*
 * Each program that changes a TIME_WAIT socket's side comes twice: the agent
 * loads the _compat build where the kernel lacks atomic exchange (before 5.12).
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tuples_set_state, const struct sock *sk, int oldstate, int newstate)
{
	return set_state(sk, oldstate, newstate, true);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tuples_set_state_compat, const struct sock *sk, int oldstate, int newstate)
{
	return set_state(sk, oldstate, newstate, false);
}

/*
 * The TIME_WAIT socket around a tw_timer. Not a BTF pointer (the verifier only
 * knows the timer), so its fields are read with CO-RE probe reads: they work on
 * every kernel, where bpf_rdonly_cast (Linux 6.2) would not.
 */
static __always_inline const struct tcp_timewait_sock *tw_of_timer(const struct timer_list *timer)
{
	return (const void *)((__u64)timer -
			      bpf_core_field_offset(struct inet_timewait_sock, tw_timer));
}

/* addrs_of() for a socket that is not a BTF pointer */
static __always_inline bool addrs_read(const struct sock_common *skc, struct tuple_key *key)
{
	__u16 family = BPF_CORE_READ(skc, skc_family);
	struct in6_addr daddr;

	key->netns = BPF_CORE_READ(skc, skc_net.net, ns.inum);
	key->dport = bpf_ntohs(BPF_CORE_READ(skc, skc_dport));
	if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&daddr, skc, skc_v6_daddr);
		if (!ipv6_is_v4mapped(&daddr)) {
			key->family = AF_INET6;
			BPF_CORE_READ_INTO(&key->saddr, skc, skc_v6_rcv_saddr);
			__builtin_memcpy(key->daddr, &daddr, 16);
			return true;
		}
	} else if (family != AF_INET) {
		return false;
	}
	key->family = AF_INET;
	bpf_probe_read_kernel(key->saddr, 4, &skc->skc_rcv_saddr);
	bpf_probe_read_kernel(key->daddr, 4, &skc->skc_daddr);
	return true;
}

/* tw_key_of() for a TIME_WAIT socket found through its timer */
static __always_inline bool tw_key_read(const struct inet_timewait_sock *tw, struct tw_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->sport = BPF_CORE_READ(tw, __tw_common.skc_num);
	return addrs_read(&tw->__tw_common, (struct tuple_key *)k);
}

/* a TIME_WAIT socket was made (or its timer re-armed) */
SEC("tp_btf/timer_start")
int BPF_PROG(tw_timer_start, struct timer_list *timer, unsigned long expires)
{
	const struct tcp_timewait_sock *tw;
	struct tw_val v = {};
	struct rearm *r;
	struct tw_key k;
	__u32 zero = 0;

	if ((__u64)timer->function != tw_timer_fn || !tw_timer_fn)
		return 0;
	tw = tw_of_timer(timer);
	if (!tw_key_read(&tw->tw_sk, &k))
		return 0;
	r = bpf_map_lookup_elem(&rearms, &zero);
	/* a cancel of a socket the kernel destroyed leaves its slot behind: the same
	 * address may be a new TIME_WAIT socket, told apart by key and time */
	if (r && r->timer == (__u64)timer && r->key.sport == k.sport && r->key.dport == k.dport &&
	    r->key.netns == k.netns && bpf_ktime_get_ns() - r->at_ns < REARM_WINDOW_NS) {
		r->timer = 0;
		v = r->val;
		if (!bpf_map_update_elem(&timewait, &k, &v, BPF_NOEXIST))
			tw_account(&k, &v, v.side, 1, NULL);
		return 0;
	}
	v.born_ns = bpf_ktime_get_ns();
	v.ts = BPF_CORE_READ(tw, tw_ts_recent_stamp) != 0;
	v.cbind = tw_connect_bound(&tw->tw_sk);
	if (map_err(bpf_map_update_elem(&timewait, &k, &v, BPF_NOEXIST)) == -E2BIG)
		stat_inc(EPH_STAT_TIMEWAIT_FULL);
	return 0;
}

/* a TIME_WAIT socket expired or was destroyed (or its timer is being re-armed) */
static __always_inline int timer_cancel(const struct timer_list *timer, const bool atomics)
{
	const struct tcp_timewait_sock *tw;
	__u32 zero = 0, side;
	struct rearm *r;
	struct tw_val *v;
	struct tw_key k;

	if ((__u64)timer->function != tw_timer_fn || !tw_timer_fn)
		return 0;
	tw = tw_of_timer(timer);
	if (!tw_key_read(&tw->tw_sk, &k))
		return 0;
	v = bpf_map_lookup_elem(&timewait, &k);
	if (!v)
		return 0;
	side = ATOMIC_XCHG(&v->side, TW_GONE, atomics);
	tw_account(&k, v, side, -1, NULL);
	/* copied after the exchange: a classification that won the race is complete */
	r = bpf_map_lookup_elem(&rearms, &zero);
	if (r) {
		r->val = *v;
		r->val.side = side;
		r->key = k;
		r->timer = (__u64)timer;
		r->at_ns = bpf_ktime_get_ns();
	}
	bpf_map_delete_elem(&timewait, &k);
	return 0;
}

SEC("tp_btf/timer_cancel")
int BPF_PROG(tw_timer_cancel, struct timer_list *timer)
{
	return timer_cancel(timer, true);
}

SEC("tp_btf/timer_cancel")
int BPF_PROG(tw_timer_cancel_compat, struct timer_list *timer)
{
	return timer_cancel(timer, false);
}

/* start-up and repair walk: what the events could not show */

static __always_inline void walk_timewait(const struct tcp_timewait_sock *tw, const bool atomics)
{
	const struct net *net = tw->tw_sk.__tw_common.skc_net.net;
	struct tw_val v = {};
	struct tw_val *cur;
	struct tw_key k;

	if (!tw_key_of(&tw->tw_sk, &k))
		return;
	cur = bpf_map_lookup_elem(&timewait, &k);
	if (cur) {
		cur->seen = walk_gen;
		/* its closing socket was never seen: guess, as for one made before us */
		if (cur->side == TW_UNCLASSIFIED &&
		    bpf_ktime_get_ns() - cur->born_ns > NSEC_PER_SEC) {
			__u32 side = tw_guess_side(&k, net, cur->cbind);
			__u64 born = 0;

			if (side == TW_CLIENT && !(born = tuple_born_of(&k, net)))
				return;
			tw_classify(&k, side, born, NULL, atomics);
		}
		return;
	}
	v.born_ns = bpf_ktime_get_ns();
	v.seen = walk_gen;
	v.ts = tw->tw_ts_recent_stamp != 0;
	v.cbind = tw_connect_bound(&tw->tw_sk);
	v.side = tw_guess_side(&k, net, v.cbind);
	if (v.side == TW_CLIENT && !(v.tuple_born = tuple_born_of(&k, net)))
		return;
	/* a timer_start made it meanwhile: its closing event classifies it */
	if (bpf_map_update_elem(&timewait, &k, &v, BPF_NOEXIST))
		return;
	tw_account(&k, &v, v.side, 1, NULL);
	/* its timer fired while we looked: the cancel found nothing to take back */
	if (!tw->tw_sk.tw_timer.entry.pprev) {
		cur = bpf_map_lookup_elem(&timewait, &k);
		if (cur)
			tw_gone(&k, cur, atomics);
	}
}

static __always_inline void walk_full(const struct tcp_sock *tp, __u64 skaddr)
{
	const struct sock *sk = (const struct sock *)tp;
	const struct inet_bind_bucket *tb = tp->inet_conn.icsk_bind_hash;
	const struct sock_common *skc = &sk->__sk_common;
	__u16 lport = skc->skc_num;
	/* a bucket made by bind() (fastreuse >= 0) keeps the port from every connect() */
	bool bound = tb && tb->fastreuse >= 0;

	/* an accepted socket shares its listener's port; it holds no ephemeral port */
	if (sk_connect_bound(sk) != 1 && has_listener(skc->skc_net.net->ns.inum, lport))
		return;
	if (!bound && !in_range(port_range_of(skc->skc_net.net), lport))
		return;
	active_track(sk, skaddr, skc->skc_state, bound, false);
}

static __always_inline int walk_one(struct sock_common *skc, const bool atomics)
{
	const struct tcp_timewait_sock *tw;
	const struct tcp_sock *tp;

	if (!skc)
		return 0;
	/* listeners come first in the walk, so accepted sockets can be told apart */
	switch (skc->skc_state) {
	case EPH_TCP_TIME_WAIT:
		tw = bpf_skc_to_tcp_timewait_sock(skc);
		if (tw)
			walk_timewait(tw, atomics);
		break;
	case TCP_NEW_SYN_RECV:
	case EPH_TCP_CLOSE: /* closed after the walk took it: holds no port now */
		break;
	case EPH_TCP_LISTEN:
		tp = bpf_skc_to_tcp_sock(skc);
		if (tp)
			listener_track((const struct sock *)tp, (__u64)skc);
		break;
	default:
		tp = bpf_skc_to_tcp_sock(skc);
		if (tp)
			walk_full(tp, (__u64)skc);
	}
	return 0;
}

SEC("iter/tcp")
int walk(struct bpf_iter__tcp *ctx)
{
	return walk_one(ctx->sk_common, true);
}

SEC("iter/tcp")
int walk_compat(struct bpf_iter__tcp *ctx)
{
	return walk_one(ctx->sk_common, false);
}

/*
 * The agent's repair: a TIME_WAIT socket a walk no longer found. Run by the
 * agent (BPF_PROG_TEST_RUN) with struct tw_forget_args as its arguments; a raw
 * tracepoint program because those run that way on every kernel (a "syscall"
 * program needs Linux 5.14).
 */
static __always_inline int forget(const __u64 *ctx, const bool atomics)
{
	struct tw_forget_args args;
	struct tw_val *v;

	__builtin_memcpy(&args, ctx, sizeof(args));
	v = bpf_map_lookup_elem(&timewait, &args.key);
	if (!v || v->born_ns != args.born_ns)
		return 0;
	tw_gone(&args.key, v, atomics);
	return 1;
}

SEC("raw_tp")
int tw_forget(__u64 *ctx)
{
	return forget(ctx, true);
}

SEC("raw_tp")
int tw_forget_compat(__u64 *ctx)
{
	return forget(ctx, false);
}

/*
 * Failures attributed to processes. connect() and bind() remember their
 * arguments on the way in; on the way out, EADDRNOTAVAIL from connect() (no
 * local port for the tuple) and EADDRINUSE from a bind() to port 0 (no port at
 * all) are counted per (tuple, process) in "failures". A (tuple, process) seen
 * for the first time also sends a notice, so the agent reports it at once; the
 * counts stay exact when notices are lost.
 */

/*
 * A failing syscall's first three arguments: from the registers its thread saved
 * on entry (bpf_task_pt_regs), or where connect_enter/bind_enter put them on
 * kernels without that helper. False if neither has them.
 */
static __always_inline bool sys_args_of_current(struct sys_args *a, struct call *c)
{
	if (HAVE_TASK_PT_REGS) {
		struct pt_regs *regs =
			(struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

		a->fd = PT_REGS_PARM1_CORE_SYSCALL(regs);
		a->uaddr = PT_REGS_PARM2_CORE_SYSCALL(regs);
		a->addrlen = PT_REGS_PARM3_CORE_SYSCALL(regs);
		return true;
	}
	if (!c || !c->has_args)
		return false;
	*a = c->args;
	c->has_args = 0;
	return true;
}

/*
 * The socket behind a file descriptor of the current process, or NULL. Probe
 * reads: bpf_get_current_task_btf (Linux 5.11) and bpf_rdonly_cast (6.2) would
 * allow plain loads, but this path runs only for failing calls.
 */
static __always_inline const struct sock *sock_of_fd(int fd)
{
	const struct task_struct *task = (const void *)bpf_get_current_task();
	const struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	const struct file *file = NULL;
	const struct socket *sock;
	struct file **fds;

	if (fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	/* a socket's file and the socket point at each other */
	if (!sock || BPF_CORE_READ(sock, file) != file)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

/* the address of a connect() or bind() call, into key (zeroed); its port in *port */
static __always_inline bool call_sockaddr(const struct sys_args *a, struct tuple_key *key, bool dst,
					  __u16 *port)
{
	struct sockaddr_in6 sa = {};
	__u8 *addr = dst ? key->daddr : key->saddr;

	if (a->addrlen < sizeof(struct sockaddr_in) ||
	    bpf_probe_read_user(&sa, sizeof(struct sockaddr_in), (void *)a->uaddr))
		return false;
	*port = bpf_ntohs(sa.sin6_port);
	if (sa.sin6_family == AF_INET) {
		key->family = AF_INET;
		__builtin_memcpy(addr, &((struct sockaddr_in *)&sa)->sin_addr, 4);
		return true;
	}
	if (sa.sin6_family != AF_INET6 || a->addrlen < sizeof(sa) ||
	    bpf_probe_read_user(&sa, sizeof(sa), (void *)a->uaddr))
		return false;
	if (ipv6_is_v4mapped(&sa.sin6_addr)) {
		key->family = AF_INET;
		__builtin_memcpy(addr, &sa.sin6_addr.in6_u.u6_addr32[3], 4);
	} else {
		key->family = AF_INET6;
		__builtin_memcpy(addr, &sa.sin6_addr, 16);
	}
	return true;
}

static __always_inline void notify(const struct fail_key *k)
{
	struct notice *n = bpf_ringbuf_reserve(&notices, sizeof(*n), 0);

	if (!n) {
		stat_inc(EPH_STAT_NOTICES_LOST);
		return;
	}
	n->type = NOTICE_FAILURE;
	n->pad = 0;
	__builtin_memcpy(&n->key, k, sizeof(*k));
	bpf_ringbuf_submit(n, 0);
}

static __always_inline void fail_count(const struct fail_key *k, const struct call *c)
{
	__u64 now = bpf_ktime_get_ns(), pid_tgid = bpf_get_current_pid_tgid();
	struct fail_val *v, init = { .first_ns = now };
	bool wake;
	int err;

	v = bpf_map_lookup_elem(&failures, k);
	if (!v) {
		err = bpf_map_update_elem(&failures, k, &init, BPF_NOEXIST);
		if (err == -E2BIG) {
			stat_inc(EPH_STAT_FAILURES_FULL);
			return;
		}
		v = bpf_map_lookup_elem(&failures, k);
		if (!v)
			return;
	}
	__sync_fetch_and_add(&v->count, 1);
	/* the first failure, or the first after a quiet second: wake the agent */
	wake = now - v->last_ns > NSEC_PER_SEC;
	/* the latest failure's thread and tuple counts: the last writer wins */
	v->last_ns = now;
	v->tid = (__u32)pid_tgid;
	v->uid = (__u32)bpf_get_current_uid_gid();
	v->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(v->comm, sizeof(v->comm));
	if (c->has_tuple) {
		v->in_use = c->in_use;
		v->time_wait = c->time_wait;
		v->time_wait_ts = c->time_wait_ts;
		v->port_range = c->port_range;
		v->tw_reuse = c->tw_reuse;
		v->has_tuple = 1;
	}
	/* after the count: the agent reads the entry when the notice arrives */
	if (wake)
		notify(k);
}

/*
 * Only the exits are traced: a failing call finds its arguments in the
 * registers its thread saved on entry (64-bit system calls; a 32-bit process's
 * failures without a port search are not attributed).
 */
SEC("tracepoint/syscalls/sys_exit_connect")
int connect_exit(struct syscall_trace_exit *ctx)
{
	struct fail_key k = { .kind = FAIL_CONNECT, .protocol = IPPROTO_TCP };
	struct call *c, none = {};
	const struct sock *sk;
	struct sys_args a;
	__u16 port;

	if (ctx->ret != -EADDRNOTAVAIL)
		return 0;
	c = call_of_current(false);
	if (!sys_args_of_current(&a, c))
		return 0;
	sk = sock_of_fd(a.fd);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	k.tgid = bpf_get_current_pid_tgid() >> 32;
	if (c && c->has_tuple && c->sk == (__u64)sk) {
		/* the usual case: the port search for this tuple found nothing */
		__builtin_memcpy(&k.tuple, &c->tuple, sizeof(k.tuple));
		fail_count(&k, c);
		c->has_tuple = 0;
		return 0;
	}
	/* it failed before a port search (no source address...): what the call said */
	if (!call_sockaddr(&a, &k.tuple, true, &port))
		return 0;
	k.tuple.dport = port;
	k.tuple.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	if (k.tuple.family == AF_INET)
		bpf_probe_read_kernel(k.tuple.saddr, 4, &sk->__sk_common.skc_rcv_saddr);
	else
		bpf_probe_read_kernel(k.tuple.saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
	fail_count(&k, &none);
	return 0;
}

/* bind() to port 0 failing with EADDRINUSE: no free port in the whole range */
SEC("tracepoint/syscalls/sys_exit_bind")
int bind_exit(struct syscall_trace_exit *ctx)
{
	struct fail_key k = { .kind = FAIL_BIND };
	const struct sock *sk;
	struct call none = {};
	struct sys_args a;
	__u16 port, proto;

	if (ctx->ret != -EADDRINUSE)
		return 0;
	if (!sys_args_of_current(&a, call_of_current(false)))
		return 0;
	sk = sock_of_fd(a.fd);
	if (!sk)
		return 0;
	proto = BPF_CORE_READ(sk, sk_protocol);
	if ((proto != IPPROTO_TCP && proto != IPPROTO_UDP) ||
	    !call_sockaddr(&a, &k.tuple, false, &port) || port)
		return 0;
	k.protocol = proto;
	k.tgid = bpf_get_current_pid_tgid() >> 32;
	k.tuple.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	fail_count(&k, &none);
	return 0;
}

/*
 * Kernels without bpf_task_pt_regs (before 5.15): the arguments of every
 * connect() and bind() are kept on entry, for the exit that may fail. The agent
 * loads these two only there.
 */
static __always_inline int save_args(const struct syscall_trace_enter *ctx)
{
	struct call *c = call_of_current(true);

	if (!c)
		return 0;
	c->args.fd = ctx->args[0];
	c->args.uaddr = ctx->args[1];
	c->args.addrlen = ctx->args[2];
	c->has_args = 1;
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int connect_enter(struct syscall_trace_enter *ctx)
{
	return save_args(ctx);
}

SEC("tracepoint/syscalls/sys_enter_bind")
int bind_enter(struct syscall_trace_enter *ctx)
{
	return save_args(ctx);
}

/*
 * The connect guard. At connect() the source address is usually not chosen
 * yet: a socket bound to an address is judged by its own tuple, any other by the
 * most used tuple of its namespace to that destination (guard_dst), with live
 * counts. Exempt cgroups and their subtrees pass; so does all but TCP.
 */

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

	__builtin_memcpy(&dk.tuple, t, sizeof(*t));
	n = bpf_map_lookup_elem(&denials, &dk);
	if (!n) {
		if (map_err(bpf_map_update_elem(&denials, &dk, &zero, BPF_NOEXIST)) == -E2BIG)
			stat_inc(EPH_STAT_FAILURES_FULL);
		n = bpf_map_lookup_elem(&denials, &dk);
		if (!n)
			return;
	}
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
