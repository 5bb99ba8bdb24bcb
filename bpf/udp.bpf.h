/* Part of the one BPF object sproxy.bpf.c builds: the UDP pool: each (socket, destination) gets a loopback port of the daemon's (common.bpf.h first).
 * Included by sproxy.bpf.c only, after the parts it names. */
#ifndef SPROXY_UDP_BPF_H
#define SPROXY_UDP_BPF_H

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sproxy_flow_key);
	__type(value, __u32);             /* pool port, host order */
} flows SEC(".maps");

/* UDP sockets that own flows, so that their release is worth an event. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u32);
} udp_socks SEC(".maps");

/* Free pool ports, pushed by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 1024);
	__type(value, __u32);
} pool4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 1024);
	__type(value, __u32);
} pool6 SEC(".maps");

/* Pool port (host order) -> the flow it carries. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct sproxy_flow);
} ports4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct sproxy_flow);
} ports6 SEC(".maps");

/* Ports of each family that only DNS may take, once the main pool is
 * dry: one application holding every flow must not take name resolution
 * from the whole cgroup. */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 1024);
	__type(value, __u32);
} pool4dns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 1024);
	__type(value, __u32);
} pool6dns SEC(".maps");

/* Pool ports each process holds (by tgid): counted up here, down by user
 * space when it frees a port (and recounted by it from time to time). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} udp_procs SEC(".maps");

/* Set by user space after load: pool ports one process may hold (0: no
 * bound).  The times of the last dry and limit events: a dry pool refuses
 * every datagram, and one event each would crowd the ring buffer out of
 * the release events that refill the pool. */
__u32 udp_per_proc;
__u64 last_dry_ns;
__u64 last_limit_ns;

static __always_inline void emit_limited(__u64 *last, __u32 type, __u32 family,
					 __u64 cookie, const struct sproxy_proc *proc)
{
	__u64 now = bpf_ktime_get_ns();

	if (now - *last < 1000000000ull) {
		stat_inc(SPROXY_STAT_UDP_EVENTS_QUIET);
		return;
	}
	*last = now;
	emit(type, family, cookie, proc);
}

/* Whether the process may take one more pool port. */
static __always_inline bool proc_has_room(__u32 tgid)
{
	__u32 *n, limit = udp_per_proc;

	if (!limit)
		return true;
	n = bpf_map_lookup_elem(&udp_procs, &tgid);
	return !n || *n < limit;
}

static __always_inline void proc_count(__u32 tgid)
{
	__u32 *n, one = 1;

	n = bpf_map_lookup_elem(&udp_procs, &tgid);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	if (bpf_map_update_elem(&udp_procs, &tgid, &one, BPF_NOEXIST)) {
		n = bpf_map_lookup_elem(&udp_procs, &tgid);
		if (n)
			__sync_fetch_and_add(n, 1);
	}
}

/* The socket's bound address.  sendmsg runs its hook after the socket is
 * bound (autobind comes first), connect before. */
static __always_inline void app_addr(struct bpf_sock_addr *ctx, struct sproxy_addr *a)
{
	struct bpf_sock *sk = ctx->sk;

	if (!sk)
		return;
	if (sk->family == AF_INET) {
		set_v4(a, sk->src_ip4);
	} else {
		a->ip32[0] = sk->src_ip6[0];
		a->ip32[1] = sk->src_ip6[1];
		a->ip32[2] = sk->src_ip6[2];
		a->ip32[3] = sk->src_ip6[3];
	}
	a->port = bpf_htons((__u16)sk->src_port);
}

/* The pool port for (socket, destination): the one it has, or a new one.
 * 0 when refused (pool dry, or the process has its share).  A flow made by
 * connect() is marked so: it lives as long as its socket. */
