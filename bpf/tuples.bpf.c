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

/* max_entries of both hash maps are set by the loader (--max-tuples, --max-sockets) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TUPLES_DEFAULT);
	__type(key, struct tuple_key);
	__type(value, struct tuple_val);
} tuples SEC(".maps");

/* tracked active opens: socket address -> unused; allocated on demand */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SOCKETS_DEFAULT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u8);
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
	static const struct tuple_val zero;
	struct tuple_val *val;

	val = bpf_map_lookup_elem(&tuples, key);
	if (val)
		return val;
	/* -EEXIST means another CPU created it first: fine */
	if (bpf_map_update_elem(&tuples, key, &zero, BPF_NOEXIST) == -E2BIG) {
		stat_inc(EPH_STAT_TUPLES_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&tuples, key);
}

static __always_inline void state_add(struct tuple_val *val, int state, int delta)
{
	__u64 idx = (__u32)state;

	if (idx >= EPH_TCP_STATES || idx == EPH_TCP_CLOSE)
		return;
	/* clang tests a copy of idx; the mask bounds the register that indexes */
	barrier_var(idx);
	idx &= EPH_TCP_STATES - 1;
	__sync_fetch_and_add(&val->states[idx], delta);
}

static __always_inline void active_open(const struct sock *sk, __u64 skaddr)
{
	static const __u8 one = 1;
	struct tuple_key key;
	struct tuple_val *val;

	if (!tuple_key_of(sk, &key))
		return;
	val = tuple_get_or_create(&key);
	if (!val)
		return;
	__sync_fetch_and_add(&val->connects, 1);
	/* lets user space forget tuples that went idle; a tuple only wakes up here */
	val->last_connect_ns = bpf_ktime_get_ns();
	/* the port is picked after this event unless bind() already took one */
	if (sk->__sk_common.skc_num)
		__sync_fetch_and_add(&val->bound_connects, 1);
	if (bpf_map_update_elem(&sockets, &skaddr, &one, BPF_ANY)) {
		stat_inc(EPH_STAT_SOCKETS_FULL);
		return;
	}
	state_add(val, EPH_TCP_SYN_SENT, 1);
}

static __always_inline void tracked_change(const struct sock *sk, __u64 skaddr, int oldstate,
					   int newstate)
{
	bool tracked = bpf_map_lookup_elem(&sockets, &skaddr) != NULL;
	/*
	 * connect() gave up before a port was assigned: EADDRNOTAVAIL. inet_sport, not
	 * skc_num: going to CLOSE releases the port and zeroes skc_num before this event.
	 */
	bool no_port = oldstate == EPH_TCP_SYN_SENT && newstate == EPH_TCP_CLOSE &&
		       !BPF_CORE_READ((const struct inet_sock *)sk, inet_sport);
	struct tuple_key key;
	struct tuple_val *val;

	if (!tracked && !no_port)
		return;
	if (tracked && newstate == EPH_TCP_CLOSE)
		bpf_map_delete_elem(&sockets, &skaddr);
	if (!tuple_key_of(sk, &key))
		return;
	val = bpf_map_lookup_elem(&tuples, &key);
	if (!val) {
		if (tracked)
			stat_inc(EPH_STAT_TUPLE_MISSING);
		return;
	}
	if (tracked) {
		state_add(val, oldstate, -1);
		state_add(val, newstate, 1);
	}
	if (no_port)
		__sync_fetch_and_add(&val->failed_connects, 1);
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
