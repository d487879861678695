// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * nat_ct's counts: what each conntrack id counted as (entry), the NAT tuples with
 * their per-state counts, and per tuple its origins (pre-NAT sources) with entry
 * counts. Three pools, each with a hashed index, so that an event costs O(1); a
 * tuple or origin that no entry counts in any more is freed at once. Also the
 * iteration over them, the stats, and /proc/net/stat/nf_conntrack's parser.
 *
 * An expired entry holds no port (nf_conntrack_tuple_taken skips and reaps it) but
 * sends its DESTROY only when the kernel's GC comes by, seconds to a minute later.
 * TIME_WAIT and CLOSE entries, whose timers packets hardly ever extend, go on a wheel
 * of seconds by their CTA_TIMEOUT and stop counting when it passes; other states'
 * timers move with every packet, without an event, so they wait for their DESTROY.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nat_ct_int.h"

static const char *const state_names[NAT_CT_NSTATES] = {
	[NAT_CT_SYN_SENT] = "syn_sent",	  [NAT_CT_ESTABLISHED] = "established",
	[NAT_CT_TIME_WAIT] = "time_wait", [NAT_CT_CLOSE] = "close",
	[NAT_CT_OTHER] = "other",	  [NAT_CT_UDP] = "udp",
};

const char *nat_ct_state_name(enum nat_ct_state s)
{
	return (unsigned)s < NAT_CT_NSTATES ? state_names[s] : "?";
}

static __u32 mix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x7feb352d;
	h ^= h >> 15;
	h *= 0x846ca68b;
	h ^= h >> 16;
	return h;
}

static __u32 hash_bytes(__u32 h, const void *p, size_t n)
{
	const __u8 *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return mix32(h);
}

static __u32 hash_key(const struct nat_ct_key *k)
{
	return hash_bytes(2166136261u, k, sizeof(*k));
}

static __u32 hash_origin(__u32 tuple, const __u8 *addr)
{
	return hash_bytes(mix32(tuple + 1), addr, 16);
}

/* the hash of pool item idx, for the index of kind */
enum ix_kind { IX_ENTRY, IX_TUPLE, IX_ORIGIN };

static __u32 item_hash(const struct nat_ct *nat, enum ix_kind kind, __u32 idx)
{
	switch (kind) {
	case IX_ENTRY:
		return mix32(nat->entries[idx].id);
	case IX_TUPLE:
		return hash_key(&nat->tuples[idx].key);
	default:
		return hash_origin(nat->origins[idx].tuple, nat->origins[idx].addr);
	}
}

static struct nat_ix *ix_of(struct nat_ct *nat, enum ix_kind kind)
{
	return kind == IX_ENTRY ? &nat->entry_ix :
	       kind == IX_TUPLE ? &nat->tuple_ix :
				  &nat->origin_ix;
}

static int ix_grow(struct nat_ct *nat, enum ix_kind kind)
{
	struct nat_ix *x = ix_of(nat, kind);
	__u32 nslot = x->mask ? (x->mask + 1) * 2 : 64, *slot;

	if ((__u64)(x->n + 1) * 4 <= (__u64)(x->mask + 1) * 3 && x->mask)
		return 0;
	slot = calloc(nslot, sizeof(*slot));
	if (!slot)
		return -ENOMEM;
	for (__u32 i = 0; x->mask && i <= x->mask; i++) {
		__u32 j;

		if (!x->slot[i])
			continue;
		for (j = item_hash(nat, kind, x->slot[i] - 1) & (nslot - 1); slot[j];
		     j = (j + 1) & (nslot - 1))
			;
		slot[j] = x->slot[i];
	}
	free(x->slot);
	x->slot = slot;
	x->mask = nslot - 1;
	return 0;
}

