// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * nat_ct's sockets and messages (nat_ct.h): the event socket with its classic BPF
 * filter, the dump socket, parsing a ctnetlink conntrack message into what the
 * counts (nat_ct_agg.c) need, the event loop, resynchronisation, and the
 * namespace's /proc/net/stat/nf_conntrack.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/filter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "nat_ct_int.h"

#define EV_BATCH	  64	      /* messages a recvmmsg */
#define EV_MSG_SIZE	  4096	      /* an event is well under 1 KiB */
#define DUMP_BUF	  (64 * 1024) /* a dump's datagrams: up to 32 KiB */
#define DEFAULT_RCVBUF	  (32 << 20)
#define DEFAULT_RESYNC_MS 30000
#define ATTRS_OFF	  (NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg)))

/* nlmsg_type's high byte (the nfnetlink subsystem), where this host keeps it */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define TYPE_HI_OFF 5
#else
#define TYPE_HI_OFF 4
#endif

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* the state an entry counts in, from the tcp tracker's */
static int tcp_state(__u8 s)
{
	switch (s) {
	case TCP_CONNTRACK_SYN_SENT:
	case TCP_CONNTRACK_SYN_SENT2:
		return NAT_CT_SYN_SENT;
	case TCP_CONNTRACK_ESTABLISHED:
		return NAT_CT_ESTABLISHED;
	case TCP_CONNTRACK_TIME_WAIT:
		return NAT_CT_TIME_WAIT;
	case TCP_CONNTRACK_CLOSE:
		return NAT_CT_CLOSE;
	default:
		return NAT_CT_OTHER;
	}
}

struct ct_tuple {
	__u8 src[16], dst[16];
	__u16 sport, dport; /* network order */
	__u8 proto;
	__u8 have_ip, have_proto;
};

/*
 * The attribute walk, inline: libmnl's out-of-line mnl_attr_* calls were half of
 * a message's cost. Stops at the first attribute that does not fit.
 */
#define attr_for_each(a, rem, start, len)                                                \
	for ((a) = (const struct nlattr *)(start), (rem) = (int)(len);                   \
	     (rem) >= NLA_HDRLEN && (a)->nla_len >= NLA_HDRLEN && (a)->nla_len <= (rem); \
	     (rem) -= NLA_ALIGN((a)->nla_len),                                           \
	    (a) = (const struct nlattr *)((const char *)(a) + NLA_ALIGN((a)->nla_len)))
#define attr_type(a)			   ((a)->nla_type & NLA_TYPE_MASK)
#define attr_len(a)			   ((a)->nla_len - NLA_HDRLEN)
#define attr_data(a)			   ((const void *)((const char *)(a) + NLA_HDRLEN))
#define attr_for_each_nested(a, rem, nest) attr_for_each(a, rem, attr_data(nest), attr_len(nest))

/* libmnl's mnl_nlmsg_ok takes an nlmsg_len of 2^31 or more for a negative int */
static bool msg_ok(const struct nlmsghdr *nlh, size_t len)
{
	return len >= sizeof(*nlh) && nlh->nlmsg_len >= sizeof(*nlh) && nlh->nlmsg_len <= len;
}

static const struct nlmsghdr *msg_next(const struct nlmsghdr *nlh, size_t *len)
{
	size_t step = NLMSG_ALIGN(nlh->nlmsg_len) < *len ? NLMSG_ALIGN(nlh->nlmsg_len) : *len;

	*len -= step;
	return (const struct nlmsghdr *)((const char *)nlh + step);
}

static __u8 attr_u8(const struct nlattr *a)
{
	return *(const __u8 *)attr_data(a);
}

static __u16 attr_u16(const struct nlattr *a)
{
	__u16 v;

	memcpy(&v, attr_data(a), sizeof(v));
	return v;
}

static __u32 attr_be32(const struct nlattr *a)
{
	__u32 v;

	memcpy(&v, attr_data(a), sizeof(v));
	return ntohl(v);
}

static int parse_ip(const struct nlattr *nest, struct ct_tuple *t)
{
	const struct nlattr *a;
	int rem;

	attr_for_each_nested(a, rem, nest)
	{
		__u16 type = attr_type(a), len = attr_len(a);
		bool src = type == CTA_IP_V4_SRC || type == CTA_IP_V6_SRC;

		if (type < CTA_IP_V4_SRC || type > CTA_IP_V6_DST)
			continue;
		if (len != (type <= CTA_IP_V4_DST ? 4 : 16))
			return -EINVAL;
		memcpy(src ? t->src : t->dst, attr_data(a), len);
		t->have_ip |= src ? 1 : 2;
	}
	return 0;
}

