// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * nat_probe: user/nat_ct.c on its own, for the end-to-end tests and for
 * measuring it. Enters a network namespace by path, dumps its source-NATed
 * conntrack entries, follows the events until --seconds pass (or, with 0, until
 * stdin closes) or SIGINT/SIGTERM, then prints JSON lines: one per NAT tuple
 * ({"type":"tuple",...}) and one of stats ({"type":"stats",...}). Says
 * {"type":"synced"} once the first dump is counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "nat_ct.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU seconds in user space, or in the kernel */
static double cpu_s(bool sys)
{
	struct rusage ru;
	struct timeval *tv = sys ? &ru.ru_stime : &ru.ru_utime;

	getrusage(RUSAGE_SELF, &ru);
	return tv->tv_sec + tv->tv_usec / 1e6;
}

static void print_json(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);

	if (s)
		printf("%s\n", s);
	free(s);
	cJSON_Delete(o);
	fflush(stdout);
}

static void add_addr(cJSON *o, const char *name, int family, const __u8 *addr)
{
	char buf[INET6_ADDRSTRLEN];

	inet_ntop(family, addr, buf, sizeof(buf));
	cJSON_AddStringToObject(o, name, buf);
}

static void print_tuples(const struct nat_ct *nat)
{
	for (const struct nat_ct_tuple *t = nat_ct_next_tuple(nat, NULL); t;
	     t = nat_ct_next_tuple(nat, t)) {
		cJSON *o = cJSON_CreateObject(), *states, *origins;
		int first = t->key.protocol == 17 ? NAT_CT_UDP : 0;
		int last = t->key.protocol == 17 ? NAT_CT_UDP : NAT_CT_OTHER;

		cJSON_AddStringToObject(o, "type", "tuple");
		cJSON_AddNumberToObject(o, "netns", t->key.netns);
		cJSON_AddStringToObject(o, "protocol", t->key.protocol == 17 ? "udp" : "tcp");
		add_addr(o, "saddr", t->key.family, t->key.saddr);
		add_addr(o, "daddr", t->key.family, t->key.daddr);
		cJSON_AddNumberToObject(o, "dport", t->key.dport);
		cJSON_AddNumberToObject(o, "usage", t->usage);
		states = cJSON_AddObjectToObject(o, "states");
		for (int s = first; s <= last; s++)
			cJSON_AddNumberToObject(states, nat_ct_state_name(s), t->states[s]);
		origins = cJSON_AddArrayToObject(o, "origins");
		for (const struct nat_ct_origin *g = nat_ct_next_origin(nat, t, NULL); g;
		     g = nat_ct_next_origin(nat, t, g)) {
			cJSON *x = cJSON_CreateObject();

			add_addr(x, "addr", t->key.family, g->addr);
			cJSON_AddNumberToObject(x, "count", g->count);
			cJSON_AddItemToArray(origins, x);
		}
		print_json(o);
	}
}

static void print_stats(struct nat_ct *nat, double wall, double user, double sys)
{
	struct nat_ct_stats st;
	struct nat_ct_kstats ks;
	cJSON *o = cJSON_CreateObject();

	nat_ct_get_stats(nat, &st);
	cJSON_AddStringToObject(o, "type", "stats");
	cJSON_AddNumberToObject(o, "events", st.events);
	cJSON_AddNumberToObject(o, "dumped", st.dumped);
	cJSON_AddNumberToObject(o, "dumps", st.dumps);
	cJSON_AddNumberToObject(o, "enobufs", st.enobufs);
	cJSON_AddNumberToObject(o, "malformed", st.malformed);
	cJSON_AddNumberToObject(o, "expired", st.expired);
	cJSON_AddNumberToObject(o, "entries", st.entries);
	cJSON_AddNumberToObject(o, "tuples", st.tuples);
	cJSON_AddNumberToObject(o, "dump_only", st.dump_only);
	cJSON_AddNumberToObject(o, "dump_ms", st.dump_ns / 1e6);
	cJSON_AddNumberToObject(o, "events_sysctl", st.events_sysctl);
	cJSON_AddNumberToObject(o, "wall_s", wall);
	cJSON_AddNumberToObject(o, "user_s", user);
	cJSON_AddNumberToObject(o, "sys_s", sys);
	if (!nat_ct_read_kstats(nat, &ks)) {
		cJSON_AddNumberToObject(o, "insert_failed", ks.insert_failed);
		cJSON_AddNumberToObject(o, "drop", ks.drop);
		cJSON_AddNumberToObject(o, "early_drop", ks.early_drop);
	}
	print_json(o);
}

