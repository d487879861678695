// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * natrules: what nat_rules.c makes of a network namespace, for the end-to-end tests.
 * Enters the namespace at PATH (/run/netns/NAME), detects source NAT, reads the ruleset
 * and prints JSON lines: one "detect" (with the ruleset's generation), one "rule" per
 * masquerade/snat statement, and one "range" per PROTO ADDR pair asked (the range a NAT tuple with
 * that translated source address draws from). --nat-range LOW-HIGH is the agent's override.
 *
 * natrules PATH [--nat-range LOW-HIGH] [tcp|udp ADDR]...
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nat_rules.h"

static const char *family_name(int f)
{
	return f == AF_INET ? "ip" : f == AF_INET6 ? "ip6" : "any";
}

static void print_rule(const struct nat_rule *r)
{
	char lo[INET6_ADDRSTRLEN] = "", hi[INET6_ADDRSTRLEN] = "";

	if (r->flags & NAT_RULE_ADDR) {
		inet_ntop(r->family, r->addr_min, lo, sizeof(lo));
		inet_ntop(r->family, r->addr_max, hi, sizeof(hi));
	}
	printf("{\"rule\":{\"table\":\"%s\",\"chain\":\"%s\",\"handle\":%llu,\"kind\":\"%s\","
	       "\"family\":\"%s\",\"tcp\":%s,\"udp\":%s,\"ports\":",
	       r->table, r->chain, (unsigned long long)r->handle,
	       r->kind == NAT_SNAT ? "snat" : "masquerade", family_name(r->family),
	       !r->protos || (r->protos & NAT_TCP) ? "true" : "false",
	       !r->protos || (r->protos & NAT_UDP) ? "true" : "false");
	if (r->flags & NAT_RULE_PORTS)
		printf("[%u,%u]", r->port_min, r->port_max);
	else
		printf(r->flags & NAT_RULE_UNKNOWN ? "\"unknown\"" : "null");
	if (r->flags & NAT_RULE_ADDR)
		printf(",\"addr\":[\"%s\",\"%s\"]", lo, hi);
	printf(",\"random\":%s,\"fully_random\":%s,\"persistent\":%s}}\n",
	       r->flags & NAT_RULE_RANDOM ? "true" : "false",
	       r->flags & NAT_RULE_FULLYRANDOM ? "true" : "false",
	       r->flags & NAT_RULE_PERSISTENT ? "true" : "false");
}

static const char *source_name(int s)
{
	return s == NAT_RANGE_RULE ? "rule" : s == NAT_RANGE_OVERRIDE ? "override" : "default";
}

int main(int argc, char **argv)
{
	struct nat_range override = {}, r;
	struct nat_rules rules = {};
	unsigned int where = 0;
	__u32 gen = 0;
	int fd, err, i = 2;

	if (argc < 2 || (argc - 2) % 2) {
		fprintf(stderr, "usage: natrules PATH [--nat-range LOW-HIGH] [tcp|udp ADDR]...\n");
		return 2;
	}
	if (argc > 3 && !strcmp(argv[2], "--nat-range")) {
		if (nat_range_parse(argv[3], &override)) {
			fprintf(stderr, "natrules: --nat-range %s: not LOW-HIGH\n", argv[3]);
			return 2;
		}
		i = 4;
	}
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET)) {
		fprintf(stderr, "natrules: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	close(fd);
	err = nat_detect(&where);
	if (err)
		fprintf(stderr, "natrules: detect: %s\n", strerror(-err));
	err = nat_ruleset_gen(&gen);
	if (err)
		fprintf(stderr, "natrules: generation: %s\n", strerror(-err));
	printf("{\"detect\":{\"nft\":%s,\"legacy\":%s,\"gen\":%u}}\n",
	       where & NAT_IN_NFT ? "true" : "false", where & NAT_IN_LEGACY ? "true" : "false",
	       gen);
	err = nat_rules_read(&rules);
	if (err) {
		fprintf(stderr, "natrules: ruleset: %s\n", strerror(-err));
		return 1;
	}
	for (size_t k = 0; k < rules.len; k++)
		print_rule(&rules.items[k]);
	for (; i + 1 < argc; i += 2) {
		__u8 addr[16] = {};
		int family = strchr(argv[i + 1], ':') ? AF_INET6 : AF_INET;
		int proto = strcmp(argv[i], "udp") ? IPPROTO_TCP : IPPROTO_UDP;

		if (inet_pton(family, argv[i + 1], addr) != 1) {
			fprintf(stderr, "natrules: %s: not an address\n", argv[i + 1]);
			return 2;
		}
		nat_range_for(&rules, &override, family, proto, addr, &r);
		printf("{\"range\":{\"proto\":\"%s\",\"addr\":\"%s\",\"low\":%u,\"high\":%u,"
		       "\"size\":%u,\"source\":\"%s\",\"ambiguous\":%s,\"unreadable\":%s}}\n",
		       argv[i], argv[i + 1], r.low, r.high, nat_range_size(&r),
		       source_name(r.source), r.ambiguous ? "true" : "false",
		       r.unreadable ? "true" : "false");
	}
	nat_rules_free(&rules);
	return 0;
}
