/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The BPF object's maps and programs by name, and who uses each (objects.c):
 * the one list the pins, the cost reader, the agent_start line and the
 * benchmark take theirs from.
 */
#ifndef EPHPORT_OBJECTS_H
#define EPHPORT_OBJECTS_H

#include <stddef.h>
#include <linux/types.h>
#include <cjson/cJSON.h>

enum obj_use {
	OBJ_PIN = 1 << 0,  /* pinned under EPH_PIN_DIR while the agent runs */
	OBJ_COST = 1 << 1, /* its memory (maps) or runs (programs) in stats and /metrics */
};

struct eph_object {
	const char *name;
	unsigned int use; /* enum obj_use */
	const char *what;
};

extern const struct eph_object eph_maps[];
extern const size_t eph_nmaps;
extern const struct eph_object eph_progs[];
extern const size_t eph_nprogs;

/* for agent_start: {"maps": {name: pin path or null}, "programs": [names]} */
int objects_to_json(cJSON *obj);

/*
 * A map the agent pinned, for a reader: a descriptor, once the pin directory is
 * found root's alone (else -EPERM) and the pin is a map of this type, key and
 * value size (else -EPROTO): the kernel copies value_size bytes into the
 * reader's buffer. Or the negative errno of opening it.
 */
int pin_open(const char *name, __u32 type, __u32 key_size, __u32 value_size);

#endif /* EPHPORT_OBJECTS_H */
