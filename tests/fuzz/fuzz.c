// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Helpers for the fuzz targets (fuzz.h), linked into each. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

char *fuzz_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

size_t fuzz_split(const uint8_t *data, size_t size, char **words, size_t max, char **buf)
{
	size_t n = 0;
	char *p;

	*buf = fuzz_str(data, size);
	for (p = *buf; n < max && p <= *buf + size; p += strlen(p) + 1)
		words[n++] = p;
	return n;
}

void fuzz_fail(const char *what, const char *file, int line)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg), "fuzz: %s:%d: %s does not hold\n", file, line, what);

	/* fd 2 itself: stderr, the FILE, is /dev/null here */
	if (n > 0 && write(STDERR_FILENO, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg)))
		abort();
	abort();
}

/*
 * The parsers' own lines (errors, --help) would only slow the fuzzers: stdout and the
 * stderr FILE go to /dev/null. libFuzzer and the sanitizers keep writing to fd 2.
 */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	FILE *null = fopen("/dev/null", "w");

	(void)argc;
	(void)argv;
	if (!null || !freopen("/dev/null", "w", stdout))
		abort();
	stderr = null;
	return 0;
}

/*
 * --metrics-addr resolves a host name: never in a fuzzer, which would ask DNS for
 * every name it makes up. Targets are linked with -Wl,--wrap=getaddrinfo: numbers only.
 */
int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res)
{
	struct addrinfo h = hints ? *hints : (struct addrinfo){ 0 };

	h.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
	return __real_getaddrinfo(node, service, &h, res);
}
