// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Tuple values: in_use, sort order, JSON fields; number parsing and timestamps. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ephport.h"

static struct tuple make(const char *dst, __u16 dport, int established, int time_wait,
			 __u64 connects)
{
	struct tuple t;

	memset(&t, 0, sizeof(t));
	t.key.family = AF_INET;
	t.key.netns = 4026531840u;
	inet_pton(AF_INET, "10.0.0.9", t.key.saddr);
	inet_pton(AF_INET, dst, t.key.daddr);
	t.key.dport = dport;
	t.val.states[EPH_TCP_ESTABLISHED] = established;
	t.val.states[EPH_TCP_TIME_WAIT] = time_wait;
	t.val.connects = connects;
	tuple_finish(&t);
	return t;
}

Test(tuple, in_use_counts_live_states_only)
{
	struct tuple t = make("10.0.0.1", 80, 3, 50, 0);

	t.val.states[EPH_TCP_SYN_SENT] = 1;
	t.val.states[EPH_TCP_SYN_RECV] = 64;
	t.val.states[EPH_TCP_FIN_WAIT1] = 2;
	t.val.states[EPH_TCP_FIN_WAIT2] = 4;
	t.val.states[EPH_TCP_CLOSE_WAIT] = 8;
	t.val.states[EPH_TCP_LAST_ACK] = 16;
	t.val.states[EPH_TCP_CLOSING] = 32;
	t.val.states[EPH_TCP_LISTEN] = 1000; /* never a tuple state */
	tuple_finish(&t);
	cr_assert_eq(t.in_use, 3 + 1 + 64 + 2 + 4 + 8 + 16 + 32);
}

Test(tuple, a_count_below_zero_shows_as_zero)
{
	/* a lost SYN_SENT -> ESTABLISHED: syn_sent stays 1, established went to -1 */
	struct tuple t = make("10.0.0.1", 80, -1, -2, 0);

	t.val.states[EPH_TCP_SYN_SENT] = 1;
	t.val.time_wait_ts = -2;
	tuple_finish(&t);
	cr_assert_eq(t.val.states[EPH_TCP_ESTABLISHED], 0);
	cr_assert_eq(t.in_use, 1);
	cr_assert_eq(t.time_wait, 0);
	cr_assert_eq(t.val.time_wait_ts, 0);
	cr_assert_eq(t.usage, 1);
}

Test(tuple, sort_by_use_then_failures_then_connects)
{
	struct tuple_list l = { 0 };
	struct tuple items[4];

	items[0] = make("10.0.0.1", 80, 1, 0, 5);
	items[1] = make("10.0.0.2", 80, 7, 0, 1);
	items[2] = make("10.0.0.3", 80, 1, 0, 9);
	items[3] = make("10.0.0.4", 80, 1, 0, 5);
	items[3].val.failed_connects = 1;
	l.items = items;
	l.len = l.cap = 4;
	tuple_list_sort(&l);
	cr_assert_eq(items[0].key.daddr[3], 2);
	cr_assert_eq(items[1].key.daddr[3], 4);
	cr_assert_eq(items[2].key.daddr[3], 3);
	cr_assert_eq(items[3].key.daddr[3], 1);
}

static double num(cJSON *o, const char *name)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	cr_assert(cJSON_IsNumber(v), "%s is not a number", name);
	return v->valuedouble;
}

static const char *str(cJSON *o, const char *name)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	cr_assert(cJSON_IsString(v), "%s is not a string", name);
	return v->valuestring;
}

