// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Prometheus metrics: --metrics-addr parsing, the text buffer, and the rendered exposition. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "metrics_http.h"
#include "pressure.h"

Test(metrics_addr, accepts_ipv4_ipv6_and_wildcard)
{
	struct metrics_addr a;
	const struct sockaddr_in *in = (const void *)&a.ss;
	const struct sockaddr_in6 *in6 = (const void *)&a.ss;

	cr_assert_eq(metrics_addr_parse("127.0.0.1:9979", &a), 0);
	cr_assert_eq(in->sin_family, AF_INET);
	cr_assert_eq(ntohs(in->sin_port), 9979);
	cr_assert_eq(in->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	cr_assert_not(a.any);

	cr_assert_eq(metrics_addr_parse("[::1]:80", &a), 0);
	cr_assert_eq(in6->sin6_family, AF_INET6);
	cr_assert_eq(ntohs(in6->sin6_port), 80);
	cr_assert(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));

	cr_assert_eq(metrics_addr_parse(":9979", &a), 0);
	cr_assert(a.any);
	cr_assert_eq(ntohs(in6->sin6_port), 9979);
	cr_assert_eq(metrics_addr_parse("127.0.0.1:0", &a), 0); /* a port the kernel picks */
	cr_assert_eq(metrics_addr_parse("[::ffff:10.1.2.3]:80", &a), 0);
	cr_assert_eq(in6->sin6_family, AF_INET6);
	cr_assert_eq(metrics_addr_parse("[fe80::1%lo]:80", &a), 0); /* its interface named */
	cr_assert_eq(in6->sin6_scope_id, 1);
}

Test(metrics_addr, refuses_malformed)
{
	const char *bad[] = { "", "9979", "nope", ":", "1.2.3.4:65536", "::1:80", "[::1:80",
			      "[]:80", "[1.2.3.4]:80", "1.2.3.4:x", "1.2.3.4:-1", "1.2.3.4: 80",
			      /* names, and what getaddrinfo() would take as numbers */
			      "localhost:80", "[localhost]:80", "1:9979", "127.1:80",
			      "0x7f.0.0.1:80", "1.2.3.4.5:80", " 1.2.3.4:80" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct metrics_addr a;

		cr_assert_eq(metrics_addr_parse(bad[i], &a), -EINVAL, "%s", bad[i]);
	}
}

Test(text, grows_past_its_first_block)
{
	struct text t = { 0 };

	for (int i = 0; i < 5000; i++)
		text_printf(&t, "line %d\n", i);
	cr_assert_not(t.oom);
	cr_assert(strstr(t.s, "line 0\nline 1\n") == t.s);
	cr_assert(strstr(t.s, "line 4999\n"));
	cr_assert_eq(strlen(t.s), t.len);
	text_free(&t);
	cr_assert_null(t.s);
}

static struct tuple make_tuple(__u32 netns, __u16 dport, __s64 in_use, __s64 tw, __s64 cap)
{
	struct tuple t = { 0 };

	t.key.family = AF_INET;
	t.key.netns = netns;
	t.key.dport = dport;
	inet_pton(AF_INET, "10.0.0.1", t.key.saddr);
	inet_pton(AF_INET, "10.0.0.2", t.key.daddr);
	t.val.states[EPH_TCP_ESTABLISHED] = in_use;
	t.val.states[EPH_TCP_TIME_WAIT] = tw;
	t.val.connects = in_use + tw;
	t.val.failed_connects = dport == 81 ? 7 : 0;
	t.in_use = in_use;
	t.time_wait = tw;
	t.usage = in_use + tw;
	t.capacity = cap;
	t.utilization = (double)t.usage / cap;
	return t;
}

/* the value of the one line that starts with prefix */
static double sample(const char *text, const char *prefix)
{
	const char *p = text, *hit = NULL;
	size_t n = strlen(prefix);

	for (; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, prefix, n) && p[n] == ' ') {
			cr_assert_null(hit, "two lines start with %s", prefix);
			hit = p;
		}
	cr_assert_not_null(hit, "no line starts with %s", prefix);
	return strtod(hit + n + 1, NULL);
}

