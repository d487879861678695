// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * --metrics-addr (metrics_http.c): HOST:PORT, [IPV6]:PORT or :PORT. Host names are not
 * looked up here (fuzz.c): numbers only. What parses is an IPv4 or IPv6 address with the
 * port the text ends with.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "ephport.h"
#include "fuzz.h"
#include "metrics_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct metrics_addr a;
	char *s = fuzz_str(data, size);
	uint64_t port;
	in_port_t got;

	if (!metrics_addr_parse(s, &a)) {
		FUZZ_ASSERT(parse_u64(strrchr(s, ':') + 1, 0, 65535, &port) == 0);
		if (a.ss.ss_family == AF_INET) {
			FUZZ_ASSERT(a.len == sizeof(struct sockaddr_in) && !a.any);
			got = ((struct sockaddr_in *)&a.ss)->sin_port;
		} else {
			FUZZ_ASSERT(a.ss.ss_family == AF_INET6);
			FUZZ_ASSERT(a.len == sizeof(struct sockaddr_in6));
			FUZZ_ASSERT(a.any == (s[0] == ':'));
			got = ((struct sockaddr_in6 *)&a.ss)->sin6_port;
		}
		FUZZ_ASSERT(ntohs(got) == port);
	}
	free(s);
	return 0;
}