static int parse_tuple(const struct nlattr *nest, struct ct_tuple *t)
{
	const struct nlattr *a, *p;
	int rem, prem;

	attr_for_each_nested(a, rem, nest)
	{
		switch (attr_type(a)) {
		case CTA_TUPLE_IP:
			if (parse_ip(a, t))
				return -EINVAL;
			break;
		case CTA_TUPLE_PROTO:
			attr_for_each_nested(p, prem, a)
			{
				__u16 type = attr_type(p), len = attr_len(p);

				if (type == CTA_PROTO_NUM && len >= 1) {
					t->proto = attr_u8(p);
					t->have_proto = 1;
				} else if (type == CTA_PROTO_SRC_PORT && len >= 2) {
					t->sport = attr_u16(p);
				} else if (type == CTA_PROTO_DST_PORT && len >= 2) {
					t->dport = attr_u16(p);
				}
			}
			break;
		}
	}
	return 0;
}

/* the tcp state in CTA_PROTOINFO, or -1 */
static int parse_protoinfo(const struct nlattr *nest)
{
	const struct nlattr *a, *b;
	int rem, brem;

	attr_for_each_nested(a, rem, nest)
	{
		if (attr_type(a) != CTA_PROTOINFO_TCP)
			continue;
		attr_for_each_nested(b, brem, a)
		{
			if (attr_type(b) == CTA_PROTOINFO_TCP_STATE && attr_len(b) >= 1)
				return tcp_state(attr_u8(b));
		}
	}
	return -1;
}

int nat_ct_handle(struct nat_ct *nat, const struct nlmsghdr *nlh, bool from_dump)
{
	struct ct_tuple orig = { 0 }, reply = { 0 };
	const struct nfgenmsg *nfg;
	const struct nlattr *a;
	struct nat_flow f = { .state = -1, .timeout = -1 };
	__u32 status = 0;
	bool have_id = false, have_status = false;
	int msg, rem;

	if (nlh->nlmsg_len < ATTRS_OFF)
		goto malformed;
	if (nlh->nlmsg_type >> 8 != NFNL_SUBSYS_CTNETLINK)
		return 0;
	msg = nlh->nlmsg_type & 0xff;
	if (msg != IPCTNL_MSG_CT_NEW && msg != IPCTNL_MSG_CT_DELETE)
		return 0;
	nfg = mnl_nlmsg_get_payload(nlh);
	attr_for_each(a, rem, (const char *)nlh + ATTRS_OFF, nlh->nlmsg_len - ATTRS_OFF)
	{
		switch (attr_type(a)) {
		case CTA_TUPLE_ORIG:
			if (parse_tuple(a, &orig))
				goto malformed;
			break;
		case CTA_TUPLE_REPLY:
			if (parse_tuple(a, &reply))
				goto malformed;
			break;
		case CTA_STATUS:
			if (attr_len(a) != 4)
				goto malformed;
			status = attr_be32(a);
			have_status = true;
			break;
		case CTA_ID:
			if (attr_len(a) != 4)
				goto malformed;
			f.id = attr_be32(a);
			have_id = true;
			break;
		case CTA_PROTOINFO:
			f.state = parse_protoinfo(a);
			break;
		case CTA_TIMEOUT:
			if (attr_len(a) != 4)
				goto malformed;
			f.timeout = attr_be32(a) > NAT_WHEEL ? NAT_WHEEL : (int)attr_be32(a);
			break;
		}
	}
	if (!have_id)
		goto malformed;
	if (from_dump)
		nat->st.dumped++;
	else
		nat->st.events++;
	/* gone, not source-NATed, or not tcp/udp: counts nothing (any longer) */
	if (msg == IPCTNL_MSG_CT_DELETE || !have_status || !(status & IPS_SRC_NAT) ||
	    !reply.have_proto || (reply.proto != IPPROTO_TCP && reply.proto != IPPROTO_UDP) ||
	    reply.have_ip != 3 || !(orig.have_ip & 1) ||
	    (nfg->nfgen_family != AF_INET && nfg->nfgen_family != AF_INET6)) {
		nat_agg_remove(nat, f.id);
		return 0;
	}
	f.key.netns = nat->netns;
	f.key.protocol = reply.proto;
	f.key.family = nfg->nfgen_family;
	memcpy(f.key.saddr, reply.dst, 16);
	memcpy(f.key.daddr, reply.src, 16);
	f.key.dport = ntohs(reply.sport);
	memcpy(f.origin, orig.src, 16);
	if (reply.proto == IPPROTO_UDP)
		f.state = NAT_CT_UDP;
	return nat_agg_upsert(nat, &f, from_dump);
malformed:
	nat->st.malformed++;
	return -EINVAL;
}

