// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Addresses and query's filters (addr.c): addr_parse, and --dst, --src and --netns as
 * query (and the agent, which receives them) parse them. What parses must print back
 * to text that parses to the same thing; addr_put must write what addr_format writes; a
 * later --dst replaces an earlier one.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ephport.h"
#include "fuzz.h"

static void addr(const char *s)
{
	char text[EPH_ADDRSTRLEN], put[EPH_ADDRSTRLEN];
	__u8 a[16], b[16];
	__u16 fa, fb;

	if (addr_parse(s, &fa, a))
		return;
	FUZZ_ASSERT(fa == AF_INET || fa == AF_INET6);
	FUZZ_ASSERT(addr_format(fa, a, text, sizeof(text)) == 0);
	FUZZ_ASSERT(addr_put(fa, a, put) == strlen(text) && !strcmp(put, text));
	FUZZ_ASSERT(addr_parse(text, &fb, b) == 0 && fb == fa && !memcmp(a, b, 16));
}

static void dst(const char *s)
{
	struct tuple_filter f = { 0 }, g = { 0 };
	char text[EPH_ADDRSTRLEN + 16], host[EPH_ADDRSTRLEN];

	if (filter_parse_dst(&f, s))
		return;
	FUZZ_ASSERT(f.dst_set && (!f.dport_set || f.dport));
	/* the last --dst given is the filter, whatever came before it */
	FUZZ_ASSERT(filter_parse_dst(&g, "[2001:db8::9]:9") == 0 && filter_parse_dst(&g, s) == 0);
	FUZZ_ASSERT(g.dst_family == f.dst_family && !memcmp(g.dst, f.dst, 16));
	FUZZ_ASSERT(g.dport_set == f.dport_set && g.dport == f.dport);
	memset(&g, 0, sizeof(g));
	FUZZ_ASSERT(addr_format(f.dst_family, f.dst, host, sizeof(host)) == 0);
	if (!f.dport_set)
		snprintf(text, sizeof(text), "%s", host);
	else if (f.dst_family == AF_INET6)
		snprintf(text, sizeof(text), "[%s]:%u", host, f.dport);
	else
		snprintf(text, sizeof(text), "%s:%u", host, f.dport);
	FUZZ_ASSERT(filter_parse_dst(&g, text) == 0);
	FUZZ_ASSERT(g.dst_family == f.dst_family && !memcmp(g.dst, f.dst, 16));
	FUZZ_ASSERT(g.dport_set == f.dport_set && g.dport == f.dport);
}

static void netns(const char *s)
{
	struct tuple_filter f = { 0 }, g = { 0 };
	char text[32];

	if (filter_parse_netns(&f, s))
		return;
	FUZZ_ASSERT(f.netns_set && f.netns);
	snprintf(text, sizeof(text), "net:[%u]", f.netns);
	FUZZ_ASSERT(filter_parse_netns(&g, text) == 0 && g.netns == f.netns);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tuple_filter f = { 0 };
	char *s = fuzz_str(data, size);

	addr(s);
	dst(s);
	netns(s);
	if (!filter_parse_src(&f, s))
		FUZZ_ASSERT(f.src_set && (f.src_family == AF_INET || f.src_family == AF_INET6));
	free(s);
	return 0;
}
