// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ephport query: ask the running agent (agent_query.c) and print its answer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ephport.h"
#include "opts.h"
#include "query.h"

/*
 * The agent's answer: its status, and the file that holds the text. The
 * connection stays open (*conn) until the text is read: the agent writes that
 * file again only after it closes.
 */
static int ask(const struct query_req *rq, int *memfd, int *conn, char *why, size_t len)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct query_reply r = { 0 };
	struct iovec iov = { .iov_base = &r, .iov_len = sizeof(r) };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	ssize_t n;
	int fd, err;

	*memfd = -1;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", EPH_QUERY_SOCK);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    send(fd, rq, sizeof(*rq), MSG_NOSIGNAL) != (ssize_t)sizeof(*rq)) {
		err = neg_errno();
		snprintf(why, len, "cannot reach the agent at %s: %s%s", EPH_QUERY_SOCK,
			 strerror(-err),
			 err == -EACCES || err == -EPERM ? " (query needs root)" :
							   " (is it starting or stopping?)");
		if (fd >= 0)
			close(fd);
		return err;
	}
	n = recvmsg(fd, &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC);
	err = n < 0 ? neg_errno() : -EPROTO;
	c = CMSG_FIRSTHDR(&msg);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
		memcpy(memfd, CMSG_DATA(c), sizeof(int));
	r.msg[sizeof(r.msg) - 1] = 0;
	if (n != (ssize_t)sizeof(r)) {
		snprintf(why, len, "the agent gave no answer (did it stop?)");
	} else if (r.err) {
		snprintf(why, len, "%s", r.msg);
		err = r.err;
	} else if (*memfd < 0) {
		snprintf(why, len, "the agent's answer came without its text");
	} else {
		/* an answer with a warning: the text and the line both go out */
		snprintf(why, len, "%s", r.msg);
		*conn = fd;
		return 0;
	}
	if (*memfd >= 0)
		close(*memfd);
	close(fd);
	return err;
}

/* the answer to standard output, by the kernel where it can (sendfile) */
static int copy_out(int memfd)
{
	char buf[65536];
	off_t off = 0;
	ssize_t n;

	while ((n = sendfile(STDOUT_FILENO, memfd, &off, 1 << 30)) > 0)
		;
	if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
		lseek(memfd, off, SEEK_SET);
		while ((n = read(memfd, buf, sizeof(buf))) > 0)
			if (write(STDOUT_FILENO, buf, n) != n) {
				n = -1;
				break;
			}
	}
	if (n < 0) {
		eph_err("cannot write the answer: %s", strerror(errno));
		return neg_errno();
	}
	return 0;
}

int query_fetch(const struct query_req *rq, char **text, size_t *len, char *why, size_t wlen)
{
	int memfd, conn = -1, err;
	struct stat st;
	ssize_t n = 0;

	*text = NULL;
	why[0] = 0;
	err = ask(rq, &memfd, &conn, why, wlen);
	if (err)
		return err;
	if (fstat(memfd, &st) || st.st_size < 0 || !(*text = malloc(st.st_size + 1))) {
		err = -ENOMEM;
		snprintf(why, wlen, "cannot read the agent's answer: %s", strerror(errno));
	} else if ((n = pread(memfd, *text, st.st_size, 0)) != st.st_size) {
		err = n < 0 ? neg_errno() : -EIO;
		snprintf(why, wlen, "cannot read the agent's answer: %s", strerror(-err));
	} else {
		(*text)[n] = 0;
		*len = n;
	}
	if (err) {
		free(*text);
		*text = NULL;
	}
	close(memfd);
	close(conn);
	return err;
}

int cmd_query(int argc, char **argv)
{
	struct query_req rq = { .version = QUERY_VERSION };
	int err, memfd, conn = -1;
	char why[320] = "";

	err = opts_parse(&query_cmd, argc, argv, &rq.filter);
	if (err)
		return err > 0 ? 0 : EXIT_USAGE;
	rq.json = eph_json_mode;

	if (agent_require("query", "ephport agent", NULL))
		return 1;
	err = ask(&rq, &memfd, &conn, why, sizeof(why));
	if (why[0])
		eph_err("%s", why);
	if (err)
		return 1;
	err = copy_out(memfd);
	close(memfd);
	close(conn);
	return err ? 1 : 0;
}
