// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Pressure levels, hysteresis, rates, forecasts and hints: the values they must give. */
#include <math.h>
#include <string.h>
#include <criterion/criterion.h>

#include "hints.h"
#include "pressure.h"
#include "series.h"

#define S 1000000000ull

static const struct alert_cfg cfg = {
	.warn = 0.80, .crit = 0.95, .margin = 0.05, .hold_ns = 30 * S, .window_ns = 10 * S
};

Test(level, goes_up_at_once_and_skips_levels)
{
	__u64 hot = 0;

	cr_assert_eq(level_next(&cfg, LEVEL_OK, 0.79, false, 1 * S, &hot), LEVEL_OK);
	cr_assert_eq(level_next(&cfg, LEVEL_OK, 0.80, false, 2 * S, &hot), LEVEL_WARNING);
	cr_assert_eq(level_next(&cfg, LEVEL_OK, 0.97, false, 3 * S, &hot), LEVEL_CRITICAL);
	cr_assert_eq(level_next(&cfg, LEVEL_OK, 0.10, true, 4 * S, &hot), LEVEL_EXHAUSTED);
	cr_assert_eq(hot, 4 * S);
}

Test(level, clears_only_below_the_margin_after_the_hold)
{
	__u64 hot = 0;
	enum level l = level_next(&cfg, LEVEL_OK, 0.85, false, 0, &hot);

	cr_assert_eq(l, LEVEL_WARNING);
	/* 0.76 is within the margin (0.75): still warning, and still "hot" */
	l = level_next(&cfg, l, 0.76, false, 100 * S, &hot);
	cr_assert_eq(l, LEVEL_WARNING);
	cr_assert_eq(hot, 100 * S);
	/* below the margin, but not for 30 s yet */
	l = level_next(&cfg, l, 0.74, false, 101 * S, &hot);
	cr_assert_eq(l, LEVEL_WARNING);
	l = level_next(&cfg, l, 0.10, false, 129 * S, &hot);
	cr_assert_eq(l, LEVEL_WARNING);
	l = level_next(&cfg, l, 0.10, false, 130 * S, &hot);
	cr_assert_eq(l, LEVEL_OK);
}

Test(level, hovering_at_the_line_does_not_flap)
{
	double utils[] = { 0.81, 0.79, 0.80, 0.78, 0.82, 0.76, 0.80 };
	enum level l = LEVEL_OK;
	__u64 hot = 0;
	int changes = 0;

	for (int i = 0; i < 100; i++) {
		enum level next = level_next(&cfg, l, utils[i % 7], false, i * S, &hot);

		changes += next != l;
		l = next;
	}
	cr_assert_eq(changes, 1);
	cr_assert_eq(l, LEVEL_WARNING);
}

Test(level, exhausted_holds_after_the_last_failure_then_drops_to_what_usage_says)
{
	__u64 hot = 0;
	enum level l = level_next(&cfg, LEVEL_CRITICAL, 1.0, true, 10 * S, &hot);

	cr_assert_eq(l, LEVEL_EXHAUSTED);
	l = level_next(&cfg, l, 1.0, true, 20 * S, &hot); /* failing again */
	l = level_next(&cfg, l, 0.96, false, 49 * S, &hot);
	cr_assert_eq(l, LEVEL_EXHAUSTED);
	/* 30 s after the last failure: still at 0.96, so critical, which holds anew */
	l = level_next(&cfg, l, 0.96, false, 50 * S, &hot);
	cr_assert_eq(l, LEVEL_CRITICAL);
	l = level_next(&cfg, l, 0.0, false, 79 * S, &hot);
	cr_assert_eq(l, LEVEL_CRITICAL);
	l = level_next(&cfg, l, 0.0, false, 80 * S, &hot);
	cr_assert_eq(l, LEVEL_OK);
}

