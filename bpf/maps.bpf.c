// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The maps and globals more than one program uses, defined here once; the
 * other objects declare them extern (maps.bpf.h) and bpftool gen object links
 * them into one. Also the maps only the agent writes.
 */
#define EPH_MAPS_OWNER
#include "maps.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 guard_mode = GUARD_OFF;
const volatile __u32 guard_quota = 0;
const volatile __u32 max_tuples = MAX_TUPLES_DEFAULT;
const volatile __u32 deny_ppm = 980000;
const volatile __u32 spread_ppm = 700000;
const volatile __u32 watch_ppm = 490000;
__u32 guard_dst_count = 0;
__u64 tuples_count = 0;
__u32 startup = 0;
__u32 walk_netns = 0;
__u32 walk_safe = 0;
__u32 agent_gen = 1;
__u64 agent_clock_ns = 0;
__u64 changes_lost = 0;

/* what the agent read inside each namespace, pinned for "ephport query" */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_NETNS);
	__type(key, __u32);
	__type(value, struct netns_info);
} netns_info SEC(".maps");

/*
 * Differences the agent adds to "ns_tuples" (agent_tuples_share): it never
 * writes a count over, since a program may add to it at the same moment.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_NETNS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __s64);
} ns_tuples_adj SEC(".maps");

/* run by the agent over "ns_tuples_adj": each difference added where the programs add */
SEC("iter/bpf_map_elem")
int ns_tuples_adjust(struct bpf_iter__bpf_map_elem *ctx)
{
	const __u32 *key = ctx->key;
	const __s64 *delta = ctx->value;
	__s64 *n, zero = 0;
	__u32 netns;
	int err;

	if (!key || !delta)
		return 0;
	/* the key is a read-only buffer, which the map helpers do not take */
	netns = *key;
	n = lookup_or_init(&ns_tuples, &netns, &zero, &err);
	if (n)
		__sync_fetch_and_add(n, *delta);
	return 0;
}
