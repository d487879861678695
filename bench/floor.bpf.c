// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The benchmark's floor: the least a program on sock:inet_sock_set_state can
 * do, one per-CPU increment, and an empty cgroup/connect4 program (the guard's
 * hook). What ephport's programs cost above them is theirs.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} events SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(floor_set_state)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&events, &zero);

	if (n)
		*n += 1;
	return 0;
}

SEC("cgroup/connect4")
int floor_connect4(struct bpf_sock_addr *ctx)
{
	return 1;
}
