// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Container ids and pod UIDs in a cgroup path (cgroup_parse_ids, cgroup.c): the path
 * comes from /proc/PID/cgroup or the cgroup tree, named by whoever makes cgroups. An id
 * found is 64 lowercase hex digits, a pod UID 8-4-4-4-12 lowercase hex with dashes.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"
#include "fuzz.h"

static bool lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_str(data, size);
	struct cgroup_ids ids;
	size_t n;

	FUZZ_ASSERT(cgroup_parse_ids(s, &ids) == 0);
	n = strlen(ids.container_id);
	FUZZ_ASSERT(n == 0 || n == 64);
	for (size_t i = 0; i < n; i++)
		FUZZ_ASSERT(lower_hex(ids.container_id[i]));
	n = strlen(ids.pod_uid);
	FUZZ_ASSERT(n == 0 || n == 36);
	for (size_t i = 0; i < n; i++)
		FUZZ_ASSERT(i == 8 || i == 13 || i == 18 || i == 23 ? ids.pod_uid[i] == '-' :
								      lower_hex(ids.pod_uid[i]));
	/* both found in the path, ignoring case and _ for - */
	FUZZ_ASSERT(!*ids.container_id || strcasestr(s, ids.container_id));
	free(s);
	return 0;
}
