// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * cgroup v2 ids to paths, container ids and pod UIDs. On cgroup2 a cgroup's id is the inode
 * number of its directory, so a path is right when stat() gives back the id. /proc/PID/cgroup
 * names the cgroup cheaply while the process lives and stays put; otherwise the tree is walked,
 * using the inode numbers readdir() gives, without a stat per entry.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ephport.h"
#include "cgroup.h"

#define CID_LEN 64
#define UID_LEN 36

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* 8-4-4-4-12 hex, separated by all dashes (cgroupfs) or all underscores (systemd) */
static bool is_uid(const char *s)
{
	for (int i = 0; i < UID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if ((s[i] != '-' && s[i] != '_') || s[i] != s[8])
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

static void copy_lower(char *dst, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = s[i] == '_' ? '-' : (char)tolower((unsigned char)s[i]);
	dst[n] = '\0';
}

/*
 * One path component. Container ids: "<cid>" (cgroupfs, /docker/<cid>) or "<prefix>-<cid>.scope"
 * (docker-, cri-containerd-, crio-, crio-conmon-, libpod-, ...). Pod UIDs: "pod<uid>" (cgroupfs)
 * or "kubepods[-qos]-pod<uid_with_underscores>.slice" (systemd).
 */
static void parse_component(const char *c, size_t n, struct cgroup_ids *out)
{
	const char *tok;
	size_t at;

	if (n > 6 && (!memcmp(c + n - 6, ".scope", 6) || !memcmp(c + n - 6, ".slice", 6)))
		n -= 6;
	tok = c + n;
	while (tok > c && tok[-1] != '-')
		tok--;
	if (c + n - tok == CID_LEN && all_hex(tok, CID_LEN))
		copy_lower(out->container_id, tok, CID_LEN);
	if (n < UID_LEN + 3)
		return;
	at = n - UID_LEN - 3;
	if (!memcmp(c + at, "pod", 3) && (at == 0 || c[at - 1] == '-') && is_uid(c + at + 3))
		copy_lower(out->pod_uid, c + at + 3, UID_LEN);
}

int cgroup_parse_ids(const char *path, struct cgroup_ids *out)
{
	const char *c;

	if (!out)
		return -EINVAL;
	out->container_id[0] = out->pod_uid[0] = '\0';
	if (!path)
		return 0;
	/* components in order, so the innermost match overwrites the outer ones */
	while (*path) {
		while (*path == '/')
			path++;
		for (c = path; *path && *path != '/'; path++)
			;
		if (path > c)
			parse_component(c, (size_t)(path - c), out);
	}
	return 0;
}

struct cache_ent {
	__u64 id;      /* 0: empty */
	__u64 expires; /* misses: CLOCK_MONOTONIC ns after which the id is looked for again */
	char *path;    /* NULL: a miss */
};

struct cgroup_resolver {
	char mount[PATH_MAX];
	char root[CGROUP_PATH_MAX]; /* cgroup mounted there: "" for the root, else "/a/b" */
	dev_t dev;
	struct cgroup_resolver_stats stats;
	struct cache_ent cache[CGROUP_CACHE_SIZE];
};

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void unescape(char *s)
{
	char *d = s;

	for (; *s; s++, d++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*d = *s;
		}
	}
	*d = '\0';
}

int cgroup2_mount_parse(FILE *f, char mount[PATH_MAX], char root[CGROUP_PATH_MAX])
{
	char r[PATH_MAX], mnt[PATH_MAX], type[32], *line = NULL;
	bool found = false;
	size_t cap = 0;

	/* the first cgroup2 mount of the whole tree, else the first of a subtree */
	while (getline(&line, &cap, f) > 0) {
		const char *sep = strstr(line, " - ");

		if (!sep || sscanf(sep + 3, "%31s", type) != 1 || strcmp(type, "cgroup2") ||
		    sscanf(line, "%*s %*s %*s %4095s %4095s", r, mnt) != 2)
			continue;
		unescape(r);
		unescape(mnt);
		if ((found && (!root[0] || strcmp(r, "/"))) || strlen(r) >= CGROUP_PATH_MAX ||
		    strlen(mnt) >= PATH_MAX)
			continue;
		strcpy(mount, mnt);
		strcpy(root, strcmp(r, "/") ? r : "");
		found = true;
	}
	free(line);
	return found ? 0 : -ENOENT;
}

int cgroup_v2_path(FILE *f, char *path, size_t len)
{
	char *line = NULL;
	size_t cap = 0, n;
	int err = -ENOENT;

	while (getline(&line, &cap, f) > 0) {
		if (strncmp(line, "0::", 3))
			continue;
		n = strcspn(line + 3, "\n");
		if (n < len) {
			memcpy(path, line + 3, n);
			path[n] = '\0';
			err = 0;
		} else {
			err = -ENAMETOOLONG;
		}
		break;
	}
	free(line);
	return err;
}

int cgroup_ids_of_pid(int pid, struct cgroup_ids *out)
{
	char path[32], cg[4096];
	FILE *f;
	int err;

	out->container_id[0] = out->pod_uid[0] = '\0';
	if (pid <= 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
	f = fopen(path, "re");
	if (!f)
		return neg_errno();
	err = cgroup_v2_path(f, cg, sizeof(cg));
	fclose(f);
	return err ?: cgroup_parse_ids(cg, out);
}

static int hex_digit(char c)
{
	return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* n digits of lowercase hex, dashes skipped, into n / 2 bytes */
static void hex_pack(const char *s, __u8 *out, size_t n)
{
	for (size_t i = 0; i < n; s++) {
		if (*s == '-')
			continue;
		out[i / 2] = (__u8)(out[i / 2] << 4 | hex_digit(*s));
		i++;
	}
}

/* n / 2 bytes as n digits; uid: dashed 8-4-4-4-12 */
static void hex_unpack(const __u8 *in, size_t n, bool uid, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		if (uid && (i == 8 || i == 12 || i == 16 || i == 20))
			*out++ = '-';
		*out++ = digits[in[i / 2] >> (i % 2 ? 0 : 4) & 0xf];
	}
	*out = '\0';
}

void cgroup_ids_pack(const struct cgroup_ids *ids, struct netns_pod *p)
{
	memset(p, 0, sizeof(*p));
	p->has_container = ids->container_id[0] != '\0';
	p->has_pod = ids->pod_uid[0] != '\0';
	if (p->has_container)
		hex_pack(ids->container_id, p->container_id, CID_LEN);
	if (p->has_pod)
		hex_pack(ids->pod_uid, p->pod_uid, UID_LEN - 4);
}

void cgroup_ids_unpack(const struct netns_pod *p, struct cgroup_ids *ids)
{
	ids->container_id[0] = ids->pod_uid[0] = '\0';
	if (p->has_container)
		hex_unpack(p->container_id, CID_LEN, false, ids->container_id);
	if (p->has_pod)
		hex_unpack(p->pod_uid, UID_LEN - 4, true, ids->pod_uid);
}

int cgroup_resolver_open(struct cgroup_resolver **rp)
{
	struct cgroup_resolver *r = NULL;
	struct stat st;
	FILE *f = NULL;
	int err = 0;

	*rp = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f) {
		err = -errno;
		goto cleanup;
	}
	err = cgroup2_mount_parse(f, r->mount, r->root);
	if (err)
		goto cleanup;
	if (stat(r->mount, &st)) {
		err = -errno;
		goto cleanup;
	}
	r->dev = st.st_dev;
	*rp = r;
	r = NULL;
cleanup:
	if (f)
		fclose(f);
	free(r);
	return err;
}

const char *cgroup_resolver_mount(const struct cgroup_resolver *r)
{
	return r->mount;
}

/* ids are inode numbers handed out in sequence: their low bits spread well */
static struct cache_ent *slot(struct cgroup_resolver *r, __u64 id)
{
	return &r->cache[(id ^ id >> 32) & (CGROUP_CACHE_SIZE - 1)];
}

static bool is_cgroup(const struct cgroup_resolver *r, const struct stat *st, __u64 id)
{
	return S_ISDIR(st->st_mode) && st->st_ino == id && st->st_dev == r->dev;
}

/* the "0::" line of /proc/PID/cgroup, if the directory it names is that id */
static int from_pid(struct cgroup_resolver *r, __u64 id, pid_t pid, char *out)
{
	char file[32], fs[PATH_MAX], p[PATH_MAX];
	size_t rlen = strlen(r->root);
	struct stat st;
	int err, n;
	FILE *f;

	snprintf(file, sizeof(file), "/proc/%d/cgroup", (int)pid);
	f = fopen(file, "re");
	if (!f)
		return -ENOENT; /* gone */
	err = cgroup_v2_path(f, p, sizeof(p));
	fclose(f);
	/* paths outside our cgroup namespace or mount ("/../x") and " (deleted)" fail here */
	if (err || strncmp(p, r->root, rlen) || (p[rlen] && p[rlen] != '/'))
		return -ENOENT;
	n = snprintf(fs, sizeof(fs), "%s%s", r->mount, p + rlen);
	if (n < 0 || (size_t)n >= sizeof(fs) || stat(fs, &st) || !is_cgroup(r, &st, id))
		return -ENOENT;
	n = snprintf(out, CGROUP_PATH_MAX, "%s", p);
	return n > 0 && n < CGROUP_PATH_MAX ? 0 : -ENOENT;
}

/* depth first under dfd (closed here), which path[0..off) names; on a find path is the answer */
static int walk(struct cgroup_resolver *r, int dfd, __u64 id, char *path, size_t off, int depth)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;
	int err = -ENOENT, n, fd;
	struct stat st;

	if (!d) {
		close(dfd);
		return -ENOENT;
	}
	while (err && (e = readdir(d))) {
		if ((e->d_type != DT_DIR && e->d_type != DT_UNKNOWN) || !strcmp(e->d_name, ".") ||
		    !strcmp(e->d_name, ".."))
			continue;
		n = snprintf(path + off, CGROUP_PATH_MAX - off, "/%s", e->d_name);
		if (n < 0 || (size_t)n >= CGROUP_PATH_MAX - off)
			continue;
		if (e->d_ino == id && !fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) &&
		    is_cgroup(r, &st, id)) {
			err = 0;
			break;
		}
		if (depth <= 1)
			continue;
		fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) || st.st_dev != r->dev) { /* another mount */
			close(fd);
			continue;
		}
		err = walk(r, fd, id, path, off + (size_t)n, depth - 1);
	}
	if (err)
		path[off] = '\0';
	closedir(d);
	return err;
}

