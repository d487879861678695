// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Which --spread addresses are local in the current network namespace, as
 * bpf_bind() judges them (inet_bind, inet6_bind): the guard binds a socket
 * only to one of those (bpf/guard.bpf.c). Read over rtnetlink, one socket a
 * reading:
 *  - IPv4: the longest prefix of the local table (RT_TABLE_LOCAL) that holds
 *    the address is of type RTN_LOCAL. All of 127.0.0.0/8 while lo is up, and
 *    AnyIP routes ('ip route add local 198.18.0.0/16 dev lo'), count.
 *  - IPv6: an interface has it, and it is not tentative (optimistic counts,
 *    as in ipv6_chk_addr) nor failed duplicate address detection.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "ephport.h"
#include "netns.h"

/* receive calls a dump may take: far more than any real table needs, never forever */
#define SPREAD_MAX_RECVS 4096
/* the kernel fills a dump's messages up to the size read, 32 KiB at the most */
#define SPREAD_RECV_SIZE 32768

struct spread_scan {
	const struct spread_addr *spread;
	size_t n;
	__u32 mask;
	__s8 best[MAX_SPREAD]; /* IPv4: the longest local-table prefix holding it; -1 none */
	__u8 best_type[MAX_SPREAD];
};

static const void *attr_of(struct nlattr **tb, int type, size_t len)
{
	if (!tb[type] || mnl_attr_get_payload_len(tb[type]) < len)
		return NULL;
	return mnl_attr_get_payload(tb[type]);
}

static int attr_cb(const struct nlattr *attr, void *data)
{
	struct nlattr **tb = data;
	int type = mnl_attr_get_type(attr);

	/* RTA_MAX and IFA_MAX are well below 64: the table is that large */
	if (mnl_attr_type_valid(attr, 63) > 0)
		tb[type] = (struct nlattr *)attr;
	return MNL_CB_OK;
}

/* addr is in net/bits */
static bool prefix_holds(const __u8 *net, unsigned bits, const __u8 *addr)
{
	unsigned whole = bits / 8, rest = bits % 8;

	if (memcmp(net, addr, whole))
		return false;
	return !rest || !((net[whole] ^ addr[whole]) & (0xff00 >> rest));
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	static const __u8 any[4];
	struct spread_scan *s = data;
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	struct nlattr *tb[64] = { 0 };
	const __u8 *dst = any;
	const __u32 *table;

	if (nlh->nlmsg_type != RTM_NEWROUTE || nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*rtm)) ||
	    rtm->rtm_family != AF_INET || rtm->rtm_dst_len > 32 ||
	    mnl_attr_parse(nlh, sizeof(*rtm), attr_cb, tb) < 0)
		return MNL_CB_OK;
	/* the kernel filters by table only on a socket with strict checking */
	table = attr_of(tb, RTA_TABLE, sizeof(*table));
	if ((table ? *table : rtm->rtm_table) != RT_TABLE_LOCAL)
		return MNL_CB_OK;
	if (rtm->rtm_dst_len && !(dst = attr_of(tb, RTA_DST, 4)))
		return MNL_CB_OK;
	for (size_t i = 0; i < s->n; i++) {
		if (s->spread[i].family != AF_INET || s->best[i] >= rtm->rtm_dst_len ||
		    !prefix_holds(dst, rtm->rtm_dst_len, s->spread[i].addr))
			continue;
		s->best[i] = (__s8)rtm->rtm_dst_len;
		s->best_type[i] = rtm->rtm_type;
	}
	return MNL_CB_OK;
}

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	struct spread_scan *s = data;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	struct nlattr *tb[64] = { 0 };
	const __u32 *fl;
	const __u8 *addr;
	__u32 flags;

	if (nlh->nlmsg_type != RTM_NEWADDR || nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)) ||
	    ifa->ifa_family != AF_INET6 || mnl_attr_parse(nlh, sizeof(*ifa), attr_cb, tb) < 0)
		return MNL_CB_OK;
	fl = attr_of(tb, IFA_FLAGS, sizeof(*fl));
	flags = fl ? *fl : ifa->ifa_flags;
	if (flags & IFA_F_DADFAILED || (flags & IFA_F_TENTATIVE && !(flags & IFA_F_OPTIMISTIC)))
		return MNL_CB_OK;
	/* with a peer, IFA_ADDRESS is the peer's and IFA_LOCAL ours */
	addr = attr_of(tb, IFA_LOCAL, 16);
	if (!addr && !(addr = attr_of(tb, IFA_ADDRESS, 16)))
		return MNL_CB_OK;
	for (size_t i = 0; i < s->n; i++)
		if (s->spread[i].family == AF_INET6 && !memcmp(s->spread[i].addr, addr, 16))
			s->mask |= 1u << i;
	return MNL_CB_OK;
}

/* one dump, to its end; 0 or -errno */
static int dump(struct mnl_socket *nl, __u16 type, struct spread_scan *s, mnl_cb_t cb)
{
	char buf[SPREAD_RECV_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	__u32 seq = (__u32)time(NULL) ^ type;
	int ret = MNL_CB_OK;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	if (type == RTM_GETROUTE) {
		struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));

		rtm->rtm_family = AF_INET;
		rtm->rtm_table = RT_TABLE_LOCAL;
	} else {
		struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));

		ifa->ifa_family = AF_INET6;
	}
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return neg_errno();
	for (int i = 0; ret > MNL_CB_STOP && i < SPREAD_MAX_RECVS; i++) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));

		if (n < 0)
			return neg_errno();
		/* portid 0: the kernel chose ours at sendto */
		ret = mnl_cb_run(buf, n, seq, 0, cb, s);
		/* a local table the namespace lacks has nothing local in it */
		if (ret < 0)
			return type == RTM_GETROUTE && errno == ENOENT ? 0 : neg_errno();
	}
	return ret == MNL_CB_STOP ? 0 : -E2BIG;
}

int spread_local_read(const struct spread_addr *spread, size_t n, __u32 *mask)
{
	struct spread_scan s = { .spread = spread, .n = n < MAX_SPREAD ? n : MAX_SPREAD };
	bool v4 = false, v6 = false;
	struct mnl_socket *nl;
	int one = 1, err = 0;

	for (size_t i = 0; i < s.n; i++) {
		v4 |= spread[i].family == AF_INET;
		v6 |= spread[i].family == AF_INET6;
		s.best[i] = -1;
	}
	if (!v4 && !v6) {
		*mask = 0;
		return 0;
	}
	/* nonblocking: a dump's parts are made as they are read, never waited for */
	nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (!nl)
		return neg_errno();
	/* the kernel then dumps the local table only (Linux 4.20); without, all, filtered here */
	mnl_socket_setsockopt(nl, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
	if (v4)
		err = dump(nl, RTM_GETROUTE, &s, route_cb);
	if (!err && v6)
		err = dump(nl, RTM_GETADDR, &s, addr_cb);
	mnl_socket_close(nl);
	if (err)
		return err;
	for (size_t i = 0; i < s.n; i++)
		if (s.best[i] >= 0 && s.best_type[i] == RTN_LOCAL)
			s.mask |= 1u << i;
	*mask = s.mask;
	return 0;
}