/* the slot holding idx (which must be indexed) */
static __u32 ix_pos(const struct nat_ct *nat, enum ix_kind kind, __u32 idx)
{
	const struct nat_ix *x = kind == IX_ENTRY ? &nat->entry_ix :
				 kind == IX_TUPLE ? &nat->tuple_ix :
						    &nat->origin_ix;
	__u32 i = item_hash(nat, kind, idx) & x->mask;

	while (x->slot[i] != idx + 1)
		i = (i + 1) & x->mask;
	return i;
}

/* room made by ix_grow first */
static void ix_insert(struct nat_ct *nat, enum ix_kind kind, __u32 idx)
{
	struct nat_ix *x = ix_of(nat, kind);
	__u32 i = item_hash(nat, kind, idx) & x->mask;

	while (x->slot[i])
		i = (i + 1) & x->mask;
	x->slot[i] = idx + 1;
	x->n++;
}

/* backward-shift deletion: the probe chains stay whole without tombstones */
static void ix_delete(struct nat_ct *nat, enum ix_kind kind, __u32 idx)
{
	struct nat_ix *x = ix_of(nat, kind);
	__u32 i = ix_pos(nat, kind, idx), j = i;

	x->slot[i] = 0;
	for (;;) {
		__u32 k;

		j = (j + 1) & x->mask;
		if (!x->slot[j])
			break;
		k = item_hash(nat, kind, x->slot[j] - 1) & x->mask;
		/* may slot j's item move to i? only if its home k is not in (i, j] */
		if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
			x->slot[i] = x->slot[j];
			x->slot[j] = 0;
			i = j;
		}
	}
	x->n--;
}

static long find_entry(const struct nat_ct *nat, __u32 id)
{
	const struct nat_ix *x = &nat->entry_ix;

	if (!x->mask)
		return -1;
	for (__u32 i = mix32(id) & x->mask; x->slot[i]; i = (i + 1) & x->mask)
		if (nat->entries[x->slot[i] - 1].id == id)
			return x->slot[i] - 1;
	return -1;
}

static long find_tuple(const struct nat_ct *nat, const struct nat_ct_key *k)
{
	const struct nat_ix *x = &nat->tuple_ix;

	if (!x->mask)
		return -1;
	for (__u32 i = hash_key(k) & x->mask; x->slot[i]; i = (i + 1) & x->mask)
		if (!memcmp(&nat->tuples[x->slot[i] - 1].key, k, sizeof(*k)))
			return x->slot[i] - 1;
	return -1;
}

static long find_origin(const struct nat_ct *nat, __u32 tuple, const __u8 *addr)
{
	const struct nat_ix *x = &nat->origin_ix;

	if (!x->mask)
		return -1;
	for (__u32 i = hash_origin(tuple, addr) & x->mask; x->slot[i]; i = (i + 1) & x->mask) {
		const struct nat_ct_origin *o = &nat->origins[x->slot[i] - 1];

		if (o->tuple == tuple && !memcmp(o->addr, addr, 16))
			return x->slot[i] - 1;
	}
	return -1;
}

/* a pool slot: from the free list, else appended (grown by half) */
static long pool_take(void **pool, __u32 *n, __u32 *cap, __u32 *free_head, size_t size,
		      __u32 (*next_free)(void *pool, __u32 idx))
{
	if (*free_head) {
		__u32 idx = *free_head - 1;

		*free_head = next_free(*pool, idx);
		return idx;
	}
	if (*n == *cap) {
		__u32 cap2 = *cap ? *cap + *cap / 2 : 256;
		void *p;

		if (cap2 <= *cap || cap2 > 0x7fffffffu)
			return -ENOMEM;
		p = realloc(*pool, (size_t)cap2 * size);
		if (!p)
			return -ENOMEM;
		*pool = p;
		*cap = cap2;
	}
	return (*n)++;
}

static __u32 entry_next_free(void *pool, __u32 idx)
{
	return ((struct nat_entry *)pool)[idx].tuple;
}

static __u32 tuple_next_free(void *pool, __u32 idx)
{
	return ((struct nat_ct_tuple *)pool)[idx].first_origin;
}

