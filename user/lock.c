// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * One agent per host. The agent holds a POSIX write lock on EPH_LOCK_PATH for
 * its whole life; the kernel drops it when the process dies, even on kill -9,
 * so a lock that can be taken means no agent is alive, whatever files remain.
 *
 * The lock and its directory are root's alone (privdir.c): a user who could
 * open the file could wait for a read lock, get it when the agent dies, and so
 * keep every later agent from starting.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ephport.h"
#include "privdir.h"

static struct flock whole_file(short type)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	return fl;
}

/*
 * 0 and *fd_out on success; -EBUSY and *holder (0 if unknown) when another agent
 * runs, for the caller to say; any other error after one line on stderr.
 */
int agent_lock_acquire(int *fd_out, long *holder)
{
	char pid[32];
	int fd, n, err;

	for (;;) {
		struct flock fl = whole_file(F_WRLCK);
		struct stat a, b;

		err = privdir_make(EPH_RUN_DIR);
		if (err)
			return err;
		fd = open(EPH_LOCK_PATH, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno == ENOENT)
			continue; /* an exiting agent removed the directory meanwhile */
		/* an older agent's file was 0644 */
		if (fd < 0 || fchmod(fd, 0600)) {
			eph_err("cannot open the agent lock %s: %s", EPH_LOCK_PATH,
				strerror(errno));
			err = neg_errno();
			if (fd >= 0)
				close(fd);
			return err;
		}
		if (fcntl(fd, F_SETLK, &fl)) {
			int err = errno;

			fl = whole_file(F_WRLCK);
			*holder =
				fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK ? fl.l_pid : 0;
			close(fd);
			if (err == EACCES || err == EAGAIN)
				return -EBUSY;
			eph_err("cannot lock %s: %s", EPH_LOCK_PATH, strerror(err));
			return -err;
		}
		/* an agent that was exiting may have unlinked the file we opened */
		if (fstat(fd, &a) == 0 && stat(EPH_LOCK_PATH, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			break;
		close(fd);
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) || pwrite(fd, pid, n, 0) != n) {
		eph_err("cannot write %s: %s", EPH_LOCK_PATH, strerror(errno));
		err = neg_errno();
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
	int fd, ret;

	*pid = 0;
	/* no one but root can have made it: then it is no agent's */
	ret = privdir_check(EPH_RUN_DIR);
	if (ret == -ENOENT || ret == -EPERM)
		return 0; /* none, or not an agent's: an agent makes it root's */
	if (ret)
		return ret;
	fd = open(EPH_LOCK_PATH, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
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

int agent_require(const char *cmd, const char *start, pid_t *pid)
{
	pid_t holder;
	int err = agent_lock_holder(&holder);

	if (err == -EACCES) {
		eph_err("cannot check for a running agent (%s): %s (%s needs root)", EPH_LOCK_PATH,
			strerror(-err), cmd);
		return 1;
	}
	if (err < 0) {
		eph_err("cannot check for a running agent (%s): %s", EPH_LOCK_PATH, strerror(-err));
		return 1;
	}
	if (err == 0) {
		eph_err("no ephport agent is running (start one with '%s')", start);
		return 1;
	}
	if (pid)
		*pid = holder;
	return 0;
}
