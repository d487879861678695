/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Who may stay connected to the metrics server, and for how long (metrics_conn.c).
 * Only the server's thread uses a table; it knows nothing of HTTP or libmicrohttpd.
 */
#ifndef EPHPORT_METRICS_CONN_H
#define EPHPORT_METRICS_CONN_H

#include <stdbool.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/types.h>

#define CONN_MAX	 64 /* clients connected at once */
#define CONN_PER_ADDR	 8  /* of them from one address */
#define CONN_SCRAPES_MAX 4  /* /metrics answers being sent at once */
/* to send a whole request: from connecting, or from the end of the previous answer */
#define CONN_REQUEST_NS (5 * 1000000000ull)
/* to take a whole answer, from the end of its request */
#define CONN_ANSWER_NS (15 * 1000000000ull)
/* clients cut off stay in the table until the server has closed them */
#define CONN_SLOTS (2 * CONN_MAX)

enum conn_phase {
	CONN_FREE,	/* a slot nobody uses */
	CONN_WAITING,	/* for (the rest of) a request */
	CONN_ANSWERING, /* its request is in, the answer not all sent */
	CONN_CUT,	/* cut off: the server closes it next */
};

struct conn {
	struct in6_addr addr; /* IPv4 as ::ffff:a.b.c.d */
	__u64 since_ns;	      /* CLOCK_MONOTONIC: when this phase began */
	int fd;
	enum conn_phase phase;
	bool scrape; /* its answer is a /metrics text: one of CONN_SCRAPES_MAX */
};

struct conn_table {
	struct conn slots[CONN_SLOTS];
	unsigned int live; /* waiting or answering */
	unsigned int scrapes;
	unsigned long long cut_total;
	void (*cut)(int fd); /* makes the server close fd; a test's own in unit tests */
};

void conn_table_init(struct conn_table *t, void (*cut)(int fd));
/*
 * A client connected: its slot, or NULL when it has been cut off already. A client
 * over CONN_PER_ADDR or CONN_MAX takes the place of the one that has waited longest
 * for a request (of its address, or of any), which is cut off; if every one is being
 * answered, the newcomer is cut off instead.
 */
struct conn *conn_open(struct conn_table *t, int fd, const struct sockaddr *sa, __u64 now);
/* its request is in: the answer's deadline starts */
void conn_request(struct conn *c, __u64 now);
/* may its answer be a /metrics text (false: CONN_SCRAPES_MAX are being sent, or it is cut off) */
bool conn_scrape(struct conn_table *t, struct conn *c);
/* its answer is sent, or its request ended otherwise: waiting for the next one */
void conn_done(struct conn_table *t, struct conn *c, __u64 now);
/* the server closed it: the slot is free again */
void conn_close(struct conn_table *t, struct conn *c);
/* cuts off every client past its deadline; how many */
unsigned int conn_expire(struct conn_table *t, __u64 now);

#endif /* EPHPORT_METRICS_CONN_H */
