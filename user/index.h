/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A hashed index over an array of records found by a 32-bit key (a namespace's
 * inode number): the array stays the caller's, in the caller's order; the index
 * maps a key to its record's position. Lookups and appends cost O(1) on average,
 * so that lists of tens of thousands of namespaces are never searched item by item.
 */
#ifndef EPHPORT_INDEX_H
#define EPHPORT_INDEX_H

#include <stddef.h>
#include <linux/types.h>

struct u32_index {
	__u32 *slot;  /* open addressing: position + 1, 0 empty */
	size_t nslot; /* 0 (no index yet), or a power of two, at least twice the records */
	size_t stride, key_off; /* the records' size, and where in each its key is */
};

#define U32_INDEX_INIT(type, member)                                      \
	{                                                                 \
		.stride = sizeof(type), .key_off = offsetof(type, member) \
	}

/* the position of key in items (n of them), or -1 */
long u32_index_find(const struct u32_index *x, const void *items, __u32 key);
/* items[n - 1] was appended: indexed, the slots grown if needed; 0 or -ENOMEM */
int u32_index_added(struct u32_index *x, const void *items, size_t n);
/*
 * every record indexed afresh (after a sort or a compaction); 0 or -ENOMEM, which
 * never comes when there are no more records than at the latest call (the slots
 * never shrink)
 */
int u32_index_rebuild(struct u32_index *x, const void *items, size_t n);
void u32_index_free(struct u32_index *x);

/*
 * The same over a key of len bytes at off in each record (stride bytes apart),
 * rebuilt whole (after the records changed): open addressing, position + 1 in
 * each slot, 0 empty, at least twice as many slots as records.
 */
struct bytes_index {
	__u32 *slot;
	size_t nslot;
};

/* 0, or -ENOMEM (the old slots kept) */
int bytes_index_rebuild(struct bytes_index *x, const void *items, size_t n, size_t stride,
			size_t off, size_t len);
/* the position of the record whose key is key, or -1 */
long bytes_index_find(const struct bytes_index *x, const void *items, size_t stride, size_t off,
		      size_t len, const void *key);

/*
 * Room for one more record in *items (a pointer to the array) holding len of *cap,
 * each size bytes: the array doubled (first records at first); 0 or -ENOMEM
 */
int array_grow(void *items, size_t len, size_t *cap, size_t size, size_t first);

#endif /* EPHPORT_INDEX_H */