static __u32 origin_next_free(void *pool, __u32 idx)
{
	return ((struct nat_ct_origin *)pool)[idx].next;
}

/* entry counts in tuple t (by key) and origin addr: found or made; index or -ENOMEM */
static int count_in(struct nat_ct *nat, const struct nat_ct_key *key, const __u8 *addr, int state,
		    __u32 *tuple_out, __u32 *origin_out)
{
	long t = find_tuple(nat, key), o;
	struct nat_ct_tuple *tp;
	struct nat_ct_origin *op;

	if (t < 0) {
		if (ix_grow(nat, IX_TUPLE))
			return -ENOMEM;
		t = pool_take((void **)&nat->tuples, &nat->ntuples, &nat->cap_tuples,
			      &nat->free_tuple, sizeof(*nat->tuples), tuple_next_free);
		if (t < 0)
			return -ENOMEM;
		memset(&nat->tuples[t], 0, sizeof(*nat->tuples));
		nat->tuples[t].key = *key;
		ix_insert(nat, IX_TUPLE, t);
		nat->st.tuples++;
	}
	o = find_origin(nat, t, addr);
	if (o < 0) {
		if (ix_grow(nat, IX_ORIGIN))
			goto undo_tuple;
		o = pool_take((void **)&nat->origins, &nat->norigins, &nat->cap_origins,
			      &nat->free_origin, sizeof(*nat->origins), origin_next_free);
		if (o < 0)
			goto undo_tuple;
		op = &nat->origins[o];
		memset(op, 0, sizeof(*op));
		memcpy(op->addr, addr, 16);
		op->tuple = t;
		tp = &nat->tuples[t];
		op->next = tp->first_origin;
		if (tp->first_origin)
			nat->origins[tp->first_origin - 1].prev = o + 1;
		tp->first_origin = o + 1;
		tp->norigins++;
		ix_insert(nat, IX_ORIGIN, o);
	}
	tp = &nat->tuples[t];
	tp->usage++;
	tp->states[state]++;
	nat->origins[o].count++;
	*tuple_out = t;
	*origin_out = o;
	return 0;
undo_tuple:
	if (!nat->tuples[t].usage) {
		ix_delete(nat, IX_TUPLE, t);
		nat->tuples[t].first_origin = nat->free_tuple;
		nat->free_tuple = t + 1;
		nat->st.tuples--;
	}
	return -ENOMEM;
}

/* the entry's count leaves its tuple and origin; either freed when empty */
static void count_out(struct nat_ct *nat, const struct nat_entry *e)
{
	struct nat_ct_tuple *tp = &nat->tuples[e->tuple];
	struct nat_ct_origin *op = &nat->origins[e->origin];

	tp->usage--;
	tp->states[e->state]--;
	if (!--op->count) {
		ix_delete(nat, IX_ORIGIN, e->origin);
		if (op->prev)
			nat->origins[op->prev - 1].next = op->next;
		else
			tp->first_origin = op->next;
		if (op->next)
			nat->origins[op->next - 1].prev = op->prev;
		tp->norigins--;
		op->next = nat->free_origin;
		nat->free_origin = e->origin + 1;
	}
	if (!tp->usage) {
		ix_delete(nat, IX_TUPLE, e->tuple);
		tp->first_origin = nat->free_tuple;
		nat->free_tuple = e->tuple + 1;
		nat->st.tuples--;
	}
}

static void wheel_unlink(struct nat_ct *nat, __u32 i)
{
	struct nat_entry *e = &nat->entries[i];

	if (!e->expires)
		return;
	if (e->wprev)
		nat->entries[e->wprev - 1].wnext = e->wnext;
	else
		nat->wheel[e->expires & (NAT_WHEEL - 1)] = e->wnext;
	if (e->wnext)
		nat->entries[e->wnext - 1].wprev = e->wprev;
	e->expires = 0;
}