static __always_inline __u32 udp_port(struct bpf_sock_addr *ctx,
				      const struct sproxy_addr *dst, bool to_v4,
				      bool connected)
{
	struct sproxy_flow_key k;
	struct sproxy_flow f = {};
	struct sproxy_flow *old;
	void *pool = to_v4 ? (void *)&pool4 : (void *)&pool6;
	void *reserve = to_v4 ? (void *)&pool4dns : (void *)&pool6dns;
	void *ports = to_v4 ? (void *)&ports4 : (void *)&ports6;
	bool dns = dst->port == bpf_htons(DNS_PORT);
	__u32 *have, port = 0, one = 1;
	int other = netns_pools(ctx, to_v4, &pool, &reserve);

	if (other < 0)
		return 0;
	__builtin_memset(&k, 0, sizeof(k));
	k.cookie = bpf_get_socket_cookie(ctx);
	k.dst = *dst;
	have = bpf_map_lookup_elem(&flows, &k);
	if (have) {
		port = *have;
		old = bpf_map_lookup_elem(ports, &port);
		/* The port may have expired and gone to another flow. */
		if (old && old->cookie == k.cookie && addr_eq(&old->dst, dst)) {
			if (connected)
				old->flags |= SPROXY_FLOW_CONNECTED;
			return port;
		}
	}
	fill_proc(&f.proc);
	if (!proc_has_room(f.proc.tgid)) {
		stat_inc(SPROXY_STAT_UDP_PROC_LIMIT);
		emit_limited(&last_limit_ns, SPROXY_EV_UDP_LIMIT,
			     to_v4 ? AF_INET : AF_INET6, k.cookie, &f.proc);
		return 0;
	}
	if (bpf_map_pop_elem(pool, &port)) {
		if (!dns || bpf_map_pop_elem(reserve, &port)) {
			stat_inc(SPROXY_STAT_POOL_EMPTY);
			emit_limited(&last_dry_ns, SPROXY_EV_POOL_EMPTY,
				     to_v4 ? AF_INET : AF_INET6, k.cookie, &f.proc);
			return 0;
		}
		f.flags |= SPROXY_FLOW_RESERVE;
		pool = reserve;
	}
	if (other)
		f.flags |= SPROXY_FLOW_NETNS;
	if (connected)
		f.flags |= SPROXY_FLOW_CONNECTED;
	else
		app_addr(ctx, &f.app);
	f.dst = *dst;
	f.cookie = k.cookie;
	f.generation = bpf_ktime_get_ns();
	if (bpf_map_update_elem(ports, &port, &f, BPF_ANY) ||
	    bpf_map_update_elem(&flows, &k, &port, BPF_ANY)) {
		bpf_map_delete_elem(ports, &port);
		bpf_map_push_elem(pool, &port, 0);
		stat_inc(SPROXY_STAT_MAP_FULL);
		emit(SPROXY_EV_MAP_FULL, to_v4 ? AF_INET : AF_INET6, k.cookie,
		     &f.proc);
		return 0;
	}
	proc_count(f.proc.tgid);
	bpf_map_update_elem(&udp_socks, &k.cookie, &one, BPF_ANY);
	stat_inc(dns ? SPROXY_STAT_DNS_REDIRECTED : SPROXY_STAT_UDP_REDIRECTED);
	return port;
}

/* sendmsg and connect on a UDP socket.  A refused flow refuses the
 * datagram (EPERM to the application) rather than let it leak around the
 * proxy.  Other datagram protocols (ICMP ping sockets run these hooks
 * too, UDP-Lite) are not ours to relay: they go as they are. */
static __always_inline int udp_send(struct bpf_sock_addr *ctx,
				    const struct sproxy_addr *dst, bool v6sock,
				    bool connected)
{
	bool to_v4 = is_v4(dst);
	__u32 port;
	int fp;

	if (!capture_udp || ctx->protocol != IPPROTO_UDP)
		return 1;
	fp = fast_path(ctx, dst, v6sock, false, connected);
	if (fp >= 0)
		return fp;
	port = udp_port(ctx, dst, to_v4, connected);
	if (!port)
		return 0;
	rewrite(ctx, v6sock, udp4_ip, udp6_ip, bpf_htons((__u16)port), to_v4);
	return 1;
}

/* The flow behind a pool endpoint seen by this socket, or NULL. */
static __always_inline struct sproxy_flow *
pool_flow(struct bpf_sock_addr *ctx, const struct sproxy_addr *peer)
{
	struct sproxy_flow *f;
	__u32 port = bpf_ntohs(peer->port);

	if (is_v4(peer)) {
		if (peer->ip32[3] != udp4_ip)
			return NULL;
		f = bpf_map_lookup_elem(&ports4, &port);
	} else {
		if (peer->ip32[0] != udp6_ip[0] || peer->ip32[1] != udp6_ip[1] ||
		    peer->ip32[2] != udp6_ip[2] || peer->ip32[3] != udp6_ip[3])
			return NULL;
		f = bpf_map_lookup_elem(&ports6, &port);
	}
	if (f && f->cookie != bpf_get_socket_cookie(ctx))
		return NULL;
	return f;
}

#endif
