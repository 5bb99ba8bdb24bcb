/* Part of the one BPF object sproxy.bpf.c builds: --to, captured TCP handed
 * to another REDIRECT-style proxy instead of the daemon's listener; that
 * proxy's own sockets left alone; a log event when a handed-off connection
 * ends (common.bpf.h first).
 * Included by sproxy.bpf.c only, after the parts it names. */
#ifndef SPROXY_HANDOFF_BPF_H
#define SPROXY_HANDOFF_BPF_H

/* Set by the loader before load; port 0: that family is not handed off. */
const volatile __u32 handoff4_ip;      /* network order */
const volatile __u16 handoff4_port;    /* network order */
const volatile __u32 handoff6_ip[4];
const volatile __u16 handoff6_port;
/* The cgroup the other proxy runs in: its connections out are its own,
 * never captured again (it may sit below the captured cgroup). */
const volatile __u64 handoff_cgid;

static __always_inline bool handoff_own(void)
{
	return handoff_cgid && bpf_get_current_cgroup_id() == handoff_cgid;
}

/* Whether a connection to dst goes to the other proxy: TCP of the --to
 * address's family, in the daemon's network namespace (where that address
 * is the proxy's; a container's go to its own listener).  DNS (port 53)
 * stays with the daemon's own server. */
static __always_inline bool handed_off(void *ctx, const struct sproxy_addr *dst)
{
	if (dst->port == bpf_htons(DNS_PORT) || bpf_get_netns_cookie(ctx) != netns_cookie)
		return false;
	return is_v4(dst) ? handoff4_port != 0 : handoff6_port != 0;
}

/* tcp_connect's last step with --to: the socket goes to the other proxy
 * rather than to the daemon.  False: not handed off, the caller goes on. */
static __always_inline bool handoff_rewrite(struct bpf_sock_addr *ctx,
					    const struct sproxy_addr *dst,
					    bool v6sock, bool to_v4)
{
	if (!handed_off(ctx, dst))
		return false;
	if (to_v4)
		rewrite(ctx, v6sock, handoff4_ip, handoff6_ip, handoff4_port, true);
	else
		rewrite(ctx, v6sock, 0, handoff6_ip, handoff6_port, false);
	return true;
}

/* What the log needs when the connection ends: by then the socket's
 * record (conns) is gone with close(). */
struct handoff_state {
	struct sproxy_addr dst;
	struct sproxy_proc proc;
	__u64 start_ns;
};

#define TCP_LAST_ACK    9
#define TCP_CLOSING     11

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct handoff_state);
} handoff_socks SEC(".maps");

static __always_inline void handoff_local(struct bpf_sock_ops *skops,
					  struct sproxy_addr *a)
{
	__builtin_memset(a, 0, sizeof(*a));
	if (skops->family == AF_INET) {
		set_v4(a, skops->local_ip4);
	} else {
		a->ip32[0] = skops->local_ip6[0];
		a->ip32[1] = skops->local_ip6[1];
		a->ip32[2] = skops->local_ip6[2];
		a->ip32[3] = skops->local_ip6[3];
	}
	a->port = bpf_htons((__u16)skops->local_port);
}

/* On the target: an application socket handed off is established (its
 * state kept), and closed (one event for the log).  The main sockops
 * program asks for the state callbacks of every recorded socket, and
 * calls this after its own work. */
static __always_inline int sockops_handoff(struct bpf_sock_ops *skops)
{
	struct sproxy_handoff_event *e;
	struct handoff_state *st;
	struct sproxy_conn *c;
	struct bpf_sock *sk = skops->sk;
	struct tcp_sock *tp;
	__u64 cookie, up, down;
	__u32 old, fin_out;

	if (!handoff4_port && !handoff6_port)
		return 1;
	if (!sk)
		return 1;
	if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		cookie = bpf_get_socket_cookie(skops);
		c = bpf_map_lookup_elem(&conns, &cookie);
		if (!c || !handed_off(skops, &c->dst))
			return 1;
		st = bpf_sk_storage_get(&handoff_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st)
			return 1;
		st->dst = c->dst;
		st->proc = c->proc;
		st->start_ns = bpf_ktime_get_ns();
		return 1;
	}
	if (skops->op != BPF_SOCK_OPS_STATE_CB)
		return 1;
	st = bpf_sk_storage_get(&handoff_socks, sk, 0, 0);
	if (!st)
		return 1;
	if (skops->args[1] != TCP_CLOSE)
		return 1;
	/* The kernel's counts hold the sequence numbers of SYN and FIN too:
	 * the SYN is always acknowledged by now; the application's FIN was
	 * when the socket closes from these states; the other proxy's FIN
	 * came when the socket is marked done (tcp_fin sets SOCK_DONE). */
	old = skops->args[0];
	up = skops->bytes_acked;
	down = skops->bytes_received;
	fin_out = old == TCP_FIN_WAIT2 || old == TCP_LAST_ACK || old == TCP_CLOSING;
	up -= up >= 1 + fin_out ? 1 + fin_out : up;
	tp = bpf_skc_to_tcp_sock(sk);
	if (tp && (tp->inet_conn.icsk_inet.sk.__sk_common.skc_flags & (1UL << SOCK_DONE)) && down)
		down--;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		e->type = SPROXY_EV_HANDOFF;
		e->family = skops->family;
		e->cookie = bpf_get_socket_cookie(skops);
		e->proc = st->proc;
		e->dst = st->dst;
		handoff_local(skops, &e->src);
		e->up = up;
		e->down = down;
		e->duration_ns = bpf_ktime_get_ns() - st->start_ns;
		bpf_ringbuf_submit(e, log_wakeup());
	}
	bpf_sk_storage_delete(&handoff_socks, sk);
	return 1;
}

#endif
