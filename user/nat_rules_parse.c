// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The listings of a ruleset (nat_rules.h): libnftables' JSON, its masquerade and snat
 * statements with their protocols, addresses, ports and flags; and the text listing, for
 * iptables-nft's MASQUERADE and SNAT targets, which the JSON shows without their options.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "nat_rules.h"

void nat_rules_free(struct nat_rules *rules)
{
	free(rules->items);
	memset(rules, 0, sizeof(*rules));
}

static struct nat_rule *rule_add(struct nat_rules *rules)
{
	if (rules->len == rules->cap) {
		size_t cap = rules->cap ? rules->cap * 2 : 16;
		struct nat_rule *items = realloc(rules->items, cap * sizeof(*items));

		if (!items)
			return NULL;
		rules->items = items;
		rules->cap = cap;
	}
	memset(&rules->items[rules->len], 0, sizeof(rules->items[0]));
	return &rules->items[rules->len++];
}

static int family_of(const char *s)
{
	if (!s)
		return -1;
	if (!strcmp(s, "ip"))
		return AF_INET;
	if (!strcmp(s, "ip6"))
		return AF_INET6;
	if (!strcmp(s, "inet"))
		return AF_UNSPEC;
	return -1; /* arp, bridge, netdev: no source NAT of ours */
}

static unsigned int proto_bit(const char *s)
{
	if (!s)
		return 0;
	if (!strcmp(s, "tcp"))
		return NAT_TCP;
	if (!strcmp(s, "udp"))
		return NAT_UDP;
	return 1u << 7; /* another protocol: no tcp or udp port */
}

/* the protocols a match limits the rule to (0: none said) */
static unsigned int match_protos(const cJSON *match)
{
	const cJSON *op = cJSON_GetObjectItem(match, "op");
	const cJSON *left = cJSON_GetObjectItem(match, "left");
	const cJSON *right = cJSON_GetObjectItem(match, "right");
	const cJSON *meta = cJSON_GetObjectItem(left, "meta");
	const cJSON *payload = cJSON_GetObjectItem(left, "payload");
	const char *key = NULL, *proto = NULL;
	unsigned int bits = 0;
	const cJSON *e;

	if (cJSON_IsString(op) && strcmp(op->valuestring, "==") && strcmp(op->valuestring, "in"))
		return 0;
	if (meta)
		key = cJSON_GetStringValue(cJSON_GetObjectItem(meta, "key"));
	if (payload) {
		key = cJSON_GetStringValue(cJSON_GetObjectItem(payload, "field"));
		proto = cJSON_GetStringValue(cJSON_GetObjectItem(payload, "protocol"));
		/* tcp dport 80 says tcp */
		if (proto && (!strcmp(proto, "tcp") || !strcmp(proto, "udp")))
			return proto_bit(proto);
	}
	if (!key || (strcmp(key, "l4proto") && strcmp(key, "protocol") && strcmp(key, "nexthdr")))
		return 0;
	if (cJSON_IsString(right))
		return proto_bit(right->valuestring);
	if (cJSON_IsObject(right) && cJSON_GetObjectItem(right, "set")) {
		cJSON_ArrayForEach(e, cJSON_GetObjectItem(right, "set"))
		{
			if (!cJSON_IsString(e))
				return 0;
			bits |= proto_bit(e->valuestring);
		}
	}
	return bits;
}

/* an nfproto match in an inet table */
static int match_family(const cJSON *match)
{
	const cJSON *left = cJSON_GetObjectItem(match, "left");
	const cJSON *meta = cJSON_GetObjectItem(left, "meta");
	const char *key = cJSON_GetStringValue(cJSON_GetObjectItem(meta, "key"));
	const char *right = cJSON_GetStringValue(cJSON_GetObjectItem(match, "right"));
	const char *op = cJSON_GetStringValue(cJSON_GetObjectItem(match, "op"));

	if (!key || strcmp(key, "nfproto") || !right || (op && strcmp(op, "==")))
		return -1;
	return !strcmp(right, "ipv4") ? AF_INET : !strcmp(right, "ipv6") ? AF_INET6 : -1;
}

