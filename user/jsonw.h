/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A JSON writer for what is written by the ten thousand (jsonw.c): tuple lines,
 * query's tuples. It prints numbers as cJSON does, so a line reads the same
 * whichever wrote it; everything else uses cJSON.
 */
#ifndef EPHPORT_JSONW_H
#define EPHPORT_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

struct jsonw {
	char *buf;
	size_t len, cap;
	bool oom;
	bool comma; /* a member came before in this object or array: the next gets a ',' */
};

void jw_raw(struct jsonw *w, const char *s, size_t n);
void jw_open(struct jsonw *w, char c);	/* '{' or '[' */
void jw_close(struct jsonw *w, char c); /* '}' or ']' */
/* "name": with the comma before it; name is a plain identifier */
void jw_key(struct jsonw *w, const char *name);
void jw_u64(struct jsonw *w, const char *name, __u64 v);
void jw_s64(struct jsonw *w, const char *name, __s64 v);
void jw_double(struct jsonw *w, const char *name, double v);
void jw_str(struct jsonw *w, const char *name, const char *s);
/* an address of a tuple key, as addr_format() writes it */
void jw_addr(struct jsonw *w, const char *name, __u16 family, const __u8 addr[16]);
void jw_free(struct jsonw *w);

#endif /* EPHPORT_JSONW_H */
