// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * nat_ct's parser and counts (user/nat_ct.c, nat_ct_agg.c): ctnetlink messages
 * built here with libmnl, as the kernel sends them, fed to nat_ct_handle; the
 * counts per NAT tuple, state and origin read back. Also a random run against a
 * plain model, the resync's sweep, and /proc/net/stat/nf_conntrack's parser.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nat_ct.h"
#include "nat_ct_int.h"

#define NS	4026531840u
#define NEW	1
#define UPDATE	2
#define DESTROY 3

/* a conntrack entry as a message shows it; addresses as strings */
struct ct {
	__u32 id, status;
	int family, proto, tcp_state; /* tcp_state -1: no CTA_PROTOINFO */
	int timeout;		      /* -1: no CTA_TIMEOUT */
	const char *osrc, *odst, *rsrc, *rdst;
	__u16 osport, odport, rsport, rdport;
};

/* a source-NATed tcp entry: 10.0.0.<client>:sport -> 198.18.1.2:80 as 198.18.1.1:xport */
static struct ct snat(__u32 id, const char *client, __u16 sport, __u16 xport, int state)
{
	return (struct ct){ .id = id,
			    .status = IPS_SRC_NAT | IPS_SRC_NAT_DONE | IPS_CONFIRMED,
			    .family = AF_INET,
			    .proto = IPPROTO_TCP,
			    .tcp_state = state,
			    .osrc = client,
			    .odst = "198.18.1.2",
			    .rsrc = "198.18.1.2",
			    .rdst = "198.18.1.1",
			    .osport = sport,
			    .odport = 80,
			    .rsport = 80,
			    .rdport = xport,
			    .timeout = 120 };
}

static void put_tuple(struct nlmsghdr *nlh, int type, const struct ct *c, const char *src,
		      const char *dst, __u16 sport, __u16 dport)
{
	struct nlattr *t = mnl_attr_nest_start(nlh, type), *n;
	__u8 a[16];

	n = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
	cr_assert_eq(inet_pton(c->family, src, a), 1);
	mnl_attr_put(nlh, c->family == AF_INET ? CTA_IP_V4_SRC : CTA_IP_V6_SRC,
		     c->family == AF_INET ? 4 : 16, a);
	cr_assert_eq(inet_pton(c->family, dst, a), 1);
	mnl_attr_put(nlh, c->family == AF_INET ? CTA_IP_V4_DST : CTA_IP_V6_DST,
		     c->family == AF_INET ? 4 : 16, a);
	mnl_attr_nest_end(nlh, n);
	n = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
	mnl_attr_put_u8(nlh, CTA_PROTO_NUM, c->proto);
	mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(sport));
	mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(dport));
	mnl_attr_nest_end(nlh, n);
	mnl_attr_nest_end(nlh, t);
}

/* the message the kernel sends for c: NEW, UPDATE or DESTROY (a dump reply is a NEW) */
static struct nlmsghdr *build(char *buf, int kind, const struct ct *c)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;
	struct nlattr *p, *tcp;

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) |
			  (kind == DESTROY ? IPCTNL_MSG_CT_DELETE : IPCTNL_MSG_CT_NEW);
	nlh->nlmsg_flags = kind == NEW ? NLM_F_CREATE | NLM_F_EXCL : 0;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = c->family;
	nfg->version = NFNETLINK_V0;
	put_tuple(nlh, CTA_TUPLE_ORIG, c, c->osrc, c->odst, c->osport, c->odport);
	put_tuple(nlh, CTA_TUPLE_REPLY, c, c->rsrc, c->rdst, c->rsport, c->rdport);
	mnl_attr_put_u32(nlh, CTA_ID, htonl(c->id));
	mnl_attr_put_u32(nlh, CTA_STATUS, htonl(c->status));
	if (c->timeout >= 0)
		mnl_attr_put_u32(nlh, CTA_TIMEOUT, htonl(c->timeout));
	if (c->tcp_state >= 0) {
		p = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
		tcp = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP);
		mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, c->tcp_state);
		mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, 7);
		mnl_attr_nest_end(nlh, tcp);
		mnl_attr_nest_end(nlh, p);
	}
	return nlh;
}

static char buf[8192];

static int feed(struct nat_ct *nat, int kind, struct ct c)
{
	return nat_ct_handle(nat, build(buf, kind, &c), false);
}

