// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's side of "ephport query": a Unix socket only root can reach. Each
 * question brings the agent's copy of the counts up to date (the tuples that
 * changed since the last check, as a check does) and the answer is written to
 * a memory file whose descriptor goes back to the client: the client copies it
 * to its output at its own pace, and a slow reader never holds up the agent.
 *
 * The agent keeps one memory file and its pages from one answer to the next:
 * a page the kernel must find and clear costs more than writing it (7 ms of a
 * 22 MB answer here, another 3 ms to free it). The client holds its connection
 * until it has read the answer; the kept file is written again only once that
 * connection is closed, and a question that comes meanwhile gets a file of
 * its own. The kept file goes after ANSWER_KEEP_NS without a question.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "agent.h"
#include "ephport.skel.h"
#include "query.h"

#define CLIENT_TIMEOUT_MS 200 /* a client that sends nothing is dropped after this long */
#define ANSWER_KEEP_NS	  (10 * 1000000000ull)
#define QUERY_WRITE_BUF	  (1 << 20)

int agent_query_listen(struct agent *a)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	mode_t old;
	int fd;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", EPH_QUERY_SOCK);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		eph_err("cannot make the query socket: %s", strerror(errno));
		return neg_errno();
	}
	/* the agent lock is held: a socket left there is a dead agent's */
	unlink(sun.sun_path);
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) || listen(fd, 16)) {
		umask(old);
		eph_err("cannot listen on %s: %s", sun.sun_path, strerror(errno));
		close(fd);
		return neg_errno();
	}
	umask(old);
	a->query_fd = fd;
	return 0;
}

/* the kept answer file and the connection reading it go */
static void answer_drop(struct agent *a)
{
	if (a->answer_conn >= 0)
		close(a->answer_conn);
	if (a->answer_fd >= 0)
		close(a->answer_fd);
	a->answer_conn = a->answer_fd = -1;
}

void agent_query_close(struct agent *a)
{
	answer_drop(a);
	if (a->query_fd < 0)
		return;
	close(a->query_fd);
	a->query_fd = -1;
	unlink(EPH_QUERY_SOCK);
}

/* the client of the latest kept answer has closed its connection: it read all */
static bool answer_read(struct agent *a)
{
	char c;

	if (a->answer_conn < 0)
		return true;
	if (recv(a->answer_conn, &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK))
		return false;
	close(a->answer_conn);
	a->answer_conn = -1;
	return true;
}

void agent_query_trim(struct agent *a, __u64 now)
{
	if (a->answer_fd >= 0 && now - a->answer_ns > ANSWER_KEEP_NS && answer_read(a))
		answer_drop(a);
}

/* the memory file for this answer: the kept one if its reader is done, else one of its own */
static int answer_file(struct agent *a, bool *kept)
{
	*kept = false;
	if (!answer_read(a))
		return memfd_create("ephport-query", MFD_CLOEXEC);
	if (a->answer_fd < 0)
		a->answer_fd = memfd_create("ephport-query", MFD_CLOEXEC);
	if (a->answer_fd < 0 || lseek(a->answer_fd, 0, SEEK_SET))
		return neg_errno();
	*kept = true;
	return a->answer_fd;
}

/* the tuples the question asks for, most used first */
static __u32 *query_order(struct agent *a, const struct tuple_filter *f, size_t *n)
{
	const struct tuple_list *l = &a->table.list;
	__u32 *idx = malloc((l->len + 1) * sizeof(*idx));
	const __u32 *all;

	*n = 0;
	if (!idx)
		return NULL;
	if (!f->netns_set && !f->src_set && !f->dst_set && (all = agent_sorted_view(a))) {
		memcpy(idx, all, l->len * sizeof(*idx));
		*n = l->len;
		return idx;
	}
	/* a filter: only what it keeps is sorted */
	for (size_t i = 0; i < l->len; i++)
		if (filter_match(f, &l->items[i]))
			idx[(*n)++] = i;
	tuple_index_sort(l, idx, *n);
	return idx;
}