static int walk_tree(struct cgroup_resolver *r, __u64 id, char *out)
{
	struct stat st;
	int fd;

	fd = open(r->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	strcpy(out, r->root);
	if (!fstat(fd, &st) && is_cgroup(r, &st, id)) {
		close(fd);
		strcpy(out, r->root[0] ? r->root : "/");
		return 0;
	}
	return walk(r, fd, id, out, strlen(out), CGROUP_WALK_DEPTH);
}

static int copy_out(const char *s, char *path, size_t len)
{
	size_t n = strlen(s);

	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(path, s, n + 1);
	return 0;
}

int cgroup_resolve(struct cgroup_resolver *r, __u64 id, pid_t pid, char *path, size_t len)
{
	char buf[CGROUP_PATH_MAX];
	struct cache_ent *e;
	__u64 now;
	int err;

	if (!r || !path || !len)
		return -EINVAL;
	if (!id)
		return -ENOENT; /* what bpf_get_current_cgroup_id() gives without cgroup2 */
	e = slot(r, id);
	now = mono_ns();
	if (e->id == id && (e->path || now < e->expires)) {
		r->stats.cached++;
		return e->path ? copy_out(e->path, path, len) : -ENOENT;
	}
	err = pid > 0 ? from_pid(r, id, pid, buf) : -ENOENT;
	if (!err) {
		r->stats.from_pid++;
	} else {
		r->stats.walks++;
		err = walk_tree(r, id, buf);
		if (err)
			r->stats.missing++;
	}
	/* whatever held the slot goes; a failed strdup only means no caching */
	free(e->path);
	e->path = err ? NULL : strdup(buf);
	e->id = err || e->path ? id : 0;
	e->expires = now + CGROUP_MISS_TTL_MS * 1000000ULL;
	return err ? err : copy_out(buf, path, len);
}

void cgroup_resolver_stats(const struct cgroup_resolver *r, struct cgroup_resolver_stats *s)
{
	*s = r->stats;
}

void cgroup_resolver_close(struct cgroup_resolver *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < CGROUP_CACHE_SIZE; i++)
		free(r->cache[i].path);
	free(r);
}
