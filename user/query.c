// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ephport query: read the running agent's pinned maps. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "ephport.h"
#include "guard.h"

static const char query_usage[] =
	"usage: ephport query [--json] [--netns INODE] [--dst IP[:PORT]] [--src IP]\n";

static const char query_help[] =
	"Show the live per-destination counts of the running agent, most used first.\n"
	"\n"
	"  -j, --json             one JSON document instead of a table\n"
	"  -n, --netns INODE      only this network namespace (readlink /proc/PID/ns/net)\n"
	"  -d, --dst IP[:PORT]    only this destination ([IPv6]:PORT for IPv6 with a port)\n"
	"  -s, --src IP           only this source address\n"
	"  -h, --help             this help\n"
	"\n"
	"IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are shown and matched as IPv4.\n";

static int parse_opts(int argc, char **argv, struct tuple_filter *f)
{
	/* clang-format off */
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "netns", required_argument, NULL, 'n' },
		{ "dst", required_argument, NULL, 'd' },
		{ "src", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	/* clang-format on */
	char optbuf[3];
	int c, err = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":jn:d:s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			eph_json_mode = true;
			break;
		case 'n':
			err = filter_parse_netns(f, optarg);
			break;
		case 'd':
			err = filter_parse_dst(f, optarg);
			break;
		case 's':
			err = filter_parse_src(f, optarg);
			break;
		case 'h':
			fputs(query_usage, stdout);
			fputs(query_help, stdout);
			return 1;
		case ':':
			fprintf(stderr, "ephport query: %s needs a value\n%s",
				bad_option(argv, optbuf), query_usage);
			return -1;
		default:
			fprintf(stderr, "ephport query: unknown option '%s'\n%s",
				bad_option(argv, optbuf), query_usage);
			return -1;
		}
		if (err) {
			fprintf(stderr, "ephport query: bad value '%s' for %s\n%s", optarg,
				option_of_value(argv, optind), query_usage);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ephport query: unexpected argument '%s'\n%s", argv[optind],
			query_usage);
		return -1;
	}
	return 0;
}

static int open_pinned(const char *name, int *fd)
{
	char path[256];

	snprintf(path, sizeof(path), EPH_PIN_DIR "/%s", name);
	*fd = bpf_obj_get(path);
	if (*fd >= 0)
		return 0;
	if (errno == EPERM || errno == EACCES)
		eph_err("cannot open %s: %s (query needs root)", path, strerror(errno));
	else
		eph_err("cannot open %s: %s (is the agent starting or stopping?)", path,
			strerror(errno));
	return -1;
}

static __u32 map_max_entries(int fd)
{
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.max_entries;
}

static bool ns_wanted(const struct tuple_filter *f, const struct ns_summary *ns)
{
	return !f->netns_set || ns->inum == f->netns;
}

/* the guard's settings and its denials per (tuple, cgroup, reason) */
struct guard_view {
	struct guard_info info;
	struct denial *denials;
	size_t ndenials;
};

static int print_json(pid_t agent, const struct tuple_list *l, const struct ns_list *nl,
		      const struct tuple_filter *f, const struct agent_stats *st,
		      const struct guard_view *g)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(doc, "tuples");
	cJSON *nsarr = cJSON_AddArrayToObject(doc, "netns");
	cJSON *stats = cJSON_AddObjectToObject(doc, "stats");
	cJSON *guard = cJSON_AddObjectToObject(doc, "guard");
	cJSON *denials = cJSON_AddArrayToObject(doc, "denials");
	int err = -ENOMEM;

	if (!doc || !arr || !nsarr || !stats || !guard || !denials ||
	    !cJSON_AddNumberToObject(doc, "agent_pid", agent) ||
	    stats_to_json(st, l->seen, stats) || guard_info_to_json(&g->info, guard) ||
	    guard_denials_to_json(g->denials, g->ndenials, denials))
		goto cleanup;
	for (size_t i = 0; i < nl->len; i++) {
		cJSON *n;

		if (!ns_wanted(f, &nl->items[i]))
			continue;
		n = cJSON_CreateObject();
		if (!n)
			goto cleanup;
		cJSON_AddItemToArray(nsarr, n);
		if (ns_to_json(&nl->items[i], n))
			goto cleanup;
	}
	for (size_t i = 0; i < l->len; i++) {
		cJSON *t = cJSON_CreateObject();

		if (!t)
			goto cleanup;
		cJSON_AddItemToArray(arr, t);
		if (tuple_to_json(&l->items[i], t))
			goto cleanup;
	}
	err = json_print_line(doc);
cleanup:
	cJSON_Delete(doc);
	return err;
}

