// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The Prometheus text exposition format (version 0.0.4): a text that grows as
 * it is written, and the pieces of it the metrics are made of: a family's HELP
 * and TYPE, a sample's value, an escaped label value.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promtext.h"

void text_printf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->oom)
		return;
	for (;;) {
		size_t room = t->cap - t->len;

		va_start(ap, fmt);
		n = vsnprintf(t->s ? t->s + t->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = true;
			return;
		}
		if ((size_t)n < room) {
			t->len += n;
			return;
		}
		size_t cap = t->cap ? t->cap * 2 : 16384;
		while (cap - t->len <= (size_t)n)
			cap *= 2;
		char *s = realloc(t->s, cap);
		if (!s) {
			t->oom = true;
			return;
		}
		t->s = s;
		t->cap = cap;
	}
}

void text_free(struct text *t)
{
	if (!t)
		return;
	free(t->s);
	memset(t, 0, sizeof(*t));
}

void family(struct text *t, const char *name, const char *type, const char *help)
{
	text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* a sample value as the format spells it: NaN, +Inf, -Inf or a number */
void value(struct text *t, double v)
{
	if (isnan(v))
		text_printf(t, " NaN\n");
	else if (isinf(v))
		text_printf(t, " %sInf\n", v > 0 ? "+" : "-");
	else if (fabs(v) < 1e15 && v == (double)(long long)v)
		text_printf(t, " %lld\n", (long long)v);
	else
		text_printf(t, " %.15g\n", v);
}

/* one sample with no labels */
void plain(struct text *t, const char *name, const char *type, const char *help, double v)
{
	family(t, name, type, help);
	text_printf(t, "%s", name);
	value(t, v);
}

/* a label value: backslash, double quote and line feed escaped */
void label_value(struct text *t, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			text_printf(t, "\\%c", *s);
		else if (*s == '\n')
			text_printf(t, "\\n");
		else
			text_printf(t, "%c", *s);
	}
}

/* one sample with one label */
void labelled(struct text *t, const char *name, const char *label, const char *lv, double v)
{
	text_printf(t, "%s{%s=\"", name, label);
	label_value(t, lv);
	text_printf(t, "\"}");
	value(t, v);
}
