// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * PID 1 of the make vmtest guest, linked static into a small initramfs.
 *
 * Loads the modules listed in /modules (one file name per line, dependencies
 * first), mounts the host's root file system from the 9p share "hostroot"
 * read-only with a tmpfs overlay on top, so the guest writes into its own memory,
 * moves into it and runs the guest script the kernel command line names
 * (ephport.guest=PATH). It reaps orphans while the script runs and powers the VM
 * off when it ends, so the host's qemu exits with the guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *what, const char *arg)
{
	fprintf(stderr, "vm-init: %s%s%s%s\n", what, arg ? " " : "", arg ? arg : "",
		errno ? ": " : "");
	if (errno)
		fprintf(stderr, "vm-init:   %s\n", strerror(errno));
}

static void power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

static void must(int ok, const char *what, const char *arg)
{
	if (ok)
		return;
	say(what, arg);
	power_off();
}

static void load_modules(void)
{
	char line[256];
	FILE *f = fopen("/modules", "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		int fd;

		line[strcspn(line, "\n")] = '\0';
		if (!line[0])
			continue;
		fd = open(line, O_RDONLY | O_CLOEXEC);
		errno = 0;
		/* built in, or loaded already: both are fine */
		if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) && errno != EEXIST))
			say("cannot load", line);
		if (fd >= 0)
			close(fd);
	}
	fclose(f);
}

/* the value of NAME=VALUE on the kernel command line, into buf */
static int cmdline_arg(const char *name, char *buf, size_t size)
{
	char cmd[4096], *tok, *save = NULL;
	size_t len = strlen(name);
	ssize_t n;
	int fd = open("/proc/cmdline", O_RDONLY);

	if (fd < 0)
		return -1;
	n = read(fd, cmd, sizeof(cmd) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	cmd[n] = '\0';
	for (tok = strtok_r(cmd, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		if (!strncmp(tok, name, len) && tok[len] == '=') {
			snprintf(buf, size, "%s", tok + len + 1);
			return 0;
		}
	}
	return -1;
}

int main(void)
{
	char guest[512];
	pid_t child;
	int status = 1;

	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	errno = 0;
	load_modules();

	must(cmdline_arg("ephport.guest", guest, sizeof(guest)) == 0,
	     "no ephport.guest= on the kernel command line", NULL);
	mkdir("/lower", 0755);
	mkdir("/rw", 0755);
	mkdir("/root", 0755);
	must(!mount("hostroot", "/lower", "9p", MS_RDONLY,
		    "trans=virtio,version=9p2000.L,msize=524288,cache=loose"),
	     "mount the host root (9p)", NULL);
	must(!mount("tmpfs", "/rw", "tmpfs", 0, "mode=0755"), "mount tmpfs", "/rw");
	mkdir("/rw/upper", 0755);
	mkdir("/rw/work", 0755);
	must(!mount("overlay", "/root", "overlay", 0,
		    "lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work"),
	     "mount the overlay root", NULL);
	must(!mount("/dev", "/root/dev", NULL, MS_MOVE, NULL), "move", "/dev");
	must(!mount("/proc", "/root/proc", NULL, MS_MOVE, NULL), "move", "/proc");
	must(!mount("/sys", "/root/sys", NULL, MS_MOVE, NULL), "move", "/sys");
	must(!chdir("/root"), "chdir", "/root");
	must(!mount(".", "/", NULL, MS_MOVE, NULL), "move the new root onto", "/");
	must(!chroot("."), "chroot", "/root");
	must(!chdir("/"), "chdir", "/");

	child = fork();
	if (child == 0) {
		char *argv[] = { "/bin/bash", guest, NULL };
		char *envp[] = {
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=/root", "TERM=dumb", "LANG=C.UTF-8", NULL
		};

		setsid();
		execve(argv[0], argv, envp);
		say("exec", guest);
		_exit(127);
	}
	must(child > 0, "fork", NULL);
	/* PID 1 adopts every orphan: reap them all until the script is done */
	for (;;) {
		int st;
		pid_t pid = wait(&st);

		if (pid == child) {
			status = st;
			break;
		}
		if (pid < 0 && errno == ECHILD)
			break;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fprintf(stderr, "vm-init: the guest script ended with status %d\n", status);
	kill(-1, SIGKILL);
	power_off();
	return 0;
}
