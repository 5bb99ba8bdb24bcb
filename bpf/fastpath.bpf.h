/* Part of the one BPF object sproxy.bpf.c builds: the kernel fast path.
 * At connect time the hook decides whether the proxy must see the
 * connection (an upstream route, bytes to tag, a rule it cannot evaluate,
 * DNS, a FakeIP name not resolved yet).  When not, the connection keeps
 * its destination (a resolved FakeIP address gets the real one) or a
 * REJECT rule fails it at once, and it is recorded by socket cookie so
 * that sockops can report it when it closes (common.bpf.h first).
 * Included by sproxy.bpf.c only, after the parts it names. */
#ifndef SPROXY_FASTPATH_BPF_H
#define SPROXY_FASTPATH_BPF_H

#define ECONNREFUSED_ 111

/* Set by the loader when the kernel has bpf_set_retval for these hooks. */
const volatile bool refuse_errno;

/* One entry, filled by user space before attach and on SIGHUP; absent or
 * disabled: everything goes to the proxy, as with --fast-path off. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sproxy_fp_conf);
} fp_conf SEC(".maps");

/* Destination port (host order) -> its first DST-PORT rule, and tagging. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct sproxy_fp_port);
} fp_ports SEC(".maps");

/* IP-CIDR rules: each prefix holds the lowest rule index of itself and
 * of every prefix that contains it, so the longest match gives the first
 * matching rule.  fp_cidr has them all (a real destination); fp_cidr_res
 * only those that may look at a FakeIP name's real address (not
 * no-resolve). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sproxy_bypass_key);
	__type(value, struct sproxy_fp_hit);
} fp_cidr SEC(".maps"), fp_cidr_res SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct sproxy_fp_hit);
} fp_uids SEC(".maps");

/* PROCESS-NAME rules, by comm (NUL-padded to 16 bytes). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, char[SPROXY_COMM_LEN]);
	__type(value, struct sproxy_fp_hit);
} fp_comms SEC(".maps");

/* The FakeIP ranges (value unused). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sproxy_bypass_key);
	__type(value, __u32);
} fp_fakenet SEC(".maps");

/* Fake address (port 0) -> the real one, once the daemon resolved it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sproxy_addr);
	__type(value, struct sproxy_fp_fake);
} fp_fake SEC(".maps");

/* Kernel-path TCP connections, by socket cookie: from connect() to
 * TCP_CLOSE (or the socket's release, if it never sent a SYN). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct sproxy_fp_conn);
} fp_conns SEC(".maps");

/* Kernel-path UDP flows; user space logs and deletes them once idle. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sproxy_flow_key);
	__type(value, struct sproxy_fp_flow);
} fp_flows SEC(".maps");

static __always_inline void fp_min(struct sproxy_fp_hit *best,
				   const struct sproxy_fp_hit *h)
{
	if (h && h->idx < best->idx)
		*best = *h;
}

static __always_inline void fp_key(struct sproxy_bypass_key *k,
				   const struct sproxy_addr *a)
{
	k->prefixlen = 128;
	k->ip32[0] = a->ip32[0];
	k->ip32[1] = a->ip32[1];
	k->ip32[2] = a->ip32[2];
	k->ip32[3] = a->ip32[3];
}

static __always_inline void fp_emit(const struct sproxy_fp_conn *c, __u64 cookie,
				    __u32 result, __u32 proto,
				    struct bpf_sock_ops *skops)
{
	struct sproxy_fp_event *e;
	__u64 up = 0, down = 0;
	__u32 old;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	e->type = SPROXY_EV_FAST;
	e->family = c->family;
	e->cookie = cookie;
	e->proc = c->proc;
	e->dst = c->dst;
	e->result = result;
	e->proto = proto;
	e->rule = c->rule;
	e->duration_ns = bpf_ktime_get_ns() - c->start_ns;
	if (skops) {
		/* SYN and FIN take a sequence number each, which the
		 * counters count: the SYN (acknowledged once established)
		 * in bytes_acked, a FIN received in bytes_received and one
		 * acknowledged in bytes_acked.  Take them off, the FINs when
		 * the state closed from says they went. */
		up = skops->bytes_acked;
		down = skops->bytes_received;
		if (c->flags & SPROXY_FPC_ESTABLISHED)
			up -= up ? 1 : 0;
		old = skops->args[0];
		if (old == TCP_FIN_WAIT2 || old == TCP_TIME_WAIT ||
		    old == TCP_LAST_ACK || old == TCP_CLOSING) {
			up -= up ? 1 : 0;
			down -= down ? 1 : 0;
		} else if (old == TCP_CLOSE_WAIT) {
			down -= down ? 1 : 0;
		}
		if (skops->family == AF_INET) {
			set_v4(&e->src, skops->local_ip4);
		} else {
			e->src.ip32[0] = skops->local_ip6[0];
			e->src.ip32[1] = skops->local_ip6[1];
			e->src.ip32[2] = skops->local_ip6[2];
			e->src.ip32[3] = skops->local_ip6[3];
		}
		e->src.port = bpf_htons((__u16)skops->local_port);
	}
	e->up = up;
	e->down = down;
	bpf_ringbuf_submit(e, log_wakeup());
}

