// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Network namespaces: finding them, stepping into one, and reading its settings.
 * The BPF side sees every namespace through its events; the agent needs to step
 * inside for what only the namespace's own /proc shows and for iter/tcp walks,
 * which cover the namespace of the reader only.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ephport.h"
#include "netns.h"

static struct netns *netns_add(struct netns_set *s, __u32 inum)
{
	long at = u32_index_find(&s->idx, s->items, inum);
	struct netns *ns;

	if (at >= 0)
		return &s->items[at];
	if (s->len == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct netns *items = realloc(s->items, cap * sizeof(*items));

		if (!items)
			return NULL;
		s->items = items;
		s->cap = cap;
	}
	ns = &s->items[s->len];
	memset(ns, 0, sizeof(*ns));
	ns->inum = inum;
	s->idx.stride = sizeof(*ns);
	s->idx.key_off = offsetof(struct netns, inum);
	if (u32_index_added(&s->idx, s->items, s->len + 1))
		return NULL;
	s->len++;
	return ns;
}

int netns_prune(struct netns_set *s, void (*drop)(const struct netns *, void *), void *arg)
{
	size_t kept = 0;

	for (size_t i = 0; i < s->len; i++) {
		if (!s->items[i].alive) {
			if (drop)
				drop(&s->items[i], arg);
			continue;
		}
		s->items[kept++] = s->items[i];
	}
	if (kept == s->len)
		return 0;
	s->len = kept;
	return u32_index_rebuild(&s->idx, s->items, s->len);
}

/* the first path found in this round is the one used to enter it */
static int found(struct netns_set *s, const char *path, bool home)
{
	struct netns *ns;
	struct stat st;

	if (stat(path, &st))
		return 0; /* the process exited, or the name went away */
	ns = netns_add(s, (__u32)st.st_ino);
	if (!ns)
		return -ENOMEM;
	if (!ns->alive) {
		ns->alive = true;
		ns->home = home;
		snprintf(ns->path, sizeof(ns->path), "%s", path);
	}
	if (!ns->pid)
		sscanf(path, "/proc/%d/ns/net", &ns->pid);
	return 0;
}

/*
 * Our own namespace, the named ones (/run/netns, as ip netns makes them) and
 * those of running processes. One round costs a stat() per process.
 */
int netns_discover(struct netns_set *s, const char *home_path)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int err;

	for (size_t i = 0; i < s->len; i++) {
		s->items[i].alive = false;
		s->items[i].pid = 0;
	}
	err = found(s, home_path, true);
	if (err)
		return err;
	d = opendir("/run/netns");
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || strlen(de->d_name) > sizeof(path) - 12)
			continue;
		snprintf(path, sizeof(path), "/run/netns/%s", de->d_name);
		if ((err = found(s, path, false)))
			break;
	}
	if (d)
		closedir(d);
	if (err)
		return err;
	d = opendir("/proc");
	if (!d)
		return neg_errno();
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%.20s/ns/net", de->d_name);
		if ((err = found(s, path, false)))
			break;
	}
	closedir(d);
	return err;
}

/* into the namespace, checking that the path still names the same one */
int netns_enter(const struct netns *ns)
{
	struct stat st;
	int fd, err = 0;

	if (ns->home)
		return 0; /* never left: no setns(), which would need CAP_SYS_ADMIN */
	fd = open(ns->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	if (fstat(fd, &st))
		err = -errno;
	else if ((__u32)st.st_ino != ns->inum)
		err = -ESTALE; /* the pid was reused by a process elsewhere */
	else if (setns(fd, CLONE_NEWNET))
		err = -errno;
	close(fd);
	return err;
}

int netns_leave(const struct netns *ns, int home_fd)
{
	if (ns->home)
		return 0;
	return setns(home_fd, CLONE_NEWNET) ? -errno : 0;
}

static int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	int err = 0;

	if (!f)
		return neg_errno();
	if (!fgets(buf, len, f))
		err = ferror(f) ? -EIO : -ENODATA;
	fclose(f);
	return err;
}

/* "TCP: inuse 5 orphan 0 tw 20 alloc 7 mem 1" */
int sockstat_time_wait(const char *text, __s64 *tw)
{
	const char *p = strstr(text, "TCP: ");
	long long v;

	if (!p)
		return -EINVAL;
	p = strstr(p, " tw ");
	if (!p || sscanf(p, " tw %lld", &v) != 1)
		return -EINVAL;
	*tw = v;
	return 0;
}

int netns_info_parse(struct netns_info *info, const char *range, const char *tw_reuse,
		     const char *max_tw, const char *reserved, const char *sockstat)
{
	unsigned int lo, hi, v;

	info->tw_kernel = -1;
	if (!range || sscanf(range, "%u %u", &lo, &hi) != 2 || lo > 65535 || hi > 65535)
		return -EINVAL;
	info->port_range = lo | hi << 16;
	if (tw_reuse && sscanf(tw_reuse, "%u", &v) == 1)
		info->tw_reuse = v;
	if (max_tw && sscanf(max_tw, "%u", &v) == 1)
		info->max_tw = v;
	info->reserved = 0;
	if (reserved)
		reserved_ports_count(reserved, info->port_range, &info->reserved);
	if (sockstat)
		sockstat_time_wait(sockstat, &info->tw_kernel);
	return 0;
}

/* settings and the kernel's own TIME_WAIT count, read from inside the namespace */
int netns_read_info(struct netns_info *info)
{
	char range[64], tw_reuse[32], max_tw[32], sockstat[4096], *reserved = NULL;
	bool has_tw_reuse, has_max_tw, has_reserved = false, has_sockstat = false;
	size_t cap = 0, n;
	FILE *f;
	int err;

	info->tw_kernel = -1;
	err = read_line("/proc/sys/net/ipv4/ip_local_port_range", range, sizeof(range));
	if (err)
		return err;
	has_tw_reuse = !read_line("/proc/sys/net/ipv4/tcp_tw_reuse", tw_reuse, sizeof(tw_reuse));
	has_max_tw = !read_line("/proc/sys/net/ipv4/tcp_max_tw_buckets", max_tw, sizeof(max_tw));
	/* the list can be long: read the whole line */
	f = fopen("/proc/sys/net/ipv4/ip_local_reserved_ports", "re");
	if (f) {
		has_reserved = getline(&reserved, &cap, f) > 0;
		fclose(f);
	}
	/* the thread's namespace, which setns() changed; /proc/self/net follows the leader */
	f = fopen("/proc/thread-self/net/sockstat", "re");
	if (f) {
		n = fread(sockstat, 1, sizeof(sockstat) - 1, f);
		sockstat[n] = '\0';
		has_sockstat = true;
		fclose(f);
	}
	err = netns_info_parse(info, range, has_tw_reuse ? tw_reuse : NULL,
			       has_max_tw ? max_tw : NULL, has_reserved ? reserved : NULL,
			       has_sockstat ? sockstat : NULL);
	free(reserved);
	return err;
}

void netns_set_free(struct netns_set *s)
{
	if (!s)
		return;
	free(s->items);
	u32_index_free(&s->idx);
	s->items = NULL;
	s->len = s->cap = 0;
}
