/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The agent's view of the network namespaces it can step into. */
#ifndef EPHPORT_NETNS_H
#define EPHPORT_NETNS_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "tuples.h"

struct netns {
	__u32 inum;
	char path[64]; /* how it was found this round: /run/netns/NAME, /proc/PID/ns/net */
	bool home;     /* the agent's own: entered through the saved descriptor */
	bool alive;    /* found in the latest round */
	struct netns_info info;
};

struct netns_set {
	struct netns *items;
	size_t len, cap;
};

int netns_discover(struct netns_set *s, const char *home_path);
int netns_enter(const struct netns *ns);
int netns_leave(const struct netns *ns, int home_fd);
int netns_read_info(struct netns_info *info);
int sockstat_time_wait(const char *text, __s64 *tw);
void netns_set_free(struct netns_set *s);

#endif /* EPHPORT_NETNS_H */
