// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * nshold: holds N network namespaces, each the namespace of a process of its own,
 * as an unprivileged user makes them with "unshare -rn sleep" (the agent finds a
 * namespace through the processes in it). Says "ready N" on stdout once all are
 * made, and ends them all when its standard input closes or it gets SIGINT or
 * SIGTERM; each child also dies with it (PR_SET_PDEATHSIG).
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_NAMESPACES 100000

int main(int argc, char **argv)
{
	char *end, b;
	long n;
	int ready[2];
	pid_t *kids;

	if (argc != 2 || (n = strtol(argv[1], &end, 10), *end) || n < 1 || n > MAX_NAMESPACES) {
		fprintf(stderr,
			"usage: nshold N (1-%d): hold N network namespaces until stdin closes\n",
			MAX_NAMESPACES);
		return 2;
	}
	kids = calloc(n, sizeof(*kids));
	if (!kids || pipe(ready)) {
		fprintf(stderr, "nshold: %s\n", strerror(errno));
		return 1;
	}
	for (long i = 0; i < n; i++) {
		kids[i] = fork();
		if (kids[i] < 0) {
			fprintf(stderr, "nshold: fork after %ld: %s\n", i, strerror(errno));
			n = i;
			break;
		}
		if (kids[i] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() == 1 || unshare(CLONE_NEWNET))
				_exit(1);
			/* one byte: this namespace exists */
			if (write(ready[1], "", 1) != 1)
				_exit(1);
			close(ready[1]);
			pause();
			_exit(0);
		}
	}
	close(ready[1]);
	for (long i = 0; i < n; i++)
		if (read(ready[0], &b, 1) != 1) {
			fprintf(stderr, "nshold: a child could not make its namespace\n");
			n = -1;
			break;
		}
	if (n > 0) {
		printf("ready %ld\n", n);
		fflush(stdout);
		/* until stdin closes, or a signal ends us (the children die with us) */
		while (read(0, &b, 1) > 0)
			;
	}
	for (long i = 0; i < labs(n); i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
	while (wait(NULL) > 0)
		;
	return n > 0 ? 0 : 1;
}
