// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * ephport top: asks the running agent every --interval and shows what it answered,
 * nearest to exhaustion first (top_model.c, top_frame.c); ncurses draws it and takes the
 * keys. When standard output is no terminal, or with --json, it prints one frame (two
 * answers an interval apart, so that rates are known) and exits.
 */
#include <curses.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ephport.h"
#include "opts.h"
#include "query.h"
#include "top.h"

struct top_cfg {
	double interval;
	struct tuple_filter filter;
};

static int parse_netns(const char *arg, void *cfg)
{
	return filter_parse_netns(&((struct top_cfg *)cfg)->filter, arg);
}

static int parse_dst(const char *arg, void *cfg)
{
	return filter_parse_dst(&((struct top_cfg *)cfg)->filter, arg);
}

static const struct opt top_options[] = {
	{ "interval", 'i', OPT_DOUBLE_AT(struct top_cfg, interval), .dmin = 0.2, .dmax = 60,
	  .metavar = "SEC", .help = "seconds between refreshes (0.2-60, default 1)" },
	{ "netns", 'n', OPT_FUNC(parse_netns), .metavar = "INODE",
	  .help = "only this network namespace (readlink /proc/PID/ns/net)" },
	{ "dst", 'd', OPT_FUNC(parse_dst), .metavar = "IP[:PORT]",
	  .help = "only this destination ([IPv6]:PORT for IPv6 with a port)" },
	{ "json", 'j', OPT_FLAG_VAR(eph_json_mode),
	  .help = "one frame as a JSON document (two answers an interval apart), then exit" },
	{ "help", 'h', OPT_HELP, .help = "this help" },
	{ 0 },
};

