// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Where the agent's JSON lines go: standard output or a file opened for append.
 * A writer thread does the writing, so a slow or stuck sink (a full pipe, a
 * hung disk) never stalls the agent: lines wait in a bounded queue, and a line
 * that does not fit, or that the sink refuses, is counted and dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "ephport.h"
#include "sink.h"

struct line {
	struct line *next;
	size_t len;
	size_t lines; /* text holds this many lines */
	char text[];  /* with its '\n' */
};

struct sink {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t writer;
	struct line *head, **tail;
	size_t queued, max_queued; /* bytes */
	bool stop, reopen, started;
	int fd;
	char *path; /* NULL: standard output */
	_Atomic __u64 dropped;
	_Atomic __u64 errors; /* writes and reopens that failed */
	bool torn;	      /* a line was cut short: the next write starts a new line */
	size_t batch_max;     /* bytes per write: PIPE_BUF unless a regular file */
	__u64 said_ns;	      /* when the latest error was told on stderr */
};

#define ERROR_EVERY_NS (60 * 1000000000ull) /* write errors on stderr at most once a minute */

/*
 * The output file, opened without following a symlink, without becoming our
 * terminal, and without waiting for a FIFO's reader. Only a regular file of the
 * agent's own user is taken. On a refusal, why says what was there.
 */
static int open_path(const char *path, char *why, size_t len)
{
	int fd =
		open(path,
		     O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK,
		     0640);
	struct stat st;
	int err;

	if (fd < 0) {
		err = -errno;
		snprintf(why, len, "%s",
			 err == -ELOOP ? "it is a symbolic link, which the agent does not follow; "
					 "give the file's own path" :
			 err == -ENXIO ? "it is a FIFO or a socket, not a regular file" :
					 strerror(-err));
		return err;
	}
	if (fstat(fd, &st)) {
		err = neg_errno();
		snprintf(why, len, "%s", strerror(-err));
	} else if (!S_ISREG(st.st_mode)) {
		err = -EINVAL;
		snprintf(why, len, "it is %s, not a regular file",
			 S_ISFIFO(st.st_mode)			    ? "a FIFO" :
			 S_ISSOCK(st.st_mode)			    ? "a socket" :
			 S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" :
								      "no regular file");
	} else if (st.st_uid != geteuid()) {
		err = -EPERM;
		snprintf(why, len, "it belongs to uid %u, not to the agent's uid %u",
			 (unsigned)st.st_uid, (unsigned)geteuid());
	} else if (fcntl(fd, F_SETFL, O_APPEND) < 0) { /* blocking writes from here on */
		err = neg_errno();
		snprintf(why, len, "%s", strerror(-err));
	} else {
		return fd;
	}
	close(fd);
	return err;
}

/* a write failed: counted, and told on stderr, the first time and then once a minute */
static void write_failed(struct sink *s, int err)
{
	__u64 n = atomic_fetch_add(&s->errors, 1) + 1, now = mono_ns();

	if (n > 1 && now - s->said_ns < ERROR_EVERY_NS)
		return;
	s->said_ns = now;
	eph_err("cannot write to %s: %s; lines are dropped and counted until it takes them "
		"again (%llu failed writes so far, told at most once a minute)",
		s->path ? s->path : "standard output", strerror(err), (unsigned long long)n);
}

/* held over each line's writes: a forced exit takes it first, and cuts no line */
static pthread_mutex_t line_gate = PTHREAD_MUTEX_INITIALIZER;

void sink_hold_lines(void)
{
	pthread_mutex_lock(&line_gate);
}

/*
 * One entry (a line, or lines joined), however many writes it takes; false when the
 * sink refused it. Each write ends at a line's end and is at most batch_max bytes,
 * unless a single line is longer.
 */
