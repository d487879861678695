// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The running kernel's optional features. Helpers are probed the way libbpf
 * does (a tiny program the verifier accepts or not), layouts through the
 * kernel's BTF: the same facts bpf/core_fixes.bpf.h decides on at load time.
 */
#include <errno.h>
#include <string.h>
#include <sys/utsname.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "kernel.h"
#include <unistd.h>
#include "ephport.h"

static const char *const names[KF_COUNT] = {
	[KF_ATOMICS] = "bpf_atomics",
	[KF_TASK_PT_REGS] = "bpf_task_pt_regs",
	[KF_SET_RETVAL] = "bpf_set_retval",
	[KF_RECURSION_MISSES] = "recursion_misses",
	[KF_TW_CONNECT_BIND] = "tw_connect_bind",
	[KF_PORT_RANGE_PACKED] = "port_range_packed",
	[KF_MAP_MEM_USAGE] = "map_mem_usage",
	[KF_MAP_MEMCG] = "map_memcg",
};

const char *kernel_feature_name(enum kernel_feature f)
{
	return f < KF_COUNT ? names[f] : "unknown";
}

/* atomic exchange on the stack: rejected before "bpf: Add instructions for atomic_[cmp]xchg" */
static bool probe_atomics(void)
{
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_STX | BPF_MEM | BPF_DW,
		  .dst_reg = BPF_REG_10,
		  .src_reg = BPF_REG_0,
		  .off = -8 },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_1, .imm = 1 },
		{ .code = BPF_STX | BPF_ATOMIC | BPF_DW,
		  .dst_reg = BPF_REG_10,
		  .src_reg = BPF_REG_1,
		  .off = -8,
		  .imm = BPF_XCHG },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int fd = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, NULL, "GPL", insns,
			       sizeof(insns) / sizeof(insns[0]), NULL);

	if (fd < 0)
		return false;
	close(fd);
	return true;
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
			"built with CONFIG_DEBUG_INFO_BTF=y (Linux 5.10 or later)",
			strerror(errno));
		return -1;
	}
	k->has[KF_ATOMICS] = probe_atomics();
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
	btf__free(btf);
	return 0;
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
