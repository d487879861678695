/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Start-up: the agent's half of counting the sockets that existed before it
 * (bpf/startup.bpf.h has the programs' half).
 */
#ifndef EPHPORT_STARTUP_H
#define EPHPORT_STARTUP_H

#include <stdbool.h>
#include <bpf/libbpf.h>

#include "netns.h"

struct ephport_bpf;

struct startup {
	struct ephport_bpf *skel;
	int sync_fd, inner_fd; /* an array of maps: an update waits out an RCU grace period */
	__u64 cleanups;	       /* claims dropped behind a walk */
	unsigned int walked;   /* namespaces walked */
};

/* before the programs are attached: every namespace found now is pending */
int startup_prepare(struct startup *st, struct ephport_bpf *skel, struct netns_set *set);
/* after: walk each pending one (entering it), then count as usual everywhere */
int startup_walk(struct startup *st, struct bpf_link *walk, struct netns_set *set, int home_fd);
/* wait until no BPF program that started before this call is still running */
int bpf_sync(const struct startup *st);
void startup_free(struct startup *st);
/* FIN-WAIT-2 minisockets that got their peer's FIN move to TIME_WAIT in their tuple */
void fw2_sweep(struct ephport_bpf *skel);

#endif /* EPHPORT_STARTUP_H */
