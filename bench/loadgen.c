// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * loadgen: TCP connection churn over loopback, for ephport benchmarks.
 *
 * Run it inside a private network namespace with lo up. One process holds
 * both ends: epoll servers listening on N loopback ports, and T client
 * threads that connect, optionally exchange one byte, and close (FIN, so
 * the client keeps a TIME_WAIT socket, or RST, so nothing is left). It
 * prints one result line when the client phase ends.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS    64
#define MAX_DESTS      1024
#define LISTEN_BACKLOG 4096
#define MAX_FAILURES   1000000ULL
#define DRAIN_SECONDS  2.0
#define EPOLL_BATCH    256
#define ACCEPT_BATCH   64 /* accepts per wakeup: the queue never becomes all fds */
#define MAX_ADDRESSES  (1U << 24)
#define LISTENER_TAG   (1ULL << 32)

enum {
	OPT_COUNT = 256,
	OPT_REQUEST,
	OPT_SERVER_THREADS,
	OPT_ADDRESSES,
};

struct opts {
	unsigned int threads;
	unsigned int dests;
	unsigned int port;
	unsigned int server_threads; /* 0: as many as client threads */
	unsigned int addresses;
	double duration;
	unsigned long long count;
	bool rst;
	bool ipv6;
	bool json;
	bool request;
};

/* per client thread; aligned so the counters do not share cache lines */
struct client {
	_Alignas(64) pthread_t tid;
	unsigned int index;
	unsigned long long connections;
	unsigned long long failures;
	unsigned long long eaddrnotavail;
};

static struct opts opt = {
	.threads = 2,
	.dests = 4,
	.port = 7000,
	.addresses = 1,
	.duration = 3.0,
};

static const char short_opts[] = ":t:d:n:p:c:6jh";

static const struct option long_opts[] = {
	{ "threads", required_argument, NULL, 't' },
	{ "duration", required_argument, NULL, 'd' },
	{ "destinations", required_argument, NULL, 'n' },
	{ "port", required_argument, NULL, 'p' },
	{ "close", required_argument, NULL, 'c' },
	{ "ipv6", no_argument, NULL, '6' },
	{ "json", no_argument, NULL, 'j' },
	{ "help", no_argument, NULL, 'h' },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "request", no_argument, NULL, OPT_REQUEST },
	{ "server-threads", required_argument, NULL, OPT_SERVER_THREADS },
	{ "addresses", required_argument, NULL, OPT_ADDRESSES },
	{ 0 },
};

static const char usage_text[] =
	"usage: loadgen [OPTION]...\n"
	"TCP connection churn over loopback; run it in a private network namespace.\n"
	"\n"
	"  -t, --threads T          client threads, 1-64 (default 2)\n"
	"  -n, --destinations N     listeners on ports BASE..BASE+N-1, 1-1024 (default 4)\n"
	"  -p, --port BASE          first listener port (default 7000)\n"
	"      --addresses A        connect to A addresses, 127.0.0.1 and up (IPv4;\n"
	"                           listeners on 0.0.0.0): A x N destination tuples\n"
	"  -d, --duration SECONDS   length of the client phase (default 3)\n"
	"      --count N            stop after N connections in total (0: no limit)\n"
	"  -c, --close fin|rst      fin: client closes first and keeps TIME_WAIT\n"
	"                           (default); rst: SO_LINGER 0, no TIME_WAIT\n"
	"      --request            send 1 byte and wait for a 1 byte answer\n"
	"      --server-threads K   server epoll threads, 1-64 (default: as many as\n"
	"                           client threads)\n"
	"  -6, --ipv6               use ::1 instead of 127.0.0.1\n"
	"  -j, --json               print the result as a JSON object\n"
	"  -h, --help               show this help\n"
	"\n"
	"Prints connections (successful), failures (all failed attempts, socket()\n"
	"and connect() errors, and failed request/answer exchanges), eaddrnotavail\n"
	"(the part of failures that was EADDRNOTAVAIL), seconds and rate of the\n"
	"client phase.\n";

