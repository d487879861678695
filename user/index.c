// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Hashed indexes of records, by a 32-bit key or by a key of some bytes, and arrays that grow
 * (index.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"

static __u32 key_at(const struct u32_index *x, const void *items, size_t i)
{
	__u32 k;

	memcpy(&k, (const char *)items + i * x->stride + x->key_off, sizeof(k));
	return k;
}

/* the slot that holds key, or the empty slot where it would go */
static size_t slot_of(const struct u32_index *x, const void *items, __u32 key)
{
	size_t mask = x->nslot - 1, i = ((__u64)key * 0x9e3779b97f4a7c15ull >> 32) & mask;

	while (x->slot[i] && key_at(x, items, x->slot[i] - 1) != key)
		i = (i + 1) & mask;
	return i;
}

long u32_index_find(const struct u32_index *x, const void *items, __u32 key)
{
	size_t i;

	if (!x->nslot)
		return -1;
	i = slot_of(x, items, key);
	return x->slot[i] ? (long)x->slot[i] - 1 : -1;
}

static int resize(struct u32_index *x, const void *items, size_t n)
{
	size_t want = 32;
	__u32 *slot;

	while (want < n * 2)
		want *= 2;
	/* never smaller: a rebuild after records went cannot fail */
	if (want < x->nslot)
		want = x->nslot;
	if (want != x->nslot) {
		slot = calloc(want, sizeof(*slot));
		if (!slot)
			return -ENOMEM;
		free(x->slot);
		x->slot = slot;
		x->nslot = want;
	} else {
		memset(x->slot, 0, x->nslot * sizeof(*x->slot));
	}
	for (size_t i = 0; i < n; i++)
		x->slot[slot_of(x, items, key_at(x, items, i))] = i + 1;
	return 0;
}

int u32_index_added(struct u32_index *x, const void *items, size_t n)
{
	if (n * 2 > x->nslot)
		return resize(x, items, n);
	x->slot[slot_of(x, items, key_at(x, items, n - 1))] = n;
	return 0;
}

int u32_index_rebuild(struct u32_index *x, const void *items, size_t n)
{
	return resize(x, items, n);
}

void u32_index_free(struct u32_index *x)
{
	free(x->slot);
	x->slot = NULL;
	x->nslot = 0;
}

static size_t key_hash(const void *key, size_t len)
{
	const unsigned char *p = key;
	__u64 h = 1469598103934665603ull; /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h ^ (h >> 29);
}

int bytes_index_rebuild(struct bytes_index *x, const void *items, size_t n, size_t stride,
			size_t off, size_t len)
{
	size_t want = 16;

	while (want < 2 * n)
		want *= 2;
	if (want != x->nslot) {
		__u32 *s = calloc(want, sizeof(*s));

		if (!s)
			return -ENOMEM;
		free(x->slot);
		x->slot = s;
		x->nslot = want;
	} else {
		memset(x->slot, 0, want * sizeof(*x->slot));
	}
	for (size_t i = 0; i < n; i++) {
		const char *k = (const char *)items + i * stride + off;
		size_t h = key_hash(k, len) & (x->nslot - 1);

		while (x->slot[h])
			h = (h + 1) & (x->nslot - 1);
		x->slot[h] = i + 1;
	}
	return 0;
}

long bytes_index_find(const struct bytes_index *x, const void *items, size_t stride, size_t off,
		      size_t len, const void *key)
{
	size_t h;

	if (!x->nslot)
		return -1;
	for (h = key_hash(key, len) & (x->nslot - 1); x->slot[h]; h = (h + 1) & (x->nslot - 1)) {
		size_t i = x->slot[h] - 1;

		if (!memcmp((const char *)items + i * stride + off, key, len))
			return i;
	}
	return -1;
}

/* room for one more of *len records of size bytes in *items (cap of them); 0 or -ENOMEM */
int array_grow(void *items, size_t len, size_t *cap, size_t size, size_t first)
{
	void **p = items, *q;
	size_t want;

	if (len < *cap)
		return 0;
	want = *cap ? 2 * *cap : first;
	q = realloc(*p, want * size);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = want;
	return 0;
}