static struct nat_ct_key key_of(int proto, const char *saddr, const char *daddr, __u16 dport)
{
	struct nat_ct_key k = { .netns = NS, .protocol = proto, .family = AF_INET, .dport = dport };

	inet_pton(AF_INET, saddr, k.saddr);
	inet_pton(AF_INET, daddr, k.daddr);
	return k;
}

static const struct nat_ct_tuple *web(const struct nat_ct *nat)
{
	struct nat_ct_key k = key_of(IPPROTO_TCP, "198.18.1.1", "198.18.1.2", 80);

	return nat_ct_find(nat, &k);
}

static __u32 origin_count(const struct nat_ct *nat, const struct nat_ct_tuple *t, const char *a)
{
	__u8 addr[16] = { 0 };

	inet_pton(AF_INET, a, addr);
	for (const struct nat_ct_origin *o = nat_ct_next_origin(nat, t, NULL); o;
	     o = nat_ct_next_origin(nat, t, o))
		if (!memcmp(o->addr, addr, 16))
			return o->count;
	return 0;
}

Test(nat_ct, new_update_destroy_move_exactly_one_entry)
{
	struct nat_ct *nat = nat_ct_new(NS);
	const struct nat_ct_tuple *t;
	struct nat_ct_stats st;

	cr_assert_eq(feed(nat, NEW, snat(1, "10.0.0.2", 5000, 5000, TCP_CONNTRACK_SYN_SENT)), 0);
	cr_assert_eq(feed(nat, NEW, snat(2, "10.0.0.3", 5000, 6000, TCP_CONNTRACK_SYN_SENT)), 0);
	t = web(nat);
	cr_assert(t, "the tuple is (translated source, the reply's source and source port)");
	cr_assert_eq(t->usage, 2);
	cr_assert_eq(t->states[NAT_CT_SYN_SENT], 2);
	cr_assert_eq(t->norigins, 2);
	cr_assert_eq(origin_count(nat, t, "10.0.0.2"), 1);

	feed(nat, UPDATE, snat(1, "10.0.0.2", 5000, 5000, TCP_CONNTRACK_ESTABLISHED));
	cr_assert_eq(t->states[NAT_CT_SYN_SENT], 1);
	cr_assert_eq(t->states[NAT_CT_ESTABLISHED], 1);
	/* an update without protoinfo (a status change) keeps the state */
	feed(nat, UPDATE, snat(1, "10.0.0.2", 5000, 5000, -1));
	cr_assert_eq(t->states[NAT_CT_ESTABLISHED], 1);
	feed(nat, UPDATE, snat(1, "10.0.0.2", 5000, 5000, TCP_CONNTRACK_FIN_WAIT));
	cr_assert_eq(t->states[NAT_CT_OTHER], 1);
	feed(nat, UPDATE, snat(1, "10.0.0.2", 5000, 5000, TCP_CONNTRACK_TIME_WAIT));
	feed(nat, UPDATE, snat(2, "10.0.0.3", 5000, 6000, TCP_CONNTRACK_SYN_SENT2));
	cr_assert_eq(t->states[NAT_CT_TIME_WAIT], 1);
	cr_assert_eq(t->states[NAT_CT_SYN_SENT], 1);
	cr_assert_eq(t->states[NAT_CT_OTHER], 0);
	cr_assert_eq(t->usage, 2);

	/* a DESTROY carries no protoinfo on old kernels: the id alone decides */
	feed(nat, DESTROY, snat(2, "10.0.0.3", 5000, 6000, -1));
	cr_assert_eq(t->usage, 1);
	cr_assert_eq(t->norigins, 1);
	cr_assert_eq(origin_count(nat, t, "10.0.0.3"), 0);
	feed(nat, DESTROY, snat(2, "10.0.0.3", 5000, 6000, -1)); /* again: nothing */
	cr_assert_eq(t->usage, 1);
	feed(nat, UPDATE, snat(1, "10.0.0.2", 5000, 5000, TCP_CONNTRACK_CLOSE));
	cr_assert_eq(t->states[NAT_CT_CLOSE], 1);
	feed(nat, DESTROY, snat(1, "10.0.0.2", 5000, 5000, TCP_CONNTRACK_CLOSE));
	cr_assert_null(web(nat), "a tuple no entry counts in is gone");
	cr_assert_null(nat_ct_next_tuple(nat, NULL));
	nat_ct_get_stats(nat, &st);
	cr_assert_eq(st.entries, 0);
	cr_assert_eq(st.tuples, 0);
	cr_assert_eq(st.events, 11);
	cr_assert_eq(st.malformed, 0);
	nat_ct_close(nat);
}

