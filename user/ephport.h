/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Declarations shared by ephport's user-space files. */
#ifndef EPHPORT_H
#define EPHPORT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <linux/types.h>
#include <cjson/cJSON.h>

#include "index.h"
#include "tuples.h"
#include "jsonw.h"

#ifndef EPHPORT_VERSION
#define EPHPORT_VERSION "0.0.0-dev"
#endif

/* where a running agent publishes its maps, and the lock that says it is alive */
#define EPH_PIN_DIR   "/sys/fs/bpf/ephport"
#define EPH_RUN_DIR   "/run/ephport"
#define EPH_LOCK_PATH EPH_RUN_DIR "/agent.lock"

/* version of the event lines' layout (docs/events.schema.json) */
#define EPH_SCHEMA_VERSION 1

/* adds a number to a cJSON object: 0, or -ENOMEM */
#define ADD_NUM(obj, name, v) (cJSON_AddNumberToObject((obj), (name), (double)(v)) ? 0 : -ENOMEM)

/*
 * Errors. A function that fails returns a negative errno (never -1 for its own
 * sake). The one line on stderr (eph_err) is printed where what failed is known,
 * the file, map, program or option, which is where it is handled; the callers
 * that pass the error up print nothing more. eph_err leaves errno as it was.
 */
static inline int neg_errno(void)
{
	return errno > 0 ? -errno : -EIO; /* the call that just failed; -EIO if it set none */
}

/* exit codes */
#define EXIT_USAGE 2

/* util.c */
extern bool eph_json_mode;
void eph_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *bad_option(char **argv, char buf[3]);
const char *option_of_value(char **argv, int optind_now);
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
__u64 mono_ns(void);
int format_rfc3339_ms(const struct timespec *ts, char *buf, size_t len);
int json_print_line(cJSON *obj);
int map_read_all(int fd, size_t ksz, size_t vsz, void **keys, void **vals, size_t *n);
typedef int (*map_batch_fn)(const void *keys, const void *vals, size_t n, void *arg);
int map_read_each(int fd, size_t ksz, size_t vsz, map_batch_fn fn, void *arg);
int u32_cmp(const void *a, const void *b);
/* the items of a tsearch(3) tree in key order (those that fit, out of memory); free() it */
void **tree_items(const void *root, size_t *n);

/* addr.c: addresses in tuple_key form (IPv4 in the first 4 bytes) */
#define EPH_ADDRSTRLEN 46
int addr_format(__u16 family, const __u8 addr[16], char *buf, size_t len);
size_t addr_put(__u16 family, const __u8 addr[16], char *buf);
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
	__s64 in_use;	    /* sockets in every state but TIME_WAIT */
	__s64 time_wait;    /* TIME_WAIT sockets */
	__s64 reusable;	    /* of those, what tcp_tw_reuse lets connect() take over */
	__s64 usage;	    /* in_use + time_wait - reusable */
	__s64 capacity;	    /* ports connect() can use for this tuple */
	double utilization; /* usage / capacity */
};

struct tuple_list {
	struct tuple *items;
	size_t len, cap;
	size_t seen; /* entries in the map when read, filtered out or not */
};

bool filter_match(const struct tuple_filter *f, const struct tuple *t);
void tuple_finish(struct tuple *t);
int tuple_list_push(struct tuple_list *l, const struct tuple *t);
int tuple_list_read(int map_fd, const struct tuple_filter *f, struct tuple_list *out);
/* most used first: < 0 when x comes before y */
int tuple_order_cmp(const struct tuple *x, const struct tuple *y);
void tuple_list_sort(struct tuple_list *l);
void tuple_index_sort(const struct tuple_list *l, __u32 *idx, size_t n);
void tuple_list_free(struct tuple_list *l);
int tuple_key_to_json(const struct tuple_key *k, bool destination, cJSON *obj);
/* a new object in arr, with the tuple and a cgroup_id (query's denials and spread); NULL: no memory
 */
cJSON *tuple_cgroup_item(cJSON *arr, const struct tuple_key *k, __u64 cgroup_id);
int tuple_to_json(const struct tuple *t, cJSON *obj);
void tuple_write_json(const struct tuple *t, struct jsonw *w);
void tuple_key_write_json(const struct tuple_key *k, bool destination, struct jsonw *w);

/* capacity.c: namespaces as the maps show them, and each tuple's capacity */
struct ns_port {
	__u16 port;
	__s64 count;
};

struct ns_summary {
	__u32 inum;
	bool has_info; /* the agent read it from inside the namespace */
	struct netns_info info;
	__u32 port_range;     /* the agent's reading, else the newest connect's */
	__u8 tw_reuse;	      /* likewise */
	__u32 bound_in_range; /* distinct ports in the range held by listeners or bind() */
	__s64 tw_tuples;      /* TIME_WAIT sockets counted in its tuples */
	__s64 tw_server;      /* TIME_WAIT sockets on local ports with a listener */
	__s64 tw_other;	      /* TIME_WAIT sockets of sockets ephport did not track */
	struct ns_port *server;
	size_t nserver, capserver;
	__u64 newest_connect;
};

