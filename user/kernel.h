/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What the running kernel offers ephport: the optional features and what lacks them. */
#ifndef EPHPORT_KERNEL_H
#define EPHPORT_KERNEL_H

#include <stdbool.h>
#include <stdio.h>
#include <linux/types.h>
#include <cjson/cJSON.h>

/*
 * Optional features, each probed at start: where one is missing the agent still
 * runs and says what that costs (docs/kernels.md).
 */
enum kernel_feature {
	KF_TASK_PT_REGS,      /* bpf_task_pt_regs (5.15): failures need no syscall entry programs */
	KF_SET_RETVAL,	      /* bpf_set_retval (5.18): the guard refuses with any errno */
	KF_RECURSION_MISSES,  /* skipped runs counted per program (5.12) */
	KF_TW_CONNECT_BIND,   /* tw_connect_bind (6.17): start-up knows each TIME_WAIT's side */
	KF_PORT_RANGE_PACKED, /* ip_local_port_range in one u32 (6.8): layout only */
	KF_MAP_MEM_USAGE,     /* maps report the memory they use (6.4), not an estimate */
	KF_MAP_MEMCG,	      /* map memory charged to the memory cgroup (5.11), not to memlock */
	KF_TRACING_MAP_ALLOC, /* classic tracepoints may use maps that allocate on use (6.1) */
	KF_COUNT,
};

/* the oldest kernel ephport runs on (docs/kernels.md), as the error lines say it */
#define EPH_MIN_KERNEL "5.10"

struct kernel_info {
	char release[65];
	bool has[KF_COUNT];
	unsigned int thread_size; /* THREAD_SIZE: a task's kernel stack (32 KiB with KASAN) */
};

/* probes what this kernel has; 0, or a negative errno after one line on stderr (no BTF...) */
int kernel_probe(struct kernel_info *k);
/* the name of a feature in agent_start's "kernel.features" */
const char *kernel_feature_name(enum kernel_feature f);
/* {"release": ..., "features": {name: bool, ...}} into obj under "kernel" */
int kernel_to_json(const struct kernel_info *k, cJSON *obj);
/* the address of name in a /proc/kallsyms text (f): 0, or -ENOENT when it is not there */
int kallsyms_find(FILE *f, const char *name, __u64 *addr);

#endif /* EPHPORT_KERNEL_H */
