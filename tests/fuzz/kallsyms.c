// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's look into /proc/kallsyms (kallsyms_find, kernel.c). The input's first
 * NUL-terminated word is the name looked for, the rest the file. A name found is in it.
 */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "kernel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	const char *name = "tw_timer_handler";
	__u64 addr;
	FILE *f;

	if (nul && nul - data < 128 && nul > data) {
		name = (const char *)data;
		size -= nul + 1 - data;
		data = nul + 1;
	}
	if (!size)
		return 0;
	f = fmemopen((void *)data, size, "r");
	if (!f)
		return 0;
	if (!kallsyms_find(f, name, &addr))
		FUZZ_ASSERT(memmem(data, size, name, strlen(name)));
	fclose(f);
	return 0;
}