Test(tuple, json_fields)
{
	struct tuple t = make("192.0.2.1", 443, 5, 2, 123456789012ull);
	cJSON *o = cJSON_CreateObject();

	t.val.failed_connects = 3;
	t.val.bound_connects = 4;
	t.val.states[EPH_TCP_CLOSE_WAIT] = 1;
	tuple_finish(&t);
	cr_assert_eq(tuple_to_json(&t, o), 0);
	cr_assert_eq(num(o, "netns"), 4026531840.0);
	cr_assert_str_eq(str(o, "family"), "ipv4");
	cr_assert_str_eq(str(o, "saddr"), "10.0.0.9");
	cr_assert_str_eq(str(o, "daddr"), "192.0.2.1");
	cr_assert_eq(num(o, "dport"), 443);
	cr_assert_eq(num(o, "established"), 5);
	cr_assert_eq(num(o, "close_wait"), 1);
	cr_assert_eq(num(o, "time_wait"), 2);
	cr_assert_eq(num(o, "in_use"), 6);
	cr_assert_eq(num(o, "connects"), 123456789012.0);
	cr_assert_eq(num(o, "failed_connects"), 3);
	cr_assert_eq(num(o, "bound_connects"), 4);
	const char *zero[] = { "syn_sent",  "syn_recv", "fin_wait1",
			       "fin_wait2", "last_ack", "closing" };
	for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++)
		cr_assert_eq(num(o, zero[i]), 0);
	cJSON_Delete(o);
}

Test(tuple, json_ipv6)
{
	struct tuple t;
	cJSON *o = cJSON_CreateObject();
	char *s;

	memset(&t, 0, sizeof(t));
	t.key.family = AF_INET6;
	inet_pton(AF_INET6, "fd00::2", t.key.saddr);
	inet_pton(AF_INET6, "fd00::1", t.key.daddr);
	t.key.dport = 8443;
	tuple_finish(&t);
	cr_assert_eq(tuple_to_json(&t, o), 0);
	s = cJSON_PrintUnformatted(o);
	cr_assert(strstr(s, "\"family\":\"ipv6\",\"saddr\":\"fd00::2\",\"daddr\":\"fd00::1\","
			    "\"dport\":8443"),
		  "%s", s);
	cJSON_free(s);
	cJSON_Delete(o);
}

Test(tuple, json_rejects_unknown_family)
{
	struct tuple t;
	cJSON *o = cJSON_CreateObject();

	memset(&t, 0, sizeof(t));
	t.key.family = 1;
	cr_assert_eq(tuple_to_json(&t, o), -EINVAL);
	cJSON_Delete(o);
}

Test(stats, json_fields)
{
	struct agent_stats st = { .max_tuples = 10 };
	cJSON *o = cJSON_CreateObject();

	st.counters[EPH_STAT_TUPLES_FULL] = 3;
	st.counters[EPH_STAT_FW2_FULL] = 4;
	st.counters[EPH_STAT_CAUGHT] = 5;
	cr_assert_eq(stats_to_json(&st, 7, o), 0);
	cr_assert_eq(num(o, "tuples"), 7);
	cr_assert_eq(num(o, "max_tuples"), 10);
	cr_assert_eq(num(o, "tuples_dropped"), 3);
	cr_assert_eq(num(o, "fin_wait2_as_time_wait"), 4);
	cr_assert_eq(num(o, "events_caught"), 5);
	cr_assert_eq(num(o, "tuple_missing"), 0);
	cr_assert_null(cJSON_GetObjectItem(o, "max_sockets"));
	cJSON_Delete(o);
}

Test(util, parse_u64)
{
	uint64_t v = 42;

	cr_assert_eq(parse_u64("10", 1, 86400, &v), 0);
	cr_assert_eq(v, 10);
	cr_assert_eq(parse_u64("0", 1, 86400, &v), -ERANGE);
	cr_assert_eq(parse_u64("86401", 1, 86400, &v), -ERANGE);
	cr_assert_eq(parse_u64("-1", 0, 10, &v), -EINVAL);
	cr_assert_eq(parse_u64("+1", 0, 10, &v), -EINVAL);
	cr_assert_eq(parse_u64(" 1", 0, 10, &v), -EINVAL);
	cr_assert_eq(parse_u64("1 ", 0, 10, &v), -EINVAL);
	cr_assert_eq(parse_u64("", 0, 10, &v), -EINVAL);
	cr_assert_eq(parse_u64("99999999999999999999999", 0, UINT64_MAX, &v), -EINVAL);
	cr_assert_eq(v, 10);
}