static int parse_addr(const char *s, __u8 *out, int *family)
{
	if (inet_pton(AF_INET, s, out) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, out) == 1) {
		*family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

/* snat's "addr": "A", {"range": ["A", "B"]}, {"prefix": {"addr": "A", "len": N}} */
static void rule_addr(struct nat_rule *r, const cJSON *addr)
{
	const cJSON *range = cJSON_GetObjectItem(addr, "range");
	const cJSON *prefix = cJSON_GetObjectItem(addr, "prefix");
	int fa = 0, fb = 0;

	if (cJSON_IsString(addr)) {
		if (parse_addr(addr->valuestring, r->addr_min, &fa))
			return;
		memcpy(r->addr_max, r->addr_min, sizeof(r->addr_max));
	} else if (cJSON_GetArraySize(range) == 2) {
		const char *a = cJSON_GetStringValue(cJSON_GetArrayItem(range, 0));
		const char *b = cJSON_GetStringValue(cJSON_GetArrayItem(range, 1));

		if (!a || !b || parse_addr(a, r->addr_min, &fa) ||
		    parse_addr(b, r->addr_max, &fb) || fa != fb)
			return;
	} else if (prefix) {
		const char *a = cJSON_GetStringValue(cJSON_GetObjectItem(prefix, "addr"));
		const cJSON *len = cJSON_GetObjectItem(prefix, "len");
		int bits, i;

		if (!a || !cJSON_IsNumber(len) || parse_addr(a, r->addr_min, &fa))
			return;
		bits = len->valueint;
		if (bits < 0 || bits > (fa == AF_INET ? 32 : 128))
			return;
		memcpy(r->addr_max, r->addr_min, sizeof(r->addr_max));
		for (i = bits; i < (fa == AF_INET ? 32 : 128); i++) {
			r->addr_min[i / 8] &= (__u8) ~(0x80u >> (i % 8));
			r->addr_max[i / 8] |= (__u8)(0x80u >> (i % 8));
		}
	} else {
		return; /* a map or an expression: any address */
	}
	if (r->family == AF_UNSPEC)
		r->family = (__u8)fa;
	r->flags |= NAT_RULE_ADDR;
}

static int port_of(const cJSON *v)
{
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 65535)
		return -1;
	return v->valueint;
}

/* "port": N or {"range": [LOW, HIGH]}; anything else is unreadable */
static void rule_ports(struct nat_rule *r, const cJSON *port)
{
	const cJSON *range = cJSON_GetObjectItem(port, "range");
	int lo = -1, hi = -1;

	if (!port)
		return;
	if (cJSON_IsNumber(port)) {
		lo = hi = port_of(port);
	} else if (cJSON_GetArraySize(range) == 2) {
		lo = port_of(cJSON_GetArrayItem(range, 0));
		hi = port_of(cJSON_GetArrayItem(range, 1));
	}
	if (lo < 0 || hi < 0) {
		r->flags |= NAT_RULE_UNKNOWN;
		return;
	}
	/* the kernel swaps a reversed range */
	r->port_min = (__u16)(lo < hi ? lo : hi);
	r->port_max = (__u16)(lo < hi ? hi : lo);
	r->flags |= NAT_RULE_PORTS;
}

static void rule_flag(struct nat_rule *r, const char *f)
{
	if (!f)
		return;
	if (!strcmp(f, "random"))
		r->flags |= NAT_RULE_RANDOM;
	else if (!strcmp(f, "fully-random"))
		r->flags |= NAT_RULE_FULLYRANDOM;
	else if (!strcmp(f, "persistent"))
		r->flags |= NAT_RULE_PERSISTENT;
}

static void rule_flags(struct nat_rule *r, const cJSON *flags)
{
	const cJSON *e;

	if (cJSON_IsString(flags))
		rule_flag(r, flags->valuestring);
	cJSON_ArrayForEach(e, flags)
	{
		rule_flag(r, cJSON_GetStringValue(e));
	}
}

static void names(struct nat_rule *r, const char *table, const char *chain)
{
	snprintf(r->table, sizeof(r->table), "%s", table ? table : "");
	snprintf(r->chain, sizeof(r->chain), "%s", chain ? chain : "");
}

