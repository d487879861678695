// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Container ids and pod UIDs from cgroup paths, and cgroup ids resolved on this machine. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "tuples.h"

#define CID	 "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899"
#define CID_UP	 "3F4E5D6C7B8A99887766554433221100FFEEDDCCBBAA00112233445566778899"
#define CID2	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1"
#define CID_63	 "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa0011223344556677889"
#define CID_NHEX "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa0011223344556677889g"
#define UID	 "0f1c7a6e-5d2b-4b8e-9f3a-1a2b3c4d5e6f"
#define UID_US	 "0f1c7a6e_5d2b_4b8e_9f3a_1a2b3c4d5e6f"
#define UID_UP	 "0F1C7A6E_5D2B_4B8E_9F3A_1A2B3C4D5E6F"
#define KP_BU	 "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_US ".slice"

static const struct {
	const char *path, *cid, *uid;
} cases[] = {
	/* kubernetes, cgroupfs driver */
	{ "/kubepods/burstable/pod" UID "/" CID, CID, UID },
	{ "/kubepods/pod" UID "/" CID, CID, UID },
	{ "/kubepods/besteffort/pod" UID "/" CID, CID, UID },
	{ "/kubepods/burstable/pod" UID, "", UID }, /* the pod's own cgroup */
	/* kubernetes, systemd driver */
	{ KP_BU "/cri-containerd-" CID ".scope", CID, UID },
	{ "/kubepods.slice/kubepods-pod" UID_US ".slice/cri-containerd-" CID ".scope", CID, UID },
	{ "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_US
	  ".slice/crio-" CID ".scope",
	  CID, UID },
	{ KP_BU "/crio-conmon-" CID ".scope", CID, UID },
	{ KP_BU "/docker-" CID ".scope", CID, UID },
	{ KP_BU "/cri-containerd-" CID ".scope/init.scope", CID, UID },
	{ "/ephport-test-123" KP_BU "/cri-containerd-" CID ".scope", CID, UID },
	{ "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_UP
	  ".slice/cri-containerd-" CID_UP ".scope",
	  CID, UID },
	/* docker, podman, nesting: the innermost wins */
	{ "/docker/" CID, CID, "" },
	{ "/system.slice/docker-" CID ".scope", CID, "" },
	{ "/machine.slice/libpod-" CID ".scope/container", CID, "" },
	{ "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" CID ".scope", CID,
	  "" },
	{ "/docker/" CID2 "/docker/" CID, CID, "" },
	{ "//docker//" CID "/", CID, "" },
	/* no container */
	{ "/user.slice/user-1000.slice/session-2.scope", "", "" },
	{ "/", "", "" },
	{ "", "", "" },
	{ "/system.slice/nginx.service", "", "" },
	{ "/kubepods.slice/kubepods-burstable.slice", "", "" },
	/* almost */
	{ "/docker/" CID_63, "", "" },
	{ "/docker/" CID "a", "", "" },
	{ "/docker/a" CID, "", "" },
	{ "/docker/" CID_NHEX, "", "" },
	{ "/system.slice/docker" CID ".scope", "", "" },
	{ "/system.slice/docker-" CID_63 ".scope", "", "" },
	{ "/system.slice/docker-" CID ".scopex", "", "" },
	{ "/kubepods/pod0f1c7a6e5-d2b-4b8e-9f3a-1a2b3c4d5e6f", "", "" },
	{ "/kubepods/pod0f1c7a6e-5d2b_4b8e-9f3a-1a2b3c4d5e6f", "", "" },
	{ "/kubepods/pod0f1c7a6e-5d2b-4b8e-9f3a-1a2b3c4d5e6g", "", "" },
	{ "/kubepods/pod0f1c7a6e-5d2b-4b8e-9f3a-1a2b3c4d5e6", "", "" },
	{ "/kubepods/pod" UID "0", "", "" },
	{ "/kubepods/xpod" UID, "", "" },
	{ "/kubepods/" UID, "", "" },
	{ "/kubepods/podcast/pod-" UID, "", "" },
	{ "/system.slice/podman.service", "", "" },
};

