/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The ABI between the BPF programs (bpf/) and user space: keys, values, counters. */
#ifndef EPHPORT_TUPLES_H
#define EPHPORT_TUPLES_H

#ifndef __bpf__
#include <stdbool.h>
#include <sys/socket.h> /* AF_INET: the programs define it themselves (maps.bpf.h) */
#endif

#define MAX_TUPLES_DEFAULT 65536
#define MAX_PORTS	   65536 /* listening or bind()-ed ports, all namespaces */
#define MAX_LOCAL_TW	   65536 /* (netns, local port) with TIME_WAIT not owed to a tuple */
#define MAX_NETNS	   4096
/*
 * The tuples map is shared: once it is 3/4 full (TUPLES_SHARE_FROM), a namespace
 * holding a quarter of it (TUPLES_NS_SHARE) makes no new tuple, so that one pod
 * connecting to ever new destinations leaves room for the others. Counted per
 * namespace (ns_tuples) from half of that fill on.
 */
#define TUPLES_SHARE_FROM(max) ((max) - (max) / 4)
#define TUPLES_NS_SHARE(max)   ((max) / 4)
#define TUPLES_SHARE_MIN       64 /* a smaller map is not shared out */
#define MAX_FAILURES	       16384
#define MAX_DENIALS	       16384
#define MAX_OPENERS	       8192
#define MAX_GUARD_DST	       16384
#define MAX_GUARD_EXEMPT       256
#define MAX_QUOTA	       65536
#define MAX_SPREAD	       16    /* --spread addresses */
#define MAX_SPREADS	       16384 /* (chosen tuple, cgroup) pairs spread connects count in */
#define MAX_NS_LIMITS	       65536 /* namespaces with reserved or held ports, or spread addresses */

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
	EPH_STAT_TUPLES_FULL,	/* a new tuple did not fit in "tuples": not counted */
	EPH_STAT_TUPLE_MISSING, /* a socket's event found no tuple: a socket never counted */
	EPH_STAT_TIMEWAIT_FULL, /* a TIME_WAIT socket no tuple owns did not fit in "local_tw" */
	EPH_STAT_PORTS_FULL,	/* a listening or bound port did not fit in "ports" */
	EPH_STAT_FAILURES_FULL, /* a failing (tuple, process) did not fit in "failures" */
	EPH_STAT_NOTICES_LOST,	/* the ring buffer was full: a notice was not sent */
	EPH_STAT_DENIALS_FULL,	/* a refused (tuple, cgroup) did not fit in "denials" */
	EPH_STAT_QUOTA_FULL,	/* a (cgroup, destination) did not fit in "cg_ports" */
	EPH_STAT_FW2_FULL,	/* a FIN-WAIT-2 minisocket counted as TIME_WAIT: "fw2" full */
	EPH_STAT_BOUND_FULL,	/* a bind()-ed active open not counted as bound: "bound" full */
	EPH_STAT_CAUGHT,	/* state changes the main program missed and the backstop counted */
	EPH_STAT_CLAIMS_FULL,	/* a start-up claim did not fit: the walk counted the socket */
	EPH_STAT_RETIRE_RACES,	/* a connect() met its tuple as the agent forgot it */
	EPH_STAT_GUARD_STALE,	/* the guard let a connect through: the agent was not checking */
	EPH_STAT_NS_SHARE,	/* a new tuple not made: its namespace holds its share of the map */
	EPH_STAT_GUARD_DST_FULL, /* guard_dst 3/4 full: a destination waits for the agent */
	EPH_STAT_SPREADS_FULL,	 /* a spread (tuple, cgroup) did not fit in "spreads" */
	EPH_STAT_SPREAD_FAILED,	 /* bpf_bind() to the chosen source failed: judged unbound */
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
	__u64 born_ns;	       /* the agent's clock when the entry was made */
	__u64 last_connect_ns; /* the agent's clock at the latest active open */
	__u64 connects;	       /* active opens started (CLOSE -> SYN_SENT) */
	__u64 failed_connects; /* connect() that got no local port */
	__u64 bound_connects;  /* active opens whose port was bound before connect() */
	/*
	 * Sockets per TCP state, as ss lists them: TIME_WAIT minisockets in their
	 * TIME_WAIT sub-state in states[TIME_WAIT], those still in FIN-WAIT-2 in
	 * states[FIN_WAIT2] beside full sockets. Signed: a delta that came first shows.
	 */
	__s32 states[EPH_TCP_STATES];
	__s32 time_wait_ts; /* of states[TIME_WAIT]: those with TCP timestamps (tw_reuse-able) */
	__s32 bound;	    /* live sockets whose port was bind()-ed: that port is theirs alone */
	__u32 port_range;   /* ip_local_port_range at the last connect: low | high << 16 */
	__u8 tw_reuse;	    /* net.ipv4.tcp_tw_reuse at the last connect */
	__u8 pad[3];
	__u32 gen; /* the agent's check generation at its latest change (bpf/maps.bpf.h) */
	__u32 pad2;
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

