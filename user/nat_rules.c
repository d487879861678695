// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Source NAT rules of a network namespace (nat_rules.h): the cheap test for NAT chains
 * (an NFT_MSG_GETCHAIN dump through libmnl, ip_tables_names for iptables-legacy), the
 * ruleset read through libnftables (nat_rules_parse.c parses it), the port range a NAT
 * tuple draws from, and --nat-range.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nat_rules.h"

bool nat_tables_names_has_nat(const char *text)
{
	const char *p = text;

	while (p && *p) {
		const char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n == 3 && !memcmp(p, "nat", 3))
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

/* /proc/thread-self: /proc/self/net is the thread group leader's namespace, not this thread's */
static bool legacy_nat(const char *name)
{
	char path[64], buf[512];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/thread-self/net/%s", name);
	f = fopen(path, "re");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return nat_tables_names_has_nat(buf);
}

struct attrs {
	const struct nlattr **tb;
	int max;
};

static int attr_cb(const struct nlattr *attr, void *data)
{
	const struct attrs *a = data;
	int type = mnl_attr_get_type(attr);

	if (mnl_attr_type_valid(attr, (__u16)a->max) < 0 || type > a->max)
		return MNL_CB_OK;
	a->tb[type] = attr;
	return MNL_CB_OK;
}

static int chain_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[NFTA_CHAIN_MAX + 1] = {};
	const struct nlattr *hook[NFTA_HOOK_MAX + 1] = {};
	struct attrs chain = { tb, NFTA_CHAIN_MAX }, hooks = { hook, NFTA_HOOK_MAX };
	bool *found = data;

	mnl_attr_parse(nlh, sizeof(struct nfgenmsg), attr_cb, &chain);
	if (!tb[NFTA_CHAIN_TYPE] || !tb[NFTA_CHAIN_HOOK])
		return MNL_CB_OK;
	if (strcmp(mnl_attr_get_str(tb[NFTA_CHAIN_TYPE]), "nat"))
		return MNL_CB_OK;
	mnl_attr_parse_nested(tb[NFTA_CHAIN_HOOK], attr_cb, &hooks);
	if (hook[NFTA_HOOK_HOOKNUM] &&
	    ntohl(mnl_attr_get_u32(hook[NFTA_HOOK_HOOKNUM])) == NF_INET_POST_ROUTING)
		*found = true;
	return MNL_CB_OK;
}

static int gen_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[NFTA_GEN_MAX + 1] = {};
	struct attrs gen = { tb, NFTA_GEN_MAX };
	__u32 *id = data;

	mnl_attr_parse(nlh, sizeof(struct nfgenmsg), attr_cb, &gen);
	if (tb[NFTA_GEN_ID])
		*id = ntohl(mnl_attr_get_u32(tb[NFTA_GEN_ID]));
	return MNL_CB_OK;
}

/* one nf_tables request (a dump with NLM_F_DUMP), each answer to cb; 0, or -errno */
static int nft_request(__u16 type, __u16 flags, mnl_cb_t cb, void *data)
{
	char buf[32768]; /* MNL_SOCKET_DUMP_SIZE, which libmnl 1.0.4 lacks */
	struct mnl_socket *nl = NULL;
	struct nfgenmsg *nfg;
	struct nlmsghdr *nlh;
	unsigned int portid, seq = (unsigned int)time(NULL);
	int ret, err = 0;

	nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = -errno;
		goto cleanup;
	}
	portid = mnl_socket_get_portid(nl);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = NFPROTO_UNSPEC;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		err = -errno;
		goto cleanup;
	}
	while ((ret = mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0) {
		ret = mnl_cb_run(buf, ret, seq, portid, cb, data);
		if (ret <= 0)
			break;
	}
	if (ret < 0)
		err = -errno;
cleanup:
	mnl_socket_close(nl);
	return err;
}

int nat_ruleset_gen(__u32 *gen)
{
	*gen = 0;
	return nft_request(NFT_MSG_GETGEN, NLM_F_ACK, gen_cb, gen); /* the ack ends it */
}

int nat_detect(unsigned int *where)
{
	bool found = false;
	int err;

	*where = 0;
	err = nft_request(NFT_MSG_GETCHAIN, NLM_F_DUMP, chain_cb, &found);
	if (found)
		*where |= NAT_IN_NFT;
	if (legacy_nat("ip_tables_names") || legacy_nat("ip6_tables_names"))
		*where |= NAT_IN_LEGACY;
	/* no nf_tables in this kernel (a module not loaded), nothing to dump: no chain */
	if (err == -EPROTONOSUPPORT || err == -EAFNOSUPPORT || err == -ENOENT || err == -EOPNOTSUPP)
		err = 0;
	return err;
}

