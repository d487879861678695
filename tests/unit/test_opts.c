// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Options from a table (opts.c): values, ranges, errors, help; the agent's, guard's and query's. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "opts.h"
#include "query.h"

struct demo {
	uint64_t count;
	double ratio;
	const char *name, *tags[3];
	size_t ntags;
	uint32_t mode;
	bool on, extra;
	int funcs;
};

static bool demo_global;

static int parse_even(const char *arg, void *cfg)
{
	struct demo *d = cfg;

	d->funcs++;
	return atoi(arg) % 2;
}

static const struct opt_choice modes[] = { { "fast", 1 }, { "slow", 2 }, { 0 } };

static const struct opt demo_opts[] = {
	{ "count", 'c', OPT_U64_AT(struct demo, count), .min = 1, .max = 100, .metavar = "N",
	  .help = "how many (1-100)" },
	{ "ratio", 0, OPT_DOUBLE_AT(struct demo, ratio), .dmin = 0.1, .dmax = 1, .metavar = "R",
	  .help = "a share\non two lines" },
	{ "name", 'n', OPT_STRING_AT(struct demo, name), .max = 4, .metavar = "NAME",
	  .complete = OPT_COMPLETE_FILE, .help = "at most 4 bytes" },
	{ "tag", 't', OPT_STRINGS_AT(struct demo, tags, ntags), .metavar = "TAG",
	  .complete = OPT_COMPLETE_DIR, .help = "repeatable" },
	{ "mode", 0, OPT_CHOICE_AT(struct demo, mode, modes), .needs = "on", .metavar = "M",
	  .help = "fast or slow" },
	{ "even", 0, OPT_FUNC(parse_even), .metavar = "N", .help = "an even number" },
	{ "on", 0, OPT_FLAG_AT(struct demo, on), .help = "switch it on" },
	{ "extra", 'x', OPT_FLAG_AT(struct demo, extra), .needs = "on", .help = "needs --on" },
	{ "global", 'g', OPT_FLAG_VAR(demo_global), .help = "a variable, not a field" },
	{ "a-very-long-option", 0, OPT_FLAG_AT(struct demo, on), .help = "past the column" },
	{ "help", 'h', OPT_HELP, .help = "this help" },
	{ 0 },
};

static const struct opts_cmd demo_cmd = {
	.name = "demo",
	.synopsis = "ephport demo [OPTION]...",
	.hint = "(see --help)",
	.about = "A demo.",
	.epilog = "The end.",
	.opts = demo_opts,
};

/* what a parse returned and printed */
struct run {
	int ret;
	char out[8192], err[1024];
};