static struct sockaddr_storage dest_addr[MAX_DESTS];
static socklen_t dest_len;
static double deadline;
static atomic_bool stop;
static atomic_ullong tickets;
static atomic_ullong sequence; /* attempts so far, all threads: picks destinations */
static atomic_ullong total_failures;
static atomic_ullong accepted;
static atomic_ullong closed;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* a setup call failed: name it and exit 1 */
_Noreturn static void die(const char *what)
{
	fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

_Noreturn __attribute__((format(printf, 1, 2))) static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("loadgen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static unsigned long long parse_number(const char *name, const char *s)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		usage_error("bad number '%s' for %s", s, name);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end || errno)
		usage_error("bad number '%s' for %s", s, name);
	return v;
}

static unsigned int parse_range(const char *name, const char *s, unsigned int lo, unsigned int hi)
{
	unsigned long long v = parse_number(name, s);

	if (v < lo || v > hi)
		usage_error("%s must be %u..%u, not %s", name, lo, hi, s);
	return (unsigned int)v;
}

static double parse_duration(const char *s)
{
	double v;
	char *end;

	if ((*s < '0' || *s > '9') && *s != '.')
		usage_error("bad number '%s' for --duration", s);
	errno = 0;
	v = strtod(s, &end);
	if (*end || errno || !isfinite(v))
		usage_error("bad number '%s' for --duration", s);
	if (v <= 0)
		usage_error("--duration must be above 0, not %s", s);
	return v;
}

/* the long name of an option getopt_long returned, for messages */
static const char *option_name(int val)
{
	static char buf[64];
	const struct option *o;

	for (o = long_opts; o->name; o++) {
		if (o->val == val) {
			snprintf(buf, sizeof(buf), "--%s", o->name);
			return buf;
		}
	}
	snprintf(buf, sizeof(buf), "-%c", val);
	return buf;
}

/* getopt_long returned '?': an unknown option, or a value given to a flag */
_Noreturn static void bad_option(char **argv)
{
	bool known = optopt >= 256 || (optopt > 0 && strchr(short_opts + 1, optopt));

	if (!optopt)
		usage_error("unknown option '%s'", argv[optind - 1]);
	if (known)
		usage_error("option '%s' takes no value", option_name(optopt));
	usage_error("unknown option '-%c'", optopt);
}

static void parse_option(int c, char **argv)
{
	switch (c) {
	case 't':
		opt.threads = parse_range("--threads", optarg, 1, MAX_THREADS);
		break;
	case 'd':
		opt.duration = parse_duration(optarg);
		break;
	case 'n':
		opt.dests = parse_range("--destinations", optarg, 1, MAX_DESTS);
		break;
	case 'p':
		opt.port = parse_range("--port", optarg, 1, 65535);
		break;
	case 'c':
		if (strcmp(optarg, "fin") && strcmp(optarg, "rst"))
			usage_error("--close must be fin or rst, not '%s'", optarg);
		opt.rst = !strcmp(optarg, "rst");
		break;
	case '6':
		opt.ipv6 = true;
		break;
	case 'j':
		opt.json = true;
		break;
	case 'h':
		fputs(usage_text, stdout);
		exit(0);
	case OPT_COUNT:
		opt.count = parse_number("--count", optarg);
		break;
	case OPT_REQUEST:
		opt.request = true;
		break;
	case OPT_ADDRESSES:
		opt.addresses = parse_range("--addresses", optarg, 1, MAX_ADDRESSES);
		break;
	case OPT_SERVER_THREADS:
		opt.server_threads = parse_range("--server-threads", optarg, 1, MAX_THREADS);
		break;
	case ':':
		usage_error("option '%s' needs a value", option_name(optopt));
	default:
		bad_option(argv);
	}
}

static void parse_args(int argc, char **argv)
{
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1)
		parse_option(c, argv);
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (opt.port + opt.dests - 1 > 65535)
		usage_error("ports %u..%u go past 65535", opt.port, opt.port + opt.dests - 1);
	if (opt.addresses > 1 && opt.ipv6)
		usage_error("--addresses is for IPv4 only");
	if (!opt.server_threads)
		opt.server_threads = opt.threads;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int family(void)
{
	return opt.ipv6 ? AF_INET6 : AF_INET;
}

static void fill_addr(struct sockaddr_storage *ss, unsigned int port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (opt.ipv6) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sin6->sin6_addr = in6addr_loopback;
		dest_len = sizeof(*sin6);
	} else {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = htonl(opt.addresses > 1 ? INADDR_ANY : INADDR_LOOPBACK);
		dest_len = sizeof(*sin);
	}
}

