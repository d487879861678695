// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The agent's command line: its options as a table (opts.h), and the checks between them. */
#include <stdio.h>
#include <string.h>

#include "agent.h"

#define MAX_MAP_ENTRIES (1u << 24)

/* --metrics-addr: checked now (numbers only), kept as given for the messages */
static int parse_metrics_addr(const char *arg, void *cfg)
{
	struct agent_opts *o = cfg;

	if (metrics_addr_parse(arg, &o->metrics))
		return -EINVAL;
	o->metrics_addr = arg;
	return 0;
}

/* --spread A[,B...]: repeatable; unicast addresses, each once, MAX_SPREAD in all */
static int parse_spread(const char *arg, void *cfg)
{
	struct agent_opts *o = cfg;
	char buf[1024], *save = NULL;

	if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
		return -EINVAL;
	for (char *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
		struct spread_addr a = { 0 };
		static const __u8 zero[16];

		if (o->nspread == MAX_SPREAD || addr_parse(s, &a.family, a.addr) ||
		    !memcmp(a.addr, zero, 16))
			return -EINVAL;
		for (size_t i = 0; i < o->nspread; i++)
			if (!memcmp(&o->spread[i], &a, sizeof(a)))
				return -EINVAL;
		o->spread[o->nspread++] = a;
	}
	return o->nspread ? 0 : -EINVAL;
}

/* --nat-range LOW-HIGH */
static int parse_nat_range(const char *arg, void *cfg)
{
	struct agent_opts *o = cfg;

	return nat_range_parse(arg, &o->nat_range);
}

/* what the agent runs with where no option says otherwise (the help states the same), by topic */
const struct agent_opts agent_opts_default = {
	/* clang-format off */
	.interval = 10, .output_kib = 4096,
	.warn = 0.80, .crit = 0.95, .margin = 0.05, .hold = 30,
	.deny_at = 0.98, .deny_errno = EADDRNOTAVAIL, .spread_at = 0.70,
	.max_tuples = MAX_TUPLES_DEFAULT, .tuple_idle = 600, .metrics_top = METRICS_TOP_DEFAULT,
	.nat_warn = 0.80, .nat_crit = 0.95,
	/* clang-format on */
};

#define U64(field)  OPT_U64_AT(struct agent_opts, field)
#define UTIL(field) OPT_DOUBLE_AT(struct agent_opts, field), .dmin = 0.01, .dmax = 1
#define GUARD_OPT   .needs = "guard"

