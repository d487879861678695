/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The ABI between tuples.bpf.c and user space: keys, values, counters. */
#ifndef EPHPORT_TUPLES_H
#define EPHPORT_TUPLES_H

#define MAX_TUPLES_DEFAULT  65536
#define MAX_SOCKETS_DEFAULT 262144

/* indexed by the kernel's TCP state numbers (TCP_ESTABLISHED = 1 ... TCP_NEW_SYN_RECV = 12) */
#define EPH_TCP_STATES 16

enum eph_tcp_state {
	EPH_TCP_ESTABLISHED = 1,
	EPH_TCP_SYN_SENT = 2,
	EPH_TCP_SYN_RECV = 3,
	EPH_TCP_FIN_WAIT1 = 4,
	EPH_TCP_FIN_WAIT2 = 5,
	EPH_TCP_TIME_WAIT = 6,
	EPH_TCP_CLOSE = 7,
	EPH_TCP_CLOSE_WAIT = 8,
	EPH_TCP_LAST_ACK = 9,
	EPH_TCP_LISTEN = 10,
	EPH_TCP_CLOSING = 11,
};

/* slots of the per-CPU counters map "stats" */
enum eph_stat {
	EPH_STAT_TUPLES_FULL,	/* a new tuple did not fit in "tuples" */
	EPH_STAT_SOCKETS_FULL,	/* an active open did not fit in "sockets" */
	EPH_STAT_TUPLE_MISSING, /* a tracked socket's tuple was gone or made anew */
	EPH_STAT_STALE_SOCKETS, /* a socket's CLOSE was never seen (a missed event) */
	EPH_STAT_MAX,
};

/*
 * One destination tuple as connect() sees it. IPv4 addresses (and IPv4-mapped
 * IPv6 ones, which draw on the same ports) sit in the first 4 bytes, family AF_INET.
 */
struct tuple_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 netns;  /* inode of the network namespace */
	__u16 dport;  /* host byte order */
	__u16 family; /* AF_INET or AF_INET6 */
};

struct tuple_val {
	__u64 born_ns;	       /* bpf_ktime_get_ns() when the entry was made: its generation */
	__u64 last_connect_ns; /* bpf_ktime_get_ns() of the latest active open */
	__u64 connects;	       /* active opens started (CLOSE -> SYN_SENT) */
	__u64 failed_connects; /* connect() that got no local port */
	__u64 bound_connects;  /* active opens whose port was bound before connect() */
	/* live sockets per TCP state; signed so a lost update shows instead of wrapping */
	__s32 states[EPH_TCP_STATES];
};

/* one tracked active open, in "sockets" under the socket's address */
struct sock_val {
	struct tuple_key key; /* the tuple it counts in */
	__u64 tuple_born;     /* that tuple's born_ns: a tuple made anew is another one */
	__u32 state;	      /* the state it is counted in now */
};

#endif /* EPHPORT_TUPLES_H */
