// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The BPF object's maps and programs, and who uses each (objects.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "ephport.h"
#include "objects.h"
#include "privdir.h"

const struct eph_object eph_maps[] = {
	/* clang-format off */
	{ "tuples",	  OBJ_PIN | OBJ_COST, "the counts per destination tuple" },
	{ "changes",	  OBJ_COST,	      "keys of the tuples changed since the last check" },
	{ "stats",	  OBJ_PIN,	      "per-CPU counters of what could not be recorded" },
	{ "ports",	  OBJ_PIN | OBJ_COST, "ports held by listeners and bind()" },
	{ "local_tw",	  OBJ_PIN | OBJ_COST, "TIME_WAIT sockets no tuple owns, per port" },
	{ "fw2",	  OBJ_COST,	      "FIN-WAIT-2 minisockets" },
	{ "bound_socks",  OBJ_COST,	      "bind()-ed active opens and their ports" },
	{ "claims",	  OBJ_COST,	      "who counted a socket during the start-up walk" },
	{ "nsphase",	  0,		      "namespaces the start-up walk has not done" },
	{ "netns_info",	  OBJ_PIN,	      "what the agent read inside each namespace" },
	{ "failures",	  OBJ_PIN | OBJ_COST, "failing connect() and bind() per tuple and process" },
	{ "notices",	  OBJ_COST,	      "a tuple that starts failing, at once" },
	{ "calls",	  0,		      "a failing connect() or bind() until it returns" },
	{ "openers",	  OBJ_PIN | OBJ_COST, "who opens connections to busy tuples" },
	{ "retiring",	  0,		      "tuples the agent is about to forget" },
	{ "marks",	  0,		      "state changes the main program counted (backstop)" },
	{ "cg_ports",	  OBJ_COST,	      "sockets per cgroup and destination (--quota)" },
	{ "ns_tuples",	  OBJ_COST,	      "tuples per namespace, when the map is to be shared" },
	{ "ns_tuples_adj", 0,		      "what the agent adds to ns_tuples at a check" },
	{ "guard_dst",	  OBJ_COST,	      "destinations near the guard's line" },
	{ "ns_limits",	  OBJ_COST,	      "what capacity needs of a namespace, its spread sources" },
	{ "guard_exempt", 0,		      "cgroups the guard never refuses" },
	{ "guard_info",	  OBJ_PIN,	      "the guard's settings, for 'guard status'" },
	{ "denials",	  OBJ_PIN | OBJ_COST, "refused connect()s per tuple, cgroup and reason" },
	{ "spreads",	  OBJ_PIN | OBJ_COST, "spread connect()s per chosen tuple and cgroup" },
	/* clang-format on */
};
const size_t eph_nmaps = sizeof(eph_maps) / sizeof(eph_maps[0]);

/* those that run on events and the guard's; which load depends on the kernel and --guard */
const struct eph_object eph_progs[] = {
	{ "tuples_set_state", OBJ_COST, "counts every TCP state change" },
	{ "tuples_backstop", OBJ_COST, "counts the changes the first one was not run for" },
	{ "tw_timer_start", OBJ_COST, "a TIME_WAIT socket starts counting" },
	{ "tw_timer_cancel", OBJ_COST, "a TIME_WAIT socket ends" },
	{ "connect_enter", OBJ_COST, "a connect() call's arguments (before 5.15)" },
	{ "connect_exit", OBJ_COST, "a connect() that found no port: who" },
	{ "bind_enter", OBJ_COST, "a bind() call's arguments (before 5.15)" },
	{ "bind_exit", OBJ_COST, "a bind() that found no port: who" },
	{ "guard_connect4", OBJ_COST, "the guard, IPv4" },
	{ "guard_connect6", OBJ_COST, "the guard, IPv6" },
};
const size_t eph_nprogs = sizeof(eph_progs) / sizeof(eph_progs[0]);

int objects_to_json(cJSON *obj)
{
	cJSON *maps = cJSON_AddObjectToObject(obj, "maps");
	cJSON *progs = cJSON_AddArrayToObject(obj, "programs");
	char path[256];

	if (!maps || !progs)
		return -ENOMEM;
	for (size_t i = 0; i < eph_nmaps; i++) {
		snprintf(path, sizeof(path), EPH_PIN_DIR "/%s", eph_maps[i].name);
		if (!(eph_maps[i].use & OBJ_PIN ?
			      cJSON_AddStringToObject(maps, eph_maps[i].name, path) :
			      cJSON_AddNullToObject(maps, eph_maps[i].name)))
			return -ENOMEM;
	}
	for (size_t i = 0; i < eph_nprogs; i++) {
		cJSON *s = cJSON_CreateString(eph_progs[i].name);

		if (!s || !cJSON_AddItemToArray(progs, s)) {
			cJSON_Delete(s);
			return -ENOMEM;
		}
	}
	return 0;
}

int pin_open(const char *name, __u32 type, __u32 key_size, __u32 value_size)
{
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info);
	char path[256], link[64], kind[32];
	ssize_t n;
	int fd, err;

	err = privdir_check(EPH_PIN_DIR);
	if (err)
		return err;
	snprintf(path, sizeof(path), EPH_PIN_DIR "/%s", name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return neg_errno();
	/* a pinned program or link answers a map's info query with its own */
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, kind, sizeof(kind) - 1);
	kind[n > 0 ? n : 0] = 0;
	if (strcmp(kind, "anon_inode:bpf-map"))
		err = -EPROTO;
	else if (bpf_obj_get_info_by_fd(fd, &info, &len))
		err = neg_errno();
	else if (info.type != type || info.key_size != key_size || info.value_size != value_size ||
		 !info.max_entries)
		err = -EPROTO;
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}
