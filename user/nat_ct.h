/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Source-NATed conntrack entries of one network namespace, counted per NAT tuple
 * (nat_ct.c: the ctnetlink sockets, dump and resync; nat_ct_agg.c: the counts).
 *
 * A NAT tuple is (netns, protocol, family, translated source address, destination
 * address, destination port), the destination as the translated flow carries it
 * (the reply direction's source: the real peer also under DNAT). Counted are the
 * entries whose status has IPS_SRC_NAT, each by its conntrack id, so that an
 * UPDATE or DESTROY moves or removes exactly what that entry counted.
 *
 * Events come through a socket subscribed to the NEW/UPDATE/DESTROY groups with a
 * classic BPF filter that drops what is not source-NATed in the kernel. A full
 * dump starts the counts; after ENOBUFS (events lost) the socket is drained and
 * dumped again, so the counts never drift. Entries only ever seen in a dump may
 * send no events (nf_conntrack_events 2 gives none to entries made while nobody
 * listened, 0 none at all): while any are counted, nat_ct_process dumps again
 * every resync interval.
 */
#ifndef EPHPORT_NAT_CT_H
#define EPHPORT_NAT_CT_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

struct nlmsghdr;

/* the states an entry counts in (tcp: the first five; udp: the last) */
enum nat_ct_state {
	NAT_CT_SYN_SENT,    /* SYN_SENT, SYN_SENT2 */
	NAT_CT_ESTABLISHED, /* ESTABLISHED */
	NAT_CT_TIME_WAIT,   /* TIME_WAIT */
	NAT_CT_CLOSE,	    /* CLOSE */
	NAT_CT_OTHER,	    /* SYN_RECV, FIN_WAIT, CLOSE_WAIT, LAST_ACK, NONE */
	NAT_CT_UDP,	    /* any udp entry */
	NAT_CT_NSTATES,
};

/* addresses in network order; an IPv4 one in the first 4 bytes, the rest 0 */
struct nat_ct_key {
	__u8 saddr[16]; /* translated source: the reply direction's destination */
	__u8 daddr[16]; /* destination: the reply direction's source */
	__u32 netns;	/* inode number of the namespace */
	__u16 dport;	/* host order: the reply direction's source port */
	__u8 protocol;	/* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;	/* AF_INET or AF_INET6 */
};

struct nat_ct_tuple {
	struct nat_ct_key key;
	__u32 usage; /* entries counted: the translated ports held */
	__u32 states[NAT_CT_NSTATES];
	__u32 norigins;
	__u32 first_origin; /* internal: list head, + 1 */
};

/* a pre-NAT source address (the original direction's source) and its entries */
struct nat_ct_origin {
	__u8 addr[16];
	__u32 count;
	__u32 tuple, prev, next; /* internal */
};

struct nat_ct_stats {
	__u64 events;	   /* event messages read */
	__u64 dumped;	   /* entries read from dumps */
	__u64 dumps;	   /* full dumps: the first, and every resync */
	__u64 enobufs;	   /* times events were lost */
	__u64 malformed;   /* messages that could not be parsed */
	__u64 expired;	   /* TIME_WAIT/CLOSE entries past their timeout, before the kernel's GC */
	__u64 entries;	   /* source-NATed entries counted now */
	__u64 tuples;	   /* NAT tuples now */
	__u64 dump_only;   /* entries not seen in an event since the latest dump */
	__u64 dump_ns;	   /* duration of the latest dump */
	int events_sysctl; /* nf_conntrack_events in the namespace, -1 unknown */
};

/* from /proc/net/stat/nf_conntrack, summed over CPUs */
struct nat_ct_kstats {
	__u64 insert_failed; /* a NAT (or clash) failed at confirm */
	__u64 drop;	     /* packets dropped for it */
	__u64 early_drop;
};

struct nat_ct_opts {
	int rcvbuf;	    /* event socket's SO_RCVBUF(FORCE); 0: 32 MiB */
	unsigned resync_ms; /* while dump-only entries exist, dump again this often; 0: 30 s */
};

struct nat_ct;

/*
 * Call while inside the namespace: the sockets and the stat file stay in it.
 * Opens, filters, subscribes and dumps. NULL with errno set on failure.
 */
struct nat_ct *nat_ct_open(__u32 netns_inum, const struct nat_ct_opts *opts);
/* counts only, no sockets: for tests feeding nat_ct_handle */
struct nat_ct *nat_ct_new(__u32 netns_inum);
void nat_ct_close(struct nat_ct *nat);

/* the event socket's fd, to poll for POLLIN */
int nat_ct_fd(const struct nat_ct *nat);
/*
 * Reads the pending events (at most max_msgs; 0: until none), dumps again after
 * ENOBUFS or when the resync interval is due. Messages handled, or -errno. Call
 * it when the fd is readable and also on a timer (a second or so): with dump-only
 * entries, or nf_conntrack_events 0 at open, the due dumps come from the timer.
 */
int nat_ct_process(struct nat_ct *nat, unsigned max_msgs);
/* drains the event socket, dumps, drops the entries the dump did not have */
int nat_ct_resync(struct nat_ct *nat);

/* one ctnetlink conntrack message (event or dump reply); 0, or -EINVAL malformed */
int nat_ct_handle(struct nat_ct *nat, const struct nlmsghdr *nlh, bool from_dump);

/* each message of an event datagram, as one recv gives it */
void nat_ct_handle_datagram(struct nat_ct *nat, const void *buf, size_t len);

/* the tuples, in no order: prev NULL gives the first; NULL at the end */
const struct nat_ct_tuple *nat_ct_next_tuple(const struct nat_ct *nat,
					     const struct nat_ct_tuple *prev);
const struct nat_ct_origin *nat_ct_next_origin(const struct nat_ct *nat,
					       const struct nat_ct_tuple *t,
					       const struct nat_ct_origin *prev);
/* the tuple with this key, or NULL */
const struct nat_ct_tuple *nat_ct_find(const struct nat_ct *nat, const struct nat_ct_key *key);

void nat_ct_get_stats(const struct nat_ct *nat, struct nat_ct_stats *st);
/* reads the namespace's /proc/net/stat/nf_conntrack (kept open); 0 or -errno */
int nat_ct_read_kstats(struct nat_ct *nat, struct nat_ct_kstats *ks);
/* parses that file's text: named columns, one hex line per CPU; 0 or -EINVAL */
int nat_ct_parse_kstats(const char *text, struct nat_ct_kstats *ks);

/* names for JSON and metrics: "syn_sent", ... "udp" */
const char *nat_ct_state_name(enum nat_ct_state s);

#endif /* EPHPORT_NAT_CT_H */
