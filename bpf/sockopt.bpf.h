/* Part of the one BPF object sproxy.bpf.c builds: getsockopt answers SO_ORIGINAL_DST; setsockopt and a sockops program carry the application's keepalive to its record (common.bpf.h first).
 * Included by sproxy.bpf.c only, after the parts it names. */
#ifndef SPROXY_SOCKOPT_BPF_H
#define SPROXY_SOCKOPT_BPF_H

/* SO_ORIGINAL_DST as netfilter answers it: the struct of the level's
 * family, -EINVAL for a short buffer, -ENOENT without a record.  A kernel
 * answer (real conntrack) is left as it is. */
SEC("cgroup/getsockopt")
int sproxy_getsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct bpf_tcp_sock *tp;
	struct sproxy_tuple t;
	struct sproxy_conn *c;
	int level = ctx->level, name = ctx->optname;
	void *end = ctx->optval_end;

	if ((level != SOL_IP && level != SOL_IPV6) || name != SO_ORIGINAL_DST)
		return 1;
	if (ctx->retval == 0 || !sk || sk->type != SOCK_STREAM)
		return 1;
	__builtin_memset(&t, 0, sizeof(t));
	t.netns = bpf_get_netns_cookie(ctx);
	if (sk->family == AF_INET) {
		set_v4(&t.app, sk->dst_ip4);
		set_v4(&t.proxy, sk->src_ip4);
	} else {
		t.app.ip32[0] = sk->dst_ip6[0];
		t.app.ip32[1] = sk->dst_ip6[1];
		t.app.ip32[2] = sk->dst_ip6[2];
		t.app.ip32[3] = sk->dst_ip6[3];
		t.proxy.ip32[0] = sk->src_ip6[0];
		t.proxy.ip32[1] = sk->src_ip6[1];
		t.proxy.ip32[2] = sk->src_ip6[2];
		t.proxy.ip32[3] = sk->src_ip6[3];
	}
	t.app.port = sk->dst_port;
	t.proxy.port = bpf_htons((__u16)sk->src_port);
	c = bpf_map_lookup_elem(&tuples, &t);
	if (!c) {
		stat_inc(SPROXY_STAT_ORIGDST_MISS);
		ctx->retval = -ENOENT;
		return 1;
	}
	/* The record must be this very connection's, not one that had the
	 * same 4-tuple before (a process outside the cgroup that got the
	 * same source port later).  The proxy end's initial sequence number
	 * tells them apart: the application's end saw it in the SYN-ACK, and
	 * here it is the oldest unacknowledged sequence number less the bytes
	 * (and the SYN) acknowledged so far.  A new connection of the same
	 * 4-tuple gets a new one.  (Checked here in the kernel, so that any
	 * proxy asking SO_ORIGINAL_DST gets the check, at no cost.) */
	tp = bpf_tcp_sock(sk);
	if (!tp || c->isn != tp->snd_una - (__u32)tp->bytes_acked - 1) {
		stat_inc(SPROXY_STAT_RECORD_MISMATCH);
		ctx->retval = -ENOENT;
		return 1;
	}
	/* The daemon's own question, asked with a buffer of exactly this
	 * size (a caller with a large buffer of another size still gets the
	 * address alone): the whole record. */
	struct sproxy_origdst *x = ctx->optval;

	if (ctx->optlen == sizeof(*x) && (void *)(x + 1) <= end) {
		if (is_v4(&c->dst) != (level == SOL_IP)) {
			ctx->retval = -ENOENT;
			return 1;
		}
		x->magic = SPROXY_ORIGDST_MAGIC;
		x->rec = *c;
		__builtin_memset(x->pad, 0, sizeof(x->pad));
		ctx->optlen = sizeof(*x);
		stat_inc(SPROXY_STAT_ORIGDST_HIT);
		ctx->retval = 0;
		return 1;
	}
	if (level == SOL_IP) {
		struct sockaddr_in *sin = ctx->optval;

		if ((void *)(sin + 1) > end) {
			ctx->retval = -EINVAL;
			return 1;
		}
		if (!is_v4(&c->dst)) {
			ctx->retval = -ENOENT;
			return 1;
		}
		__builtin_memset(sin, 0, sizeof(*sin));
		sin->sin_family = AF_INET;
		sin->sin_port = c->dst.port;
		sin->sin_addr.s_addr = c->dst.ip32[3];
		ctx->optlen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = ctx->optval;

		if ((void *)(sin6 + 1) > end) {
			ctx->retval = -EINVAL;
			return 1;
		}
		if (is_v4(&c->dst)) {
			ctx->retval = -ENOENT;
			return 1;
		}
		__builtin_memset(sin6, 0, sizeof(*sin6));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = c->dst.port;
		sin6->sin6_addr.in6_u.u6_addr32[0] = c->dst.ip32[0];
		sin6->sin6_addr.in6_u.u6_addr32[1] = c->dst.ip32[1];
		sin6->sin6_addr.in6_u.u6_addr32[2] = c->dst.ip32[2];
		sin6->sin6_addr.in6_u.u6_addr32[3] = c->dst.ip32[3];
		ctx->optlen = sizeof(*sin6);
	}
	stat_inc(SPROXY_STAT_ORIGDST_HIT);
	ctx->retval = 0;
	return 1;
}

