/* Part of the one BPF object sproxy.bpf.c builds: TCP records: made at connect, re-keyed by the 4-tuple once established, gone with the connection (common.bpf.h first).
 * Included by sproxy.bpf.c only, after the parts it names. */
#ifndef SPROXY_TCP_BPF_H
#define SPROXY_TCP_BPF_H

static __always_inline int tcp_connect(struct bpf_sock_addr *ctx,
				       const struct sproxy_addr *dst,
				       bool v6sock)
{
	struct sproxy_conn c = {};
	struct netns_listener l;
	bool to_v4 = is_v4(dst);
	__u16 port;
	long err = -1;
	/* Handed off (--to): the other proxy decides, not the fast path. */
	int fp = handed_off(ctx, dst) ? -1 : fast_path(ctx, dst, v6sock, true, true);

	if (fp >= 0)
		return fp;
	netns_listener(ctx, &l);
	port = to_v4 ? l.port4 : l.port6;
	if (!port)
		return 1;    /* no listener of that family: left alone */
	c.dst = *dst;
	c.cookie = bpf_get_socket_cookie(ctx);
	c.family = v6sock ? AF_INET6 : AF_INET;
	fill_proc(&c.proc);
	/* No room: refuse (EPERM to the application) rather than let the
	 * connection go around the proxy or reach it without a record. */
	if (live_tuples < map_capacity) {
		err = bpf_map_update_elem(&conns, &c.cookie, &c, BPF_NOEXIST);
		if (err == 0)
			count_up(&live_conns, &c.proc);
		else    /* the same socket connecting again */
			err = bpf_map_update_elem(&conns, &c.cookie, &c, BPF_EXIST);
	}
	if (err) {
		stat_inc(SPROXY_STAT_MAP_FULL);
		emit(SPROXY_EV_MAP_FULL, c.family, c.cookie, &c.proc);
		return 0;
	}
	stat_inc(dst->port == bpf_htons(DNS_PORT) ? SPROXY_STAT_DNS_REDIRECTED
						   : SPROXY_STAT_TCP_REDIRECTED);
	if (!handoff_rewrite(ctx, dst, v6sock, to_v4))
		rewrite(ctx, v6sock, l.ip4, l.ip6, port, to_v4);
	return 1;
}

/* The 4-tuple of a connection as the proxy's accepted socket names it.
 * app_local: skops is the application's end (else the proxy's). */
static __always_inline void skops_tuple(struct bpf_sock_ops *skops,
					struct sproxy_tuple *t, bool app_local)
{
	struct sproxy_addr *local = app_local ? &t->app : &t->proxy;
	struct sproxy_addr *remote = app_local ? &t->proxy : &t->app;

	__builtin_memset(t, 0, sizeof(*t));
	t->netns = bpf_get_netns_cookie(skops);
	if (skops->family == AF_INET) {
		set_v4(local, skops->local_ip4);
		set_v4(remote, skops->remote_ip4);
	} else {
		local->ip32[0] = skops->local_ip6[0];
		local->ip32[1] = skops->local_ip6[1];
		local->ip32[2] = skops->local_ip6[2];
		local->ip32[3] = skops->local_ip6[3];
		remote->ip32[0] = skops->remote_ip6[0];
		remote->ip32[1] = skops->remote_ip6[1];
		remote->ip32[2] = skops->remote_ip6[2];
		remote->ip32[3] = skops->remote_ip6[3];
	}
	local->port = bpf_htons((__u16)skops->local_port);
	/* remote_port holds the network-order port in its upper half. */
	remote->port = (__u16)(skops->remote_port >> 16);
}

static __always_inline void watch_state(struct bpf_sock_ops *skops)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
				  BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* The application's end is established: its record, re-keyed by the
 * 4-tuple, with the proxy end's initial sequence number, which no other
 * connection of the same 4-tuple shares (see the getsockopt hook). */
static __always_inline void app_established(struct bpf_sock_ops *skops,
					    struct sproxy_conn *c)
{
	struct sproxy_tuple t;
	struct sproxy_conn rec = *c;
	__u64 cookie = c->cookie;

	skops_tuple(skops, &t, true);
	rec.isn = skops->rcv_nxt - 1;
	if (bpf_map_update_elem(&tuples, &t, &rec, BPF_NOEXIST) == 0) {
		count_up(&live_tuples, &rec.proc);
	} else if (bpf_map_update_elem(&tuples, &t, &rec, BPF_EXIST)) {
		/* Not expected (connect() keeps room): the proxy refuses. */
		stat_inc(SPROXY_STAT_MAP_FULL);
		emit(SPROXY_EV_MAP_FULL, c->family, cookie, &rec.proc);
	}
	watch_state(skops);
}

/* A connection ended (TCP_CLOSE): its record goes, unless the proxy may
 * still have to read it.  The application's end closing from FIN_WAIT2
 * (it closed first, the proxy end acknowledged) leaves the proxy's end
 * alive, perhaps not accepted yet, with the data it must still relay:
 * the record then goes with the proxy's end.  Any other way the
 * application's end ends (reset, SYN_SENT given up, the proxy closed
 * first) frees the 4-tuple for someone else, and the record with it. */
static __always_inline void conn_closed(struct bpf_sock_ops *skops)
{
	struct sproxy_tuple t;
	struct sproxy_conn *rec;
	__u32 isn;

	skops_tuple(skops, &t, true);
	rec = bpf_map_lookup_elem(&tuples, &t);
	if (rec && rec->cookie == bpf_get_socket_cookie(skops)) {
		if (skops->args[0] != TCP_FIN_WAIT2 &&
		    bpf_map_delete_elem(&tuples, &t) == 0)
			count_down(&live_tuples);
		return;
	}
	skops_tuple(skops, &t, false);
	rec = bpf_map_lookup_elem(&tuples, &t);
	isn = (__u32)skops->snd_una - (__u32)skops->bytes_acked - 1;
	if (rec && rec->isn == isn && bpf_map_delete_elem(&tuples, &t) == 0)
		count_down(&live_tuples);
}

/* Runs for the application's sockets (the target cgroup) and for the
 * proxy's accepted ones (the proxy's cgroup, when that is another). */

#endif
