// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Start-up: count the sockets that existed before the agent, each once.
 *
 * Before attaching, every namespace the agent can find is marked pending
 * ("nsphase"): a namespace made after that holds only new sockets, which the
 * events count. After attaching, each pending namespace is walked with the
 * iter/tcp program, in chunks (it writes a byte per socket, so a read returns
 * as it goes). The walk and the events share the work through "claims"
 * (bpf/startup.bpf.h). Behind the walk the claims are no longer needed: the
 * agent moves "walk_safe" up to the bucket the walk is in, waits until no
 * program that read the old line still runs, and drops the claims below it.
 * So the claims follow what the walk and the events touched lately, never all
 * the sockets of a namespace. When a namespace is done it is no longer pending;
 * when all are, "startup" goes to 0 and the claims map is emptied.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "ephport.h"
#include "startup.h"
#include "ephport.skel.h"

/* bytes read (1 per ehash bucket, bpf/walk.bpf.c) between two drops of the
 * claims behind the walk: 32,768 buckets, one read of the kernel's */
#define CLEANUP_EVERY 32768
/*
 * A read of the walk: more than the kernel's iterator buffer (8 pages), so that
 * only a full buffer ends a read, at the start of a bucket. A read that asks
 * for less ends once it has that much, after the iterator took the next
 * socket, which may be inside a bucket; before 6.16 the next read could then
 * skip a socket there (bpf/walk.bpf.c).
 */
#define WALK_READ (128 * 1024)

int bpf_sync(const struct startup *st)
{
	__u32 zero = 0;

	/* the kernel waits for an RCU grace period on every map-in-map update */
	return bpf_map_update_elem(st->sync_fd, &zero, &st->inner_fd, BPF_ANY) ? -errno : 0;
}

static int sync_open(struct startup *st)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts);

	st->inner_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "eph_sync_in", 4, 4, 1, NULL);
	if (st->inner_fd < 0)
		return neg_errno();
	opts.inner_map_fd = st->inner_fd;
	st->sync_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "eph_sync", 4, 4, 1, &opts);
	return st->sync_fd < 0 ? -errno : 0;
}

int startup_prepare(struct startup *st, struct ephport_bpf *skel, struct netns_set *set)
{
	int fd = bpf_map__fd(skel->maps.nsphase), err;
	__u32 pending = NS_PENDING, n = 0;

	st->skel = skel;
	st->sync_fd = st->inner_fd = -1;
	err = sync_open(st);
	if (err) {
		eph_err("cannot create the map the start-up waits on: %s", strerror(-err));
		return err;
	}
	err = netns_discover(set, "/proc/self/ns/net");
	if (err) {
		eph_err("cannot list network namespaces: %s", strerror(-err));
		return err;
	}
	for (size_t i = 0; i < set->len; i++) {
		if (bpf_map_update_elem(fd, &set->items[i].inum, &pending, BPF_ANY)) {
			err = -errno;
			eph_err("cannot mark namespace %u for the start-up walk: %s",
				set->items[i].inum, strerror(-err));
			return err;
		}
		n++;
	}
	skel->bss->startup = n;
	return 0;
}

/*
 * TIME_WAIT sockets counted in their FIN-WAIT-2 sub-state that have since got
 * their peer's FIN move to TIME_WAIT (bpf/timewait.bpf.c). Nothing to do, as
 * nearly always, when there are none. Each check runs it, and the walk
 * behind itself: checks wait for the walk, and FIN churn would fill "fw2".
 */
void fw2_sweep(struct ephport_bpf *skel)
{
	char buf[64];
	__u64 key;
	ssize_t n;
	int fd;

	if (!skel->links.fw2_sweep || bpf_map_get_next_key(bpf_map__fd(skel->maps.fw2), NULL, &key))
		return;
	fd = bpf_iter_create(bpf_link__fd(skel->links.fw2_sweep));
	if (fd < 0)
		return;
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		;
	close(fd);
}

