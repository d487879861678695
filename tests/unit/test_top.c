// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ephport top's model and frame (user/top_model.c, user/top_frame.c): answers in, lines out. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "top.h"

/* an answer of the agent with two tuples in one namespace, and one alert */
static void answer(char *buf, size_t len, unsigned usage_a, unsigned connects_a, unsigned tw_a)
{
	snprintf(buf, len,
		 "{\"netns\":[{\"netns\":4026532245,\"path\":\"/run/netns/blue\","
		 "\"port_range\":[40000,40099],\"tw_reuse\":2}],"
		 "\"stats\":{\"tuples\":7},\"agent_pid\":42,"
		 "\"nat\":[{\"level\":\"warning\"},{\"level\":\"ok\"}],"
		 "\"tuples\":["
		 "{\"netns\":4026532245,\"saddr\":\"127.0.0.1\",\"daddr\":\"127.0.0.1\","
		 "\"dport\":7000,\"usage\":%u,\"capacity\":100,\"utilization\":%.2f,"
		 "\"time_wait\":%u,\"connects\":%u,\"failed_connects\":0,\"level\":\"%s\"},"
		 "{\"netns\":4026532245,\"saddr\":\"::1\",\"daddr\":\"::1\",\"dport\":443,"
		 "\"usage\":10,\"capacity\":100,\"utilization\":0.1,\"time_wait\":0,"
		 "\"connects\":50,\"failed_connects\":0,\"level\":\"ok\"}],"
		 "\"recent\":[{\"ts\":\"2026-11-29T05:01:02.003Z\",\"event\":\"pressure\","
		 "\"level\":\"critical\",\"netns\":4026532245,\"saddr\":\"127.0.0.1\","
		 "\"daddr\":\"127.0.0.1\",\"dport\":7000,\"usage\":96,\"capacity\":100},"
		 "{\"ts\":\"2026-11-29T05:01:03.000Z\",\"event\":\"connect_failed\",\"count\":3,"
		 "\"pid\":77,\"comm\":\"curl\",\"netns\":4026532245,\"daddr\":\"::1\","
		 "\"dport\":443,\"container_id\":\"0123456789abcdef\",\"pod_uid\":null}]}",
		 usage_a, usage_a / 100.0, tw_a, connects_a,
		 usage_a >= 95 ? "critical" : "warning");
}

Test(top, takes_an_answer_and_rates_come_from_the_one_before)
{
	struct top_state s = { 0 };
	char buf[4096];

	answer(buf, sizeof(buf), 80, 100, 40);
	cr_assert_eq(top_take(&s, buf, 10.0), 0);
	cr_assert_eq(s.nrows, 2);
	cr_assert_eq(s.agent_pid, 42);
	cr_assert_eq(s.map_tuples, 7);
	cr_assert_eq(s.nat_tuples, 2);
	cr_assert_eq(s.nat_hot, 1);
	cr_assert_str_eq(s.rows[0].dst, "127.0.0.1:7000");
	cr_assert_str_eq(s.rows[1].dst, "[::1]:443");
	cr_assert_eq(s.rows[0].level, 1);
	cr_assert(s.rows[0].rate < 0, "no rate from one answer");
	cr_assert(s.rows[0].full_in < 0);
	cr_assert_eq(s.nns, 1);
	cr_assert_eq(s.ns[0].tuples, 2);
	cr_assert_float_eq(s.ns[0].worst, 0.8, 1e-9);

	/* two seconds later: 20 more connects, usage up by 10 */
	answer(buf, sizeof(buf), 90, 120, 45);
	cr_assert_eq(top_take(&s, buf, 12.0), 0);
	cr_assert_float_eq(s.rows[0].rate, 10.0, 1e-9);
	cr_assert_float_eq(s.rows[0].full_in, 2.0, 1e-9, "10 ports left at 5 a second");
	cr_assert_float_eq(s.rows[1].rate, 0.0, 1e-9);
	cr_assert(s.rows[1].full_in < 0, "not growing");
	cr_assert_eq(s.nrecent, 2);
	cr_assert_str_eq(s.recent[0],
			 "05:01:02 4026532245 pressure critical 127.0.0.1 > 127.0.0.1:7000 96/100");
	cr_assert(strstr(s.recent[1], "05:01:03 4026532245 connect_failed curl[77] > [::1]:443 x3"),
		  "%s", s.recent[1]);
	cr_assert(strstr(s.recent[1], "container 0123456789ab"), "%s", s.recent[1]);
	top_free(&s);
}