Test(level, straight_to_ok_from_exhausted_when_empty)
{
	__u64 hot = 0;
	enum level l = level_next(&cfg, LEVEL_OK, 1.0, true, 0, &hot);

	l = level_next(&cfg, l, 0.0, false, 30 * S, &hot);
	cr_assert_eq(l, LEVEL_OK);
	cr_assert_str_eq(level_name(LEVEL_EXHAUSTED), "exhausted");
}

static void fill(struct series *s, int n, __u64 step, __s64 usage0, __s64 du, __u64 dc)
{
	for (int i = 0; i < n; i++) {
		struct sample x = { .t_ns = i * step,
				    .usage = usage0 + i * du,
				    .connects = i * dc };

		series_add(s, &x);
	}
}

Test(series, rate_over_the_window)
{
	struct series s = { 0 };

	cr_assert(isnan(series_rate(&s, 0, 10 * S)));
	/* 40 samples half a second apart, 50 connects each: 100/s */
	fill(&s, 40, S / 2, 0, 0, 50);
	cr_assert_float_eq(series_rate(&s, 19500000000ull, 10 * S), 100.0, 1e-9);
	cr_assert_eq(series_base(&s, 19500000000ull, 10 * S)->t_ns, 9500000000ull);
}

Test(series, ring_keeps_the_newest)
{
	struct series s = { 0 };

	fill(&s, SERIES_LEN + 10, S, 0, 1, 1);
	cr_assert_eq(s.len, SERIES_LEN);
	cr_assert_eq(series_last(&s)->usage, SERIES_LEN + 9);
}

Test(series, slope_and_forecast)
{
	struct series s = { 0 };
	double slope;

	/* usage grows 20 a second */
	fill(&s, 21, S / 2, 100, 10, 0);
	slope = series_slope(&s, 10 * S, 10 * S);
	cr_assert_float_eq(slope, 20.0, 1e-6);
	cr_assert_float_eq(forecast_exhaustion(300, 1000, slope), 35.0, 1e-6);
	cr_assert_eq(forecast_exhaustion(1000, 1000, slope), 0);
	cr_assert(isnan(forecast_exhaustion(300, 1000, 0)));
	cr_assert(isnan(forecast_exhaustion(300, 1000, -5)));
	cr_assert(isnan(forecast_exhaustion(300, 1000, NAN)));
}

Test(series, slope_needs_a_second_of_samples)
{
	struct series s = { 0 };

	fill(&s, 1, S, 10, 1, 0);
	cr_assert(isnan(series_slope(&s, 0, 10 * S)));
	memset(&s, 0, sizeof(s));
	fill(&s, 3, S / 10, 10, 1, 0); /* 0.2 s of samples */
	cr_assert(isnan(series_slope(&s, S / 5, 10 * S)));
}

static struct tuple busy(__s64 in_use, __s64 tw, __s32 bound)
{
	struct tuple t = { .in_use = in_use, .time_wait = tw, .capacity = 28232 };

	t.key.family = 2;
	t.key.dport = 8080;
	t.val.bound = bound;
	t.usage = in_use + tw;
	return t;
}

static const struct hint *find(const struct hint *h, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(h[i].id, id))
			return &h[i];
	return NULL;
}

Test(hints, time_wait_with_short_lived_connections)
{
	struct tuple t = busy(100, 26000, 0);
	struct hint_input in = { .t = &t,
				 .port_range = 32768 | 60999u << 16,
				 .tw_reuse = 2,
				 .connects_per_s = 433.0,
				 .sources = 1,
				 .destinations = 1 };
	struct hint h[MAX_HINTS];
	size_t n = hints_build(&in, h, MAX_HINTS);

	cr_assert_str_eq(h[0].id, "time_wait");
	cr_assert(strstr(h[0].advice, "keepalive") && strstr(h[0].advice, "tcp_tw_reuse=1"));
	cr_assert(strstr(h[0].reason, "TIME_WAIT holds 26000 of the 26100 ports in use (100%)"),
		  "%s", h[0].reason);
	cr_assert(strstr(h[0].reason, "live about 0.23 s (100 open at 433.0 connects/s)"), "%s",
		  h[0].reason);
	cr_assert(find(h, n, "narrow_range"));
	cr_assert(strstr(find(h, n, "narrow_range")->reason, "32768-60999: 28232 ports"));
	cr_assert(find(h, n, "single_source") && find(h, n, "single_destination"));
}

