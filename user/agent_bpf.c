// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's BPF object: what the kernel offers and what that changes, loading
 * (with this kernel's and these options' programs), pinning the maps for
 * "ephport query", attaching, and the cgroups the guard watches.
 */
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent.h"
#include "objects.h"
#include "privdir.h"
#include "cgroup.h"
#include "ephport.skel.h"

#define BPF_FS_MAGIC  0xcafe4a11
#define CGROUP2_MAGIC 0x63677270
#define BPF_FS_PATH   "/sys/fs/bpf"

static bool has_cap(const struct __user_cap_data_struct caps[2], int cap)
{
	return caps[cap / 32].effective & (1u << (cap % 32));
}

/* what the agent needs before it touches anything, each with a fix */
int agent_preflight(struct agent *a)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct caps[2] = { 0 };

	if (syscall(SYS_capget, &hdr, caps)) {
		eph_err("cannot read capabilities: %s", strerror(errno));
		return neg_errno();
	}
	if (!has_cap(caps, CAP_SYS_ADMIN) &&
	    !(has_cap(caps, CAP_BPF) && has_cap(caps, CAP_PERFMON))) {
		eph_err("agent needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN): run it with "
			"sudo");
		return -EPERM;
	}
	return kernel_probe(&a->kernel);
}

/* settings this kernel cannot honour, changed before loading; said by agent_degrade_notes() */
void agent_degrade_settings(struct agent *a)
{
	if (a->opts.guard && !a->kernel.has[KF_SET_RETVAL])
		a->opts.deny_errno = EPERM;
}

/*
 * What this kernel lacks, each said once on stderr with what it costs, once the
 * agent runs (an error before that stays the only line); agent_start has the
 * same as "kernel.features". docs/kernels.md.
 */
void agent_degrade_notes(struct agent *a)
{
	const struct kernel_info *k = &a->kernel;

	if (!k->has[KF_TASK_PT_REGS])
		eph_err("note: Linux %s has no bpf_task_pt_regs (5.15): every connect() and "
			"bind() keeps its arguments on entry, for a failure's attribution",
			k->release);
	if (!k->has[KF_RECURSION_MISSES])
		eph_err("note: Linux %s does not count skipped BPF runs (5.12): \"missed\" "
			"stays 0",
			k->release);
	if (a->opts.guard && !k->has[KF_SET_RETVAL])
		eph_err("note: Linux %s has no bpf_set_retval (5.18): refused connects fail "
			"with EPERM, whatever --deny-errno says",
			k->release);
}

int agent_ensure_bpffs(void)
{
	struct statfs st;

	if (statfs(BPF_FS_PATH, &st) == 0 && (unsigned long)st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", BPF_FS_PATH, "bpf", 0, "mode=0700")) {
		eph_err("bpffs is not mounted at " BPF_FS_PATH " and mounting it failed: %s "
			"(mount -t bpf bpf " BPF_FS_PATH ")",
			strerror(errno));
		return neg_errno();
	}
	return 0;
}

/* pins of agents before 0.2, which a killed one may have left */
static const char *const old_pins[] = { "sockets", "timewait" };

/* our pins, this agent's or a killed one's */
static void unpin_names(void)
{
	char path[256];

	for (size_t i = 0; i < eph_nmaps; i++) {
		if (!(eph_maps[i].use & OBJ_PIN))
			continue;
		snprintf(path, sizeof(path), EPH_PIN_DIR "/%s", eph_maps[i].name);
		unlink(path);
	}
	for (size_t i = 0; i < sizeof(old_pins) / sizeof(old_pins[0]); i++) {
		snprintf(path, sizeof(path), EPH_PIN_DIR "/%s", old_pins[i]);
		unlink(path);
	}
}

void agent_unpin_all(void)
{
	unpin_names();
	rmdir(EPH_PIN_DIR);
}

