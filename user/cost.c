// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What the agent costs, for its stats line: each program's runs and run time,
 * each map's memory as the kernel counts it, the agent's CPU time and RSS.
 * A handful of syscalls a line: the /proc files stay open and are read again
 * from their start with pread().
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ephport.h"
#include "cost.h"
#include "tuples.skel.h"

#define COST_PROGS 7

int proc_field(const char *text, const char *key, const char *unit, __u64 *out)
{
	size_t klen, ulen;
	const char *line, *p;
	char *end;
	__u64 v;

	if (!text || !key || !*key || !unit)
		return -EINVAL;
	klen = strlen(key);
	ulen = strlen(unit);
	for (line = text; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : "") {
		if (strncmp(line, key, klen) || line[klen] != ':')
			continue;
		p = line + klen + 1;
		p += strspn(p, " \t");
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		errno = 0;
		v = strtoull(p, &end, 10);
		/* a line cut short (a truncated read) has no newline: not trusted */
		if (errno || strncmp(end, unit, ulen) || end[ulen] != '\n')
			return -EINVAL;
		*out = v;
		return 0;
	}
	return -ENOENT;
}

bool proc_flag_on(const char *text)
{
	return text && !strcmp(text, "1\n");
}

/* the file's text from its start, NUL-terminated; opened again after an error */
static int proc_read(struct proc_file *f, char *buf, size_t size)
{
	ssize_t n;
	int err;

	if (f->fd < 0)
		f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return -errno;
	n = pread(f->fd, buf, size - 1, 0);
	if (n < 0) {
		err = -errno;
		close(f->fd);
		f->fd = -1;
		return err;
	}
	buf[n] = '\0';
	return 0;
}

static void proc_close(struct proc_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

/* user and system time of every thread of the agent */
static __u64 cpu_us(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000ull + ru.ru_utime.tv_usec +
	       ru.ru_stime.tv_usec;
}

void cost_init(struct cost *c, struct tuples_bpf *skel)
{
	const struct bpf_map *maps[COST_MAPS] = {
		skel->maps.tuples,   skel->maps.sockets,   skel->maps.timewait, skel->maps.ports,
		skel->maps.local_tw, skel->maps.failures,  skel->maps.openers,	skel->maps.denials,
		skel->maps.cg_ports, skel->maps.guard_dst, skel->maps.notices,
	};

	c->skel = skel;
	snprintf(c->status.path, sizeof(c->status.path), "/proc/self/status");
	snprintf(c->bpf_stats.path, sizeof(c->bpf_stats.path),
		 "/proc/sys/kernel/bpf_stats_enabled");
	c->status.fd = c->bpf_stats.fd = -1;
	for (size_t i = 0; i < COST_MAPS; i++) {
		c->maps[i].map = maps[i];
		snprintf(c->maps[i].fdinfo.path, sizeof(c->maps[i].fdinfo.path),
			 "/proc/self/fdinfo/%d", bpf_map__fd(maps[i]));
		c->maps[i].fdinfo.fd = -1;
	}
	c->cpu_us = cpu_us();
	c->at_ns = mono_ns();
}

void cost_free(struct cost *c)
{
	proc_close(&c->status);
	proc_close(&c->bpf_stats);
	for (size_t i = 0; i < COST_MAPS; i++)
		proc_close(&c->maps[i].fdinfo);
}

struct prog_cost {
	const char *name;
	struct bpf_prog_info info;
};

/*
 * The programs that count events, and the guard's when it is loaded; -1 if one
 * is unreadable. recursion_misses are events the kernel skipped because a
 * program was already running on that CPU (state counts heal at the socket's
 * next change, TIME_WAIT counts at the next repair). run_cnt and run_time_ns
 * stay 0 unless BPF statistics are on (sysctl kernel.bpf_stats_enabled=1).
 */
static int progs_read(struct cost *c, struct prog_cost *out)
{
	const struct bpf_program *progs[COST_PROGS] = {
		c->skel->progs.tuples_set_state, c->skel->progs.tw_timer_start,
		c->skel->progs.tw_timer_cancel,	 c->skel->progs.connect_exit,
		c->skel->progs.bind_exit,	 c->skel->progs.guard_connect4,
		c->skel->progs.guard_connect6,
	};
	int n = 0;

	for (size_t i = 0; i < COST_PROGS; i++) {
		__u32 len = sizeof(out[n].info);
		int fd = bpf_program__fd(progs[i]);

		if (fd < 0)
			continue; /* not loaded: the guard's, without --guard */
		memset(&out[n].info, 0, sizeof(out[n].info));
		if (bpf_obj_get_info_by_fd(fd, &out[n].info, &len))
			return -1;
		out[n++].name = bpf_program__name(progs[i]);
	}
	return n;
}

static int progs_to_json(const struct prog_cost *p, int n, cJSON *obj)
{
	cJSON *all = cJSON_AddObjectToObject(obj, "programs"), *m;

	if (!all)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		__u64 cnt = p[i].info.run_cnt, ns = p[i].info.run_time_ns;

		if (!(m = cJSON_AddObjectToObject(all, p[i].name)) || ADD_NUM(m, "runs", cnt) ||
		    ADD_NUM(m, "run_time_ns", ns) ||
		    !(cnt ? cJSON_AddNumberToObject(m, "ns_per_run", round(ns * 10.0 / cnt) / 10) :
			    cJSON_AddNullToObject(m, "ns_per_run")) ||
		    ADD_NUM(m, "missed", p[i].info.recursion_misses))
			return -ENOMEM;
	}
	return 0;
}

