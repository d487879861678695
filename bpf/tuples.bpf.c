// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Live ephemeral port usage per destination tuple, counted in the kernel.
 *
 * An active open shows as CLOSE -> SYN_SENT (the port is not chosen yet); from
 * then on the socket is remembered in "sockets" and every state change moves
 * one unit between the per-state counters of its tuple. Accepted sockets never
 * pass through SYN_SENT, so they are never counted.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tuples.h"

#define AF_INET	    2
#define AF_INET6    10
#define IPPROTO_TCP 6
#define E2BIG	    7

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * max_entries of both hash maps are set by the loader (--max-tuples, --max-sockets).
 * Neither is preallocated: memory follows use, and an entry the agent deletes is
 * freed only after an RCU grace period, so a program still holding it never writes
 * into an entry that was handed to another key.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TUPLES_DEFAULT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tuple_key);
	__type(value, struct tuple_val);
} tuples SEC(".maps");

/* tracked active opens, by socket address */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SOCKETS_DEFAULT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct sock_val);
} sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EPH_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

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
 * false for sockets that are not TCP over IPv4/IPv6. tp_btf hands us a trusted
 * pointer, so plain loads (CO-RE relocated) replace bpf_probe_read_kernel() calls.
 */
static __always_inline bool tuple_key_of(const struct sock *sk, struct tuple_key *key)
{
	const struct sock_common *skc = &sk->__sk_common;
	__u16 family = skc->skc_family;

	if (sk->sk_protocol != IPPROTO_TCP)
		return false;

	__builtin_memset(key, 0, sizeof(*key));
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

static __always_inline struct tuple_val *tuple_get_or_create(const struct tuple_key *key)
{
	struct tuple_val *val, init = {};

	val = bpf_map_lookup_elem(&tuples, key);
	if (val)
		return val;
	init.born_ns = bpf_ktime_get_ns();
	/* -EEXIST means another CPU created it first: fine */
	if (bpf_map_update_elem(&tuples, key, &init, BPF_NOEXIST) == -E2BIG) {
		stat_inc(EPH_STAT_TUPLES_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&tuples, key);
}

/* the tuple a socket counts in, unless it expired or was made anew since */
static __always_inline struct tuple_val *tuple_of_sock(const struct sock_val *sv)
{
	struct tuple_val *val = bpf_map_lookup_elem(&tuples, &sv->key);

	if (!val || val->born_ns != sv->tuple_born) {
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

static __always_inline void active_open(const struct sock *sk, __u64 skaddr)
{
	struct sock_val sv = { .state = EPH_TCP_SYN_SENT };
	struct sock_val *stale;
	struct tuple_val *val;

	/* an entry already here is a socket whose CLOSE we missed: take its count back */
	stale = bpf_map_lookup_elem(&sockets, &skaddr);
	if (stale) {
		stat_inc(EPH_STAT_STALE_SOCKETS);
		val = tuple_of_sock(stale);
		if (val)
			state_add(val, stale->state, -1);
		bpf_map_delete_elem(&sockets, &skaddr);
	}
	if (!tuple_key_of(sk, &sv.key))
		return;
	val = tuple_get_or_create(&sv.key);
	if (!val)
		return;
	__sync_fetch_and_add(&val->connects, 1);
	/* lets user space forget tuples that went idle; a tuple only wakes up here */
	val->last_connect_ns = bpf_ktime_get_ns();
	/* the port is picked after this event unless bind() already took one */
	if (sk->__sk_common.skc_num)
		__sync_fetch_and_add(&val->bound_connects, 1);
	sv.tuple_born = val->born_ns;
	if (bpf_map_update_elem(&sockets, &skaddr, &sv, BPF_NOEXIST)) {
		stat_inc(EPH_STAT_SOCKETS_FULL);
		return;
	}
	state_add(val, EPH_TCP_SYN_SENT, 1);
}

/*
 * Moves the socket's unit from the state it is counted in (not the event's
 * oldstate) to the new one, so that an event the kernel skipped (a program does
 * not run while it already runs on that CPU) is repaired by the next one.
 */
static __always_inline void tracked_change(const struct sock *sk, __u64 skaddr, int oldstate,
					   int newstate)
{
	bool no_port = connect_got_no_port(sk, oldstate, newstate);
	struct tuple_val *val;
	struct sock_val *sv;

	sv = bpf_map_lookup_elem(&sockets, &skaddr);
	if (!sv) {
		/* not tracked (the socket map was full): still count the failure */
		struct tuple_key key;

		if (no_port && tuple_key_of(sk, &key) && (val = bpf_map_lookup_elem(&tuples, &key)))
			__sync_fetch_and_add(&val->failed_connects, 1);
		return;
	}
	val = tuple_of_sock(sv);
	if (val) {
		state_add(val, sv->state, -1);
		state_add(val, newstate, 1);
		if (no_port)
			__sync_fetch_and_add(&val->failed_connects, 1);
	}
	if (newstate == EPH_TCP_CLOSE)
		bpf_map_delete_elem(&sockets, &skaddr);
	else
		sv->state = newstate;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tuples_set_state, const struct sock *sk, int oldstate, int newstate)
{
	__u64 skaddr = (__u64)sk;

	if (oldstate == EPH_TCP_CLOSE && newstate == EPH_TCP_SYN_SENT)
		active_open(sk, skaddr);
	else
		tracked_change(sk, skaddr, oldstate, newstate);
	return 0;
}
