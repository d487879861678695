// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The metrics' HTTP side: --metrics-addr, and a libmicrohttpd server on a thread
 * of its own that serves /metrics, /healthz and /readyz. It serves the latest text
 * the agent published, so a scrape never touches the BPF maps and never waits for
 * the agent. That text is one response every client is sent from, not a copy each,
 * and goes when the last client sending it is done. The thread runs libmicrohttpd's
 * rounds and, between them, cuts off the clients past their deadlines: who may stay
 * connected, and for how long, is metrics_conn.c's.
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <microhttpd.h>

#include "ephport.h"
#include "metrics_conn.h"
#include "metrics_http.h"

/* --metrics-addr */

/* a host as it came, NUL-terminated: 0, or -EINVAL when it is too long to be an address */
static int host_copy(char *buf, size_t size, const char *s, size_t len)
{
	if (len >= size)
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return 0;
}

/*
 * Numbers only, never a name: a name would be looked up (DNS at start-up, an address
 * that depends on it), and getaddrinfo() reads "1" as 0.0.0.1 and "127.1" as 127.0.0.1.
 */
int metrics_addr_parse(const char *s, struct metrics_addr *out)
{
	struct addrinfo hints = { .ai_family = AF_INET6,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	struct addrinfo *res = NULL;
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 1]; /* an IPv6 one may name its interface */
	const char *colon, *port;
	size_t hlen;
	uint64_t pnum;

	memset(out, 0, sizeof(*out));
	if (!s || !(colon = strrchr(s, ':')))
		return -EINVAL;
	port = colon + 1;
	hlen = colon - s;
	if (parse_u64(port, 0, 65535, &pnum))
		return -EINVAL;
	if (!hlen) {
		/* :PORT, every address */
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_any;
		sin6->sin6_port = htons(pnum);
		out->len = sizeof(*sin6);
		out->any = true;
		return 0;
	}
	if (s[0] == '[') {
		/* [IPv6]:PORT */
		if (hlen < 3 || s[hlen - 1] != ']' ||
		    host_copy(host, sizeof(host), s + 1, hlen - 2))
			return -EINVAL;
		if (getaddrinfo(host, port, &hints, &res) || !res)
			return -EINVAL;
		memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
		out->len = res->ai_addrlen;
		freeaddrinfo(res);
		return 0;
	}
	/* IPv4:PORT, four decimal parts (an IPv6 address needs its brackets) */
	if (host_copy(host, sizeof(host), s, hlen) || inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return -EINVAL;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(pnum);
	out->len = sizeof(*sin);
	return 0;
}

/* the server */

#define TICK_MS	    250	   /* deadlines are looked at this often */
#define CONN_MEMORY 16384  /* libmicrohttpd's buffers for one client: its request */
#define SEND_BUFFER 131072 /* what the kernel holds to send one client (it doubles it) */
/* libmicrohttpd's own timeout, reset by each byte: longer than ours, which act first */
#define IDLE_TIMEOUT_S 30
/* the kernel drops a connection whose data it could not send for this long */
#define USER_TIMEOUT_MS (CONN_ANSWER_NS / 1000000)
#define TEXT_TYPE	"text/plain; charset=utf-8"
#define EXPOSITION_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics {
	struct MHD_Daemon *daemon;
	pthread_t thread;
	atomic_bool stop;
	struct sockaddr_storage bound;
	socklen_t bound_len;
	pthread_mutex_t lock;
	struct MHD_Response *text; /* under lock; one response every client shares */
	_Atomic __u64 beat_ns;	   /* CLOCK_MONOTONIC of the latest check; 0: none yet, not ready */
	struct conn_table conns;   /* the server's thread's alone */
};

/* a small answer, made for this request */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status, const char *s)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(s), (void *)s, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, TEXT_TYPE);
	/* one request a connection (libmicrohttpd 0.9.75 closes after any answer queued at once) */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static struct conn *conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *i =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return i ? i->socket_context : NULL;
}

/* the latest text, the very buffer every other client is sent too */
static enum MHD_Result answer_metrics(struct metrics *m, struct MHD_Connection *c,
				      struct conn *conn, bool head)
{
	enum MHD_Result ret = MHD_NO;
	bool none;

