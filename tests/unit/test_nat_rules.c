// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* nat_rules.c: nftables JSON and text listings of NAT rules, the range a tuple draws from,
 * --nat-range and ip_tables_names. The ruleset below is what nft 1.0.6 listed for a
 * namespace with native rules, iptables-nft rules (table ip nat, chain POSTROUTING), an
 * inet table and a nat chain at the input hook. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "nat_rules.h"

static const char ruleset_json[] = "{\"nftables\":[{\"metainfo\":{\"version\":\"1.0.6\",\"release_"
				   "name\":\"Lester Gooch #5\",\"json_schema_"
				   "version\":1}},{\"table\":{\"family\":\"ip\",\"name\":\"nat\","
				   "\"handle\":1}},{\"chain\":{\"family\":\"ip\",\"ta"
				   "ble\":\"nat\",\"name\":\"post\",\"handle\":1,\"type\":\"nat\","
				   "\"hook\":\"postrouting\",\"prio\":100,\"policy\":"
				   "\"accept\"}},{\"chain\":{\"family\":\"ip\",\"table\":\"nat\","
				   "\"name\":\"POSTROUTING\",\"handle\":10,\"type\":\""
				   "nat\",\"hook\":\"postrouting\",\"prio\":100,\"policy\":"
				   "\"accept\"}},{\"rule\":{\"family\":\"ip\",\"table\":\"n"
				   "at\",\"chain\":\"post\",\"handle\":2,\"expr\":[{\"match\":{"
				   "\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"oifname\"}"
				   "},\"right\":\"a\"}},{\"masquerade\":null}]}},{\"rule\":{"
				   "\"family\":\"ip\",\"table\":\"nat\",\"chain\":\"post\""
				   ",\"handle\":4,\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{"
				   "\"meta\":{\"key\":\"oifname\"}},\"right\":\"b\"}},{\""
				   "match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"l4proto\"}"
				   "},\"right\":{\"set\":[\"tcp\",\"udp\"]}}},{\"masq"
				   "uerade\":{\"port\":{\"range\":[40000,40099]}}}]}},{\"rule\":{"
				   "\"family\":\"ip\",\"table\":\"nat\",\"chain\":"
				   "\"post\",\"handle\":5,\"expr\":[{\"match\":{\"op\":\"==\","
				   "\"left\":{\"meta\":{\"key\":\"oifname\"}},\"right\":\"c"
				   "\"}},{\"snat\":{\"addr\":\"198.18.0.1\"}}]}},{\"rule\":{"
				   "\"family\":\"ip\",\"table\":\"nat\",\"chain\":\"post\","
				   "\"handle\":6,\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{"
				   "\"meta\":{\"key\":\"oifname\"}},\"right\":\"d\"}},{\"m"
				   "atch\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"l4proto\"}}"
				   ",\"right\":\"tcp\"}},{\"snat\":{\"addr\":\"198.18"
				   ".0.1\",\"port\":{\"range\":[1000,2000]}}}]}},{\"rule\":{"
				   "\"family\":\"ip\",\"table\":\"nat\",\"chain\":\"post"
				   "\",\"handle\":7,\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{"
				   "\"meta\":{\"key\":\"oifname\"}},\"right\":\"e\"}},{"
				   "\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":"
				   "\"ip\",\"field\":\"protocol\"}},\"right\":\"udp\"}}"
				   ",{\"snat\":{\"addr\":{\"range\":[\"198.18.0.1\",\"198.18.0.4\"]"
				   "},\"port\":{\"range\":[5000,5100]},\"flags"
				   "\":[\"random\",\"persistent\"]}}]}},{\"rule\":{\"family\":"
				   "\"ip\",\"table\":\"nat\",\"chain\":\"post\",\"handle"
				   "\":8,\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{"
				   "\"key\":\"oifname\"}},\"right\":\"f\"}},{\"masquera"
				   "de\":{\"flags\":\"random\"}}]}},{\"rule\":{\"family\":\"ip\","
				   "\"table\":\"nat\",\"chain\":\"post\",\"handle\":9,"
				   "\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{"
				   "\"protocol\":\"ip\",\"field\":\"saddr\"}},\"right\":{"
				   "\"prefix\":{\"addr\":\"10.0.0.0\",\"len\":8}}}},{\"match\":{"
				   "\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":"
				   "\"tcp\",\"field\":\"dport\"}},\"right\":80}},{\"snat\":{"
				   "\"addr\":\"198.18.0.9\",\"port\":7000}}]}},{\"rule\""
				   ":{\"family\":\"ip\",\"table\":\"nat\",\"chain\":"
				   "\"POSTROUTING\",\"handle\":11,\"expr\":[{\"match\":{\"op\":\"=="
				   "\",\"left\":{\"meta\":{\"key\":\"oifname\"}},\"right\":\"g\"}},"
				   "{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key"
				   "\":\"l4proto\"}},\"right\":\"tcp\"}},{\"counter\":null},{"
				   "\"xt\":{\"type\":\"target\",\"name\":\"MASQUERADE\"}"
				   "}]}},{\"rule\":{\"family\":\"ip\",\"table\":\"nat\",\"chain\":"
				   "\"POSTROUTING\",\"handle\":12,\"expr\":[{\"matc"
				   "h\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"oifname\"}},"
				   "\"right\":\"h\"}},{\"match\":{\"op\":\"==\",\"left\":{"
				   "\"meta\":{\"key\":\"l4proto\"}},\"right\":\"udp\"}},{"
				   "\"counter\":null},{\"xt\":{\"type\":\"target\",\"name\":\""
				   "SNAT\"}}]}},{\"rule\":{\"family\":\"ip\",\"table\":\"nat\","
				   "\"chain\":\"POSTROUTING\",\"handle\":13,\"expr\":["
				   "{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":"
				   "\"oifname\"}},\"right\":\"i\"}},{\"counter\":null},{\"xt\""
				   ":{\"type\":\"target\",\"name\":\"MASQUERADE\"}}]}},{\"rule\":{"
				   "\"family\":\"ip\",\"table\":\"nat\",\"chain\":\"P"
				   "OSTROUTING\",\"handle\":14,\"expr\":[{\"match\":{\"op\":\"==\","
				   "\"left\":{\"meta\":{\"key\":\"oifname\"}},\"rig"
				   "ht\":\"j\"}},{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{"
				   "\"key\":\"l4proto\"}},\"right\":\"tcp\"}},{\"counter\""
				   ":null},{\"xt\":{\"type\":\"target\",\"name\":\"MASQUERADE\"}}]}"
				   "},{\"table\":{\"family\":\"inet\",\"name\":\"n"
				   "6\",\"handle\":2}},{\"chain\":{\"family\":\"inet\",\"table\":"
				   "\"n6\",\"name\":\"p\",\"handle\":1,\"type\":\"nat\","
				   "\"hook\":\"postrouting\",\"prio\":100,\"policy\":\"accept\"}},{"
				   "\"rule\":{\"family\":\"inet\",\"table\":\"n6\","
				   "\"chain\":\"p\",\"handle\":2,\"expr\":[{\"match\":{\"op\":\"=="
				   "\",\"left\":{\"meta\":{\"key\":\"nfproto\"}},\"righ"
				   "t\":\"ipv6\"}},{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{"
				   "\"key\":\"l4proto\"}},\"right\":\"tcp\"}},{\"masque"
				   "rade\":{\"port\":{\"range\":[50000,50010]}}}]}},{\"rule\":{"
				   "\"family\":\"inet\",\"table\":\"n6\",\"chain\":\""
				   "p\",\"handle\":3,\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{"
				   "\"meta\":{\"key\":\"l4proto\"}},\"right\":\"udp\"}"
				   "},{\"snat\":{\"family\":\"ip6\",\"addr\":\"2001:db8::1\","
				   "\"port\":{\"range\":[6000,6010]}}}]}},{\"rule\":{"
				   "\"family\":\"inet\",\"table\":\"n6\",\"chain\":\"p\","
				   "\"handle\":4,\"expr\":[{\"snat\":{\"family\":\"ip\",\"addr\":"
				   "\"198.18.0.7\"}}]}},{\"table\":{\"family\":\"ip\",\"name\":"
				   "\"filt\",\"handle\":3}},{\"chain\":{\"family\":\"i"
				   "p\",\"table\":\"filt\",\"name\":\"in\",\"handle\":1,\"type\":"
				   "\"nat\",\"hook\":\"input\",\"prio\":100,\"policy\":\""
				   "accept\"}},{\"rule\":{\"family\":\"ip\",\"table\":\"filt\","
				   "\"chain\":\"in\",\"handle\":2,\"expr\":[{\"match\":{"
				   "\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"l4proto\"}},"
				   "\"right\":\"tcp\"}},{\"snat\":{\"addr\":\"198.18.9.9\",\""
				   "port\":{\"range\":[9000,9001]}}}]}}]}";

