// SPDX-License-Identifier: GPL-2.0
/* Capture of a cgroup's TCP and UDP for sproxy-bpf.
 *
 * connect4|6   TCP: record the original destination and the process by
 *              socket cookie, point the socket at the proxy listener.
 *              UDP (connected): as sendmsg.
 * sockops      once the 4-tuple exists, re-key the record by it: the
 *              proxy's accepted socket has another cookie.  The record
 *              goes when the connection does (TCP state callbacks).
 * getsockopt   SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST on the proxy's
 *              accepted socket, answered as netfilter would.
 * sendmsg4|6   UDP: each (socket, destination) gets a port of the pool of
 *              sockets the proxy holds on loopback; the datagram goes there.
 * recvmsg4|6   replies from a pool port show the original peer.
 * getpeername4|6  the same for connected sockets.
 * setsockopt   TCP keepalive and user timeout an application sets go
 *              into its record, for the proxy to set on its leg out.
 * sock_release drops the records of a closing socket.
 * sock_create  marks the daemon's own sockets (evdns's too).
 *
 * The parts: common.bpf.h (settings, shared maps, helpers), fastpath.bpf.h
 * (connections the proxy need not see: decided and reported here),
 * netns.bpf.h (other network namespaces: containers), handoff.bpf.h (--to),
 * tcp.bpf.h, udp.bpf.h, sockopt.bpf.h; one object, one skeleton.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "sproxy.h"
#include "common.bpf.h"
#include "fastpath.bpf.h"
#include "netns.bpf.h"
#include "handoff.bpf.h"
#include "tcp.bpf.h"
#include "udp.bpf.h"
#include "sockopt.bpf.h"

static __always_inline int capture(struct bpf_sock_addr *ctx,
				   const struct sproxy_addr *dst, bool v6sock)
{
	if (ctx->type != SOCK_STREAM && ctx->type != SOCK_DGRAM)
		return 1;
	if (ctx->type == SOCK_DGRAM && ctx->protocol != IPPROTO_UDP)
		return 1;
	if (skip(ctx, dst))
		return 1;
	if (ctx->type == SOCK_STREAM)
		return tcp_connect(ctx, dst, v6sock);
	return udp_send(ctx, dst, v6sock, true);
}

SEC("cgroup/connect4")
int sproxy_connect4(struct bpf_sock_addr *ctx)
{
	struct sproxy_addr dst;

	dst4(ctx, &dst);
	return capture(ctx, &dst, false);
}

SEC("cgroup/connect6")
int sproxy_connect6(struct bpf_sock_addr *ctx)
{
	struct sproxy_addr dst;

	dst6(ctx, &dst);
	return capture(ctx, &dst, true);
}

SEC("cgroup/sendmsg4")
int sproxy_sendmsg4(struct bpf_sock_addr *ctx)
{
	struct sproxy_addr dst;

	dst4(ctx, &dst);
	if (ctx->protocol != IPPROTO_UDP || skip(ctx, &dst))
		return 1;
	return udp_send(ctx, &dst, false, false);
}

SEC("cgroup/sendmsg6")
int sproxy_sendmsg6(struct bpf_sock_addr *ctx)
{
	struct sproxy_addr dst;

	dst6(ctx, &dst);
	if (ctx->protocol != IPPROTO_UDP || skip(ctx, &dst))
		return 1;
	return udp_send(ctx, &dst, true, false);
}

/* The original peer of this socket, for recvmsg and getpeername. */
static __always_inline const struct sproxy_addr *
original_peer(struct bpf_sock_addr *ctx, const struct sproxy_addr *peer)
{
	struct sproxy_flow *f;
	struct sproxy_conn *c;
	__u64 cookie;

	if (ctx->type == SOCK_STREAM) {
		cookie = bpf_get_socket_cookie(ctx);
		c = bpf_map_lookup_elem(&conns, &cookie);
		return c ? &c->dst : fast_peer(cookie);
	}
	f = pool_flow(ctx, peer);
	return f ? &f->dst : NULL;
}

static __always_inline int restore4(struct bpf_sock_addr *ctx)
{
	const struct sproxy_addr *orig;
	struct sproxy_addr peer;

	dst4(ctx, &peer);
	orig = original_peer(ctx, &peer);
	if (orig && is_v4(orig)) {
		ctx->user_ip4 = orig->ip32[3];
		ctx->user_port = orig->port;
		stat_inc(SPROXY_STAT_RECV_RESTORED);
	}
	return 1;
}