/* The application's TCP keepalive and user timeout, carried to the
 * proxy's leg out: on the application's leg (loopback to the proxy) they
 * only ever probe the proxy.  Each socket that sets one gets a per-socket
 * state (freed with the socket); once it is captured and connecting, that
 * state names its record, the options go into the record (conns), and
 * user space hears of every later change. */
#define SOL_SOCKET       1
#define SO_KEEPALIVE     9
#define SOL_TCP          6
#define TCP_KEEPIDLE     4
#define TCP_KEEPINTVL    5
#define TCP_KEEPCNT      6
#define TCP_USER_TIMEOUT 18

struct sockopt_state {
	__u64 cookie;        /* the socket's record in conns; 0: none yet */
	struct sproxy_sockopts opts;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sockopt_state);
} sockopt_states SEC(".maps");

static __always_inline __u32 *opt_field(struct sproxy_sockopts *o, __u32 bit)
{
	switch (bit) {
	case SPROXY_OPT_KEEPALIVE: return &o->keepalive;
	case SPROXY_OPT_KEEPIDLE: return &o->keepidle;
	case SPROXY_OPT_KEEPINTVL: return &o->keepintvl;
	case SPROXY_OPT_KEEPCNT: return &o->keepcnt;
	default: return &o->user_timeout;
	}
}

SEC("cgroup/setsockopt")
int sproxy_setsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct sockopt_state *st;
	struct sproxy_conn *c;
	__u32 *val = ctx->optval, bit, v;

	/* A longer value shows only its first page here; before 6.5 the
	 * kernel fails such a call (iptables' rule tables) unless optlen 0
	 * says "use the application's own buffer". */
	if (ctx->optlen > 4096) {
		ctx->optlen = 0;
		return 1;
	}
	if (ctx->level == SOL_SOCKET && ctx->optname == SO_KEEPALIVE)
		bit = SPROXY_OPT_KEEPALIVE;
	else if (ctx->level == SOL_TCP && ctx->optname == TCP_KEEPIDLE)
		bit = SPROXY_OPT_KEEPIDLE;
	else if (ctx->level == SOL_TCP && ctx->optname == TCP_KEEPINTVL)
		bit = SPROXY_OPT_KEEPINTVL;
	else if (ctx->level == SOL_TCP && ctx->optname == TCP_KEEPCNT)
		bit = SPROXY_OPT_KEEPCNT;
	else if (ctx->level == SOL_TCP && ctx->optname == TCP_USER_TIMEOUT)
		bit = SPROXY_OPT_USER_TIMEOUT;
	else
		return 1;
	if (!sk || sk->type != SOCK_STREAM ||
	    (sk->family != AF_INET && sk->family != AF_INET6) ||
	    (void *)(val + 1) > ctx->optval_end)
		return 1;
	if ((bpf_get_current_pid_tgid() >> 32) == daemon_tgid ||
	    (sock_mark && sk->mark == sock_mark))
		return 1;
	v = *val;
	if (bit == SPROXY_OPT_KEEPALIVE)
		v = v != 0;
	st = bpf_sk_storage_get(&sockopt_states, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return 1;
	st->opts.set |= bit;
	*opt_field(&st->opts, bit) = v;
	if (!st->cookie)
		return 1;
	c = bpf_map_lookup_elem(&conns, &st->cookie);
	if (!c)
		return 1;
	c->opts = st->opts;
	emit(SPROXY_EV_SOCKOPT, c->family, st->cookie, &c->proc);
	return 1;
}

/* A captured socket is connecting: what it set before connect() goes into
 * its record, and its state learns the record for what it sets later.
 * Called by the main sockops program after its own work. */
static __always_inline int sockops_opts(struct bpf_sock_ops *skops)
{
	struct sockopt_state *st;
	struct sproxy_conn *c;
	struct bpf_sock *sk;
	__u64 cookie;

	if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	cookie = bpf_get_socket_cookie(skops);
	c = bpf_map_lookup_elem(&conns, &cookie);
	sk = skops->sk;
	if (!c || !sk)
		return 1;
	st = bpf_sk_storage_get(&sockopt_states, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return 1;
	st->cookie = cookie;
	c->opts = st->opts;
	return 1;
}

#endif
