/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The agent's output: a bounded queue and a writer thread (sink.c). */
#ifndef EPHPORT_SINK_H
#define EPHPORT_SINK_H

#include <stddef.h>
#include <linux/types.h>

struct sink;

/*
 * path NULL: standard output; max_queued: bytes waiting before lines are dropped.
 * path must be a regular file of the agent's user, or new, and no symlink; a
 * negative errno after one line on stderr otherwise.
 */
int sink_open(struct sink **s, const char *path, size_t max_queued);
/* queues one line (without '\n'); never blocks; -ENOBUFS when it was dropped */
int sink_put(struct sink *s, const char *text);
/* len bytes of lines joined by '\n', its last without one: queued (or dropped) as one */
int sink_put_lines(struct sink *s, const char *text, size_t len, size_t lines);
/* open the file again at its path, for logrotate (SIGHUP) */
void sink_reopen(struct sink *s);
__u64 sink_dropped(const struct sink *s);
/* writes the output refused (a full disk, an I/O error), and reopens that failed */
__u64 sink_errors(const struct sink *s);
void sink_close(struct sink *s, int timeout_ms);

/*
 * For a forced exit: waits for the line being written to end, and lets no other
 * start. Never released: the process exits.
 */
void sink_hold_lines(void);

#endif /* EPHPORT_SINK_H */
