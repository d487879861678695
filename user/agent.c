// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ephport agent: load the BPF side, publish its maps, print JSON lines. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ephport.h"
#include "cgroup.h"
#include "cost.h"
#include "failures.h"
#include "guard.h"
#include "kernel.h"
#include "metrics.h"
#include "netns.h"
#include "pressure.h"
#include "sink.h"
#include "tuples.skel.h"

#define BPF_FS_MAGIC	0xcafe4a11
#define CGROUP2_MAGIC	0x63677270
#define MAX_EXEMPT	64
#define BPF_FS_PATH	"/sys/fs/bpf"
#define MAX_MAP_ENTRIES (1u << 24)
#define CHECK_EVERY_NS	500000000ull /* pressure checks: twice a second */
#define CHECK_GAP_NS	50000000ull  /* at most this often when notices ask for one */

static const char agent_usage[] =
	"usage: ephport agent [OPTION]...  ('ephport agent --help' lists them)\n";

static const char agent_help[] =
	"Count ephemeral port usage per destination tuple in the kernel and print JSON lines.\n"
	"\n"
	"  -i, --interval SEC     seconds between tuple snapshots (1-86400, default 10)\n"
	"      --warn-at U        utilization of the warning level (default 0.80)\n"
	"      --critical-at U    utilization of the critical level (default 0.95)\n"
	"      --clear-margin U   a level clears only below its threshold minus U\n"
	"                         (default 0.05) ...\n"
	"      --hold SEC         ... and after SEC seconds there (default 30)\n"
	"  -o, --output FILE      append the lines to FILE instead of standard output;\n"
	"                         SIGHUP opens it again (for logrotate)\n"
	"      --output-buffer KIB  lines waiting for a slow output, at most (default 4096);\n"
	"                         beyond it lines are dropped and counted\n"
	"      --guard            refuse TCP connect()s to destinations at the deny line\n"
	"                         (cgroup/connect4 and connect6 programs); off by default\n"
	"      --deny-at U        the deny line: utilization of the destination's tuple\n"
	"                         (default 0.98)\n"
	"      --cgroup-root PATH cgroup v2 directory to guard, or a subtree of it\n"
	"                         (default: the whole cgroup2 hierarchy)\n"
	"      --exempt PATH      a cgroup whose subtree is never refused (repeatable;\n"
	"                         the agent's own cgroup, itself, never is)\n"
	"      --quota N          also refuse a cgroup holding N sockets to the destination\n"
	"      --audit            decide and report connect_denied, refuse nothing\n"
	"      --deny-errno E     what a refused connect() gets: eaddrnotavail (default)\n"
	"                         or eperm\n"
	"      --max-tuples N     destination tuples tracked at most (default 65536)\n"
	"      --max-sockets N    live active-open sockets and listeners tracked at most\n"
	"                         (default 262144)\n"
	"      --max-timewait N   TIME_WAIT sockets tracked at most, all namespaces\n"
	"                         (default 262144)\n"
	"      --tuple-idle SEC   forget tuples with nothing in use and no connect for SEC\n"
	"                         seconds (default 600; 0 keeps them for ever)\n"
	"      --host NAME        value of every line's \"host\" (default: the hostname)\n"
	"      --metrics-addr HOST:PORT  serve Prometheus metrics on http://HOST:PORT/metrics,\n"
	"                         and /healthz, /readyz; [IPV6]:PORT, or :PORT for every\n"
	"                         address; off by default\n"
	"      --metrics-top N    per-tuple series for the N tuples nearest exhaustion\n"
	"                         (0-100000, default 100); the rest are in sums\n"
	"  -v, --verbose          show libbpf's messages, including the verifier log\n"
	"  -h, --help             this help\n"
	"\n"
	"Runs in the foreground as root; SIGINT or SIGTERM stops it. While it runs, its maps\n"
	"are pinned under " EPH_PIN_DIR " for 'ephport query'. Events: docs/events.md.\n";

struct agent_opts {
	uint64_t interval;
	double warn, crit, margin;
	uint64_t hold;
	const char *output;
	uint64_t output_kib;
	bool guard, audit;
	const char *cgroup_root;
	double deny_at;
	uint64_t quota;
	__u32 deny_errno;
	const char *exempt[MAX_EXEMPT];
	size_t nexempt;
	const char *guard_flag; /* a guard option given without --guard */
	uint64_t max_tuples;
	uint64_t max_sockets;
	uint64_t max_timewait;
	uint64_t tuple_idle;
	const char *host;
	const char *metrics_addr; /* as given; NULL: no metrics */
	struct metrics_addr metrics;
	uint64_t metrics_top;
	bool verbose;
};

struct agent {
	struct agent_opts opts;
	struct kernel_info kernel;
	struct tuples_bpf *skel;
	struct bpf_link *walk_link; /* the iter/tcp program this kernel took */
	int forget_fd;		    /* tw_forget, or its _compat build */
	char host[256];
	bool pinned;
	struct report report;
	struct pressure *pressure;
	struct failures *failures;
	struct cost cost;
	struct ring_buffer *notices;
	struct bpf_link *guard4, *guard6;
	struct guard_info guard;
	struct tuple_list latest; /* the latest check's reading, for notices */
	struct ns_list latest_ns;
	bool check_now;	  /* a notice asks for a pressure check */
	__u64 last_check; /* CLOCK_MONOTONIC ns */
	__u64 checks;
	__u64 tuples_expired;
	struct timespec started;
	struct netns_set netns;
	int home_fd;	   /* our own network namespace, to come back to */
	__u32 walk_gen;	   /* of the latest iter/tcp walk */
	__u64 walks;	   /* start-up walks of new namespaces and repair walks */
	__u64 tw_repairs;  /* repair walks: our TIME_WAIT count drifted from the kernel's */
	__u64 tw_repaired; /* TIME_WAIT entries a repair walk no longer found */
	__u64 netns_unreachable;
	double bootstrap_ms;
	struct metrics *metrics;
	struct retired_set retired; /* counters of expired tuples, for /metrics */
	double start_time_s;	    /* Unix time */
};

static volatile sig_atomic_t stop_signal, reopen_signal;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reopen_signal = 1;
	else
		stop_signal = sig;
}