/* The decision for a connection (tcp) or a UDP flow to dst.  Returns -1
 * when the proxy must see it (the caller carries on as before), else what
 * the hook returns: 1 to let it go (to *real), 0 to refuse it (see
 * fp_refuse).  *fake is set when dst is a FakeIP address and real its
 * resolved address. */
static __always_inline int fp_decide(struct bpf_sock_addr *ctx,
				     const struct sproxy_addr *dst, bool tcp,
				     struct sproxy_addr *real, bool *fake,
				     struct sproxy_proc *proc, __u32 *rule)
{
	struct sproxy_fp_hit best = { .idx = SPROXY_FP_NONE };
	struct sproxy_bypass_key k;
	struct sproxy_fp_conf *cf;
	struct sproxy_fp_fake *fk;
	struct sproxy_fp_port *pp;
	struct sproxy_addr fkey;
	__u32 zero = 0, port, verdict;

	cf = bpf_map_lookup_elem(&fp_conf, &zero);
	if (!cf || !cf->enabled)
		return -1;
	if (dst->port == bpf_htons(DNS_PORT))
		return -1;                /* the built-in DNS server */
	*real = *dst;
	*fake = false;
	fp_key(&k, dst);
	if (bpf_map_lookup_elem(&fp_fakenet, &k)) {
		fkey = *dst;
		fkey.port = 0;
		fkey.pad = 0;
		fk = bpf_map_lookup_elem(&fp_fake, &fkey);
		if (!fk)
			return -1;        /* not resolved yet: the proxy resolves it */
		real->ip32[0] = fk->real.ip32[0];
		real->ip32[1] = fk->real.ip32[1];
		real->ip32[2] = fk->real.ip32[2];
		real->ip32[3] = fk->real.ip32[3];
		*fake = true;
		fp_min(&best, &fk->name);
		fp_min(&best, &cf->barrier_fake);
		fp_key(&k, real);
		fp_min(&best, bpf_map_lookup_elem(&fp_cidr_res, &k));
	} else {
		fp_min(&best, &cf->barrier);
		fp_min(&best, bpf_map_lookup_elem(&fp_cidr, &k));
	}
	fp_min(&best, &cf->match);
	fp_min(&best, &cf->net[tcp ? 0 : 1]);
	port = bpf_ntohs(dst->port);
	pp = bpf_map_lookup_elem(&fp_ports, &port);
	if (pp)
		fp_min(&best, &pp->hit);
	fill_proc(proc);
	fp_min(&best, bpf_map_lookup_elem(&fp_uids, &proc->uid));
	fp_min(&best, bpf_map_lookup_elem(&fp_comms, proc->comm));
	verdict = best.idx == SPROXY_FP_NONE ? cf->default_verdict : best.verdict;
	*rule = best.idx == SPROXY_FP_NONE ? 0 : best.idx;
	/* Tagging rewrites bytes: only the proxy can. */
	if (verdict == SPROXY_FP_DIRECT && pp && pp->tag)
		verdict = SPROXY_FP_PROXY;
	if (verdict == SPROXY_FP_PROXY)
		return -1;
	return verdict == SPROXY_FP_REJECT ? 0 : 1;
}

/* A refused connect() or sendmsg() fails with ECONNREFUSED, as a closed
 * port would answer, where the kernel lets a cgroup hook set the errno
 * (bpf_set_retval, 5.18); else with EPERM, what returning 0 gives. */
static __always_inline int fp_refuse(void)
{
	if (refuse_errno)
		bpf_set_retval(-ECONNREFUSED_);
	return 0;
}

/* connect4|6 (TCP and UDP) and sendmsg4|6: -1 to carry on to the proxy,
 * else the hook's return value. */