Test(nat_ct, counts_only_source_nated_tcp_and_udp)
{
	struct nat_ct *nat = nat_ct_new(NS);
	struct ct c = snat(1, "10.0.0.2", 5000, 5000, TCP_CONNTRACK_ESTABLISHED);
	struct ct u = snat(2, "10.0.0.2", 5353, 1024, -1), icmp = u;
	struct nat_ct_key uk = key_of(IPPROTO_UDP, "198.18.1.1", "198.18.1.2", 53);
	struct nat_ct_stats st;

	c.status = IPS_CONFIRMED | IPS_DST_NAT | IPS_DST_NAT_DONE;
	cr_assert_eq(feed(nat, NEW, c), 0);
	cr_assert_null(web(nat), "destination NAT only: not counted");
	/* an entry that was counted and says it is not source-NATed no longer counts */
	feed(nat, NEW, snat(1, "10.0.0.2", 5000, 5000, TCP_CONNTRACK_ESTABLISHED));
	cr_assert_eq(web(nat)->usage, 1);
	feed(nat, UPDATE, c);
	cr_assert_null(web(nat));

	u.proto = IPPROTO_UDP;
	u.rsport = 53;
	feed(nat, NEW, u);
	cr_assert(nat_ct_find(nat, &uk));
	cr_assert_eq(nat_ct_find(nat, &uk)->states[NAT_CT_UDP], 1);
	icmp.id = 3;
	icmp.proto = IPPROTO_ICMP;
	feed(nat, NEW, icmp);
	nat_ct_get_stats(nat, &st);
	cr_assert_eq(st.entries, 1, "icmp is not counted");
	nat_ct_close(nat);
}

Test(nat_ct, ipv6_and_a_moved_tuple)
{
	struct nat_ct *nat = nat_ct_new(NS);
	struct ct c = { .id = 9,
			.status = IPS_SRC_NAT,
			.family = AF_INET6,
			.proto = IPPROTO_TCP,
			.tcp_state = TCP_CONNTRACK_ESTABLISHED,
			.osrc = "fd00::2",
			.odst = "2001:db8::1",
			.rsrc = "2001:db8::1",
			.rdst = "2001:db8::ff",
			.osport = 4000,
			.odport = 443,
			.rsport = 443,
			.rdport = 4000 };
	const struct nat_ct_tuple *t;
	struct nat_ct_key k = {
		.netns = NS, .protocol = IPPROTO_TCP, .family = AF_INET6, .dport = 443
	};

	inet_pton(AF_INET6, "2001:db8::ff", k.saddr);
	inet_pton(AF_INET6, "2001:db8::1", k.daddr);
	feed(nat, NEW, c);
	t = nat_ct_find(nat, &k);
	cr_assert(t);
	cr_assert_eq(t->states[NAT_CT_ESTABLISHED], 1);
	/* the same id under another translated address (a reused id): it moves */
	c.rdst = "2001:db8::fe";
	feed(nat, UPDATE, c);
	cr_assert_null(nat_ct_find(nat, &k));
	inet_pton(AF_INET6, "2001:db8::fe", k.saddr);
	cr_assert_eq(nat_ct_find(nat, &k)->usage, 1);
	nat_ct_close(nat);
}