static bool verbose;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	(void)level;
	/* without --verbose our own one-line errors say what failed */
	return verbose ? vfprintf(stderr, fmt, args) : 0;
}

static bool has_cap(const struct __user_cap_data_struct caps[2], int cap)
{
	return caps[cap / 32].effective & (1u << (cap % 32));
}

/* what the agent needs before it touches anything, each with a fix */
static int preflight(struct agent *a)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct caps[2] = { 0 };

	if (syscall(SYS_capget, &hdr, caps)) {
		eph_err("cannot read capabilities: %s", strerror(errno));
		return -1;
	}
	if (!has_cap(caps, CAP_SYS_ADMIN) &&
	    !(has_cap(caps, CAP_BPF) && has_cap(caps, CAP_PERFMON))) {
		eph_err("agent needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN): run it with "
			"sudo");
		return -1;
	}
	return kernel_probe(&a->kernel);
}

/* settings this kernel cannot honour, changed before loading; said by degrade_notes() */
static void degrade_settings(struct agent *a)
{
	if (a->opts.guard && !a->kernel.has[KF_SET_RETVAL])
		a->opts.deny_errno = EPERM;
}

/*
 * What this kernel lacks, each said once on stderr with what it costs, once the
 * agent runs (an error before that stays the only line); agent_start has the
 * same as "kernel.features". docs/kernels.md.
 */
static void degrade_notes(struct agent *a)
{
	const struct kernel_info *k = &a->kernel;

	if (!k->has[KF_ATOMICS])
		eph_err("note: Linux %s has no BPF atomic exchange (5.12): a TIME_WAIT socket "
			"destroyed on another CPU as it is made can be miscounted until the next "
			"self-check repairs it",
			k->release);
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

static int ensure_bpffs(void)
{
	struct statfs st;

	if (statfs(BPF_FS_PATH, &st) == 0 && (unsigned long)st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", BPF_FS_PATH, "bpf", 0, "mode=0700")) {
		eph_err("bpffs is not mounted at " BPF_FS_PATH " and mounting it failed: %s "
			"(mount -t bpf bpf " BPF_FS_PATH ")",
			strerror(errno));
		return -1;
	}
	return 0;
}

static const char *const pinned_maps[] = { "tuples",  "stats",	    "sockets",	  "timewait",
					   "ports",   "local_tw",   "netns_info", "failures",
					   "openers", "guard_info", "denials" };

static void unpin_all(void)
{
	char path[256];

	for (size_t i = 0; i < sizeof(pinned_maps) / sizeof(pinned_maps[0]); i++) {
		snprintf(path, sizeof(path), EPH_PIN_DIR "/%s", pinned_maps[i]);
		unlink(path);
	}
	rmdir(EPH_PIN_DIR);
}

static int pin_maps(struct agent *a)
{
	struct bpf_map *maps[] = { a->skel->maps.tuples,     a->skel->maps.stats,
				   a->skel->maps.sockets,    a->skel->maps.timewait,
				   a->skel->maps.ports,	     a->skel->maps.local_tw,
				   a->skel->maps.netns_info, a->skel->maps.failures,
				   a->skel->maps.openers,    a->skel->maps.guard_info,
				   a->skel->maps.denials };
	char path[256];
	int err;

	/* we hold the lock, so anything here was left by an agent that was killed */
	unpin_all();
	if (mkdir(EPH_PIN_DIR, 0700) && errno != EEXIST) {
		eph_err("cannot create %s: %s", EPH_PIN_DIR, strerror(errno));
		return -1;
	}
	a->pinned = true;
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		snprintf(path, sizeof(path), EPH_PIN_DIR "/%s", pinned_maps[i]);
		err = bpf_map__pin(maps[i], path);
		if (err) {
			eph_err("cannot pin map at %s: %s", path, strerror(-err));
			return -1;
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
	char line[256], name[128], type;
	unsigned long long a;
	FILE *f = fopen("/proc/kallsyms", "re");
	int ret = -1;

	if (!f) {
		eph_err("cannot read /proc/kallsyms: %s", strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx %c %127s", &a, &type, name) == 3 &&
		    !strcmp(name, "tw_timer_handler")) {
			*addr = a;
			ret = 0;
			break;
		}
	}
	fclose(f);
	if (ret)
		eph_err("tw_timer_handler is not in /proc/kallsyms: ephport needs it to follow "
			"TIME_WAIT sockets (kernel built without CONFIG_KALLSYMS?)");
	else if (!*addr)
		eph_err("/proc/kallsyms hides kernel addresses: the agent needs CAP_SYSLOG, "
			"and kernel.kptr_restrict below 2");
	return ret || !*addr ? -1 : 0;
}

/*
 * The skeleton attaches its programs in order and stops at the first that
 * fails: that is the loaded program without a link. Debian's kernels set
 * kernel.perf_event_paranoid to 3, where classic tracepoints (perf events) need
 * CAP_SYS_ADMIN, not only CAP_PERFMON.
 */
static void attach_error(struct tuples_bpf *skel, int err)
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

/* one build of each pair: the kernel's atomics decide (bpf/core_fixes.bpf.h) */
static void choose_programs(struct agent *a)
{
	struct tuples_bpf *s = a->skel;
	bool atomics = a->kernel.has[KF_ATOMICS];
	struct bpf_program *pairs[][2] = {
		{ s->progs.tuples_set_state, s->progs.tuples_set_state_compat },
		{ s->progs.tw_timer_cancel, s->progs.tw_timer_cancel_compat },
		{ s->progs.walk, s->progs.walk_compat },
		{ s->progs.tw_forget, s->progs.tw_forget_compat },
	};

	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		bpf_program__set_autoload(pairs[i][0], atomics);
		bpf_program__set_autoload(pairs[i][1], !atomics);
	}
	/* without bpf_task_pt_regs a failing call's arguments are kept on entry */
	bpf_program__set_autoload(s->progs.connect_enter, !a->kernel.has[KF_TASK_PT_REGS]);
	bpf_program__set_autoload(s->progs.bind_enter, !a->kernel.has[KF_TASK_PT_REGS]);
	bpf_program__set_autoload(s->progs.guard_connect4, a->opts.guard);
	bpf_program__set_autoload(s->progs.guard_connect6, a->opts.guard);
}

static int load_bpf(struct agent *a)
{
	bool atomics = a->kernel.has[KF_ATOMICS];
	int err;

	a->skel = tuples_bpf__open();
	if (!a->skel) {
		eph_err("cannot open the BPF object: %s", strerror(errno));
		return -1;
	}
	bpf_map__set_max_entries(a->skel->maps.tuples, a->opts.max_tuples);
	bpf_map__set_max_entries(a->skel->maps.sockets, a->opts.max_sockets);
	bpf_map__set_max_entries(a->skel->maps.timewait, a->opts.max_timewait);
	if (tw_timer_handler_addr((__u64 *)&a->skel->rodata->tw_timer_fn))
		return -1;
	a->skel->rodata->guard_mode = !a->opts.guard ? GUARD_OFF :
				      a->opts.audit  ? GUARD_AUDIT :
						       GUARD_ENFORCE;
	a->skel->rodata->guard_errno = a->opts.deny_errno;
	a->skel->rodata->guard_quota = a->opts.quota;
	choose_programs(a);
	err = tuples_bpf__load(a->skel);
	if (err == -ENOMEM || err == -E2BIG)
		eph_err("cannot create the BPF maps: %s -- lower --max-tuples, --max-sockets or "
			"--max-timewait",
			strerror(-err));
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
			"BPF iterators and ring buffers (Linux 5.10+); --verbose shows the "
			"verifier log",
			strerror(-err));
	if (err)
		return -1;
	a->skel->bss->agent_clock_ns = mono_ns();
	err = tuples_bpf__attach(a->skel);
	if (err) {
		attach_error(a->skel, err);
		return -1;
	}
	a->walk_link = atomics ? a->skel->links.walk : a->skel->links.walk_compat;
	a->forget_fd = bpf_program__fd(atomics ? a->skel->progs.tw_forget :
						 a->skel->progs.tw_forget_compat);
	if (!a->walk_link) {
		eph_err("cannot attach the iter/tcp program: ephport needs BPF iterators "
			"(Linux 5.9+)");
		return -1;
	}
	return 0;
}

