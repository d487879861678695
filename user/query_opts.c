// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* 'ephport query's options as a table (opts.h): query.c parses with it, the help and the bash
 * completion come from it. And the question they make, as the agent takes it. */
#include <string.h>

#include "ephport.h"
#include "opts.h"
#include "query.h"

static int parse_netns(const char *arg, void *filter)
{
	return filter_parse_netns(filter, arg);
}

static int parse_dst(const char *arg, void *filter)
{
	return filter_parse_dst(filter, arg);
}

static int parse_src(const char *arg, void *filter)
{
	return filter_parse_src(filter, arg);
}

/* into a struct tuple_filter, and eph_json_mode */
static const struct opt query_options[] = {
	{ "json", 'j', OPT_FLAG_VAR(eph_json_mode),
	  .help = "one JSON document instead of a table" },
	{ "netns", 'n', OPT_FUNC(parse_netns), .metavar = "INODE",
	  .help = "only this network namespace (readlink /proc/PID/ns/net)" },
	{ "dst", 'd', OPT_FUNC(parse_dst), .metavar = "IP[:PORT]",
	  .help = "only this destination ([IPv6]:PORT for IPv6 with a port)" },
	{ "src", 's', OPT_FUNC(parse_src), .metavar = "IP", .help = "only this source address" },
	{ "help", 'h', OPT_HELP, .help = "this help" },
	{ 0 },
};

const struct opts_cmd query_cmd = {
	.name = "query",
	.synopsis = "ephport query [--json] [--netns INODE] [--dst IP[:PORT]] [--src IP]",
	.about = "Show the live per-destination counts of the running agent, most used first.",
	.epilog = "IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are shown and matched as IPv4.",
	.opts = query_options,
};

int query_req_take(const void *buf, size_t n, struct query_req *rq)
{
	static const size_t flags[] = {
		offsetof(struct query_req, filter.netns_set),
		offsetof(struct query_req, filter.src_set),
		offsetof(struct query_req, filter.dst_set),
		offsetof(struct query_req, filter.dport_set),
	};
	const __u8 *b = buf;
	__u32 version;

	if (n != sizeof(*rq))
		return -EPROTO;
	memcpy(&version, b + offsetof(struct query_req, version), sizeof(version));
	if (version != QUERY_VERSION)
		return -EPROTO;
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (b[flags[i]] > 1)
			return -EPROTO;
	memcpy(rq, buf, sizeof(*rq));
	return 0;
}
