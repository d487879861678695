// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Numbers out of /proc texts for the agent's cost (proc_field, proc_flag_on; cost.c):
 * /proc/self/status and a map's fdinfo. The input's NUL-separated words are the key,
 * the unit and the text; with fewer, the key and unit are those the agent asks for.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cost.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const asked[][2] = {
		{ "VmRSS", " kB" }, { "VmHWM", " kB" }, { "max_entries", "" }, { "memlock", "" }
	};
	char *w[3], *buf;
	size_t n = fuzz_split(data, size, w, 3, &buf);
	const char *text = w[n - 1];
	__u64 v;
	int err;

	if (n == 3) {
		err = proc_field(text, w[0], w[1], &v);
		FUZZ_ASSERT(err == 0 || err == -EINVAL || err == -ENOENT);
	}
	for (size_t i = 0; i < sizeof(asked) / sizeof(asked[0]); i++) {
		err = proc_field(text, asked[i][0], asked[i][1], &v);
		FUZZ_ASSERT(err == 0 || err == -EINVAL || err == -ENOENT);
		FUZZ_ASSERT(err == -ENOENT || strstr(text, asked[i][0]));
	}
	FUZZ_ASSERT(proc_flag_on(text) == !strcmp(text, "1\n"));
	free(buf);
	return 0;
}