/*
 * The container and pod the cgroup of a namespace's first process names (its
 * lowest pid: in a pod, usually its sandbox), packed: 64 hex digits in
 * container_id, the UID's 32 in pod_uid, each there when its has_ byte is 1
 */
struct netns_pod {
	__u8 container_id[32];
	__u8 pod_uid[16];
	__u8 has_container;
	__u8 has_pod;
	__u8 pad[6];
};

/* what the agent read inside a namespace, for "ephport query": the "netns_info" map */
struct netns_info {
	__s64 tw_kernel;  /* TIME_WAIT sockets per /proc/net/sockstat; -1 unknown */
	__u64 checked_ns; /* CLOCK_MONOTONIC of the reading */
	__u32 port_range; /* net.ipv4.ip_local_port_range: low | high << 16 */
	__u32 reserved;	  /* ports of net.ipv4.ip_local_reserved_ports inside it */
	__u32 max_tw;	  /* net.ipv4.tcp_max_tw_buckets */
	__u8 tw_reuse;	  /* net.ipv4.tcp_tw_reuse */
	__u8 pad[3];
	__u32 spread_local; /* bit i: --spread address i is local in it (netlink) */
	__u32 pad2;
	char path[64]; /* where the agent found it */
	struct netns_pod pod;
};

/*
 * What the programs need of a namespace the agent read: "ns_limits", an entry
 * only where one of them is not 0. With the tuple's own range and bound ports,
 * its capacity as docs/capacity.md has it (capacity_of below).
 */
struct ns_limits {
	__u32 reserved;	    /* ports of ip_local_reserved_ports inside the range */
	__u32 bound;	    /* ports inside the range held by listeners or bind() */
	__u32 spread_local; /* bit i: --spread address i is local here */
	__u32 pad;
};

/*
 * Start-up: how the programs count while the agent walks the namespaces that
 * existed before it (bpf/walk.bpf.c). A namespace the agent found before
 * attaching is NS_PENDING until its walk is done; in the one being walked,
 * ehash buckets below "walk_safe" are done.
 */
enum ns_phase {
	NS_PENDING = 1,
};

/*
 * Who counted a socket of a pending namespace: "claims". Keyed by the socket's
 * address, namespace and bucket, so that the agent dropping the claims of
 * buckets behind the walk never drops the claim of a socket that took the
 * same memory since, in a bucket the walk has not passed (bpf/startup.bpf.h).
 */
enum claim_kind {
	CLAIM_VISITED = 1, /* the walk counted it */
	CLAIM_EVENT,	   /* an event counted it (first seen by an event, or made since) */
	CLAIM_DEAD,	   /* a TIME_WAIT socket gone before the walk reached it */
};

/* a socket not in the established hash yet (connecting) or in the listening one */
#define CLAIM_NO_BUCKET 0xffffffffu

