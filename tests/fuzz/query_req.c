// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The question a query client sends the agent over its socket (struct query_req), taken
 * as the agent takes it (query_req_take, agent_query.c), its filter applied to a few
 * tuples and the answer rendered, as a table or JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "query.h"

#define NTUPLES 3

static struct tuple tuples[NTUPLES];
static struct ns_summary nss[2];
static FILE *devnull;

static void setup(void)
{
	static const __u8 v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };

	for (int i = 0; i < NTUPLES; i++) {
		struct tuple_key *k = &tuples[i].key;

		k->family = i == 2 ? AF_INET6 : AF_INET;
		if (i == 2) {
			memcpy(k->saddr, v6, 16);
			memcpy(k->daddr, v6, 16);
		} else {
			memcpy(k->saddr, (__u8[]){ 127, 0, 0, 1 }, 4);
			memcpy(k->daddr, (__u8[]){ 10, 0, 0, (__u8)(i + 1) }, 4);
		}
		k->netns = 4026531840u + (i & 1);
		k->dport = 80 + i;
		tuples[i].val.states[EPH_TCP_TIME_WAIT] = 5 * i;
		tuples[i].val.connects = 7;
		tuple_finish(&tuples[i]);
	}
	for (int i = 0; i < 2; i++) {
		nss[i].inum = 4026531840u + i;
		nss[i].port_range = 32768 | 60999u << 16;
	}
	devnull = fopen("/dev/null", "w");
	if (!devnull)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tuple_list l = { .items = tuples, .len = NTUPLES, .cap = NTUPLES };
	struct ns_list nl = { .items = nss, .len = 2, .cap = 2 };
	struct agent_stats st = { .max_tuples = 65536 };
	struct guard_info gi = { .mode = GUARD_OFF };
	struct query_view v = { .agent = 1, .tuples = &l, .nl = &nl, .st = &st, .guard = &gi };
	struct query_req rq;
	__u32 order[NTUPLES];

	if (!devnull)
		setup();
	/* as agent_query_serve() takes it: recv() reads that much at the most */
	if (query_req_take(data, size < sizeof(rq) ? size : sizeof(rq), &rq))
		return 0;
	for (size_t i = 0; i < NTUPLES; i++)
		if (filter_match(&rq.filter, &tuples[i]))
			order[v.norder++] = i;
	tuple_index_sort(&l, order, v.norder);
	v.order = order;
	v.seen = NTUPLES;
	FUZZ_ASSERT(query_render(devnull, &rq, &v) == 0);
	return 0;
}
