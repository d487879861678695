// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * natflows: new UDP flows at a steady rate, for the cost of counting source NAT
 * (bench/run --only nat). Each flow is a socket of its own (a new source port), one
 * datagram to ADDR:PORT, closed: through a masquerading router, one conntrack entry,
 * one NEW event, and later one DESTROY. Prints {"flows":N,"seconds":S,"rate":R}.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct sockaddr_in dst = { .sin_family = AF_INET };
	unsigned long port, rate, seconds, flows = 0, failed = 0;
	double start, end;
	char *e1, *e2, *e3;

	if (argc != 5) {
		fprintf(stderr, "usage: natflows ADDR PORT RATE SECONDS\n");
		return 2;
	}
	port = strtoul(argv[2], &e1, 10);
	rate = strtoul(argv[3], &e2, 10);
	seconds = strtoul(argv[4], &e3, 10);
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1 || *e1 || *e2 || *e3 || !port ||
	    port > 65535 || !rate || rate > 1000000 || !seconds || seconds > 3600) {
		fprintf(stderr, "natflows: ADDR an IPv4 address, PORT 1-65535, RATE 1-1000000 "
				"a second, SECONDS 1-3600\n");
		return 2;
	}
	dst.sin_port = htons(port);
	start = now_s();
	end = start + seconds;
	for (double t = now_s(); t < end; t = now_s()) {
		/* as many flows as the rate owes by now, then a short sleep */
		unsigned long due = (unsigned long)((t - start) * rate);

		for (; flows < due; flows++) {
			int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

			if (fd < 0 ||
			    sendto(fd, "x", 1, 0, (struct sockaddr *)&dst, sizeof(dst)) != 1)
				failed++;
			if (fd >= 0)
				close(fd);
		}
		usleep(1000);
	}
	printf("{\"flows\":%lu,\"failed\":%lu,\"seconds\":%.3f,\"rate\":%.1f}\n", flows, failed,
	       now_s() - start, flows / (now_s() - start));
	return 0;
}