static const char ruleset_text[] =
	"table ip nat { # handle 1\n"
	"\tchain post { # handle 1\n"
	"\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
	"\t\toifname \"a\" masquerade # handle 2\n"
	"\t\toifname \"b\" meta l4proto { tcp, udp } masquerade to :40000-40099 # handle 4\n"
	"\t\toifname \"c\" snat to 198.18.0.1 # handle 5\n"
	"\t\toifname \"d\" meta l4proto tcp snat to 198.18.0.1:1000-2000 # handle 6\n"
	"\t\toifname \"e\" ip protocol udp snat to 198.18.0.1-198.18.0.4:5000-5100 "
	"random,persistent # handle 7\n"
	"\t\toifname \"f\" masquerade random # handle 8\n"
	"\t\tip saddr 10.0.0.0/8 tcp dport 80 snat to 198.18.0.9:7000 # handle 9\n"
	"\t}\n"
	"\tchain POSTROUTING { # handle 10\n"
	"\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
	"\t\toifname \"g\" meta l4proto tcp counter masquerade to :30000-30010 # handle 11\n"
	"\t\toifname \"h\" meta l4proto udp counter snat to 198.18.0.5:2000-2100 # handle 12\n"
	"\t\toifname \"i\" counter masquerade # handle 13\n"
	"\t\toifname \"j\" meta l4proto tcp counter masquerade fully-random # handle 14\n"
	"\t}\n"
	"}\n"
	"table inet n6 { # handle 2\n"
	"\tchain p { # handle 1\n"
	"\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
	"\t\tmeta nfproto ipv6 meta l4proto tcp masquerade to :50000-50010 # handle 2\n"
	"\t\tmeta l4proto udp snat ip6 to [2001:db8::1]:6000-6010 # handle 3\n"
	"\t\tsnat ip to 198.18.0.7 # handle 4\n"
	"\t}\n"
	"}\n"
	"table ip filt { # handle 3\n"
	"\tchain in { # handle 1\n"
	"\t\ttype nat hook input priority 100; policy accept;\n"
	"\t\tmeta l4proto tcp snat to 198.18.9.9:9000-9001 # handle 2\n"
	"\t}\n"
	"}\n";

