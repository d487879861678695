// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The texts the cgroup resolver reads (cgroup.c): /proc/self/mountinfo, whose mount
 * points and roots anyone allowed to mount names, and /proc/PID/cgroup. The first byte
 * picks which; the rest is the file.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cgroup.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char mount[PATH_MAX], root[CGROUP_PATH_MAX], path[CGROUP_PATH_MAX];
	FILE *f;

	if (size < 2)
		return 0;
	f = fmemopen((void *)(data + 1), size - 1, "r");
	if (!f)
		return 0;
	if (data[0] & 1) {
		if (!cgroup2_mount_parse(f, mount, root)) {
			FUZZ_ASSERT(strlen(mount) < PATH_MAX && strlen(root) < CGROUP_PATH_MAX);
			FUZZ_ASSERT(strcmp(root, "/"));
		}
	} else if (!cgroup_v2_path(f, path, sizeof(path))) {
		FUZZ_ASSERT(!strchr(path, '\n') && memmem(data, size, path, strlen(path)));
	}
	fclose(f);
	return 0;
}
