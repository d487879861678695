// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What the agent reads inside each network namespace (netns_info_parse, netns.c;
 * reserved_ports_count, capacity.c; sockstat_time_wait): ip_local_port_range,
 * tcp_tw_reuse, tcp_max_tw_buckets, ip_local_reserved_ports and /proc/net/sockstat,
 * the input's NUL-separated words in that order (a missing one: not readable).
 */
#include <stdlib.h>

#include "ephport.h"
#include "fuzz.h"
#include "netns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *w[5] = { 0 }, *buf;
	struct netns_info info = { 0 };
	__u64 entries = 1;
	__u32 lo, hi, n;

	fuzz_split(data, size, w, 5, &buf);
	if (!netns_info_parse(&info, w[0], w[1], w[2], w[3], w[4])) {
		lo = PORT_LOW(info.port_range);
		hi = PORT_HIGH(info.port_range);
		FUZZ_ASSERT(lo <= 65535 && hi <= 65535);
		/* each entry of the list counts its ports inside the range, at most all of them */
		if (lo <= hi && w[3] && !reserved_ports_count(w[3], info.port_range, &n)) {
			for (const char *p = w[3]; *p; p++)
				entries += *p == ',';
			FUZZ_ASSERT(n <= entries * (hi - lo + 1));
		}
	}
	free(buf);
	return 0;
}