static struct nat_rules rules;

static void load(bool text)
{
	memset(&rules, 0, sizeof(rules));
	cr_assert_eq(nat_rules_parse_json(&rules, ruleset_json), 0);
	if (text)
		cr_assert_eq(nat_rules_parse_text(&rules, ruleset_text), 0);
}

static const struct nat_rule *by_handle(const char *table, const char *chain, __u64 handle)
{
	size_t i;

	for (i = 0; i < rules.len; i++)
		if (rules.items[i].handle == handle && !strcmp(rules.items[i].table, table) &&
		    !strcmp(rules.items[i].chain, chain))
			return &rules.items[i];
	cr_assert_fail("no rule %s %s %llu", table, chain, (unsigned long long)handle);
	return NULL;
}

static void range_for(int family, int proto, const char *addr, struct nat_range *r)
{
	__u8 a[16] = {};

	cr_assert_eq(inet_pton(family, addr, a), 1);
	nat_range_for(&rules, NULL, family, proto, a, r);
}

static void fini(void)
{
	nat_rules_free(&rules);
}

TestSuite(nat_rules, .fini = fini);

Test(nat_rules, statements)
{
	const struct nat_rule *r;
	__u8 a[4];

	load(false);
	/* 7 + 4 iptables-nft + 3 inet; the snat at the input hook is not source NAT of ours */
	cr_assert_eq(rules.len, 14);
	cr_assert_eq(rules.xt, 4);

	r = by_handle("nat", "post", 2);
	cr_assert_eq(r->kind, NAT_MASQUERADE);
	cr_assert_eq(r->family, AF_INET);
	cr_assert_eq(r->protos, 0);
	cr_assert_eq(r->flags, 0);

	r = by_handle("nat", "post", 4);
	cr_assert_eq(r->protos, NAT_TCP | NAT_UDP);
	cr_assert_eq(r->flags, NAT_RULE_PORTS);
	cr_assert_eq(r->port_min, 40000);
	cr_assert_eq(r->port_max, 40099);

	r = by_handle("nat", "post", 6);
	cr_assert_eq(r->kind, NAT_SNAT);
	cr_assert_eq(r->protos, NAT_TCP);
	cr_assert_eq(r->flags, NAT_RULE_PORTS | NAT_RULE_ADDR);
	cr_assert_eq(r->port_min, 1000);
	cr_assert_eq(r->port_max, 2000);
	inet_pton(AF_INET, "198.18.0.1", a);
	cr_assert_arr_eq(r->addr_min, a, 4);
	cr_assert_arr_eq(r->addr_max, a, 4);

	r = by_handle("nat", "post", 7);
	cr_assert_eq(r->protos, NAT_UDP);
	cr_assert_eq(r->flags,
		     NAT_RULE_PORTS | NAT_RULE_ADDR | NAT_RULE_RANDOM | NAT_RULE_PERSISTENT);
	inet_pton(AF_INET, "198.18.0.4", a);
	cr_assert_arr_eq(r->addr_max, a, 4);

	/* tcp dport 80 limits it to tcp; a single port is a range of one */
	r = by_handle("nat", "post", 9);
	cr_assert_eq(r->protos, NAT_TCP);
	cr_assert_eq(r->port_min, 7000);
	cr_assert_eq(r->port_max, 7000);

	r = by_handle("nat", "post", 8);
	cr_assert_eq(r->flags, NAT_RULE_RANDOM);

	/* iptables-nft: xt targets, unreadable until the text listing */
	r = by_handle("nat", "POSTROUTING", 11);
	cr_assert_eq(r->kind, NAT_MASQUERADE);
	cr_assert_eq(r->flags, NAT_RULE_UNKNOWN);
	r = by_handle("nat", "POSTROUTING", 12);
	cr_assert_eq(r->kind, NAT_SNAT);

	/* inet: the family from nfproto, or from snat's own */
	r = by_handle("n6", "p", 2);
	cr_assert_eq(r->family, AF_INET6);
	cr_assert_eq(r->port_min, 50000);
	r = by_handle("n6", "p", 3);
	cr_assert_eq(r->family, AF_INET6);
	cr_assert_eq(r->protos, NAT_UDP);
	cr_assert_eq(r->port_max, 6010);
	r = by_handle("n6", "p", 4);
	cr_assert_eq(r->family, AF_INET);
	cr_assert_eq(r->flags, NAT_RULE_ADDR);
}

