// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Live sockets of active opens per destination tuple and TCP state, counted
 * from sock:inet_sock_set_state with no record per socket: each state change
 * moves one unit of its tuple from the old state to the new one. An active
 * open is told from a listener's child by its backlog: children inherit their
 * listener's sk_max_ack_backlog, a connecting socket has 0. Its tuple is made
 * at CLOSE -> SYN_SENT; a change whose tuple does not exist is not counted.
 *
 * Every change must be counted once, and the kernel does not always run a
 * program: it skips one that an interrupt enters while the same program runs
 * on that CPU (a softirq's state change while a task's runs). So two programs
 * sit on the tracepoint, each with its own guard. The main one counts every
 * change it runs for and marks it, per CPU, in the slot of its level (task or
 * interrupt); the backstop, attached after it, runs for the same change and
 * counts it only if it finds no mark: the main one was skipped. Changes nest at
 * most twice on a CPU, a task's and an interrupt's, so at least one of the two
 * runs for each, and a mark waiting in its level's slot is the current change's.
 * Only an interrupt's backstop can be skipped (by a task's backstop it entered);
 * the mark it leaves behind is wiped by the next change the task counts.
 * docs/performance.md has the cost.
 */
#include "maps.bpf.h"
#include "startup.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* tuples the agent is about to forget ("retiring"): a connect() takes one back */
__u32 retiring_count = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct tuple_key);
	__type(value, __u8);
} retiring SEC(".maps");

/* who opens connections to the tuples that use much of their range */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_OPENERS);
	__type(key, struct opener_key);
	__type(value, struct opener_val);
} openers SEC(".maps");

/*
 * A change the main program counted. The tracepoint's arguments are at the same
 * address for every change at the same depth of the same stack, and a socket's
 * memory is soon another socket's: an interrupt's mark left behind (its backstop
 * skipped) could be taken for a later change of a new socket at that address
 * to the same state, whose main program was skipped. Its ports tell them apart.
 */
struct mark {
	__u64 ctx; /* the tracepoint's arguments: one address per change in flight */
	__u64 sk;
	__u32 newstate;
	__u32 ports; /* skc_portpair */
};

/* per CPU, one lookup: the marks of a task's change [0] and an interrupt's [1] */
struct marks {
	struct mark at[2];
	__u64 scratch;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct marks);
} marks SEC(".maps");

/* THREAD_SIZE of the running kernel, set by the agent (core_fixes.bpf.h) */
const volatile __u64 thread_size = 16384;

static __always_inline bool mark_is(const struct mark *m, const void *ctx, const struct sock *sk,
				    int newstate)
{
	return m && m->ctx == (__u64)ctx && m->sk == (__u64)sk && m->newstate == newstate &&
	       m->ports == sk->__sk_common.skc_portpair;
}

/*
 * A change this program should look at: an active open's, or a listener's
 * opening and closing. A listener's new child comes as LISTEN -> SYN_RECV and
 * keeps its listener's backlog; a child of listen(fd, 0) has 0 and is then
 * looked at, but its tuple (the peer's address and port) is nobody's.
 */
static __always_inline bool ours(const struct sock *sk, int oldstate, int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return false;
	if (newstate == EPH_TCP_LISTEN)
		return true;
	if (oldstate == EPH_TCP_LISTEN)
		return newstate == EPH_TCP_CLOSE;
	return sk->sk_max_ack_backlog == 0;
}

/*
 * A listener's port. Closing, it may have given it back already (skc_num 0) if
 * it never bound one itself (autobind); inet_sport keeps it.
 */
static __always_inline __u16 listener_port(const struct sock *sk)
{
	const struct tcp_sock *tp;

	if (sk->__sk_common.skc_num)
		return sk->__sk_common.skc_num;
	tp = bpf_skc_to_tcp_sock((void *)sk);
	return tp ? bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport) : 0;
}

static __always_inline void listener_change(const struct sock *sk, int delta)
{
	__u32 netns = sk->__sk_common.skc_net.net->ns.inum;

	/* start-up: a listener is the walk's or an event's, once */
	if (ns_pending(netns)) {
		if (delta > 0)
			claim_set((__u64)sk, CLAIM_EVENT, netns, CLAIM_NO_BUCKET);
		else if (event_claim((__u64)sk, netns, CLAIM_NO_BUCKET) != EVENT_MOVES)
			return;
	}
	ports_add(netns, listener_port(sk), delta, 0);
}

static __always_inline void opener_note(const struct tuple_key *key)
{
	struct opener_key ok = { .tgid = bpf_get_current_pid_tgid() >> 32 };
	struct opener_val *ov, init = {};

	__builtin_memcpy(&ok.tuple, key, sizeof(*key));
	ov = bpf_map_lookup_elem(&openers, &ok);
	if (ov) {
		__sync_fetch_and_add(&ov->connects, 1);
		return;
	}
	init.connects = 1;
	init.cgroup_id = bpf_get_current_cgroup_id();
	init.tid = (__u32)bpf_get_current_pid_tgid();
	init.uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(init.comm, sizeof(init.comm));
	/* another CPU made it meanwhile: that one connect goes unnamed */
	bpf_map_update_elem(&openers, &ok, &init, BPF_NOEXIST);
}