/* drop the claims of netns (0: of every one) below bucket (UINT_MAX: all of them) */
static void claims_drop(struct startup *st, __u32 netns, __u32 below)
{
	int fd = bpf_map__fd(st->skel->maps.claims);
	struct claim_key *keys;
	__u32 *kinds;
	size_t n, drop = 0;

	if (map_read_all(fd, sizeof(*keys), sizeof(*kinds), (void **)&keys, (void **)&kinds, &n))
		return;
	/* by key: a claim made since under the same key is one these would drop too */
	for (size_t i = 0; i < n; i++)
		if ((!netns || keys[i].netns == netns) &&
		    (below == UINT_MAX || keys[i].bucket < below))
			keys[drop++] = keys[i];
	/* in batches: one system call for many claims, not one each */
	for (size_t done = 0; done < drop;) {
		__u32 count = drop - done; /* at most the map's max_entries */

		/* only the agent deletes claims: ENOENT cannot happen, but never loop on it */
		if (bpf_map_delete_batch(fd, &keys[done], &count, NULL) && errno != ENOENT)
			break;
		done += count + (count < drop - done);
	}
	free(keys);
	free(kinds);
	st->cleanups++;
}

/* move the safe line up to where the walk is, and drop what is behind it */
static int move_safe_line(struct startup *st, __u32 netns)
{
	struct ephport_bpf *s = st->skel;
	__u32 line = s->bss->walk_bucket;
	int err;

	if (line <= s->bss->walk_safe)
		return 0;
	s->bss->walk_safe = line;
	err = bpf_sync(st);
	if (!err)
		claims_drop(st, netns, line);
	fw2_sweep(s);
	return err;
}

/* one namespace's walk, in the namespace this thread is in */
static int walk_here(struct startup *st, struct bpf_link *walk, __u32 netns)
{
	struct ephport_bpf *s = st->skel;
	static char buf[WALK_READ];
	size_t since = 0;
	ssize_t n;
	int fd, err = 0;

	s->bss->walk_safe = 0;
	s->bss->walk_bucket = 0;
	s->bss->walk_netns = netns;
	fd = bpf_iter_create(bpf_link__fd(walk));
	if (fd < 0)
		return neg_errno();
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
		if (n <= 0)
			continue;
		since += n;
		if (since >= CLEANUP_EVERY) {
			err = move_safe_line(st, netns);
			if (err)
				break;
			since = 0;
		}
	}
	if (n < 0)
		err = -errno;
	close(fd);
	return err;
}

/* namespace done: every event there counts as usual from now on */
static int netns_done(struct startup *st, __u32 netns)
{
	struct ephport_bpf *s = st->skel;
	int err;

	s->bss->walk_safe = UINT_MAX;
	bpf_map_delete_elem(bpf_map__fd(s->maps.nsphase), &netns);
	err = bpf_sync(st);
	if (!err)
		claims_drop(st, netns, UINT_MAX);
	s->bss->walk_netns = 0;
	return err;
}

int startup_walk(struct startup *st, struct bpf_link *walk, struct netns_set *set, int home_fd)
{
	struct ephport_bpf *s = st->skel;
	int err;

	for (size_t i = 0; i < set->len; i++) {
		struct netns *ns = &set->items[i];

		/* gone meanwhile: none of its sockets is left to count */
		if (!netns_enter(ns)) {
			err = walk_here(st, walk, ns->inum);
			if (netns_leave(ns, home_fd)) {
				eph_err("cannot return to the agent's network namespace: %s",
					strerror(errno));
				return neg_errno();
			}
			if (err) {
				eph_err("cannot walk network namespace %u (%s): %s", ns->inum,
					ns->path, strerror(-err));
				return err;
			}
			st->walked++;
		}
		err = netns_done(st, ns->inum);
		if (err) {
			eph_err("cannot end the start-up of namespace %u: %s", ns->inum,
				strerror(-err));
			return err;
		}
	}
	s->bss->startup = 0;
	err = bpf_sync(st);
	if (!err)
		claims_drop(st, 0, UINT_MAX);
	return err;
}

void startup_free(struct startup *st)
{
	if (!st)
		return;
	if (st->sync_fd >= 0)
		close(st->sync_fd);
	if (st->inner_fd >= 0)
		close(st->inner_fd);
	st->sync_fd = st->inner_fd = -1;
}