struct ns_list {
	struct ns_summary *items;
	size_t len, cap;
	struct u32_index idx; /* by inum; none in a list made by hand (searched in turn) */
};

#define PORT_LOW(r)  ((r)&0xffff)
#define PORT_HIGH(r) ((r) >> 16)

struct ns_summary *ns_find(struct ns_list *l, __u32 inum, bool create);
/* the same lookup on a list that stays as it is */
const struct ns_summary *ns_lookup(const struct ns_list *l, __u32 inum);
/* a namespace's settings as read inside it */
int ns_set_info(struct ns_list *l, __u32 inum, const struct netns_info *info);
struct tuple_table;
int ns_list_build(struct ns_list *l, const struct tuple_list *tuples,
		  const struct tuple_table *table, int info_fd, int ports_fd, int local_tw_fd);
void ns_list_free(struct ns_list *l);
/* with spread_addresses: those of spread[0..nspread) local in it (none when nspread is 0) */
int ns_to_json(const struct ns_summary *ns, const struct spread_addr *spread, size_t nspread,
	       cJSON *obj);
/* from spread[*i] on, the next local in ns (read from inside) as text, *i its index; or false */
bool ns_spread_next(const struct ns_summary *ns, const struct spread_addr *spread, size_t nspread,
		    size_t *i, char text[EPH_ADDRSTRLEN]);
/* the container and pod of its first process ("" for each when none, or not read yet) */
struct cgroup_ids;
void ns_pod_ids(const struct ns_summary *ns, struct cgroup_ids *ids);
void tuple_capacity(struct tuple *t, const struct ns_summary *ns);
int reserved_ports_count(const char *list, __u32 range, __u32 *count);

/* a count per network namespace */
struct netns_count {
	__u32 netns;
	__u64 count;
};

/*
 * Counts summed: n items of size bytes, each a struct tuple_key first and a
 * __u64 count at count_off (refusals, spread connects), per tuple of l into
 * per_tuple[l->len], per namespace into *by_netns (malloc'd, *nnetns long),
 * and in all into *total.
 */
int tuple_counts_sum(const void *items, size_t n, size_t size, size_t count_off,
		     const struct tuple_list *l, __u64 *per_tuple, struct netns_count **by_netns,
		     size_t *nnetns, __u64 *total);

/* counters the BPF side keeps about itself, plus map sizes */
struct agent_stats {
	__u64 counters[EPH_STAT_MAX];
	__u32 max_tuples;
};
int stats_read(int stats_fd, struct agent_stats *st);
int stats_to_json(const struct agent_stats *st, size_t tuples, cJSON *obj);
struct stat_name {
	const char *line;	 /* in stats lines and query's stats */
	const char *lost_reason; /* ephport_lost_events_total's reason; NULL: not a loss */
};
extern const struct stat_name eph_stat_names[EPH_STAT_MAX];

/* report.c: the agent's event lines */
struct sink;
struct cgroup_resolver;
/* the latest alerting lines (pressure, nat_pressure, connect_failed, bind_failed,
 * connect_denied), kept for query's "recent" and ephport top */
#define REPORT_RECENT 16
struct recent_line {
	char *line;  /* the line as written, without its newline; NULL: none yet */
	__u64 netns; /* its namespace (0: none) */
};

struct report {
	struct sink *sink;
	const char *host;
	struct cgroup_resolver *cgroups; /* NULL: cgroup paths are not resolved */
	__u64 unbuilt;			 /* events that could not be built (out of memory) */
	struct jsonw line;		 /* tuple lines not yet given to the sink */
	size_t nlines;
	struct recent_line recent[REPORT_RECENT]; /* a ring: the oldest at recent_next */
	size_t recent_next;
};
cJSON *report_new(struct report *r, const char *event);
void report_emit(struct report *r, cJSON *ev);
/* a tuple line, written without cJSON: a snapshot has one per tuple in use */
void report_emit_tuple(struct report *r, const struct tuple *t);
void report_flush(struct report *r);
__u64 report_dropped(const struct report *r);
/* the i-th of the recent lines, oldest first (NULL past the last) */
const struct recent_line *report_recent(const struct report *r, size_t i);
void report_free(struct report *r);
int attribution_to_json(struct report *r, cJSON *obj, __u32 pid, __u32 tid, const char *comm,
			__u32 uid, __u64 cgroup_id);

/* lock.c: one agent per host */
int agent_lock_acquire(int *fd_out, long *holder);
int agent_lock_holder(pid_t *pid);
/*
 * For the commands that ask a running agent (cmd: "query"): 0 when one runs (its pid in
 * *pid, unless NULL); otherwise one line saying why (start: how to start one) and 1
 */
int agent_require(const char *cmd, const char *start, pid_t *pid);
void agent_lock_release(int fd);

/* subcommands */
int cmd_agent(int argc, char **argv);
int cmd_query(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_guard(int argc, char **argv);

#endif /* EPHPORT_H */
