// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A tuple's recent readings, one per check in a ring, and what they tell:
 * the connect rate over a window, the growth of usage by least squares, and
 * from it the seconds until the tuple runs out of ports.
 */
#include <math.h>
#include <stddef.h>

#include "series.h"

#define NSEC_PER_SEC 1e9

void series_add(struct series *s, const struct sample *x)
{
	s->s[s->head] = *x;
	s->head = (s->head + 1) % SERIES_LEN;
	if (s->len < SERIES_LEN)
		s->len++;
}

/* i-th newest sample, 0 the newest */
static const struct sample *series_at(const struct series *s, unsigned int i)
{
	return &s->s[(s->head + SERIES_LEN - 1 - i) % SERIES_LEN];
}

const struct sample *series_last(const struct series *s)
{
	return s->len ? series_at(s, 0) : NULL;
}

const struct sample *series_base(const struct series *s, __u64 now, __u64 window_ns)
{
	const struct sample *base = NULL;

	for (unsigned int i = 0; i < s->len; i++) {
		const struct sample *x = series_at(s, i);

		base = x;
		if (x->t_ns + window_ns <= now)
			break;
	}
	return base;
}

double series_rate(const struct series *s, __u64 now, __u64 window_ns)
{
	const struct sample *last = series_last(s), *base = series_base(s, now, window_ns);

	if (!last || !base || last->t_ns <= base->t_ns || last->connects < base->connects)
		return NAN;
	return (double)(last->connects - base->connects) * NSEC_PER_SEC /
	       (double)(last->t_ns - base->t_ns);
}

double series_slope(const struct series *s, __u64 now, __u64 window_ns)
{
	double st = 0, su = 0, stt = 0, stu = 0, n = 0, t0, denom;
	const struct sample *last = series_last(s);

	if (!last)
		return NAN;
	t0 = (double)last->t_ns;
	for (unsigned int i = 0; i < s->len; i++) {
		const struct sample *x = series_at(s, i);
		double t = ((double)x->t_ns - t0) / NSEC_PER_SEC, u = (double)x->usage;

		if (x->t_ns + window_ns < now)
			break;
		st += t;
		su += u;
		stt += t * t;
		stu += t * u;
		n++;
	}
	denom = n * stt - st * st;
	/* two readings at least, a second apart at least */
	if (n < 2 || denom < 1e-9 || stt - st * st / n < 0.25)
		return NAN;
	return (n * stu - st * su) / denom;
}

double forecast_exhaustion(__s64 usage, __s64 capacity, double slope)
{
	if (capacity <= 0 && usage <= 0)
		return NAN; /* nothing known */
	if (usage >= capacity)
		return 0;
	if (isnan(slope) || slope <= 1e-6)
		return NAN;
	return (double)(capacity - usage) / slope;
}