Test(hints, bind_before_connect_comes_first)
{
	struct tuple t = busy(900, 10, 40);
	struct hint_input in = { .t = &t,
				 .port_range = 1024 | 65535u << 16,
				 .tw_reuse = 1,
				 .connects_per_s = NAN,
				 .bound_recent = 12,
				 .sources = 3,
				 .destinations = 4 };
	struct hint h[MAX_HINTS];
	size_t n = hints_build(&in, h, MAX_HINTS);

	cr_assert_eq(n, 1);
	cr_assert_str_eq(h[0].id, "bind_before_connect");
	cr_assert(strstr(h[0].advice, "IP_BIND_ADDRESS_NO_PORT"));
	cr_assert(strstr(h[0].reason, "40 sockets") && strstr(h[0].reason, "12 such connects"));
}

Test(hints, nothing_specific_still_says_why)
{
	struct tuple t = busy(25000, 10, 0);
	struct hint_input in = { .t = &t,
				 .port_range = 1024 | 65535u << 16,
				 .tw_reuse = 1,
				 .connects_per_s = 2.0,
				 .sources = 2,
				 .destinations = 3 };
	struct hint h[MAX_HINTS];

	cr_assert_eq(hints_build(&in, h, MAX_HINTS), 1);
	cr_assert_str_eq(h[0].id, "open_connections");
	cr_assert(strstr(h[0].reason, "25010 ports in use of 28232, 25000 of them open"), "%s",
		  h[0].reason);
}

Test(hints, tw_reuse_already_on_is_not_advised)
{
	struct tuple t = busy(10, 5000, 0);
	struct hint_input in = { .t = &t,
				 .port_range = 1024 | 65535u << 16,
				 .tw_reuse = 1,
				 .connects_per_s = NAN,
				 .sources = 2,
				 .destinations = 2 };
	struct hint h[MAX_HINTS];

	hints_build(&in, h, MAX_HINTS);
	cr_assert_str_eq(h[0].id, "time_wait");
	cr_assert_null(strstr(h[0].advice, "tcp_tw_reuse"));
	cr_assert_null(strstr(h[0].reason, "live about"));
}

Test(hints, spreading_says_how_many_sources_are_left)
{
	struct tuple t = busy(100, 10, 0);
	struct hint_input in = { .t = &t,
				 .port_range = 40000 | 40099u << 16,
				 .tw_reuse = 2,
				 .connects_per_s = NAN,
				 .sources = 3,
				 .destinations = 1,
				 .spread = { .addrs = 3, .below = 2, .active = true } };
	struct hint h[MAX_HINTS];
	size_t n = hints_build(&in, h, MAX_HINTS);

	cr_assert_geq(n, 2);
	cr_assert_str_eq(h[0].id, "spreading");
	cr_assert_str_eq(h[0].advice, "spreading over 3 source addresses, 2 below the deny line");
	/* none left: more addresses is the advice */
	in.spread.below = 0;
	n = hints_build(&in, h, MAX_HINTS);
	cr_assert(strstr(h[0].advice, "0 below the deny line: add --spread addresses"));
	/* not spreading to this destination (or no --spread): today's hints only */
	in.spread.active = false;
	n = hints_build(&in, h, MAX_HINTS);
	cr_assert_null(find(h, n, "spreading"));
	in.spread = (struct spread_state){ .addrs = -1 };
	n = hints_build(&in, h, MAX_HINTS);
	cr_assert_null(find(h, n, "spreading"));
}