const struct opts_cmd top_cmd = {
	.name = "top",
	.synopsis = "ephport top [--interval SEC] [--netns INODE] [--dst IP[:PORT]] [--json]",
	.about = "A live view of the running agent: tuples nearest to exhaustion first, its "
		 "namespaces, its latest alerts.",
	.epilog = "Keys: q quit, s next sort (utilization, connects/s, TIME_WAIT, destination), "
		  "n namespace, d destination, c clear the filters. Not on a terminal, it prints "
		  "one frame and exits.",
	.opts = top_options,
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* monotonic seconds */
static double mono(void)
{
	return (double)mono_ns() / 1e9;
}

/* one answer into the state: 0, or not 0 with why in why */
static int ask_agent(struct top_state *s, const struct tuple_filter *f, char *why, size_t len)
{
	struct query_req rq = { .version = QUERY_VERSION, .json = 1, .filter = *f };
	size_t n;
	char *text;
	int err;

	err = query_fetch(&rq, &text, &n, why, len);
	if (err)
		return err;
	err = top_take(s, text, mono());
	free(text);
	if (err)
		snprintf(why, len, "the agent's answer is not what this ephport reads");
	return err;
}

static void clock_now(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	if (!localtime_r(&t, &tm) || !strftime(buf, len, "%H:%M:%S", &tm))
		snprintf(buf, len, "--:--:--");
}

/* the filters, as the header says them */
static void describe(const struct tuple_filter *f, char *buf, size_t len)
{
	char addr[EPH_ADDRSTRLEN] = "?";
	int n = 0;

	buf[0] = 0;
	if (f->netns_set)
		n = snprintf(buf, len, "netns %u", f->netns);
	if (n < 0 || (size_t)n >= len || !f->dst_set)
		return;
	addr_format(f->dst_family, f->dst, addr, sizeof(addr));
	if (!f->dport_set)
		snprintf(buf + n, len - n, "%sdst %s", n ? ", " : "", addr);
	else
		snprintf(buf + n, len - n, strchr(addr, ':') ? "%sdst [%s]:%u" : "%sdst %s:%u",
			 n ? ", " : "", addr, f->dport);
}

static void row_json(cJSON *arr, const struct top_row *r)
{
	static const char *const names[] = { "ok", "warning", "critical", "exhausted" };
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return;
	cJSON_AddItemToArray(arr, o);
	cJSON_AddNumberToObject(o, "netns", (double)r->netns);
	cJSON_AddStringToObject(o, "saddr", r->src);
	cJSON_AddStringToObject(o, "destination", r->dst);
	cJSON_AddNumberToObject(o, "usage", (double)r->usage);
	cJSON_AddNumberToObject(o, "capacity", (double)r->capacity);
	cJSON_AddNumberToObject(o, "utilization", r->util);
	if (r->level >= 0 && r->level <= 3)
		cJSON_AddStringToObject(o, "level", names[r->level]);
	else
		cJSON_AddNullToObject(o, "level");
	cJSON_AddNumberToObject(o, "time_wait", (double)r->time_wait);
	if (r->rate >= 0)
		cJSON_AddNumberToObject(o, "connects_per_s", round(r->rate * 10) / 10);
	else
		cJSON_AddNullToObject(o, "connects_per_s");
	if (r->full_in >= 0)
		cJSON_AddNumberToObject(o, "seconds_to_full", round(r->full_in * 10) / 10);
	else
		cJSON_AddNullToObject(o, "seconds_to_full");
}

/* no terminal: one frame, as text or JSON */
static int print_once(struct top_state *s, const struct top_cfg *cfg, const char *filter)
{
	struct top_head h = {
		.interval = cfg->interval, .filter = filter, .status = "", .whole = true
	};
	char why[320], now[16];
	struct top_line *lines;
	const char *cols = getenv("COLUMNS");
	int width = cols && atoi(cols) >= 40 && atoi(cols) <= 500 ? atoi(cols) : 120;
	size_t n;

	if (ask_agent(s, &cfg->filter, why, sizeof(why)))
		goto fail;
	usleep((useconds_t)(cfg->interval * 1e6));
	if (ask_agent(s, &cfg->filter, why, sizeof(why)))
		goto fail;
	if (eph_json_mode) {
		cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "tuples");
		char *text;

		for (size_t i = 0; arr && i < s->nrows; i++)
			row_json(arr, &s->rows[i]);
		cJSON_AddNumberToObject(doc, "interval", cfg->interval);
		cJSON_AddNumberToObject(doc, "agent_pid", (double)s->agent_pid);
		text = cJSON_PrintUnformatted(doc);
		cJSON_Delete(doc);
		if (!text || printf("%s\n", text) < 0) {
			cJSON_free(text);
			eph_err("cannot write the frame: %s", strerror(errno));
			return 1;
		}
		cJSON_free(text);
		return 0;
	}
	clock_now(now, sizeof(now));
	h.host_time = now;
	lines = calloc(top_frame_lines(s), sizeof(*lines));
	if (!lines) {
		eph_err("out of memory");
		return 1;
	}
	n = top_frame(s, &h, width, (int)top_frame_lines(s), lines);
	for (size_t i = 0; i < n; i++)
		printf("%s\n", lines[i].text);
	free(lines);
	return fflush(stdout) ? 1 : 0;
fail:
	eph_err("%s", why);
	return 1;
}

/* colour pairs: a level's is its number + 1 */
static void colours(void)
{
	static const short fg[] = { COLOR_GREEN, COLOR_YELLOW, COLOR_RED, COLOR_WHITE };
	static const short bg[] = { -1, -1, -1, COLOR_RED };

	if (!has_colors() || start_color() == ERR)
		return;
	use_default_colors();
	for (short i = 0; i < 4; i++)
		init_pair(i + 1, fg[i], bg[i]);
}

static void draw(const struct top_state *s, const struct top_head *h, struct top_line *lines)
{
	size_t n = top_frame(s, h, COLS, LINES, lines);

	erase();
	for (size_t i = 0; i < n; i++) {
		const struct top_line *l = &lines[i];

		mvaddnstr((int)i, 0, l->text, COLS);
		if (l->heading)
			mvchgat((int)i, 0, -1, l->columns ? A_REVERSE : A_BOLD, 0, NULL);
		if (l->level_len && l->level >= 0 && has_colors())
			mvchgat((int)i, (int)l->level_at, (int)l->level_len,
				l->level >= 2 ? A_BOLD : A_NORMAL, (short)(l->level + 1), NULL);
	}
	refresh();
}

/* the prompt of n and d: what was typed so far */
struct prompt {
	int kind; /* 0: none, 'n' or 'd' */
	char text[64];
	size_t len;
};