Test(metrics_render, top_n_sums_and_levels)
{
	struct tuple items[3] = { make_tuple(7, 81, 90, 5, 100), make_tuple(7, 80, 40, 10, 100),
				  make_tuple(8, 80, 1, 0, 100) };
	struct tuple_list l = { .items = items, .len = 3, .seen = 3 };
	struct ns_summary ns[2] = {
		{ .inum = 7, .port_range = 40000 | 40099u << 16, .tw_tuples = 15, .tw_server = 2 },
		{ .inum = 8 }
	};
	struct ns_list nl = { .items = ns, .len = 2 };
	__u8 levels[3] = { LEVEL_CRITICAL, LEVEL_OK, LEVEL_OK };
	struct retired r = { .netns = 7, .connects = 1000, .failed = 3 };
	struct retired_set rs = { .items = &r, .len = 1, .cap = 1, .connects = 1500, .failed = 3 };
	struct metrics_view v = { .tuples = &l,
				  .ns = &nl,
				  .levels = levels,
				  .top = 2,
				  .retired = &rs,
				  .max_tuples = 100,
				  .version = "0.1.0" };
	struct text t = { 0 };
	const char *lbl = "{netns=\"7\",family=\"ipv4\",saddr=\"10.0.0.1\",daddr=\"10.0.0.2\","
			  "dport=\"81\"}";
	char name[256];

	metrics_render(&v, &t);
	cr_assert_not(t.oom);
	snprintf(name, sizeof(name), "ephport_tuple_in_use_sockets%s", lbl);
	cr_assert_eq(sample(t.s, name), 90);
	snprintf(name, sizeof(name), "ephport_tuple_utilization_ratio%s", lbl);
	cr_assert_float_eq(sample(t.s, name), 0.95, 1e-9);
	snprintf(name, sizeof(name), "ephport_tuple_pressure_level%s", lbl);
	cr_assert_eq(sample(t.s, name), 2);
	snprintf(name, sizeof(name), "ephport_tuple_failed_connects_total%s", lbl);
	cr_assert_eq(sample(t.s, name), 7);
	/* the third tuple is past --metrics-top: in the sums only */
	cr_assert_null(strstr(t.s, "ephport_tuple_in_use_sockets{netns=\"8\""));
	cr_assert_eq(sample(t.s, "ephport_tuples_exported"), 2);
	cr_assert_eq(sample(t.s, "ephport_tuples"), 3);
	cr_assert_eq(sample(t.s, "ephport_netns_in_use_sockets{netns=\"8\"}"), 1);
	cr_assert_eq(sample(t.s, "ephport_netns_in_use_sockets{netns=\"7\"}"), 130);
	/* counters add what expired tuples had, so they never go down */
	cr_assert_eq(sample(t.s, "ephport_netns_connects_total{netns=\"7\"}"), 1000 + 95 + 50);
	cr_assert_eq(sample(t.s, "ephport_netns_failed_connects_total{netns=\"7\"}"), 3 + 7);
	cr_assert_eq(sample(t.s, "ephport_connects_total"), 1500 + 95 + 50 + 1);
	cr_assert_eq(sample(t.s, "ephport_time_wait_sockets"), 17);
	cr_assert_eq(sample(t.s, "ephport_netns_port_range_first{netns=\"7\"}"), 40000);
	cr_assert_eq(sample(t.s, "ephport_netns_port_range_last{netns=\"7\"}"), 40099);
	/* a namespace whose range is unknown gets no range series */
	cr_assert_null(strstr(t.s, "ephport_netns_port_range_first{netns=\"8\"}"));
	cr_assert_eq(sample(t.s, "ephport_tuples_at_level{level=\"critical\"}"), 1);
	cr_assert_eq(sample(t.s, "ephport_tuples_at_level{level=\"warning\"}"), 0);
	cr_assert_float_eq(sample(t.s, "ephport_max_utilization_ratio"), 0.95, 1e-9);
	cr_assert_float_eq(sample(t.s, "ephport_tuples_map_fill_ratio"), 0.03, 1e-9);
	cr_assert_eq(sample(t.s, "ephport_build_info{version=\"0.1.0\"}"), 1);
	/* no guard: no denial series at all */
	cr_assert_null(strstr(t.s, "denials"));
	/* every family has its HELP and TYPE, once */
	cr_assert(strstr(t.s, "# HELP ephport_tuple_sockets "));
	cr_assert(strstr(t.s, "# TYPE ephport_connects_total counter\n"));
	cr_assert_null(strstr(strstr(t.s, "# TYPE ephport_tuples gauge") + 1,
			      "# TYPE ephport_tuples gauge"));
	text_free(&t);
}