static const struct opt agent_options[] = {
	{ "interval", 'i', U64(interval), .min = 1, .max = 86400, .metavar = "SEC",
	  .help = "seconds between tuple snapshots (1-86400, default 10)" },
	{ "warn-at", 0, UTIL(warn), .metavar = "U",
	  .help = "utilization of the warning level (default 0.80)" },
	{ "critical-at", 0, UTIL(crit), .metavar = "U",
	  .help = "utilization of the critical level (default 0.95)" },
	{ "clear-margin", 0, OPT_DOUBLE_AT(struct agent_opts, margin), .dmin = 0, .dmax = 0.5,
	  .metavar = "U",
	  .help = "a level clears only below its threshold minus U\n(default 0.05) ..." },
	{ "hold", 0, U64(hold), .min = 0, .max = 86400, .metavar = "SEC",
	  .help = "... and after SEC seconds there (default 30)" },
	{ "output", 'o', OPT_STRING_AT(struct agent_opts, output), .metavar = "FILE",
	  .complete = OPT_COMPLETE_FILE,
	  .help = "append the lines to FILE instead of standard output;\n"
		  "SIGHUP opens it again (for logrotate); a regular file\n"
		  "of the agent's user, not a symlink" },
	{ "output-buffer", 0, U64(output_kib), .min = 1, .max = 1024 * 1024, .metavar = "KIB",
	  .help = "lines waiting for a slow output, at most (default 4096);\n"
		  "beyond it lines are dropped and counted" },
	{ "guard", 0, OPT_FLAG_AT(struct agent_opts, guard),
	  .help = "refuse TCP connect()s to destinations at the deny line\n"
		  "(cgroup/connect4 and connect6 programs); off by default" },
	{ "deny-at", 0, UTIL(deny_at), GUARD_OPT, .metavar = "U",
	  .help = "the deny line: utilization of the destination's tuple\n(default 0.98)" },
	{ "cgroup-root", 0, OPT_STRING_AT(struct agent_opts, cgroup_root), GUARD_OPT,
	  .metavar = "PATH", .complete = OPT_COMPLETE_DIR,
	  .help = "cgroup v2 directory to guard, or a subtree of it\n"
		  "(default: the whole cgroup2 hierarchy)" },
	{ "exempt", 0, OPT_STRINGS_AT(struct agent_opts, exempt, nexempt), GUARD_OPT,
	  .metavar = "PATH", .complete = OPT_COMPLETE_DIR,
	  .help = "a cgroup whose subtree is never refused (repeatable;\n"
		  "the agent's own cgroup, itself, never is)" },
	{ "exempt-system", 0, OPT_FLAG_AT(struct agent_opts, exempt_system), GUARD_OPT,
	  .help = "also exempt the node's system services: system.slice and\n"
		  "init.scope below --cgroup-root, where they are" },
	{ "quota", 0, U64(quota), GUARD_OPT, .min = 1, .max = 1u << 20, .metavar = "N",
	  .help = "also refuse a cgroup holding N sockets to the destination" },
	{ "audit", 0, OPT_FLAG_AT(struct agent_opts, audit), GUARD_OPT,
	  .help = "decide and report connect_denied, refuse nothing" },
	{ "deny-errno", 0, OPT_CHOICE_AT(struct agent_opts, deny_errno, guard_errnos), GUARD_OPT,
	  .metavar = "E",
	  .help = "what a refused connect() gets: eaddrnotavail (default)\nor eperm" },
	{ "spread", 0, OPT_FUNC(parse_spread), GUARD_OPT, .metavar = "ADDR[,ADDR...]",
	  .why = "IPv4 or IPv6 addresses, comma-separated, each once, none a wildcard, "
		 "16 in all at most",
	  .help = "source addresses to spread connections over (repeatable,\n"
		  "16 at most): past --spread-at, an unbound connect() is\n"
		  "bound to the least used of them local in its namespace" },
	{ "spread-at", 0, UTIL(spread_at), GUARD_OPT, .metavar = "U",
	  .help = "utilization of a destination's tuple from which its\n"
		  "connects are spread (default 0.70; below --deny-at)" },
	{ "no-nat", 0, OPT_FLAG_AT(struct agent_opts, no_nat),
	  .help = "do not count source NAT (conntrack) per NAT tuple" },
	{ "nat-range", 0, OPT_FUNC(parse_nat_range), .metavar = "LOW-HIGH",
	  .why = "two ports 1-65535, LOW-HIGH with LOW <= HIGH, or one port",
	  .help = "the port range source NAT draws from, for every NAT\n"
		  "tuple (default: the rule's range, else 1024-65535)" },
	{ "nat-warn-at", 0, UTIL(nat_warn), .metavar = "U",
	  .help = "utilization of a NAT tuple's warning level (default 0.80)" },
	{ "nat-critical-at", 0, UTIL(nat_crit), .metavar = "U",
	  .help = "utilization of a NAT tuple's critical level\n(default 0.95)" },
	{ "max-tuples", 0, U64(max_tuples), .min = 1, .max = MAX_MAP_ENTRIES, .metavar = "N",
	  .help = "destination tuples tracked at most (default 65536)" },
	{ "tuple-idle", 0, U64(tuple_idle), .min = 0, .max = 365 * 86400, .metavar = "SEC",
	  .help = "forget tuples with nothing in use and no connect for SEC\n"
		  "seconds (default 600; 0 keeps them for ever)" },
	{ "host", 0, OPT_STRING_AT(struct agent_opts, host), .max = 255, .metavar = "NAME",
	  .help = "value of every line's \"host\" (default: the hostname)" },
	{ "metrics-addr", 0, OPT_FUNC(parse_metrics_addr), .metavar = "HOST:PORT",
	  .why = "a numeric IPv4 address, an IPv6 one in brackets, or none (:PORT)",
	  .help = "serve Prometheus metrics on http://HOST:PORT/metrics,\n"
		  "and /healthz, /readyz; HOST is a numeric IPv4 address,\n"
		  "[IPV6], or none (:PORT) for every address; off by default" },
	{ "metrics-top", 0, U64(metrics_top), .min = 0, .max = METRICS_TOP_MAX, .metavar = "N",
	  .help = "per-tuple series for the N tuples nearest exhaustion\n"
		  "(0-1000, default 100); the rest are in sums" },
	{ "verbose", 'v', OPT_FLAG_AT(struct agent_opts, verbose),
	  .help = "show libbpf's messages, including the verifier log" },
	{ "help", 'h', OPT_HELP, .help = "this help" },
	{ 0 },
};

const struct opts_cmd agent_cmd = {
	.name = "agent",
	.synopsis = "ephport agent [OPTION]...",
	.hint = "('ephport agent --help' lists them)",
	.about = "Count ephemeral port usage per destination tuple in the kernel and print JSON "
		 "lines.",
	.epilog =
		"Runs in the foreground as root; SIGINT or SIGTERM stops it, within 5 s. While it "
		"runs,\nits maps are pinned under " EPH_PIN_DIR " for 'ephport query'. Events: "
		"docs/events.md.",
	.opts = agent_options,
};

int agent_parse_opts(int argc, char **argv, struct agent_opts *o)
{
	int err = opts_parse(&agent_cmd, argc, argv, o);

	if (err)
		return err;
	if (o->margin >= o->warn) {
		opts_error(&agent_cmd,
			   "--clear-margin (%g) must be below --warn-at (%g), or warning never "
			   "clears",
			   o->margin, o->warn);
		return -EINVAL;
	}
	if (o->nspread && o->spread_at >= o->deny_at) {
		opts_error(&agent_cmd,
			   "--spread-at (%g) must be below --deny-at (%g), or nothing is spread",
			   o->spread_at, o->deny_at);
		return -EINVAL;
	}
	if (o->warn >= o->crit) {
		opts_error(&agent_cmd, "--warn-at (%g) must be below --critical-at (%g)", o->warn,
			   o->crit);
		return -EINVAL;
	}
	if (o->nat_warn >= o->nat_crit) {
		opts_error(&agent_cmd, "--nat-warn-at (%g) must be below --nat-critical-at (%g)",
			   o->nat_warn, o->nat_crit);
		return -EINVAL;
	}
	if (o->margin >= o->nat_warn) {
		opts_error(&agent_cmd,
			   "--clear-margin (%g) must be below --nat-warn-at (%g), or a NAT "
			   "warning never clears",
			   o->margin, o->nat_warn);
		return -EINVAL;
	}
	return 0;
}
