/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Kernel differences, in one place: layouts read with CO-RE ___old/___new
 * flavours, and helpers that only some kernels have, each with the change that
 * brought it. One object serves Linux 5.10 to 6.18 (docs/kernels.md).
 */
#ifndef EPHPORT_CORE_FIXES_BPF_H
#define EPHPORT_CORE_FIXES_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>

/*
 * ip_local_port_range: "ipv4: Use READ/WRITE_ONCE() for IP local_port_range"
 * (Linux 6.8) packed the pair into one u32, low port in the low 16 bits, read
 * without a lock; before it, int range[2] beside a seqlock. Both give
 * low | high << 16 here.
 */
struct netns_ipv4___old {
	struct {
		int range[2];
	} ip_local_ports;
} __attribute__((preserve_access_index));

struct net___old {
	struct netns_ipv4___old ipv4;
} __attribute__((preserve_access_index));

#define PORT_RANGE_PAIR bpf_core_field_exists(((struct netns_ipv4___old *)0)->ip_local_ports.range)

static __always_inline __u32 port_range_pair(const struct net *net)
{
	const struct net___old *old = (const void *)net;
	int lo = BPF_CORE_READ(old, ipv4.ip_local_ports.range[0]);
	int hi = BPF_CORE_READ(old, ipv4.ip_local_ports.range[1]);

	return (__u32)(lo & 0xffff) | (__u32)(hi & 0xffff) << 16;
}

/* net is a BTF pointer: on newer kernels a plain load */
static __always_inline __u32 port_range_of(const struct net *net)
{
	return PORT_RANGE_PAIR ? port_range_pair(net) : net->ipv4.ip_local_ports.range;
}

/* the same for a namespace found through a probe-read pointer */
static __always_inline __u32 port_range_read(const struct net *net)
{
	return PORT_RANGE_PAIR ? port_range_pair(net) :
				 BPF_CORE_READ(net, ipv4.ip_local_ports.range);
}

/*
 * The cgroup a socket was made in: "bpf, cgroups: Fix cgroup v2 fallback on
 * v1/v2 mixed mode" (8520e224f547, Linux 5.15) made sock_cgroup_data a plain
 * struct cgroup pointer. Before it a u64 held either that pointer or, with one
 * of its low two bits set, net_prio/net_cls data (the socket then counts in the
 * root cgroup, id 1).
 */
struct sock_cgroup_data___old {
	__u64 val;
} __attribute__((preserve_access_index));

static __always_inline __u64 sock_cgroup_id(const struct sock *sk)
{
	const struct cgroup *cg;

	if (bpf_core_field_exists(((struct sock_cgroup_data___old *)0)->val)) {
		const struct sock_cgroup_data___old *d = (const void *)&sk->sk_cgrp_data;
		__u64 v = BPF_CORE_READ(d, val);

		if (v & 3)
			return 1;
		cg = (const struct cgroup *)v;
		return cg ? BPF_CORE_READ(cg, kn, id) : 0;
	}
	/* plain loads: sk is a BTF pointer */
	cg = sk->sk_cgrp_data.cgroup;
	return cg ? cg->kn->id : 0;
}

/*
 * The ehash mask of a namespace's TCP hash table: the start-up walk goes through
 * its buckets in order. "tcp: Introduce optional per-netns ehash" (Linux 6.1)
 * and the kernels before it both reach it through tcp_death_row.hashinfo.
 */
static __always_inline __u32 ehash_mask_of(const struct net *net)
{
	const struct inet_hashinfo *h = BPF_CORE_READ(net, ipv4.tcp_death_row.hashinfo);

	return BPF_CORE_READ(h, ehash_mask);
}

/*
 * A map helper's error: until "bpf: return long from bpf_map_ops funcs" (Linux
 * 6.4) the map's op returned an int that reached the program zero-extended
 * (-E2BIG as 0xfffffff9 on 5.10 and 6.1, measured). Compare the low 32 bits.
 */
#define map_err(ret) ((int)(ret))

/*
 * Since "tcp: Restore fastreuse for connect() bound sockets" (Linux 6.17), the
 * TIME_WAIT socket of one whose port connect() chose carries tw_connect_bind:
 * proof of an active open with an ephemeral port. 1 yes, 0 no, -1 this kernel
 * cannot tell. A plain load: tw is a copy on the stack (timewait.bpf.h).
 */
static __always_inline int tw_connect_bound(const struct inet_timewait_sock *tw)
{
	if (!bpf_core_field_exists(struct inet_timewait_sock, tw_connect_bind))
		return -1;
	return BPF_CORE_READ_BITFIELD(tw, tw_connect_bind);
}

/*
 * Helpers some kernels lack. bpf_core_enum_value_exists() is resolved against
 * the running kernel's BTF at load time; the branch not taken is dead code the
 * verifier never checks, so a missing helper costs nothing.
 *
 * bpf_task_pt_regs: "bpf: Add bpf_task_pt_regs() helper" (Linux 5.15). Without
 * it, a failing connect() or bind() finds its arguments where the syscall entry
 * programs saved them.
 */
#define HAVE_TASK_PT_REGS bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs)

/*
 * bpf_set_retval: "bpf: Add cgroup helpers bpf_{get,set}_retval to get/set
 * syscall return value" (Linux 5.18). Without it, a connect() the guard refuses
 * fails with EPERM, whatever --deny-errno says.
 */
#define HAVE_SET_RETVAL bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_set_retval)

/*
 * Whether the program runs for a task or in an interrupt (a softirq, where the
 * network's and the timers' state changes come from): the kernel skips a
 * program that such an interrupt enters while it runs on that CPU, and the
 * backstop program must tell the two apart (bpf/count.bpf.c). x86-64 runs
 * interrupts and softirqs on the CPU's own stacks, so the tracepoint's arguments
 * lie on the task's stack exactly when the change is the task's. addr is their
 * address as a number (the verifier allows no arithmetic on the context
 * pointer itself); thread_size is the kernel's THREAD_SIZE, which the agent
 * reads from the kernel's config (32 KiB with KASAN). The per-CPU preempt count
 * would say it too, but a typed ksym needs CONFIG_KALLSYMS_ALL, which not every
 * kernel has; bpf_get_current_task_btf() came with Linux 5.11.
 */
#define HAVE_CURRENT_TASK_BTF \
	bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf)

static __always_inline bool in_interrupt_level(__u64 addr, __u64 thread_size)
{
	__u64 stack;

	if (HAVE_CURRENT_TASK_BTF)
		stack = (__u64)bpf_get_current_task_btf()->stack;
	else
		stack = (__u64)BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), stack);
	return addr - stack >= thread_size;
}

#endif /* EPHPORT_CORE_FIXES_BPF_H */