/* one iter/tcp walk of the namespace this thread is in */
static int walk_here(struct agent *a)
{
	char buf[256];
	ssize_t n;
	int fd;

	a->skel->bss->walk_gen = ++a->walk_gen;
	fd = bpf_iter_create(bpf_link__fd(a->walk_link));
	if (fd < 0)
		return -errno;
	/* the program prints nothing: reading runs it over every socket */
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		;
	close(fd);
	a->walks++;
	return n < 0 ? -errno : 0;
}

/*
 * Steps into each namespace: walks the ones not seen before (counting the
 * sockets they had before we knew them; BPF_NOEXIST keeps the walk and live
 * events from counting one twice) and reads their settings for "netns_info".
 * Coming back home must work: anything else would leave the agent elsewhere.
 */
static int netns_round(struct agent *a)
{
	int info_fd = bpf_map__fd(a->skel->maps.netns_info);
	size_t kept = 0;
	int err;

	err = netns_discover(&a->netns, "/proc/self/ns/net");
	if (err) {
		eph_err("cannot list network namespaces: %s", strerror(-err));
		return -1;
	}
	for (size_t i = 0; i < a->netns.len; i++) {
		struct netns *ns = &a->netns.items[i];

		if (!ns->alive) {
			bpf_map_delete_elem(info_fd, &ns->inum);
			continue;
		}
		a->netns.items[kept++] = *ns;
		ns = &a->netns.items[kept - 1];
		if (netns_enter(ns)) {
			a->netns_unreachable++;
			continue;
		}
		if (ns->is_new && !walk_here(a))
			ns->is_new = false;
		err = netns_read_info(&ns->info);
		if (netns_leave(ns, a->home_fd)) {
			eph_err("cannot return to the agent's network namespace: %s",
				strerror(errno));
			return -1;
		}
		if (err)
			continue;
		ns->info.checked_ns = mono_ns();
		snprintf(ns->info.path, sizeof(ns->info.path), "%s",
			 ns->home ? "/proc/self/ns/net" : ns->path);
		bpf_map_update_elem(info_fd, &ns->inum, &ns->info, BPF_ANY);
	}
	a->netns.len = kept;
	return 0;
}

/*
 * A walk finds every TIME_WAIT socket of the namespace: ones we missed are
 * counted by the walk itself, and entries it did not find (older than the walk)
 * were destroyed without our seeing it; tw_forget takes them back.
 */
static int tw_repair(struct agent *a, struct netns *ns)
{
	int tw_fd = bpf_map__fd(a->skel->maps.timewait);
	int prog_fd = a->forget_fd;
	struct tw_key *keys = NULL;
	struct tw_val *vals = NULL;
	__u64 started = mono_ns();
	size_t n = 0;
	int err;

	if (netns_enter(ns))
		return 0; /* gone meanwhile */
	a->tw_repairs++;
	err = walk_here(a);
	if (netns_leave(ns, a->home_fd)) {
		eph_err("cannot return to the agent's network namespace: %s", strerror(errno));
		return -1;
	}
	if (err)
		return 0;
	err = map_read_all(tw_fd, sizeof(*keys), sizeof(*vals), (void **)&keys, (void **)&vals, &n);
	for (size_t i = 0; i < n && !err; i++) {
		struct tw_forget_args args = { .key = keys[i], .born_ns = vals[i].born_ns };
		LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &args, .ctx_size_in = sizeof(args));

		if (keys[i].netns != ns->inum || vals[i].seen == a->walk_gen ||
		    vals[i].born_ns >= started)
			continue;
		if (!bpf_prog_test_run_opts(prog_fd, &opts) && opts.retval == 1)
			a->tw_repaired++;
	}
	free(keys);
	free(vals);
	return 0;
}

/*
 * The self-check: the kernel's TIME_WAIT count of each namespace (sockstat) and
 * ours. Both move under load and are read a moment apart, so only the same gap
 * twice running counts as drift. A gap a repair cannot close (a full map) makes
 * the next repairs wait longer, up to 64 checks.
 */
