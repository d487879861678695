// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Failures attributed to processes. On the way out of connect() and bind(),
 * EADDRNOTAVAIL from connect() (no local port for the tuple) and EADDRINUSE
 * from a bind() to port 0 (no port at all) are counted per (tuple, process) in
 * "failures". A (tuple, process) seen for the first time also sends a notice, so
 * the agent reports it at once; the counts stay exact when notices are lost.
 * The tuple and its counts come from the port search that failed in the same
 * call (bpf/count.bpf.c leaves them in "calls").
 */
#include "maps.bpf.h"
#include "failures.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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

/*
 * A failing call finds its arguments in the registers its thread saved on entry
 * (64-bit system calls; a 32-bit process's failures without a port search are
 * not attributed), or where the entry programs below kept them.
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
