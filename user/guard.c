// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The connect guard's user side: which destinations are near the deny line (the
 * "guard_dst" map the cgroup programs read), its settings and denials as query
 * shows them, and "ephport guard status".
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <search.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "ephport.h"
#include "guard.h"
#include "objects.h"
#include "spread.h"

const struct opt_choice guard_errnos[] = {
	{ "eaddrnotavail", EADDRNOTAVAIL },
	{ "eperm", EPERM },
	{ 0 },
};

/* as the kernel's headers spell it */
const char *guard_errno_name(__u32 e)
{
	return e == EADDRNOTAVAIL ? "EADDRNOTAVAIL" : e == EPERM ? "EPERM" : "unknown";
}

const char *guard_mode_name(__u32 mode)
{
	return mode == GUARD_ENFORCE ? "enforce" : mode == GUARD_AUDIT ? "audit" : "off";
}

static int gkey_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct guard_key));
}

struct gentry {
	struct guard_key key; /* first: sorted and searched by it */
	struct guard_val val;
	double util;
	size_t rank; /* in its namespace, nearest the line 0 */
};

/* by destination, and of one destination the most used tuple first */
static int gentry_cmp(const void *a, const void *b)
{
	const struct gentry *x = a, *y = b;
	int c = gkey_cmp(&x->key, &y->key);

	if (c)
		return c;
	if (x->util != y->util)
		return x->util > y->util ? -1 : 1;
	return memcmp(&x->val.tuple, &y->val.tuple, sizeof(x->val.tuple));
}

/* by rank within its namespace, then nearest the line first */
static int gentry_fair_cmp(const void *a, const void *b)
{
	const struct gentry *x = a, *y = b;

	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	if (x->util != y->util)
		return x->util > y->util ? -1 : 1;
	return gkey_cmp(&x->key, &y->key);
}

/* each destination's rank in its namespace, nearest the line 0 (want: by key, netns first) */
static void gentry_rank(struct gentry *want, size_t n)
{
	size_t start = 0;

	for (size_t i = 1; i <= n; i++) {
		if (i < n && want[i].key.netns == want[start].key.netns)
			continue;
		/* one namespace's: nearest the line first */
		qsort(want + start, i - start, sizeof(*want), gentry_fair_cmp);
		for (size_t j = start; j < i; j++)
			want[j].rank = j - start;
		start = i;
	}
}

/* a tuple's usage at or past the watch line, by the same sums the programs make */
static bool near_line(const struct tuple *t, __u32 watch_ppm)
{
	return t->usage >= (__s64)line_usage(t->capacity, watch_ppm);
}

/*
 * Whether the live tuple behind an entry is near the line still: the entry
 * stays while a connect may have brought it there since the snapshot.
 */
static bool still_near(int tuples_fd, const struct guard_val *v, struct ns_list *nl,
		       __u32 watch_ppm)
{
	struct tuple t = { .key = v->tuple };

	if (bpf_map_lookup_elem(tuples_fd, &t.key, &t.val))
		return false;
	tuple_finish(&t);
	tuple_capacity(&t, ns_find(nl, t.key.netns, false));
	return near_line(&t, watch_ppm);
}

/*
 * Every destination whose most used tuple is at the watch line or beyond gets
 * an entry: from then on the cgroup programs compare the live counts with the
 * lines at every connect(). The programs add one themselves at the connect that
 * reaches the line (bpf/maps.bpf.h, guard_watch); this adds those a change of
 * capacity brought there, keeps each entry on its most used tuple, and takes
 * out those no longer near. *count is the programs' count of entries, kept
 * with atomic adds on both sides. Returns how many are near; *uncovered says
 * how many did not fit. What no longer needs an entry goes first, and when the
 * map is full it is shared: each namespace's nearest destination, then each
 * one's second, and so on, so that one namespace with thousands of tuples near
 * the line takes no other namespace's place.
 */
