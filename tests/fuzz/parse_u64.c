// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * parse_u64 (util.c), under every number option, port and --netns: against a reference
 * that takes decimal digits only. The input's first 16 bytes, when it has that many,
 * are the range (min, max); the rest is the text.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ephport.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t min = 0, max = UINT64_MAX, v = 0, want = 0;
	bool number = true;
	char *s;
	int err;

	if (size >= 16) {
		memcpy(&min, data, 8);
		memcpy(&max, data + 8, 8);
		data += 16;
		size -= 16;
	}
	s = fuzz_str(data, size);
	err = parse_u64(s, min, max, &v);

	number = *s != '\0';
	for (const char *p = s; number && *p; p++) {
		unsigned int d = (unsigned char)*p - '0';

		number = d <= 9 && want <= (UINT64_MAX - d) / 10;
		want = want * 10 + d;
	}
	if (!number)
		FUZZ_ASSERT(err == -EINVAL);
	else if (want < min || want > max)
		FUZZ_ASSERT(err == -ERANGE);
	else
		FUZZ_ASSERT(err == 0 && v == want);
	free(s);
	return 0;
}