	if (!atomic_load(&m->beat_ns))
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "starting\n");
	/* each answer being sent holds its text: so many texts at most, whatever the clients */
	if (!head && (!conn || !conn_scrape(&m->conns, conn)))
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy: other scrapes under way\n");
	pthread_mutex_lock(&m->lock);
	none = !m->text;
	if (!none)
		ret = MHD_queue_response(c, MHD_HTTP_OK, m->text);
	pthread_mutex_unlock(&m->lock);
	/* no text yet: the first one could not be rendered (out of memory) */
	return none ? reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "starting\n") : ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **state)
{
	struct metrics *m = cls;
	__u64 beat = atomic_load(&m->beat_ns), now = mono_ns();
	struct conn *conn = conn_of(c);
	bool head = !strcmp(method, MHD_HTTP_METHOD_HEAD);
	char msg[128];

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)state;
	if (conn)
		conn_request(conn, now);
	if (strcmp(method, MHD_HTTP_METHOD_GET) && !head)
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
	if (!strcmp(url, "/metrics"))
		return answer_metrics(m, c, conn, head);
	if (!strcmp(url, "/healthz")) {
		/* alive: starting up, or checking on time */
		if (!beat || now - beat < METRICS_STALL_NS)
			return reply(c, MHD_HTTP_OK, beat ? "ok\n" : "starting\n");
		snprintf(msg, sizeof(msg), "stalled: no check for %.1f s\n", (now - beat) / 1e9);
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
	}
	if (!strcmp(url, "/readyz"))
		return beat ? reply(c, MHD_HTTP_OK, "ready\n") :
			      reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "starting\n");
	if (!strcmp(url, "/"))
		return reply(c, MHD_HTTP_OK, "ephport agent: /metrics /healthz /readyz\n");
	return reply(c, MHD_HTTP_NOT_FOUND, "not found: /metrics /healthz /readyz\n");
}

/*
 * A client cut off: libmicrohttpd sees the socket shut down on its next round and
 * closes it, with a reset that frees at once what the kernel still held to send.
 */
static void cut_off(int fd)
{
	struct linger reset = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
	shutdown(fd, SHUT_RDWR);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **ctx,
			  enum MHD_ConnectionNotificationCode code)
{
	struct metrics *m = cls;
	const union MHD_ConnectionInfo *fd, *addr;
	int sndbuf = SEND_BUFFER, user_timeout = USER_TIMEOUT_MS;

	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (*ctx)
			conn_close(&m->conns, *ctx);
		*ctx = NULL;
		return;
	}
	fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	addr = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!fd)
		return;
	/*
	 * A client that stops reading holds what the kernel has left to send it, charged
	 * to the agent's cgroup: at most SEND_BUFFER, and for USER_TIMEOUT_MS at most,
	 * also once the server has closed the socket and the kernel still holds it.
	 */
	setsockopt(fd->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	setsockopt(fd->connect_fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
		   sizeof(user_timeout));
	*ctx = conn_open(&m->conns, fd->connect_fd, addr ? addr->client_addr : NULL, mono_ns());
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state,
			 enum MHD_RequestTerminationCode code)
{
	struct metrics *m = cls;
	struct conn *conn = conn_of(c);

	(void)state;
	(void)code;
	if (conn)
		conn_done(&m->conns, conn, mono_ns());
}

/* libmicrohttpd's rounds, and the deadlines between them: all of the server in one thread */
static void *serve(void *arg)
{
	struct metrics *m = arg;

	while (!atomic_load(&m->stop)) {
		if (MHD_run_wait(m->daemon, TICK_MS) != MHD_YES)
			usleep(TICK_MS * 1000); /* not expected: do not spin */
		conn_expire(&m->conns, mono_ns());
	}
	return NULL;
}

