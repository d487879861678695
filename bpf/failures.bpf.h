/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A failure counted per (tuple, process) in "failures", and the notice that
 * wakes the agent: for failing connect() and bind() (failures.bpf.c) and the
 * guard's refusals (guard.bpf.c).
 */
#ifndef EPHPORT_FAILURES_BPF_H
#define EPHPORT_FAILURES_BPF_H

#include "maps.bpf.h"

/* the agent woken: a (tuple, process) failing, or (NOTICE_SPREAD) a (tuple, cgroup) spread */
static __always_inline void notify_of(__u32 type, const void *k)
{
	struct notice *n = bpf_ringbuf_reserve(&notices, sizeof(*n), 0);

	if (!n) {
		stat_inc(EPH_STAT_NOTICES_LOST);
		return;
	}
	n->type = type;
	n->pad = 0;
	/* both kinds of key have the same size (bpf/tuples.h) */
	__builtin_memcpy(&n->key, k, sizeof(n->key));
	bpf_ringbuf_submit(n, 0);
}

static __always_inline void notify(const struct fail_key *k)
{
	notify_of(NOTICE_FAILURE, k);
}

static __always_inline void fail_count(const struct fail_key *k, const struct call *c)
{
	__u64 now = bpf_ktime_get_ns(), pid_tgid = bpf_get_current_pid_tgid();
	struct fail_val *v, init = { .first_ns = now };
	bool wake;
	int err;

	v = lookup_or_init(&failures, k, &init, &err);
	if (!v) {
		if (err == -E2BIG)
			stat_inc(EPH_STAT_FAILURES_FULL);
		return;
	}
	__sync_fetch_and_add(&v->count, 1);
	/* the first failure, or the first after a quiet second: wake the agent */
	wake = now - v->last_ns > NSEC_PER_SEC;
	/* the latest failure's thread and tuple counts: the last writer wins */
	v->last_ns = now;
	v->tid = (__u32)pid_tgid;
	v->uid = (__u32)bpf_get_current_uid_gid();
	v->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(v->comm, sizeof(v->comm));
	if (c->has_tuple) {
		v->in_use = c->in_use;
		v->time_wait = c->time_wait;
		v->time_wait_ts = c->time_wait_ts;
		v->port_range = c->port_range;
		v->tw_reuse = c->tw_reuse;
		v->has_tuple = 1;
	}
	/* after the count: the agent reads the entry when the notice arrives */
	if (wake)
		notify(k);
}

#endif /* EPHPORT_FAILURES_BPF_H */