/*
 * Keeps only source-NATed conntrack messages (and anything not ctnetlink's:
 * errors, overruns): A = where CTA_STATUS is among the attributes (the
 * SKF_AD_NLATTR extension searches them), then its value, big endian as BPF
 * loads it, tested for IPS_SRC_NAT. Every event carries CTA_STATUS since 2.6.3x.
 */
static int attach_filter(int fd)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, TYPE_HI_OFF),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NFNL_SUBSYS_CTNETLINK, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
		BPF_STMT(BPF_LD | BPF_IMM, ATTRS_OFF),
		BPF_STMT(BPF_LDX | BPF_IMM, CTA_STATUS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_AD_OFF + SKF_AD_NLATTR),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 4, 0),
		BPF_STMT(BPF_MISC | BPF_TAX, 0),
		BPF_STMT(BPF_LD | BPF_W | BPF_IND, NLA_HDRLEN),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, IPS_SRC_NAT, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };

	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) ? -errno : 0;
}

static int open_event_socket(int rcvbuf)
{
	unsigned groups[] = { NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE,
			      NFNLGRP_CONNTRACK_DESTROY };
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int fd, err;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER);
	if (fd < 0)
		return -errno;
	/* filter before joining: nothing unfiltered is ever queued */
	err = attach_filter(fd);
	if (!err && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)))
		err = -errno;
	if (!err && bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		err = -errno;
	for (size_t i = 0; !err && i < sizeof(groups) / sizeof(groups[0]); i++)
		if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &groups[i],
			       sizeof(groups[i])))
			err = -errno;
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

static int open_dump_socket(__u32 *portid)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(fd, (struct sockaddr *)&sa, &len)) {
		int err = -errno;

		close(fd);
		return err;
	}
	*portid = sa.nl_pid;
	return fd;
}

/* every entry of the table (both families) through nat_ct_handle; 0 or -errno */
static int dump(struct nat_ct *nat)
{
	char req[MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg))];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(req);
	struct nfgenmsg *nfg;
	__u32 seq = ++nat->dump_seq;
	ssize_t n;
	size_t left;

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_UNSPEC;
	nfg->version = NFNETLINK_V0;
	if (send(nat->dump_fd, req, nlh->nlmsg_len, 0) < 0)
		return -errno;
	for (;;) {
		n = recv(nat->dump_fd, nat->buf, DUMP_BUF, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		left = n;
		for (const struct nlmsghdr *m = (struct nlmsghdr *)nat->buf; msg_ok(m, left);
		     m = msg_next(m, &left)) {
			nlh = (struct nlmsghdr *)m;
			if (nlh->nlmsg_seq != seq || nlh->nlmsg_pid != nat->portid)
				continue; /* an earlier, broken-off dump's */
			if (nlh->nlmsg_type == NLMSG_DONE)
				return 0;
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

				if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e)))
					return -EBADMSG;
				if (e->error)
					return e->error;
				continue;
			}
			/* ENOMEM here leaves this entry uncounted: the dump goes on */
			nat_ct_handle(nat, nlh, true);
		}
	}
}

int nat_ct_resync(struct nat_ct *nat)
{
	__u64 t0;
	int err;

	/* what is queued is older than the dump: the dump has it */
	for (long i = 0; i < 1L << 20; i++)
		if (recv(nat->ev_fd, nat->buf, EV_MSG_SIZE, MSG_DONTWAIT | MSG_TRUNC) < 0 &&
		    errno != ENOBUFS && errno != EINTR)
			break;
	nat->gen++;
	t0 = now_ns();
	nat->now_s = t0 / 1000000000ull;
	err = dump(nat);
	if (err)
		return err;
	nat_agg_sweep(nat);
	nat->last_dump_ns = now_ns();
	nat->st.dump_ns = nat->last_dump_ns - t0;
	nat->st.dumps++;
	return 0;
}

void nat_ct_handle_datagram(struct nat_ct *nat, const void *buf, size_t len)
{
	const struct nlmsghdr *nlh;

	for (nlh = buf; msg_ok(nlh, len); nlh = msg_next(nlh, &len))
		nat_ct_handle(nat, nlh, false);
}

