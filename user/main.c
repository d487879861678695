// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ephport: the command line, dispatching to subcommands. */
#include <stdio.h>
#include <string.h>

#include "ephport.h"

static const struct cmd {
	const char *name;
	int (*func)(int argc, char **argv);
	const char *summary;
} cmds[] = {
	{ "agent", cmd_agent, "count ephemeral port usage in the kernel and print JSON lines" },
	{ "query", cmd_query, "show the running agent's live per-destination counts" },
	{ "guard", cmd_guard, "show the running agent's connect guard: 'ephport guard status'" },
};

static void usage(FILE *f)
{
	fputs("usage: ephport [--version] [--help] COMMAND [ARGS]\n", f);
}

static void help(void)
{
	usage(stdout);
	fputs("\nWatch ephemeral port usage per destination on Linux.\n\nCommands:\n", stdout);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
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
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(name, cmds[i].name))
			return cmds[i].func(argc - 1, argv + 1);
	fprintf(stderr, "ephport: unknown command '%s'\n", name);
	usage(stderr);
	return EXIT_USAGE;
}
