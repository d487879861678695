/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* A tuple's recent readings: rates, growth and forecasts of exhaustion (series.c). */
#ifndef EPHPORT_SERIES_H
#define EPHPORT_SERIES_H

#include <linux/types.h>

/* a tuple's recent readings, one per check, oldest dropped first */
#define SERIES_LEN 64
struct sample {
	__u64 t_ns;
	__s64 usage;
	__u64 connects;
	__u64 bound_connects;
};

struct series {
	struct sample s[SERIES_LEN];
	unsigned int head, len; /* head: the next slot written */
};

void series_add(struct series *s, const struct sample *x);
/* the newest sample, NULL when there is none */
const struct sample *series_last(const struct series *s);
/* the oldest sample no older than now - window_ns (the newest one before that when none) */
const struct sample *series_base(const struct series *s, __u64 now, __u64 window_ns);
/* connects per second since series_base(); NAN when it cannot be told */
double series_rate(const struct series *s, __u64 now, __u64 window_ns);
/* growth of usage, per second, by least squares over the window; NAN with too few samples */
double series_slope(const struct series *s, __u64 now, __u64 window_ns);
/* seconds until usage reaches capacity at that growth: 0 when there, NAN when not growing */
double forecast_exhaustion(__s64 usage, __s64 capacity, double slope);

#endif /* EPHPORT_SERIES_H */