static int tw_check(struct agent *a, struct ns_list *nl)
{
	for (size_t i = 0; i < a->netns.len; i++) {
		struct netns *ns = &a->netns.items[i];
		const struct ns_summary *sum = ns_find(nl, ns->inum, false);
		__s64 ours = sum ? sum->tw_tuples + sum->tw_server + sum->tw_other : 0;
		__s64 diff;

		if (ns->info.tw_kernel < 0 || ns->is_new)
			continue;
		diff = ns->info.tw_kernel - ours;
		if (!diff) {
			ns->repair_backoff = 0;
		} else if (diff == ns->last_diff && !ns->repair_wait) {
			if (tw_repair(a, ns))
				return -1;
			ns->repair_backoff = ns->repair_backoff ? ns->repair_backoff * 2 : 1;
			if (ns->repair_backoff > 64)
				ns->repair_backoff = 64;
			ns->repair_wait = ns->repair_backoff;
			diff = 0;
		} else if (ns->repair_wait) {
			ns->repair_wait--;
		}
		ns->last_diff = diff;
	}
	return 0;
}

static int guard_to_json(struct agent *a, cJSON *settings)
{
	cJSON *g, *ex;

	if (a->guard.mode == GUARD_OFF)
		return cJSON_AddNullToObject(settings, "guard") ? 0 : -ENOMEM;
	g = cJSON_AddObjectToObject(settings, "guard");
	if (!g || guard_info_to_json(&a->guard, g) || !(ex = cJSON_AddArrayToObject(g, "exempt")))
		return -ENOMEM;
	for (size_t i = 0; i < a->opts.nexempt; i++)
		if (!cJSON_AddItemToArray(ex, cJSON_CreateString(a->opts.exempt[i])))
			return -ENOMEM;
	return 0;
}

static int metrics_to_json(struct agent *a, cJSON *settings)
{
	char url[128];
	cJSON *m;

	if (!a->metrics)
		return cJSON_AddNullToObject(settings, "metrics") ? 0 : -ENOMEM;
	if (!(m = cJSON_AddObjectToObject(settings, "metrics")) ||
	    !cJSON_AddStringToObject(m, "addr", a->opts.metrics_addr) ||
	    metrics_url(a->metrics, url, sizeof(url)) || !cJSON_AddStringToObject(m, "url", url) ||
	    !cJSON_AddNumberToObject(m, "top", a->opts.metrics_top))
		return -ENOMEM;
	return 0;
}

static void emit_start(struct agent *a)
{
	cJSON *ev = report_new(&a->report, "agent_start");
	cJSON *settings, *boot;

	if (!ev)
		goto out;
	if (!cJSON_AddStringToObject(ev, "version", EPHPORT_VERSION) ||
	    kernel_to_json(&a->kernel, ev) || !cJSON_AddNumberToObject(ev, "pid", getpid()) ||
	    !cJSON_AddStringToObject(ev, "pin_dir", EPH_PIN_DIR) ||
	    !(settings = cJSON_AddObjectToObject(ev, "settings")) ||
	    !cJSON_AddNumberToObject(settings, "interval", a->opts.interval) ||
	    !cJSON_AddNumberToObject(settings, "max_tuples", a->opts.max_tuples) ||
	    !cJSON_AddNumberToObject(settings, "max_sockets", a->opts.max_sockets) ||
	    !cJSON_AddNumberToObject(settings, "max_timewait", a->opts.max_timewait) ||
	    !cJSON_AddNumberToObject(settings, "tuple_idle", a->opts.tuple_idle) ||
	    !cJSON_AddNumberToObject(settings, "warn_at", a->opts.warn) ||
	    !cJSON_AddNumberToObject(settings, "critical_at", a->opts.crit) ||
	    !cJSON_AddNumberToObject(settings, "clear_margin", a->opts.margin) ||
	    !cJSON_AddNumberToObject(settings, "hold", a->opts.hold) ||
	    !(a->opts.output ? cJSON_AddStringToObject(settings, "output", a->opts.output) :
			       cJSON_AddNullToObject(settings, "output")) ||
	    guard_to_json(a, settings) || metrics_to_json(a, settings) ||
	    !(boot = cJSON_AddObjectToObject(ev, "bootstrap")) ||
	    !cJSON_AddNumberToObject(boot, "netns", a->netns.len) ||
	    !cJSON_AddNumberToObject(boot, "ms", round(a->bootstrap_ms * 10) / 10)) {
		cJSON_Delete(ev);
		ev = NULL;
	}
out:
	report_emit(&a->report, ev);
}

static bool tuple_idle(const struct tuple *t, __u64 now_ns, __u64 idle_ns)
{
	/* a connect newer than now_ns (it came after the clock was read) is not idle */
	return !t->in_use && !t->val.states[EPH_TCP_TIME_WAIT] &&
	       t->val.last_connect_ns <= now_ns && now_ns - t->val.last_connect_ns >= idle_ns;
}

/*
 * Forget tuples with no socket in use and no connect for --tuple-idle seconds, so
 * that a host talking to ever new destinations does not fill the map for good.
 * The value is read again right before the delete; a connect() to that destination
 * in the microseconds between the two can still lose that one socket's counts.
 */
static size_t expire_idle(struct agent *a, const struct tuple_list *l)
{
	int fd = bpf_map__fd(a->skel->maps.tuples);
	__u64 idle_ns = a->opts.tuple_idle * 1000000000ull;
	struct tuple fresh;
	size_t expired = 0;
	__u64 now_ns;

	if (!a->opts.tuple_idle)
		return 0;
	now_ns = mono_ns();
	for (size_t i = 0; i < l->len; i++) {
		if (!tuple_idle(&l->items[i], now_ns, idle_ns))
			continue;
		fresh.key = l->items[i].key;
		if (bpf_map_lookup_elem(fd, &fresh.key, &fresh.val))
			continue;
		tuple_finish(&fresh);
		if (tuple_idle(&fresh, now_ns, idle_ns) && !bpf_map_delete_elem(fd, &fresh.key)) {
			expired++;
			retired_add(&a->retired, &fresh);
		}
	}
	a->tuples_expired += expired;
	return expired;
}

static bool port_val_zero(const void *v)
{
	const struct port_val *p = v;

	return p->listeners <= 0 && p->bound <= 0;
}

static bool s64_zero(const void *v)
{
	return *(const __s64 *)v == 0;
}

/*
 * Ports no longer held and local TIME_WAIT counts back at zero, so that a host
 * binding ever new ports does not fill the maps. Read again right before the
 * delete; a socket taking that port in the microseconds between is not counted.
 */
