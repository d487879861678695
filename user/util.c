// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Small helpers: error lines, number parsing, timestamps, JSON lines. */
#include <errno.h>
#include <getopt.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>

#include "ephport.h"

bool eph_json_mode;

/* one line on stderr; in JSON mode also {"error": ...} on stdout */
void eph_err(const char *fmt, ...)
{
	int saved = errno; /* callers return -errno after the line */
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "ephport: %s\n", msg);
	if (eph_json_mode) {
		cJSON *obj = cJSON_CreateObject();

		if (obj && cJSON_AddStringToObject(obj, "error", msg))
			json_print_line(obj);
		cJSON_Delete(obj);
	}
	errno = saved;
}

/*
 * The option getopt_long() stopped at: "-x" for a short one, the word for a long one.
 * A long one leaves optopt 0 or its value (256 and up, opts.c); a short one its letter,
 * below 0 for a byte above 127. In a cluster ("-vZx") optind has not moved on yet, so
 * only a long one's word is argv[optind - 1].
 */
const char *bad_option(char **argv, char buf[3])
{
	if (optopt != 0 && optopt < 128) {
		snprintf(buf, 3, "-%c", (char)optopt);
		return buf;
	}
	return argv[optind - 1];
}

/*
 * The option whose value getopt_long() just took: "--interval" of "--interval 0" or
 * "--interval=0", "-i" of "-i0", "-i 0", "-vi0" or "-vi 0". The value is the word after
 * the option's, or in the same word: after '=', or after the option's letter.
 */
const char *option_of_value(char **argv, int optind_now)
{
	static char buf[64];
	const char *arg = argv[optind_now - 1], *val = optarg;

	if (val == arg && optind_now >= 2) {
		arg = argv[optind_now - 2];
		val = arg + strlen(arg);
	}
	if (arg[0] == '-' && arg[1] != '-' && val > arg + 1)
		snprintf(buf, sizeof(buf), "-%c", val[-1]);
	else
		snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(arg, "="), arg);
	return buf;
}

/* decimal digits only: strtoull alone would skip blanks, take a sign and negate */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || *s == '\0' || s[strspn(s, "0123456789")] != '\0')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end != '\0')
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int format_rfc3339_ms(const struct timespec *ts, char *buf, size_t len)
{
	struct tm tm;
	int n;

	if (!gmtime_r(&ts->tv_sec, &tm))
		return -EINVAL;
	n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts->tv_nsec / 1000000);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

/* print one object as one line on stdout; the caller keeps ownership */
int json_print_line(cJSON *obj)
{
	char *s = cJSON_PrintUnformatted(obj);
	int err = 0;

	if (!s)
		return -ENOMEM;
	if (puts(s) == EOF || fflush(stdout) == EOF)
		err = errno ? -errno : -EIO;
	cJSON_free(s);
	return err;
}

/*
 * Every entry of a hash map, a batch at a time (bpf_map_lookup_batch): fn gets
 * each batch while the buffers hold it. Entries added or deleted meanwhile may
 * or may not be seen; none is seen twice.
 */
int map_read_each(int fd, size_t ksz, size_t vsz, map_batch_fn fn, void *arg)
{
	__u32 batch_in = 0, batch_out = 0, count, chunk = 1024;
	char *keys = NULL, *vals = NULL;
	bool first = true, last = false;
	int err = 0;

	while (!last) {
		if (!keys) {
			keys = malloc(chunk * ksz);
			vals = malloc(chunk * vsz);
			if (!keys || !vals) {
				err = -ENOMEM;
				break;
			}
		}
		count = chunk;
		err = bpf_map_lookup_batch(fd, first ? NULL : &batch_in, &batch_out, keys, vals,
					   &count, NULL);
		if (err == -ENOSPC && count == 0) {
			/* one bucket holds more than a chunk: read it again with room */
			chunk *= 2;
			free(keys);
			free(vals);
			keys = vals = NULL;
			continue;
		}
		if (err && err != -ENOENT)
			break;
		/* the last batch may still carry entries */
		last = err == -ENOENT;
		err = count ? fn(keys, vals, count, arg) : 0;
		if (err)
			break;
		batch_in = batch_out;
		first = false;
	}
	free(keys);
	free(vals);
	return err;
}

struct read_all {
	size_t ksz, vsz, len, cap;
	char *keys, *vals;
};

static int read_all_batch(const void *keys, const void *vals, size_t n, void *arg)
{
	struct read_all *r = arg;

	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 1024;
		char *k, *v;

		while (cap < r->len + n)
			cap *= 2;
		k = realloc(r->keys, cap * r->ksz);
		if (k)
			r->keys = k;
		v = k ? realloc(r->vals, cap * r->vsz) : NULL;
		if (v)
			r->vals = v;
		if (!k || !v)
			return -ENOMEM;
		r->cap = cap;
	}
	memcpy(r->keys + r->len * r->ksz, keys, n * r->ksz);
	memcpy(r->vals + r->len * r->vsz, vals, n * r->vsz);
	r->len += n;
	return 0;
}

int map_read_all(int fd, size_t ksz, size_t vsz, void **keys_out, void **vals_out, size_t *n)
{
	struct read_all r = { .ksz = ksz, .vsz = vsz };
	int err = map_read_each(fd, ksz, vsz, read_all_batch, &r);

	if (err) {
		free(r.keys);
		free(r.vals);
		return err;
	}
	*keys_out = r.keys;
	*vals_out = r.vals;
	*n = r.len;
	return 0;
}

/* CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns() */
__u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

int u32_cmp(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

struct tree_walk {
	void **items;
	size_t len, cap;
};

/* twalk_r() visits an inner node thrice: its second visit (postorder) is in key order */
static void tree_walk_one(const void *node, VISIT which, void *arg)
{
	struct tree_walk *w = arg;

	if (which != postorder && which != leaf)
		return;
	if (w->len == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		void **items = realloc(w->items, cap * sizeof(*items));

		if (!items)
			return; /* those that fit: the callers' next round has the rest */
		w->items = items;
		w->cap = cap;
	}
	w->items[w->len++] = *(void *const *)node;
}

void **tree_items(const void *root, size_t *n)
{
	struct tree_walk w = { 0 };

	twalk_r(root, tree_walk_one, &w);
	*n = w.len;
	return w.items;
}
