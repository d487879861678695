/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The ABI between tuples.bpf.c and user space: keys, values, counters. */
#ifndef EPHPORT_TUPLES_H
#define EPHPORT_TUPLES_H

#define MAX_TUPLES_DEFAULT   65536
#define MAX_SOCKETS_DEFAULT  262144
#define MAX_TIMEWAIT_DEFAULT 262144
#define MAX_PORTS	     65536 /* listening or bind()-ed ports, all namespaces */
#define MAX_LOCAL_TW	     65536 /* (netns, local port) with TIME_WAIT not owed to a tuple */

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
	EPH_STAT_TIMEWAIT_FULL, /* a TIME_WAIT socket did not fit in "timewait" */
	EPH_STAT_PORTS_FULL,	/* a listening or bound port did not fit in "ports" */
	EPH_STAT_FAILURES_FULL, /* a failing (tuple, process) did not fit in "failures" */
	EPH_STAT_NOTICES_LOST,	/* the ring buffer was full: a notice was not sent */
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
	/*
	 * live sockets per TCP state, TIME_WAIT included (all TIME_WAIT minisockets,
	 * whatever their sub-state); signed so a lost update shows instead of wrapping
	 */
	__s32 states[EPH_TCP_STATES];
	__s32 time_wait_ts; /* of states[TIME_WAIT]: those with TCP timestamps (tw_reuse-able) */
	__s32 bound;	    /* live sockets whose port was bind()-ed: that port is theirs alone */
	__u32 port_range;   /* ip_local_port_range at the last connect: low | high << 16 */
	__u8 tw_reuse;	    /* net.ipv4.tcp_tw_reuse at the last connect */
	__u8 pad[3];
};

/* what a "sockets" entry is */
enum sock_kind {
	SOCK_ACTIVE = 1, /* an active open, counted in its tuple */
	SOCK_LISTENER,	 /* a listener: its port is skipped by every connect() */
};

/* one tracked socket, in "sockets" under the socket's address */
struct sock_val {
	struct tuple_key key; /* the tuple it counts in; listeners: netns only */
	__u64 tuple_born;     /* that tuple's born_ns: a tuple made anew is another one */
	__u32 state;	      /* the state it is counted in now */
	__u16 lport;	      /* local port, once chosen */
	__u8 kind;	      /* enum sock_kind */
	__u8 bound;	      /* counted in ports[netns, lport].bound and its tuple's bound */
	__u64 cgroup_id;      /* --quota: counted in cg_ports under this cgroup */
};

/*
 * One TIME_WAIT minisocket, as the established hash knows it. The first fields
 * are a struct tuple_key, so a client-side one finds its tuple without copying.
 */
struct tw_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 netns;
	__u16 dport;
	__u16 family;
	__u16 sport; /* local port, host byte order */
	__u16 pad;
};

/* where a TIME_WAIT socket is counted */
enum tw_side {
	TW_UNCLASSIFIED, /* made, its closing socket not seen yet: not counted */
	TW_CLIENT,	 /* closed first by an active open: its tuple's states[TIME_WAIT] */
	TW_SERVER,	 /* closed first by an accepted socket: local_tw[netns, local port] */
	TW_OTHER,	 /* from a socket ephport did not track: local_tw[netns, 0] */
	TW_GONE,	 /* the kernel has destroyed it */
};

struct tw_val {
	__u64 tuple_born; /* TW_CLIENT: the tuple's born_ns */
	__u64 born_ns;	  /* when ephport first saw it */
	__u32 side;	  /* enum tw_side, changed only with atomic exchanges */
	__u32 seen;	  /* the last start-up or repair walk that found it */
	__u8 ts;	  /* TCP timestamps were on: tcp_tw_reuse may reuse it */
	__s8 cbind;	  /* its port was chosen by connect(): 1, 0, or -1 unknown */
	__u8 pad[6];
};

/* input of the tw_forget program, which the agent runs after a repair walk */
struct tw_forget_args {
	struct tw_key key;
	__u64 born_ns; /* only the entry the agent saw, not one made since */
};

/* a port of one namespace: "ports" (held by listeners and bind()) and "local_tw" */
struct port_key {
	__u32 netns;
	__u16 port;
	__u16 pad;
};

struct port_val {
	__s32 listeners;
	__s32 bound;
};

/* what the agent read inside a namespace, for "ephport query": the "netns_info" map */
#define MAX_NETNS 4096
struct netns_info {
	__s64 tw_kernel;  /* TIME_WAIT sockets per /proc/net/sockstat; -1 unknown */
	__u64 checked_ns; /* CLOCK_MONOTONIC of the reading */
	__u32 port_range; /* net.ipv4.ip_local_port_range: low | high << 16 */
	__u32 reserved;	  /* ports of net.ipv4.ip_local_reserved_ports inside it */
	__u32 max_tw;	  /* net.ipv4.tcp_max_tw_buckets */
	__u8 tw_reuse;	  /* net.ipv4.tcp_tw_reuse */
	__u8 pad[3];
	char path[64]; /* where the agent found it */
};