static bool write_line(struct sink *s, const struct line *l, size_t off)
{
	bool ok = true;

	pthread_mutex_lock(&line_gate);
	while (off < l->len) {
		size_t len = l->len - off;
		ssize_t n;

		if (len > s->batch_max) {
			const char *nl = memrchr(l->text + off, '\n', s->batch_max);

			if (!nl) /* a line longer than batch_max: alone, to its end */
				nl = memchr(l->text + off, '\n', len);
			len = nl ? (size_t)(nl - (l->text + off)) + 1 : len;
		}
		n = write(s->fd, l->text + off, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			write_failed(s, n < 0 ? errno : EIO);
			s->torn = off > 0 && l->text[off - 1] != '\n';
			ok = false;
			break;
		}
		off += n;
	}
	pthread_mutex_unlock(&line_gate);
	return ok;
}

/* a line cut short ends before the next one starts: no two lines are ever glued */
static bool mend(struct sink *s)
{
	ssize_t n;

	if (!s->torn)
		return true;
	while ((n = write(s->fd, "\n", 1)) < 0 && errno == EINTR)
		;
	if (n != 1) {
		write_failed(s, n < 0 ? errno : EIO);
		return false;
	}
	s->torn = false;
	return true;
}

#define BATCH_IOV 256 /* lines per writev(): a snapshot of many tuples is a few calls */

/*
 * How much one write may carry. A write of at most PIPE_BUF bytes to a pipe is
 * atomic, and to a local stream socket (journald's stdout) it is queued whole, so
 * an exit while the writer waits on a reader that stopped reading cuts no line;
 * a regular file never keeps a write waiting, and takes big batches.
 */
static size_t batch_max_of(int fd)
{
	struct stat st;

	return !fstat(fd, &st) && S_ISREG(st.st_mode) ? SIZE_MAX : PIPE_BUF;
}

/* writes a batch; on failure the rest of the batch is dropped */
static void write_batch(struct sink *s, struct line *l)
{
	struct iovec iov[BATCH_IOV];
	struct line *part[BATCH_IOV];
	bool failed = !mend(s);

	while (l) {
		size_t n = 0, done, bytes = 0;
		ssize_t w = -1;

		/* whole lines, at least one: a longer line goes alone */
		for (; l && n < BATCH_IOV && (!n || bytes + l->len <= s->batch_max);
		     l = l->next, n++) {
			part[n] = l;
			iov[n] = (struct iovec){ .iov_base = l->text, .iov_len = l->len };
			bytes += l->len;
		}
		/* an entry longer than one atomic write: in parts, under the gate */
		if (!failed && bytes > s->batch_max) {
			w = write_line(s, part[0], 0) ? (ssize_t)bytes : 0;
			failed = !w;
		}
		while (!failed && bytes <= s->batch_max && (w = writev(s->fd, iov, n)) < 0 &&
		       errno == EINTR)
			;
		if (!failed && w < 0)
			write_failed(s, errno);
		done = w > 0 ? (size_t)w : 0;
		/* what a short write left: line by line */
		for (size_t i = 0; i < n; i++) {
			size_t off = done < part[i]->len ? done : part[i]->len;

			done -= off;
			if (failed || w < 0 ||
			    (off < part[i]->len && !write_line(s, part[i], off))) {
				failed = true;
				atomic_fetch_add(&s->dropped, part[i]->lines);
			}
			free(part[i]);
		}
	}
}