Test(metrics_render, denials_when_the_guard_is_on)
{
	struct tuple items[1] = { make_tuple(7, 80, 99, 0, 100) };
	struct tuple_list l = { .items = items, .len = 1, .seen = 1 };
	struct ns_summary ns[1] = { { .inum = 7 } };
	struct ns_list nl = { .items = ns, .len = 1 };
	__u64 denials[1] = { 12 };
	/* 3 more refusals were of a tuple forgotten since: the sums keep them */
	struct netns_count by_netns[1] = { { .netns = 7, .count = 15 } };
	struct metrics_view v = { .tuples = &l,
				  .ns = &nl,
				  .denials = denials,
				  .denials_netns = by_netns,
				  .denials_nnetns = 1,
				  .denials_total = 15,
				  .top = 100,
				  .version = "0.1.0" };
	struct text t = { 0 };

	metrics_render(&v, &t);
	cr_assert_eq(sample(t.s, "ephport_denials_total"), 15);
	cr_assert_eq(sample(t.s, "ephport_netns_denials_total{netns=\"7\"}"), 15);
	cr_assert_eq(sample(t.s, "ephport_tuple_denials_total{netns=\"7\",family=\"ipv4\","
				 "saddr=\"10.0.0.1\",daddr=\"10.0.0.2\",dport=\"80\"}"),
		     12);
	text_free(&t);
}

Test(metrics_render, spread_connects_with_spread_only)
{
	struct tuple items[2] = { make_tuple(7, 80, 99, 0, 100), make_tuple(7, 81, 10, 0, 100) };
	struct tuple_list l = { .items = items, .len = 2, .seen = 2 };
	struct ns_summary ns[1] = { { .inum = 7 } };
	struct ns_list nl = { .items = ns, .len = 1 };
	__u64 spreads[2] = { 30, 0 };
	struct netns_count by_netns[1] = { { .netns = 7, .count = 30 } };
	struct metrics_view v = { .tuples = &l, .ns = &nl, .top = 100, .version = "0.1.0" };
	struct text t = { 0 };

	metrics_render(&v, &t);
	cr_assert_null(strstr(t.s, "spread"));
	text_free(&t);
	v.spreads = spreads;
	v.spreads_netns = by_netns;
	v.spreads_nnetns = 1;
	v.spreads_total = 30;
	metrics_render(&v, &t);
	cr_assert_eq(sample(t.s, "ephport_connects_spread_total"), 30);
	cr_assert_eq(sample(t.s, "ephport_netns_connects_spread_total{netns=\"7\"}"), 30);
	cr_assert_eq(sample(t.s, "ephport_tuple_connects_spread_total{netns=\"7\",family=\"ipv4\","
				 "saddr=\"10.0.0.1\",daddr=\"10.0.0.2\",dport=\"80\"}"),
		     30);
	text_free(&t);
}

Test(tuple_counts_sum, per_tuple_per_namespace_and_in_all)
{
	struct tuple items[2] = { make_tuple(7, 80, 99, 0, 100), make_tuple(8, 80, 1, 0, 100) };
	struct tuple_list l = { .items = items, .len = 2, .seen = 2 };
	struct item {
		struct tuple_key tuple;
		__u64 cgroup_id;
		__u64 count;
	} c[4] = { { items[1].key, 1, 5 },
		   { items[0].key, 1, 2 },
		   { items[0].key, 2, 3 },
		   { items[0].key, 3, 4 } };
	__u64 per_tuple[2], total;
	struct netns_count *ns = NULL;
	size_t nns = 0;

	/* a tuple forgotten since: in its namespace's sum and the total, in no tuple's */
	c[3].tuple.dport = 443;
	cr_assert_eq(tuple_counts_sum(c, 4, sizeof(c[0]), offsetof(struct item, count), &l,
				      per_tuple, &ns, &nns, &total),
		     0);
	cr_assert_eq(per_tuple[0], 5);
	cr_assert_eq(per_tuple[1], 5);
	cr_assert_eq(total, 14);
	cr_assert_eq(nns, 2);
	cr_assert_eq(ns[0].netns, 7);
	cr_assert_eq(ns[0].count, 9);
	cr_assert_eq(ns[1].count, 5);
	free(ns);
}