Test(nat_rules, iptables_nft_from_text)
{
	const struct nat_rule *r;
	__u8 a[4];

	load(true);
	r = by_handle("nat", "POSTROUTING", 11);
	cr_assert_eq(r->flags, NAT_RULE_PORTS);
	cr_assert_eq(r->protos, NAT_TCP);
	cr_assert_eq(r->port_min, 30000);
	cr_assert_eq(r->port_max, 30010);
	r = by_handle("nat", "POSTROUTING", 12);
	cr_assert_eq(r->flags, NAT_RULE_PORTS | NAT_RULE_ADDR);
	cr_assert_eq(r->port_min, 2000);
	cr_assert_eq(r->port_max, 2100);
	inet_pton(AF_INET, "198.18.0.5", a);
	cr_assert_arr_eq(r->addr_min, a, 4);
	r = by_handle("nat", "POSTROUTING", 13);
	cr_assert_eq(r->flags, 0);
	r = by_handle("nat", "POSTROUTING", 14);
	cr_assert_eq(r->flags, NAT_RULE_FULLYRANDOM);
	/* the native rules are left as the JSON said */
	r = by_handle("nat", "post", 7);
	cr_assert_eq(r->port_min, 5000);
}

Test(nat_rules, range_by_snat_address)
{
	struct nat_range r;

	load(true);
	/* snat 198.18.0.1 without ports and with 1000-2000 for tcp: the smaller */
	range_for(AF_INET, IPPROTO_TCP, "198.18.0.1", &r);
	cr_assert_eq(r.source, NAT_RANGE_RULE);
	cr_assert_eq(r.low, 1000);
	cr_assert_eq(r.high, 2000);
	cr_assert_eq(r.ambiguous, 1);
	/* udp from 198.18.0.3: only the address range 198.18.0.1-4 */
	range_for(AF_INET, IPPROTO_UDP, "198.18.0.3", &r);
	cr_assert_eq(r.low, 5000);
	cr_assert_eq(r.high, 5100);
	cr_assert_eq(r.ambiguous, 0);
	cr_assert_eq(nat_range_size(&r), 101);
	/* iptables-nft SNAT to 198.18.0.5, udp */
	range_for(AF_INET, IPPROTO_UDP, "198.18.0.5", &r);
	cr_assert_eq(r.low, 2000);
	cr_assert_eq(r.high, 2100);
	range_for(AF_INET6, IPPROTO_UDP, "2001:db8::1", &r);
	cr_assert_eq(r.low, 6000);
	cr_assert_eq(r.high, 6010);
}

