/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A command's options as a table (xdp-tools' params do the same): each entry names
 * the option, its kind, the field it sets, its range and its help. One parser
 * (getopt_long underneath), the help and the bash completion all come from it.
 *
 *	struct cfg { uint64_t interval; bool verbose; };
 *	static const struct opt opts[] = {
 *		{ "interval", 'i', OPT_U64_AT(struct cfg, interval), .min = 1, .max = 60,
 *		  .metavar = "SEC", .help = "seconds between checks (1-60)" },
 *		{ "verbose", 'v', OPT_FLAG_AT(struct cfg, verbose), .help = "say more" },
 *		{ "help", 'h', OPT_HELP, .help = "this help" },
 *		{ 0 },
 *	};
 *	const struct opts_cmd cmd = { .name = "demo", .synopsis = "ephport demo [OPTION]...",
 *				      .opts = opts };
 *	err = opts_parse(&cmd, argc, argv, &cfg);   // 0, 1 (help printed) or -EINVAL
 */
#ifndef EPHPORT_OPTS_H
#define EPHPORT_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum opt_kind {
	OPT_KIND_HELP,	  /* prints the help; opts_parse() returns 1 */
	OPT_KIND_FLAG,	  /* bool, set to true */
	OPT_KIND_U64,	  /* uint64_t in [min, max] */
	OPT_KIND_DOUBLE,  /* double in [dmin, dmax] */
	OPT_KIND_STRING,  /* const char *, not empty; at most max bytes when max is set */
	OPT_KIND_STRINGS, /* repeatable: const char *[max], counted in the size_t at count_off */
	OPT_KIND_CHOICE,  /* uint32_t: the value of one of choices (any case) */
	OPT_KIND_FUNC,	  /* parse(arg, cfg): 0, or not 0 for a bad value */
};

/* what bash completes an option's value with (choices are offered on their own) */
enum opt_complete {
	OPT_COMPLETE_NONE,
	OPT_COMPLETE_FILE,
	OPT_COMPLETE_DIR,
};

struct opt_choice {
	const char *name;
	uint32_t value;
};

struct opt {
	const char *name; /* long name, without "--" */
	char short_name;  /* 0: none */
	enum opt_kind kind;
	size_t off;	  /* the field in the command's config ... */
	void *ptr;	  /* ... or this variable, when set */
	size_t count_off; /* OPT_KIND_STRINGS: where the count is */
	uint64_t min, max;
	double dmin, dmax;
	const struct opt_choice *choices; /* ends with { 0 } */
	int (*parse)(const char *arg, void *cfg);
	const char *needs; /* a flag (long name) this option is no use without */
	enum opt_complete complete;
	const char *metavar; /* the value in the help: "SEC" */
	const char *why;     /* after "bad value ... for --NAME: ", what a good one is */
	const char *help;    /* lines after the first start under it in the help */
};

/*
 * Entries' kind and field, the field's type checked: a table that says OPT_U64_AT for
 * a double does not compile.
 */
#define OPT_FIELD_(type, field, ctype) \
	_Generic(&((type *)0)->field, ctype * : offsetof(type, field))
#define OPT_HELP		   .kind = OPT_KIND_HELP
#define OPT_FLAG_AT(type, field)   .kind = OPT_KIND_FLAG, .off = OPT_FIELD_(type, field, bool)
#define OPT_FLAG_VAR(var)	   .kind = OPT_KIND_FLAG, .ptr = _Generic(&(var), bool * : &(var))
#define OPT_U64_AT(type, field)	   .kind = OPT_KIND_U64, .off = OPT_FIELD_(type, field, uint64_t)
#define OPT_DOUBLE_AT(type, field) .kind = OPT_KIND_DOUBLE, .off = OPT_FIELD_(type, field, double)
#define OPT_STRING_AT(type, field) \
	.kind = OPT_KIND_STRING, .off = OPT_FIELD_(type, field, const char *)
#define OPT_STRINGS_AT(type, field, count)                                         \
	.kind = OPT_KIND_STRINGS, .off = OPT_FIELD_(type, field[0], const char *), \
	.count_off = OPT_FIELD_(type, count, size_t),                              \
	.max = sizeof(((type *)0)->field) / sizeof(((type *)0)->field[0])
#define OPT_CHOICE_AT(type, field, list) \
	.kind = OPT_KIND_CHOICE, .off = OPT_FIELD_(type, field, uint32_t), .choices = (list)
#define OPT_FUNC(fn) .kind = OPT_KIND_FUNC, .parse = (fn)

/* the most options a command has */
#define OPTS_MAX 48

struct opts_cmd {
	const char *name;	/* "agent": errors start "ephport agent: " */
	const char *synopsis;	/* "ephport agent [OPTION]...", after "usage: " */
	const char *hint;	/* after the usage line under an error, if set */
	const char *about;	/* the help's first paragraph */
	const char *epilog;	/* the help's paragraphs after the options, if any */
	const struct opt *opts; /* ends with { 0 } */
	/* set: words that are not options are the caller's (argv[optind] on), else errors */
	bool args;
	const char *subcommand; /* for the completion: the word before the options, if any */
};

/*
 * argv[1..] parsed into cfg: 0; 1 when the help was printed (stdout); -EINVAL after an
 * error line and the usage on stderr. Checks between options (warn < critical) are
 * the caller's, after it returns 0: opts_error() prints them as it does its own.
 */
int opts_parse(const struct opts_cmd *cmd, int argc, char **argv, void *cfg);
void opts_error(const struct opts_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void opts_usage(const struct opts_cmd *cmd, FILE *f);
void opts_help(const struct opts_cmd *cmd, FILE *f);

/* opts_complete.c: the bash completion for these commands (the words after "ephport") */
int opts_complete_bash(FILE *f, const struct opts_cmd *const *cmds, size_t n);

#endif /* EPHPORT_OPTS_H */