/* one command through libnftables; the output text in *out (the caller frees) */
static int nft_list(unsigned int flags, char **out)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	const char *text;
	int err = 0;

	*out = NULL;
	if (!ctx)
		return -ENOMEM;
	nft_ctx_output_set_flags(ctx, flags);
	if (nft_ctx_buffer_output(ctx) || nft_ctx_buffer_error(ctx)) {
		err = -ENOMEM;
		goto cleanup;
	}
	if (nft_run_cmd_from_buffer(ctx, "list ruleset")) {
		err = -EIO;
		goto cleanup;
	}
	text = nft_ctx_get_output_buffer(ctx);
	*out = strdup(text ? text : "");
	if (!*out)
		err = -ENOMEM;
cleanup:
	nft_ctx_free(ctx);
	return err;
}

int nat_rules_read(struct nat_rules *rules)
{
	char *text = NULL;
	int err;

	err = nft_list(NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_STATELESS, &text);
	if (err)
		return err;
	/* an empty ruleset can print nothing at all */
	err = text[0] ? nat_rules_parse_json(rules, text) : 0;
	free(text);
	text = NULL;
	if (err || !rules->xt)
		return err;
	err = nft_list(NFT_CTX_OUTPUT_HANDLE | NFT_CTX_OUTPUT_STATELESS, &text);
	if (!err)
		err = nat_rules_parse_text(rules, text);
	free(text);
	return err;
}

static bool addr_in(const struct nat_rule *r, int family, const __u8 *saddr)
{
	size_t n = family == AF_INET ? 4 : 16;

	return memcmp(saddr, r->addr_min, n) >= 0 && memcmp(saddr, r->addr_max, n) <= 0;
}

static bool rule_fits(const struct nat_rule *r, int family, int protocol)
{
	unsigned int bit = protocol == IPPROTO_TCP ? NAT_TCP : NAT_UDP;

	if (r->family != AF_UNSPEC && r->family != family)
		return false;
	return !r->protos || (r->protos & bit);
}

void nat_range_for(const struct nat_rules *rules, const struct nat_range *override, int family,
		   int protocol, const __u8 *saddr, struct nat_range *out)
{
	bool by_addr = false, ported = false;
	size_t i;
	int pass;

	memset(out, 0, sizeof(*out));
	if (override && override->low) {
		*out = *override;
		out->source = NAT_RANGE_OVERRIDE;
		return;
	}
	out->low = NAT_DEFAULT_LOW;
	out->high = NAT_DEFAULT_HIGH;
	out->source = NAT_RANGE_DEFAULT;
	/* pass 0: snat rules whose address is the tuple's; pass 1, when none: the others */
	for (pass = 0; pass < 2 && !by_addr && rules; pass++) {
		bool any = false;

		for (i = 0; i < rules->len; i++) {
			const struct nat_rule *r = &rules->items[i];
			__u16 lo = NAT_DEFAULT_LOW, hi = NAT_DEFAULT_HIGH;

			if (!rule_fits(r, family, protocol))
				continue;
			if ((r->flags & NAT_RULE_ADDR) != (pass == 0 ? NAT_RULE_ADDR : 0))
				continue;
			if (pass == 0 && saddr && !addr_in(r, family, saddr))
				continue;
			if (r->flags & NAT_RULE_UNKNOWN) {
				out->unreadable = 1;
				continue;
			}
			if (r->flags & NAT_RULE_PORTS) {
				lo = r->port_min;
				hi = r->port_max;
			}
			if (any && ((unsigned int)hi - lo != (unsigned int)out->high - out->low ||
				    lo != out->low))
				out->ambiguous = 1;
			if (!any || (unsigned int)hi - lo < (unsigned int)out->high - out->low) {
				out->low = lo;
				out->high = hi;
			}
			any = true;
			ported |= (r->flags & NAT_RULE_PORTS) != 0;
		}
		by_addr = pass == 0 && any;
	}
	/* rules without a port range draw from the kernel's default: so it says */
	out->source = ported ? NAT_RANGE_RULE : NAT_RANGE_DEFAULT;
}

int nat_range_parse(const char *s, struct nat_range *out)
{
	unsigned long lo, hi;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	lo = strtoul(s, &end, 10);
	hi = lo;
	if (*end == '-') {
		if (end[1] < '0' || end[1] > '9')
			return -EINVAL;
		hi = strtoul(end + 1, &end, 10);
	}
	if (errno || *end || lo < 1 || hi > 65535 || lo > hi)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->low = (__u16)lo;
	out->high = (__u16)hi;
	out->source = NAT_RANGE_OVERRIDE;
	return 0;
}
