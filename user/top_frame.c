// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ephport top's frame: the lines a terminal of a given size shows (top.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "top.h"

static const char *const long_levels[] = { "ok", "warning", "critical", "exhausted" };
static const char *const short_levels[] = { "ok", "WARN", "CRIT", "FULL" };

/* appends to a line, never past its end or the terminal's width */
struct put {
	struct top_line *l;
	size_t len, width;
};

static void add(struct put *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct put *p, const char *fmt, ...)
{
	size_t room = sizeof(p->l->text) - p->len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(p->l->text + p->len, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		p->len += (size_t)n < room ? (size_t)n : room - 1;
	if (p->len > p->width)
		p->len = p->width;
	p->l->text[p->len] = 0;
}

/* s in exactly w columns: cut with '~' when longer */
static void field(struct put *p, const char *s, int w, bool left)
{
	size_t n = strlen(s);

	if (n > (size_t)w && w > 1)
		add(p, "%.*s~", w - 1, s);
	else
		add(p, left ? "%-*s" : "%*s", w, s);
}

static void level_field(struct put *p, int level, int w, bool wide)
{
	const char *name = level < 0 || level > 3 ? "?" :
			   wide			  ? long_levels[level] :
						    short_levels[level];

	p->l->level = level;
	p->l->level_at = p->len;
	field(p, name, w, true);
	p->l->level_len = p->len - p->l->level_at;
}

static void duration(char *buf, size_t len, double s)
{
	if (s < 0)
		snprintf(buf, len, "-");
	else if (s < 0.5)
		snprintf(buf, len, "now");
	else if (s < 100)
		snprintf(buf, len, "%.0fs", s);
	else if (s < 6000)
		snprintf(buf, len, "%.0fm", s / 60);
	else if (s < 360000)
		snprintf(buf, len, "%.0fh", s / 3600);
	else
		snprintf(buf, len, ">99h");
}

static double tw_share(const struct top_row *r)
{
	return r->usage ? (double)r->time_wait / (double)r->usage : 0;
}

static int by(const void *a, const void *b, void *arg)
{
	const struct top_row *x = *(const struct top_row *const *)a;
	const struct top_row *y = *(const struct top_row *const *)b;
	enum top_sort s = *(const enum top_sort *)arg;
	double dx = 0, dy = 0;
	int c;

	switch (s) {
	case TOP_SORT_RATE:
		dx = x->rate, dy = y->rate;
		break;
	case TOP_SORT_TW:
		dx = tw_share(x), dy = tw_share(y);
		break;
	case TOP_SORT_DST:
		c = strcmp(x->dst, y->dst);
		if (c)
			return c;
		break;
	default:
		break;
	}
	if (dx != dy)
		return dx > dy ? -1 : 1;
	if (x->util != y->util)
		return x->util > y->util ? -1 : 1;
	if (x->usage != y->usage)
		return x->usage > y->usage ? -1 : 1;
	if (x->netns != y->netns)
		return x->netns < y->netns ? -1 : 1;
	c = strcmp(x->dst, y->dst);
	return c ? c : strcmp(x->src, y->src);
}

struct layout {
	bool wide; /* a source column, long level names, a longer bar */
	int dst, bar, level;
};

static struct layout layout_for(int width)
{
	struct layout l = { .wide = width >= 112 };
	int fixed = l.wide ? 86 : 64;

	l.bar = l.wide ? 10 : 8;
	l.level = l.wide ? 9 : 5;
	l.dst = width - fixed;
	if (l.dst < 12)
		l.dst = 12;
	if (l.dst > (l.wide ? 47 : 40))
		l.dst = l.wide ? 47 : 40;
	return l;
}

static void heading(struct put *p, const struct layout *l)
{
	p->l->heading = p->l->columns = true;
	field(p, "NETNS", 10, true);
	if (l->wide) {
		add(p, " ");
		field(p, "SOURCE", 15, true);
	}
	add(p, " ");
	field(p, "DESTINATION", l->dst, true);
	add(p, " %11s %-*s %4s %-*s %4s %7s %*s", "USED/CAP", l->bar, "FILL", "UTIL", l->level,
	    "LEVEL", "TW%", "CONN/S", 7, "FULL IN");
}

static void row(struct put *p, const struct layout *l, const struct top_row *r)
{
	char buf[64], bar[16];
	int fill = (int)lround(r->util * l->bar);

	if (fill > l->bar)
		fill = l->bar;
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)r->netns);
	field(p, buf, 10, true);
	if (l->wide) {
		add(p, " ");
		field(p, r->src, 15, true);
	}
	add(p, " ");
	field(p, r->dst, l->dst, true);
	snprintf(buf, sizeof(buf), "%llu/%llu", (unsigned long long)r->usage,
		 (unsigned long long)r->capacity);
	add(p, " ");
	field(p, buf, 11, false);
	memset(bar, '#', fill);
	memset(bar + fill, '.', l->bar - fill);
	bar[l->bar] = 0;
	add(p, " %s %3.0f%% ", bar, r->util * 100);
	level_field(p, r->level, l->level, l->wide);
	if (r->usage)
		add(p, " %3.0f%%", tw_share(r) * 100);
	else
		add(p, " %4s", "-");
	if (r->rate < 0)
		add(p, " %7s", "-");
	else
		add(p, r->rate < 1000 ? " %7.1f" : " %7.0f", r->rate);
	duration(buf, sizeof(buf), r->full_in);
	add(p, " %7s", buf);
}

