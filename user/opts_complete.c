// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The bash completion, written from the commands' option tables (opts.h) by the
 * hidden 'ephport completion bash'; deploy/completion/ephport.bash is its output.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "opts.h"

/* a generated line longer than this goes on at the next one */
#define WIDTH 92

/* a list of words, wrapped */
struct words {
	FILE *f;
	int col;
	const char *sep;  /* between two words */
	const char *cont; /* instead of sep when the next word would pass WIDTH */
	int cont_col;	  /* the column after cont */
	int n;		  /* words so far */
};

static void word(struct words *w, const char *s)
{
	int len = (int)strlen(s), sep = w->n ? (int)strlen(w->sep) : 0;

	if (w->n && w->col + sep + len > WIDTH) {
		fputs(w->cont, w->f);
		w->col = w->cont_col;
	} else if (w->n) {
		fputs(w->sep, w->f);
		w->col += sep;
	}
	fputs(s, w->f);
	w->col += len;
	w->n++;
}

static void option_words(struct words *w, const struct opt *o)
{
	char s[64];

	snprintf(s, sizeof(s), "--%s", o->name);
	word(w, s);
	if (o->short_name) {
		snprintf(s, sizeof(s), "-%c", o->short_name);
		word(w, s);
	}
}

static bool takes_value(const struct opt *o)
{
	return o->kind != OPT_KIND_HELP && o->kind != OPT_KIND_FLAG;
}

/* how an option's value is completed; each choice option has its own arm */
enum value_group { VALUE_FILE, VALUE_DIR, VALUE_NONE, VALUE_CHOICE };

static enum value_group group_of(const struct opt *o)
{
	if (o->kind == OPT_KIND_CHOICE)
		return VALUE_CHOICE;
	if (o->complete == OPT_COMPLETE_FILE)
		return VALUE_FILE;
	return o->complete == OPT_COMPLETE_DIR ? VALUE_DIR : VALUE_NONE;
}

/* "        --output | -o)": the arm of the options of group g (of only, if set) */
static bool arm(FILE *f, const struct opts_cmd *cmd, enum value_group g, const struct opt *only)
{
	struct words w = { f, 8, " | ", " | \\\n            ", 12, 0 };

	for (const struct opt *o = cmd->opts; o->name; o++) {
		if (!takes_value(o) || group_of(o) != g || (only && o != only))
			continue;
		if (!w.n)
			fputs("        ", f);
		option_words(&w, o);
	}
	if (w.n)
		fputs(")\n", f);
	return w.n;
}

/* what follows an option with a value is that value: never another option */
static void value_arms(FILE *f, const struct opts_cmd *cmd)
{
	static const char *const body[] = {
		[VALUE_FILE] = "            _filedir\n",
		[VALUE_DIR] = "            _filedir -d\n",
		[VALUE_NONE] = "            # a number, a name or an address: nothing to offer\n",
	};
	bool any = false;

	for (const struct opt *o = cmd->opts; o->name; o++)
		any |= takes_value(o);
	if (!any)
		return;
	fputs("        case $prev in\n", f);
	for (enum value_group g = VALUE_FILE; g <= VALUE_NONE; g++)
		if (arm(f, cmd, g, NULL))
			fprintf(f, "%s            return\n            ;;\n", body[g]);
	for (const struct opt *o = cmd->opts; o->name; o++) {
		struct words w = { f, 40, " ", "\n                ", 16, 0 };

		if (!takes_value(o) || !arm(f, cmd, VALUE_CHOICE, o))
			continue;
		fputs("            COMPREPLY=($(compgen -W '", f);
		for (const struct opt_choice *c = o->choices; c->name; c++)
			word(&w, c->name);
		fputs("' -- \"$cur\"))\n            return\n            ;;\n", f);
	}
	fputs("        esac\n", f);
}

/* COMPREPLY from the long options; after a subcommand's parent, from it and --help */
static void compreply(FILE *f, const char *indent, const struct opts_cmd *cmd,
		      const char *subcommand)
{
	struct words w = { f, (int)strlen(indent) + 26, " ", "\n", 0, 0 };
	char cont[64];

	snprintf(cont, sizeof(cont), "\n%s    ", indent);
	w.cont = cont;
	w.cont_col = (int)strlen(indent) + 4;
	fprintf(f, "%sCOMPREPLY=($(compgen -W '", indent);
	if (subcommand)
		word(&w, subcommand);
	for (const struct opt *o = cmd->opts; o->name; o++) {
		char s[64];

		if (subcommand && o->kind != OPT_KIND_HELP)
			continue;
		snprintf(s, sizeof(s), "--%s", o->name);
		word(&w, s);
	}
	fputs("' -- \"$cur\"))\n", f);
}

static void command(FILE *f, const struct opts_cmd *cmd)
{
	fprintf(f, "    %s)\n", cmd->name);
	if (cmd->subcommand) {
		fputs("        if ((cword == 2)); then\n", f);
		compreply(f, "            ", cmd, cmd->subcommand);
		fputs("            return\n        fi\n", f);
		fprintf(f, "        [[ ${words[2]} == %s ]] || return\n", cmd->subcommand);
	}
	value_arms(f, cmd);
	fputs("        $split && return\n", f);
	compreply(f, "        ", cmd, NULL);
	fputs("        ;;\n", f);
}

static const char head[] =
	"# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)\n"
	"# bash completion for ephport(8). bash-completion loads it on demand from its "
	"completions\n"
	"# directory ('make install' puts it there); it uses bash-completion's helpers.\n"
	"# Written by 'ephport completion bash' from the option tables that 'ephport COMMAND\n"
	"# --help' prints ('make completion'): do not edit. Long options only are offered;\n"
	"# the short ones are understood.\n"
	"\n"
	"_ephport()\n"
	"{\n"
	"    local cur prev words cword split\n"
	"    _init_completion -s || return\n"
	"\n"
	"    if ((cword == 1)); then\n";

int opts_complete_bash(FILE *f, const struct opts_cmd *const *cmds, size_t n)
{
	struct words w = { f, 34, " ", "\n            ", 12, 0 };

	fputs(head, f);
	fputs("        COMPREPLY=($(compgen -W '", f);
	for (size_t i = 0; i < n; i++)
		word(&w, cmds[i]->name);
	word(&w, "--version");
	word(&w, "--help");
	fputs("' -- \"$cur\"))\n        return\n    fi\n\n    case ${words[1]} in\n", f);
	for (size_t i = 0; i < n; i++)
		command(f, cmds[i]);
	fputs("    esac\n} &&\n    complete -F _ephport ephport\n", f);
	return fflush(f) || ferror(f) ? -EIO : 0;
}
