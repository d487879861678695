// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * One agent per host. The agent holds a POSIX write lock on EPH_LOCK_PATH for
 * its whole life; the kernel drops it when the process dies, even on kill -9,
 * so a lock that can be taken means no agent is alive, whatever files remain.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ephport.h"

static struct flock whole_file(short type)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	return fl;
}

/* 0 and *fd_out on success; -EBUSY and *holder (0 if unknown) when another agent runs */
int agent_lock_acquire(int *fd_out, long *holder)
{
	char pid[32];
	int fd, n;

	for (;;) {
		struct flock fl = whole_file(F_WRLCK);
		struct stat a, b;

		if (mkdir(EPH_RUN_DIR, 0755) && errno != EEXIST)
			return neg_errno();
		fd = open(EPH_LOCK_PATH, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0 && errno == ENOENT)
			continue; /* an exiting agent removed the directory meanwhile */
		if (fd < 0)
			return neg_errno();
		if (fcntl(fd, F_SETLK, &fl)) {
			int err = errno;

			fl = whole_file(F_WRLCK);
			*holder =
				fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK ? fl.l_pid : 0;
			close(fd);
			return err == EACCES || err == EAGAIN ? -EBUSY : -err;
		}
		/* an agent that was exiting may have unlinked the file we opened */
		if (fstat(fd, &a) == 0 && stat(EPH_LOCK_PATH, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			break;
		close(fd);
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) || pwrite(fd, pid, n, 0) != n) {
		int err = errno ? -errno : -EIO;

		close(fd);
		return err;
	}
	*fd_out = fd;
	return 0;
}

/*
 * 1 when an agent holds the lock (*pid is 0 when it runs in another PID namespace),
 * 0 when none does, -errno when it cannot be told.
 */
int agent_lock_holder(pid_t *pid)
{
	struct flock fl = whole_file(F_WRLCK);
	int fd = open(EPH_LOCK_PATH, O_RDONLY | O_CLOEXEC);
	int ret;

	*pid = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fcntl(fd, F_GETLK, &fl)) {
		ret = -errno;
	} else {
		ret = fl.l_type != F_UNLCK;
		*pid = ret ? fl.l_pid : 0;
	}
	close(fd);
	return ret;
}

/* unlink first: a new agent then creates a fresh file instead of waiting on ours */
void agent_lock_release(int fd)
{
	if (fd < 0)
		return;
	unlink(EPH_LOCK_PATH);
	close(fd);
	rmdir(EPH_RUN_DIR); /* only if empty */
}
