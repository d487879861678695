/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * "ephport query" asks the running agent, over a root-only Unix socket, and
 * prints what it answers: the agent's copy of the counts, brought up to date
 * for the question (query.c the client, agent_query.c the agent's side,
 * query_render.c what both print).
 */
#ifndef EPHPORT_QUERY_H
#define EPHPORT_QUERY_H

#include <stdio.h>
#include <sys/types.h>

#include "ephport.h"
#include "guard.h"
#include "nat.h"
#include "spread.h"
#include "opts.h"

#define EPH_QUERY_SOCK EPH_RUN_DIR "/query.sock"
#define QUERY_VERSION  2

/* query_opts.c: the options, into a struct tuple_filter */
extern const struct opts_cmd query_cmd;

struct query_req {
	__u32 version;
	__u32 json;
	struct tuple_filter filter;
};

/*
 * A question as the agent received it (n bytes) into rq: 0, or -EPROTO when it is none
 * this version asks: another size or version, or a flag other than 0 or 1 (read as a
 * bool, any other byte is undefined behaviour).
 */
int query_req_take(const void *buf, size_t n, struct query_req *rq);

/* with an answer (err 0) comes the file that holds it, as SCM_RIGHTS */
struct query_reply {
	__s32 err; /* negative errno */
	char msg[256];
};

/* what a query shows */
struct query_view {
	pid_t agent;
	const struct tuple_list *tuples;
	const __u32 *order; /* the tuples shown, indices into tuples, most used first */
	size_t norder;
	size_t seen; /* tuples in the map, shown or not */
	const struct ns_list *nl;
	const struct spread_addr *spread; /* --spread: bit i of a namespace's spread_local */
	size_t nspread;
	const struct agent_stats *st;
	const struct guard_info *guard;
	const struct denial *denials;
	size_t ndenials;
	const struct spread_count *spreads; /* those the filter keeps */
	size_t nspreads;
	bool nat_enabled;	   /* not --no-nat */
	const struct nat_row *nat; /* the NAT tuples, most utilized first */
	size_t nnat;
	const struct nat_ns_row *nat_ns;
	size_t nnat_ns;
	const __u8 *levels; /* each tuple's level (enum level), by index; NULL: not known */
	const struct report *report; /* its recent alerting lines; NULL: none */
};

/*
 * query.c: asks the running agent and reads its whole answer into *text (malloc'd, NUL
 * ended): 0, or a negative errno with why it failed in why. A warning that came with an
 * answer is in why too.
 */
int query_fetch(const struct query_req *rq, char **text, size_t *len, char *why, size_t wlen);
int query_render(FILE *out, const struct query_req *rq, const struct query_view *v);
/* query_nat.c: the NAT sections */
int nat_section_to_json(const struct query_view *v, const struct tuple_filter *f, cJSON *doc);
void print_nat(FILE *out, const struct query_view *v, const struct tuple_filter *f);

#endif /* EPHPORT_QUERY_H */
