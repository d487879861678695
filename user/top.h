/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ephport top: a live view of the running agent. top_model.c turns the agent's query
 * answers into what a frame shows (rates from one answer to the next, sorting, the
 * lines of a frame); top.c asks, draws (ncurses, or plain text when the output is no
 * terminal) and takes keys.
 */
#ifndef EPHPORT_TOP_H
#define EPHPORT_TOP_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "opts.h"

extern const struct opts_cmd top_cmd;

enum top_sort {
	TOP_SORT_UTIL, /* utilization, then usage: nearest to exhaustion first */
	TOP_SORT_RATE, /* connects per second */
	TOP_SORT_TW,   /* TIME_WAIT share of usage */
	TOP_SORT_DST,  /* destination, then namespace */
	TOP_SORT_N,
};
const char *top_sort_name(enum top_sort s);

/* a tuple as the view shows it */
struct top_row {
	__u64 netns;
	char src[48], dst[56]; /* "addr", "addr:port" ([v6]:port) */
	__u64 usage, capacity, time_wait, connects, failed;
	double util;
	int level;	/* 0 ok, 1 warning, 2 critical, 3 exhausted; -1 unknown */
	double rate;	/* connects per second since the previous answer; < 0: not known yet */
	double full_in; /* seconds until usage reaches capacity at that pace; < 0: not growing */
};

struct top_ns {
	__u64 netns;
	char name[64]; /* its /run/netns path, or "-" */
	__u32 low, high;
	int tw_reuse;
	size_t tuples;
	double worst; /* the highest utilization among its tuples */
	int worst_level;
};

#define TOP_RECENT 16
struct top_state {
	/* the latest answer */
	struct top_row *rows;
	size_t nrows, cap_rows;
	struct top_ns *ns;
	size_t nns, cap_ns;
	size_t nat_tuples, nat_hot;   /* NAT tuples, and those above ok */
	char recent[TOP_RECENT][160]; /* the agent's recent alerting lines, newest last */
	size_t nrecent;
	long agent_pid;
	__u64 map_tuples; /* the agent's tuples map holds this many, shown or not */
	double at;	  /* when it came (monotonic seconds) */
	/* the answer before, for rates: sorted by key */
	struct top_row *prev;
	size_t nprev;
	double prev_at;
	enum top_sort sort;
};

/* takes a query --json answer that came at monotonic time now: 0, or -EINVAL (not one) */
int top_take(struct top_state *s, const char *json, double now);
void top_free(struct top_state *s);

/* a line of a frame, and where its level word is (for colour; len 0: none) */
struct top_line {
	char text[512];
	int level;
	size_t level_at, level_len;
	bool heading, columns; /* a section's heading; the column headings */
};

/* what the header says besides the counts */
struct top_head {
	const char *host_time; /* "12:00:01" */
	double interval;
	const char *filter; /* "" or "netns 4026532245 dst 10.0.0.1:443" */
	const char *status; /* "" or why the last answer failed, or a prompt */
	bool whole;	    /* no terminal: every line, none padded (height: room enough) */
};

/*
 * the frame for a width x height terminal: fills at most height lines, returns how many;
 * with whole, height is at least top_frame_lines()
 */
size_t top_frame_lines(const struct top_state *s);
size_t top_frame(const struct top_state *s, const struct top_head *h, int width, int height,
		 struct top_line *lines);

#endif /* EPHPORT_TOP_H */
