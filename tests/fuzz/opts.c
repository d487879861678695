// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The option tables and their values (opts.c, agent_opts.c, query_opts.c, guard.c):
 * opts_parse() on a made-up command line. The first byte picks the command (agent,
 * query, guard); the rest, cut at NUL bytes, is argv[1..]. What a parse accepts must be
 * within what the tables allow.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "agent.h"
#include "fuzz.h"
#include "guard.h"
#include "opts.h"
#include "query.h"

#define MAX_WORDS 64

static void agent(int argc, char **argv)
{
	struct agent_opts o = agent_opts_default;

	if (agent_parse_opts(argc, argv, &o))
		return;
	FUZZ_ASSERT(o.interval >= 1 && o.interval <= 86400);
	FUZZ_ASSERT(o.margin < o.warn && o.warn < o.crit && o.crit <= 1);
	FUZZ_ASSERT(o.deny_at >= 0.01 && o.deny_at <= 1);
	FUZZ_ASSERT(o.max_tuples >= 1 && o.output_kib >= 1);
	FUZZ_ASSERT(o.nexempt <= MAX_EXEMPT);
	FUZZ_ASSERT(o.deny_errno == EADDRNOTAVAIL || o.deny_errno == EPERM);
	FUZZ_ASSERT(!o.metrics_addr || o.metrics.ss.ss_family == AF_INET ||
		    o.metrics.ss.ss_family == AF_INET6);
	FUZZ_ASSERT(!o.host || (*o.host && strlen(o.host) <= 255));
	FUZZ_ASSERT(o.guard || (!o.audit && !o.quota && !o.nexempt && !o.cgroup_root));
}

static void query(int argc, char **argv)
{
	struct tuple_filter f = { 0 };

	eph_json_mode = false;
	if (opts_parse(&query_cmd, argc, argv, &f))
		return;
	FUZZ_ASSERT(!f.netns_set || f.netns);
	FUZZ_ASSERT(!f.dport_set || (f.dst_set && f.dport));
	FUZZ_ASSERT(!f.dst_set || f.dst_family == AF_INET || f.dst_family == AF_INET6);
	FUZZ_ASSERT(!f.src_set || f.src_family == AF_INET || f.src_family == AF_INET6);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *words[MAX_WORDS], *argv[MAX_WORDS + 2], *buf;
	size_t n;

	if (!size)
		return 0;
	n = fuzz_split(data + 1, size - 1, words, MAX_WORDS, &buf);
	argv[0] = "ephport";
	memcpy(argv + 1, words, n * sizeof(*words));
	argv[n + 1] = NULL;
	switch (data[0] % 3) {
	case 0:
		agent(n + 1, argv);
		break;
	case 1:
		query(n + 1, argv);
		break;
	default:
		opts_parse(&guard_cmd, n + 1, argv, NULL);
		break;
	}
	free(buf);
	return 0;
}
