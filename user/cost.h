/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What the agent costs: its programs, its maps, its CPU and memory (cost.c). */
#ifndef EPHPORT_COST_H
#define EPHPORT_COST_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <cjson/cJSON.h>

struct ephport_bpf;
struct bpf_map;

/* a /proc file kept open and read again from its start: one pread() a reading */
struct proc_file {
	char path[64];
	int fd; /* -1: opened at the next reading */
};

/* the maps whose memory is shown (OBJ_COST in objects.c), at most */
#define COST_MAPS 16

struct cost {
	struct ephport_bpf *skel;
	struct proc_file status, bpf_stats;
	struct {
		const struct bpf_map *map;
		struct proc_file fdinfo;
	} maps[COST_MAPS];
	size_t nmaps;
	__u64 cpu_us, at_ns;  /* at the previous stats line */
	__u64 check_ns_total; /* time in checks since the start */
	__u64 check_ns_max;   /* the longest check since the previous stats line */
};

/* the programs that count events and the guard's: at most this many are loaded */
#define COST_PROGS 10

struct cost_prog {
	const char *name;
	__u64 runs, run_time_ns, missed;
};

struct cost_map {
	const char *name;
	__u64 max_entries, bytes;
};

/* one reading of what the programs and maps cost, for the stats line and /metrics */
struct cost_reading {
	int nprogs; /* -1: the programs' figures could not be read */
	struct cost_prog progs[COST_PROGS];
	size_t nmaps;
	struct cost_map maps[COST_MAPS];
	bool bpf_stats;		     /* kernel.bpf_stats_enabled: runs and run time are counted */
	__u64 rss_kib, peak_rss_kib; /* 0: unknown */
	__u64 cpu_us;		     /* user and system time of the agent */
	__u64 check_ns_total;	     /* time in checks since the start */
};

/* after the programs are attached: CPU time is counted from here */
void cost_init(struct cost *c, struct ephport_bpf *skel);
void cost_free(struct cost *c);
void cost_read(struct cost *c, struct cost_reading *r);
/* a check took this long: the stats line's longest, the metrics' total */
void cost_check_done(struct cost *c, __u64 took_ns);
/* the stats line's cost fields; tuples and max_tuples as that line has them */
int cost_to_json(struct cost *c, size_t tuples, __u32 max_tuples, cJSON *obj);

/*
 * The number of the line "key:<blanks>N<unit>\n" of a /proc text (fdinfo, status):
 * 0, -ENOENT without such a line, -EINVAL when it is malformed.
 */
int proc_field(const char *text, const char *key, const char *unit, __u64 *out);
/* a sysctl's text is "1" */
bool proc_flag_on(const char *text);

#endif /* EPHPORT_COST_H */