static void ns_line(struct put *p, const struct top_ns *ns, bool wide)
{
	const char *name = ns->name;

	if (!strncmp(name, "/run/netns/", 11))
		name += 11;
	add(p, "%-10llu %-18.18s %5u-%-5u tw_reuse %d %4zu tuples  ", (unsigned long long)ns->netns,
	    name, ns->low, ns->high, ns->tw_reuse, ns->tuples);
	if (!ns->tuples) {
		add(p, "-");
		return;
	}
	add(p, "%3.0f%% ", ns->worst * 100);
	level_field(p, ns->worst_level, wide ? 9 : 5, wide);
}

static size_t count_level(const struct top_state *s, int level)
{
	size_t n = 0;

	for (size_t i = 0; i < s->nrows; i++)
		n += s->rows[i].level == level;
	return n;
}

static struct put line(struct top_line *lines, size_t *n, int width)
{
	struct top_line *l = &lines[(*n)++];

	memset(l, 0, sizeof(*l));
	l->level = -1;
	return (struct put){ .l = l, .width = width > 0 ? (size_t)width : 0 };
}

size_t top_frame_lines(const struct top_state *s)
{
	return 7 + s->nrows + s->nns + s->nrecent;
}

size_t top_frame(const struct top_state *s, const struct top_head *h, int width, int height,
		 struct top_line *lines)
{
	struct layout l = layout_for(width);
	const struct top_row **order;
	size_t n = 0, nrows, nns = 0, nrecent = 0;
	/* two header lines (three with a filter), the column heading, the keys */
	int head = *h->filter ? 3 : 2, room = height - head - 2;
	struct put p;

	if (height < 1)
		return 0;
	if (h->whole) {
		/* no terminal: every line once, nothing padded */
		nns = s->nns;
		nrecent = s->nrecent;
		room = (int)s->nrows;
		height = (int)(head + 1 + s->nrows + 2 + nns + nrecent);
	} else if (room >= 8) {
		/* the namespaces and the recent lines take a share, tuples the rest */
		nns = s->nns < (size_t)(room / 6) ? s->nns : (size_t)(room / 6);
		nrecent = s->nrecent < (size_t)(room / 4) ? s->nrecent : (size_t)(room / 4);
		room -= (int)(nns + 2 + nrecent);
	}
	nrows = room > 0 ? (size_t)room : 0;
	p = line(lines, &n, width);
	add(&p, "ephport top  %s  every %gs  agent %ld  sort: %s", h->host_time, h->interval,
	    s->agent_pid, top_sort_name(s->sort));
	if (n == (size_t)height)
		return n;
	p = line(lines, &n, width);
	add(&p,
	    "tuples %zu of %llu: %zu warning, %zu critical, %zu exhausted  NAT %zu: %zu above ok",
	    s->nrows, (unsigned long long)s->map_tuples, count_level(s, 1), count_level(s, 2),
	    count_level(s, 3), s->nat_tuples, s->nat_hot);
	if (n == (size_t)height)
		return n;
	if (*h->filter) {
		p = line(lines, &n, width);
		add(&p, "only %s", h->filter);
		if (n == (size_t)height)
			return n;
	}
	if (n == (size_t)height)
		return n;
	p = line(lines, &n, width);
	heading(&p, &l);
	order = malloc((s->nrows + 1) * sizeof(*order));
	if (order) {
		enum top_sort sort = s->sort;

		for (size_t i = 0; i < s->nrows; i++)
			order[i] = &s->rows[i];
		qsort_r(order, s->nrows, sizeof(*order), by, &sort);
		for (size_t i = 0; i < s->nrows && i < nrows && n < (size_t)height; i++) {
			p = line(lines, &n, width);
			row(&p, &l, order[i]);
		}
		free(order);
	}
	/* what is left of the tuples' share stays empty: the sections below do not jump */
	while (!h->whole && n < (size_t)height && n < (size_t)head + 1 + nrows)
		line(lines, &n, width);
	if ((h->whole || height - head - 2 >= 8) && n + 2 <= (size_t)height) {
		p = line(lines, &n, width);
		p.l->heading = true;
		add(&p, "NAMESPACES (%zu)", s->nns);
		for (size_t i = 0; i < nns && n < (size_t)height; i++) {
			p = line(lines, &n, width);
			ns_line(&p, &s->ns[i], l.wide);
		}
		p = line(lines, &n, width);
		p.l->heading = true;
		add(&p, "RECENT ALERTS (UTC)%s", s->nrecent ? "" : ": none");
		for (size_t i = s->nrecent - nrecent; i < s->nrecent && n < (size_t)height; i++) {
			p = line(lines, &n, width);
			add(&p, "%s", s->recent[i]);
		}
	}
	while (!h->whole && n + 1 < (size_t)height)
		line(lines, &n, width);
	if (n >= (size_t)height || h->whole)
		return n;
	p = line(lines, &n, width);
	if (*h->status)
		add(&p, "%s", h->status);
	else
		add(&p, "q quit  s sort  n namespace  d destination  c clear filters");
	return n;
}