struct claim_key {
	__u64 addr;
	__u32 netns;
	__u32 bucket; /* ehash bucket: the agent drops claims below the walk's safe line */
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

/*
 * Connects the guard bound to a --spread source, per (the tuple it chose,
 * the socket's cgroup): "spreads". In audit mode, those it would have bound.
 */
struct spread_key {
	struct tuple_key tuple; /* saddr: the source chosen */
	__u64 cgroup_id;
};

struct spread_val {
	__u64 count;
	__u64 first_ns; /* bpf_ktime_get_ns() of the first and latest */
	__u64 last_ns;
	__u32 tgid; /* the latest one's */
	__u32 tid;
	__u32 uid;
	__s32 from_usage;    /* usage of the tuple it would have taken, at the latest */
	__u8 from_saddr[16]; /* that tuple's source */
	char comm[16];
};

/*
 * A ring buffer record: a (tuple, process) started failing, its counts in
 * "failures"; or a (tuple, cgroup) was first spread, its counts in "spreads".
 */
struct notice {
	__u32 type; /* enum notice_type */
	__u32 pad;
	union {
		struct fail_key key;	  /* NOTICE_FAILURE */
		struct spread_key spread; /* NOTICE_SPREAD */
	};
};

enum notice_type {
	NOTICE_FAILURE = 1,
	NOTICE_SPREAD,
};

_Static_assert(sizeof(struct spread_key) == sizeof(struct fail_key), "one size of notice");

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

/*
 * The agent checks twice a second. If its latest check is older than this
 * (it is stopped, or stalled), the limits the guard holds are stale: a connect
 * the guard would refuse goes through, counted (EPH_STAT_GUARD_STALE).
 */
#define GUARD_STALE_NS (5 * 1000000000ull)

/* values of "guard_exempt" */
#define EXEMPT_CGROUP  1 /* that cgroup only: the agent's own, which may be the root */
#define EXEMPT_SUBTREE 2 /* that cgroup and every cgroup below it: --exempt */

struct guard_key {
	__u32 netns;
	__u16 dport; /* host byte order */
	__u16 family;
	__u8 daddr[16];
};

/*
 * The programs add a destination themselves at the connect that takes its tuple
 * to the watch line (the lower of half the deny line and --spread-at); the
 * agent removes those no longer near it, and adds those brought there by a
 * change of capacity. The lines are computed from live counts at each connect.
 */
struct guard_val {
	struct tuple_key tuple; /* the most used tuple to it: its saddr */
};

/* a --spread address, in the programs' read-only data */
struct spread_addr {
	__u8 addr[16]; /* IPv4 in the first 4 bytes */
	__u16 family;  /* AF_INET or AF_INET6 */
	__u16 pad[3];
};

/* lines in millionths (--deny-at 0.98: 980000), the same in the programs and the agent */
#define PPM 1000000u

/* the usage at which a tuple of this capacity reaches a line: ceil(capacity * ppm / PPM), >= 1 */
static inline __u32 line_usage(__s64 capacity, __u32 ppm)
{
	__u64 u = capacity > 0 ? ((__u64)capacity * ppm + PPM - 1) / PPM : 0;

	return u ? (__u32)u : 1;
}

/*
 * A tuple's capacity (docs/capacity.md): the ports of its range, less the
 * reserved ones and those listeners or bind() hold, except its own bind()-ed
 * ports, which are in its usage already. range: low | high << 16.
 */
static inline __s64 capacity_of(__u32 range, __u32 reserved, __u32 bound, __s32 own)
{
	__s64 span = 0, held = bound;

	if (range && (range >> 16) >= (range & 0xffff))
		span = (__s64)(range >> 16) - (range & 0xffff) + 1;
	span -= reserved;
	if (own > 0)
		held -= own < held ? own : held;
	return span - held > 0 ? span - held : 0;
}

/* ::1 */
static inline bool addr6_is_loopback(const __u8 a[16])
{
	const __u32 *w = (const __u32 *)a;

	return !w[0] && !w[1] && !w[2] && !a[12] && !a[13] && !a[14] && a[15] == 1;
}

/* tcp_tw_reuse=2 applies when either end is a loopback address */
static inline bool tuple_is_loopback(const struct tuple_key *k)
{
	if (k->family == AF_INET)
		return k->saddr[0] == 127 || k->daddr[0] == 127;
	return addr6_is_loopback(k->saddr) || addr6_is_loopback(k->daddr);
}

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
	double spread_at; /* --spread-at; with nspread 0, no spreading */
	__u32 nspread;
	__u32 pad;
	struct spread_addr spread[MAX_SPREAD]; /* --spread, in the order given */
	char root[256];			       /* the cgroup the programs are attached to */
};

#endif /* EPHPORT_TUPLES_H */
