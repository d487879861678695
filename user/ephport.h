/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Declarations shared by ephport's user-space files. */
#ifndef EPHPORT_H
#define EPHPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <linux/types.h>
#include <cjson/cJSON.h>

#include "tuples.h"

#ifndef EPHPORT_VERSION
#define EPHPORT_VERSION "0.0.0-dev"
#endif

/* where a running agent publishes its maps, and the lock that says it is alive */
#define EPH_PIN_DIR   "/sys/fs/bpf/ephport"
#define EPH_RUN_DIR   "/run/ephport"
#define EPH_LOCK_PATH EPH_RUN_DIR "/agent.lock"

/* exit codes */
#define EXIT_USAGE 2

/* util.c */
extern bool eph_json_mode;
void eph_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *bad_option(char **argv, char buf[3]);
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int format_rfc3339_ms(const struct timespec *ts, char *buf, size_t len);
int json_print_line(cJSON *obj);

/* addr.c: addresses in tuple_key form (IPv4 in the first 4 bytes) */
#define EPH_ADDRSTRLEN 46
int addr_format(__u16 family, const __u8 addr[16], char *buf, size_t len);
int addr_parse(const char *s, __u16 *family, __u8 addr[16]);

struct tuple_filter {
	bool netns_set, src_set, dst_set, dport_set;
	__u16 src_family, dst_family;
	__u16 dport;
	__u32 netns;
	__u8 src[16], dst[16];
};
int filter_parse_dst(struct tuple_filter *f, const char *s);
int filter_parse_src(struct tuple_filter *f, const char *s);
int filter_parse_netns(struct tuple_filter *f, const char *s);

/* tuples.c: a snapshot of the tuples map */
struct tuple {
	struct tuple_key key;
	struct tuple_val val;
	__s64 in_use;
};

struct tuple_list {
	struct tuple *items;
	size_t len, cap;
	size_t seen; /* entries in the map when read, filtered out or not */
};

bool filter_match(const struct tuple_filter *f, const struct tuple *t);
void tuple_finish(struct tuple *t);
int tuple_list_read(int map_fd, const struct tuple_filter *f, struct tuple_list *out);
void tuple_list_sort(struct tuple_list *l);
void tuple_list_free(struct tuple_list *l);
int tuple_to_json(const struct tuple *t, cJSON *obj);

/* counters the BPF side keeps about itself, plus map sizes */
struct agent_stats {
	__u64 counters[EPH_STAT_MAX];
	__u32 max_tuples;
	__u32 max_sockets;
};
int stats_read(int stats_fd, struct agent_stats *st);
int stats_to_json(const struct agent_stats *st, size_t tuples, cJSON *obj);

/* lock.c: one agent per host */
int agent_lock_acquire(int *fd_out, long *holder);
int agent_lock_holder(pid_t *pid);
void agent_lock_release(int fd);

/* subcommands */
int cmd_agent(int argc, char **argv);
int cmd_query(int argc, char **argv);

#endif /* EPHPORT_H */