Test(retired, kept_per_live_namespace_and_in_total)
{
	struct retired_set rs = { 0 };
	struct tuple a = make_tuple(7, 80, 0, 0, 100), b = make_tuple(8, 81, 0, 0, 100);
	struct ns_summary ns[1] = { { .inum = 7 } };
	struct ns_list nl = { .items = ns, .len = 1 };

	a.val.connects = 10;
	b.val.connects = 5;
	cr_assert_eq(retired_add(&rs, &a), 0);
	cr_assert_eq(retired_add(&rs, &b), 0);
	cr_assert_eq(retired_add(&rs, &a), 0);
	cr_assert_eq(rs.len, 2);
	cr_assert_eq(rs.connects, 25);
	cr_assert_eq(rs.failed, 7);
	retired_prune(&rs, &nl); /* namespace 8 is gone: its series ends, the total keeps it */
	cr_assert_eq(rs.len, 1);
	cr_assert_eq(rs.items[0].netns, 7);
	cr_assert_eq(rs.items[0].connects, 20);
	cr_assert_eq(rs.connects, 25);
	retired_free(&rs);
}

/* the longest text --metrics-top allows: every label and value as long as it can be */
Test(metrics_render, the_largest_text_is_bounded)
{
	struct tuple *items = calloc(METRICS_TOP_MAX, sizeof(*items));
	__u8 *levels = calloc(METRICS_TOP_MAX, 1);
	__u64 *denials = calloc(METRICS_TOP_MAX, sizeof(*denials));
	struct tuple_list l = { .items = items, .len = METRICS_TOP_MAX, .seen = METRICS_TOP_MAX };
	struct ns_summary ns[1] = { { .inum = 4294967295u, .port_range = 1024 | 65535u << 16 } };
	struct ns_list nl = { .items = ns, .len = 1 };
	struct netns_count by_netns[1] = { { .netns = 4294967295u, .count = 123456789012345678 } };
	struct metrics_view v = { .tuples = &l,
				  .ns = &nl,
				  .levels = levels,
				  .denials = denials,
				  .denials_netns = by_netns,
				  .denials_nnetns = 1,
				  .denials_total = 123456789012345678,
				  .top = METRICS_TOP_MAX,
				  .max_tuples = 1u << 24,
				  .version = "0.1.0" };
	struct text t = { 0 };

	cr_assert(items && levels && denials);
	for (size_t i = 0; i < METRICS_TOP_MAX; i++) {
		struct tuple *tp = &items[i];

		tp->key.family = AF_INET6;
		tp->key.netns = 4294967295u;
		tp->key.dport = 65535;
		memset(tp->key.saddr, 0xfe, 16);
		memset(tp->key.daddr, 0xfe, 16);
		tp->key.daddr[15] = i;
		tp->key.daddr[14] = i >> 8;
		for (int s = 0; s < EPH_TCP_STATES; s++)
			tp->val.states[s] = 2147483647;
		tp->val.connects = tp->val.failed_connects = 123456789012345678;
		tp->in_use = tp->time_wait = tp->usage = 123456789012345;
		tp->capacity = 64511;
		tp->utilization = 0.123456789012345;
		levels[i] = LEVEL_EXHAUSTED;
		denials[i] = 123456789012345678;
	}
	metrics_render(&v, &t);
	cr_assert_not(t.oom);
	cr_assert_leq(t.len, METRICS_TEXT_MAX);
	text_free(&t);
	free(items);
	free(levels);
	free(denials);
}
