// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's signals. SIGINT, SIGTERM and SIGHUP are blocked in every thread
 * from the first line of 'ephport agent' on, and one thread takes them with
 * sigwaitinfo(): a SIGHUP at any time, start-up included, asks for a reopen and
 * never kills the agent; a SIGTERM is seen even while the main thread is stuck
 * in a slow call. The main loop polls wake_fd, written on each signal.
 *
 * After SIGINT or SIGTERM the agent has STOP_GRACE_S seconds to stop cleanly.
 * Then this thread removes the pins and exits at once: the guard's programs are
 * attached by links no file holds, so they go with the process, and nothing is
 * left that would refuse a connect.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include "agent.h"
#include "sink.h"

static atomic_int stop_sig, reopen;
static atomic_bool pins_made;
static int wake_fd = -1;

static void wake(void)
{
	__u64 one = 1;

	if (write(wake_fd, &one, sizeof(one)) < 0) {
		/* the counter is full: the loop is awake anyway */
	}
}

static void *signal_main(void *arg)
{
	const sigset_t *set = arg;
	struct timespec grace;
	siginfo_t si;
	int sig;

	for (;;) {
		sig = sigwaitinfo(set, &si);
		if (sig < 0)
			continue; /* EINTR */
		if (sig == SIGHUP) {
			atomic_store(&reopen, 1);
			wake();
			continue;
		}
		atomic_store(&stop_sig, sig);
		wake();
		break;
	}
	/* a second SIGINT or SIGTERM changes nothing: it waits, blocked */
	clock_gettime(CLOCK_MONOTONIC, &grace);
	grace.tv_sec += STOP_GRACE_S;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &grace, NULL) == EINTR)
		;
	/* a stderr nobody reads must not hold the exit: SIGALRM's default ends the process */
	alarm(2);
	sink_hold_lines();
	eph_err("did not stop within %d s of %s: exiting now; lines still queued are lost",
		STOP_GRACE_S, strsignal(sig));
	if (atomic_load(&pins_made))
		agent_unpin_all();
	_exit(1);
	return NULL;
}

int agent_signals_start(void)
{
	static sigset_t set;
	pthread_t thread;
	int err;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	/* first: a signal from now on waits for the thread instead of killing the agent */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (wake_fd < 0) {
		err = neg_errno();
		eph_err("cannot make an eventfd for signals: %s", strerror(-err));
		return err;
	}
	err = -pthread_create(&thread, NULL, signal_main, &set);
	if (err) {
		eph_err("cannot start the signal thread: %s", strerror(-err));
		return err;
	}
	pthread_detach(thread);
	return 0;
}

int agent_signals_fd(void)
{
	return wake_fd;
}

int agent_stop_signal(void)
{
	return atomic_load(&stop_sig);
}

bool agent_reopen_asked(void)
{
	__u64 n;

	if (read(wake_fd, &n, sizeof(n)) < 0) {
		/* nothing to read: no signal since the last look */
	}
	return atomic_exchange(&reopen, 0);
}

void agent_signals_pinned(bool pinned)
{
	atomic_store(&pins_made, pinned);
}
