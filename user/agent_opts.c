// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The agent's command line: its help and its options, checked. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

#define MAX_MAP_ENTRIES (1u << 24)

const char agent_usage[] =
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

int agent_parse_opts(int argc, char **argv, struct agent_opts *o)
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
