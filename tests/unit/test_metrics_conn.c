// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The metrics server's clients: per-address and overall caps, who makes room, deadlines. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "metrics_conn.h"

#define S 1000000000ull

/* the descriptors cut off, in order */
static int cut_fds[4 * CONN_SLOTS];
static size_t ncut;

static void record_cut(int fd)
{
	cr_assert_lt(ncut, sizeof(cut_fds) / sizeof(cut_fds[0]));
	cut_fds[ncut++] = fd;
}

static struct conn_table table;

static void setup(void)
{
	ncut = 0;
	conn_table_init(&table, record_cut);
}

static struct conn *from(const char *ip, int fd, __u64 now)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };

	inet_pton(AF_INET, ip, &sin.sin_addr);
	return conn_open(&table, fd, (struct sockaddr *)&sin, now);
}

TestSuite(conn, .init = setup);

Test(conn, a_full_address_makes_room_by_its_longest_waiting)
{
	struct conn *c[CONN_PER_ADDR];

	for (int i = 0; i < CONN_PER_ADDR; i++)
		c[i] = from("10.0.0.1", 100 + i, i * S / 10);
	cr_assert_eq(ncut, 0);
	conn_request(c[0], S); /* being answered: not the one to go */
	cr_assert_not_null(from("10.0.0.1", 200, 2 * S));
	cr_assert_eq(ncut, 1);
	cr_assert_eq(cut_fds[0], 101);
	cr_assert_eq(c[1]->phase, CONN_CUT);
	/* another address is not touched */
	cr_assert_not_null(from("10.0.0.2", 300, 2 * S));
	cr_assert_eq(ncut, 1);
	cr_assert_eq(table.live, CONN_PER_ADDR + 1);
}

Test(conn, an_address_all_answered_turns_the_newcomer_away)
{
	for (int i = 0; i < CONN_PER_ADDR; i++)
		conn_request(from("10.0.0.1", 100 + i, 0), 0);
	cr_assert_null(from("10.0.0.1", 200, S));
	cr_assert_eq(ncut, 1);
	cr_assert_eq(cut_fds[0], 200);
	cr_assert_eq(table.live, CONN_PER_ADDR);
}

Test(conn, ipv4_and_its_mapped_form_are_one_address)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };

	inet_pton(AF_INET6, "::ffff:10.0.0.1", &sin6.sin6_addr);
	for (int i = 0; i < CONN_PER_ADDR; i++)
		from("10.0.0.1", 100 + i, i);
	cr_assert_not_null(conn_open(&table, 200, (struct sockaddr *)&sin6, S));
	cr_assert_eq(ncut, 1);
	cr_assert_eq(cut_fds[0], 100);
}

Test(conn, a_full_table_makes_room_by_the_longest_waiting_of_all)
{
	char ip[32];
	int fd = 0;

	/* CONN_MAX clients from CONN_MAX / CONN_PER_ADDR addresses, the first oldest */
	for (int a = 0; a < CONN_MAX / CONN_PER_ADDR; a++) {
		snprintf(ip, sizeof(ip), "10.0.1.%d", a);
		for (int i = 0; i < CONN_PER_ADDR; i++, fd++)
			from(ip, fd, (fd + 1) * S / 100);
	}
	cr_assert_eq(table.live, CONN_MAX);
	cr_assert_eq(ncut, 0);
	cr_assert_not_null(from("10.0.2.1", 1000, 2 * S));
	cr_assert_eq(ncut, 1);
	cr_assert_eq(cut_fds[0], 0);
	cr_assert_eq(table.live, CONN_MAX);
	/* every one being answered: newcomers are turned away, whatever their address */
	for (size_t i = 0; i < CONN_SLOTS; i++)
		if (table.slots[i].phase == CONN_WAITING)
			conn_request(&table.slots[i], 2 * S);
	cr_assert_null(from("10.0.2.2", 1001, 3 * S));
	cr_assert_eq(cut_fds[1], 1001);
}