Test(nat_rules, range_by_masquerade)
{
	struct nat_range r;

	/* without the text the iptables-nft masquerade is unreadable */
	load(false);
	range_for(AF_INET, IPPROTO_TCP, "203.0.113.7", &r);
	cr_assert_eq(r.low, 40000);
	cr_assert_eq(r.high, 40099);
	cr_assert_eq(r.unreadable, 1);
	cr_assert_eq(r.ambiguous, 1);
	nat_rules_free(&rules);

	load(true);
	range_for(AF_INET, IPPROTO_TCP, "203.0.113.7", &r);
	cr_assert_eq(r.low, 30000);
	cr_assert_eq(r.high, 30010);
	cr_assert_eq(r.unreadable, 0);
	/* udp: 40000-40099 (the tcp-only 30000-30010 does not apply) */
	range_for(AF_INET, IPPROTO_UDP, "203.0.113.7", &r);
	cr_assert_eq(r.low, 40000);
	cr_assert_eq(r.high, 40099);
	/* IPv6: the inet table's tcp masquerade alone */
	range_for(AF_INET6, IPPROTO_TCP, "2001:db8::99", &r);
	cr_assert_eq(r.low, 50000);
	cr_assert_eq(r.high, 50010);
	cr_assert_eq(r.ambiguous, 0);
	/* IPv6 udp: no rule -> the kernel's default */
	range_for(AF_INET6, IPPROTO_UDP, "2001:db8::99", &r);
	cr_assert_eq(r.source, NAT_RANGE_DEFAULT);
	cr_assert_eq(r.low, NAT_DEFAULT_LOW);
	cr_assert_eq(r.high, NAT_DEFAULT_HIGH);
	cr_assert_eq(nat_range_size(&r), 64512);
}

Test(nat_rules, masquerade_without_ports_is_the_kernel_default)
{
	struct nat_range r;

	memset(&rules, 0, sizeof(rules));
	cr_assert_eq(
		nat_rules_parse_json(
			&rules,
			"{\"nftables\":[{\"rule\":{\"family\":\"ip\",\"table\":\"t\",\"chain\":"
			"\"c\",\"handle\":3,\"expr\":[{\"masquerade\":null}]}}]}"),
		0);
	cr_assert_eq(rules.len, 1);
	range_for(AF_INET, IPPROTO_TCP, "198.18.1.1", &r);
	/* a rule applies, and gives no range: the kernel's default, and said so */
	cr_assert_eq(r.source, NAT_RANGE_DEFAULT);
	cr_assert_eq(r.low, 1024);
	cr_assert_eq(r.high, 65535);
	cr_assert_eq(r.ambiguous, 0);
}