static __always_inline int fast_path(struct bpf_sock_addr *ctx,
				     const struct sproxy_addr *dst, bool v6sock,
				     bool tcp, bool connected)
{
	struct sproxy_fp_conn c = {};
	struct sproxy_fp_flow f = {};
	struct sproxy_flow_key fk = {};
	struct sproxy_fp_flow *old;
	__u64 cookie;
	bool fake;
	int rc;

	/* A UDP flow decided before: one lookup per datagram, and a
	 * refused flow is logged once, not per datagram. */
	if (!tcp) {
		fk.cookie = bpf_get_socket_cookie(ctx);
		fk.dst = *dst;
		old = bpf_map_lookup_elem(&fp_flows, &fk);
		if (old) {
			old->last_ns = bpf_ktime_get_ns();
			return old->flags & SPROXY_FPF_REJECTED ? fp_refuse() : 1;
		}
	}
	rc = fp_decide(ctx, dst, tcp, &c.real, &fake, &c.proc, &c.rule);
	if (rc < 0)
		return -1;
	c.dst = *dst;
	c.family = v6sock ? AF_INET6 : AF_INET;
	c.start_ns = bpf_ktime_get_ns();
	/* UDP to a FakeIP address stays with the pool: replies would need
	 * their source put back per socket. */
	if (!tcp && fake && rc == 1)
		return -1;
	if (rc == 0) {
		stat_inc(SPROXY_STAT_FAST_REJECT);
		fp_emit(&c, bpf_get_socket_cookie(ctx), SPROXY_FPR_REJECTED,
			tcp ? IPPROTO_TCP : IPPROTO_UDP, NULL);
		if (tcp)
			return fp_refuse();
	}
	if (!tcp) {
		f.proc = c.proc;
		f.first_ns = c.start_ns;
		f.last_ns = c.start_ns;
		f.family = c.family;
		f.rule = c.rule;
		f.flags = (connected ? SPROXY_FPF_CONNECTED : 0) |
			  (rc == 0 ? SPROXY_FPF_REJECTED : 0);
		bpf_map_update_elem(&fp_flows, &fk, &f, BPF_ANY);
		if (rc == 1)
			stat_inc(SPROXY_STAT_FAST_UDP);
		return rc ? 1 : fp_refuse();
	}
	if (fake)
		c.flags |= SPROXY_FPC_FAKE;
	cookie = bpf_get_socket_cookie(ctx);
	if (bpf_map_update_elem(&fp_conns, &cookie, &c, BPF_ANY)) {
		stat_inc(SPROXY_STAT_FAST_FULL);
		return -1;                /* unseen is worse than proxied */
	}
	stat_inc(SPROXY_STAT_FAST_TCP);
	if (fake)
		rewrite(ctx, v6sock, c.real.ip32[3], c.real.ip32, dst->port,
			is_v4(&c.real));
	return 1;
}

/* sockops for kernel-path connections: watch the state from the SYN on,
 * report at TCP_CLOSE.  true when the socket is one of them. */
static __always_inline bool fast_sockops(struct bpf_sock_ops *skops)
{
	struct sproxy_fp_conn *c;
	__u64 cookie;
	__u32 result;

	if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB &&
	    skops->op != BPF_SOCK_OPS_STATE_CB)
		return false;
	cookie = bpf_get_socket_cookie(skops);
	c = bpf_map_lookup_elem(&fp_conns, &cookie);
	if (!c)
		return false;
	if (skops->op == BPF_SOCK_OPS_TCP_CONNECT_CB) {
		c->flags |= SPROXY_FPC_CONNECTING;
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
					  BPF_SOCK_OPS_STATE_CB_FLAG);
		return true;
	}
	if (skops->args[1] == TCP_ESTABLISHED)
		c->flags |= SPROXY_FPC_ESTABLISHED;
	if (skops->args[1] != TCP_CLOSE)
		return true;
	if (!(c->flags & SPROXY_FPC_ESTABLISHED))
		result = SPROXY_FPR_FAILED;
	else if (skops->args[0] == TCP_FIN_WAIT2 || skops->args[0] == TCP_TIME_WAIT ||
		 skops->args[0] == TCP_LAST_ACK || skops->args[0] == TCP_CLOSING)
		result = SPROXY_FPR_OK;
	else
		result = SPROXY_FPR_RESET;
	fp_emit(c, cookie, result, IPPROTO_TCP, skops);
	bpf_map_delete_elem(&fp_conns, &cookie);
	return true;
}

/* A kernel-path socket closed before its SYN went out (connect failed in
 * the stack, or was never completed): its record ends here. */
static __always_inline void fast_release(struct bpf_sock *sk, __u64 cookie)
{
	struct sproxy_fp_conn *c;

	if (sk->type != SOCK_STREAM)
		return;
	c = bpf_map_lookup_elem(&fp_conns, &cookie);
	if (!c || (c->flags & SPROXY_FPC_CONNECTING))
		return;
	fp_emit(c, cookie, SPROXY_FPR_FAILED, IPPROTO_TCP, NULL);
	bpf_map_delete_elem(&fp_conns, &cookie);
}

/* getpeername on a kernel-path socket whose FakeIP address was rewritten:
 * the address the application asked for, as on the proxy path. */
static __always_inline const struct sproxy_addr *fast_peer(__u64 cookie)
{
	struct sproxy_fp_conn *c = bpf_map_lookup_elem(&fp_conns, &cookie);

	return c && (c->flags & SPROXY_FPC_FAKE) ? &c->dst : NULL;
}

#endif
