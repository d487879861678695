// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Address formatting and parsing, and the --src/--dst/--netns filters. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "ephport.h"

static void key_v4(struct tuple *t, const char *src, const char *dst, __u16 dport, __u32 netns)
{
	memset(t, 0, sizeof(*t));
	t->key.family = AF_INET;
	inet_pton(AF_INET, src, t->key.saddr);
	inet_pton(AF_INET, dst, t->key.daddr);
	t->key.dport = dport;
	t->key.netns = netns;
}

static void key_v6(struct tuple *t, const char *src, const char *dst, __u16 dport, __u32 netns)
{
	memset(t, 0, sizeof(*t));
	t->key.family = AF_INET6;
	inet_pton(AF_INET6, src, t->key.saddr);
	inet_pton(AF_INET6, dst, t->key.daddr);
	t->key.dport = dport;
	t->key.netns = netns;
}

Test(addr, format_v4_and_v6)
{
	__u8 a[16] = { 10, 1, 2, 3 };
	char buf[EPH_ADDRSTRLEN];

	cr_assert_eq(addr_format(AF_INET, a, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "10.1.2.3");
	inet_pton(AF_INET6, "2001:db8::1", a);
	cr_assert_eq(addr_format(AF_INET6, a, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "2001:db8::1");
	cr_assert_eq(addr_format(AF_UNIX, a, buf, sizeof(buf)), -EAFNOSUPPORT);
}

Test(addr, parse_maps_v4mapped_to_v4)
{
	__u8 a[16];
	__u8 want[16] = { 192, 0, 2, 7 };
	__u16 fam;

	cr_assert_eq(addr_parse("::ffff:192.0.2.7", &fam, a), 0);
	cr_assert_eq(fam, AF_INET);
	cr_assert_arr_eq(a, want, 16);
	cr_assert_eq(addr_parse("192.0.2.7", &fam, a), 0);
	cr_assert_eq(fam, AF_INET);
	cr_assert_arr_eq(a, want, 16);
	cr_assert_eq(addr_parse("::1", &fam, a), 0);
	cr_assert_eq(fam, AF_INET6);
	cr_assert_eq(a[15], 1);
	cr_assert_eq(addr_parse("localhost", &fam, a), -EINVAL);
	cr_assert_eq(addr_parse("1.2.3.256", &fam, a), -EINVAL);
	cr_assert_eq(addr_parse("", &fam, a), -EINVAL);
}

Test(filter, dst_forms)
{
	struct tuple_filter f = { 0 };

	cr_assert_eq(filter_parse_dst(&f, "10.0.0.1"), 0);
	cr_assert(f.dst_set && !f.dport_set);
	cr_assert_eq(f.dst_family, AF_INET);

	memset(&f, 0, sizeof(f));
	cr_assert_eq(filter_parse_dst(&f, "10.0.0.1:8080"), 0);
	cr_assert(f.dport_set);
	cr_assert_eq(f.dport, 8080);

	memset(&f, 0, sizeof(f));
	cr_assert_eq(filter_parse_dst(&f, "[2001:db8::5]:443"), 0);
	cr_assert_eq(f.dst_family, AF_INET6);
	cr_assert_eq(f.dport, 443);
	cr_assert_eq(f.dst[15], 5);

	memset(&f, 0, sizeof(f));
	cr_assert_eq(filter_parse_dst(&f, "2001:db8::5"), 0);
	cr_assert(!f.dport_set);

	memset(&f, 0, sizeof(f));
	cr_assert_eq(filter_parse_dst(&f, "[::1]"), 0);
	cr_assert(!f.dport_set);

	memset(&f, 0, sizeof(f));
	cr_assert_eq(filter_parse_dst(&f, "[::ffff:10.0.0.1]:80"), 0);
	cr_assert_eq(f.dst_family, AF_INET);
	cr_assert_eq(f.dst[0], 10);
}

/* the last --dst is the filter: one without a port after one with a port has none */
Test(filter, a_later_dst_replaces_all_of_an_earlier_one)
{
	struct tuple_filter f = { 0 };

	cr_assert_eq(filter_parse_dst(&f, "[2001:db8::9]:9"), 0);
	cr_assert_eq(filter_parse_dst(&f, "10.0.0.1"), 0);
	cr_assert(f.dst_set && !f.dport_set);
	cr_assert_eq(f.dport, 0);
	cr_assert_eq(f.dst_family, AF_INET);
	cr_assert_eq(filter_parse_dst(&f, "10.0.0.2:80"), 0);
	cr_assert_eq(filter_parse_dst(&f, "10.0.0.3:x"), -EINVAL);
	cr_assert(f.dport_set && f.dport == 80 && f.dst[3] == 2); /* a bad one changes nothing */
}

Test(filter, dst_rejects)
{
	const char *bad[] = { "",	   "10.0.0.1:",	     "10.0.0.1:0",  "10.0.0.1:65536",
			      "[::1",	   "[::1]x",	     "[::1]:",	    "[]:80",
			      "host:80",   "10.0.0.1:80:90", "10.0.0.1:-1", "10.0.0.1: 80",
			      "[10.0.0.1", "::1:80x" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tuple_filter f = { 0 };

		cr_expect_eq(filter_parse_dst(&f, bad[i]), -EINVAL, "accepted '%s'", bad[i]);
	}
}

Test(filter, netns_forms)
{
	struct tuple_filter f = { 0 };

	cr_assert_eq(filter_parse_netns(&f, "4026531840"), 0);
	cr_assert_eq(f.netns, 4026531840u);
	cr_assert_eq(filter_parse_netns(&f, "net:[4026532000]"), 0);
	cr_assert_eq(f.netns, 4026532000u);
	cr_assert_eq(filter_parse_netns(&f, "0"), -EINVAL);
	cr_assert_eq(filter_parse_netns(&f, "4294967296"), -EINVAL);
	cr_assert_eq(filter_parse_netns(&f, "net:[]"), -EINVAL);
	cr_assert_eq(filter_parse_netns(&f, "net:[12"), -EINVAL);
	cr_assert_eq(filter_parse_netns(&f, "12ab"), -EINVAL);
}

Test(filter, match)
{
	struct tuple_filter f = { 0 };
	struct tuple v4, v6;

	key_v4(&v4, "10.0.0.9", "10.0.0.1", 80, 100);
	key_v6(&v6, "fd00::9", "fd00::1", 80, 100);
	cr_assert(filter_match(&f, &v4) && filter_match(&f, &v6));

	filter_parse_dst(&f, "10.0.0.1:80");
	cr_assert(filter_match(&f, &v4));
	cr_assert(!filter_match(&f, &v6));
	f.dport = 81;
	cr_assert(!filter_match(&f, &v4));

	memset(&f, 0, sizeof(f));
	filter_parse_src(&f, "fd00::9");
	cr_assert(filter_match(&f, &v6));
	cr_assert(!filter_match(&f, &v4));

	memset(&f, 0, sizeof(f));
	filter_parse_netns(&f, "101");
	cr_assert(!filter_match(&f, &v4));
	filter_parse_netns(&f, "100");
	cr_assert(filter_match(&f, &v4));
}