static void prune_zero(int fd, size_t vsz, bool (*is_zero)(const void *))
{
	struct port_key *keys;
	char *vals, fresh[16];
	size_t n;

	if (vsz > sizeof(fresh) ||
	    map_read_all(fd, sizeof(*keys), vsz, (void **)&keys, (void **)&vals, &n))
		return;
	for (size_t i = 0; i < n; i++)
		if (is_zero(vals + i * vsz) && !bpf_map_lookup_elem(fd, &keys[i], fresh) &&
		    is_zero(fresh))
			bpf_map_delete_elem(fd, &keys[i]);
	free(keys);
	free(vals);
}

static int read_counts(struct agent *a, struct tuple_list *list, struct ns_list *nl)
{
	int err = tuple_list_read(bpf_map__fd(a->skel->maps.tuples), NULL, list);

	if (!err)
		err = ns_list_build(nl, list, bpf_map__fd(a->skel->maps.netns_info),
				    bpf_map__fd(a->skel->maps.ports),
				    bpf_map__fd(a->skel->maps.local_tw));
	if (err) {
		eph_err("cannot read the BPF maps: %s", strerror(-err));
		return err;
	}
	tuple_list_capacity(list, nl);
	tuple_list_sort(list);
	return 0;
}

static void emit_netns(struct agent *a, const struct ns_list *nl)
{
	for (size_t i = 0; i < nl->len; i++) {
		cJSON *ev = report_new(&a->report, "netns");

		if (ev && ns_to_json(&nl->items[i], ev)) {
			cJSON_Delete(ev);
			ev = NULL;
		}
		report_emit(&a->report, ev);
	}
}

static int snapshot(struct agent *a)
{
	struct tuple_list list = { 0 };
	struct ns_list nl = { 0 };
	struct agent_stats st = { .max_tuples = a->opts.max_tuples,
				  .max_sockets = a->opts.max_sockets };
	size_t expired;
	cJSON *ev;
	int err;

	err = netns_round(a);
	if (err)
		return err;
	err = read_counts(a, &list, &nl);
	/* a repair shows in the next snapshot */
	if (!err)
		err = tw_check(a, &nl);
	if (!err)
		err = stats_read(bpf_map__fd(a->skel->maps.stats), &st);
	if (err)
		goto cleanup;
	for (size_t i = 0; i < list.len; i++) {
		if (list.items[i].in_use <= 0 && list.items[i].time_wait <= 0)
			continue;
		ev = report_new(&a->report, "tuple");
		if (ev && tuple_to_json(&list.items[i], ev)) {
			cJSON_Delete(ev);
			ev = NULL;
		}
		report_emit(&a->report, ev);
	}
	emit_netns(a, &nl);
	prune_zero(bpf_map__fd(a->skel->maps.ports), sizeof(struct port_val), port_val_zero);
	prune_zero(bpf_map__fd(a->skel->maps.local_tw), sizeof(__s64), s64_zero);
	expired = expire_idle(a, &list);
	ev = report_new(&a->report, "stats");
	if (ev && (stats_to_json(&st, list.seen - expired, ev) ||
		   !cJSON_AddNumberToObject(ev, "tuples_expired", a->tuples_expired) ||
		   !cJSON_AddNumberToObject(ev, "lines_dropped", report_dropped(&a->report)) ||
		   !cJSON_AddNumberToObject(ev, "failure_lines", failures_lines(a->failures)) ||
		   !cJSON_AddNumberToObject(ev, "pressure_checks", a->checks) ||
		   !cJSON_AddNumberToObject(ev, "pressure_active", pressure_active(a->pressure)) ||
		   !cJSON_AddNumberToObject(ev, "netns", a->netns.len) ||
		   !cJSON_AddNumberToObject(ev, "netns_unreachable", a->netns_unreachable) ||
		   !cJSON_AddNumberToObject(ev, "walks", a->walks) ||
		   !cJSON_AddNumberToObject(ev, "time_wait_repairs", a->tw_repairs) ||
		   !cJSON_AddNumberToObject(ev, "time_wait_repaired", a->tw_repaired) ||
		   cost_to_json(&a->cost, list.seen - expired, a->opts.max_tuples, ev))) {
		cJSON_Delete(ev);
		ev = NULL;
	}
	report_emit(&a->report, ev);
cleanup:
	ns_list_free(&nl);
	tuple_list_free(&list);
	return err;
}

static void emit_stop(struct agent *a, const char *reason)
{
	cJSON *ev = report_new(&a->report, "agent_stop");
	char sig[16];

	snprintf(sig, sizeof(sig), "SIG%s", stop_signal ? sigabbrev_np(stop_signal) : "");
	if (ev && (!cJSON_AddStringToObject(ev, "reason", reason) ||
		   (stop_signal && !cJSON_AddStringToObject(ev, "signal", sig)) ||
		   !cJSON_AddNumberToObject(
			   ev, "uptime_s",
			   (mono_ns() - (a->started.tv_sec * 1000000000ull + a->started.tv_nsec)) /
				   1000000000ull))) {
		cJSON_Delete(ev);
		ev = NULL;
	}
	report_emit(&a->report, ev);
}

/*
 * A pressure check: every tuple read afresh, failures reported, levels moved.
 * Twice a second, and at once (within CHECK_GAP_NS) when a notice says a tuple
 * just started failing, so a level change shows within a second.
 */
static int on_notice(void *ctx, void *data, size_t size)
{
	struct agent *a = ctx;
	const struct notice *n = data;

	if (size < sizeof(*n) || n->type != NOTICE_FAILURE)
		return 0;
	failures_notice(a->failures, &n->key, &a->latest_ns, &a->latest, mono_ns());
	a->check_now = true;
	return 0;
}