static void slurp(FILE *f, char *buf, size_t len)
{
	size_t n;

	rewind(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

typedef int parse_fn(const struct opts_cmd *cmd, int argc, char **argv, void *cfg);

/* argv is NULL-terminated; argv[0] is the command's name */
static struct run run_with(parse_fn *parse, const struct opts_cmd *cmd, void *cfg, char **argv)
{
	FILE *out = tmpfile(), *err = tmpfile();
	int saved_out = dup(1), saved_err = dup(2), argc = 0;
	struct run r;

	cr_assert(out && err && saved_out >= 0 && saved_err >= 0);
	while (argv[argc])
		argc++;
	fflush(stdout);
	fflush(stderr);
	dup2(fileno(out), 1);
	dup2(fileno(err), 2);
	r.ret = parse(cmd, argc, argv, cfg);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	close(saved_out);
	close(saved_err);
	slurp(out, r.out, sizeof(r.out));
	slurp(err, r.err, sizeof(r.err));
	return r;
}

static struct run run(const struct opts_cmd *cmd, void *cfg, char **argv)
{
	return run_with(opts_parse, cmd, cfg, argv);
}

#define ARGV(...)	   ((char *[]){ "demo", __VA_ARGS__, NULL })
#define DEMO(d, ...)	   run(&demo_cmd, (d), ARGV(__VA_ARGS__))
#define USAGE		   "usage: ephport demo [OPTION]...  (see --help)\n"
#define assert_error(r, e) cr_assert_str_eq((r).err, "ephport demo: " e "\n" USAGE)

Test(opts, sets_every_kind_of_value)
{
	struct demo d = { 0 };
	struct run r = DEMO(&d, "-c", "7", "--ratio=0.5", "-nab", "--tag", "x", "-ty", "--on",
			    "--mode", "SLOW", "--even", "4", "-x", "-g");

	cr_assert_eq(r.ret, 0, "%s", r.err);
	cr_assert_str_empty(r.err);
	cr_assert_str_empty(r.out);
	cr_assert_eq(d.count, 7);
	cr_assert_float_eq(d.ratio, 0.5, 1e-12);
	cr_assert_str_eq(d.name, "ab");
	cr_assert_eq(d.ntags, 2);
	cr_assert_str_eq(d.tags[0], "x");
	cr_assert_str_eq(d.tags[1], "y");
	cr_assert_eq(d.mode, 2);
	cr_assert_eq(d.funcs, 1);
	cr_assert(d.on && d.extra && demo_global);
}

Test(opts, leaves_what_is_not_given)
{
	struct demo d = { .count = 42, .ratio = 0.25, .name = "dflt" };
	struct run r = DEMO(&d, "--on");

	cr_assert_eq(r.ret, 0);
	cr_assert_eq(d.count, 42);
	cr_assert_float_eq(d.ratio, 0.25, 1e-12);
	cr_assert_str_eq(d.name, "dflt");
	cr_assert_eq(d.ntags, 0);
}

Test(opts, rejects_values_out_of_range)
{
	static const char *const bad[][2] = {
		{ "--count", "0" },   { "--count", "101" },  { "--count", "-1" },
		{ "--count", "1x" },  { "--count", "" },     { "--ratio", "0.09" },
		{ "--ratio", "1.1" }, { "--ratio", "nan" },  { "--ratio", "x" },
		{ "--name", "" },     { "--name", "abcde" }, { "--mode", "medium" },
		{ "--even", "3" },    { "--tag", "" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct demo d = { 0 };
		struct run r = DEMO(&d, (char *)bad[i][0], (char *)bad[i][1]);
		char want[256];

		snprintf(want, sizeof(want), "ephport demo: bad value '%s' for %s\n" USAGE,
			 bad[i][1], bad[i][0]);
		cr_assert_eq(r.ret, -EINVAL, "%s %s", bad[i][0], bad[i][1]);
		cr_assert_str_eq(r.err, want);
		cr_assert_str_empty(r.out);
	}
}

Test(opts, takes_the_range_ends)
{
	struct demo d = { 0 };

	cr_assert_eq(DEMO(&d, "--count", "1", "--ratio", "0.1").ret, 0);
	cr_assert_eq(d.count, 1);
	cr_assert_eq(DEMO(&d, "--count", "100", "--ratio", "1", "--name", "abcd").ret, 0);
	cr_assert_eq(d.count, 100);
	cr_assert_float_eq(d.ratio, 1, 1e-12);
}

Test(opts, names_the_option_as_it_was_given)
{
	struct demo d = { 0 };

	assert_error(DEMO(&d, "-c0"), "bad value '0' for -c");
	assert_error(DEMO(&d, "--count=0"), "bad value '0' for --count");
	assert_error(DEMO(&d, "--cou", "0"), "bad value '0' for --cou");
	/* in a cluster of short options the value's is the letter before it, not the first */
	assert_error(DEMO(&d, "-xc0"), "bad value '0' for -c");
	assert_error(DEMO(&d, "-gxc", "0"), "bad value '0' for -c");
	assert_error(DEMO(&d, "-gc-1"), "bad value '-1' for -c");
}

Test(opts, a_repeatable_option_holds_as_many_as_its_array)
{
	struct demo d = { 0 };

	cr_assert_eq(DEMO(&d, "-t", "a", "-t", "b", "-t", "c").ret, 0);
	cr_assert_eq(d.ntags, 3);
	cr_assert_str_eq(d.tags[2], "c");
	d.ntags = 0;
	assert_error(DEMO(&d, "-t", "a", "-t", "b", "-t", "c", "-t", "d"), "bad value 'd' for -t");
}

Test(opts, usage_errors)
{
	struct demo d = { 0 }, e = { 0 };

	assert_error(DEMO(&d, "--bogus"), "unknown option '--bogus'");
	assert_error(DEMO(&d, "-gq"), "unknown option '-q'");
	/* the word before a cluster is not the one that failed (e: --on stays off in d) */
	assert_error(DEMO(&e, "--on", "-qg"), "unknown option '-q'");
	assert_error(DEMO(&e, "--on", "-g\xff"), "unknown option '-\xff'");
	assert_error(DEMO(&e, "--on", "-gc"), "-c needs a value");
	assert_error(DEMO(&d, "--on=1"), "unknown option '--on=1'");
	assert_error(DEMO(&d, "--count"), "--count needs a value");
	assert_error(DEMO(&d, "-c"), "-c needs a value");
	assert_error(DEMO(&d, "extra"), "unexpected argument 'extra'");
	assert_error(DEMO(&d, "--mode", "fast"), "--mode needs --on");
	/* the latest option that needs it is named */
	assert_error(DEMO(&d, "--mode", "fast", "-x"), "--extra needs --on");
	cr_assert_eq(DEMO(&d, "-x", "--on").ret, 0);
}

Test(opts, words_may_be_the_callers)
{
	struct opts_cmd cmd = demo_cmd;
	struct demo d = { 0 };
	char **argv = ARGV("status", "-c", "3");
	struct run r;

	cmd.args = true;
	r = run(&cmd, &d, argv);
	cr_assert_eq(r.ret, 0);
	cr_assert_eq(d.count, 3);
	cr_assert_eq(optind, 3); /* getopt_long() put the word last */
	cr_assert_str_eq(argv[optind], "status");
}

Test(opts, help)
{
	struct demo d = { 0 };
	struct run r = DEMO(&d, "--help", "--bogus");

	cr_assert_eq(r.ret, 1);
	cr_assert_str_empty(r.err);
	cr_assert_str_eq(r.out, "usage: ephport demo [OPTION]...\n"
				"\n"
				"A demo.\n"
				"\n"
				"  -c, --count N          how many (1-100)\n"
				"      --ratio R          a share\n"
				"                         on two lines\n"
				"  -n, --name NAME        at most 4 bytes\n"
				"  -t, --tag TAG          repeatable\n"
				"      --mode M           fast or slow\n"
				"      --even N           an even number\n"
				"      --on               switch it on\n"
				"  -x, --extra            needs --on\n"
				"  -g, --global           a variable, not a field\n"
				"      --a-very-long-option  past the column\n"
				"  -h, --help             this help\n"
				"\n"
				"The end.\n");
	/* an error before it comes first */
	cr_assert_eq(DEMO(&d, "--bogus", "-h").ret, -EINVAL);
}

/* each option in cmd's help, long and short, and with its value */
static void assert_help_lists_every_option(const struct opts_cmd *cmd)
{
	char **argv = (char *[]){ (char *)cmd->name, "--help", NULL };
	struct run r = run(cmd, NULL, argv);

	cr_assert_eq(r.ret, 1);
	for (const struct opt *o = cmd->opts; o->name; o++) {
		char line[128], s[8] = "    ";

		if (o->short_name)
			snprintf(s, sizeof(s), "-%c, ", o->short_name);
		snprintf(line, sizeof(line), "\n  %s--%s%s%s ", s, o->name, o->metavar ? " " : "",
			 o->metavar ? o->metavar : "");
		cr_assert(strstr(r.out, line), "%s: no '%s' in\n%s", cmd->name, line, r.out);
		cr_assert(o->help && *o->help, "--%s has no help", o->name);
		cr_assert_eq(!o->metavar, o->kind == OPT_KIND_FLAG || o->kind == OPT_KIND_HELP,
			     "--%s: a value needs a metavar, a flag none", o->name);
	}
}

Test(opts, every_commands_help_lists_every_option)
{
	assert_help_lists_every_option(&agent_cmd);
	assert_help_lists_every_option(&guard_cmd);
	assert_help_lists_every_option(&query_cmd);
}

/* a range the help states, "(1-86400", is the one the table checks */
Test(opts, agent_help_states_the_ranges_it_checks)
{
	for (const struct opt *o = agent_cmd.opts; o->name; o++) {
		unsigned long long lo, hi;
		const char *p = o->help;

		while (p && (p = strchr(p, '(')) && sscanf(p, "(%llu-%llu", &lo, &hi) != 2)
			p++;
		if (!p)
			continue;
		cr_assert_eq(o->kind, OPT_KIND_U64, "--%s", o->name);
		cr_assert_eq(lo, o->min, "--%s", o->name);
		cr_assert_eq(hi, o->max, "--%s", o->name);
	}
}

static int agent_parse(const struct opts_cmd *cmd, int argc, char **argv, void *o)
{
	(void)cmd;
	return agent_parse_opts(argc, argv, o);
}

/* agent_parse_opts(): the table's parse and the checks between options */
#define AGENT(o, ...) \
	run_with(agent_parse, &agent_cmd, (o), ((char *[]){ "agent", __VA_ARGS__, NULL }))

Test(agent_opts, values)
{
	struct agent_opts o = agent_opts_default;
	struct run r = AGENT(&o, "-i", "5", "--guard", "--exempt", "/a", "--exempt", "/b",
			     "--deny-errno", "eperm", "--quota", "3", "--host", "h",
			     "--metrics-addr", "127.0.0.1:9979", "--metrics-top", "0", "-v");

	cr_assert_eq(r.ret, 0, "%s", r.err);
	cr_assert_eq(o.interval, 5);
	cr_assert(o.guard && o.verbose && !o.audit);
	cr_assert_eq(o.nexempt, 2);
	cr_assert_str_eq(o.exempt[1], "/b");
	cr_assert_eq(o.deny_errno, EPERM);
	cr_assert_eq(o.quota, 3);
	cr_assert_str_eq(o.host, "h");
	cr_assert_str_eq(o.metrics_addr, "127.0.0.1:9979");
	cr_assert_eq(o.metrics_top, 0);
}

Test(agent_opts, errors_as_before)
{
	static const struct {
		const char *args[3], *err;
	} cases[] = {
		{ { "--interval", "0" }, "bad value '0' for --interval" },
		{ { "--interval", "\t-18446744073709551615" },
		  "bad value '\t-18446744073709551615' for --interval" },
		{ { "--max-tuples", "99999999999" }, "bad value '99999999999' for --max-tuples" },
		{ { "--warn-at", "1.5" }, "bad value '1.5' for --warn-at" },
		{ { "--quota", "3" }, "--quota needs --guard" },
		{ { "--guard", "--deny-errno", "eio" }, "bad value 'eio' for --deny-errno" },
		{ { "--metrics-addr", "nope" },
		  "bad value 'nope' for --metrics-addr: a numeric IPv4 address, an IPv6 one in "
		  "brackets, or none (:PORT)" },
		{ { "--metrics-top", "1001" }, "bad value '1001' for --metrics-top" },
		{ { "--max-sockets", "100" }, "unknown option '--max-sockets'" },
		{ { "--warn-at", "0.96" }, "--warn-at (0.96) must be below --critical-at (0.95)" },
		{ { "--warn-at", "0.04" },
		  "--clear-margin (0.05) must be below --warn-at (0.04), or warning never clears" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct agent_opts o = agent_opts_default;
		struct run r = AGENT(&o, (char *)cases[i].args[0], (char *)cases[i].args[1],
				     (char *)cases[i].args[2]);
		char want[256];

		snprintf(want, sizeof(want),
			 "ephport agent: %s\nusage: ephport agent [OPTION]...  ('ephport agent "
			 "--help' lists them)\n",
			 cases[i].err);
		cr_assert_eq(r.ret, -EINVAL, "%s", cases[i].err);
		cr_assert_str_eq(r.err, want);
	}
}

Test(opts, bash_completion_knows_every_option)
{
	const struct opts_cmd *cmds[] = { &agent_cmd, &query_cmd, &guard_cmd };
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	cr_assert_eq(opts_complete_bash(f, cmds, 3), 0);
	fclose(f);
	cr_assert(strstr(text, "complete -F _ephport ephport\n"));
	cr_assert(strstr(text, "'agent query guard --version --help'"));
	cr_assert(strstr(text, "        --output | -o)\n            _filedir\n"));
	cr_assert(strstr(text, "        --cgroup-root | --exempt)\n            _filedir -d\n"));
	cr_assert(strstr(text, "compgen -W 'eaddrnotavail eperm'"));
	cr_assert(strstr(text, "compgen -W 'status --help'"));
	for (size_t i = 0; i < 3; i++)
		for (const struct opt *o = cmds[i]->opts; o->name; o++) {
			char word[64];

			snprintf(word, sizeof(word), "--%s", o->name);
			cr_assert(strstr(text, word), "no %s", word);
		}
	free(text);
}

/* the agent takes a client's question only as this version asks it, its flags 0 or 1 */
Test(query_req, the_agent_takes_only_what_this_version_asks)
{
	static const size_t flags[] = {
		offsetof(struct query_req, filter.netns_set),
		offsetof(struct query_req, filter.src_set),
		offsetof(struct query_req, filter.dst_set),
		offsetof(struct query_req, filter.dport_set),
	};
	struct query_req sent = { .version = QUERY_VERSION, .json = 1 }, got;
	unsigned char buf[sizeof(sent)];

	cr_assert_eq(filter_parse_dst(&sent.filter, "10.0.0.1:443"), 0);
	memcpy(buf, &sent, sizeof(buf));
	cr_assert_eq(query_req_take(buf, sizeof(buf), &got), 0);
	cr_assert(got.json && got.filter.dst_set && got.filter.dport_set);
	cr_assert_eq(got.filter.dport, 443);
	cr_assert_eq(query_req_take(buf, sizeof(buf) - 1, &got), -EPROTO);

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		memcpy(buf, &sent, sizeof(buf));
		buf[flags[i]] = 2; /* the fuzzer's: "load of value 2 ... for type 'bool'" */
		cr_assert_eq(query_req_take(buf, sizeof(buf), &got), -EPROTO, "flag %zu", i);
	}
	sent.version = QUERY_VERSION - 1;
	memcpy(buf, &sent, sizeof(buf));
	cr_assert_eq(query_req_take(buf, sizeof(buf), &got), -EPROTO);
}