/* one rule object: each masquerade/snat statement (or xt target) becomes a nat_rule */
static int parse_rule(struct nat_rules *rules, const cJSON *rule)
{
	const char *table = cJSON_GetStringValue(cJSON_GetObjectItem(rule, "table"));
	const char *chain = cJSON_GetStringValue(cJSON_GetObjectItem(rule, "chain"));
	const cJSON *handle = cJSON_GetObjectItem(rule, "handle");
	int family = family_of(cJSON_GetStringValue(cJSON_GetObjectItem(rule, "family")));
	unsigned int protos = 0;
	const cJSON *stmt;

	if (family < 0)
		return 0;
	cJSON_ArrayForEach(stmt, cJSON_GetObjectItem(rule, "expr"))
	{
		const cJSON *match = cJSON_GetObjectItem(stmt, "match");
		const cJSON *masq = cJSON_GetObjectItem(stmt, "masquerade");
		const cJSON *snat = cJSON_GetObjectItem(stmt, "snat");
		const cJSON *xt = cJSON_GetObjectItem(stmt, "xt");
		const char *xtname = cJSON_GetStringValue(cJSON_GetObjectItem(xt, "name"));
		struct nat_rule *r;
		int f;

		if (match) {
			protos |= match_protos(match);
			f = match_family(match);
			if (f >= 0 && family == AF_UNSPEC)
				family = f;
			continue;
		}
		if (xt && (!xtname || (strcmp(xtname, "MASQUERADE") && strcmp(xtname, "SNAT"))))
			continue;
		if (!masq && !snat && !xt)
			continue;
		r = rule_add(rules);
		if (!r)
			return -ENOMEM;
		names(r, table, chain);
		/* a handle is a u64; anything else in its place reads as 0 */
		r->handle = cJSON_IsNumber(handle) && handle->valuedouble >= 0 &&
					    handle->valuedouble < 18446744073709551616.0 ?
				    (__u64)handle->valuedouble :
				    0;
		r->family = (__u8)family;
		r->protos = (__u8)(protos & (NAT_TCP | NAT_UDP));
		/* limited to protocols without ports only: no port to draw */
		if (protos && !r->protos) {
			rules->len--;
			continue;
		}
		if (xt) {
			r->kind = strcmp(xtname, "SNAT") ? NAT_MASQUERADE : NAT_SNAT;
			r->flags |= NAT_RULE_UNKNOWN; /* until the text listing says */
			rules->xt++;
			continue;
		}
		r->kind = masq ? NAT_MASQUERADE : NAT_SNAT;
		stmt = masq ? masq : snat;
		if (snat) {
			f = family_of(cJSON_GetStringValue(cJSON_GetObjectItem(snat, "family")));
			if (f > 0 && r->family == AF_UNSPEC)
				r->family = (__u8)f;
			rule_addr(r, cJSON_GetObjectItem(snat, "addr"));
		}
		rule_ports(r, cJSON_GetObjectItem(stmt, "port"));
		rule_flags(r, cJSON_GetObjectItem(stmt, "flags"));
	}
	return 0;
}

static bool same_str(const cJSON *a, const cJSON *b, const char *key)
{
	const char *x = cJSON_GetStringValue(cJSON_GetObjectItem(a, key));
	const char *y = cJSON_GetStringValue(cJSON_GetObjectItem(b, key));

	return x && y && !strcmp(x, y);
}

/* a rule of a base chain at the input hook: snat there rewrites what arrives, not ours */
static bool in_input_chain(const cJSON *list, const cJSON *rule)
{
	const cJSON *o;

	cJSON_ArrayForEach(o, list)
	{
		const cJSON *chain = cJSON_GetObjectItem(o, "chain");
		const char *hook = cJSON_GetStringValue(cJSON_GetObjectItem(chain, "hook"));

		if (hook && !strcmp(hook, "input") && same_str(chain, rule, "family") &&
		    same_str(chain, rule, "table")) {
			const char *a = cJSON_GetStringValue(cJSON_GetObjectItem(chain, "name"));
			const char *b = cJSON_GetStringValue(cJSON_GetObjectItem(rule, "chain"));

			if (a && b && !strcmp(a, b))
				return true;
		}
	}
	return false;
}

int nat_rules_parse_json(struct nat_rules *rules, const char *json)
{
	cJSON *root = cJSON_Parse(json);
	const cJSON *list, *o;
	int err = 0;

	if (!root)
		return -EINVAL;
	list = cJSON_GetObjectItem(root, "nftables");
	if (!cJSON_IsArray(list)) {
		err = -EINVAL;
		goto cleanup;
	}
	cJSON_ArrayForEach(o, list)
	{
		const cJSON *rule = cJSON_GetObjectItem(o, "rule");

		size_t len = rules->len;
		unsigned int xt = rules->xt;

		if (!rule)
			continue;
		err = parse_rule(rules, rule);
		if (err)
			break;
		/* only a rule with NAT statements is looked up: a ruleset can be large */
		if (rules->len > len && in_input_chain(list, rule)) {
			rules->len = len;
			rules->xt = xt;
		}
	}
cleanup:
	cJSON_Delete(root);
	return err;
}

/* ":LOW-HIGH" or ":PORT" (the colon already passed); 0 or -EINVAL */
static int text_ports(const char *s, size_t n, struct nat_rule *r)
{
	char buf[16], *end;
	unsigned long lo, hi;

	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	lo = strtoul(buf, &end, 10);
	hi = lo;
	if (*end == '-')
		hi = strtoul(end + 1, &end, 10);
	if (errno || *end || lo > 65535 || hi > 65535 || end == buf)
		return -EINVAL;
	r->port_min = (__u16)(lo < hi ? lo : hi);
	r->port_max = (__u16)(lo < hi ? hi : lo);
	r->flags |= NAT_RULE_PORTS;
	return 0;
}