/* a key while prompting; true when the prompt ends (*apply: Enter) */
static bool prompt_key(struct prompt *p, int ch, bool *apply)
{
	*apply = false;
	if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
		*apply = true;
		return true;
	}
	if (ch == 27) /* Escape */
		return true;
	if ((ch == KEY_BACKSPACE || ch == 127 || ch == 8) && p->len)
		p->text[--p->len] = 0;
	else if (ch >= 0x20 && ch < 0x7f && p->len + 1 < sizeof(p->text))
		p->text[p->len++] = (char)ch, p->text[p->len] = 0;
	return false;
}

static int live(struct top_state *s, struct top_cfg *cfg)
{
	struct top_line *lines = NULL;
	struct prompt pr = { 0 };
	char why[320] = "", status[400] = "", filter[160], now[16];
	double next = 0;
	SCREEN *scr = newterm(NULL, stdout, stdin);

	if (!scr) {
		eph_err("cannot drive this terminal (TERM=%s): no terminfo entry for it",
			getenv("TERM") ? getenv("TERM") : "");
		return 1;
	}
	cbreak();
	noecho();
	keypad(stdscr, TRUE);
	curs_set(0);
	colours();
	while (!stop) {
		struct top_head h = { .interval = cfg->interval,
				      .host_time = now,
				      .filter = filter,
				      .status = status };
		double left;
		bool apply;
		int ch;

		if (mono() >= next) {
			if (ask_agent(s, &cfg->filter, why, sizeof(why)))
				snprintf(status, sizeof(status), "the agent did not answer: %s",
					 why);
			else if (!pr.kind)
				status[0] = 0;
			next = mono() + cfg->interval;
		}
		if (pr.kind)
			snprintf(status, sizeof(status), "%s (empty: all, Esc: cancel): %s_",
				 pr.kind == 'n' ? "namespace inode" : "destination IP[:PORT]",
				 pr.text);
		describe(&cfg->filter, filter, sizeof(filter));
		clock_now(now, sizeof(now));
		free(lines);
		lines = calloc(LINES > 0 ? LINES : 1, sizeof(*lines));
		if (!lines)
			break;
		draw(s, &h, lines);
		left = next - mono();
		timeout(left > 0 ? (int)(left * 1000) + 1 : 0);
		ch = getch();
		if (ch == ERR || ch == KEY_RESIZE)
			continue;
		if (pr.kind) {
			if (prompt_key(&pr, ch, &apply)) {
				struct tuple_filter f = cfg->filter;
				int bad = 0;

				status[0] = 0;
				if (apply && pr.kind == 'n') {
					f.netns_set = false;
					bad = pr.len && filter_parse_netns(&f, pr.text);
				} else if (apply) {
					f.dst_set = f.dport_set = false;
					bad = pr.len && filter_parse_dst(&f, pr.text);
				}
				if (bad)
					snprintf(status, sizeof(status), "not a %s: %s",
						 pr.kind == 'n' ? "namespace inode" :
								  "destination IP[:PORT]",
						 pr.text);
				else if (apply)
					cfg->filter = f, next = 0;
				pr.kind = 0;
			}
			continue;
		}
		switch (ch) {
		case 'q':
		case 'Q':
			stop = 1;
			break;
		case 's':
			s->sort = (s->sort + 1) % TOP_SORT_N;
			break;
		case 'n':
		case 'd':
			pr = (struct prompt){ .kind = ch };
			break;
		case 'c':
			cfg->filter = (struct tuple_filter){ 0 };
			next = 0;
			break;
		default:
			break;
		}
	}
	free(lines);
	endwin();
	delscreen(scr);
	return 0;
}

int cmd_top(int argc, char **argv)
{
	struct top_cfg cfg = { .interval = 1 };
	struct top_state s = { 0 };
	struct sigaction sa = { .sa_handler = on_signal };
	char filter[160];
	int err;

	err = opts_parse(&top_cmd, argc, argv, &cfg);
	if (err)
		return err > 0 ? 0 : EXIT_USAGE;
	if (agent_require("top", "ephport agent", NULL))
		return 1;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (eph_json_mode || !isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO)) {
		describe(&cfg.filter, filter, sizeof(filter));
		err = print_once(&s, &cfg, filter);
	} else {
		err = live(&s, &cfg);
	}
	top_free(&s);
	return err;
}