Test(cgroup_parse, table)
{
	struct cgroup_ids ids;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&ids, 'x', sizeof(ids));
		cr_assert_eq(cgroup_parse_ids(cases[i].path, &ids), 0, "%s", cases[i].path);
		cr_assert_str_eq(ids.container_id, cases[i].cid, "%s", cases[i].path);
		cr_assert_str_eq(ids.pod_uid, cases[i].uid, "%s", cases[i].path);
	}
}

/* the texts the resolver reads: /proc/self/mountinfo, /proc/PID/cgroup */
static FILE *text(const char *s)
{
	FILE *f = fmemopen((void *)s, strlen(s), "r");

	cr_assert_not_null(f);
	return f;
}

#define V1   "25 22 0:22 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu\n"
#define V2   "30 22 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw\n"
#define SUB  "31 22 0:26 /a/b /mnt/sub rw - cgroup2 cgroup2 rw\n"
#define ESC  "32 22 0:26 / /mnt/with\\040space rw - cgroup2 none rw\n"
#define FAKE "33 22 0:27 / /mnt/fake rw - tmpfs cgroup2 rw\n"

Test(cgroup_text, mountinfo)
{
	static const struct {
		const char *text, *mount, *root;
	} cases[] = {
		{ V1 V2, "/sys/fs/cgroup/unified", "" },  /* hybrid */
		{ SUB V2, "/sys/fs/cgroup/unified", "" }, /* the whole tree wins */
		{ V2 SUB, "/sys/fs/cgroup/unified", "" },
		{ SUB, "/mnt/sub", "/a/b" },
		{ ESC V2, "/mnt/with space", "" }, /* the first of the whole tree */
		{ FAKE V1 "x\n - cgroup2\n" SUB, "/mnt/sub", "/a/b" },
	};
	char mount[PATH_MAX], root[CGROUP_PATH_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		FILE *f = text(cases[i].text);

		cr_assert_eq(cgroup2_mount_parse(f, mount, root), 0, "%zu", i);
		cr_assert_str_eq(mount, cases[i].mount, "%zu", i);
		cr_assert_str_eq(root, cases[i].root, "%zu", i);
		fclose(f);
	}
	FILE *f = text(V1 FAKE);

	cr_assert_eq(cgroup2_mount_parse(f, mount, root), -ENOENT);
	fclose(f);
}

Test(cgroup_text, proc_pid_cgroup)
{
	static char long_line[600];
	char path[512];
	FILE *f;

	f = text("12:cpu,cpuacct:/x\n0::/user.slice/a.scope\n0::/second\n");
	cr_assert_eq(cgroup_v2_path(f, path, sizeof(path)), 0);
	cr_assert_str_eq(path, "/user.slice/a.scope");
	fclose(f);
	f = text("0::/");
	cr_assert_eq(cgroup_v2_path(f, path, sizeof(path)), 0);
	cr_assert_str_eq(path, "/");
	fclose(f);
	f = text("1:name=systemd:/a\n");
	cr_assert_eq(cgroup_v2_path(f, path, sizeof(path)), -ENOENT);
	fclose(f);
	memcpy(long_line, "0::/", 4);
	memset(long_line + 4, 'a', sizeof(long_line) - 5);
	f = text(long_line);
	cr_assert_eq(cgroup_v2_path(f, path, sizeof(path)), -ENAMETOOLONG);
	fclose(f);
}

/* a namespace's ids, packed into its netns_info value and back, as query and metrics read them */
Test(cgroup_ids, pack_round_trip)
{
	static const struct cgroup_ids cases[] = {
		{ "a92c431172f44965b955a833ed17fbc0853a45a16fb34e2e8aa9295e180c660e",
		  "e949e18d-578d-4bf7-bc98-7c42b5c5eaaa" },
		{ "0000000000000000000000000000000000000000000000000000000000000000",
		  "ffffffff-ffff-ffff-ffff-ffffffffffff" },
		{ "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "" },
		{ "", "00000000-0000-0000-0000-000000000001" },
		{ "", "" },
	};
	struct netns_pod p;
	struct cgroup_ids back;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&p, 0xa5, sizeof(p));
		cgroup_ids_pack(&cases[i], &p);
		cr_assert_eq(p.has_container, cases[i].container_id[0] != '\0');
		cr_assert_eq(p.has_pod, cases[i].pod_uid[0] != '\0');
		memset(&back, 'x', sizeof(back));
		cgroup_ids_unpack(&p, &back);
		cr_assert_str_eq(back.container_id, cases[i].container_id);
		cr_assert_str_eq(back.pod_uid, cases[i].pod_uid);
	}
	/* the bytes are the digits: the first container byte of case 2 is 0x01 */
	cgroup_ids_pack(&cases[2], &p);
	cr_assert_eq(p.container_id[0], 0x01);
	cr_assert_eq(p.container_id[31], 0xef);
	cr_assert_eq(p.pod_uid[0], 0);
}

