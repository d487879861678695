// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ephport agent: start-up, the loop that waits for checks, snapshots and queries, the end. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent.h"
#include "objects.h"
#include "cgroup.h"
#include "ephport.skel.h"

#define CHECK_EVERY_NS	    500000000ull /* pressure checks: twice a second */
#define CHECK_GAP_NS	    50000000ull	 /* at most this often when notices ask for one */
#define MAX_QUERIES_AT_ONCE 4		 /* then the loop goes on; the rest wait in the backlog */

static bool verbose;

/*
 * libbpf's warnings (what it could not do) go to stderr without --verbose too,
 * the verifier's log excepted: it is a warning to libbpf, and pages long.
 * Those of the start-up are held back until it succeeded: a start-up that
 * fails says what failed in one line of its own. --verbose shows everything
 * as it comes.
 */
static char held[4096];
static size_t nheld;
static bool holding = true;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	int n;

	if (verbose)
		return vfprintf(stderr, fmt, args);
	if (level != LIBBPF_WARN || strstr(fmt, "PROG LOAD LOG"))
		return 0;
	if (!holding)
		return vfprintf(stderr, fmt, args);
	n = vsnprintf(held + nheld, sizeof(held) - nheld, fmt, args);
	if (n > 0)
		nheld = nheld + n < sizeof(held) ? nheld + n : sizeof(held) - 1;
	return n;
}

/* the start-up went well: its warnings now, and those that come later as they come */
static void libbpf_release(void)
{
	holding = false;
	if (nheld)
		fputs(held, stderr);
	nheld = 0;
}

static int run_loop(struct agent *a)
{
	__u64 interval_ns = a->opts.interval * 1000000000ull;
	__u64 next_snap = mono_ns() + interval_ns, next_check = mono_ns(), now, next_nat = 0;
	struct pollfd pfd[4];
	int err;

	while (!agent_stop_signal()) {
		__u64 wake = next_check < next_snap ? next_check : next_snap;

		if (agent_reopen_asked())
			sink_reopen(a->report.sink);
		if (a->check_now && a->last_check + CHECK_GAP_NS < wake)
			wake = a->last_check + CHECK_GAP_NS;
		now = mono_ns();
		/* conntrack events read in batches: NAT_BATCH_NS after the last read at most */
		if (a->nat && now < next_nat && next_nat < wake)
			wake = next_nat;
		/* notices and questions; a signal ends the wait early */
		pfd[0] = (struct pollfd){ .fd = ring_buffer__epoll_fd(a->notices),
					  .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = a->query_fd, .events = POLLIN };
		pfd[2] = (struct pollfd){ .fd = agent_signals_fd(), .events = POLLIN };
		/* conntrack events of the namespaces with source NAT (-1: none, ignored) */
		pfd[3] =
			(struct pollfd){ .fd = a->nat && now >= next_nat ? nat_view_fd(a->nat) : -1,
					 .events = POLLIN };
		err = poll(pfd, 4, wake > now ? (wake - now + 999999) / 1000000 : 0);
		if (err < 0 && errno != EINTR) {
			eph_err("cannot wait for notices: %s", strerror(errno));
			return neg_errno();
		}
		err = ring_buffer__consume(a->notices);
		if (err < 0) {
			eph_err("cannot read the notice ring buffer: %s", strerror(-err));
			return err;
		}
		for (int i = 0; i < MAX_QUERIES_AT_ONCE && (pfd[1].revents & POLLIN); i++)
			agent_query_serve(a);
		if (pfd[3].revents & POLLIN) {
			nat_view_process(a->nat);
			next_nat = mono_ns() + NAT_BATCH_NS;
		}
		if (agent_stop_signal())
			break;
		now = mono_ns();
		if (now >= next_check || (a->check_now && now >= a->last_check + CHECK_GAP_NS)) {
			err = agent_check(a);
			if (err)
				return err;
			while (next_check <= now)
				next_check += CHECK_EVERY_NS;
			agent_query_trim(a, now);
		}
		if (now >= next_snap) {
			err = agent_snapshot(a);
			if (err)
				return err;
			while (next_snap <= now)
				next_snap += interval_ns;
		}
	}
	return 0;
}

