// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The capacity model and the /proc texts the agent reads inside a namespace. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "ephport.h"
#include "netns.h"

#define RANGE(lo, hi) ((__u32)(lo) | (__u32)(hi) << 16)

static struct tuple make(const char *dst, int established, int time_wait, int tw_ts)
{
	struct tuple t;

	memset(&t, 0, sizeof(t));
	t.key.family = AF_INET;
	t.key.netns = 7;
	inet_pton(AF_INET, "10.0.0.9", t.key.saddr);
	inet_pton(AF_INET, dst, t.key.daddr);
	t.key.dport = 80;
	t.val.states[EPH_TCP_ESTABLISHED] = established;
	t.val.states[EPH_TCP_TIME_WAIT] = time_wait;
	t.val.time_wait_ts = tw_ts;
	t.val.port_range = RANGE(40000, 40099);
	tuple_finish(&t);
	return t;
}

Test(capacity, range_alone)
{
	struct tuple t = make("10.0.0.1", 30, 20, 0);

	cr_assert_eq(t.capacity, 100);
	cr_assert_eq(t.time_wait, 20);
	cr_assert_eq(t.usage, 50);
	cr_assert_float_eq(t.utilization, 0.5, 1e-9);
}

Test(capacity, reserved_and_bound_ports_lower_it_but_not_own_bound)
{
	struct ns_summary ns = { .inum = 7, .has_info = true, .port_range = RANGE(40000, 40099) };
	struct tuple t = make("10.0.0.1", 10, 0, 0);

	ns.info.reserved = 5;
	ns.bound_in_range = 8;
	tuple_capacity(&t, &ns);
	cr_assert_eq(t.capacity, 100 - 5 - 8);
	t.val.bound = 3; /* three of the eight are this tuple's own sockets */
	tuple_capacity(&t, &ns);
	cr_assert_eq(t.capacity, 100 - 5 - 5);
	t.val.bound = 50; /* more than the namespace knows of: never adds capacity */
	tuple_capacity(&t, &ns);
	cr_assert_eq(t.capacity, 95);
}

Test(capacity, tw_reuse_modes)
{
	struct ns_summary ns = { .inum = 7, .has_info = true, .port_range = RANGE(40000, 40099) };
	struct tuple remote = make("10.0.0.1", 0, 40, 30);
	struct tuple lo = make("127.0.0.1", 0, 40, 30);

	ns.tw_reuse = 0;
	tuple_capacity(&remote, &ns);
	cr_assert_eq(remote.reusable, 0);
	cr_assert_eq(remote.usage, 40);
	ns.tw_reuse = 2; /* loopback only */
	tuple_capacity(&remote, &ns);
	tuple_capacity(&lo, &ns);
	cr_assert_eq(remote.reusable, 0);
	cr_assert_eq(lo.reusable, 30);
	cr_assert_eq(lo.usage, 10);
	ns.tw_reuse = 1;
	tuple_capacity(&remote, &ns);
	cr_assert_eq(remote.reusable, 30);
	/* never more reusable than there are TIME_WAIT sockets */
	remote.val.time_wait_ts = 99;
	tuple_capacity(&remote, &ns);
	cr_assert_eq(remote.reusable, 40);
	cr_assert_eq(remote.usage, 0);
}

Test(capacity, nothing_left_is_full_utilization)
{
	struct ns_summary ns = { .inum = 7, .has_info = true, .port_range = RANGE(40000, 40099) };
	struct tuple t = make("10.0.0.1", 2, 0, 0);

	ns.info.reserved = 100;
	tuple_capacity(&t, &ns);
	cr_assert_eq(t.capacity, 0);
	cr_assert_float_eq(t.utilization, 1.0, 1e-9);
	t.val.states[EPH_TCP_ESTABLISHED] = 0;
	tuple_finish(&t);
	tuple_capacity(&t, &ns);
	cr_assert_float_eq(t.utilization, 0.0, 1e-9);
}

