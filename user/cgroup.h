/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* From a cgroup v2 id (bpf_get_current_cgroup_id()) to a path, a container id and a pod UID. */
#ifndef EPHPORT_CGROUP_H
#define EPHPORT_CGROUP_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <linux/types.h>

#define CGROUP_PATH_MAX	   512
#define CGROUP_CACHE_SIZE  4096 /* resolved ids remembered, a power of two */
#define CGROUP_MISS_TTL_MS 5000 /* how long an id not found is not looked for again */
#define CGROUP_WALK_DEPTH  64

struct cgroup_ids {
	char container_id[65]; /* 64 lowercase hex chars, "" when the path carries none */
	char pod_uid[37];      /* canonical 8-4-4-4-12 lowercase with dashes, "" when none */
};

/* pure: find a container id and pod UID in a cgroup path, the last of each wins; returns 0
 * (fields may be ""), -EINVAL without out */
int cgroup_parse_ids(const char *path, struct cgroup_ids *out);

/* the ids of the cgroup of process pid (its /proc/PID/cgroup): 0, or -errno */
int cgroup_ids_of_pid(int pid, struct cgroup_ids *out);
/* to and from the packed form of a map value (bpf/tuples.h) */
struct netns_pod;
void cgroup_ids_pack(const struct cgroup_ids *ids, struct netns_pod *p);
void cgroup_ids_unpack(const struct netns_pod *p, struct cgroup_ids *ids);

/*
 * The texts the resolver reads, parsed (f: the file, or fmemopen() of a text).
 * cgroup2_mount_parse: /proc/self/mountinfo's first cgroup2 mount of the whole tree, else
 * its first of a subtree; mount gets where it is mounted, root the cgroup mounted there
 * ("" for the whole tree, else "/a/b"). 0, or -ENOENT without one.
 * cgroup_v2_path: /proc/PID/cgroup's "0::" path, without the newline; 0, -ENOENT
 * without such a line, -ENAMETOOLONG when it does not fit in len.
 */
int cgroup2_mount_parse(FILE *f, char mount[PATH_MAX], char root[CGROUP_PATH_MAX]);
int cgroup_v2_path(FILE *f, char *path, size_t len);

struct cgroup_resolver;

struct cgroup_resolver_stats {
	__u64 cached;	/* answered from the cache, found or not */
	__u64 from_pid; /* found through /proc/PID/cgroup */
	__u64 walks;	/* walks of the cgroup2 tree */
	__u64 missing;	/* walks that did not find the id */
};

/* finds the cgroup2 mount in /proc/self/mountinfo; 0, or -errno (-ENOENT: cgroup2 not mounted) */
int cgroup_resolver_open(struct cgroup_resolver **r);
/* the mount point found, e.g. "/sys/fs/cgroup/unified" on a hybrid host */
const char *cgroup_resolver_mount(const struct cgroup_resolver *r);
/*
 * The path of cgroup id relative to the cgroup2 root ("/" for the root, "/a/b" otherwise):
 * 0, -ENOENT, or -ENAMETOOLONG when it does not fit in len. pid (0 when unknown) is a hint:
 * its /proc/PID/cgroup is checked against the id first, the tree is walked when that fails.
 * Not thread-safe: one resolver per thread.
 */
int cgroup_resolve(struct cgroup_resolver *r, __u64 id, pid_t pid, char *path, size_t len);
void cgroup_resolver_stats(const struct cgroup_resolver *r, struct cgroup_resolver_stats *s);
void cgroup_resolver_close(struct cgroup_resolver *r);

#endif /* EPHPORT_CGROUP_H */