int guard_refresh(const struct guard_maps *m, const struct tuple_list *l, struct ns_list *nl,
		  __u32 watch_ppm, size_t *uncovered)
{
	struct gentry *want = calloc(l->len + 1, sizeof(*want));
	struct guard_key *keys = NULL;
	struct guard_val *vals = NULL;
	struct gentry *held = NULL;
	size_t n = 0, kept = 0, have = 0;
	int err = 0;

	if (!want)
		return -ENOMEM;
	for (size_t i = 0; i < l->len; i++) {
		const struct tuple *t = &l->items[i];
		struct gentry e = { 0 };

		if (!near_line(t, watch_ppm))
			continue;
		e.key.netns = t->key.netns;
		e.key.dport = t->key.dport;
		e.key.family = t->key.family;
		memcpy(e.key.daddr, t->key.daddr, 16);
		e.val.tuple = t->key;
		e.util = t->utilization;
		want[n++] = e;
	}
	/* one entry per destination: its most used tuple */
	qsort(want, n, sizeof(*want), gentry_cmp);
	for (size_t i = 0; i < n; i++)
		if (!kept || gkey_cmp(&want[i].key, &want[kept - 1].key))
			want[kept++] = want[i];
	n = kept;
	*uncovered = 0;
	/* destinations no longer near the line, first: a full map makes room */
	err = map_read_all(m->dst_fd, sizeof(*keys), sizeof(*vals), (void **)&keys, (void **)&vals,
			   &have);
	held = calloc(have + 1, sizeof(*held));
	if (!err && !held)
		err = -ENOMEM;
	for (size_t i = 0; !err && i < have; i++) {
		held[i].key = keys[i];
		held[i].val = vals[i];
	}
	if (!err)
		qsort(held, have, sizeof(*held), gkey_cmp);
	for (size_t i = 0; !err && i < have; i++)
		if (!bsearch(&held[i].key, want, n, sizeof(*want), gkey_cmp) &&
		    !still_near(m->tuples_fd, &held[i].val, nl, watch_ppm) &&
		    !bpf_map_delete_elem(m->dst_fd, &held[i].key))
			__atomic_fetch_sub(m->count, 1, __ATOMIC_SEQ_CST);
	gentry_rank(want, n);
	qsort(want, n, sizeof(*want), gentry_fair_cmp);
	/* what does not fit is further from the line, or in a namespace with more */
	*uncovered = n > MAX_GUARD_DST ? n - MAX_GUARD_DST : 0;
	for (size_t i = n - *uncovered; !err && i < n; i++)
		if (bsearch(&want[i].key, held, have, sizeof(*held), gkey_cmp) &&
		    !bpf_map_delete_elem(m->dst_fd, &want[i].key))
			__atomic_fetch_sub(m->count, 1, __ATOMIC_SEQ_CST);
	/* those the programs made already, on the same tuple, cost nothing */
	for (size_t i = 0; i < n - *uncovered && !err; i++) {
		const struct gentry *e = bsearch(&want[i].key, held, have, sizeof(*held), gkey_cmp);

		if (e && !memcmp(&e->val, &want[i].val, sizeof(e->val)))
			continue;
		if (!e &&
		    !bpf_map_update_elem(m->dst_fd, &want[i].key, &want[i].val, BPF_NOEXIST)) {
			__atomic_fetch_add(m->count, 1, __ATOMIC_SEQ_CST);
			continue;
		}
		if (!e && errno != EEXIST) {
			err = -errno;
			break;
		}
		/* the programs' entry, on another tuple: moved to the most used */
		if (bpf_map_update_elem(m->dst_fd, &want[i].key, &want[i].val, BPF_EXIST) &&
		    errno != ENOENT) /* gone meanwhile: the next check */
			err = -errno;
	}
	free(held);
	free(keys);
	free(vals);
	free(want);
	return err ? err : (int)(n - *uncovered);
}