/* a failed listener setup call, named with its address */
_Noreturn static void die_listener(const char *call, unsigned int i)
{
	char what[64];

	snprintf(what, sizeof(what), "%s %s:%u", call, opt.ipv6 ? "[::1]" : "127.0.0.1",
		 opt.port + i);
	die(what);
}

static int open_listener(unsigned int i)
{
	int fd, one = 1;

	fd = socket(family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		die("setsockopt SO_REUSEADDR");
	if (bind(fd, (struct sockaddr *)&dest_addr[i], dest_len) < 0)
		die_listener("bind", i);
	if (listen(fd, LISTEN_BACKLOG) < 0)
		die_listener("listen", i);
	return fd;
}

static void server_close(int fd)
{
	close(fd);
	atomic_fetch_add_explicit(&closed, 1, memory_order_relaxed);
}

/* accept until the queue is empty; each socket then waits for readability */
static void server_accept(int epfd, int lfd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int fd, n;

	for (n = 0; n < ACCEPT_BATCH; n++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		atomic_fetch_add_explicit(&accepted, 1, memory_order_relaxed);
		ev.data.u64 = (uint64_t)fd;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			server_close(fd);
	}
}

/* the server side never closes first: only on EOF, error or hangup */
static void server_data(int fd, uint32_t events)
{
	char buf[64];
	ssize_t n;

	if (events & (EPOLLERR | EPOLLHUP)) {
		server_close(fd);
		return;
	}
	n = read(fd, buf, sizeof(buf));
	if (n > 0) {
		if (opt.request)
			send(fd, buf, 1, MSG_NOSIGNAL);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	server_close(fd);
}

static void *server_thread(void *arg)
{
	struct epoll_event ev[EPOLL_BATCH];
	int epfd = (int)(intptr_t)arg;
	int i, n;

	for (;;) {
		n = epoll_wait(epfd, ev, EPOLL_BATCH, -1);
		for (i = 0; i < n; i++) {
			uint64_t data = ev[i].data.u64;

			if (data & LISTENER_TAG)
				server_accept(epfd, (int)(uint32_t)data);
			else
				server_data((int)data, ev[i].events);
		}
	}
	return NULL;
}

/* each server thread has its own epoll; they share the listeners */
static void start_servers(const int *lfd)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE };
	pthread_t tid;
	unsigned int t, i;
	int epfd, err;

	for (t = 0; t < opt.server_threads; t++) {
		epfd = epoll_create1(EPOLL_CLOEXEC);
		if (epfd < 0)
			die("epoll_create1");
		for (i = 0; i < opt.dests; i++) {
			ev.data.u64 = LISTENER_TAG | (uint32_t)lfd[i];
			if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd[i], &ev) < 0)
				die("epoll_ctl");
		}
		err = pthread_create(&tid, NULL, server_thread, (void *)(intptr_t)epfd);
		if (err) {
			errno = err;
			die("pthread_create");
		}
		pthread_detach(tid);
	}
}

static int exchange(int fd)
{
	char b = 'q';
	ssize_t n;

	n = send(fd, &b, 1, MSG_NOSIGNAL);
	if (n != 1)
		return n < 0 ? errno : EIO;
	n = recv(fd, &b, 1, 0);
	if (n != 1)
		return n < 0 ? errno : ECONNRESET;
	return 0;
}