/* on the wheel by f's timeout if it is TIME_WAIT or CLOSE now; off it otherwise */
static void set_expiry(struct nat_ct *nat, __u32 i, const struct nat_flow *f)
{
	struct nat_entry *e = &nat->entries[i];
	bool ends = e->state == NAT_CT_TIME_WAIT || e->state == NAT_CT_CLOSE;
	__u32 *head;

	if (ends && f->timeout < 0)
		return; /* no news of its timer */
	wheel_unlink(nat, i);
	if (!ends || f->timeout < 0 || f->timeout >= NAT_WHEEL - 2)
		return;
	if (!nat->wheel) {
		nat->wheel = calloc(NAT_WHEEL, sizeof(*nat->wheel));
		if (!nat->wheel)
			return; /* then the DESTROY event decides */
		nat->wheel_at = nat->now_s;
	}
	/* the kernel rounds the seconds left down: never early, at most a second late */
	e->expires = nat->now_s + f->timeout + 1;
	head = &nat->wheel[e->expires & (NAT_WHEEL - 1)];
	e->wprev = 0;
	e->wnext = *head;
	if (*head)
		nat->entries[*head - 1].wprev = i + 1;
	*head = i + 1;
}

int nat_agg_upsert(struct nat_ct *nat, const struct nat_flow *f, bool from_dump)
{
	long i = find_entry(nat, f->id);
	struct nat_entry *e;
	__u32 t, o;
	int state;

	if (i >= 0) {
		e = &nat->entries[i];
		state = f->state >= 0 ? f->state : e->state;
		e->gen = nat->gen;
		if (!from_dump && !e->evented) {
			e->evented = 1;
			nat->st.dump_only--;
		}
		if (state != e->state ||
		    memcmp(&nat->tuples[e->tuple].key, &f->key, sizeof(f->key)) ||
		    memcmp(nat->origins[e->origin].addr, f->origin, 16)) {
			/* in first: a tuple or origin it stays in is not freed and made again */
			if (count_in(nat, &f->key, f->origin, state, &t, &o))
				return -ENOMEM;
			e = &nat->entries[i];
			count_out(nat, e);
			e->tuple = t;
			e->origin = o;
			e->state = state;
		}
		set_expiry(nat, i, f);
		return 0;
	}
	state = f->state >= 0 ? f->state : f->key.protocol == 17 ? NAT_CT_UDP : NAT_CT_OTHER;
	if (ix_grow(nat, IX_ENTRY))
		return -ENOMEM;
	if (count_in(nat, &f->key, f->origin, state, &t, &o))
		return -ENOMEM;
	i = pool_take((void **)&nat->entries, &nat->nentries, &nat->cap_entries, &nat->free_entry,
		      sizeof(*nat->entries), entry_next_free);
	if (i < 0) {
		struct nat_entry tmp = { .tuple = t, .origin = o, .state = state };

		count_out(nat, &tmp);
		return -ENOMEM;
	}
	e = &nat->entries[i];
	*e = (struct nat_entry){ .id = f->id,
				 .tuple = t,
				 .origin = o,
				 .gen = nat->gen,
				 .state = state,
				 .used = 1,
				 .evented = !from_dump };
	ix_insert(nat, IX_ENTRY, i);
	set_expiry(nat, i, f);
	nat->st.entries++;
	if (from_dump)
		nat->st.dump_only++;
	return 0;
}

static void remove_at(struct nat_ct *nat, __u32 i)
{
	struct nat_entry *e = &nat->entries[i];

	wheel_unlink(nat, i);
	count_out(nat, e);
	ix_delete(nat, IX_ENTRY, i);
	if (!e->evented)
		nat->st.dump_only--;
	e->used = 0;
	e->tuple = nat->free_entry;
	nat->free_entry = i + 1;
	nat->st.entries--;
}

void nat_agg_remove(struct nat_ct *nat, __u32 id)
{
	long i = find_entry(nat, id);

	if (i >= 0)
		remove_at(nat, i);
}