Test(capacity, sorted_by_utilization)
{
	struct tuple items[3];
	struct tuple_list l = { .items = items, .len = 3, .cap = 3 };

	items[0] = make("10.0.0.1", 90, 0, 0);
	items[0].val.port_range = RANGE(1024, 65535);
	tuple_finish(&items[0]);
	items[1] = make("10.0.0.2", 50, 0, 0);
	items[2] = make("10.0.0.3", 60, 0, 0);
	tuple_list_sort(&l);
	cr_assert_eq(items[0].key.daddr[3], 3);
	cr_assert_eq(items[1].key.daddr[3], 2);
	cr_assert_eq(items[2].key.daddr[3], 1);
}

Test(reserved_ports, counts_inside_the_range_only)
{
	__u32 n = 99;

	cr_assert_eq(reserved_ports_count("\n", RANGE(40000, 40099), &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(reserved_ports_count("40010-40019,40090,50000\n", RANGE(40000, 40099), &n), 0);
	cr_assert_eq(n, 11);
	/* ranges cut at both ends of the port range */
	cr_assert_eq(reserved_ports_count("39990-40004,40095-40200", RANGE(40000, 40099), &n), 0);
	cr_assert_eq(n, 5 + 5);
	cr_assert_eq(reserved_ports_count("1-65535", RANGE(32768, 60999), &n), 0);
	cr_assert_eq(n, 28232);
}

Test(reserved_ports, rejects_garbage)
{
	__u32 n;

	cr_assert_eq(reserved_ports_count("80-", RANGE(1, 100), &n), -EINVAL);
	cr_assert_eq(reserved_ports_count("90-80", RANGE(1, 100), &n), -EINVAL);
	cr_assert_eq(reserved_ports_count("70000", RANGE(1, 100), &n), -EINVAL);
	cr_assert_eq(reserved_ports_count("80;81", RANGE(1, 100), &n), -EINVAL);
}

Test(sockstat, time_wait_field)
{
	__s64 tw = -1;

	cr_assert_eq(sockstat_time_wait("sockets: used 5\nTCP: inuse 5 orphan 0 tw 20 alloc 7 "
					"mem 1\nUDP: inuse 0 mem 0\n",
					&tw),
		     0);
	cr_assert_eq(tw, 20);
	cr_assert_eq(sockstat_time_wait("UDP: inuse 0\n", &tw), -EINVAL);
}

/* what netns_read_info() makes of the files it reads inside a namespace */
Test(netns_info, from_the_texts)
{
	struct netns_info info = { .tw_reuse = 9, .max_tw = 9 };

	cr_assert_eq(netns_info_parse(&info, "40000\t40099\n", "2\n", "262144\n",
				      "40010,40050-40059,50000\n",
				      "TCP: inuse 1 orphan 0 tw 3 alloc 2 mem 1\n"),
		     0);
	cr_assert_eq(PORT_LOW(info.port_range), 40000);
	cr_assert_eq(PORT_HIGH(info.port_range), 40099);
	cr_assert_eq(info.tw_reuse, 2);
	cr_assert_eq(info.max_tw, 262144);
	cr_assert_eq(info.reserved, 11);
	cr_assert_eq(info.tw_kernel, 3);

	/* what could not be read stays as it was */
	cr_assert_eq(netns_info_parse(&info, "1024 65535\n", NULL, NULL, NULL, NULL), 0);
	cr_assert_eq(info.tw_reuse, 2);
	cr_assert_eq(info.max_tw, 262144);
	cr_assert_eq(info.reserved, 0);
	cr_assert_eq(info.tw_kernel, -1);

	cr_assert_eq(netns_info_parse(&info, NULL, "1\n", NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(netns_info_parse(&info, "40000\n", NULL, NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(netns_info_parse(&info, "1 65536\n", NULL, NULL, NULL, NULL), -EINVAL);
}
