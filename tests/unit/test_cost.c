// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The agent's cost: numbers out of /proc texts (map fdinfo, status, a sysctl). */
#include <criterion/criterion.h>
#include <errno.h>

#include "cost.h"
#include "kernel.h"

/* a map's fdinfo as Linux 6.18 writes it */
static const char fdinfo[] = "pos:\t0\n"
			     "flags:\t02000002\n"
			     "mnt_id:\t17\n"
			     "ino:\t1039\n"
			     "map_type:\t1\n"
			     "key_size:\t8\n"
			     "value_size:\t64\n"
			     "max_entries:\t262144\n"
			     "map_flags:\t0x1\n"
			     "map_extra:\t0x0\n"
			     "memlock:\t4195328\n"
			     "map_id:\t25614\n"
			     "frozen:\t0\n";

/* the start of /proc/self/status */
static const char status[] = "Name:\tephport\n"
			     "Umask:\t0022\n"
			     "State:\tS (sleeping)\n"
			     "VmPeak:\t   90232 kB\n"
			     "VmSize:\t   90096 kB\n"
			     "VmLck:\t       0 kB\n"
			     "VmHWM:\t   14900 kB\n"
			     "VmRSS:\t    4424 kB\n"
			     "RssAnon:\t     812 kB\n"
			     "Threads:\t2\n";

Test(proc_field, fdinfo_numbers)
{
	__u64 v = 0;

	cr_assert_eq(proc_field(fdinfo, "memlock", "", &v), 0);
	cr_assert_eq(v, 4195328);
	cr_assert_eq(proc_field(fdinfo, "max_entries", "", &v), 0);
	cr_assert_eq(v, 262144);
	cr_assert_eq(proc_field(fdinfo, "pos", "", &v), 0); /* the first line */
	cr_assert_eq(v, 0);
	cr_assert_eq(proc_field(fdinfo, "frozen", "", &v), 0); /* the last line */
	cr_assert_eq(v, 0);
}

Test(proc_field, status_kib)
{
	__u64 v = 0;

	cr_assert_eq(proc_field(status, "VmRSS", " kB", &v), 0);
	cr_assert_eq(v, 4424);
	cr_assert_eq(proc_field(status, "VmHWM", " kB", &v), 0);
	cr_assert_eq(v, 14900);
	/* the unit must be there, and nothing after it */
	cr_assert_eq(proc_field("VmRSS:\t 12\n", "VmRSS", " kB", &v), -EINVAL);
	cr_assert_eq(proc_field("VmRSS:\t 12 MB\n", "VmRSS", " kB", &v), -EINVAL);
	cr_assert_eq(proc_field("VmRSS:\t 12 kBx\n", "VmRSS", " kB", &v), -EINVAL);
	cr_assert_eq(v, 14900); /* untouched by a failure */
}

Test(proc_field, whole_keys_at_line_starts_only)
{
	__u64 v = 7;

	/* a key that is only the start of another, or inside a line, is not it */
	cr_assert_eq(
		proc_field("memlock_x:\t5\nxmemlock:\t6\nname: memlock:\t7\n", "memlock", "", &v),
		-ENOENT);
	cr_assert_eq(proc_field("VmRSSx:\t5 kB\n", "VmRSS", " kB", &v), -ENOENT);
	cr_assert_eq(proc_field(fdinfo, "memloc", "", &v), -ENOENT);
	cr_assert_eq(proc_field(fdinfo, "Memlock", "", &v), -ENOENT);
	cr_assert_eq(v, 7);
	/* the first of two lines with the key wins */
	cr_assert_eq(proc_field("a:\t1\na:\t2\n", "a", "", &v), 0);
	cr_assert_eq(v, 1);
}

Test(proc_field, garbage)
{
	static const char *const bad[] = {
		"memlock:\n",	     "memlock:\t\n",
		"memlock:",	     "memlock:\tabc\n",
		"memlock:\t-5\n",    "memlock:\t+5\n",
		"memlock:\t0x10\n",  "memlock:\t12 34\n",
		"memlock:\t12a\n",   "memlock:\t99999999999999999999999\n", /* beyond 64 bits */
		"memlock:\t4195328", /* cut short: no newline */
		"memlock \t5\n",
	};
	__u64 v = 42;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err = proc_field(bad[i], "memlock", "", &v);

		cr_assert(err == -EINVAL || err == -ENOENT, "%s: %d", bad[i], err);
	}
	cr_assert_eq(proc_field("memlock:\t5\n", "memlock", "", &v), 0);
	cr_assert_eq(v, 5);
	v = 42;
	cr_assert_eq(proc_field("", "memlock", "", &v), -ENOENT);
	cr_assert_eq(proc_field("\n\n\n", "memlock", "", &v), -ENOENT);
	cr_assert_eq(proc_field("\xff\xfe:\t1\n", "memlock", "", &v), -ENOENT);
	cr_assert_eq(proc_field(NULL, "memlock", "", &v), -EINVAL);
	cr_assert_eq(proc_field(fdinfo, "", "", &v), -EINVAL);
	cr_assert_eq(proc_field(fdinfo, NULL, "", &v), -EINVAL);
	cr_assert_eq(proc_field(fdinfo, "memlock", NULL, &v), -EINVAL);
	cr_assert_eq(v, 42);
	/* the largest 64-bit value still fits */
	cr_assert_eq(proc_field("m:\t18446744073709551615\n", "m", "", &v), 0);
	cr_assert_eq(v, 18446744073709551615ull);
}

Test(proc_flag_on, sysctl_text)
{
	cr_assert(proc_flag_on("1\n"));
	cr_assert_not(proc_flag_on("0\n"));
	cr_assert_not(proc_flag_on(""));
	cr_assert_not(proc_flag_on("1"));
	cr_assert_not(proc_flag_on("10\n"));
	cr_assert_not(proc_flag_on("1\n1\n"));
	cr_assert_not(proc_flag_on(" 1\n"));
	cr_assert_not(proc_flag_on("yes\n"));
	cr_assert_not(proc_flag_on(NULL));
}

/* the agent's one look into /proc/kallsyms: the address of tw_timer_handler */
Test(kallsyms, finds_a_whole_name)
{
	static const char text[] = "ffffffff81000000 T _stext\n"
				   "ffffffff81a00000 t tw_timer_handler_x\n"
				   "garbage\n"
				   "ffffffff81b00010 t tw_timer_handler\n"
				   "ffffffffc0000000 t tw_timer_handler\t[mod]\n";
	FILE *f = fmemopen((void *)text, sizeof(text) - 1, "r");
	__u64 addr = 0;

	cr_assert_not_null(f);
	cr_assert_eq(kallsyms_find(f, "tw_timer_handler", &addr), 0);
	cr_assert_eq(addr, 0xffffffff81b00010ull);
	rewind(f);
	cr_assert_eq(kallsyms_find(f, "tcp_v4_connect", &addr), -ENOENT);
	fclose(f);
}
