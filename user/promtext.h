/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The Prometheus text exposition format: a growing text, families, samples, labels (promtext.c). */
#ifndef EPHPORT_PROMTEXT_H
#define EPHPORT_PROMTEXT_H

#include <stdbool.h>
#include <stddef.h>

/* a growing text; an allocation failure sticks (oom) and the text is dropped */
struct text {
	char *s;
	size_t len, cap;
	bool oom;
};

void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void text_free(struct text *t);

/* a family's HELP and TYPE lines */
void family(struct text *t, const char *name, const char *type, const char *help);
/* a sample value as the format spells it, with the line's end: NaN, +Inf, -Inf or a number */
void value(struct text *t, double v);
/* one family with one sample and no labels */
void plain(struct text *t, const char *name, const char *type, const char *help, double v);
/* a label value: backslash, double quote and line feed escaped */
void label_value(struct text *t, const char *s);
/* one sample with one label */
void labelled(struct text *t, const char *name, const char *label, const char *lv, double v);

#endif /* EPHPORT_PROMTEXT_H */