/* max_entries and the kernel's memory figure (memlock) of each map, from its fdinfo */
static int maps_to_json(struct cost *c, cJSON *obj)
{
	cJSON *all = cJSON_AddObjectToObject(obj, "maps"), *m;
	char text[1024];
	__u64 max, bytes;

	if (!all)
		return -ENOMEM;
	for (size_t i = 0; i < COST_MAPS; i++) {
		if (proc_read(&c->maps[i].fdinfo, text, sizeof(text)) ||
		    proc_field(text, "max_entries", "", &max) ||
		    proc_field(text, "memlock", "", &bytes))
			continue;
		if (!(m = cJSON_AddObjectToObject(all, bpf_map__name(c->maps[i].map))) ||
		    ADD_NUM(m, "max_entries", max) || ADD_NUM(m, "bytes", bytes))
			return -ENOMEM;
	}
	return 0;
}

int cost_to_json(struct cost *c, size_t tuples, __u32 max_tuples, cJSON *obj)
{
	struct prog_cost progs[COST_PROGS];
	__u64 missed = 0, cnt = 0, ns = 0, cpu = cpu_us(), now = mono_ns(), rss, hwm;
	char text[4096];
	double pct = 0, fill = 0;
	int n = progs_read(c, progs); /* -1: no program fields rather than wrong sums */
	bool stats_on;
	int err = 0;

	for (int i = 0; i < n; i++) {
		missed += progs[i].info.recursion_misses;
		cnt += progs[i].info.run_cnt;
		ns += progs[i].info.run_time_ns;
	}
	if (n >= 0) {
		err |= ADD_NUM(obj, "events_missed", missed);
		err |= ADD_NUM(obj, "bpf_run_cnt", cnt);
		err |= ADD_NUM(obj, "bpf_run_time_ns", ns);
	}
	stats_on = !proc_read(&c->bpf_stats, text, sizeof(text)) && proc_flag_on(text);
	if (!cJSON_AddBoolToObject(obj, "bpf_stats", stats_on))
		return -ENOMEM;
	if (n >= 0)
		err |= progs_to_json(progs, n, obj);
	err |= maps_to_json(c, obj);

	/* a map walk that raced with deletes may see an entry twice: at most full */
	if (max_tuples)
		fill = fmin(1, (double)tuples / max_tuples);
	err |= ADD_NUM(obj, "tuples_fill", round(fill * 10000) / 10000);
	if (now > c->at_ns && cpu >= c->cpu_us)
		pct = (cpu - c->cpu_us) * 1000.0 * 100 / (now - c->at_ns);
	c->cpu_us = cpu;
	c->at_ns = now;
	err |= ADD_NUM(obj, "agent_cpu_percent", round(pct * 100) / 100);
	if (!proc_read(&c->status, text, sizeof(text)) && !proc_field(text, "VmRSS", " kB", &rss) &&
	    !proc_field(text, "VmHWM", " kB", &hwm)) {
		err |= ADD_NUM(obj, "agent_rss_kib", rss);
		err |= ADD_NUM(obj, "agent_peak_rss_kib", hwm);
	}
	return err ? -ENOMEM : 0;
}
