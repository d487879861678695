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
#include "objects.h"
#include "ephport.skel.h"

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
		return neg_errno();
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

void cost_init(struct cost *c, struct ephport_bpf *skel)
{
	c->nmaps = 0;
	for (size_t i = 0; i < eph_nmaps && c->nmaps < COST_MAPS; i++)
		if (eph_maps[i].use & OBJ_COST)
			c->maps[c->nmaps++].map =
				bpf_object__find_map_by_name(skel->obj, eph_maps[i].name);
	c->skel = skel;
	c->skel = skel;
	snprintf(c->status.path, sizeof(c->status.path), "/proc/self/status");
	snprintf(c->bpf_stats.path, sizeof(c->bpf_stats.path),
		 "/proc/sys/kernel/bpf_stats_enabled");
	c->status.fd = c->bpf_stats.fd = -1;
	for (size_t i = 0; i < c->nmaps; i++) {
		snprintf(c->maps[i].fdinfo.path, sizeof(c->maps[i].fdinfo.path),
			 "/proc/self/fdinfo/%d", c->maps[i].map ? bpf_map__fd(c->maps[i].map) : -1);
		c->maps[i].fdinfo.fd = -1;
	}
	c->cpu_us = cpu_us();
	c->at_ns = mono_ns();
}

void cost_free(struct cost *c)
{
	if (!c)
		return;
	proc_close(&c->status);
	proc_close(&c->bpf_stats);
	for (size_t i = 0; i < c->nmaps; i++)
		proc_close(&c->maps[i].fdinfo);
}

/*
 * The programs that count events, and the guard's when it is loaded; -1 if one
 * is unreadable. recursion_misses are events the kernel skipped because a
 * program was already running on that CPU: tuples_backstop counts the state
 * changes tuples_set_state missed (bpf/count.bpf.c). run_cnt and run_time_ns
 * stay 0 unless BPF statistics are on (sysctl kernel.bpf_stats_enabled=1).
 */
static int progs_read(struct cost *c, struct cost_reading *r)
{
	int n = 0;

	for (size_t i = 0; i < eph_nprogs && n < COST_PROGS; i++) {
		const struct bpf_program *prog =
			bpf_object__find_program_by_name(c->skel->obj, eph_progs[i].name);
		struct bpf_prog_info info = { 0 };
		__u32 len = sizeof(info);
		int fd = prog ? bpf_program__fd(prog) : -1;

		if (!(eph_progs[i].use & OBJ_COST))
			continue;
		if (fd < 0)
			continue; /* not loaded: the guard's without --guard, one of a pair */
		if (bpf_obj_get_info_by_fd(fd, &info, &len))
			return neg_errno();
		r->progs[n].name = eph_progs[i].name;
		r->progs[n].runs = info.run_cnt;
		r->progs[n].run_time_ns = info.run_time_ns;
		r->progs[n++].missed = info.recursion_misses;
	}
	return n;
}

/* max_entries and the kernel's memory figure (memlock) of each map, from its fdinfo */
static size_t maps_read(struct cost *c, struct cost_reading *r)
{
	char text[1024];
	size_t n = 0;

	for (size_t i = 0; i < c->nmaps; i++) {
		if (!c->maps[i].map || proc_read(&c->maps[i].fdinfo, text, sizeof(text)) ||
		    proc_field(text, "max_entries", "", &r->maps[n].max_entries) ||
		    proc_field(text, "memlock", "", &r->maps[n].bytes))
			continue;
		r->maps[n++].name = bpf_map__name(c->maps[i].map);
	}
	return n;
}

void cost_read(struct cost *c, struct cost_reading *r)
{
	char text[4096];

	memset(r, 0, sizeof(*r));
	r->cpu_us = cpu_us();
	r->check_ns_total = c->check_ns_total;
	r->nprogs = progs_read(c, r);
	r->nmaps = maps_read(c, r);
	r->bpf_stats = !proc_read(&c->bpf_stats, text, sizeof(text)) && proc_flag_on(text);
	if (proc_read(&c->status, text, sizeof(text)) ||
	    proc_field(text, "VmRSS", " kB", &r->rss_kib) ||
	    proc_field(text, "VmHWM", " kB", &r->peak_rss_kib))
		r->rss_kib = r->peak_rss_kib = 0;
}