/* a cgroup v2 directory's id (its inode), or -errno with one error line said */
static int cgroup_dir_id(const char *what, const char *path, __u64 *id)
{
	struct statfs sfs;
	struct stat st;

	if (stat(path, &st) || statfs(path, &sfs)) {
		eph_err("%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	if ((unsigned long)sfs.f_type != CGROUP2_MAGIC || !S_ISDIR(st.st_mode)) {
		eph_err("%s %s: not a cgroup v2 directory", what, path);
		return -1;
	}
	*id = st.st_ino;
	return 0;
}

/* the agent's own cgroup, from /proc/self/cgroup's "0::" line */
static int own_cgroup_path(const char *mount, char *path, size_t len)
{
	char line[4096];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int ret = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = '\0';
		if ((size_t)snprintf(path, len, "%s%s", mount,
				     strcmp(line + 3, "/") ? line + 3 : "") < len)
			ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

/*
 * --guard: the cgroup programs on --cgroup-root (the cgroup2 mount by default),
 * the exempt cgroups, and guard_info for query and "guard status". The links
 * belong to this process: when it exits, even by kill -9, nothing is refused.
 */
static int guard_setup(struct agent *a)
{
	const char *mount = a->report.cgroups ? cgroup_resolver_mount(a->report.cgroups) : NULL;
	const char *root = a->opts.cgroup_root ? a->opts.cgroup_root : mount;
	int exempt_fd = bpf_map__fd(a->skel->maps.guard_exempt), fd, err = -1;
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
		return -1;
	}
	if (cgroup_dir_id("--cgroup-root", root, &a->guard.root_cgroup_id))
		return -1;
	if (own_cgroup_path(mount, own, sizeof(own)) ||
	    cgroup_dir_id("the agent's own cgroup", own, &id))
		return -1;
	/* the agent's cgroup may be the root: exempting its subtree would exempt all */
	bpf_map_update_elem(exempt_fd, &id, &cgroup_only, BPF_ANY);
	for (size_t i = 0; i < a->opts.nexempt; i++) {
		if (cgroup_dir_id("--exempt", a->opts.exempt[i], &id))
			return -1;
		bpf_map_update_elem(exempt_fd, &id, &subtree, BPF_ANY);
	}
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		eph_err("cannot open %s: %s", root, strerror(errno));
		return -1;
	}
	a->guard4 = bpf_program__attach_cgroup(a->skel->progs.guard_connect4, fd);
	err = libbpf_get_error(a->guard4);
	if (!err) {
		a->guard6 = bpf_program__attach_cgroup(a->skel->progs.guard_connect6, fd);
		err = libbpf_get_error(a->guard6);
	}
	close(fd);
	if (err) {
		a->guard4 = a->guard6 = NULL;
		eph_err("cannot attach the connect guard to %s: %s", root, strerror(-err));
		return -1;
	}
	a->guard.mode = a->opts.audit ? GUARD_AUDIT : GUARD_ENFORCE;
	a->guard.deny_errno = a->opts.deny_errno;
	a->guard.quota = a->opts.quota;
	a->guard.exempt = a->opts.nexempt + 1;
	a->guard.deny_at = a->opts.deny_at;
	snprintf(a->guard.root, sizeof(a->guard.root), "%s", root);
	failures_guard(a->failures, &a->guard);
publish:
	bpf_map_update_elem(bpf_map__fd(a->skel->maps.guard_info), &zero, &a->guard, BPF_ANY);
	return 0;
}