/* one connection, the j-th of the run; 0, or the errno that failed it */
static int connect_once(unsigned long long j)
{
	static const struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	struct sockaddr_storage to = dest_addr[j % opt.dests];
	int fd, err = 0;

	if (opt.addresses > 1)
		((struct sockaddr_in *)&to)->sin_addr.s_addr =
			htonl(INADDR_LOOPBACK + (j / opt.dests) % opt.addresses);
	fd = socket(family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	if (connect(fd, (struct sockaddr *)&to, dest_len) < 0)
		err = errno;
	else if (opt.request)
		err = exchange(fd);
	if (!err && opt.rst)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
	close(fd);
	return err;
}

static void count_failure(struct client *c, int err)
{
	unsigned long long total;

	c->failures++;
	if (err == EADDRNOTAVAIL)
		c->eaddrnotavail++;
	if (!opt.count)
		return;
	total = atomic_fetch_add_explicit(&total_failures, 1, memory_order_relaxed) + 1;
	if (total >= MAX_FAILURES)
		atomic_store(&stop, true);
}

/*
 * With --count a thread claims a ticket before it tries, and keeps it over
 * failed attempts, so exactly --count connections succeed unless time or
 * the failure limit runs out first.
 */
static void *client_thread(void *arg)
{
	struct client *c = arg;
	bool ticket = false;
	int err;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		if (now() >= deadline)
			break;
		if (opt.count && !ticket) {
			if (atomic_fetch_add(&tickets, 1) >= opt.count)
				break;
			ticket = true;
		}
		/* the threads share one walk over the destinations */
		err = connect_once(atomic_fetch_add_explicit(&sequence, 1, memory_order_relaxed));
		if (err) {
			count_failure(c, err);
			continue;
		}
		c->connections++;
		ticket = false;
	}
	return NULL;
}

static void run_clients(struct client *c)
{
	unsigned int i;
	int err;

	for (i = 0; i < opt.threads; i++) {
		c[i].index = i;
		err = pthread_create(&c[i].tid, NULL, client_thread, &c[i]);
		if (err) {
			errno = err;
			die("pthread_create");
		}
	}
	for (i = 0; i < opt.threads; i++)
		pthread_join(c[i].tid, NULL);
}

/* give the server up to DRAIN_SECONDS to accept and close what it got */
static void wait_for_server(unsigned long long connections)
{
	const struct timespec ms = { .tv_nsec = 1000000 };
	double end = now() + DRAIN_SECONDS;
	unsigned long long a;

	while (now() < end) {
		a = atomic_load(&accepted);
		if (a >= connections && atomic_load(&closed) == a)
			return;
		nanosleep(&ms, NULL);
	}
}

static void print_result(const struct client *c, double seconds)
{
	unsigned long long conns = 0, fails = 0, eaddr = 0;
	unsigned int i;
	double rate;

	for (i = 0; i < opt.threads; i++) {
		conns += c[i].connections;
		fails += c[i].failures;
		eaddr += c[i].eaddrnotavail;
	}
	rate = seconds > 0 ? conns / seconds : 0;
	if (opt.json)
		printf("{\"connections\":%llu,\"failures\":%llu,"
		       "\"eaddrnotavail\":%llu,\"seconds\":%.3f,\"rate\":%.1f}\n",
		       conns, fails, eaddr, seconds, rate);
	else
		printf("connections=%llu failures=%llu eaddrnotavail=%llu "
		       "seconds=%.3f rate=%.1f\n",
		       conns, fails, eaddr, seconds, rate);
}

int main(int argc, char **argv)
{
	static struct client clients[MAX_THREADS];
	static int lfd[MAX_DESTS];
	unsigned long long conns = 0;
	double start, seconds;
	unsigned int i;

	parse_args(argc, argv);
	raise_nofile();
	for (i = 0; i < opt.dests; i++) {
		fill_addr(&dest_addr[i], opt.port + i);
		lfd[i] = open_listener(i);
	}
	start_servers(lfd);

	start = now();
	deadline = start + opt.duration;
	run_clients(clients);
	seconds = now() - start;

	for (i = 0; i < opt.threads; i++)
		conns += clients[i].connections;
	if (!opt.rst)
		wait_for_server(conns);
	print_result(clients, seconds);
	fflush(stdout);
	return 0;
}
