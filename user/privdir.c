// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's directories, EPH_RUN_DIR (lock, query socket) and EPH_PIN_DIR
 * (pinned maps), are root's alone: a directory the agent's user owns, mode
 * 0700. bpffs is mounted 1777 unless told otherwise, so anyone may have made
 * EPH_PIN_DIR while no agent ran, and would own what the agent pins in it.
 *
 * Whatever is found there instead (another user's directory, a symlink, a
 * file) is moved aside by rename, which follows nothing, and then removed
 * through descriptors opened with O_NOFOLLOW, so that a symlink swapped in
 * meanwhile leads nowhere. Readers (query, guard status) check the same
 * before they open anything inside.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ephport.h"
#include "privdir.h"

#define REMOVE_DEPTH   8    /* deeper than any tree the agent makes */
#define REMOVE_ENTRIES 4096 /* a tree someone keeps filling is left, and said so */

bool privdir_trusted(const struct stat *st)
{
	return S_ISDIR(st->st_mode) && (st->st_uid == 0 || st->st_uid == geteuid()) &&
	       !(st->st_mode & 077);
}

/* everything under the directory dfd, which is closed; entries left to remove in *budget */
static int remove_under(int dfd, int depth, int *budget)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;
	int err = 0;

	if (!d) {
		close(dfd);
		return neg_errno();
	}
	while (!err && (e = readdir(d))) {
		int sub;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (--*budget < 0) {
			err = -E2BIG;
			break;
		}
		if (!unlinkat(dirfd(d), e->d_name, 0))
			continue;
		if (errno != EISDIR && errno != EPERM) {
			err = neg_errno();
			break;
		}
		sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0 || depth >= REMOVE_DEPTH) {
			err = sub < 0 ? neg_errno() : -ELOOP;
			if (sub >= 0)
				close(sub);
			break;
		}
		err = remove_under(sub, depth + 1, budget);
		if (!err && unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR))
			err = neg_errno();
	}
	closedir(d);
	return err;
}

/* what is at path, moved aside and removed; a line says what it was */
static int replace(const char *path, const struct stat *st)
{
	char aside[256];
	int budget = REMOVE_ENTRIES, dfd, err = 0;

	/* no dots: bpffs refuses them in names */
	snprintf(aside, sizeof(aside), "%s-untrusted-%ld-%ld", path, (long)getpid(),
		 (long)time(NULL));
	if (rename(path, aside)) {
		eph_err("%s is not the agent's own (owner uid %u, mode %04o) and cannot be moved "
			"aside: %s",
			path, st->st_uid, st->st_mode & 07777, strerror(errno));
		return neg_errno();
	}
	if (S_ISDIR(st->st_mode)) {
		dfd = open(aside, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		err = dfd < 0 ? neg_errno() : remove_under(dfd, 0, &budget);
		if (!err && rmdir(aside))
			err = neg_errno();
	} else if (unlink(aside)) {
		err = neg_errno();
	}
	eph_err("note: %s was not the agent's own (owner uid %u, mode %04o, %s): replaced%s%s%s",
		path, st->st_uid, st->st_mode & 07777,
		S_ISDIR(st->st_mode) ? "a directory" :
		S_ISLNK(st->st_mode) ? "a symlink" :
				       "not a directory",
		err ? "; what it held is left in " : "", err ? aside : "",
		err ? " for you to look at" : "");
	return 0;
}

int privdir_make(const char *path)
{
	struct stat st;
	int err;

	if (lstat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode) && st.st_uid == geteuid()) {
			/* ours, from an older agent or by hand: only the mode to mend */
			if ((st.st_mode & 0777) != 0700 && chmod(path, 0700))
				return neg_errno();
		} else {
			err = replace(path, &st);
			if (err)
				return err;
		}
	} else if (errno != ENOENT) {
		eph_err("cannot check %s: %s", path, strerror(errno));
		return neg_errno();
	}
	if (mkdir(path, 0700) && errno != EEXIST) {
		eph_err("cannot create %s: %s", path, strerror(errno));
		return neg_errno();
	}
	/* someone may have raced us to it: what is there now must be ours */
	if (lstat(path, &st) || !privdir_trusted(&st) || st.st_uid != geteuid()) {
		eph_err("%s was made again by someone else while the agent made its own: "
			"refusing to use it",
			path);
		return -EPERM;
	}
	return 0;
}

int privdir_check(const char *path)
{
	struct stat st;

	if (lstat(path, &st))
		return neg_errno();
	return privdir_trusted(&st) ? 0 : -EPERM;
}
