// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The running kernel's optional features. Helpers are probed the way libbpf
 * does (a tiny program the verifier accepts or not), layouts through the
 * kernel's BTF: the same facts bpf/core_fixes.bpf.h decides on at load time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <sys/utsname.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "kernel.h"
#include <unistd.h>
#include "ephport.h"

static const char *const names[KF_COUNT] = {
	[KF_TASK_PT_REGS] = "bpf_task_pt_regs",
	[KF_SET_RETVAL] = "bpf_set_retval",
	[KF_RECURSION_MISSES] = "recursion_misses",
	[KF_TW_CONNECT_BIND] = "tw_connect_bind",
	[KF_PORT_RANGE_PACKED] = "port_range_packed",
	[KF_MAP_MEM_USAGE] = "map_mem_usage",
	[KF_MAP_MEMCG] = "map_memcg",
	[KF_TRACING_MAP_ALLOC] = "tracing_map_alloc",
};

const char *kernel_feature_name(enum kernel_feature f)
{
	return f < KF_COUNT ? names[f] : "unknown";
}

static bool probe_helper(enum bpf_prog_type type, enum bpf_func_id helper)
{
	return libbpf_probe_bpf_helper(type, helper, NULL) == 1;
}

/* the member of a struct in the kernel's BTF, or NULL */
static const struct btf_member *btf_member(const struct btf *btf, const char *type,
					   const char *member)
{
	int id = btf__find_by_name_kind(btf, type, BTF_KIND_STRUCT);
	const struct btf_type *t;
	const struct btf_member *m;

	if (id < 0)
		return NULL;
	t = btf__type_by_id(btf, id);
	m = btf_members(t);
	for (int i = 0; i < btf_vlen(t); i++, m++)
		if (!strcmp(btf__name_by_offset(btf, m->name_off), member))
			return m;
	return NULL;
}

/*
 * A task's kernel stack on x86-64: 16 KiB, twice that with KASAN. From the
 * kernel's config where one is found (/boot, or /proc/config.gz), else 16 KiB:
 * no production kernel runs KASAN.
 */
static unsigned int thread_size(const char *release)
{
	char path[128], line[256];
	unsigned int size = 16384;
	gzFile f;

	snprintf(path, sizeof(path), "/boot/config-%s", release);
	f = gzopen(path, "r");
	if (!f)
		f = gzopen("/proc/config.gz", "r");
	if (!f)
		return size;
	while (gzgets(f, line, sizeof(line)))
		if (!strcmp(line, "CONFIG_KASAN=y\n"))
			size = 32768;
	gzclose(f);
	return size;
}

int kernel_probe(struct kernel_info *k)
{
	const struct btf_member *range;
	struct utsname u;
	struct btf *btf;

	memset(k, 0, sizeof(*k));
	if (!uname(&u))
		snprintf(k->release, sizeof(k->release), "%s", u.release);
	btf = btf__load_vmlinux_btf();
	if (!btf) {
		eph_err("kernel has no BTF (/sys/kernel/btf/vmlinux: %s): ephport needs a kernel "
			"built with CONFIG_DEBUG_INFO_BTF=y (Linux " EPH_MIN_KERNEL " or later)",
			strerror(errno));
		return neg_errno();
	}
	k->thread_size = thread_size(k->release);
	k->has[KF_TASK_PT_REGS] = probe_helper(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_task_pt_regs);
	k->has[KF_SET_RETVAL] = probe_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_set_retval);
	k->has[KF_RECURSION_MISSES] = btf_member(btf, "bpf_prog_stats", "misses") != NULL;
	k->has[KF_TW_CONNECT_BIND] =
		btf_member(btf, "inet_timewait_sock", "tw_connect_bind") != NULL;
	range = btf_member(btf, "local_ports", "range");
	k->has[KF_PORT_RANGE_PACKED] = range && !btf_is_array(btf__type_by_id(btf, range->type));
	k->has[KF_MAP_MEM_USAGE] = btf_member(btf, "bpf_map_ops", "map_mem_usage") != NULL;
	/* "bpf: Eliminate rlimit-based memory accounting for bpf maps" (5.11) took it out */
	k->has[KF_MAP_MEMCG] = btf_member(btf, "bpf_map", "memory") == NULL;
	/*
	 * "bpf: Relax the requirement to use preallocated hash maps in tracing
	 * progs." (6.1) came with the BPF memory allocator; before it the verifier
	 * WARNs (a kernel splat, a panic with panic_on_warn) when a kprobe or
	 * tracepoint program uses a hash map that allocates on use.
	 */
	k->has[KF_TRACING_MAP_ALLOC] =
		btf__find_by_name_kind(btf, "bpf_mem_alloc", BTF_KIND_STRUCT) >= 0;
	btf__free(btf);
	return 0;
}

int kallsyms_find(FILE *f, const char *name, __u64 *addr)
{
	char *line = NULL, sym[128], type;
	unsigned long long a;
	size_t cap = 0;
	int err = -ENOENT;

	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%llx %c %127s", &a, &type, sym) == 3 && !strcmp(sym, name)) {
			*addr = a;
			err = 0;
			break;
		}
	}
	free(line);
	return err;
}

int kernel_to_json(const struct kernel_info *k, cJSON *obj)
{
	cJSON *kern = cJSON_AddObjectToObject(obj, "kernel"), *f;

	if (!kern || !cJSON_AddStringToObject(kern, "release", k->release) ||
	    !(f = cJSON_AddObjectToObject(kern, "features")))
		return -ENOMEM;
	for (int i = 0; i < KF_COUNT; i++)
		if (!cJSON_AddBoolToObject(f, names[i], k->has[i]))
			return -ENOMEM;
	return 0;
}