int nat_ct_process(struct nat_ct *nat, unsigned max_msgs)
{
	struct mmsghdr msgs[EV_BATCH];
	struct iovec iov[EV_BATCH];
	unsigned done = 0;
	int err, n;

	/* entries that may send no events (or none at all will come): dump again when due */
	if ((nat->st.dump_only || nat->st.events_sysctl == 0) &&
	    now_ns() - nat->last_dump_ns >= nat->resync_ms * 1000000ull) {
		err = nat_ct_resync(nat);
		if (err)
			return err;
	}
	nat->now_s = now_ns() / 1000000000ull;
	for (int i = 0; i < EV_BATCH; i++) {
		iov[i] = (struct iovec){ nat->buf + (size_t)i * EV_MSG_SIZE, EV_MSG_SIZE };
		msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	while (!max_msgs || done < max_msgs) {
		n = recvmmsg(nat->ev_fd, msgs, EV_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			if (errno != ENOBUFS)
				return -errno;
			/* events were lost: count afresh */
			nat->st.enobufs++;
			err = nat_ct_resync(nat);
			if (err)
				return err;
			continue;
		}
		for (int i = 0; i < n; i++) {
			if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
				nat->st.malformed++;
			else
				nat_ct_handle_datagram(nat, iov[i].iov_base, msgs[i].msg_len);
		}
		done += n;
		if (n < EV_BATCH)
			break;
	}
	nat->now_s = now_ns() / 1000000000ull;
	nat_agg_expire(nat);
	return done;
}

int nat_ct_fd(const struct nat_ct *nat)
{
	return nat->ev_fd;
}

struct nat_ct *nat_ct_new(__u32 netns_inum)
{
	struct nat_ct *nat = calloc(1, sizeof(*nat));

	if (!nat)
		return NULL;
	nat->netns = netns_inum;
	nat->ev_fd = nat->dump_fd = nat->stat_fd = -1;
	nat->resync_ms = DEFAULT_RESYNC_MS;
	nat->st.events_sysctl = -1;
	return nat;
}

static int read_sysctl(const char *path)
{
	char buf[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return atoi(buf);
}

struct nat_ct *nat_ct_open(__u32 netns_inum, const struct nat_ct_opts *opts)
{
	struct nat_ct *nat = nat_ct_new(netns_inum);
	int err;

	if (!nat)
		return NULL;
	if (opts && opts->resync_ms)
		nat->resync_ms = opts->resync_ms;
	nat->buf = malloc(EV_BATCH * EV_MSG_SIZE > DUMP_BUF ? EV_BATCH * EV_MSG_SIZE : DUMP_BUF);
	if (!nat->buf) {
		err = -ENOMEM;
		goto fail;
	}
	/* this thread's namespace: /proc/self would be the main thread's */
	nat->stat_fd = open("/proc/thread-self/net/stat/nf_conntrack", O_RDONLY | O_CLOEXEC);
	nat->st.events_sysctl = read_sysctl("/proc/sys/net/netfilter/nf_conntrack_events");
	err = open_event_socket(opts && opts->rcvbuf ? opts->rcvbuf : DEFAULT_RCVBUF);
	if (err < 0)
		goto fail;
	nat->ev_fd = err;
	err = open_dump_socket(&nat->portid);
	if (err < 0)
		goto fail;
	nat->dump_fd = err;
	/* subscribed first: what changes during the dump is queued as events */
	err = nat_ct_resync(nat);
	if (err)
		goto fail;
	return nat;
fail:
	nat_ct_close(nat);
	errno = -err;
	return NULL;
}

void nat_ct_close(struct nat_ct *nat)
{
	if (!nat)
		return;
	if (nat->ev_fd >= 0)
		close(nat->ev_fd);
	if (nat->dump_fd >= 0)
		close(nat->dump_fd);
	if (nat->stat_fd >= 0)
		close(nat->stat_fd);
	nat_agg_free(nat);
	free(nat->buf);
	free(nat);
}

int nat_ct_read_kstats(struct nat_ct *nat, struct nat_ct_kstats *ks)
{
	size_t len = 0, cap = 16384;
	char *text = malloc(cap), *p;
	ssize_t n;
	int err;

	if (nat->stat_fd < 0) {
		free(text);
		return -ENOENT;
	}
	if (!text)
		return -ENOMEM;
	while ((n = pread(nat->stat_fd, text + len, cap - len - 1, len)) > 0) {
		len += n;
		if (cap - len < 4096) {
			p = realloc(text, cap * 2);
			if (!p) {
				free(text);
				return -ENOMEM;
			}
			text = p;
			cap *= 2;
		}
	}
	if (n < 0) {
		err = -errno;
		free(text);
		return err;
	}
	text[len] = 0;
	err = nat_ct_parse_kstats(text, ks);
	free(text);
	return err;
}