int agent_pin_maps(struct agent *a)
{
	char path[256];
	int err;

	/* root's alone, or what the agent pins could be swapped for anyone's maps */
	err = privdir_make(EPH_PIN_DIR);
	if (err)
		return err;
	a->pinned = true;
	agent_signals_pinned(true);
	/* we hold the lock, so any pin here was left by an agent that was killed */
	unpin_names();
	for (size_t i = 0; i < eph_nmaps; i++) {
		struct bpf_map *m = bpf_object__find_map_by_name(a->skel->obj, eph_maps[i].name);

		if (!(eph_maps[i].use & OBJ_PIN))
			continue;
		snprintf(path, sizeof(path), EPH_PIN_DIR "/%s", eph_maps[i].name);
		err = m ? bpf_map__pin(m, path) : -ENOENT;
		if (err) {
			eph_err("cannot pin map at %s: %s", path, strerror(-err));
			return err;
		}
	}
	return 0;
}

/*
 * TIME_WAIT sockets are followed through their timers; the handler's address
 * tells their timers from all others.
 */
static int tw_timer_handler_addr(__u64 *addr)
{
	FILE *f = fopen("/proc/kallsyms", "re");
	int ret;

	if (!f) {
		eph_err("cannot read /proc/kallsyms: %s", strerror(errno));
		return neg_errno();
	}
	ret = kallsyms_find(f, "tw_timer_handler", addr);
	fclose(f);
	if (ret) {
		eph_err("tw_timer_handler is not in /proc/kallsyms: ephport needs it to follow "
			"TIME_WAIT sockets (kernel built without CONFIG_KALLSYMS?)");
	} else if (!*addr) {
		eph_err("/proc/kallsyms hides kernel addresses: the agent needs CAP_SYSLOG, "
			"and kernel.kptr_restrict below 2");
		ret = -EPERM;
	}
	return ret;
}

/*
 * The skeleton attaches its programs in order and stops at the first that
 * fails: that is the loaded program without a link. Debian's kernels set
 * kernel.perf_event_paranoid to 3, where classic tracepoints (perf events) need
 * CAP_SYS_ADMIN, not only CAP_PERFMON.
 */
static void attach_error(struct ephport_bpf *skel, int err)
{
	const struct bpf_object_skeleton *s = skel->skeleton;
	const struct bpf_program *failed = NULL;
	char paranoid[16] = "";
	FILE *f;

	for (int i = 0; i < s->prog_cnt && !failed; i++) {
		const struct bpf_program *p = *s->progs[i].prog;

		const char *sec = bpf_program__section_name(p);

		/* raw_tp ones run by the agent, cgroup ones attached later: no link here */
		if (bpf_program__autoload(p) && !*s->progs[i].link && strcmp(sec, "raw_tp") &&
		    strncmp(sec, "cgroup/", 7))
			failed = p;
	}
	f = fopen("/proc/sys/kernel/perf_event_paranoid", "re");
	if (f) {
		if (!fgets(paranoid, sizeof(paranoid), f))
			paranoid[0] = '\0';
		fclose(f);
	}
	if ((err == -EPERM || err == -EACCES) && atoi(paranoid) > 2)
		eph_err("cannot attach %s (%s): %s -- kernel.perf_event_paranoid is %d here, so "
			"tracepoints need CAP_SYS_ADMIN",
			failed ? bpf_program__name(failed) : "a program",
			failed ? bpf_program__section_name(failed) : "?", strerror(-err),
			atoi(paranoid));
	else
		eph_err("cannot attach %s (%s): %s",
			failed ? bpf_program__name(failed) : "a program",
			failed ? bpf_program__section_name(failed) : "?", strerror(-err));
}

/* RLIMIT_MEMLOCK as text, for the hint when the maps did not fit in it */
static const char *memlock_text(void)
{
	static char text[64];
	struct rlimit r;

	if (getrlimit(RLIMIT_MEMLOCK, &r))
		return "unknown";
	if (r.rlim_cur == RLIM_INFINITY)
		return "unlimited";
	snprintf(text, sizeof(text), "%llu KiB", (unsigned long long)r.rlim_cur / 1024);
	return text;
}

