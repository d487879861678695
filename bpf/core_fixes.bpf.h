/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Kernel layouts that changed between versions, read with CO-RE in one place. */
#ifndef EPHPORT_CORE_FIXES_BPF_H
#define EPHPORT_CORE_FIXES_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>

/*
 * Older kernels keep ip_local_port_range as int range[2] beside a seqlock, in an
 * anonymous struct; newer ones (Linux 6.18 here) pack it in one u32, low port in
 * the low 16 bits, read without a lock. Both give low | high << 16 here.
 */
struct netns_ipv4___old {
	struct {
		int range[2];
	} ip_local_ports;
} __attribute__((preserve_access_index));

struct net___old {
	struct netns_ipv4___old ipv4;
} __attribute__((preserve_access_index));

static __always_inline __u32 port_range_of(const struct net *net)
{
	if (bpf_core_field_exists(((struct netns_ipv4___old *)0)->ip_local_ports.range)) {
		const struct net___old *old = (const void *)net;
		int lo = BPF_CORE_READ(old, ipv4.ip_local_ports.range[0]);
		int hi = BPF_CORE_READ(old, ipv4.ip_local_ports.range[1]);

		return (__u32)(lo & 0xffff) | (__u32)(hi & 0xffff) << 16;
	}
	/* a plain load: every caller holds a BTF pointer (tp_btf, iter, rdonly cast) */
	return net->ipv4.ip_local_ports.range;
}

/*
 * Since SOCK_CONNECT_BIND (Linux 6.17, "tcp: Restore fastreuse for connect()
 * bound sockets"), a socket whose port connect() chose carries that flag and its
 * TIME_WAIT socket carries tw_connect_bind: proof of an active open with an
 * ephemeral port. 1 yes, 0 no, -1 this kernel cannot tell.
 */
#define SOCK_CONNECT_BIND 16

static __always_inline int tw_connect_bound(const struct inet_timewait_sock *tw)
{
	if (!bpf_core_field_exists(struct inet_timewait_sock, tw_connect_bind))
		return -1;
	return BPF_CORE_READ_BITFIELD(tw, tw_connect_bind);
}

static __always_inline int sk_connect_bound(const struct sock *sk)
{
	if (!bpf_core_field_exists(struct inet_timewait_sock, tw_connect_bind))
		return -1;
	return (sk->sk_userlocks & SOCK_CONNECT_BIND) != 0;
}

#endif /* EPHPORT_CORE_FIXES_BPF_H */