static void *writer_main(void *arg)
{
	struct sink *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct line *batch;
		bool reopen;

		while (!s->head && !s->stop && !s->reopen)
			pthread_cond_wait(&s->wake, &s->lock);
		batch = s->head;
		reopen = s->reopen;
		s->head = NULL;
		s->tail = &s->head;
		s->queued = 0;
		s->reopen = false;
		if (!batch && s->stop)
			break;
		pthread_mutex_unlock(&s->lock);
		if (reopen && s->path) {
			/* logrotate moved the file away: write on at the same name */
			char why[128];
			int fd = open_path(s->path, why, sizeof(why));

			if (fd >= 0) {
				close(s->fd);
				s->fd = fd;
				s->batch_max = batch_max_of(fd);
				s->torn = false; /* a new file starts clean */
			} else {
				atomic_fetch_add(&s->errors, 1);
				eph_err("cannot open %s again, writing on to the old file: %s",
					s->path, why);
			}
		}
		write_batch(s, batch);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int sink_open(struct sink **out, const char *path, size_t max_queued)
{
	struct sink *s = calloc(1, sizeof(*s));
	char why[128];
	int err;

	if (!s)
		return -ENOMEM;
	s->tail = &s->head;
	s->max_queued = max_queued;
	s->fd = STDOUT_FILENO;
	if (path) {
		s->path = strdup(path);
		s->fd = s->path ? open_path(path, why, sizeof(why)) : -ENOMEM;
		if (s->fd < 0) {
			err = s->fd;
			eph_err("cannot open %s for appending: %s", path,
				s->path ? why : strerror(ENOMEM));
			free(s->path);
			free(s);
			return err;
		}
	}
	s->batch_max = batch_max_of(s->fd);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	err = -pthread_create(&s->writer, NULL, writer_main, s);
	if (err) {
		sink_close(s, 0);
		return err;
	}
	s->started = true;
	*out = s;
	return 0;
}

int sink_put_lines(struct sink *s, const char *text, size_t len, size_t lines)
{
	struct line *l = malloc(sizeof(*l) + len + 1);

	if (!l) {
		atomic_fetch_add(&s->dropped, lines);
		return -ENOMEM;
	}
	memcpy(l->text, text, len);
	l->text[len] = '\n';
	l->len = len + 1;
	l->lines = lines;
	l->next = NULL;
	pthread_mutex_lock(&s->lock);
	/* into an empty queue any line fits, however long */
	if (s->queued && s->queued + l->len > s->max_queued) {
		pthread_mutex_unlock(&s->lock);
		free(l);
		atomic_fetch_add(&s->dropped, lines);
		return -ENOBUFS;
	}
	/* the writer waits only on an empty queue */
	if (!s->head)
		pthread_cond_signal(&s->wake);
	*s->tail = l;
	s->tail = &l->next;
	s->queued += l->len;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int sink_put(struct sink *s, const char *text)
{
	return sink_put_lines(s, text, strlen(text), 1);
}

void sink_reopen(struct sink *s)
{
	pthread_mutex_lock(&s->lock);
	s->reopen = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

__u64 sink_dropped(const struct sink *s)
{
	return atomic_load(&((struct sink *)s)->dropped);
}

__u64 sink_errors(const struct sink *s)
{
	return atomic_load(&((struct sink *)s)->errors);
}

/*
 * Writes what is queued, waiting at most timeout_ms for a stuck sink; lines
 * still queued then are counted as dropped.
 */
void sink_close(struct sink *s, int timeout_ms)
{
	struct timespec deadline;
	bool joined;

	if (!s)
		return;
	joined = !s->started;
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->lock);
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		joined = !pthread_timedjoin_np(s->writer, NULL, &deadline);
	}
	if (!joined) {
		/*
		 * the writer is stuck in write(): leave it, and its memory, to exit(),
		 * once a long line it is in has ended (a second more at most)
		 */
		struct line *l;

		deadline.tv_sec++;
		pthread_mutex_timedlock(&line_gate, &deadline);

		pthread_mutex_lock(&s->lock);
		for (l = s->head; l; l = l->next)
			atomic_fetch_add(&s->dropped, 1);
		pthread_mutex_unlock(&s->lock);
		return;
	}
	for (struct line *l = s->head, *next; l; l = next) {
		next = l->next;
		atomic_fetch_add(&s->dropped, 1);
		free(l);
	}
	if (s->path && s->fd >= 0)
		close(s->fd);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->wake);
	free(s->path);
	free(s);
}
