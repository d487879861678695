/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The metrics' HTTP side: --metrics-addr, /metrics, /healthz, /readyz (metrics_http.c). */
#ifndef EPHPORT_METRICS_HTTP_H
#define EPHPORT_METRICS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "promtext.h"

/* /healthz fails when no check has finished for this long */
#define METRICS_STALL_NS (5 * 1000000000ull)

/* --metrics-addr: HOST:PORT, [IPV6]:PORT, or :PORT for every address */
struct metrics_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	bool any; /* no host: IPv6 and IPv4 wildcard, IPv4 alone where IPv6 is off */
};

/* 0, or -EINVAL */
int metrics_addr_parse(const char *s, struct metrics_addr *out);

/* the server */
struct metrics;
/* listens on addr and serves from its own thread: 0, or -errno */
int metrics_start(struct metrics **out, const struct metrics_addr *addr);
/* the address it listens on, for the agent_start line */
int metrics_url(const struct metrics *m, char *buf, size_t len);
/* the next /metrics answer; takes the text over */
void metrics_publish(struct metrics *m, struct text *t);
/* a check has finished: the first one makes /metrics and /readyz answer */
void metrics_beat(struct metrics *m);
void metrics_stop(struct metrics *m);

#endif /* EPHPORT_METRICS_HTTP_H */