/* what alerts need: pressure levels, failure lines, the notice ring buffer */
static int watch_setup(struct agent *a)
{
	struct alert_cfg cfg = {
		.warn = a->opts.warn,
		.crit = a->opts.crit,
		.margin = a->opts.margin,
		.hold_ns = a->opts.hold * 1000000000ull,
		/* rates and top processes: over the last interval, 2 to 30 s */
		.window_ns = (a->opts.interval < 2  ? 2 :
			      a->opts.interval > 30 ? 30 :
						      a->opts.interval) *
			     1000000000ull,
	};

	if (pressure_new(&a->pressure, &cfg, &a->report) ||
	    failures_new(&a->failures, bpf_map__fd(a->skel->maps.failures), &a->report,
			 a->pressure)) {
		eph_err("out of memory");
		return -1;
	}
	a->notices = ring_buffer__new(bpf_map__fd(a->skel->maps.notices), on_notice, a, NULL);
	if (!a->notices) {
		eph_err("cannot set up the notice ring buffer: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* /metrics from this check's reading; the previous text stays if this one fails */
static void metrics_update(struct agent *a)
{
	const struct tuple_list *l = &a->latest;
	struct agent_stats st = { .max_tuples = a->opts.max_tuples,
				  .max_sockets = a->opts.max_sockets };
	struct cost_reading cost;
	struct timespec now;
	struct text t = { 0 };
	__u64 *denials = NULL, denials_total = 0;
	struct netns_count *denials_netns = NULL;
	size_t denials_nnetns = 0;
	__u8 *levels = calloc(l->len + 1, sizeof(*levels));

	if (!levels)
		return;
	for (size_t i = 0; i < l->len; i++)
		levels[i] = pressure_level(a->pressure, &l->items[i].key);
	if (a->guard.mode != GUARD_OFF) {
		denials = calloc(l->len + 1, sizeof(*denials));
		if (denials &&
		    guard_denials_sums(bpf_map__fd(a->skel->maps.denials), l, denials,
				       &denials_netns, &denials_nnetns, &denials_total)) {
			free(denials);
			denials = NULL;
		}
	}
	cost_read(&a->cost, &cost);
	clock_gettime(CLOCK_REALTIME, &now);
	retired_prune(&a->retired, &a->latest_ns);
	metrics_render(
		&(struct metrics_view){
			.tuples = l,
			.ns = &a->latest_ns,
			.levels = levels,
			.denials = denials,
			.denials_netns = denials_netns,
			.denials_nnetns = denials_nnetns,
			.denials_total = denials_total,
			.top = a->opts.metrics_top,
			.retired = &a->retired,
			.stats = stats_read(bpf_map__fd(a->skel->maps.stats), &st) ? NULL : &st,
			.cost = &cost,
			.max_tuples = a->opts.max_tuples,
			.lines_dropped = report_dropped(&a->report),
			.checks = a->checks,
			.last_check_s = now.tv_sec + now.tv_nsec / 1e9,
			.start_time_s = a->start_time_s,
			.version = EPHPORT_VERSION,
		},
		&t);
	metrics_publish(a->metrics, &t);
	metrics_beat(a->metrics);
	free(levels);
	free(denials);
	free(denials_netns);
}

static int check(struct agent *a)
{
	__u64 now = mono_ns();
	int err;

	tuple_list_free(&a->latest);
	ns_list_free(&a->latest_ns);
	err = read_counts(a, &a->latest, &a->latest_ns);
	if (err)
		return err;
	a->checks++;
	a->last_check = now;
	a->skel->bss->agent_clock_ns = now;
	a->check_now = false;
	/* failures first: they tell the pressure check which tuples are failing */
	failures_drain(a->failures, &a->latest_ns, &a->latest, now, false);
	pressure_openers(a->pressure, bpf_map__fd(a->skel->maps.openers), now);
	err = pressure_check(a->pressure, &a->latest, &a->latest_ns, now);
	if (err)
		eph_err("pressure check: %s", strerror(-err));
	if (a->guard.mode != GUARD_OFF) {
		err = guard_refresh(bpf_map__fd(a->skel->maps.guard_dst), &a->latest, &a->latest_ns,
				    a->opts.deny_at);
		if (err >= 0)
			a->skel->bss->guard_dst_count = err;
		else
			eph_err("guard: cannot update the destinations near the line: %s",
				strerror(-err));
	}
	if (a->metrics)
		metrics_update(a);
	return 0;
}

static int run_loop(struct agent *a)
{
	__u64 interval_ns = a->opts.interval * 1000000000ull;
	__u64 next_snap = mono_ns() + interval_ns, next_check = mono_ns(), now;
	int err;

	while (!stop_signal) {
		__u64 wake = next_check < next_snap ? next_check : next_snap;

		if (reopen_signal) {
			reopen_signal = 0;
			sink_reopen(a->report.sink);
		}
		if (a->check_now && a->last_check + CHECK_GAP_NS < wake)
			wake = a->last_check + CHECK_GAP_NS;
		now = mono_ns();
		/* a signal ends the wait with -EINTR */
		err = ring_buffer__poll(a->notices,
					wake > now ? (wake - now + 999999) / 1000000 : 0);
		if (err < 0 && err != -EINTR) {
			eph_err("cannot read the notice ring buffer: %s", strerror(-err));
			return -1;
		}
		if (stop_signal)
			break;
		now = mono_ns();
		if (now >= next_check || (a->check_now && now >= a->last_check + CHECK_GAP_NS)) {
			if (check(a))
				return -1;
			while (next_check <= now)
				next_check += CHECK_EVERY_NS;
		}
		if (now >= next_snap) {
			if (snapshot(a))
				return -1;
			while (next_snap <= now)
				next_snap += interval_ns;
		}
	}
	return 0;
}

/* a number in [min, max] */
static int parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || isnan(v) || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct agent_opts *o)
{
	static const struct option longopts[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "warn-at", required_argument, NULL, 'w' },
		{ "critical-at", required_argument, NULL, 'c' },
		{ "clear-margin", required_argument, NULL, 'm' },
		{ "hold", required_argument, NULL, 'D' },
		{ "output", required_argument, NULL, 'o' },
		{ "output-buffer", required_argument, NULL, 'B' },
		{ "guard", no_argument, NULL, 'g' },
		{ "deny-at", required_argument, NULL, 'A' },
		{ "cgroup-root", required_argument, NULL, 'R' },
		{ "exempt", required_argument, NULL, 'E' },
		{ "quota", required_argument, NULL, 'Q' },
		{ "audit", no_argument, NULL, 'U' },
		{ "deny-errno", required_argument, NULL, 'N' },
		{ "max-tuples", required_argument, NULL, 'T' },
		{ "max-sockets", required_argument, NULL, 'S' },
		{ "max-timewait", required_argument, NULL, 'W' },
		{ "tuple-idle", required_argument, NULL, 'I' },
		{ "host", required_argument, NULL, 'H' },
		{ "metrics-addr", required_argument, NULL, 'P' },
		{ "metrics-top", required_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char optbuf[3];
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":i:o:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			if (parse_double(optarg, 0.01, 1, &o->warn))
				goto bad_value;
			break;
		case 'c':
			if (parse_double(optarg, 0.01, 1, &o->crit))
				goto bad_value;
			break;
		case 'm':
			if (parse_double(optarg, 0, 0.5, &o->margin))
				goto bad_value;
			break;
		case 'D':
			if (parse_u64(optarg, 0, 86400, &o->hold))
				goto bad_value;
			break;
		case 'o':
			if (!*optarg)
				goto bad_value;
			o->output = optarg;
			break;
		case 'B':
			if (parse_u64(optarg, 1, 1024 * 1024, &o->output_kib))
				goto bad_value;
			break;
		case 'g':
			o->guard = true;
			break;
		case 'A':
			o->guard_flag = "--deny-at";
			if (parse_double(optarg, 0.01, 1, &o->deny_at))
				goto bad_value;
			break;
		case 'R':
			o->guard_flag = "--cgroup-root";
			if (!*optarg)
				goto bad_value;
			o->cgroup_root = optarg;
			break;
		case 'E':
			o->guard_flag = "--exempt";
			if (!*optarg || o->nexempt == MAX_EXEMPT)
				goto bad_value;
			o->exempt[o->nexempt++] = optarg;
			break;
		case 'Q':
			o->guard_flag = "--quota";
			if (parse_u64(optarg, 1, 1u << 20, &o->quota))
				goto bad_value;
			break;
		case 'U':
			o->guard_flag = "--audit";
			o->audit = true;
			break;
		case 'N':
			o->guard_flag = "--deny-errno";
			if (guard_parse_errno(optarg, &o->deny_errno))
				goto bad_value;
			break;
		case 'i':
			if (parse_u64(optarg, 1, 86400, &o->interval))
				goto bad_value;
			break;
		case 'T':
			if (parse_u64(optarg, 1, MAX_MAP_ENTRIES, &o->max_tuples))
				goto bad_value;
			break;
		case 'S':
			if (parse_u64(optarg, 1, MAX_MAP_ENTRIES, &o->max_sockets))
				goto bad_value;
			break;
		case 'W':
			if (parse_u64(optarg, 1, MAX_MAP_ENTRIES, &o->max_timewait))
				goto bad_value;
			break;
		case 'I':
			if (parse_u64(optarg, 0, 365 * 86400, &o->tuple_idle))
				goto bad_value;
			break;
		case 'H':
			if (!*optarg || strlen(optarg) > 255)
				goto bad_value;
			o->host = optarg;
			break;
		case 'P':
			if (metrics_addr_parse(optarg, &o->metrics))
				goto bad_value;
			o->metrics_addr = optarg;
			break;
		case 'n':
			if (parse_u64(optarg, 0, METRICS_TOP_MAX, &o->metrics_top))
				goto bad_value;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			fputs("usage: ephport agent [OPTION]...\n\n", stdout);
			fputs(agent_help, stdout);
			return 1;
		case ':':
			fprintf(stderr, "ephport agent: %s needs a value\n%s",
				bad_option(argv, optbuf), agent_usage);
			return -1;
		default:
			fprintf(stderr, "ephport agent: unknown option '%s'\n%s",
				bad_option(argv, optbuf), agent_usage);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ephport agent: unexpected argument '%s'\n%s", argv[optind],
			agent_usage);
		return -1;
	}
	if (o->guard_flag && !o->guard) {
		fprintf(stderr, "ephport agent: %s needs --guard\n%s", o->guard_flag, agent_usage);
		return -1;
	}
	if (o->margin >= o->warn) {
		fprintf(stderr,
			"ephport agent: --clear-margin (%g) must be below --warn-at (%g), or "
			"warning "
			"never clears\n%s",
			o->margin, o->warn, agent_usage);
		return -1;
	}
	if (o->warn >= o->crit) {
		fprintf(stderr,
			"ephport agent: --warn-at (%g) must be below --critical-at (%g)\n%s",
			o->warn, o->crit, agent_usage);
		return -1;
	}
	return 0;
bad_value:
	fprintf(stderr, "ephport agent: bad value '%s' for %s\n%s", optarg,
		option_of_value(argv, optind), agent_usage);
	return -1;
}

int cmd_agent(int argc, char **argv)
{
	struct agent a = { .opts = { .interval = 10,
				     .warn = 0.80,
				     .crit = 0.95,
				     .margin = 0.05,
				     .hold = 30,
				     .output_kib = 4096,
				     .deny_at = 0.98,
				     .deny_errno = EADDRNOTAVAIL,
				     .max_tuples = MAX_TUPLES_DEFAULT,
				     .max_sockets = MAX_SOCKETS_DEFAULT,
				     .max_timewait = MAX_TIMEWAIT_DEFAULT,
				     .tuple_idle = 600,
				     .metrics_top = METRICS_TOP_DEFAULT } };
	struct sigaction sa = { .sa_handler = on_signal };
	int lock_fd = -1, ret = 1, err;
	long holder = 0;

	a.home_fd = -1;

	err = parse_opts(argc, argv, &a.opts);
	if (err)
		return err > 0 ? 0 : EXIT_USAGE;
	verbose = a.opts.verbose;
	libbpf_set_print(libbpf_print);
	if (a.opts.host)
		snprintf(a.host, sizeof(a.host), "%s", a.opts.host);
	else if (gethostname(a.host, sizeof(a.host) - 1))
		snprintf(a.host, sizeof(a.host), "unknown");

	if (preflight(&a))
		return 1;
	degrade_settings(&a);
	err = agent_lock_acquire(&lock_fd, &holder);
	if (err == -EBUSY) {
		eph_err("another ephport agent is already running (pid %ld); stop it first",
			holder);
		return 1;
	} else if (err) {
		eph_err("cannot take the agent lock %s: %s", EPH_LOCK_PATH, strerror(-err));
		return 1;
	}

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (a.opts.metrics_addr) {
		err = metrics_start(&a.metrics, &a.opts.metrics);
		if (err) {
			eph_err("cannot serve metrics on %s: %s", a.opts.metrics_addr,
				strerror(-err));
			goto cleanup;
		}
	}
	{
		struct timespec rt;

		clock_gettime(CLOCK_REALTIME, &rt);
		a.start_time_s = rt.tv_sec + rt.tv_nsec / 1e9;
	}
	a.report.host = a.host;
	err = sink_open(&a.report.sink, a.opts.output, a.opts.output_kib * 1024);
	if (err) {
		eph_err("cannot open %s for appending: %s", a.opts.output, strerror(-err));
		goto cleanup;
	}
	/* without it, lines name the cgroup by id only */
	if (cgroup_resolver_open(&a.report.cgroups))
		a.report.cgroups = NULL;

	a.home_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (a.home_fd < 0) {
		eph_err("cannot open /proc/self/ns/net: %s", strerror(errno));
		goto cleanup;
	}
	if (ensure_bpffs() || load_bpf(&a) || pin_maps(&a) || watch_setup(&a) || guard_setup(&a))
		goto cleanup;
	clock_gettime(CLOCK_MONOTONIC, &a.started);
	/* after attaching: what the walk misses, the events catch */
	if (netns_round(&a))
		goto cleanup;
	a.bootstrap_ms = (mono_ns() - (a.started.tv_sec * 1000000000ull + a.started.tv_nsec)) / 1e6;
	cost_init(&a.cost, a.skel);
	emit_start(&a);
	degrade_notes(&a);
	err = run_loop(&a);
	/* failures counted since the last check, so that the counts add up */
	ring_buffer__consume(a.notices);
	failures_drain(a.failures, &a.latest_ns, &a.latest, mono_ns(), true);
	emit_stop(&a, err ? "error" : "signal");
	ret = err ? 1 : 0;
cleanup:
	/* first: probes see the agent go before its pins do */
	metrics_stop(a.metrics);
	retired_free(&a.retired);
	if (a.pinned)
		unpin_all();
	if (a.cost.skel)
		cost_free(&a.cost);
	ring_buffer__free(a.notices);
	bpf_link__destroy(a.guard4);
	bpf_link__destroy(a.guard6);
	tuples_bpf__destroy(a.skel);
	failures_free(a.failures);
	pressure_free(a.pressure);
	tuple_list_free(&a.latest);
	ns_list_free(&a.latest_ns);
	if (a.report.cgroups)
		cgroup_resolver_close(a.report.cgroups);
	/* a stuck output gets two seconds; what is left then is lost */
	if (a.report.sink)
		sink_close(a.report.sink, 2000);
	netns_set_free(&a.netns);
	if (a.home_fd >= 0)
		close(a.home_fd);
	agent_lock_release(lock_fd);
	return ret;
}