/* everything from the metrics server to the query socket; a negative errno after one line */
static int agent_open(struct agent *a)
{
	int err;

	/*
	 * the output first: one it refuses (a symlink, a FIFO, another user's file)
	 * stops the start before anything answers probes or is pinned
	 */
	a->report.host = a->host;
	err = sink_open(&a->report.sink, a->opts.output, a->opts.output_kib * 1024);
	if (err)
		return err;
	if (a->opts.metrics_addr) {
		err = metrics_start(&a->metrics, &a->opts.metrics);
		if (err) {
			eph_err("cannot serve metrics on %s: %s", a->opts.metrics_addr,
				strerror(-err));
			return err;
		}
	}
	{
		struct timespec rt;

		clock_gettime(CLOCK_REALTIME, &rt);
		a->start_time_s = rt.tv_sec + rt.tv_nsec / 1e9;
	}
	/* without it, lines name the cgroup by id only */
	if (cgroup_resolver_open(&a->report.cgroups))
		a->report.cgroups = NULL;

	a->home_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (a->home_fd < 0) {
		eph_err("cannot open /proc/self/ns/net: %s", strerror(errno));
		return neg_errno();
	}
	a->retiring = calloc(MAX_RETIRING, sizeof(*a->retiring));
	if (!a->retiring) {
		eph_err("cannot allocate memory");
		return -ENOMEM;
	}
	if ((err = agent_ensure_bpffs()) || (err = agent_load_bpf(a)) ||
	    (err = agent_pin_maps(a)) || (err = agent_watch_setup(a)) ||
	    (err = agent_guard_setup(a)))
		return err;
	clock_gettime(CLOCK_MONOTONIC, &a->started);
	/* the namespaces there are before attaching; the walk counts what they held */
	if ((err = startup_prepare(&a->startup, a->skel, &a->netns)) ||
	    (err = agent_attach_bpf(a)) ||
	    (err = startup_walk(&a->startup, a->skel->links.walk, &a->netns, a->home_fd)) ||
	    (err = agent_netns_round(a, true)))
		return err;
	a->bootstrap_ms =
		(mono_ns() - (a->started.tv_sec * 1000000000ull + a->started.tv_nsec)) / 1e6;
	cost_init(&a->cost, a->skel);
	err = agent_query_listen(a);
	if (err)
		return err;
	return 0;
}

/* all that agent_open() made, whatever it got to; NULLs and -1s are skipped */
static void agent_close(struct agent *a)
{
	/* first: probes and queries see the agent go before its pins do */
	metrics_stop(a->metrics);
	agent_query_close(a);
	retired_free(&a->retired);
	free(a->share_keys);
	free(a->share_vals);
	if (a->pinned) {
		agent_unpin_all();
		agent_signals_pinned(false);
	}
	if (a->cost.skel)
		cost_free(&a->cost);
	ring_buffer__free(a->notices);
	startup_free(&a->startup);
	free(a->retiring);
	bpf_link__destroy(a->guard4);
	bpf_link__destroy(a->guard6);
	ephport_bpf__destroy(a->skel);
	failures_free(a->failures);
	spreads_free(a->spreads);
	nat_view_free(a->nat);
	pressure_free(a->pressure);
	table_free(&a->table);
	free(a->order);
	ring_buffer__free(a->changes);
	free(a->chg_keys);
	ns_list_free(&a->latest_ns);
	if (a->report.cgroups)
		cgroup_resolver_close(a->report.cgroups);
	/* a stuck output gets two seconds; what is left then is lost */
	if (a->report.sink)
		sink_close(a->report.sink, 2000);
	report_free(&a->report);
	netns_set_free(&a->netns);
	if (a->home_fd >= 0)
		close(a->home_fd);
}

int cmd_agent(int argc, char **argv)
{
	struct agent a = { .opts = agent_opts_default };
	int lock_fd = -1, ret = 1, err;
	long holder = 0;

	/* before anything else: a SIGHUP or SIGTERM at start-up must not kill the agent */
	if (agent_signals_start())
		return 1;
	a.home_fd = -1;
	a.query_fd = a.answer_fd = a.answer_conn = -1;

	err = agent_parse_opts(argc, argv, &a.opts);
	if (err)
		return err > 0 ? 0 : EXIT_USAGE;
	verbose = a.opts.verbose;
	libbpf_set_print(libbpf_print);
	if (a.opts.host)
		snprintf(a.host, sizeof(a.host), "%s", a.opts.host);
	else if (gethostname(a.host, sizeof(a.host) - 1))
		snprintf(a.host, sizeof(a.host), "unknown");

	if (agent_preflight(&a))
		return 1;
	agent_degrade_settings(&a);
	err = agent_lock_acquire(&lock_fd, &holder);
	if (err == -EBUSY) {
		eph_err("another ephport agent is already running (pid %ld); stop it first",
			holder);
		return 1;
	} else if (err) {
		return 1;
	}

	if (agent_open(&a))
		goto cleanup;
	libbpf_release();
	agent_emit_start(&a);
	agent_degrade_notes(&a);
	err = run_loop(&a);
	/* failures counted since the last check, so that the counts add up */
	ring_buffer__consume(a.notices);
	failures_drain(a.failures, &a.latest_ns, &a.table, mono_ns(), true);
	spreads_drain(a.spreads, mono_ns(), true);
	agent_emit_stop(&a, err ? "error" : "signal", agent_stop_signal());
	ret = err ? 1 : 0;
cleanup:
	agent_close(&a);
	agent_lock_release(lock_fd);
	return ret;
}
