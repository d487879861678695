/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The agent's state and options, shared by its files: agent.c (start-up, the
 * loop, the end), agent_check.c (the checks), agent_lines.c (its own lines),
 * agent_upkeep.c (namespaces, forgetting), agent_query.c (answering query),
 * agent_bpf.c (the BPF object: what the kernel offers, loading, pinning,
 * attaching, the guard's cgroups) and agent_opts.c (the command line).
 */
#ifndef EPHPORT_AGENT_H
#define EPHPORT_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "ephport.h"
#include "cost.h"
#include "failures.h"
#include "guard.h"
#include "kernel.h"
#include "metrics.h"
#include "metrics_http.h"
#include "nat.h"
#include "netns.h"
#include "opts.h"
#include "pressure.h"
#include "sink.h"
#include "spread.h"
#include "startup.h"
#include "table.h"

#define MAX_EXEMPT 64

struct agent_opts {
	uint64_t interval;
	double warn, crit, margin;
	uint64_t hold;
	const char *output;
	uint64_t output_kib;
	bool guard, audit;
	const char *cgroup_root;
	double deny_at;
	uint64_t quota;
	__u32 deny_errno;
	const char *exempt[MAX_EXEMPT];
	size_t nexempt;
	bool exempt_system;
	struct spread_addr spread[MAX_SPREAD]; /* --spread, in the order given */
	size_t nspread;
	double spread_at;
	uint64_t max_tuples;
	uint64_t tuple_idle;
	const char *host;
	const char *metrics_addr; /* as given; NULL: no metrics */
	struct metrics_addr metrics;
	uint64_t metrics_top;
	bool no_nat;		    /* --no-nat */
	struct nat_range nat_range; /* --nat-range; low 0: none */
	double nat_warn, nat_crit;
	bool verbose;
};

struct agent {
	struct agent_opts opts;
	char system_exempt[2][4096]; /* what --exempt-system found */
	size_t nsystem_exempt;
	struct kernel_info kernel;
	struct ephport_bpf *skel;
	struct startup startup;
	char host[256];
	bool pinned;
	struct report report;
	struct pressure *pressure;
	struct failures *failures;
	struct spreads *spreads;
	struct nat_view *nat; /* NULL: --no-nat, or it could not start */
	struct cost cost;
	struct ring_buffer *notices;
	struct bpf_link *guard4, *guard6;
	struct guard_info guard;
	struct tuple_table table; /* the tuples as of the latest check */
	struct ns_list latest_ns;
	struct ring_buffer *changes; /* keys of the tuples that changed (bpf/maps.bpf.h) */
	struct tuple_key *chg_keys;  /* read from it at this check */
	size_t nchg, capchg;
	bool chg_overflow;  /* more than a full read costs: read all */
	bool full_read;	    /* the next check reads the whole map (start-up) */
	__u64 changes_lost; /* the kernel's count at the latest full read */
	__u64 full_reads;   /* whole-map reads after the first */
	__u64 metrics_ns;   /* when /metrics was last rendered */
	__u32 *order;	    /* the table most used first, as of order_version */
	__u64 order_version;
	size_t guard_uncovered; /* destinations near the line guard_dst had no room for */
	bool ns_share_counting; /* the programs count tuples per namespace (ns_tuples) */
	/* the share counts as read before the table (agent_share_snapshot) */
	__u64 share_count;
	__u32 *share_keys;
	__s64 *share_vals;
	size_t share_n;
	bool capacity_redone; /* the latest check computed a namespace's capacities again */
	int query_fd;	      /* the query socket (agent_query.c) */
	int answer_fd;	      /* the memory file kept for answers, */
	int answer_conn;      /* the connection of its latest reader, */
	__u64 answer_ns;      /* and when it was written */
	__u64 queries;
	bool check_now;	  /* a notice asks for a pressure check */
	__u64 last_check; /* CLOCK_MONOTONIC ns */
	__u64 checks;
	__u64 tuples_expired;
	struct timespec started;
	struct netns_set netns;
	int home_fd; /* our own network namespace, to come back to */
	__u64 netns_unreachable;
	/* tuples marked to forget, deleted at the next snapshot if no connect came */
	struct tuple_key *retiring;
	size_t nretiring;
	__u64 retire_races; /* a connect() met a tuple as the agent deleted it */
	double bootstrap_ms;
	struct metrics *metrics;
	struct retired_set retired; /* counters of expired tuples, for /metrics */
	double start_time_s;	    /* Unix time */
};

/* agent_opts.c: 0; 1 when --help was printed; -EINVAL after a line on stderr (bad option) */
extern const struct opts_cmd agent_cmd;
extern const struct agent_opts agent_opts_default;
int agent_parse_opts(int argc, char **argv, struct agent_opts *o);

/* agent_bpf.c; each returns 0, or a negative errno after one line on stderr */
int agent_preflight(struct agent *a);
void agent_degrade_settings(struct agent *a);
void agent_degrade_notes(struct agent *a);
int agent_ensure_bpffs(void);
void agent_unpin_all(void);
int agent_pin_maps(struct agent *a);
int agent_load_bpf(struct agent *a);
int agent_attach_bpf(struct agent *a);
int agent_guard_setup(struct agent *a);

#define MAX_RETIRING 1024 /* the "retiring" map's size: tuples forgotten per snapshot */

/* agent_check.c: the tuples brought up to date; the tuples most used first (indices) */
int agent_refresh(struct agent *a);
const __u32 *agent_sorted_view(struct agent *a);
int agent_watch_setup(struct agent *a);
int agent_check(struct agent *a);

/* agent_lines.c */
void agent_emit_start(struct agent *a);
int agent_snapshot(struct agent *a);
void agent_emit_stop(struct agent *a, const char *reason, int signal);

/* agent_upkeep.c */
/* the time a round of namespaces reads for, after the start-up's */
#define NETNS_ROUND_NS (50 * 1000000ull)
int agent_netns_round(struct agent *a, bool all);
void agent_forget(struct agent *a);
void agent_share_snapshot(struct agent *a);
void agent_tuples_share(struct agent *a);

/* agent_signal.c: SIGINT, SIGTERM and SIGHUP, taken by a thread of their own */
#define STOP_GRACE_S 5 /* after SIGINT or SIGTERM: then the agent exits, stopped or not */
int agent_signals_start(void);
int agent_signals_fd(void);    /* readable after a signal */
int agent_stop_signal(void);   /* 0 until SIGINT or SIGTERM came */
bool agent_reopen_asked(void); /* a SIGHUP came since the last call */
void agent_signals_pinned(bool pinned);

/* agent_query.c */
int agent_query_listen(struct agent *a);
void agent_query_serve(struct agent *a);
void agent_query_close(struct agent *a);
void agent_query_trim(struct agent *a, __u64 now);

#endif /* EPHPORT_AGENT_H */