void nat_agg_expire(struct nat_ct *nat)
{
	__u32 steps = nat->now_s - nat->wheel_at;

	if (!nat->wheel || (__s32)steps <= 0)
		return;
	if (steps > NAT_WHEEL)
		steps = NAT_WHEEL;
	for (__u32 s = 1; s <= steps; s++) {
		__u32 next;

		for (__u32 i = nat->wheel[(nat->wheel_at + s) & (NAT_WHEEL - 1)]; i; i = next) {
			next = nat->entries[i - 1].wnext;
			if ((__s32)(nat->entries[i - 1].expires - nat->now_s) <= 0) {
				remove_at(nat, i - 1);
				nat->st.expired++;
			}
		}
	}
	nat->wheel_at = nat->now_s;
}

void nat_agg_sweep(struct nat_ct *nat)
{
	for (__u32 i = 0; i < nat->nentries; i++)
		if (nat->entries[i].used && nat->entries[i].gen != nat->gen)
			remove_at(nat, i);
}

void nat_agg_free(struct nat_ct *nat)
{
	free(nat->entries);
	free(nat->entry_ix.slot);
	free(nat->tuples);
	free(nat->tuple_ix.slot);
	free(nat->origins);
	free(nat->origin_ix.slot);
	free(nat->wheel);
}

const struct nat_ct_tuple *nat_ct_next_tuple(const struct nat_ct *nat,
					     const struct nat_ct_tuple *prev)
{
	for (__u32 i = prev ? (__u32)(prev - nat->tuples) + 1 : 0; i < nat->ntuples; i++)
		if (nat->tuples[i].usage)
			return &nat->tuples[i];
	return NULL;
}

const struct nat_ct_origin *nat_ct_next_origin(const struct nat_ct *nat,
					       const struct nat_ct_tuple *t,
					       const struct nat_ct_origin *prev)
{
	__u32 next = prev ? prev->next : t->first_origin;

	return next ? &nat->origins[next - 1] : NULL;
}

const struct nat_ct_tuple *nat_ct_find(const struct nat_ct *nat, const struct nat_ct_key *key)
{
	long t = find_tuple(nat, key);

	return t < 0 ? NULL : &nat->tuples[t];
}

void nat_ct_get_stats(const struct nat_ct *nat, struct nat_ct_stats *st)
{
	*st = nat->st;
}

/* the column of name in the header line, or -1 */
static int column_of(const char *header, const char *name)
{
	size_t len = strlen(name);
	int col = 0;

	for (const char *p = header; *p && *p != '\n';) {
		size_t w;

		while (*p == ' ' || *p == '\t')
			p++;
		w = strcspn(p, " \t\n");
		if (!w)
			break;
		if (w == len && !strncmp(p, name, len))
			return col;
		p += w;
		col++;
	}
	return -1;
}

int nat_ct_parse_kstats(const char *text, struct nat_ct_kstats *ks)
{
	int c_if = column_of(text, "insert_failed"), c_drop = column_of(text, "drop"),
	    c_early = column_of(text, "early_drop"), cpus = 0;
	const char *line = strchr(text, '\n');

	memset(ks, 0, sizeof(*ks));
	if (c_if < 0 || c_drop < 0 || !line)
		return -EINVAL;
	for (line++; *line;
	     line = strchr(line, '\n') ? strchr(line, '\n') + 1 : line + strlen(line)) {
		const char *p = line;

		if (*p == '\n')
			continue;
		for (int col = 0; *p && *p != '\n'; col++) {
			char *end;
			unsigned long long v = strtoull(p, &end, 16);

			if (end == p)
				return -EINVAL;
			if (col == c_if)
				ks->insert_failed += v;
			else if (col == c_drop)
				ks->drop += v;
			else if (col == c_early)
				ks->early_drop += v;
			p = end;
			while (*p == ' ' || *p == '\t')
				p++;
		}
		cpus++;
	}
	return cpus ? 0 : -EINVAL;
}