/* the programs this kernel and these options need */
static void choose_programs(struct agent *a)
{
	struct ephport_bpf *s = a->skel;

	/* without bpf_task_pt_regs a failing call's arguments are kept on entry */
	bpf_program__set_autoload(s->progs.connect_enter, !a->kernel.has[KF_TASK_PT_REGS]);
	bpf_program__set_autoload(s->progs.bind_enter, !a->kernel.has[KF_TASK_PT_REGS]);
	bpf_program__set_autoload(s->progs.guard_connect4, a->opts.guard);
	bpf_program__set_autoload(s->progs.guard_connect6, a->opts.guard);
	/* an iterator over one map: agent_attach_bpf() names it */
	bpf_program__set_autoattach(s->progs.fw2_sweep, false);
	bpf_program__set_autoattach(s->progs.ns_tuples_adjust, false);
}

int agent_load_bpf(struct agent *a)
{
	int err;

	a->skel = ephport_bpf__open();
	if (!a->skel) {
		eph_err("cannot open the BPF object: %s", strerror(errno));
		return neg_errno();
	}
	err = bpf_map__set_max_entries(a->skel->maps.tuples, a->opts.max_tuples);
	if (err) {
		eph_err("cannot size the tuples map to %llu entries: %s",
			(unsigned long long)a->opts.max_tuples, strerror(-err));
		return err;
	}
	/*
	 * Before Linux 6.1 a map that allocates on use calls kmalloc from the
	 * program: the syscall exit programs (classic tracepoints) keep
	 * failures there, and the timer programs run under the timer base lock
	 * with interrupts off, where an allocation that arms a timer would wait
	 * on that lock. Those maps are allocated in full at load there.
	 */
	if (!a->kernel.has[KF_TRACING_MAP_ALLOC]) {
		struct bpf_map *prealloc[] = { a->skel->maps.failures, a->skel->maps.tuples,
					       a->skel->maps.local_tw, a->skel->maps.fw2,
					       a->skel->maps.claims };

		for (size_t i = 0; i < sizeof(prealloc) / sizeof(prealloc[0]); i++) {
			err = bpf_map__set_map_flags(prealloc[i], bpf_map__map_flags(prealloc[i]) &
									  ~BPF_F_NO_PREALLOC);
			if (err) {
				eph_err("cannot preallocate the %s map: %s",
					bpf_map__name(prealloc[i]), strerror(-err));
				return err;
			}
		}
	}
	err = tw_timer_handler_addr((__u64 *)&a->skel->rodata->tw_timer_fn);
	if (err)
		return err;
	a->skel->rodata->guard_mode = !a->opts.guard ? GUARD_OFF :
				      a->opts.audit  ? GUARD_AUDIT :
						       GUARD_ENFORCE;
	a->skel->rodata->guard_errno = a->opts.deny_errno;
	a->skel->rodata->guard_quota = a->opts.quota;
	a->skel->rodata->deny_ppm = (__u32)llround(a->opts.deny_at * PPM);
	a->skel->rodata->spread_ppm = (__u32)llround(a->opts.spread_at * PPM);
	/* the watch line: half the deny line, or the spread line if lower */
	a->skel->rodata->watch_ppm = a->skel->rodata->deny_ppm / 2;
	if (a->opts.nspread && a->skel->rodata->spread_ppm < a->skel->rodata->watch_ppm)
		a->skel->rodata->watch_ppm = a->skel->rodata->spread_ppm;
	a->skel->rodata->spread_count = a->opts.nspread;
	memcpy((void *)a->skel->rodata->spread_addrs, a->opts.spread,
	       a->opts.nspread * sizeof(a->opts.spread[0]));
	a->skel->rodata->max_tuples = a->opts.max_tuples;
	a->skel->rodata->thread_size = a->kernel.thread_size;
	choose_programs(a);
	err = ephport_bpf__load(a->skel);
	if (err == -ENOMEM || err == -E2BIG)
		eph_err("cannot create the BPF maps: %s -- lower --max-tuples", strerror(-err));
	else if (err == -EPERM && !a->kernel.has[KF_MAP_MEMCG])
		eph_err("the kernel refused to load BPF programs: %s -- Linux %s charges BPF "
			"maps to RLIMIT_MEMLOCK (before 5.11), %s here: raise it (systemd "
			"LimitMEMLOCK=infinity, ulimit -l unlimited) or grant CAP_SYS_RESOURCE",
			strerror(-err), a->kernel.release, memlock_text());
	else if (err == -EPERM)
		eph_err("the kernel refused to load BPF programs: %s -- is the kernel locked "
			"down, or CAP_BPF/CAP_PERFMON dropped?",
			strerror(-err));
	else if (err)
		eph_err("the kernel rejected ephport's BPF programs: %s -- needs BTF, tp_btf, "
			"BPF iterators and ring buffers (Linux " EPH_MIN_KERNEL
			"+); --verbose shows the "
			"verifier log",
			strerror(-err));
	return err;
}