int guard_info_to_json(const struct guard_info *gi, cJSON *obj)
{
	int err = 0;

	err |= cJSON_AddStringToObject(obj, "mode", guard_mode_name(gi->mode)) ? 0 : -ENOMEM;
	if (gi->mode == GUARD_OFF)
		return err;
	err |= cJSON_AddStringToObject(obj, "cgroup_root", gi->root) ? 0 : -ENOMEM;
	err |= ADD_NUM(obj, "deny_at", gi->deny_at);
	err |= cJSON_AddStringToObject(obj, "errno", guard_errno_name(gi->deny_errno)) ? 0 :
											 -ENOMEM;
	err |= gi->quota ? ADD_NUM(obj, "quota", gi->quota) :
			   (cJSON_AddNullToObject(obj, "quota") ? 0 : -ENOMEM);
	err |= ADD_NUM(obj, "exempt_cgroups", gi->exempt);
	err |= spread_settings_to_json(gi, "spread", obj);
	return err ? -ENOMEM : 0;
}

struct denial {
	struct tuple_key tuple;
	__u64 cgroup_id;
	__u16 kind;
	__u64 count;
};

static int denial_cmp(const void *a, const void *b)
{
	const struct denial *x = a, *y = b;

	return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

/* the guard's refusals per (tuple, cgroup, reason), most first, from the denials map */
int guard_denials_read(int denials_fd, struct denial **out, size_t *len)
{
	struct denial_key *keys = NULL;
	__u64 *vals = NULL;
	struct denial *d;
	size_t n = 0;
	int err;

	err = map_read_all(denials_fd, sizeof(*keys), sizeof(*vals), (void **)&keys, (void **)&vals,
			   &n);
	if (err)
		return err;
	d = calloc(n + 1, sizeof(*d));
	if (!d) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		d[i].tuple = keys[i].tuple;
		d[i].cgroup_id = keys[i].cgroup_id;
		d[i].kind = keys[i].kind;
		d[i].count = vals[i];
	}
	qsort(d, n, sizeof(*d), denial_cmp);
	*out = d;
	*len = n;
out:
	free(keys);
	free(vals);
	return err;
}

int guard_denials_sums(int denials_fd, const struct tuple_list *l, __u64 *per_tuple,
		       struct netns_count **by_netns, size_t *nnetns, __u64 *total)
{
	struct denial *d = NULL;
	size_t n = 0;
	int err = guard_denials_read(denials_fd, &d, &n);

	if (!err)
		err = tuple_counts_sum(d, n, sizeof(*d), offsetof(struct denial, count), l,
				       per_tuple, by_netns, nnetns, total);
	free(d);
	return err;
}

int guard_denials_to_json(const struct denial *d, size_t n, cJSON *arr)
{
	for (size_t i = 0; i < n; i++) {
		cJSON *o = tuple_cgroup_item(arr, &d[i].tuple, d[i].cgroup_id);
		int err = 0;

		if (!o)
			return -ENOMEM;
		err |= cJSON_AddStringToObject(o, "reason",
					       d[i].kind == DENY_QUOTA ? "quota" : "utilization") ?
			       0 :
			       -ENOMEM;
		err |= ADD_NUM(o, "count", d[i].count);
		if (err)
			return -ENOMEM;
	}
	return 0;
}

/* ephport guard status */

static const struct opt guard_options[] = {
	{ "json", 'j', OPT_FLAG_VAR(eph_json_mode), .help = "one JSON document instead of text" },
	{ "help", 'h', OPT_HELP, .help = "this help" },
	{ 0 },
};

const struct opts_cmd guard_cmd = {
	.name = "guard",
	.synopsis = "ephport guard status [--json]",
	.about = "Show the running agent's connect guard: its settings, and the programs\n"
		 "attached to its cgroup (cgroup/connect4 and cgroup/connect6).",
	.epilog = "The guard is started with 'ephport agent --guard'; see docs/guard.md.",
	.opts = guard_options,
	.args = true,
	.subcommand = "status",
};