Test(top, refuses_what_is_not_an_answer)
{
	struct top_state s = { 0 };

	cr_assert_eq(top_take(&s, "{\"tuples\":3}", 1), -EINVAL);
	cr_assert_eq(top_take(&s, "not json", 1), -EINVAL);
	cr_assert_eq(top_take(&s, "", 1), -EINVAL);
	top_free(&s);
}

static size_t frame(struct top_state *s, int w, int h, struct top_line *lines)
{
	struct top_head head = {
		.host_time = "05:01:04", .interval = 1, .filter = "", .status = ""
	};

	return top_frame(s, &head, w, h, lines);
}

Test(top, an_80x24_frame_fits_and_sorts_nearest_to_exhaustion_first)
{
	struct top_state s = { 0 };
	struct top_line lines[24];
	char buf[4096];

	answer(buf, sizeof(buf), 96, 100, 48);
	cr_assert_eq(top_take(&s, buf, 1), 0);
	cr_assert_eq(frame(&s, 80, 24, lines), 24);
	for (size_t i = 0; i < 24; i++)
		cr_assert_leq(strlen(lines[i].text), 80, "line %zu: %s", i, lines[i].text);
	cr_assert(strstr(lines[0].text, "agent 42"));
	cr_assert(strstr(lines[1].text, "1 critical"), "%s", lines[1].text);
	cr_assert(lines[2].columns && strstr(lines[2].text, "DESTINATION"));
	cr_assert(strstr(lines[3].text, "127.0.0.1:7000"), "%s", lines[3].text);
	cr_assert(strstr(lines[3].text, "96/100 ########  96% CRIT   50%"), "%s", lines[3].text);
	cr_assert_eq(lines[3].level, 2);
	cr_assert_eq(lines[3].level_len, 5);
	cr_assert_eq(strncmp(lines[3].text + lines[3].level_at, "CRIT", 4), 0);
	cr_assert(strstr(lines[4].text, "[::1]:443"), "%s", lines[4].text);
	cr_assert(strstr(lines[23].text, "q quit"), "%s", lines[23].text);
	top_free(&s);

	/* at 5%, below [::1]'s 10%: second by utilization, first by destination */
	answer(buf, sizeof(buf), 5, 100, 0);
	cr_assert_eq(top_take(&s, buf, 1), 0);
	frame(&s, 80, 24, lines);
	cr_assert(strstr(lines[3].text, "[::1]:443"), "%s", lines[3].text);
	s.sort = TOP_SORT_DST;
	frame(&s, 80, 24, lines);
	cr_assert(strstr(lines[3].text, "127.0.0.1:7000"), "%s", lines[3].text);
	top_free(&s);
}

Test(top, a_wide_terminal_shows_sources_and_long_level_names)
{
	struct top_state s = { 0 };
	struct top_line lines[40];
	char buf[4096];

	answer(buf, sizeof(buf), 96, 100, 48);
	cr_assert_eq(top_take(&s, buf, 1), 0);
	cr_assert_eq(frame(&s, 140, 40, lines), 40);
	cr_assert(strstr(lines[2].text, "SOURCE"));
	cr_assert(strstr(lines[3].text, "critical"), "%s", lines[3].text);
	top_free(&s);
}

Test(top, tiny_and_whole_frames)
{
	struct top_state s = { 0 };
	struct top_line lines[64];
	struct top_head whole = { .host_time = "", .filter = "", .status = "", .whole = true };
	char buf[4096];

	answer(buf, sizeof(buf), 50, 100, 0);
	cr_assert_eq(top_take(&s, buf, 1), 0);
	cr_assert_eq(frame(&s, 20, 3, lines), 3, "a 3-line terminal gets 3 lines");
	for (size_t i = 0; i < 3; i++)
		cr_assert_leq(strlen(lines[i].text), 20);
	cr_assert_eq(frame(&s, 80, 0, lines), 0);
	/* no terminal: every tuple, namespace and alert once, nothing padded, no keys */
	cr_assert_eq(top_frame(&s, &whole, 120, (int)top_frame_lines(&s), lines),
		     3 + 2 + 1 + 1 + 1 + 2);
	top_free(&s);
}
