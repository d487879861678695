/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The agent's view of the network namespaces it can step into. */
#ifndef EPHPORT_NETNS_H
#define EPHPORT_NETNS_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "index.h"
#include "tuples.h"

struct netns {
	__u32 inum;
	char path[64];	/* how it was found this round: /run/netns/NAME, /proc/PID/ns/net */
	bool home;	/* the agent's own: entered through the saved descriptor */
	bool alive;	/* found in the latest round */
	int pid;	/* the first process found in it this round; 0: none */
	int pod_pid;	/* the process whose cgroup gave info.pod */
	__u64 tried_ns; /* when the agent last tried to read it (CLOCK_MONOTONIC); 0: never */
	struct netns_info info;
};

struct netns_set {
	struct netns *items;
	size_t len, cap;
	struct u32_index idx; /* by inum */
};

int netns_discover(struct netns_set *s, const char *home_path);
/* the ones not found in the latest round dropped (drop called for each first); 0 or -ENOMEM */
int netns_prune(struct netns_set *s, void (*drop)(const struct netns *, void *), void *arg);
int netns_enter(const struct netns *ns);
int netns_leave(const struct netns *ns, int home_fd);
int netns_read_info(struct netns_info *info);
/*
 * What netns_read_info() makes of the texts it reads: ip_local_port_range, tcp_tw_reuse,
 * tcp_max_tw_buckets, ip_local_reserved_ports and /proc/net/sockstat. One that could not
 * be read is NULL: its field stays as it was (tw_kernel: -1). 0, or -EINVAL when the
 * port range is none.
 */
int netns_info_parse(struct netns_info *info, const char *range, const char *tw_reuse,
		     const char *max_tw, const char *reserved, const char *sockstat);
/*
 * spread_local.c: which of the --spread addresses spread[0..n) are local in the current
 * network namespace, bit i for spread[i] (rtnetlink); 0, or -errno and *mask as it was
 */
int spread_local_read(const struct spread_addr *spread, size_t n, __u32 *mask);
int sockstat_time_wait(const char *text, __s64 *tw);
void netns_set_free(struct netns_set *s);

#endif /* EPHPORT_NETNS_H */