static int usage(void)
{
	fprintf(stderr,
		"usage: nat_probe [--seconds N] [--rcvbuf BYTES] [--resync-ms MS]\n"
		"                 [--lazy-ms MS] [--setns-back] NETNS_PATH\n"
		"  --seconds 0 (default): until stdin closes; --lazy-ms: sleep before\n"
		"  each read of events (so that a small --rcvbuf overflows); --setns-back:\n"
		"  follow from our own namespace once the sockets are open\n");
	return 2;
}

static long number(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	return errno || *end || end == s || v < 0 ? -1 : v;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "rcvbuf", required_argument, NULL, 'r' },
		{ "resync-ms", required_argument, NULL, 'y' },
		{ "lazy-ms", required_argument, NULL, 'l' },
		{ "setns-back", no_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	struct nat_ct_opts opts = { 0 };
	long seconds = 0, lazy_ms = 0, v;
	struct nat_ct *nat;
	struct stat st;
	double t0, u0, s0, end;
	int c, fd, home, err;
	bool back = false;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'b') {
			back = true;
			continue;
		}
		if (c == '?' || (v = number(optarg)) < 0)
			return usage();
		if (c == 's')
			seconds = v;
		else if (c == 'r')
			opts.rcvbuf = v;
		else if (c == 'y')
			opts.resync_ms = v;
		else
			lazy_ms = v;
	}
	if (optind != argc - 1)
		return usage();
	home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	fd = open(argv[optind], O_RDONLY | O_CLOEXEC);
	if (home < 0 || fd < 0 || fstat(fd, &st) || setns(fd, CLONE_NEWNET)) {
		fprintf(stderr, "nat_probe: %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	close(fd);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	t0 = now_s();
	u0 = cpu_s(false);
	s0 = cpu_s(true);
	nat = nat_ct_open(st.st_ino, &opts);
	if (!nat) {
		fprintf(stderr, "nat_probe: conntrack: %s\n", strerror(errno));
		return 1;
	}
	/* as the agent will: the sockets and the stat file keep the namespace they were made in */
	if (back && setns(home, CLONE_NEWNET)) {
		fprintf(stderr, "nat_probe: back to our namespace: %s\n", strerror(errno));
		return 1;
	}
	close(home);
	printf("{\"type\":\"synced\"}\n");
	fflush(stdout);
	end = now_s() + seconds;
	while (!stop && (!seconds || now_s() < end)) {
		struct pollfd p[2] = { { nat_ct_fd(nat), POLLIN, 0 }, { 0, POLLIN, 0 } };

		if (poll(p, seconds ? 1 : 2, 100) < 0 && errno != EINTR)
			break;
		if (!seconds && p[1].revents)
			break; /* stdin closed (or a line: either ends it) */
		/* on events, and every 100 ms for the due dumps */
		if (p[0].revents && lazy_ms)
			usleep(lazy_ms * 1000);
		err = nat_ct_process(nat, 0);
		if (err < 0)
			fprintf(stderr, "nat_probe: events: %s\n", strerror(-err));
	}
	err = nat_ct_process(nat, 0);
	if (err < 0)
		fprintf(stderr, "nat_probe: events: %s\n", strerror(-err));
	print_tuples(nat);
	print_stats(nat, now_s() - t0, cpu_s(false) - u0, cpu_s(true) - s0);
	nat_ct_close(nat);
	return err < 0;
}
