// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The metrics server's clients: how many, from where, for how long.
 *
 * Each phase of a connection has a deadline counted from when the phase began, never
 * from the client's latest byte: one that sends its request, or reads its answer, a
 * byte at a time is cut off on time all the same. A client still waiting to send
 * its request costs nothing to turn away, one being answered does: so when the table,
 * or a client's address, is full, a newcomer takes the place of the client that has
 * waited longest for a request. A probe sends its request as it connects and is
 * answered at once, so however many slow clients there are, they cannot keep it out.
 */
#include <string.h>

#include "metrics_conn.h"

void conn_table_init(struct conn_table *t, void (*cut)(int fd))
{
	memset(t, 0, sizeof(*t));
	t->cut = cut;
	for (size_t i = 0; i < CONN_SLOTS; i++)
		t->slots[i].fd = -1;
}

/* IPv4 as IPv4-mapped IPv6: one client is one address, whatever socket it came through */
static void addr_of(const struct sockaddr *sa, struct in6_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (!sa)
		return;
	if (sa->sa_family == AF_INET6) {
		*out = ((const struct sockaddr_in6 *)sa)->sin6_addr;
	} else if (sa->sa_family == AF_INET) {
		out->s6_addr[10] = 0xff;
		out->s6_addr[11] = 0xff;
		memcpy(&out->s6_addr[12], &((const struct sockaddr_in *)sa)->sin_addr, 4);
	}
}

static bool live(const struct conn *c)
{
	return c->phase == CONN_WAITING || c->phase == CONN_ANSWERING;
}

static void cut(struct conn_table *t, struct conn *c)
{
	c->phase = CONN_CUT;
	t->live--;
	t->cut_total++;
	t->cut(c->fd);
}

static unsigned int count_from(const struct conn_table *t, const struct in6_addr *addr)
{
	unsigned int n = 0;

	for (size_t i = 0; i < CONN_SLOTS; i++)
		n += live(&t->slots[i]) && !memcmp(&t->slots[i].addr, addr, sizeof(*addr));
	return n;
}

/* the client (of addr, or of any address when NULL) that has waited longest for a request */
static struct conn *longest_waiting(struct conn_table *t, const struct in6_addr *addr)
{
	struct conn *best = NULL;

	for (size_t i = 0; i < CONN_SLOTS; i++) {
		struct conn *c = &t->slots[i];

		if (c->phase != CONN_WAITING || (addr && memcmp(&c->addr, addr, sizeof(*addr))))
			continue;
		if (!best || c->since_ns < best->since_ns)
			best = c;
	}
	return best;
}

struct conn *conn_open(struct conn_table *t, int fd, const struct sockaddr *sa, __u64 now)
{
	struct conn *slot = NULL, *old;
	struct in6_addr addr;

	addr_of(sa, &addr);
	if (count_from(t, &addr) >= CONN_PER_ADDR) {
		if (!(old = longest_waiting(t, &addr)))
			goto refuse; /* all of its address's are being answered */
		cut(t, old);
	}
	if (t->live >= CONN_MAX) {
		if (!(old = longest_waiting(t, NULL)))
			goto refuse;
		cut(t, old);
	}
	/* the server holds at most CONN_SLOTS connections, this one among them */
	for (size_t i = 0; i < CONN_SLOTS && !slot; i++)
		if (t->slots[i].phase == CONN_FREE)
			slot = &t->slots[i];
	if (!slot)
		goto refuse;
	*slot = (struct conn){ .addr = addr, .since_ns = now, .fd = fd, .phase = CONN_WAITING };
	t->live++;
	return slot;
refuse:
	t->cut_total++;
	t->cut(fd);
	return NULL;
}

void conn_request(struct conn *c, __u64 now)
{
	if (c->phase != CONN_WAITING)
		return; /* cut off, or a later call for the same request */
	c->phase = CONN_ANSWERING;
	c->since_ns = now;
}

bool conn_scrape(struct conn_table *t, struct conn *c)
{
	if (c->scrape)
		return true;
	/* one cut off is closed next: sending it a text would only hold the text */
	if (c->phase != CONN_ANSWERING || t->scrapes >= CONN_SCRAPES_MAX)
		return false;
	c->scrape = true;
	t->scrapes++;
	return true;
}

static void scrape_done(struct conn_table *t, struct conn *c)
{
	if (c->scrape)
		t->scrapes--;
	c->scrape = false;
}

void conn_done(struct conn_table *t, struct conn *c, __u64 now)
{
	scrape_done(t, c);
	if (c->phase != CONN_ANSWERING)
		return;
	c->phase = CONN_WAITING;
	c->since_ns = now;
}

void conn_close(struct conn_table *t, struct conn *c)
{
	scrape_done(t, c);
	if (live(c))
		t->live--;
	*c = (struct conn){ .fd = -1, .phase = CONN_FREE };
}

unsigned int conn_expire(struct conn_table *t, __u64 now)
{
	unsigned int n = 0;

	for (size_t i = 0; i < CONN_SLOTS; i++) {
		struct conn *c = &t->slots[i];
		__u64 limit = c->phase == CONN_WAITING ? CONN_REQUEST_NS : CONN_ANSWER_NS;

		if (live(c) && now - c->since_ns >= limit) {
			cut(t, c);
			n++;
		}
	}
	return n;
}
