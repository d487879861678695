// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ephport: the command line, dispatching to subcommands. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ephport.h"
#include "agent.h"
#include "query.h"
#include "top.h"

static const struct cmd {
	const char *name;
	int (*func)(int argc, char **argv);
	const char *summary;
	const struct opts_cmd *opts; /* for the completion */
} cmds[] = {
	{ "agent", cmd_agent, "count ephemeral port usage in the kernel and print JSON lines",
	  &agent_cmd },
	{ "query", cmd_query, "show the running agent's live per-destination counts", &query_cmd },
	{ "top", cmd_top, "a live view of the running agent: nearest to exhaustion first",
	  &top_cmd },
	{ "guard", cmd_guard, "show the running agent's connect guard: 'ephport guard status'",
	  &guard_cmd },
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

/* hidden: 'ephport completion bash' writes deploy/completion/ephport.bash (make completion) */
static int completion(int argc, char **argv)
{
	const struct opts_cmd *opts[NCMDS];

	if (argc != 2 || strcmp(argv[1], "bash")) {
		fputs("usage: ephport completion bash\n", stderr);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < NCMDS; i++)
		opts[i] = cmds[i].opts;
	if (opts_complete_bash(stdout, opts, NCMDS)) {
		eph_err("cannot write the completion: %s", strerror(errno));
		return 1;
	}
	return 0;
}

static void usage(FILE *f)
{
	fputs("usage: ephport [--version] [--help] COMMAND [ARGS]\n", f);
}

static void help(void)
{
	usage(stdout);
	fputs("\nWatch ephemeral port usage per destination on Linux.\n\nCommands:\n", stdout);
	for (size_t i = 0; i < NCMDS; i++)
		printf("  %-8s %s\n", cmds[i].name, cmds[i].summary);
	fputs("\n'ephport COMMAND --help' tells more about each.\n", stdout);
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : NULL;

	if (!name) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
		printf("ephport %s\n", EPHPORT_VERSION);
		return 0;
	}
	if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
		help();
		return 0;
	}
	for (size_t i = 0; i < NCMDS; i++)
		if (!strcmp(name, cmds[i].name))
			return cmds[i].func(argc - 1, argv + 1);
	if (!strcmp(name, "completion"))
		return completion(argc - 1, argv + 1);
	fprintf(stderr, "ephport: unknown command '%s'\n", name);
	usage(stderr);
	return EXIT_USAGE;
}
