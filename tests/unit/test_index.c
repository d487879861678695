// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The hashed index of records by a 32-bit key (user/index.c), and the namespace list on it. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "ephport.h"
#include "index.h"

struct rec {
	__u64 other;
	__u32 key;
};

#define N 5000

Test(index, finds_every_record_appended_and_none_other)
{
	struct u32_index x = U32_INDEX_INIT(struct rec, key);
	struct rec *r = calloc(N, sizeof(*r));

	cr_assert(r);
	cr_assert_eq(u32_index_find(&x, r, 7), -1, "an empty index finds nothing");
	for (size_t i = 0; i < N; i++) {
		/* keys that collide in the low bits, and 0 */
		r[i].key = (__u32)(i << 12);
		cr_assert_eq(u32_index_added(&x, r, i + 1), 0);
	}
	cr_assert_geq(x.nslot, 2 * N);
	for (size_t i = 0; i < N; i++)
		cr_assert_eq(u32_index_find(&x, r, (__u32)(i << 12)), (long)i);
	cr_assert_eq(u32_index_find(&x, r, 1), -1);
	cr_assert_eq(u32_index_find(&x, r, (__u32)(N << 12)), -1);
	u32_index_free(&x);
	free(r);
}

Test(index, a_rebuild_after_a_compaction_finds_the_kept_ones_where_they_went)
{
	struct u32_index x = U32_INDEX_INIT(struct rec, key);
	struct rec *r = calloc(N, sizeof(*r));
	size_t kept = 0, slots;

	cr_assert(r);
	for (size_t i = 0; i < N; i++) {
		r[i].key = (__u32)i * 2654435761u;
		cr_assert_eq(u32_index_added(&x, r, i + 1), 0);
	}
	slots = x.nslot;
	for (size_t i = 0; i < N; i++)
		if (i % 3)
			r[kept++] = r[i];
	cr_assert_eq(u32_index_rebuild(&x, r, kept), 0);
	cr_assert_eq(x.nslot, slots, "the slots never shrink, so the rebuild cannot fail");
	for (size_t i = 0; i < N; i++) {
		long at = u32_index_find(&x, r, (__u32)i * 2654435761u);

		if (i % 3)
			cr_assert(at >= 0 && r[at].key == (__u32)i * 2654435761u);
		else
			cr_assert_eq(at, -1, "key of record %zu removed, still found", i);
	}
	u32_index_free(&x);
	free(r);
}

Test(index, ns_find_makes_finds_and_keeps_pointers_to_the_right_namespace)
{
	struct ns_list l = { 0 };
	struct ns_summary *ns;

	for (__u32 i = 0; i < N; i++) {
		ns = ns_find(&l, 4026531840u + i, true);
		cr_assert(ns);
		ns->tw_tuples = i;
	}
	cr_assert_eq(l.len, N);
	cr_assert_eq(ns_find(&l, 4026531840u + 17, true)->tw_tuples, 17, "found, not made again");
	cr_assert_eq(l.len, N);
	cr_assert_null(ns_find(&l, 1, false));
	cr_assert_eq(ns_find(&l, 4026531840u + N - 1, false)->tw_tuples, N - 1);
	ns_list_free(&l);
	cr_assert_null(l.idx.slot);
}

Test(index, ns_find_searches_a_list_made_by_hand)
{
	struct ns_summary items[2] = { { .inum = 5 }, { .inum = 9 } };
	struct ns_list l = { .items = items, .len = 2 };

	cr_assert_eq(ns_find(&l, 9, false), &items[1]);
	cr_assert_null(ns_find(&l, 7, false));
}

/* records keyed by 16 bytes (an address), grown one by one, found after a rebuild */
struct keyed {
	__u32 value;
	__u8 key[16];
};

Test(index, bytes_index_finds_every_key_and_none_other)
{
	struct keyed *items = NULL;
	struct bytes_index x = { 0 };
	size_t n = 0, cap = 0;
	__u8 key[16] = { 0 };

	for (__u32 i = 0; i < N; i++) {
		cr_assert_eq(array_grow(&items, n, &cap, sizeof(*items), 4), 0);
		cr_assert(cap > n && cap <= 2 * N + 4);
		items[n] = (struct keyed){ .value = i };
		memcpy(items[n].key + 12, &i, 4);
		n++;
	}
	cr_assert_eq(
		bytes_index_find(&x, items, sizeof(*items), offsetof(struct keyed, key), 16, key),
		-1, "no slots yet");
	cr_assert_eq(
		bytes_index_rebuild(&x, items, n, sizeof(*items), offsetof(struct keyed, key), 16),
		0);
	cr_assert(x.nslot >= 2 * n);
	for (__u32 i = 0; i < N; i++) {
		memcpy(key + 12, &i, 4);
		cr_assert_eq(bytes_index_find(&x, items, sizeof(*items),
					      offsetof(struct keyed, key), 16, key),
			     i);
	}
	key[0] = 1; /* a key no record has */
	cr_assert_eq(
		bytes_index_find(&x, items, sizeof(*items), offsetof(struct keyed, key), 16, key),
		-1);
	free(items);
	free(x.slot);
}
