/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What the agent costs: its programs, its maps, its CPU and memory (cost.c). */
#ifndef EPHPORT_COST_H
#define EPHPORT_COST_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <cjson/cJSON.h>

struct tuples_bpf;
struct bpf_map;

/* a /proc file kept open and read again from its start: one pread() a reading */
struct proc_file {
	char path[64];
	int fd; /* -1: opened at the next reading */
};

/* the maps that hold data: tuples, sockets, ... notices */
#define COST_MAPS 11

struct cost {
	struct tuples_bpf *skel;
	struct proc_file status, bpf_stats;
	struct {
		const struct bpf_map *map;
		struct proc_file fdinfo;
	} maps[COST_MAPS];
	__u64 cpu_us, at_ns; /* at the previous stats line */
};

/* after the programs are attached: CPU time is counted from here */
void cost_init(struct cost *c, struct tuples_bpf *skel);
void cost_free(struct cost *c);
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