/*
 * Failures attributed to a process: connect() failing with EADDRNOTAVAIL (no
 * local port for the tuple) and bind() to port 0 failing with EADDRINUSE (no
 * port left at all), counted in the kernel per (tuple, process) in "failures".
 */
enum fail_kind {
	FAIL_CONNECT = 1,
	FAIL_BIND,
	DENY_USAGE, /* the guard refused a connect(): the destination is near exhaustion */
	DENY_QUOTA, /* the guard refused a connect(): the cgroup holds its quota of ports */
};

#define MAX_FAILURES 16384
#define MAX_OPENERS  8192
#define MAX_CALLS    4096 /* threads inside a failing connect() or bind() at once */

struct fail_key {
	struct tuple_key tuple; /* FAIL_BIND: saddr is the bind() address, daddr and dport 0 */
	__u32 tgid;
	__u16 kind;    /* enum fail_kind */
	__u8 protocol; /* IPPROTO_TCP; FAIL_BIND: or IPPROTO_UDP */
	__u8 pad;
};

struct fail_val {
	__u64 count;	/* failures so far */
	__u64 first_ns; /* bpf_ktime_get_ns() of the first and latest */
	__u64 last_ns;
	__u64 cgroup_id; /* cgroup v2 id of the latest failing thread */
	__u32 tid;
	__u32 uid;
	char comm[16];
	/* the tuple at the latest failure (FAIL_CONNECT through the port search) */
	__s32 in_use;
	__s32 time_wait;
	__s32 time_wait_ts;
	__u32 port_range;
	__u8 tw_reuse;
	__u8 has_tuple; /* the four fields above are set */
	__u8 pad[2];
};

/*
 * Processes opening connections to tuples that use an eighth of their port range
 * or more ("openers", an LRU map): who to name when such a tuple runs short.
 */
struct opener_key {
	struct tuple_key tuple;
	__u32 tgid;
	__u32 pad;
};

struct opener_val {
	__u64 connects;
	__u64 cgroup_id;
	__u32 tid;
	__u32 uid;
	char comm[16];
};

/* a ring buffer record: a (tuple, process) started failing; its counts are in "failures" */
struct notice {
	__u32 type; /* NOTICE_FAILURE */
	__u32 pad;
	struct fail_key key;
};

enum notice_type {
	NOTICE_FAILURE = 1,
};

/*
 * The connect guard: cgroup/connect4 and connect6 programs refuse a TCP
 * connect() to a destination whose tuple is at the deny line, or from a cgroup
 * that holds its quota of ports to it. The agent keeps "guard_dst" for the
 * destinations near the line; any other connect() costs one failed lookup.
 */
enum guard_mode {
	GUARD_OFF,
	GUARD_ENFORCE,
	GUARD_AUDIT, /* decide and count, never refuse */
};

/* values of "guard_exempt" */
#define EXEMPT_CGROUP  1 /* that cgroup only: the agent's own, which may be the root */
#define EXEMPT_SUBTREE 2 /* that cgroup and every cgroup below it: --exempt */

#define MAX_GUARD_DST	 16384
#define MAX_GUARD_EXEMPT 256
#define MAX_QUOTA	 65536

struct guard_key {
	__u32 netns;
	__u16 dport; /* host byte order */
	__u16 family;
	__u8 daddr[16];
};

struct guard_val {
	struct tuple_key tuple; /* the most used tuple to it: its saddr */
	__u32 deny_usage;	/* refuse at this usage: ceil(capacity * --deny-at) */
	__u8 reuse;		/* TIME_WAIT with timestamps is reusable for these tuples */
	__u8 pad[3];
};

/* ports a cgroup holds to one destination (live sockets), for --quota */
struct quota_key {
	__u64 cgroup_id; /* the socket's cgroup */
	struct guard_key dst;
};

/* every refusal since the agent started, per (tuple, cgroup, reason): "denials" */
struct denial_key {
	struct tuple_key tuple;
	__u64 cgroup_id;
	__u16 kind; /* DENY_USAGE or DENY_QUOTA */
	__u16 pad[3];
};

/* the guard's settings, for "ephport query" and "ephport guard status" */
struct guard_info {
	__u32 mode; /* enum guard_mode */
	__u32 deny_errno;
	__u32 quota; /* 0: none */
	__u32 exempt;
	double deny_at;
	__u64 root_cgroup_id;
	char root[256]; /* the cgroup the programs are attached to */
};

#endif /* EPHPORT_TUPLES_H */
