// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Addresses as tuple keys hold them, and the --src/--dst/--netns filters. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "ephport.h"

static const __u8 v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int addr_format(__u16 family, const __u8 addr[16], char *buf, size_t len)
{
	if (family != AF_INET && family != AF_INET6)
		return -EAFNOSUPPORT;
	return inet_ntop(family, addr, buf, len) ? 0 : -errno;
}

/*
 * addr_format()'s text at buf (EPH_ADDRSTRLEN bytes), its length returned; "?"
 * for a family that is neither. IPv4 without inet_ntop: a query of 65,536
 * tuples writes 131,072 of them.
 */
size_t addr_put(__u16 family, const __u8 addr[16], char *buf)
{
	char *p = buf;

	if (family != AF_INET) {
		if (addr_format(family, addr, buf, EPH_ADDRSTRLEN))
			snprintf(buf, EPH_ADDRSTRLEN, "?");
		return strlen(buf);
	}
	for (int i = 0; i < 4; i++) {
		__u8 b = addr[i];

		if (i)
			*p++ = '.';
		if (b >= 100)
			*p++ = '0' + b / 100;
		if (b >= 10)
			*p++ = '0' + b / 10 % 10;
		*p++ = '0' + b % 10;
	}
	*p = 0;
	return p - buf;
}

/* parse an IPv4 or IPv6 literal; an IPv4-mapped IPv6 address becomes IPv4, as the BPF side does */
int addr_parse(const char *s, __u16 *family, __u8 addr[16])
{
	__u8 buf[16] = { 0 };

	if (inet_pton(AF_INET, s, buf) == 1) {
		*family = AF_INET;
	} else if (inet_pton(AF_INET6, s, buf) == 1) {
		*family = AF_INET6;
		if (!memcmp(buf, v4mapped_prefix, sizeof(v4mapped_prefix))) {
			memmove(buf, buf + 12, 4);
			memset(buf + 4, 0, 12);
			*family = AF_INET;
		}
	} else {
		return -EINVAL;
	}
	memcpy(addr, buf, 16);
	return 0;
}

static int parse_port(const char *s, __u16 *port)
{
	uint64_t v;
	int err = parse_u64(s, 1, 65535, &v);

	if (!err)
		*port = (__u16)v;
	return err;
}

/* IP, IPv4:PORT, [IPv6] or [IPv6]:PORT */
int filter_parse_dst(struct tuple_filter *f, const char *s)
{
	char host[EPH_ADDRSTRLEN + 2];
	const char *port = NULL;
	__u16 family, dport = 0;
	__u8 addr[16];
	size_t n;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close)
			return -EINVAL;
		n = close - s - 1;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			return -EINVAL;
		s++;
	} else {
		const char *colon = strchr(s, ':');

		/* one colon is IPv4:PORT; more is a bare IPv6 address */
		if (colon && !strchr(colon + 1, ':')) {
			n = colon - s;
			port = colon + 1;
		} else {
			n = strlen(s);
		}
	}
	if (n == 0 || n >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	if (addr_parse(host, &family, addr) || (port && parse_port(port, &dport)))
		return -EINVAL;
	/* all of it: a --dst without a port given after one with a port has none */
	f->dst_family = family;
	memcpy(f->dst, addr, sizeof(addr));
	f->dport = dport;
	f->dport_set = port != NULL;
	f->dst_set = true;
	return 0;
}

int filter_parse_src(struct tuple_filter *f, const char *s)
{
	if (addr_parse(s, &f->src_family, f->src))
		return -EINVAL;
	f->src_set = true;
	return 0;
}

int filter_parse_netns(struct tuple_filter *f, const char *s)
{
	uint64_t v;

	/* accept "net:[4026531840]" as readlink prints it, too */
	if (!strncmp(s, "net:[", 5)) {
		char buf[16];
		size_t n = strlen(s + 5);

		if (n < 2 || n > sizeof(buf) || s[5 + n - 1] != ']')
			return -EINVAL;
		memcpy(buf, s + 5, n - 1);
		buf[n - 1] = '\0';
		if (parse_u64(buf, 1, UINT32_MAX, &v))
			return -EINVAL;
	} else if (parse_u64(s, 1, UINT32_MAX, &v)) {
		return -EINVAL;
	}
	f->netns = (__u32)v;
	f->netns_set = true;
	return 0;
}