Test(nat_ct, malformed_messages_count_nothing)
{
	struct nat_ct *nat = nat_ct_new(NS);
	struct ct c = snat(1, "10.0.0.2", 5000, 5000, TCP_CONNTRACK_ESTABLISHED);
	struct nlmsghdr *nlh = build(buf, NEW, &c);
	struct nat_ct_stats st;
	struct nlattr *a;

	/* CTA_ID cut to 2 bytes */
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) if (mnl_attr_get_type(a) == CTA_ID)
		a->nla_len = NLA_HDRLEN + 2;
	cr_assert_eq(nat_ct_handle(nat, nlh, false), -EINVAL);
	/* too short for its headers */
	nlh = build(buf, NEW, &c);
	nlh->nlmsg_len = NLMSG_HDRLEN + 2;
	cr_assert_eq(nat_ct_handle(nat, nlh, false), -EINVAL);
	/* an IPv4 address of 5 bytes */
	nlh = build(buf, NEW, &c);
	*(__u16 *)((char *)nlh + NLMSG_HDRLEN + 4 + 2 * NLA_HDRLEN) = NLA_HDRLEN + 5;
	cr_assert_eq(nat_ct_handle(nat, nlh, false), -EINVAL);
	nat_ct_get_stats(nat, &st);
	cr_assert_eq(st.malformed, 3);
	cr_assert_eq(st.entries, 0);
	cr_assert_null(nat_ct_next_tuple(nat, NULL));
	nat_ct_close(nat);
}

Test(nat_ct, a_resync_drops_what_its_dump_lacks_and_keeps_which_sent_events)
{
	struct nat_ct *nat = nat_ct_new(NS);
	struct nat_ct_stats st;

	for (__u32 id = 1; id <= 4; id++) {
		struct ct c = snat(id, "10.0.0.2", 5000 + id, 5000 + id, TCP_CONNTRACK_ESTABLISHED);

		nat_ct_handle(nat, build(buf, NEW, &c), true); /* the first dump */
	}
	nat_ct_get_stats(nat, &st);
	cr_assert_eq(st.dump_only, 4);
	feed(nat, UPDATE, snat(1, "10.0.0.2", 5001, 5001, TCP_CONNTRACK_TIME_WAIT));
	nat_ct_get_stats(nat, &st);
	cr_assert_eq(st.dump_only, 3, "an entry that sent an event sends them");
	/* a dump has 1 and 2 (2 now TIME_WAIT), and 5; 3 and 4 went while events were lost */
	nat->gen++;
	for (__u32 id = 1; id <= 5; id += id == 2 ? 3 : 1) {
		struct ct c = snat(id, "10.0.0.2", 5000 + id, 5000 + id,
				   id == 1 ? TCP_CONNTRACK_TIME_WAIT :
				   id == 2 ? TCP_CONNTRACK_TIME_WAIT :
					     TCP_CONNTRACK_SYN_SENT);

		cr_assert_eq(nat_ct_handle(nat, build(buf, NEW, &c), true), 0);
	}
	nat_agg_sweep(nat);
	nat_ct_get_stats(nat, &st);
	cr_assert_eq(st.entries, 3);
	cr_assert_eq(st.dump_only, 2, "2 and 5 are only in dumps; 1 kept its event");
	cr_assert_eq(web(nat)->states[NAT_CT_TIME_WAIT], 2);
	cr_assert_eq(web(nat)->states[NAT_CT_SYN_SENT], 1);
	cr_assert_eq(web(nat)->states[NAT_CT_ESTABLISHED], 0);
	nat_ct_close(nat);
}

static struct ct timed(__u32 id, int state, int timeout)
{
	struct ct c = snat(id, "10.0.0.2", 5000 + id, 5000 + id, state);

	c.timeout = timeout;
	return c;
}

Test(nat_ct, time_wait_and_close_stop_counting_when_their_timeout_passes)
{
	struct nat_ct *nat = nat_ct_new(NS);
	struct nat_ct_stats st;

	nat->now_s = 1000;
	feed(nat, NEW, timed(1, TCP_CONNTRACK_TIME_WAIT, 120));
	feed(nat, NEW, timed(2, TCP_CONNTRACK_ESTABLISHED, 10));
	feed(nat, NEW, timed(3, TCP_CONNTRACK_CLOSE, 10));
	feed(nat, NEW, timed(4, TCP_CONNTRACK_TIME_WAIT, 30));
	feed(nat, DESTROY, timed(4, -1, -1));
	nat->now_s = 1010;
	nat_agg_expire(nat);
	cr_assert_eq(web(nat)->usage, 3, "10 s left means up to 11");
	nat->now_s = 1011;
	nat_agg_expire(nat);
	cr_assert_eq(web(nat)->states[NAT_CT_CLOSE], 0);
	cr_assert_eq(web(nat)->states[NAT_CT_ESTABLISHED], 1, "its timer moves with packets");
	/* a refreshed timer; an update without one keeps it */
	nat->now_s = 1100;
	feed(nat, UPDATE, timed(1, TCP_CONNTRACK_TIME_WAIT, 120));
	feed(nat, UPDATE, timed(1, -1, -1));
	nat->now_s = 1200;
	nat_agg_expire(nat);
	cr_assert_eq(web(nat)->states[NAT_CT_TIME_WAIT], 1);
	nat->now_s = 1221;
	nat_agg_expire(nat);
	cr_assert_eq(web(nat)->states[NAT_CT_TIME_WAIT], 0);
	/* its late DESTROY, and a jump of more than the wheel */
	feed(nat, DESTROY, timed(1, -1, -1));
	feed(nat, UPDATE, timed(2, TCP_CONNTRACK_TIME_WAIT, 5));
	nat->now_s = 9000;
	nat_agg_expire(nat);
	nat_ct_get_stats(nat, &st);
	cr_assert_eq(st.expired, 3);
	cr_assert_eq(st.entries, 0);
	cr_assert_null(nat_ct_next_tuple(nat, NULL));
	nat_ct_close(nat);
}