void cost_check_done(struct cost *c, __u64 took_ns)
{
	c->check_ns_total += took_ns;
	if (took_ns > c->check_ns_max)
		c->check_ns_max = took_ns;
}

static int progs_to_json(const struct cost_reading *r, cJSON *obj)
{
	cJSON *all = cJSON_AddObjectToObject(obj, "programs"), *m;

	if (!all)
		return -ENOMEM;
	for (int i = 0; i < r->nprogs; i++) {
		__u64 cnt = r->progs[i].runs, ns = r->progs[i].run_time_ns;

		if (!(m = cJSON_AddObjectToObject(all, r->progs[i].name)) ||
		    ADD_NUM(m, "runs", cnt) || ADD_NUM(m, "run_time_ns", ns) ||
		    !(cnt ? cJSON_AddNumberToObject(m, "ns_per_run", round(ns * 10.0 / cnt) / 10) :
			    cJSON_AddNullToObject(m, "ns_per_run")) ||
		    ADD_NUM(m, "missed", r->progs[i].missed))
			return -ENOMEM;
	}
	return 0;
}

static int maps_to_json(const struct cost_reading *r, cJSON *obj)
{
	cJSON *all = cJSON_AddObjectToObject(obj, "maps"), *m;

	if (!all)
		return -ENOMEM;
	for (size_t i = 0; i < r->nmaps; i++)
		if (!(m = cJSON_AddObjectToObject(all, r->maps[i].name)) ||
		    ADD_NUM(m, "max_entries", r->maps[i].max_entries) ||
		    ADD_NUM(m, "bytes", r->maps[i].bytes))
			return -ENOMEM;
	return 0;
}

int cost_to_json(struct cost *c, size_t tuples, __u32 max_tuples, cJSON *obj)
{
	struct cost_reading r;
	__u64 missed = 0, cnt = 0, ns = 0, cpu, now = mono_ns();
	double pct = 0, fill = 0;
	int err = 0;

	cost_read(c, &r);
	cpu = r.cpu_us;
	for (int i = 0; i < r.nprogs; i++) {
		missed += r.progs[i].missed;
		cnt += r.progs[i].runs;
		ns += r.progs[i].run_time_ns;
	}
	/* nprogs -1: no program fields rather than wrong sums */
	if (r.nprogs >= 0) {
		err |= ADD_NUM(obj, "events_missed", missed);
		err |= ADD_NUM(obj, "bpf_run_cnt", cnt);
		err |= ADD_NUM(obj, "bpf_run_time_ns", ns);
	}
	if (!cJSON_AddBoolToObject(obj, "bpf_stats", r.bpf_stats))
		return -ENOMEM;
	if (r.nprogs >= 0)
		err |= progs_to_json(&r, obj);
	err |= maps_to_json(&r, obj);

	/* a map walk that raced with deletes may see an entry twice: at most full */
	if (max_tuples)
		fill = fmin(1, (double)tuples / max_tuples);
	err |= ADD_NUM(obj, "tuples_fill", round(fill * 10000) / 10000);
	if (now > c->at_ns && cpu >= c->cpu_us)
		pct = (cpu - c->cpu_us) * 1000.0 * 100 / (now - c->at_ns);
	c->cpu_us = cpu;
	c->at_ns = now;
	err |= ADD_NUM(obj, "agent_cpu_percent", round(pct * 100) / 100);
	err |= ADD_NUM(obj, "check_ms_max", round(c->check_ns_max / 1e5) / 10);
	c->check_ns_max = 0;
	if (r.rss_kib) {
		err |= ADD_NUM(obj, "agent_rss_kib", r.rss_kib);
		err |= ADD_NUM(obj, "agent_peak_rss_kib", r.peak_rss_kib);
	}
	return err ? -ENOMEM : 0;
}
