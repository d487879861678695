// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * floor: loads floor.bpf.c, says "ready" on stdout, and keeps it attached
 * until SIGINT or SIGTERM: the tracepoint program, and the connect4 one on the
 * cgroup given as the only argument (the cgroup2 root, where the guard goes).
 * The benchmark reads their cost with bpftool.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "floor.skel.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct bpf_link *connect4 = NULL;
	struct floor_bpf *skel;
	int err, cg = -1;

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	skel = floor_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "floor: cannot load the BPF program: %s\n", strerror(errno));
		return 1;
	}
	bpf_program__set_autoattach(skel->progs.floor_connect4, false);
	err = floor_bpf__attach(skel);
	if (!err && argc > 1) {
		cg = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		connect4 =
			cg < 0 ? NULL : bpf_program__attach_cgroup(skel->progs.floor_connect4, cg);
		err = connect4 ? 0 : -errno;
	}
	if (err) {
		fprintf(stderr, "floor: cannot attach: %s\n", strerror(-err));
		floor_bpf__destroy(skel);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (!stop)
		pause();
	bpf_link__destroy(connect4);
	if (cg >= 0)
		close(cg);
	floor_bpf__destroy(skel);
	return 0;
}