/* no process, or one that is gone: no ids, and why */
Test(cgroup_ids, of_pid)
{
	struct cgroup_ids ids;

	cr_assert_eq(cgroup_ids_of_pid(0, &ids), -ESRCH);
	cr_assert_str_eq(ids.container_id, "");
	cr_assert_eq(cgroup_ids_of_pid(INT32_MAX, &ids), -ENOENT);
	cr_assert_str_eq(ids.pod_uid, "");
}

Test(cgroup_parse, null_and_garbage)
{
	static char buf[9000];
	struct cgroup_ids ids;
	unsigned int seed = 1;
	size_t n = 0;

	cr_assert_eq(cgroup_parse_ids("/", NULL), -EINVAL);
	cr_assert_eq(cgroup_parse_ids(NULL, &ids), 0);
	cr_assert_str_eq(ids.container_id, "");
	cr_assert_str_eq(ids.pod_uid, "");

	memset(buf, 'a', sizeof(buf) - 1); /* one hex run far longer than an id */
	cr_assert_eq(cgroup_parse_ids(buf, &ids), 0);
	cr_assert_str_eq(ids.container_id, "");

	for (size_t i = 0; i < sizeof(buf) - 1; i++) { /* any byte but NUL */
		seed = seed * 1103515245 + 12345;
		buf[i] = (char)((seed >> 16) % 255 + 1);
	}
	cr_assert_eq(cgroup_parse_ids(buf, &ids), 0);

	/* a deep path still gives the ids at its end */
	while (n + 200 < sizeof(buf))
		n += (size_t)sprintf(buf + n, "/kubepods/pod-/docker-.scope");
	sprintf(buf + n, "/pod" UID "/" CID);
	cr_assert_eq(cgroup_parse_ids(buf, &ids), 0);
	cr_assert_str_eq(ids.container_id, CID);
	cr_assert_str_eq(ids.pod_uid, UID);
}

/* the real machine: a test cgroup "/ephport-test-PID" with "inner" under it */
static struct cgroup_resolver *res;
static char outer[PATH_MAX], inner[PATH_MAX], outer_rel[64], inner_rel[80];
static __u64 outer_id, inner_id;
static pid_t child = -1;

static __u64 inode(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : st.st_ino;
}

static void setup(void)
{
	if (cgroup_resolver_open(&res))
		return;
	snprintf(outer_rel, sizeof(outer_rel), "/ephport-test-%d", (int)getpid());
	snprintf(inner_rel, sizeof(inner_rel), "%s/inner", outer_rel);
	snprintf(outer, sizeof(outer), "%s%s", cgroup_resolver_mount(res), outer_rel);
	snprintf(inner, sizeof(inner), "%s%s", cgroup_resolver_mount(res), inner_rel);
	if (!mkdir(outer, 0755) && !mkdir(inner, 0755)) {
		outer_id = inode(outer);
		inner_id = inode(inner);
	}
}

static void reap_child(void)
{
	if (child <= 0)
		return;
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
}

static void teardown(void)
{
	reap_child();
	rmdir(inner);
	rmdir(outer);
	cgroup_resolver_close(res);
}

static void need_cgroup2(void)
{
	if (!res)
		cr_skip_test("cgroup2 is not mounted");
	cr_assert(outer_id && inner_id, "cannot make cgroups under %s: %s",
		  cgroup_resolver_mount(res), strerror(errno));
}

/* a child that sleeps in the cgroup dir until killed, or until the test process dies */
static pid_t sleeper_in(const char *dir)
{
	char procs[PATH_MAX + 16];
	FILE *f;

	child = fork();
	cr_assert_geq(child, 0, "fork: %s", strerror(errno));
	if (!child) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
	f = fopen(procs, "w");
	cr_assert(f, "%s: %s", procs, strerror(errno));
	fprintf(f, "%d\n", (int)child);
	cr_assert_eq(fclose(f), 0, "moving %d into %s: %s", (int)child, dir, strerror(errno));
	return child;
}

