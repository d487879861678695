// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Options from a table (opts.h): getopt_long's tables built from it, values checked, help. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ephport.h"
#include "opts.h"

/* help: the column the options' text starts at */
#define HELP_COL 25
/* getopt_long()'s value for the i-th option: above every short one */
#define LONG_VAL(i) (256 + (i))

void opts_usage(const struct opts_cmd *cmd, FILE *f)
{
	fprintf(f, "usage: %s%s%s\n", cmd->synopsis, cmd->hint ? "  " : "",
		cmd->hint ? cmd->hint : "");
}

void opts_error(const struct opts_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ephport %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	opts_usage(cmd, stderr);
}

static bool takes_value(const struct opt *o)
{
	return o->kind != OPT_KIND_HELP && o->kind != OPT_KIND_FLAG;
}

/* "  -i, --interval SEC" */
static int help_left(const struct opt *o, char *buf, size_t len)
{
	char s[8] = "    ";

	if (o->short_name)
		snprintf(s, sizeof(s), "-%c, ", o->short_name);
	return snprintf(buf, len, "  %s--%s%s%s", s, o->name, o->metavar ? " " : "",
			o->metavar ? o->metavar : "");
}

void opts_help(const struct opts_cmd *cmd, FILE *f)
{
	fprintf(f, "usage: %s\n\n%s\n\n", cmd->synopsis, cmd->about);
	for (const struct opt *o = cmd->opts; o->name; o++) {
		const char *line = o->help ? o->help : "";
		char left[128];
		int n = help_left(o, left, sizeof(left));

		/* a long one is followed by two spaces, the text no longer in its column */
		fprintf(f, "%s%*s", left, n < HELP_COL ? HELP_COL - n : 2, "");
		for (;;) {
			size_t len = strcspn(line, "\n");

			fprintf(f, "%.*s\n", (int)len, line);
			if (!line[len])
				break;
			line += len + 1;
			fprintf(f, "%*s", HELP_COL, "");
		}
	}
	if (cmd->epilog)
		fprintf(f, "\n%s\n", cmd->epilog);
}

/* getopt_long()'s tables: the number of options, or -1 when they do not fit */
static int getopt_tables(const struct opts_cmd *cmd, struct option *longopts, char *shorts)
{
	int n = 0;

	*shorts++ = ':'; /* a missing value is ':', not '?' */
	for (const struct opt *o = cmd->opts; o->name; o++, n++) {
		if (n == OPTS_MAX)
			return -E2BIG;
		longopts[n] =
			(struct option){ o->name, takes_value(o) ? required_argument : no_argument,
					 NULL, LONG_VAL(n) };
		if (o->short_name) {
			*shorts++ = o->short_name;
			if (takes_value(o))
				*shorts++ = ':';
		}
	}
	longopts[n] = (struct option){ 0 };
	*shorts = '\0';
	return n;
}

static const struct opt *opt_of(const struct opts_cmd *cmd, int n, int c)
{
	if (c >= LONG_VAL(0) && c < LONG_VAL(n))
		return &cmd->opts[c - LONG_VAL(0)];
	for (const struct opt *o = cmd->opts; c != ':' && c != '?' && o->name; o++)
		if (o->short_name == c)
			return o;
	return NULL;
}

static void *field_of(const struct opt *o, void *cfg)
{
	return o->ptr ? o->ptr : (char *)cfg + o->off;
}

/* a number in [min, max] */
static int parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	if (!*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || isnan(v) || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_choice(const struct opt_choice *c, const char *s, uint32_t *out)
{
	for (; c->name; c++) {
		if (!strcasecmp(s, c->name)) {
			*out = c->value;
			return 0;
		}
	}
	return -EINVAL;
}

/* the option's value (arg) into its field: 0, or not 0 for a bad value */
static int set_value(const struct opt *o, const char *arg, void *cfg)
{
	void *field = field_of(o, cfg);
	size_t *count;

	switch (o->kind) {
	case OPT_KIND_FLAG:
		*(bool *)field = true;
		return 0;
	case OPT_KIND_U64:
		return parse_u64(arg, o->min, o->max, field);
	case OPT_KIND_DOUBLE:
		return parse_double(arg, o->dmin, o->dmax, field);
	case OPT_KIND_STRING:
		if (!*arg || (o->max && strlen(arg) > o->max))
			return -EINVAL;
		*(const char **)field = arg;
		return 0;
	case OPT_KIND_STRINGS:
		count = (size_t *)((char *)cfg + o->count_off);
		if (!*arg || *count >= o->max)
			return -EINVAL;
		((const char **)field)[(*count)++] = arg;
		return 0;
	case OPT_KIND_CHOICE:
		return parse_choice(o->choices, arg, field);
	case OPT_KIND_FUNC:
		return o->parse(arg, cfg);
	case OPT_KIND_HELP:
		break;
	}
	return -EINVAL;
}

/* the flag called name is set */
static bool flag_set(const struct opts_cmd *cmd, const char *name, void *cfg)
{
	for (const struct opt *o = cmd->opts; o->name; o++)
		if (o->kind == OPT_KIND_FLAG && !strcmp(o->name, name))
			return *(bool *)field_of(o, cfg);
	return false;
}

int opts_parse(const struct opts_cmd *cmd, int argc, char **argv, void *cfg)
{
	struct option longopts[OPTS_MAX + 1];
	char shorts[2 * OPTS_MAX + 2], optbuf[3];
	const struct opt *needy = NULL; /* the latest option given that needs a flag */
	int n, c;

	n = getopt_tables(cmd, longopts, shorts);
	if (n < 0) {
		opts_error(cmd, "more than %d options: raise OPTS_MAX", OPTS_MAX);
		return -EINVAL;
	}
	opterr = 0;
	optind = 0; /* from argv[1], getopt's state reset: a process may parse twice */
	while ((c = getopt_long(argc, argv, shorts, longopts, NULL)) != -1) {
		const struct opt *o = opt_of(cmd, n, c);

		if (c == ':') {
			opts_error(cmd, "%s needs a value", bad_option(argv, optbuf));
			return -EINVAL;
		}
		if (!o) {
			opts_error(cmd, "unknown option '%s'", bad_option(argv, optbuf));
			return -EINVAL;
		}
		if (o->kind == OPT_KIND_HELP) {
			opts_help(cmd, stdout);
			return 1;
		}
		if (set_value(o, optarg, cfg)) {
			opts_error(cmd, "bad value '%s' for %s%s%s", optarg,
				   option_of_value(argv, optind), o->why ? ": " : "",
				   o->why ? o->why : "");
			return -EINVAL;
		}
		if (o->needs)
			needy = o;
	}
	if (!cmd->args && optind < argc) {
		opts_error(cmd, "unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	if (needy && !flag_set(cmd, needy->needs, cfg)) {
		opts_error(cmd, "--%s needs --%s", needy->name, needy->needs);
		return -EINVAL;
	}
	return 0;
}