/* a listening socket; the wildcard is IPv6 and IPv4 where IPv6 is on, else IPv4 */
static int listen_on(const struct metrics_addr *a, struct sockaddr_storage *bound,
		     socklen_t *bound_len)
{
	struct sockaddr_in any4 = { .sin_family = AF_INET };
	const struct sockaddr *sa = (const struct sockaddr *)&a->ss;
	socklen_t len = a->len;
	int one = 1, zero = 0, fd, err;

	for (;;) {
		fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (a->any && sa->sa_family == AF_INET6)
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
			if (!bind(fd, sa, len) && !listen(fd, 64)) {
				*bound_len = sizeof(*bound);
				getsockname(fd, (struct sockaddr *)bound, bound_len);
				return fd;
			}
		}
		err = -errno;
		if (fd >= 0)
			close(fd);
		/* IPv6 turned off on this host: the IPv4 wildcard will do */
		if (!a->any || sa->sa_family != AF_INET6 ||
		    (err != -EAFNOSUPPORT && err != -EADDRNOTAVAIL))
			return err;
		any4.sin_port = ((const struct sockaddr_in6 *)&a->ss)->sin6_port;
		sa = (const struct sockaddr *)&any4;
		len = sizeof(any4);
	}
}

static struct MHD_Daemon *daemon_on(struct metrics *m, int fd)
{
	return MHD_start_daemon(
		MHD_USE_EPOLL, 0, NULL, NULL, on_request, m, MHD_OPTION_LISTEN_SOCKET, fd,
		/* room for the clients cut off and not yet closed: conn_open() keeps CONN_MAX */
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONN_SLOTS,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)IDLE_TIMEOUT_S,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, m, MHD_OPTION_NOTIFY_COMPLETED,
		on_completed, m, MHD_OPTION_END);
}

int metrics_start(struct metrics **out, const struct metrics_addr *addr)
{
	struct metrics *m = calloc(1, sizeof(*m));
	sigset_t block, old;
	int fd, err;

	if (!m)
		return -ENOMEM;
	fd = listen_on(addr, &m->bound, &m->bound_len);
	if (fd < 0) {
		free(m);
		return fd;
	}
	conn_table_init(&m->conns, cut_off);
	pthread_mutex_init(&m->lock, NULL);
	m->daemon = daemon_on(m, fd);
	if (!m->daemon) {
		err = -EIO;
		goto fail;
	}
	/* the server's thread must leave SIGINT, SIGTERM and SIGHUP to the main loop */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	err = -pthread_create(&m->thread, NULL, serve, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		MHD_stop_daemon(m->daemon);
		goto fail;
	}
	*out = m;
	return 0;
fail:
	close(fd);
	pthread_mutex_destroy(&m->lock);
	free(m);
	return err;
}

int metrics_url(const struct metrics *m, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];
	unsigned int port;
	int n;

	if (m->bound.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&m->bound;

		inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
		port = ntohs(s->sin6_port);
		n = snprintf(buf, len, "http://[%s]:%u/metrics", host, port);
	} else {
		const struct sockaddr_in *s = (const struct sockaddr_in *)&m->bound;

		inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
		port = ntohs(s->sin_port);
		n = snprintf(buf, len, "http://%s:%u/metrics", host, port);
	}
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

void metrics_publish(struct metrics *m, struct text *t)
{
	struct MHD_Response *r = NULL, *old;
	char *s;

	if (!t->oom && t->len) {
		/* the text grew by doubling: give back what it did not use */
		s = realloc(t->s, t->len);
		if (s)
			t->s = s;
		/* freed with the response: once the last client sending it is done */
		r = MHD_create_response_from_buffer(t->len, t->s, MHD_RESPMEM_MUST_FREE);
	}
	if (!r) {
		text_free(t);
		return; /* the previous text stays */
	}
	memset(t, 0, sizeof(*t)); /* the response owns the buffer now */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, EXPOSITION_TYPE);
	pthread_mutex_lock(&m->lock);
	old = m->text;
	m->text = r;
	pthread_mutex_unlock(&m->lock);
	/* clients still sending the old text hold it: it goes with the last of them */
	MHD_destroy_response(old);
}

void metrics_beat(struct metrics *m)
{
	atomic_store(&m->beat_ns, mono_ns());
}

void metrics_stop(struct metrics *m)
{
	if (!m)
		return;
	atomic_store(&m->stop, true);
	pthread_join(m->thread, NULL);
	MHD_stop_daemon(m->daemon);
	MHD_destroy_response(m->text);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
