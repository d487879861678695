// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The agent's event lines: the fields every line has, and who a process is. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ephport.h"
#include "cgroup.h"
#include "sink.h"

/* ts, event, host, schema_version: the fields every line starts with */
cJSON *report_new(struct report *r, const char *event)
{
	char ts[40];
	struct timespec now;
	cJSON *ev = cJSON_CreateObject();

	clock_gettime(CLOCK_REALTIME, &now);
	if (!ev || format_rfc3339_ms(&now, ts, sizeof(ts)) ||
	    !cJSON_AddStringToObject(ev, "ts", ts) ||
	    !cJSON_AddStringToObject(ev, "event", event) ||
	    !cJSON_AddStringToObject(ev, "host", r->host) ||
	    ADD_NUM(ev, "schema_version", EPH_SCHEMA_VERSION)) {
		cJSON_Delete(ev);
		return NULL;
	}
	return ev;
}

/* queues the line and frees the object; NULL (an event that could not be built) is counted */
/* an alerting line: one a person on call would want to see next to the counts */
static bool alerting(const cJSON *ev)
{
	static const char *const names[] = { "pressure", "nat_pressure", "connect_failed",
					     "bind_failed", "connect_denied" };
	const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "event"));

	for (size_t i = 0; e && i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(e, names[i]))
			return true;
	return false;
}

/* keeps a copy of an alerting line; out of memory, the ring keeps what it had */
static void keep_recent(struct report *r, const cJSON *ev, const char *s)
{
	struct recent_line *slot = &r->recent[r->recent_next];
	const cJSON *ns = cJSON_GetObjectItemCaseSensitive(ev, "netns");
	char *copy = strdup(s);

	if (!copy)
		return;
	free(slot->line);
	slot->line = copy;
	slot->netns = cJSON_IsNumber(ns) ? (__u64)ns->valuedouble : 0;
	r->recent_next = (r->recent_next + 1) % REPORT_RECENT;
}

const struct recent_line *report_recent(const struct report *r, size_t i)
{
	for (size_t k = 0, seen = 0; k < REPORT_RECENT; k++) {
		const struct recent_line *l = &r->recent[(r->recent_next + k) % REPORT_RECENT];

		if (l->line && seen++ == i)
			return l;
	}
	return NULL;
}

void report_free(struct report *r)
{
	for (size_t k = 0; k < REPORT_RECENT; k++) {
		free(r->recent[k].line);
		r->recent[k].line = NULL;
	}
	jw_free(&r->line);
}

void report_emit(struct report *r, cJSON *ev)
{
	char *s;

	report_flush(r); /* lines in the order they were made */
	if (!ev) {
		r->unbuilt++;
		return;
	}
	s = cJSON_PrintUnformatted(ev);
	if (s && alerting(ev))
		keep_recent(r, ev, s);
	cJSON_Delete(ev);
	if (!s) {
		r->unbuilt++;
		return;
	}
	sink_put(r->sink, s);
	cJSON_free(s);
}

#define TUPLE_BATCH (64 * 1024) /* tuple lines go to the sink this many bytes at a time */

/* the tuple lines written so far, as one piece: a snapshot of many tuples is few writes */
void report_flush(struct report *r)
{
	if (r->nlines)
		sink_put_lines(r->sink, r->line.buf, r->line.len - 1, r->nlines);
	r->line.len = 0;
	r->line.comma = false;
	r->nlines = 0;
}

void report_emit_tuple(struct report *r, const struct tuple *t)
{
	size_t start = r->line.len;
	struct timespec now;
	char ts[40];

	clock_gettime(CLOCK_REALTIME, &now);
	if (format_rfc3339_ms(&now, ts, sizeof(ts))) {
		r->unbuilt++;
		return;
	}
	r->line.comma = false;
	jw_open(&r->line, '{');
	jw_str(&r->line, "ts", ts);
	jw_str(&r->line, "event", "tuple");
	jw_str(&r->line, "host", r->host);
	jw_u64(&r->line, "schema_version", EPH_SCHEMA_VERSION);
	tuple_write_json(t, &r->line);
	jw_close(&r->line, '}');
	jw_raw(&r->line, "\n", 1);
	if (r->line.oom) {
		/* what was written before still goes */
		r->line.oom = false;
		r->line.len = start;
		r->unbuilt++;
		report_flush(r);
		return;
	}
	r->nlines++;
	if (r->line.len >= TUPLE_BATCH)
		report_flush(r);
}

/* lines lost: not built, not queued (the sink was too slow) or not written */
__u64 report_dropped(const struct report *r)
{
	return r->unbuilt + sink_dropped(r->sink);
}

static int add_str_or_null(cJSON *obj, const char *name, const char *s)
{
	return (s && *s ? cJSON_AddStringToObject(obj, name, s) :
			  cJSON_AddNullToObject(obj, name)) ?
		       0 :
		       -ENOMEM;
}

/*
 * pid, tid, comm, uid, cgroup_id, and where the cgroup path says so, cgroup,
 * container_id and pod_uid (null otherwise).
 */
int attribution_to_json(struct report *r, cJSON *obj, __u32 pid, __u32 tid, const char *comm,
			__u32 uid, __u64 cgroup_id)
{
	char path[CGROUP_PATH_MAX], name[17];
	struct cgroup_ids ids = { 0 };
	bool have_path = false;
	int err = 0;

	/* any process can set its name: keep the line valid UTF-8 and printable */
	snprintf(name, sizeof(name), "%s", comm);
	for (char *c = name; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			*c = '?';
	if (r->cgroups && cgroup_id &&
	    !cgroup_resolve(r->cgroups, cgroup_id, (pid_t)pid, path, sizeof(path))) {
		have_path = true;
		cgroup_parse_ids(path, &ids);
	}
	err |= ADD_NUM(obj, "pid", pid);
	if (tid)
		err |= ADD_NUM(obj, "tid", tid);
	err |= cJSON_AddStringToObject(obj, "comm", name) ? 0 : -ENOMEM;
	err |= ADD_NUM(obj, "uid", uid);
	err |= ADD_NUM(obj, "cgroup_id", cgroup_id);
	err |= add_str_or_null(obj, "cgroup", have_path ? path : NULL);
	err |= add_str_or_null(obj, "container_id", ids.container_id);
	err |= add_str_or_null(obj, "pod_uid", ids.pod_uid);
	return err ? -ENOMEM : 0;
}