Test(conn, cut_clients_keep_their_slot_until_closed)
{
	/* the server may still hold CONN_MAX clients cut off: there is room for them all */
	for (int i = 0; i < CONN_MAX + CONN_MAX; i++) {
		char ip[32];

		snprintf(ip, sizeof(ip), "10.0.3.%d", i);
		cr_assert_not_null(from(ip, i, i));
	}
	cr_assert_eq(ncut, CONN_MAX);
	cr_assert_eq(table.live, CONN_MAX);
	for (size_t i = 0; i < CONN_SLOTS; i++)
		cr_assert_neq(table.slots[i].phase, CONN_FREE);
	conn_close(&table, &table.slots[0]); /* one the server has closed */
	cr_assert_eq(table.slots[0].phase, CONN_FREE);
	cr_assert_eq(table.live, CONN_MAX);
}

Test(conn, deadlines_count_from_the_phase_not_the_last_byte)
{
	struct conn *slow = from("10.0.0.1", 1, 0), *answered = from("10.0.0.2", 2, 0);
	struct conn *kept = from("10.0.0.3", 3, 0);

	conn_request(answered, CONN_REQUEST_NS - 1);
	conn_request(kept, S);
	conn_done(&table, kept, 2 * S); /* answered: waits for its next request from here */
	cr_assert_eq(conn_expire(&table, CONN_REQUEST_NS - 1), 0);
	cr_assert_eq(conn_expire(&table, CONN_REQUEST_NS), 1);
	cr_assert_eq(slow->phase, CONN_CUT);
	cr_assert_eq(cut_fds[0], 1);
	cr_assert_eq(conn_expire(&table, 2 * S + CONN_REQUEST_NS - 1), 0);
	cr_assert_eq(conn_expire(&table, 2 * S + CONN_REQUEST_NS), 1);
	cr_assert_eq(cut_fds[1], 3);
	cr_assert_eq(conn_expire(&table, CONN_REQUEST_NS - 1 + CONN_ANSWER_NS - 1), 0);
	cr_assert_eq(conn_expire(&table, CONN_REQUEST_NS - 1 + CONN_ANSWER_NS), 1);
	cr_assert_eq(cut_fds[2], 2);
	cr_assert_eq(table.live, 0);
	/* cut already: not again */
	cr_assert_eq(conn_expire(&table, 100 * S), 0);
}

Test(conn, scrapes_at_once_are_bounded)
{
	struct conn *c[CONN_SCRAPES_MAX + 1];

	for (int i = 0; i <= CONN_SCRAPES_MAX; i++) {
		c[i] = from("10.0.0.1", i, 0);
		conn_request(c[i], 0);
	}
	for (int i = 0; i < CONN_SCRAPES_MAX; i++)
		cr_assert(conn_scrape(&table, c[i]));
	cr_assert_not(conn_scrape(&table, c[CONN_SCRAPES_MAX]));
	conn_done(&table, c[0], S); /* its text sent */
	cr_assert(conn_scrape(&table, c[CONN_SCRAPES_MAX]));
	conn_close(&table, c[1]); /* closed while sending */
	cr_assert_eq(table.scrapes, CONN_SCRAPES_MAX - 1);
	conn_done(&table, c[1], S); /* nothing twice */
	cr_assert_eq(table.scrapes, CONN_SCRAPES_MAX - 1);
}

Test(conn, no_scrape_for_a_client_cut_off_or_not_yet_asking)
{
	struct conn *cut = from("10.0.0.1", 1, 0), *early = from("10.0.0.2", 2, 0);

	conn_request(cut, 0);
	cr_assert_eq(conn_expire(&table, CONN_ANSWER_NS), 2);
	cr_assert_not(conn_scrape(&table, cut));
	cr_assert_not(conn_scrape(&table, early));
	cr_assert_eq(table.scrapes, 0);
}