static int answer(struct agent *a, const struct query_req *rq, int memfd, char *warn, size_t len)
{
	struct agent_stats st = { .max_tuples = a->opts.max_tuples };
	struct guard_info gi = a->guard;
	struct query_view v = {
		.agent = getpid(),
		.tuples = &a->table.list,
		.nl = &a->latest_ns,
		.spread = a->opts.spread,
		.nspread = a->opts.nspread,
		.st = &st,
		.guard = &gi,
	};
	struct denial *denials = NULL;
	struct spread_count *spreads = NULL;
	__u8 *levels = NULL;
	__u32 *order = NULL;
	FILE *out = NULL;
	int err;

	err = agent_refresh(a);
	if (!err)
		err = stats_read(bpf_map__fd(a->skel->maps.stats), &st);
	if (!err)
		err = guard_denials_read(bpf_map__fd(a->skel->maps.denials), &denials, &v.ndenials);
	/* the spread counts as of now: lines that are due go out with it */
	if (!err)
		err = spreads_drain(a->spreads, mono_ns(), false);
	if (!err)
		err = spreads_read(a->spreads, &rq->filter, &spreads, &v.nspreads);
	if (err) {
		free(denials);
		return err;
	}
	v.spreads = spreads;
	v.nat_enabled = a->nat != NULL;
	if (a->nat) {
		v.nat = nat_view_rows(a->nat, &v.nnat);
		v.nat_ns = nat_view_namespaces(a->nat, &v.nnat_ns);
	}
	v.seen = a->table.list.len;
	v.denials = denials;
	v.report = &a->report;
	levels = malloc(a->table.list.len + 1);
	if (levels && a->pressure)
		pressure_levels(a->pressure, &a->table, levels);
	v.levels = a->pressure ? levels : NULL;
	order = query_order(a, &rq->filter, &v.norder);
	v.order = order;
	out = order ? fdopen(dup(memfd), "w") : NULL;
	if (!out) {
		err = -ENOMEM;
		goto out;
	}
	/* few large writes into the memory file rather than one per 4 KiB */
	setvbuf(out, NULL, _IOFBF, QUERY_WRITE_BUF);
	err = query_render(out, rq, &v);
	if (fclose(out) && !err)
		err = -EIO;
	/* a kept file may hold a longer answer from before */
	if (!err && ftruncate(memfd, lseek(memfd, 0, SEEK_CUR)))
		err = -errno;
	if (!rq->json && (st.counters[EPH_STAT_TUPLES_FULL] || st.counters[EPH_STAT_TIMEWAIT_FULL]))
		snprintf(warn, len,
			 "maps were full: %llu new tuples and %llu server TIME_WAIT sockets not "
			 "counted (raise --max-tuples %u)",
			 (unsigned long long)st.counters[EPH_STAT_TUPLES_FULL],
			 (unsigned long long)st.counters[EPH_STAT_TIMEWAIT_FULL], st.max_tuples);
out:
	free(levels);
	free(order);
	free(denials);
	free(spreads);
	return err;
}

static void reply(int fd, const struct query_reply *r, int memfd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)r, .iov_len = sizeof(*r) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	if (memfd >= 0) {
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &memfd, sizeof(int));
	}
	/* a client gone meanwhile gets nothing: its loss */
	sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* one question waiting on the socket, if any */
void agent_query_serve(struct agent *a)
{
	struct timeval tv = { .tv_usec = CLIENT_TIMEOUT_MS * 1000 };
	struct query_reply r = { 0 };
	char buf[sizeof(struct query_req)];
	struct query_req rq;
	int fd, memfd = -1;
	bool kept = false;
	ssize_t n;

	fd = accept4(a->query_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* the client's bytes are checked before they are a struct: its flags are bools */
	n = recv(fd, buf, sizeof(buf), MSG_WAITALL);
	if (n < 0 || query_req_take(buf, (size_t)n, &rq)) {
		r.err = -EPROTO;
		snprintf(r.msg, sizeof(r.msg),
			 "the agent (version %s) did not understand the "
			 "question: is this ephport the same version as the agent?",
			 EPHPORT_VERSION);
		goto out;
	}
	memfd = answer_file(a, &kept);
	r.err = memfd < 0 ? -errno : answer(a, &rq, memfd, r.msg, sizeof(r.msg));
	if (r.err) {
		snprintf(r.msg, sizeof(r.msg), "the agent cannot answer: %s", strerror(-r.err));
		if (memfd >= 0 && !kept)
			close(memfd);
		memfd = -1;
	}
out:
	reply(fd, &r, memfd);
	if (memfd >= 0 && kept) {
		/* the file is written again once this client has closed the connection */
		a->answer_conn = fd;
		a->answer_ns = mono_ns();
	} else {
		if (memfd >= 0)
			close(memfd);
		close(fd);
	}
	a->queries++;
}
