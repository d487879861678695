/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Source NAT rules of a network namespace: whether it has any (cheaply), the masquerade and
 * snat statements of its nftables ruleset (iptables-nft's too) with their port ranges and
 * addresses, and which port range a NAT tuple draws from (docs/nat.md, "Capacity").
 *
 * nat_detect() and nat_rules_read() work in the calling thread's network namespace: call
 * them while inside it (netns_enter). The parsers take texts and touch nothing.
 */
#ifndef EPHPORT_NAT_RULES_H
#define EPHPORT_NAT_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

/* nf_nat_core.c without a port range: keep the flow's own port when free, else this */
#define NAT_DEFAULT_LOW	 1024
#define NAT_DEFAULT_HIGH 65535

/* nat_detect(): where source NAT was found */
#define NAT_IN_NFT    (1u << 0) /* an nftables chain of type nat at hook postrouting */
#define NAT_IN_LEGACY (1u << 1) /* "nat" in ip_tables_names or ip6_tables_names */

/* nat_rule.protos: the layer 4 protocols a rule is limited to; 0: not limited */
#define NAT_TCP (1u << 0)
#define NAT_UDP (1u << 1)

/* nat_rule.flags */
#define NAT_RULE_PORTS	     (1u << 0) /* a port range given: port_min..port_max */
#define NAT_RULE_ADDR	     (1u << 1) /* snat's address(es) known: addr_min..addr_max */
#define NAT_RULE_UNKNOWN     (1u << 2) /* ports given but not readable (a map, an xt target) */
#define NAT_RULE_RANDOM	     (1u << 3)
#define NAT_RULE_FULLYRANDOM (1u << 4) /* the flow's own port is never kept */
#define NAT_RULE_PERSISTENT  (1u << 5)

enum nat_kind {
	NAT_MASQUERADE = 1,
	NAT_SNAT = 2,
};

struct nat_rule {
	__u64 handle;
	__u8 addr_min[16], addr_max[16]; /* network order; IPv4 in the first 4 bytes */
	char table[64];
	char chain[64];
	__u16 port_min, port_max;
	__u8 kind;   /* enum nat_kind */
	__u8 family; /* AF_INET, AF_INET6, or AF_UNSPEC (an inet table, either) */
	__u8 protos; /* NAT_TCP | NAT_UDP, 0: any */
	__u8 flags;  /* NAT_RULE_* */
};

struct nat_rules {
	struct nat_rule *items;
	size_t len, cap;
	unsigned int
		xt; /* rules that are iptables-nft targets (ports read from the text listing) */
};

/* where a nat_range came from */
enum nat_range_source {
	NAT_RANGE_DEFAULT = 0,	/* no rule gives ports: the kernel's 1024-65535 */
	NAT_RANGE_RULE = 1,	/* the rule(s) that apply */
	NAT_RANGE_OVERRIDE = 2, /* --nat-range */
};

struct nat_range {
	__u16 low, high;
	__u8 source;	 /* enum nat_range_source */
	__u8 ambiguous;	 /* several rules could apply with different ranges: the smallest */
	__u8 unreadable; /* a rule that could apply has ports nobody could read */
};

/* 0 and *where (NAT_IN_*), or -errno. Inside the namespace. */
int nat_detect(unsigned int *where);
/*
 * The nftables ruleset's generation (NFT_MSG_GETGEN): it changes with every change to the
 * ruleset, so nat_rules_read() is needed only when it did. 0 or -errno. Inside the namespace.
 */
int nat_ruleset_gen(__u32 *gen);
/* does an ip_tables_names text name the nat table */
bool nat_tables_names_has_nat(const char *text);

/* the ruleset through libnftables, JSON and (for iptables-nft rules) text; inside the namespace */
int nat_rules_read(struct nat_rules *rules);
/* `nft -j list ruleset` output: its masquerade and snat statements added; 0 or -errno */
int nat_rules_parse_json(struct nat_rules *rules, const char *json);
/*
 * `nft -a list ruleset` text: the ports of rules that are xt targets in the JSON (MASQUERADE,
 * SNAT), found by table, chain and handle; 0 or -errno
 */
int nat_rules_parse_text(struct nat_rules *rules, const char *text);
void nat_rules_free(struct nat_rules *rules);

/*
 * The port range a NAT tuple (family AF_INET/AF_INET6, protocol IPPROTO_TCP/UDP, translated
 * source address saddr, 4 or 16 bytes) draws from: the override when one is given (low > 0),
 * else the rules that could apply (snat by address first, then masquerade), the smallest
 * when they differ, else the kernel's default.
 */
void nat_range_for(const struct nat_rules *rules, const struct nat_range *override, int family,
		   int protocol, const __u8 *saddr, struct nat_range *out);
/* "LOW-HIGH" (or "PORT") of --nat-range: 0, or -EINVAL */
int nat_range_parse(const char *s, struct nat_range *out);
static inline unsigned int nat_range_size(const struct nat_range *r)
{
	return r->high >= r->low ? (unsigned int)r->high - r->low + 1 : 0;
}

#endif /* EPHPORT_NAT_RULES_H */