static void text_addr(const char *s, size_t n, struct nat_rule *r)
{
	char buf[96], *dash;
	int fa = 0, fb = 0;

	if (n == 0 || n >= sizeof(buf))
		return;
	memcpy(buf, s, n);
	buf[n] = '\0';
	dash = strchr(buf, '-');
	if (dash)
		*dash = '\0';
	if (parse_addr(buf, r->addr_min, &fa))
		return;
	memcpy(r->addr_max, r->addr_min, sizeof(r->addr_max));
	if (dash && (parse_addr(dash + 1, r->addr_max, &fb) || fa != fb))
		return;
	if (r->family == AF_UNSPEC)
		r->family = (__u8)fa;
	r->flags |= NAT_RULE_ADDR;
}

/*
 * The statement of one rule line: "masquerade [to :P[-Q]] [flags]" or
 * "snat [ip|ip6] to ADDR[-ADDR][:P[-Q]] [flags]", ADDR in brackets for IPv6 with ports.
 * "xt target MASQUERADE" (no libxtables to translate it) leaves the rule unreadable.
 */
static void text_stmt(const char *line, struct nat_rule *r)
{
	const char *p = strstr(line, r->kind == NAT_SNAT ? " snat" : " masquerade");
	char tok[128];
	int n;

	if (!p)
		return;
	r->flags &= (__u8)~NAT_RULE_UNKNOWN;
	p = strchr(p + 1, ' ');
	while (p && sscanf(p, " %127s%n", tok, &n) == 1) {
		p += n;
		if (tok[0] == '#')
			break;
		if (!strcmp(tok, "ip") || !strcmp(tok, "ip6") || !strcmp(tok, "to"))
			continue;
		rule_flag(r, tok);
		if (!strcmp(tok, "random,persistent") || !strcmp(tok, "fully-random,persistent")) {
			rule_flag(r, tok[0] == 'r' ? "random" : "fully-random");
			rule_flag(r, "persistent");
		}
		if (tok[0] == ':') {
			if (text_ports(tok + 1, strlen(tok + 1), r))
				r->flags |= NAT_RULE_UNKNOWN;
		} else if (tok[0] == '[') {
			const char *close = strchr(tok, ']');

			if (!close)
				continue;
			text_addr(tok + 1, (size_t)(close - tok - 1), r);
			if (close[1] == ':' && text_ports(close + 2, strlen(close + 2), r))
				r->flags |= NAT_RULE_UNKNOWN;
		} else if (r->kind == NAT_SNAT && strchr("0123456789abcdefABCDEF", tok[0])) {
			const char *colon = strchr(tok, ':');

			/* one colon: an IPv4 address and its ports; more: IPv6 alone */
			if (colon && !strchr(colon + 1, ':')) {
				text_addr(tok, (size_t)(colon - tok), r);
				if (text_ports(colon + 1, strlen(colon + 1), r))
					r->flags |= NAT_RULE_UNKNOWN;
			} else {
				text_addr(tok, strlen(tok), r);
			}
		}
	}
}

static struct nat_rule *xt_rule(struct nat_rules *rules, const char *table, const char *chain,
				__u64 handle)
{
	size_t i;

	for (i = 0; i < rules->len; i++) {
		struct nat_rule *r = &rules->items[i];

		if (r->handle == handle && !strcmp(r->table, table) && !strcmp(r->chain, chain) &&
		    (r->flags & NAT_RULE_UNKNOWN))
			return r;
	}
	return NULL;
}

int nat_rules_parse_text(struct nat_rules *rules, const char *text)
{
	char table[64] = "", chain[64] = "", word[64];
	const char *line = text;

	while (line && *line) {
		const char *end = strchr(line, '\n'), *h;
		unsigned long long handle;
		struct nat_rule *r;

		if (sscanf(line, " table %*s %63s {", word) == 1) {
			snprintf(table, sizeof(table), "%s", word);
		} else if (sscanf(line, " chain %63s {", word) == 1) {
			snprintf(chain, sizeof(chain), "%s", word);
		} else if ((h = strstr(line, "# handle ")) && (!end || h < end) &&
			   sscanf(h, "# handle %llu", &handle) == 1) {
			r = xt_rule(rules, table, chain, handle);
			if (r) {
				size_t n = end ? (size_t)(end - line) : strlen(line);
				char *copy = strndup(line, n);

				if (!copy)
					return -ENOMEM;
				text_stmt(copy, r);
				free(copy);
			}
		}
		line = end ? end + 1 : NULL;
	}
	return 0;
}