/* a plain model: what each id counts as, summed up again at every check */
#define IDS	3000
#define CLIENTS 5
#define DESTS	4

struct model {
	bool live;
	int client, dest, state;
};

static void check_model(const struct nat_ct *nat, const struct model *m)
{
	__u32 want[DESTS][NAT_CT_NSTATES] = { { 0 } }, origins[DESTS][CLIENTS] = { { 0 } }, n = 0;

	for (int i = 0; i < IDS; i++)
		if (m[i].live) {
			want[m[i].dest][m[i].state]++;
			origins[m[i].dest][m[i].client]++;
		}
	for (int d = 0; d < DESTS; d++) {
		struct nat_ct_key k = key_of(IPPROTO_TCP, "198.18.1.1", "198.18.1.2", 80 + d);
		const struct nat_ct_tuple *t = nat_ct_find(nat, &k);
		__u32 usage = 0, norigins = 0;

		for (int s = 0; s < NAT_CT_NSTATES; s++)
			usage += want[d][s];
		if (!usage) {
			cr_assert_null(t);
			continue;
		}
		cr_assert(t);
		n++;
		cr_assert_eq(t->usage, usage);
		cr_assert_arr_eq(t->states, want[d], sizeof(want[d]));
		for (int c = 0; c < CLIENTS; c++) {
			char a[32];

			snprintf(a, sizeof(a), "10.0.0.%d", c + 1);
			cr_assert_eq(origin_count(nat, t, a), origins[d][c]);
			norigins += !!origins[d][c];
		}
		cr_assert_eq(t->norigins, norigins);
	}
	for (const struct nat_ct_tuple *t = nat_ct_next_tuple(nat, NULL); t;
	     t = nat_ct_next_tuple(nat, t))
		n--;
	cr_assert_eq(n, 0, "no tuple beyond the model's");
}

Test(nat_ct, random_events_agree_with_a_model)
{
	static const int tcp[] = { TCP_CONNTRACK_SYN_SENT, TCP_CONNTRACK_ESTABLISHED,
				   TCP_CONNTRACK_FIN_WAIT, TCP_CONNTRACK_TIME_WAIT,
				   TCP_CONNTRACK_CLOSE };
	static const int mapped[] = { NAT_CT_SYN_SENT, NAT_CT_ESTABLISHED, NAT_CT_OTHER,
				      NAT_CT_TIME_WAIT, NAT_CT_CLOSE };
	struct model *m = calloc(IDS, sizeof(*m));
	struct nat_ct *nat = nat_ct_new(NS);
	unsigned seed = 18;

	for (int step = 0; step < 200000; step++) {
		/* ids spread over the 32 bits, as the kernel's hashed ids are */
		int i = rand_r(&seed) % IDS, s = rand_r(&seed) % 5, kind = rand_r(&seed) % 3;
		char a[32];
		struct ct c;

		if (kind == 2) {
			feed(nat, DESTROY, snat(i * 2654435761u, "10.0.0.1", 1, 1, -1));
			m[i].live = false;
		} else {
			if (!m[i].live || rand_r(&seed) % 8 == 0) {
				m[i].client = rand_r(&seed) % CLIENTS;
				m[i].dest = rand_r(&seed) % DESTS;
			}
			snprintf(a, sizeof(a), "10.0.0.%d", m[i].client + 1);
			c = snat(i * 2654435761u, a, 1000 + i, 1000 + i, tcp[s]);
			c.rsport = c.odport = 80 + m[i].dest;
			cr_assert_eq(feed(nat, kind ? UPDATE : NEW, c), 0);
			m[i].live = true;
			m[i].state = mapped[s];
		}
		if (step % 20000 == 0)
			check_model(nat, m);
	}
	check_model(nat, m);
	for (int i = 0; i < IDS; i++)
		feed(nat, DESTROY, snat(i * 2654435761u, "10.0.0.1", 1, 1, -1));
	cr_assert_null(nat_ct_next_tuple(nat, NULL));
	nat_ct_close(nat);
	free(m);
}

