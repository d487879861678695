// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A JSON writer into one growing buffer, for output with many objects (jsonw.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ephport.h"

static bool room(struct jsonw *w, size_t n)
{
	size_t cap;
	char *b;

	if (w->oom)
		return false;
	if (w->len + n + 1 <= w->cap)
		return true;
	cap = w->cap ? w->cap : 4096;
	while (cap < w->len + n + 1)
		cap *= 2;
	b = realloc(w->buf, cap);
	if (!b) {
		w->oom = true;
		return false;
	}
	w->buf = b;
	w->cap = cap;
	return true;
}

void jw_raw(struct jsonw *w, const char *s, size_t n)
{
	if (!room(w, n))
		return;
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = 0;
}

void jw_open(struct jsonw *w, char c)
{
	if (w->comma)
		jw_raw(w, ",", 1);
	jw_raw(w, &c, 1);
	w->comma = false;
}

void jw_close(struct jsonw *w, char c)
{
	jw_raw(w, &c, 1);
	w->comma = true;
}

void jw_key(struct jsonw *w, const char *name)
{
	size_t n = strlen(name);

	if (!room(w, n + 4))
		return;
	if (w->comma)
		w->buf[w->len++] = ',';
	w->buf[w->len++] = '"';
	memcpy(w->buf + w->len, name, n);
	w->len += n;
	w->buf[w->len++] = '"';
	w->buf[w->len++] = ':';
	w->buf[w->len] = 0;
	w->comma = false; /* the value comes next */
}

static void digits(struct jsonw *w, bool neg, __u64 v)
{
	char tmp[24];
	int i = sizeof(tmp);

	do {
		tmp[--i] = '0' + v % 10;
		v /= 10;
	} while (v);
	if (neg)
		tmp[--i] = '-';
	jw_raw(w, tmp + i, sizeof(tmp) - i);
}

/* cJSON prints a number as a double: beyond 2^53 it is not exact, so as cJSON would */
#define EXACT_LIMIT (1ull << 53)

void jw_u64(struct jsonw *w, const char *name, __u64 v)
{
	if (v >= EXACT_LIMIT) {
		jw_double(w, name, (double)v);
		return;
	}
	jw_key(w, name);
	digits(w, false, v);
	w->comma = true;
}

void jw_s64(struct jsonw *w, const char *name, __s64 v)
{
	if (v >= (__s64)EXACT_LIMIT || v <= -(__s64)EXACT_LIMIT) {
		jw_double(w, name, (double)v);
		return;
	}
	jw_key(w, name);
	digits(w, v < 0, v < 0 ? -(__u64)v : (__u64)v);
	w->comma = true;
}

void jw_double(struct jsonw *w, const char *name, double v)
{
	char tmp[32];
	int n;

	jw_key(w, name);
	w->comma = true;
	if (isnan(v) || isinf(v)) {
		jw_raw(w, "null", 4);
		return;
	}
	/* cJSON's way: 15 digits, 17 when 15 do not read back the same */
	n = snprintf(tmp, sizeof(tmp), "%1.15g", v);
	if (strtod(tmp, NULL) != v)
		n = snprintf(tmp, sizeof(tmp), "%1.17g", v);
	jw_raw(w, tmp, n);
}

void jw_str(struct jsonw *w, const char *name, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	jw_key(w, name);
	jw_raw(w, "\"", 1);
	for (; *s; s++) {
		unsigned char c = *s;
		char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

		if (c == '"' || c == '\\')
			jw_raw(w, (char[]){ '\\', c }, 2);
		else if (c < 0x20)
			jw_raw(w, esc, sizeof(esc));
		else
			jw_raw(w, (const char *)&c, 1);
	}
	jw_raw(w, "\"", 1);
	w->comma = true;
}

void jw_addr(struct jsonw *w, const char *name, __u16 family, const __u8 addr[16])
{
	char buf[EPH_ADDRSTRLEN];

	addr_put(family, addr, buf);
	jw_str(w, name, buf);
}

void jw_free(struct jsonw *w)
{
	if (!w)
		return;
	free(w->buf);
	memset(w, 0, sizeof(*w));
}