static void print_tuples(const struct tuple_list *l)
{
	char src[EPH_ADDRSTRLEN], dst[EPH_ADDRSTRLEN + 8], addr[EPH_ADDRSTRLEN];
	int wsrc = 3, wdst = 3;

	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			printf("%-10s %-*s %-*s %6s %7s %8s %7s %8s %7s %6s %6s %7s %8s %7s "
			       "%7s %8s %9s %7s\n",
			       "NETNS", wsrc, "SRC", wdst, "DST", "UTIL%", "USAGE", "CAPACITY",
			       "IN_USE", "SYN_SENT", "ESTAB", "FIN_W1", "FIN_W2", "CLOSE_W",
			       "LAST_ACK", "CLOSING", "TIME_W", "TW_REUSE", "CONNECTS", "FAILED");
		for (size_t i = 0; i < l->len; i++) {
			const struct tuple *t = &l->items[i];
			const __s32 *s = t->val.states;
			int n;

			addr_format(t->key.family, t->key.saddr, src, sizeof(src));
			addr_format(t->key.family, t->key.daddr, addr, sizeof(addr));
			n = snprintf(dst, sizeof(dst),
				     t->key.family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr,
				     t->key.dport);
			if (pass == 0) {
				wsrc = (int)strlen(src) > wsrc ? (int)strlen(src) : wsrc;
				wdst = n > wdst ? n : wdst;
				continue;
			}
			printf("%-10u %-*s %-*s %6.1f %7lld %8lld %7lld %8d %7d %6d %6d %7d %8d "
			       "%7d %7lld %8lld %9llu %7llu\n",
			       t->key.netns, wsrc, src, wdst, dst, t->utilization * 100,
			       (long long)t->usage, (long long)t->capacity, (long long)t->in_use,
			       s[EPH_TCP_SYN_SENT], s[EPH_TCP_ESTABLISHED], s[EPH_TCP_FIN_WAIT1],
			       s[EPH_TCP_FIN_WAIT2], s[EPH_TCP_CLOSE_WAIT], s[EPH_TCP_LAST_ACK],
			       s[EPH_TCP_CLOSING], (long long)t->time_wait, (long long)t->reusable,
			       (unsigned long long)t->val.connects,
			       (unsigned long long)t->val.failed_connects);
		}
	}
}

static void print_netns(const struct ns_list *nl, const struct tuple_filter *f)
{
	char range[16], reserved[12], reuse[4];

	printf("\n%-10s %-12s %8s %6s %8s %9s %9s %8s  %s\n", "NETNS", "PORT_RANGE", "RESERVED",
	       "BOUND", "TW_REUSE", "TW_CLIENT", "TW_SERVER", "TW_OTHER", "PATH");
	for (size_t i = 0; i < nl->len; i++) {
		const struct ns_summary *ns = &nl->items[i];

		if (!ns_wanted(f, ns))
			continue;
		snprintf(range, sizeof(range), "-");
		snprintf(reuse, sizeof(reuse), "-");
		snprintf(reserved, sizeof(reserved), "-");
		if (ns->port_range) {
			snprintf(range, sizeof(range), "%u-%u", PORT_LOW(ns->port_range),
				 PORT_HIGH(ns->port_range));
			snprintf(reuse, sizeof(reuse), "%u", ns->tw_reuse);
		}
		if (ns->has_info)
			snprintf(reserved, sizeof(reserved), "%u", ns->info.reserved);
		printf("%-10u %-12s %8s %6u %8s %9lld %9lld %8lld  %s\n", ns->inum, range, reserved,
		       ns->bound_in_range, reuse, (long long)ns->tw_tuples,
		       (long long)ns->tw_server, (long long)ns->tw_other,
		       ns->has_info && ns->info.path[0] ? ns->info.path : "-");
	}
}

static void print_guard(const struct guard_view *g)
{
	cJSON *arr;

	printf("\nguard: %s", guard_mode_name(g->info.mode));
	if (g->info.mode == GUARD_OFF) {
		printf("\n");
		return;
	}
	printf(" on %s, deny at %.2f, errno %s", g->info.root, g->info.deny_at,
	       guard_errno_name(g->info.deny_errno));
	if (g->info.quota)
		printf(", quota %u", g->info.quota);
	printf("\n");
	arr = cJSON_CreateArray();
	if (!g->ndenials || !arr || guard_denials_to_json(g->denials, g->ndenials, arr)) {
		cJSON_Delete(arr);
		return;
	}
	printf("%-10s %-39s %-46s %10s %-11s %9s\n", "NETNS", "SRC", "DST", "CGROUP_ID", "REASON",
	       "DENIED");
	for (cJSON *d = arr->child; d; d = d->next) {
		char dst[64];

		snprintf(dst, sizeof(dst), "%s:%d", cJSON_GetObjectItem(d, "daddr")->valuestring,
			 cJSON_GetObjectItem(d, "dport")->valueint);
		printf("%-10.0f %-39s %-46s %10.0f %-11s %9.0f\n",
		       cJSON_GetObjectItem(d, "netns")->valuedouble,
		       cJSON_GetObjectItem(d, "saddr")->valuestring, dst,
		       cJSON_GetObjectItem(d, "cgroup_id")->valuedouble,
		       cJSON_GetObjectItem(d, "reason")->valuestring,
		       cJSON_GetObjectItem(d, "count")->valuedouble);
	}
	cJSON_Delete(arr);
}

