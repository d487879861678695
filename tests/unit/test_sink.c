// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The output (sink.c): what it refuses to open, and whole lines when the file
 * takes only part of one. RLIMIT_FSIZE stands in for a full disk: a write
 * across the limit is cut short, and the next fails with EFBIG.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "sink.h"

static char dir[] = "/tmp/ephport-sink-XXXXXX";

static void make_dir(void)
{
	cr_assert(mkdtemp(dir));
}

static void remove_dir(void)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

static void in_dir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* waits up to 5 s for what(s) to reach n */
static void wait_for(struct sink *s, __u64 (*what)(const struct sink *), __u64 n)
{
	for (int i = 0; i < 500 && what(s) < n; i++)
		usleep(10000);
	cr_assert_geq(what(s), n);
}

static off_t size_of(const char *path)
{
	struct stat st;

	return stat(path, &st) ? -1 : st.st_size;
}

static void wait_size(const char *path, off_t n)
{
	for (int i = 0; i < 500 && size_of(path) != n; i++)
		usleep(10000);
	cr_assert_eq(size_of(path), n);
}

static void fsize_limit(rlim_t n)
{
	struct rlimit rl;

	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
	rl.rlim_cur = n;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

Test(sink, line_cut_short_is_ended_before_the_next, .init = make_dir, .fini = remove_dir)
{
	char path[64], a[60], b[60], c[60], d[60], got[400];
	struct sink *s;
	FILE *f;
	size_t n;

	memset(a, 'a', 59);
	memset(b, 'b', 59);
	memset(c, 'c', 59);
	memset(d, 'd', 59);
	a[59] = b[59] = c[59] = d[59] = 0;
	in_dir(path, sizeof(path), "out.jsonl");
	signal(SIGXFSZ, SIG_IGN);
	fsize_limit(100); /* room for a's 60 bytes and 40 of b's */
	cr_assert_eq(sink_open(&s, path, 1 << 20), 0);
	sink_put(s, a);
	wait_size(path, 60);
	sink_put(s, b); /* 40 bytes, then EFBIG */
	wait_for(s, sink_errors, 1);
	sink_put(s, c); /* the disk is still full: not even the newline goes */
	wait_for(s, sink_errors, 2);
	wait_for(s, sink_dropped, 2); /* b and c */
	fsize_limit(RLIM_INFINITY);   /* space again */
	sink_put(s, d);
	sink_close(s, 2000);

	f = fopen(path, "r");
	cr_assert(f);
	n = fread(got, 1, sizeof(got) - 1, f);
	fclose(f);
	got[n] = 0;
	/* a whole, b's 40 bytes on a line of their own, d whole: nothing glued */
	cr_expect_eq(n, 60 + 41 + 60, "got %zu bytes: %s", n, got);
	cr_expect(!strncmp(got, a, 59) && got[59] == '\n', "%s", got);
	cr_expect(!strncmp(got + 60, b, 40) && got[100] == '\n', "b not ended: %s", got);
	cr_expect(!strncmp(got + 101, d, 59) && got[160] == '\n', "%s", got);
}

Test(sink, refuses_what_is_not_a_regular_file_of_its_own, .init = make_dir, .fini = remove_dir)
{
	char path[64], target[64];
	struct sink *s = NULL;

	in_dir(target, sizeof(target), "target");
	in_dir(path, sizeof(path), "link");
	cr_assert_eq(symlink(target, path), 0);
	cr_expect_eq(sink_open(&s, path, 4096), -ELOOP);
	cr_expect_eq(size_of(target), -1, "the symlink was followed");

	in_dir(path, sizeof(path), "fifo");
	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_expect_eq(sink_open(&s, path, 4096), -ENXIO, "no reader: refused at once");

	cr_expect_eq(sink_open(&s, dir, 4096), -EISDIR);
	cr_expect_eq(sink_open(&s, "/dev/null", 4096), -EINVAL);

	in_dir(path, sizeof(path), "theirs");
	cr_assert_eq(close(open(path, O_CREAT | O_WRONLY, 0666)), 0);
	if (geteuid() == 0) {
		cr_assert_eq(chown(path, 65534, 65534), 0);
		cr_expect_eq(sink_open(&s, path, 4096), -EPERM);
	}
	cr_expect_null(s);
}

Test(sink, failed_reopen_keeps_the_old_file, .init = make_dir, .fini = remove_dir)
{
	char path[64], old[64], elsewhere[64];
	struct sink *s;

	in_dir(path, sizeof(path), "out.jsonl");
	in_dir(old, sizeof(old), "out.jsonl.1");
	in_dir(elsewhere, sizeof(elsewhere), "elsewhere");
	cr_assert_eq(sink_open(&s, path, 4096), 0);
	sink_put(s, "one");
	wait_size(path, 4);
	/* rotated, and a symlink put in its place */
	cr_assert_eq(rename(path, old), 0);
	cr_assert_eq(symlink(elsewhere, path), 0);
	sink_reopen(s);
	sink_put(s, "two");
	wait_size(old, 8);
	cr_expect_eq(sink_errors(s), 1);
	cr_expect_eq(size_of(elsewhere), -1);
	/* the file is back: the next reopen takes it */
	cr_assert_eq(unlink(path), 0);
	sink_reopen(s);
	sink_put(s, "three");
	wait_size(path, 6);
	sink_close(s, 2000);
}