/* strtoull skips any blank and takes a sign: "\t-18446744073709551615" was 1 (issue 16) */
Test(util, parse_u64_takes_decimal_digits_only)
{
	static const char *const bad[] = {
		"\t-18446744073709551615",
		"\t1",
		"\n1",
		"\v1",
		"\f1",
		"\r1",
		"-0",
		"+0",
		"1\t",
		"0x10",
		"1e3",
		"1.0",
		"1,0",
		"\t",
		"-",
	};
	uint64_t v = 42;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(parse_u64(bad[i], 0, UINT64_MAX, &v), -EINVAL, "'%s'", bad[i]);
	cr_assert_eq(v, 42);
	cr_assert_eq(parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	cr_assert_eq(v, UINT64_MAX);
	cr_assert_eq(parse_u64("18446744073709551616", 0, UINT64_MAX, &v), -EINVAL);
	cr_assert_eq(parse_u64("007", 0, 10, &v), 0);
	cr_assert_eq(v, 7);
}

/* the error convention (ephport.h): the line leaves errno as it was, for -errno after it */
Test(util, error_line_keeps_errno)
{
	FILE *saved = stderr;

	stderr = fopen("/dev/null", "w");
	cr_assert_not_null(stderr);
	errno = EACCES;
	eph_err("a line: %s", strerror(errno));
	cr_assert_eq(neg_errno(), -EACCES);
	errno = 0;
	cr_assert_eq(neg_errno(), -EIO, "a failure that set no errno is still one");
	fclose(stderr);
	stderr = saved;
}

Test(util, rfc3339_ms)
{
	struct timespec ts = { .tv_sec = 1795000000, .tv_nsec = 987654321 };
	char buf[40];

	cr_assert_eq(format_rfc3339_ms(&ts, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "2026-11-18T11:06:40.987Z");
	ts.tv_nsec = 0;
	cr_assert_eq(format_rfc3339_ms(&ts, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "2026-11-18T11:06:40.000Z");
	cr_assert_eq(format_rfc3339_ms(&ts, buf, 10), -ENOSPC);
}

/* the tuple writer prints what cJSON prints of the same values, so a line reads the same */
Test(tuple, writer_text_is_cjsons)
{
	const double utils[] = { 0, 1, 0.5, 0.1234, 0.00004, 0.00005, 0.99995, 1.25, 3, 0.1 };
	const __s64 caps[] = { 28232, 1, 0, 64512 };

	for (size_t u = 0; u < sizeof(utils) / sizeof(utils[0]); u++) {
		for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
			struct tuple t =
				make("198.18.0.1", 7000, (__s32)(u * 7), (__s32)c, u * 1000);
			struct jsonw w = { 0 };
			cJSON *o;
			char *again;

			t.val.states[EPH_TCP_FIN_WAIT1] = -3; /* shown as 0 */
			tuple_finish(&t);
			t.capacity = caps[c];
			t.utilization = utils[u];
			jw_open(&w, '{');
			tuple_write_json(&t, &w);
			jw_close(&w, '}');
			cr_assert(!w.oom);
			o = cJSON_Parse(w.buf);
			cr_assert_not_null(o, "%s", w.buf);
			again = cJSON_PrintUnformatted(o);
			cr_assert_str_eq(w.buf, again);
			cr_assert_eq(cJSON_GetObjectItem(o, "fin_wait1")->valuedouble, 0);
			cr_assert_eq(cJSON_GetObjectItem(o, "utilization")->valuedouble,
				     round(utils[u] * 10000) / 10000);
			cJSON_free(again);
			cJSON_Delete(o);
			jw_free(&w);
		}
	}
}