/*
 * Attach the programs once the start-up knows the namespaces that were there
 * before (startup.c); the state-change programs attach in order, the main one
 * before its backstop (bpf/count.bpf.c).
 */
int agent_attach_bpf(struct agent *a)
{
	DECLARE_LIBBPF_OPTS(bpf_iter_attach_opts, io);
	union bpf_iter_link_info li = {};
	int err;

	a->skel->bss->agent_clock_ns = mono_ns();
	err = ephport_bpf__attach(a->skel);
	if (err) {
		attach_error(a->skel, err);
		return err;
	}
	if (!a->skel->links.walk) {
		eph_err("cannot attach the iter/tcp program: ephport needs BPF iterators "
			"(Linux 5.9+)");
		return -EOPNOTSUPP;
	}
	li.map.map_fd = bpf_map__fd(a->skel->maps.fw2);
	io.link_info = &li;
	io.link_info_len = sizeof(li);
	a->skel->links.fw2_sweep = bpf_program__attach_iter(a->skel->progs.fw2_sweep, &io);
	if (!a->skel->links.fw2_sweep) {
		eph_err("cannot attach fw2_sweep (iter/bpf_map_elem): %s", strerror(errno));
		return neg_errno();
	}
	li.map.map_fd = bpf_map__fd(a->skel->maps.ns_tuples_adj);
	a->skel->links.ns_tuples_adjust =
		bpf_program__attach_iter(a->skel->progs.ns_tuples_adjust, &io);
	if (!a->skel->links.ns_tuples_adjust) {
		eph_err("cannot attach ns_tuples_adjust (iter/bpf_map_elem): %s", strerror(errno));
		return neg_errno();
	}
	return 0;
}

/* a cgroup v2 directory's id (its inode), or -errno with one error line said */
static int cgroup_dir_id(const char *what, const char *path, __u64 *id)
{
	struct statfs sfs;
	struct stat st;

	if (stat(path, &st) || statfs(path, &sfs)) {
		eph_err("%s %s: %s", what, path, strerror(errno));
		return neg_errno();
	}
	if ((unsigned long)sfs.f_type != CGROUP2_MAGIC || !S_ISDIR(st.st_mode)) {
		eph_err("%s %s: not a cgroup v2 directory", what, path);
		return -ENOTDIR;
	}
	*id = st.st_ino;
	return 0;
}

/* the agent's own cgroup, from /proc/self/cgroup's "0::" line */
static int own_cgroup_path(const char *mount, char *path, size_t len)
{
	char own[4096];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int ret;

	if (!f) {
		eph_err("cannot read /proc/self/cgroup: %s", strerror(errno));
		return neg_errno();
	}
	ret = cgroup_v2_path(f, own, sizeof(own));
	fclose(f);
	if (ret || (size_t)snprintf(path, len, "%s%s", mount, strcmp(own, "/") ? own : "") >= len) {
		eph_err("cannot find the agent's own cgroup v2 in /proc/self/cgroup");
		return -ENOENT;
	}
	return 0;
}

/* --exempt-system: the node's services, where systemd keeps them below root */
static int exempt_system(struct agent *a, const char *root, int exempt_fd)
{
	static const char *const services[] = { "system.slice", "init.scope" };
	__u8 subtree = EXEMPT_SUBTREE;
	struct stat st;
	__u64 id;
	int err;

	for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
		char *path = a->system_exempt[a->nsystem_exempt];

		snprintf(path, sizeof(a->system_exempt[0]), "%s/%s", root, services[i]);
		if (stat(path, &st) && errno == ENOENT) {
			eph_err("note: --exempt-system: no %s: nothing there to exempt", path);
			continue;
		}
		err = cgroup_dir_id("--exempt-system", path, &id);
		if (err)
			return err;
		if (bpf_map_update_elem(exempt_fd, &id, &subtree, BPF_ANY)) {
			eph_err("cannot exempt %s from the guard: %s", path, strerror(errno));
			return neg_errno();
		}
		a->nsystem_exempt++;
	}
	return 0;
}

