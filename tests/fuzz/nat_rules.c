// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A namespace's ruleset listings (nat_rules_parse_json, nat_rules_parse_text,
 * nat_rules_parse.c) and --nat-range (nat_range_parse): the ruleset is whoever can write
 * rules in that namespace. The input is three NUL-separated words: the JSON, the text
 * listing, a --nat-range value. Every rule read has a sane range and address order, and
 * the range a tuple draws from is never empty.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "nat_rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const __u8 saddr[16] = { 198, 18, 0, 1 };
	struct nat_rules rules = {};
	struct nat_range o = {}, r;
	char *words[3] = { "", "", "" }, *buf = NULL;

	fuzz_split(data, size, words, 3, &buf);
	if (nat_rules_parse_json(&rules, words[0]) == 0)
		FUZZ_ASSERT(nat_rules_parse_text(&rules, words[1]) == 0);
	FUZZ_ASSERT(rules.xt <= rules.len);
	for (size_t i = 0; i < rules.len; i++) {
		const struct nat_rule *n = &rules.items[i];

		FUZZ_ASSERT(n->kind == NAT_MASQUERADE || n->kind == NAT_SNAT);
		FUZZ_ASSERT(!(n->flags & NAT_RULE_PORTS) || n->port_min <= n->port_max);
		FUZZ_ASSERT(!(n->protos & ~(NAT_TCP | NAT_UDP)));
		FUZZ_ASSERT(n->family == AF_UNSPEC || n->family == AF_INET ||
			    n->family == AF_INET6);
		FUZZ_ASSERT(memchr(n->table, 0, sizeof(n->table)));
		FUZZ_ASSERT(memchr(n->chain, 0, sizeof(n->chain)));
	}
	if (nat_range_parse(words[2], &o) == 0)
		FUZZ_ASSERT(o.low >= 1 && o.low <= o.high);
	else
		memset(&o, 0, sizeof(o));
	nat_range_for(&rules, &o, AF_INET, IPPROTO_TCP, saddr, &r);
	FUZZ_ASSERT(r.low <= r.high && nat_range_size(&r) >= 1);
	nat_range_for(&rules, NULL, AF_INET6, IPPROTO_UDP, NULL, &r);
	FUZZ_ASSERT(r.low <= r.high);
	nat_rules_free(&rules);
	free(buf);
	return 0;
}
