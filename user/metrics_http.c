// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The metrics' HTTP side: --metrics-addr, and a libmicrohttpd thread that
 * serves /metrics, /healthz and /readyz. It serves the latest text the agent
 * published, so a scrape never touches the BPF maps and never waits for the
 * agent.
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <microhttpd.h>

#include "ephport.h"
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

struct metrics {
	struct MHD_Daemon *daemon;
	struct sockaddr_storage bound;
	socklen_t bound_len;
	pthread_mutex_t lock;
	struct text text;      /* under lock */
	_Atomic __u64 beat_ns; /* CLOCK_MONOTONIC of the latest check; 0: none yet, not ready */
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status, const char *type,
			     const char *body, size_t len)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned int status, const char *s)
{
	return reply(c, status, "text/plain; charset=utf-8", s, strlen(s));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **state)
{
	struct metrics *m = cls;
	__u64 beat = atomic_load(&m->beat_ns), now = mono_ns();
	char msg[128];
	enum MHD_Result ret;

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)state;
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
	if (!strcmp(url, "/metrics")) {
		if (!beat)
			return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "starting\n");
		pthread_mutex_lock(&m->lock);
		ret = reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", m->text.s,
			    m->text.len);
		pthread_mutex_unlock(&m->lock);
		return ret;
	}
	if (!strcmp(url, "/healthz")) {
		/* alive: starting up, or checking on time */
		if (!beat || now - beat < METRICS_STALL_NS)
			return reply_text(c, MHD_HTTP_OK, beat ? "ok\n" : "starting\n");
		snprintf(msg, sizeof(msg), "stalled: no check for %.1f s\n", (now - beat) / 1e9);
		return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
	}
	if (!strcmp(url, "/readyz"))
		return beat ? reply_text(c, MHD_HTTP_OK, "ready\n") :
			      reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "starting\n");
	if (!strcmp(url, "/"))
		return reply_text(c, MHD_HTTP_OK, "ephport agent: /metrics /healthz /readyz\n");
	return reply_text(c, MHD_HTTP_NOT_FOUND, "not found: /metrics /healthz /readyz\n");
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

int metrics_start(struct metrics **out, const struct metrics_addr *addr)
{
	struct metrics *m = calloc(1, sizeof(*m));
	sigset_t block, old;
	int fd;

	if (!m)
		return -ENOMEM;
	fd = listen_on(addr, &m->bound, &m->bound_len);
	if (fd < 0) {
		free(m);
		return fd;
	}
	pthread_mutex_init(&m->lock, NULL);
	/* the server's thread must leave SIGINT, SIGTERM and SIGHUP to the main loop */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	m->daemon = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, on_request, m,
		MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)32,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!m->daemon) {
		close(fd);
		pthread_mutex_destroy(&m->lock);
		free(m);
		return -EIO;
	}
	*out = m;
	return 0;
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
	struct text old;

	if (t->oom) {
		text_free(t);
		return; /* the previous text stays */
	}
	pthread_mutex_lock(&m->lock);
	old = m->text;
	m->text = *t;
	pthread_mutex_unlock(&m->lock);
	memset(t, 0, sizeof(*t));
	text_free(&old);
}

void metrics_beat(struct metrics *m)
{
	atomic_store(&m->beat_ns, mono_ns());
}

void metrics_stop(struct metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->daemon);
	pthread_mutex_destroy(&m->lock);
	text_free(&m->text);
	free(m);
}