TestSuite(cgroup_resolve, .init = setup, .fini = teardown);

Test(cgroup_resolve, walk_then_cache)
{
	struct cgroup_resolver_stats st;
	char path[CGROUP_PATH_MAX];

	need_cgroup2();
	cr_assert_eq(cgroup_resolve(res, inner_id, 0, path, sizeof(path)), 0);
	cr_assert_str_eq(path, inner_rel);
	cr_assert_eq(cgroup_resolve(res, outer_id, 0, path, sizeof(path)), 0);
	cr_assert_str_eq(path, outer_rel);
	cr_assert_eq(cgroup_resolve(res, inode(cgroup_resolver_mount(res)), 0, path, sizeof(path)),
		     0);
	cr_assert_str_eq(path, "/");
	cgroup_resolver_stats(res, &st);
	cr_assert_eq(st.walks, 3);
	cr_assert_eq(st.cached, 0);

	cr_assert_eq(cgroup_resolve(res, inner_id, 0, path, sizeof(path)), 0);
	cr_assert_str_eq(path, inner_rel);
	cgroup_resolver_stats(res, &st);
	cr_assert_eq(st.walks, 3);
	cr_assert_eq(st.cached, 1);
	cr_assert_eq(cgroup_resolve(res, inner_id, 0, path, 4), -ENAMETOOLONG);
}

Test(cgroup_resolve, by_pid)
{
	struct cgroup_resolver_stats st;
	char path[CGROUP_PATH_MAX];
	pid_t pid;

	need_cgroup2();
	pid = sleeper_in(inner);
	cr_assert_eq(cgroup_resolve(res, inner_id, pid, path, sizeof(path)), 0);
	cr_assert_str_eq(path, inner_rel);
	cgroup_resolver_stats(res, &st);
	cr_assert_eq(st.from_pid, 1);
	cr_assert_eq(st.walks, 0);
}

Test(cgroup_resolve, pid_moved_or_gone)
{
	struct cgroup_resolver_stats st;
	char path[CGROUP_PATH_MAX];
	pid_t pid;

	need_cgroup2();
	pid = sleeper_in(inner);
	/* the event came from outer, the process has moved on to inner since */
	cr_assert_eq(cgroup_resolve(res, outer_id, pid, path, sizeof(path)), 0);
	cr_assert_str_eq(path, outer_rel);
	reap_child();
	child = -1;
	cr_assert_eq(cgroup_resolve(res, inner_id, pid, path, sizeof(path)), 0);
	cr_assert_str_eq(path, inner_rel);
	cgroup_resolver_stats(res, &st);
	cr_assert_eq(st.from_pid, 0);
	cr_assert_eq(st.walks, 2);
}

Test(cgroup_resolve, unknown_and_deleted)
{
	struct cgroup_resolver_stats st;
	char path[CGROUP_PATH_MAX], gone[PATH_MAX + 8];
	__u64 gone_id;

	need_cgroup2();
	snprintf(gone, sizeof(gone), "%s/gone", outer);
	cr_assert_eq(mkdir(gone, 0755), 0, "%s: %s", gone, strerror(errno));
	gone_id = inode(gone);
	cr_assert_eq(rmdir(gone), 0);

	cr_assert_eq(cgroup_resolve(res, 0, 0, path, sizeof(path)), -ENOENT);
	cr_assert_eq(cgroup_resolve(res, UINT64_MAX - 1, getpid(), path, sizeof(path)), -ENOENT);
	cr_assert_eq(cgroup_resolve(res, gone_id, 0, path, sizeof(path)), -ENOENT);
	cgroup_resolver_stats(res, &st);
	cr_assert_eq(st.walks, 2);
	cr_assert_eq(st.missing, 2);
	/* a storm of the same misses does not walk again */
	for (int i = 0; i < 100; i++)
		cr_assert_eq(cgroup_resolve(res, gone_id, 0, path, sizeof(path)), -ENOENT);
	cgroup_resolver_stats(res, &st);
	cr_assert_eq(st.walks, 2);
	cr_assert_eq(st.cached, 100);
}