/* a tuple holding an eighth of its port range or more: its openers are recorded */
static __always_inline bool tuple_watched(const struct tuple_val *val)
{
	__u32 range = val->port_range;
	__s32 size = (__s32)(range >> 16) - (__s32)(range & 0xffff) + 1;

	return range && (tuple_live(val) + val->states[EPH_TCP_TIME_WAIT]) * 8 >= size;
}

/*
 * The agent forgets a tuple in two steps: marked retiring, then deleted if no
 * connect came (docs/capacity.md). A connect takes the mark away and, if the
 * tuple went meanwhile, counts itself in a new one.
 */
static __always_inline struct tuple_val *unretire(const struct tuple_key *key,
						  struct tuple_val *val, const struct net *net)
{
	if (bpf_map_delete_elem(&retiring, key))
		return val;
	if (bpf_map_lookup_elem(&tuples, key) == val)
		return val;
	stat_inc(EPH_STAT_RETIRE_RACES);
	return tuple_get_or_create(key, net);
}

/* a bind()-ed active open: its port, kept until it closes ("bound", bpf/walk.bpf.c) */
static __always_inline void bound_track(const struct sock *sk, const struct tuple_key *key,
					struct tuple_val *val)
{
	__u16 port = sk->__sk_common.skc_num;
	__u64 addr = (__u64)sk;

	if (map_err(bpf_map_update_elem(&bound_socks, &addr, &port, BPF_ANY))) {
		stat_inc(EPH_STAT_BOUND_FULL);
		return;
	}
	__sync_fetch_and_add(&val->bound, 1);
	ports_add(key->netns, port, 0, 1);
}

static __always_inline void bound_release(const struct sock *sk, const struct tuple_key *key,
					  struct tuple_val *val)
{
	__u64 addr = (__u64)sk;
	__u16 *port = bpf_map_lookup_elem(&bound_socks, &addr);

	if (!port)
		return;
	__sync_fetch_and_add(&val->bound, -1);
	ports_add(key->netns, *port, 0, -1);
	bpf_map_delete_elem(&bound_socks, &addr);
}

/* CLOSE -> SYN_SENT: connect() starts an active open (its port is chosen next) */
static __always_inline void active_open(const struct sock *sk, const struct tuple_key *key)
{
	const struct net *net = sk->__sk_common.skc_net.net;
	bool bound = sk->__sk_common.skc_num != 0;
	struct tuple_val *val;
	bool counted = true;
	__u32 range;
	__u8 reuse;

	/* start-up: made after the walk began, never the walk's; no room to
	 * claim it, it is left to the walk or its next event (startup.bpf.h) */
	if (ns_pending(key->netns))
		counted = claim_set((__u64)sk, CLAIM_EVENT, key->netns, CLAIM_NO_BUCKET);
	val = tuple_get_or_create(key, net);
	if (!val)
		return;
	if (retiring_count)
		val = unretire(key, val, net);
	if (!val)
		return;
	if (counted)
		state_add(val, EPH_TCP_SYN_SENT, 1);
	__sync_fetch_and_add(&val->connects, 1);
	/*
	 * Written only when they change, so that CPUs opening connections to one
	 * tuple share its cache line. The agent's clock costs no clock read.
	 */
	if (val->last_connect_ns != agent_clock_ns)
		val->last_connect_ns = agent_clock_ns;
	range = port_range_of(net);
	if (val->port_range != range)
		val->port_range = range;
	reuse = net->ipv4.sysctl_tcp_tw_reuse;
	if (val->tw_reuse != reuse)
		val->tw_reuse = reuse;
	if (bound)
		__sync_fetch_and_add(&val->bound_connects, 1);
	if (bound && counted)
		bound_track(sk, key, val);
	if (guard_quota && counted)
		quota_add(sock_cgroup_id(sk), key, 1);
	tuple_changed(key, val);
	if (tuple_watched(val))
		opener_note(key);
	if (guard_mode != GUARD_OFF)
		guard_watch(key, val);
}

/*
 * SYN_SENT -> CLOSE while the socket is still SS_UNCONNECTED: connect() failed
 * before it returned, which for TCP means __inet_hash_connect() found no usable
 * port (EADDRNOTAVAIL). Refused or timed-out connects close later, as SS_CONNECTING.
 */
static __always_inline bool connect_got_no_port(const struct sock *sk, int oldstate)
{
	struct socket *sock;

	if (oldstate != EPH_TCP_SYN_SENT)
		return false;
	sock = sk->sk_socket;
	return sock && sock->state == SS_UNCONNECTED;
}

/* connect()'s port search failed: its syscall exit reports it (bpf/failures.bpf.c) */
static __always_inline void port_search_failed(const struct sock *sk, const struct tuple_key *key,
					       struct tuple_val *val)
{
	struct call *c;