Test(nat_rules, odd_statements)
{
	const struct nat_rule *r;
	__u8 lo[4], hi[4];

	memset(&rules, 0, sizeof(rules));
	/* a prefix, a reversed range, ports from a map, icmp only, a dnat */
	cr_assert_eq(
		nat_rules_parse_json(
			&rules,
			"{\"nftables\":[{\"metainfo\":{}},"
			"{\"rule\":{\"family\":\"ip\",\"table\":\"t\",\"chain\":\"c\",\"handle\":1,"
			"\"expr\":[{\"snat\":{\"addr\":{\"prefix\":{\"addr\":\"198.18.4.0\","
			"\"len\":"
			"30}},\"port\":{\"range\":[2000,1000]}}}]}},"
			"{\"rule\":{\"family\":\"ip\",\"table\":\"t\",\"chain\":\"c\",\"handle\":2,"
			"\"expr\":[{\"masquerade\":{\"port\":{\"map\":{\"key\":1}}}}]}},"
			"{\"rule\":{\"family\":\"ip\",\"table\":\"t\",\"chain\":\"c\",\"handle\":3,"
			"\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":"
			"\"l4proto\"}},"
			"\"right\":\"icmp\"}},{\"masquerade\":null}]}},"
			"{\"rule\":{\"family\":\"ip\",\"table\":\"t\",\"chain\":\"c\",\"handle\":4,"
			"\"expr\":[{\"dnat\":{\"addr\":\"198.18.0.1\"}}]}}]}"),
		0);
	cr_assert_eq(rules.len, 2);
	r = by_handle("t", "c", 1);
	cr_assert_eq(r->port_min, 1000);
	cr_assert_eq(r->port_max, 2000);
	inet_pton(AF_INET, "198.18.4.0", lo);
	inet_pton(AF_INET, "198.18.4.3", hi);
	cr_assert_arr_eq(r->addr_min, lo, 4);
	cr_assert_arr_eq(r->addr_max, hi, 4);
	r = by_handle("t", "c", 2);
	cr_assert_eq(r->flags, NAT_RULE_UNKNOWN);
}

Test(nat_rules, bad_json)
{
	memset(&rules, 0, sizeof(rules));
	cr_assert_eq(nat_rules_parse_json(&rules, "{\"nftables\":"), -EINVAL);
	cr_assert_eq(nat_rules_parse_json(&rules, "[1,2]"), -EINVAL);
	cr_assert_eq(nat_rules_parse_json(&rules, "{\"nftables\":[{\"metainfo\":{}}]}"), 0);
	cr_assert_eq(rules.len, 0);
}

Test(nat_rules, override)
{
	struct nat_range o, r;

	load(true);
	cr_assert_eq(nat_range_parse("40000-40099", &o), 0);
	cr_assert_eq(o.low, 40000);
	cr_assert_eq(o.high, 40099);
	nat_range_for(&rules, &o, AF_INET, IPPROTO_TCP, NULL, &r);
	cr_assert_eq(r.source, NAT_RANGE_OVERRIDE);
	cr_assert_eq(nat_range_size(&r), 100);
}

Test(nat_rules, range_parse)
{
	struct nat_range r;

	cr_assert_eq(nat_range_parse("1024-65535", &r), 0);
	cr_assert_eq(nat_range_size(&r), 64512);
	cr_assert_eq(nat_range_parse("7000", &r), 0);
	cr_assert_eq(r.low, 7000);
	cr_assert_eq(r.high, 7000);
	cr_assert_eq(nat_range_parse("0-100", &r), -EINVAL);
	cr_assert_eq(nat_range_parse("100-99", &r), -EINVAL);
	cr_assert_eq(nat_range_parse("1-65536", &r), -EINVAL);
	cr_assert_eq(nat_range_parse("1-", &r), -EINVAL);
	cr_assert_eq(nat_range_parse("-5", &r), -EINVAL);
	cr_assert_eq(nat_range_parse("10-20x", &r), -EINVAL);
	cr_assert_eq(nat_range_parse("", &r), -EINVAL);
	cr_assert_eq(nat_range_parse("99999999999999999999", &r), -EINVAL);
}

Test(nat_rules, tables_names)
{
	cr_assert(nat_tables_names_has_nat("filter\nnat\n"));
	cr_assert(nat_tables_names_has_nat("nat"));
	cr_assert_not(nat_tables_names_has_nat("filter\nmangle\n"));
	cr_assert_not(nat_tables_names_has_nat("natx\nxnat\n"));
	cr_assert_not(nat_tables_names_has_nat(""));
}