/*
 * --guard: the cgroup programs on --cgroup-root (the cgroup2 mount by default),
 * the exempt cgroups, and guard_info for query and "guard status". The links
 * belong to this process: when it exits, even by kill -9, nothing is refused.
 */
int agent_guard_setup(struct agent *a)
{
	const char *mount = a->report.cgroups ? cgroup_resolver_mount(a->report.cgroups) : NULL;
	const char *root = a->opts.cgroup_root ? a->opts.cgroup_root : mount;
	int exempt_fd = bpf_map__fd(a->skel->maps.guard_exempt), fd, err;
	char own[4096];
	__u8 cgroup_only = EXEMPT_CGROUP, subtree = EXEMPT_SUBTREE;
	__u32 zero = 0;
	__u64 id;

	a->guard.mode = GUARD_OFF;
	if (!a->opts.guard)
		goto publish;
	if (!root || !mount) {
		eph_err("--guard needs a cgroup v2 hierarchy, and none is mounted "
			"(mount -t cgroup2 none /sys/fs/cgroup)");
		return -ENOENT;
	}
	if ((err = cgroup_dir_id("--cgroup-root", root, &a->guard.root_cgroup_id)) ||
	    (err = own_cgroup_path(mount, own, sizeof(own))) ||
	    (err = cgroup_dir_id("the agent's own cgroup", own, &id)))
		return err;
	/* the agent's cgroup may be the root: exempting its subtree would exempt all */
	if (bpf_map_update_elem(exempt_fd, &id, &cgroup_only, BPF_ANY))
		goto no_exempt;
	for (size_t i = 0; i < a->opts.nexempt; i++) {
		err = cgroup_dir_id("--exempt", a->opts.exempt[i], &id);
		if (err)
			return err;
		if (bpf_map_update_elem(exempt_fd, &id, &subtree, BPF_ANY))
			goto no_exempt;
	}
	if (a->opts.exempt_system && (err = exempt_system(a, root, exempt_fd)))
		return err;
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		eph_err("cannot open %s: %s", root, strerror(errno));
		return neg_errno();
	}
	a->guard4 = bpf_program__attach_cgroup(a->skel->progs.guard_connect4, fd);
	err = libbpf_get_error(a->guard4);
	if (!err) {
		a->guard6 = bpf_program__attach_cgroup(a->skel->progs.guard_connect6, fd);
		err = libbpf_get_error(a->guard6);
	}
	close(fd);
	if (err) {
		/* connect4 may be attached: nothing may stay attached past a failed start */
		if (!libbpf_get_error(a->guard4))
			bpf_link__destroy(a->guard4);
		a->guard4 = a->guard6 = NULL;
		eph_err("cannot attach the connect guard to %s: %s", root, strerror(-err));
		return err;
	}
	a->guard.mode = a->opts.audit ? GUARD_AUDIT : GUARD_ENFORCE;
	a->guard.deny_errno = a->opts.deny_errno;
	a->guard.quota = a->opts.quota;
	a->guard.exempt = a->opts.nexempt + a->nsystem_exempt + 1;
	a->guard.deny_at = a->opts.deny_at;
	snprintf(a->guard.root, sizeof(a->guard.root), "%s", root);
	a->guard.spread_at = a->opts.spread_at;
	a->guard.nspread = a->opts.nspread;
	memcpy(a->guard.spread, a->opts.spread, sizeof(a->guard.spread));
	failures_guard(a->failures, &a->guard);
	spreads_guard(a->spreads, &a->guard);
publish:
	if (bpf_map_update_elem(bpf_map__fd(a->skel->maps.guard_info), &zero, &a->guard, BPF_ANY)) {
		eph_err("cannot publish the guard's settings: %s", strerror(errno));
		return neg_errno();
	}
	return 0;
no_exempt:
	eph_err("cannot exempt a cgroup from the guard: %s", strerror(errno));
	return neg_errno();
}