	__sync_fetch_and_add(&val->failed_connects, 1);
	/* a connect() from io_uring or the kernel leaves it unread: counted in the tuple only */
	c = call_of_current(true);
	if (!c)
		return;
	c->sk = (__u64)sk;
	c->has_tuple = 1;
	__builtin_memcpy(&c->tuple, key, sizeof(*key));
	c->in_use = tuple_live(val);
	c->time_wait = val->states[EPH_TCP_TIME_WAIT];
	c->time_wait_ts = val->time_wait_ts;
	c->port_range = val->port_range;
	c->tw_reuse = val->tw_reuse;
}

/* an active open closed: its bound port and quota given back, a failed port search told */
static __always_inline void active_close(const struct sock *sk, const struct tuple_key *key,
					 struct tuple_val *val, int oldstate)
{
	if (val->bound > 0)
		bound_release(sk, key, val);
	if (guard_quota)
		quota_add(sock_cgroup_id(sk), key, -1);
	if (connect_got_no_port(sk, oldstate))
		port_search_failed(sk, key, val);
}

/* any other change of an active open: one unit from the old state to the new one */
static __always_inline void active_change(const struct sock *sk, const struct tuple_key *key,
					  int oldstate, int newstate)
{
	struct tuple_val *val = bpf_map_lookup_elem(&tuples, key);
	bool first = false;

	/* start-up: the walk may not have counted this socket yet */
	if (ns_pending(key->netns)) {
		__u32 bucket = bucket_of(sk->__sk_common.skc_hash, sk->__sk_common.skc_net.net);

		if (!walked_past(key->netns, bucket)) {
			enum event_claim ec = event_claim((__u64)sk, key->netns, bucket);

			if (ec == EVENT_NO_ROOM)
				return;
			first = ec == EVENT_FIRST;
		}
		if (first && !val)
			val = tuple_get_or_create(key, sk->__sk_common.skc_net.net);
	}
	if (!val) {
		if (oldstate == EPH_TCP_SYN_SENT)
			stat_inc(EPH_STAT_TUPLE_MISSING);
		return;
	}
	if (first) {
		/* counted from now, in its new state; its bind() is not known */
		state_add(val, newstate, 1);
		if (guard_quota && newstate != EPH_TCP_CLOSE)
			quota_add(sock_cgroup_id(sk), key, 1);
	} else {
		state_add(val, oldstate, -1);
		state_add(val, newstate, 1);
		if (newstate == EPH_TCP_CLOSE)
			active_close(sk, key, val, oldstate);
	}
	tuple_changed(key, val);
}

static __always_inline void count_change(const struct sock *sk, int oldstate, int newstate)
{
	struct tuple_key key;

	if (newstate == EPH_TCP_LISTEN) {
		listener_change(sk, 1);
		return;
	}
	if (oldstate == EPH_TCP_LISTEN) {
		listener_change(sk, -1);
		return;
	}
	if (!tuple_key_of(sk, &key))
		return;
	if (oldstate == EPH_TCP_CLOSE && newstate == EPH_TCP_SYN_SENT)
		active_open(sk, &key);
	else
		active_change(sk, &key, oldstate, newstate);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tuples_set_state, const struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0, level;
	struct marks *ms;
	struct mark *m;

	if (!ours(sk, oldstate, newstate))
		return 0;
	ms = bpf_map_lookup_elem(&marks, &zero);
	if (ms) {
		/* through the map (read back, not forwarded by the compiler), the
		 * context's address becomes a number. A kernel that runs a nested
		 * program instead of skipping it may overwrite it in between: the
		 * level is then wrong, and the backstop, which looks in both
		 * slots, still finds the mark */
		ms->scratch = (__u64)ctx;
		level = in_interrupt_level(*(volatile __u64 *)&ms->scratch, thread_size);
		/*
		 * A task's change runs only when no interrupt's is in flight on
		 * this CPU: an interrupt's mark is a leftover, never to be matched.
		 */
		if (!level)
			ms->at[1].ctx = 0;
		m = &ms->at[level & 1];
		m->ctx = (__u64)ctx;
		m->sk = (__u64)sk;
		m->newstate = newstate;
		m->ports = sk->__sk_common.skc_portpair;
	}
	count_change(sk, oldstate, newstate);
	return 0;
}

/* attached after tuples_set_state: counts what the kernel did not let it count */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tuples_backstop, const struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0;
	struct marks *ms;
	struct mark *m;

	if (!ours(sk, oldstate, newstate))
		return 0;
	ms = bpf_map_lookup_elem(&marks, &zero);
	if (!ms)
		return 0;
	m = &ms->at[0];
	if (mark_is(m, ctx, sk, newstate)) {
		/* a task's change: an interrupt's mark left now is a leftover */
		m->ctx = 0;
		ms->at[1].ctx = 0;
		return 0;
	}
	m = &ms->at[1];
	if (mark_is(m, ctx, sk, newstate)) {
		m->ctx = 0;
		return 0;
	}
	stat_inc(EPH_STAT_CAUGHT);
	count_change(sk, oldstate, newstate);
	return 0;
}
