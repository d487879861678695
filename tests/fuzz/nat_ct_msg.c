// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * ctnetlink conntrack messages (nat_ct_handle, nat_ct.c): the input is a stream of
 * netlink messages, as a recv gives them, fed one by one. Whatever they say, the counts
 * stay whole: each tuple's usage is the sum of its states and of its origins' counts,
 * and the tuples' usages add up to the entries counted.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "nat_ct.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nat_ct *nat = nat_ct_new(1);
	/* aligned, as a receive buffer is */
	__u32 *buf = malloc(size + 4);
	struct nat_ct_stats st;
	__u64 total = 0;

	FUZZ_ASSERT(nat && buf);
	memcpy(buf, data, size);
	nat_ct_handle_datagram(nat, buf, size);
	for (const struct nat_ct_tuple *t = nat_ct_next_tuple(nat, NULL); t;
	     t = nat_ct_next_tuple(nat, t)) {
		__u64 states = 0, origins = 0, norigins = 0;

		for (int s = 0; s < NAT_CT_NSTATES; s++)
			states += t->states[s];
		for (const struct nat_ct_origin *o = nat_ct_next_origin(nat, t, NULL); o;
		     o = nat_ct_next_origin(nat, t, o)) {
			FUZZ_ASSERT(o->count > 0);
			origins += o->count;
			norigins++;
		}
		FUZZ_ASSERT(t->usage > 0 && states == t->usage && origins == t->usage);
		FUZZ_ASSERT(norigins == t->norigins);
		total += t->usage;
	}
	nat_ct_get_stats(nat, &st);
	FUZZ_ASSERT(total == st.entries);
	nat_ct_close(nat);
	free(buf);
	return 0;
}