Test(nat_ct, parses_a_message_in_well_under_a_microsecond)
{
	enum { N = 400000 };
	struct nat_ct *nat = nat_ct_new(NS);
	struct timespec t0, t1;
	struct nat_ct_stats st;
	static char msgs[4][512];
	double s;

	for (int k = 0; k < 4; k++) {
		struct ct c = snat(0, "10.0.0.2", 5000, 5000,
				   k == 1 ? TCP_CONNTRACK_ESTABLISHED : TCP_CONNTRACK_TIME_WAIT);

		build(msgs[k], k == 3 ? DESTROY : k ? UPDATE : NEW, &c);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (__u32 i = 0; i < N; i++) {
		/* 100,000 flows of NEW, UPDATE, UPDATE, DESTROY, 1,000 alive at a time */
		struct nlmsghdr *nlh = (struct nlmsghdr *)msgs[i % 4];
		struct nlattr *a;

		mnl_attr_for_each(a, nlh,
				  sizeof(struct nfgenmsg)) if (mnl_attr_get_type(a) == CTA_ID) *
			(__u32 *)mnl_attr_get_payload(a) = htonl((i / 4 % 1000) * 2654435761u);
		nat_ct_handle(nat, nlh, false);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s = t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	nat_ct_get_stats(nat, &st);
	cr_assert_eq(st.events, N);
	cr_assert_eq(st.entries, 0);
	cr_log_info("nat_ct: %.0f messages/s parsed and counted (%.0f ns each)", N / s,
		    s / N * 1e9);
	nat_ct_close(nat);
}

Test(nat_ct, sums_insert_failed_and_drop_over_cpus_by_column_name)
{
	/* 6.18's columns (clashres, chainlength), then 5.10's (searched, delete_list) */
	const char *v618 =
		"entries  clashres found new invalid ignore delete chainlength insert "
		"insert_failed "
		"drop early_drop icmp_error  expect_new expect_create expect_delete "
		"search_restart\n"
		"0000002a  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 "
		"00000010 00000011 00000001 00000000  00000000 00000000 00000000 00000000\n"
		"0000002a  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 "
		"000000f0 00000001 00000000 00000000  00000000 00000000 00000000 00000000\n";
	const char *v510 =
		"entries  searched found new invalid ignore delete delete_list insert "
		"insert_failed drop early_drop icmp_error  expect_new expect_create "
		"expect_delete search_restart\n"
		"00000001  00000000 00000000 00000000 00000000 00000000 00000000 00000000 "
		"00000000 00000002 00000003 00000000 00000000  00000000 00000000 00000000 "
		"00000000\n";
	struct nat_ct_kstats ks;

	cr_assert_eq(nat_ct_parse_kstats(v618, &ks), 0);
	cr_assert_eq(ks.insert_failed, 0x100);
	cr_assert_eq(ks.drop, 0x12);
	cr_assert_eq(ks.early_drop, 1);
	cr_assert_eq(nat_ct_parse_kstats(v510, &ks), 0);
	cr_assert_eq(ks.insert_failed, 2);
	cr_assert_eq(ks.drop, 3);
	cr_assert_eq(nat_ct_parse_kstats("entries drop\n", &ks), -EINVAL, "no insert_failed");
	cr_assert_eq(nat_ct_parse_kstats("insert_failed drop\n", &ks), -EINVAL, "no CPU line");
	cr_assert_eq(nat_ct_parse_kstats("insert_failed drop\n00000001 zz\n", &ks), -EINVAL);
}