static void print_table(const struct tuple_list *l, const struct ns_list *nl,
			const struct tuple_filter *f, const struct agent_stats *st,
			const struct guard_view *g)
{
	print_tuples(l);
	print_netns(nl, f);
	print_guard(g);
	if (st->counters[EPH_STAT_TUPLES_FULL] || st->counters[EPH_STAT_TIMEWAIT_FULL])
		fprintf(stderr,
			"ephport: maps were full: %llu new tuples and %llu server TIME_WAIT "
			"sockets not counted (raise --max-tuples %u)\n",
			(unsigned long long)st->counters[EPH_STAT_TUPLES_FULL],
			(unsigned long long)st->counters[EPH_STAT_TIMEWAIT_FULL], st->max_tuples);
}

int cmd_query(int argc, char **argv)
{
	struct tuple_filter filter = { 0 };
	struct tuple_list list = { 0 }, all = { 0 };
	struct ns_list nl = { 0 };
	struct agent_stats st = { 0 };
	int tuples_fd = -1, stats_fd = -1, ports_fd = -1, local_tw_fd = -1;
	int info_fd = -1, denials_fd = -1, ret = 1, err;
	struct guard_view guard = { 0 };
	pid_t agent;

	err = parse_opts(argc, argv, &filter);
	if (err)
		return err > 0 ? 0 : EXIT_USAGE;

	err = agent_lock_holder(&agent);
	if (err < 0) {
		eph_err("cannot check for a running agent (%s): %s", EPH_LOCK_PATH, strerror(-err));
		return 1;
	}
	if (err == 0) {
		eph_err("no ephport agent is running (start one with 'ephport agent')");
		return 1;
	}
	if (open_pinned("tuples", &tuples_fd) || open_pinned("stats", &stats_fd) ||
	    open_pinned("ports", &ports_fd) || open_pinned("local_tw", &local_tw_fd) ||
	    open_pinned("netns_info", &info_fd) || open_pinned("denials", &denials_fd))
		goto cleanup;

	st.max_tuples = map_max_entries(tuples_fd);
	/* namespace totals need every tuple; the filter applies to what is shown */
	err = tuple_list_read(tuples_fd, NULL, &all);
	if (!err)
		err = ns_list_build(&nl, &all, info_fd, ports_fd, local_tw_fd);
	for (size_t i = 0; !err && i < all.len; i++) {
		list.seen++;
		if (filter_match(&filter, &all.items[i]))
			err = tuple_list_push(&list, &all.items[i]);
	}
	if (!err) {
		tuple_list_capacity(&list, &nl);
		err = stats_read(stats_fd, &st);
	}
	/* an agent from before the guard has no guard_info: the guard is off */
	if (!err && guard_info_read(&guard.info))
		guard.info.mode = GUARD_OFF;
	if (!err)
		err = guard_denials_read(denials_fd, &guard.denials, &guard.ndenials);
	if (err) {
		eph_err("cannot read the agent's maps: %s", strerror(-err));
		goto cleanup;
	}
	tuple_list_sort(&list);
	if (eph_json_mode) {
		err = print_json(agent, &list, &nl, &filter, &st, &guard);
		if (err) {
			eph_err("cannot print JSON: %s", strerror(-err));
			goto cleanup;
		}
	} else {
		print_table(&list, &nl, &filter, &st, &guard);
	}
	ret = 0;
cleanup:
	free(guard.denials);
	if (denials_fd >= 0)
		close(denials_fd);
	ns_list_free(&nl);
	tuple_list_free(&all);
	tuple_list_free(&list);
	if (info_fd >= 0)
		close(info_fd);
	if (local_tw_fd >= 0)
		close(local_tw_fd);
	if (ports_fd >= 0)
		close(ports_fd);
	if (stats_fd >= 0)
		close(stats_fd);
	if (tuples_fd >= 0)
		close(tuples_fd);
	return ret;
}