static int attached_to_json(const char *root, cJSON *arr, bool print)
{
	static const struct {
		enum bpf_attach_type type;
		const char *name;
	} hooks[] = { { BPF_CGROUP_INET4_CONNECT, "cgroup/connect4" },
		      { BPF_CGROUP_INET6_CONNECT, "cgroup/connect6" } };
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return neg_errno();
	if (print)
		printf("%-16s %8s  %s\n", "HOOK", "PROG_ID", "NAME");
	for (size_t h = 0; h < sizeof(hooks) / sizeof(hooks[0]); h++) {
		__u32 ids[64], cnt = 64, flags = 0;

		if (bpf_prog_query(fd, hooks[h].type, 0, &flags, ids, &cnt))
			cnt = 0;
		for (__u32 i = 0; i < cnt; i++) {
			struct bpf_prog_info info = { 0 };
			__u32 len = sizeof(info);
			int pfd = bpf_prog_get_fd_by_id(ids[i]);
			cJSON *o;

			if (pfd < 0)
				continue;
			if (bpf_obj_get_info_by_fd(pfd, &info, &len))
				info.name[0] = '\0';
			close(pfd);
			if (print)
				printf("%-16s %8u  %s\n", hooks[h].name, ids[i], info.name);
			o = cJSON_CreateObject();
			if (!o || !cJSON_AddItemToArray(arr, o) ||
			    !cJSON_AddStringToObject(o, "hook", hooks[h].name) ||
			    ADD_NUM(o, "prog_id", ids[i]) ||
			    !cJSON_AddStringToObject(o, "name", info.name)) {
				close(fd);
				return -ENOMEM;
			}
		}
	}
	close(fd);
	return 0;
}

int guard_info_read(struct guard_info *gi)
{
	__u32 zero = 0;
	int fd = pin_open("guard_info", BPF_MAP_TYPE_ARRAY, sizeof(zero), sizeof(*gi)), err = 0;

	if (fd < 0)
		return fd;
	if (bpf_map_lookup_elem(fd, &zero, gi))
		err = -errno;
	close(fd);
	return err;
}

static int guard_status(void)
{
	struct guard_info gi = { 0 };
	cJSON *doc = cJSON_CreateObject(), *arr;
	pid_t agent;
	int err, ret = 1;

	if (agent_require("guard status", "ephport agent --guard", &agent))
		goto out;
	err = guard_info_read(&gi);
	if (err == -EPERM)
		eph_err("%s is not root's alone (owner and mode): its pins could be anyone's, "
			"not reading them",
			EPH_PIN_DIR);
	else if (err == -EPROTO)
		eph_err("%s/guard_info is not the agent's map (its type or sizes differ): not "
			"reading it",
			EPH_PIN_DIR);
	else if (err)
		eph_err("cannot read %s/guard_info: %s%s", EPH_PIN_DIR, strerror(-err),
			err == -EACCES ? " (guard status needs root)" : "");
	if (err)
		goto out;
	if (!doc || guard_info_to_json(&gi, doc) || ADD_NUM(doc, "agent_pid", agent) ||
	    !(arr = cJSON_AddArrayToObject(doc, "attached"))) {
		eph_err("out of memory");
		goto out;
	}
	if (!eph_json_mode) {
		printf("guard: %s", guard_mode_name(gi.mode));
		if (gi.mode != GUARD_OFF)
			printf(" (deny at %.2f, errno %s, quota %s%.0u, %u exempt cgroups)\n"
			       "cgroup: %s\n",
			       gi.deny_at, guard_errno_name(gi.deny_errno), gi.quota ? "" : "none",
			       gi.quota, gi.exempt, gi.root);
		else
			printf(" (start the agent with --guard)\n");
	}
	if (gi.mode != GUARD_OFF) {
		err = attached_to_json(gi.root, arr, !eph_json_mode);
		if (err) {
			eph_err("cannot list the programs attached to %s: %s", gi.root,
				strerror(-err));
			goto out;
		}
	}
	if (eph_json_mode && json_print_line(doc))
		goto out;
	ret = 0;
out:
	cJSON_Delete(doc);
	return ret;
}

int cmd_guard(int argc, char **argv)
{
	int err = opts_parse(&guard_cmd, argc, argv, NULL);

	if (err)
		return err > 0 ? 0 : EXIT_USAGE;
	if (optind >= argc || strcmp(argv[optind], "status") || optind + 1 < argc) {
		opts_error(&guard_cmd, "%s",
			   optind >= argc ? "which subcommand?" : "unknown subcommand");
		return EXIT_USAGE;
	}
	return guard_status();
}