static __always_inline int restore6(struct bpf_sock_addr *ctx)
{
	const struct sproxy_addr *orig;
	struct sproxy_addr peer;

	dst6(ctx, &peer);
	orig = original_peer(ctx, &peer);
	if (orig) {
		ctx->user_ip6[0] = orig->ip32[0];
		ctx->user_ip6[1] = orig->ip32[1];
		ctx->user_ip6[2] = orig->ip32[2];
		ctx->user_ip6[3] = orig->ip32[3];
		ctx->user_port = orig->port;
		stat_inc(SPROXY_STAT_RECV_RESTORED);
	}
	return 1;
}

SEC("cgroup/recvmsg4")
int sproxy_recvmsg4(struct bpf_sock_addr *ctx)
{
	return restore4(ctx);
}

SEC("cgroup/recvmsg6")
int sproxy_recvmsg6(struct bpf_sock_addr *ctx)
{
	return restore6(ctx);
}

SEC("cgroup/getpeername4")
int sproxy_getpeername4(struct bpf_sock_addr *ctx)
{
	return restore4(ctx);
}

SEC("cgroup/getpeername6")
int sproxy_getpeername6(struct bpf_sock_addr *ctx)
{
	return restore6(ctx);
}

static __always_inline int sockops_main(struct bpf_sock_ops *skops)
{
	struct sproxy_tuple t;
	struct sproxy_conn *c;
	__u64 cookie;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		cookie = bpf_get_socket_cookie(skops);
		c = bpf_map_lookup_elem(&conns, &cookie);
		if (!c)
			return 1;
		/* From SYN_SENT on, so that a connection given up before it
		 * is established is seen to end. */
		if (skops->op == BPF_SOCK_OPS_TCP_CONNECT_CB)
			watch_state(skops);
		else
			app_established(skops, c);
		return 1;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		/* The proxy's end of a recorded connection: watch it too. */
		skops_tuple(skops, &t, false);
		if (bpf_map_lookup_elem(&tuples, &t))
			watch_state(skops);
		return 1;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == TCP_CLOSE)
			conn_closed(skops);
		return 1;
	}
	return 1;
}

/* One program for every socket operation: each TCP connection meets
 * about nine callbacks, and three programs attached apart paid the
 * cgroup's dispatch three times for each. */
SEC("sockops")
int sproxy_sockops(struct bpf_sock_ops *skops)
{
	/* Of a connection's state changes, every part acts on two only: no
	 * lookup for the rest (FIN_WAIT1, CLOSE_WAIT, LAST_ACK...). */
	if (skops->op == BPF_SOCK_OPS_STATE_CB && skops->args[1] != TCP_ESTABLISHED &&
	    skops->args[1] != TCP_CLOSE)
		return 1;
	/* A kernel-path socket has no record for the others to find. */
	if (fast_sockops(skops))
		return 1;
	sockops_main(skops);
	sockops_opts(skops);
	sockops_handoff(skops);
	return 1;
}

SEC("cgroup/sock_release")
int sproxy_sock_release(struct bpf_sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);

	fast_release(sk, cookie);
	if (sk->type == SOCK_STREAM) {
		/* The 4-tuple record outlives the socket: it goes with the
		 * connection (sockops, TCP_CLOSE). */
		if (bpf_map_delete_elem(&conns, &cookie) == 0)
			count_down(&live_conns);
	} else if (sk->type == SOCK_DGRAM) {
		/* Flows live in user space too: tell it to end them. */
		if (bpf_map_delete_elem(&udp_socks, &cookie) == 0)
			emit(SPROXY_EV_UDP_RELEASE, sk->family, cookie, NULL);
	}
	return 1;
}

/* The daemon's every socket gets its mark, evdns's (which it cannot mark
 * itself) included: with the mark the hooks skip it, and it can be routed
 * by mark.  Attached to the daemon's own cgroup, which may be the target:
 * hence the process check. */
SEC("cgroup/sock_create")
int sproxy_sock_create(struct bpf_sock *sk)
{
	if (sock_mark && is_self())
		sk->mark = sock_mark;
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
