// SPDX-License-Identifier: GPL-2.0
/* Capture of a cgroup's TCP and UDP for sproxy-bpf.
 *
 * connect4|6   TCP: record the original destination and the process by
 *              socket cookie, point the socket at the proxy listener.
 *              UDP (connected): as sendmsg.
 * sockops      once the 4-tuple exists, re-key the record by it: the
 *              proxy's accepted socket has another cookie.
 * getsockopt   SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST on the proxy's
 *              accepted socket, answered as netfilter would.
 * sendmsg4|6   UDP: each (socket, destination) gets a port of the pool of
 *              sockets the proxy holds on loopback; the datagram goes there.
 * recvmsg4|6   replies from a pool port show the original peer.
 * getpeername4|6  the same for connected sockets.
 * sock_release drops the records of a closing socket.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "sproxy.h"

#define AF_INET      2
#define AF_INET6     10
#define SOCK_STREAM  1
#define SOCK_DGRAM   2
#define SOL_IP       0
#define SOL_IPV6     41
#define SO_ORIGINAL_DST 80
#define ENOENT       2
#define EINVAL       22
#define DNS_PORT     53

/* Set by the loader before load. */
const volatile __u32 daemon_tgid;
const volatile __u32 sock_mark;
const volatile __u64 netns_cookie;
const volatile __u32 proxy4_ip;      /* network order */
const volatile __u16 proxy4_port;    /* network order; 0 = no IPv4 listener */
const volatile __u32 proxy6_ip[4];
const volatile __u16 proxy6_port;    /* 0 = no IPv6 listener */
const volatile __u32 udp4_ip;        /* where the IPv4 pool sockets are bound */
const volatile __u32 udp6_ip[4];
const volatile bool capture_udp;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sproxy_conn);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sproxy_tuple);
	__type(value, struct sproxy_conn);
} tuples SEC(".maps");

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

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sproxy_bypass_key);
	__type(value, struct sproxy_bypass_val);
} bypass SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SPROXY_STAT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		*v += 1;
}

static __always_inline void emit(__u32 type, __u32 family, __u64 cookie,
				 const struct sproxy_proc *proc)
{
	struct sproxy_event *e;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return;
	e->type = type;
	e->family = family;
	e->cookie = cookie;
	if (proc)
		e->proc = *proc;
	else
		__builtin_memset(&e->proc, 0, sizeof(e->proc));
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void set_v4(struct sproxy_addr *a, __u32 ip4)
{
	a->ip32[0] = 0;
	a->ip32[1] = 0;
	a->ip32[2] = bpf_htonl(0xffff);
	a->ip32[3] = ip4;
}

static __always_inline bool is_v4(const struct sproxy_addr *a)
{
	return a->ip32[0] == 0 && a->ip32[1] == 0 &&
	       a->ip32[2] == bpf_htonl(0xffff);
}

static __always_inline bool addr_eq(const struct sproxy_addr *a,
				    const struct sproxy_addr *b)
{
	return a->ip32[0] == b->ip32[0] && a->ip32[1] == b->ip32[1] &&
	       a->ip32[2] == b->ip32[2] && a->ip32[3] == b->ip32[3] &&
	       a->port == b->port;
}

static __always_inline void fill_proc(struct sproxy_proc *p)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();

	p->pid = (__u32)id;
	p->tgid = id >> 32;
	p->uid = (__u32)ug;
	p->gid = ug >> 32;
	p->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(p->comm, sizeof(p->comm));
}

static __always_inline bool bypassed(const struct sproxy_addr *dst)
{
	struct sproxy_bypass_key k = { .prefixlen = 128 };
	struct sproxy_bypass_val *v;
	bool any = true;
	int i;

	k.ip32[0] = dst->ip32[0];
	k.ip32[1] = dst->ip32[1];
	k.ip32[2] = dst->ip32[2];
	k.ip32[3] = dst->ip32[3];
	v = bpf_map_lookup_elem(&bypass, &k);
	if (!v)
		return false;
	for (i = 0; i < SPROXY_BYPASS_PORTS; i++) {
		if (v->ports[i]) {
			any = false;
			if (v->ports[i] == dst->port)
				return true;
		}
	}
	return any;
}

/* Whether this socket is one to leave alone: the daemon's own (by process
 * and by mark: either alone misses helpers or sockets made before a fork),
 * another network namespace's (our listener is not there), or bypassed.
 * DNS is captured even to loopback: that is where desktop resolvers sit. */
static __always_inline bool skip(struct bpf_sock_addr *ctx,
				 const struct sproxy_addr *dst)
{
	struct bpf_sock *sk = ctx->sk;

	if ((bpf_get_current_pid_tgid() >> 32) == daemon_tgid ||
	    (sk && sock_mark && sk->mark == sock_mark)) {
		stat_inc(SPROXY_STAT_SELF);
		return true;
	}
	if (bpf_get_netns_cookie(ctx) != netns_cookie) {
		stat_inc(SPROXY_STAT_OTHER_NETNS);
		return true;
	}
	if (dst->port == bpf_htons(DNS_PORT))
		return false;
	if (bypassed(dst)) {
		stat_inc(SPROXY_STAT_BYPASSED);
		return true;
	}
	return false;
}

/* Point the socket at addr (IPv4-mapped for IPv4), in the form its family
 * takes: an IPv6 socket reaching an IPv4 peer goes to ::ffff:a.b.c.d. */
static __always_inline void rewrite(struct bpf_sock_addr *ctx, bool v6sock,
				    __u32 ip4, const volatile __u32 *ip6,
				    __u16 port, bool to_v4)
{
	if (!v6sock) {
		ctx->user_ip4 = ip4;
	} else if (to_v4) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = ip4;
	} else {
		ctx->user_ip6[0] = ip6[0];
		ctx->user_ip6[1] = ip6[1];
		ctx->user_ip6[2] = ip6[2];
		ctx->user_ip6[3] = ip6[3];
	}
	ctx->user_port = port;
}

static __always_inline int tcp_connect(struct bpf_sock_addr *ctx,
				       const struct sproxy_addr *dst,
				       bool v6sock)
{
	struct sproxy_conn c = {};
	bool to_v4 = is_v4(dst);
	__u16 port = to_v4 ? proxy4_port : proxy6_port;

	if (!port)
		return 1;    /* no listener of that family: left alone */
	c.dst = *dst;
	c.cookie = bpf_get_socket_cookie(ctx);
	c.family = v6sock ? AF_INET6 : AF_INET;
	fill_proc(&c.proc);
	if (bpf_map_update_elem(&conns, &c.cookie, &c, BPF_ANY)) {
		stat_inc(SPROXY_STAT_MAP_FULL);
		emit(SPROXY_EV_MAP_FULL, c.family, c.cookie, &c.proc);
		return 1;
	}
	stat_inc(dst->port == bpf_htons(DNS_PORT) ? SPROXY_STAT_DNS_REDIRECTED
						   : SPROXY_STAT_TCP_REDIRECTED);
	rewrite(ctx, v6sock, proxy4_ip, proxy6_ip, port, to_v4);
	return 1;
}

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

	if (!capture_udp || ctx->protocol != IPPROTO_UDP)
		return 1;
	port = udp_port(ctx, dst, to_v4, connected);
	if (!port)
		return 0;
	rewrite(ctx, v6sock, udp4_ip, udp6_ip, bpf_htons((__u16)port), to_v4);
	return 1;
}

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

static __always_inline void dst4(struct bpf_sock_addr *ctx,
				 struct sproxy_addr *dst)
{
	__builtin_memset(dst, 0, sizeof(*dst));
	set_v4(dst, ctx->user_ip4);
	dst->port = (__u16)ctx->user_port;
}

static __always_inline void dst6(struct bpf_sock_addr *ctx,
				 struct sproxy_addr *dst)
{
	__builtin_memset(dst, 0, sizeof(*dst));
	dst->ip32[0] = ctx->user_ip6[0];
	dst->ip32[1] = ctx->user_ip6[1];
	dst->ip32[2] = ctx->user_ip6[2];
	dst->ip32[3] = ctx->user_ip6[3];
	dst->port = (__u16)ctx->user_port;
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
		return c ? &c->dst : NULL;
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

SEC("sockops")
int sproxy_sockops(struct bpf_sock_ops *skops)
{
	struct sproxy_tuple t;
	struct sproxy_conn *c;
	__u64 cookie;

	if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB &&
	    skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		return 1;
	cookie = bpf_get_socket_cookie(skops);
	c = bpf_map_lookup_elem(&conns, &cookie);
	if (!c)
		return 1;
	__builtin_memset(&t, 0, sizeof(t));
	t.netns = bpf_get_netns_cookie(skops);
	if (skops->family == AF_INET) {
		set_v4(&t.app, skops->local_ip4);
		set_v4(&t.proxy, skops->remote_ip4);
	} else {
		t.app.ip32[0] = skops->local_ip6[0];
		t.app.ip32[1] = skops->local_ip6[1];
		t.app.ip32[2] = skops->local_ip6[2];
		t.app.ip32[3] = skops->local_ip6[3];
		t.proxy.ip32[0] = skops->remote_ip6[0];
		t.proxy.ip32[1] = skops->remote_ip6[1];
		t.proxy.ip32[2] = skops->remote_ip6[2];
		t.proxy.ip32[3] = skops->remote_ip6[3];
	}
	t.app.port = bpf_htons((__u16)skops->local_port);
	/* remote_port holds the network-order port in its upper half. */
	t.proxy.port = (__u16)(skops->remote_port >> 16);
	if (bpf_map_update_elem(&tuples, &t, c, BPF_ANY)) {
		stat_inc(SPROXY_STAT_MAP_FULL);
		emit(SPROXY_EV_MAP_FULL, c->family, cookie, &c->proc);
	}
	return 1;
}

/* SO_ORIGINAL_DST as netfilter answers it: the struct of the level's
 * family, -EINVAL for a short buffer, -ENOENT without a record.  A kernel
 * answer (real conntrack) is left as it is. */
SEC("cgroup/getsockopt")
int sproxy_getsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct sproxy_tuple t;
	struct sproxy_conn *c;
	int level = ctx->level, name = ctx->optname;
	void *end = ctx->optval_end;

	if (!(level == SOL_IP && (name == SO_ORIGINAL_DST || name == SPROXY_SO_PROCESS)) &&
	    !(level == SOL_IPV6 && name == SO_ORIGINAL_DST))
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
	if (level == SOL_IP && name == SPROXY_SO_PROCESS) {
		struct sproxy_proc *p = ctx->optval;

		if ((void *)(p + 1) > end) {
			ctx->retval = -EINVAL;
			return 1;
		}
		*p = c->proc;
		ctx->optlen = sizeof(*p);
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

SEC("cgroup/sock_release")
int sproxy_sock_release(struct bpf_sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);

	if (sk->type == SOCK_STREAM) {
		bpf_map_delete_elem(&conns, &cookie);
	} else if (sk->type == SOCK_DGRAM) {
		/* Flows live in user space too: tell it to end them. */
		if (bpf_map_delete_elem(&udp_socks, &cookie) == 0)
			emit(SPROXY_EV_UDP_RELEASE, sk->family, cookie, NULL);
	}
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
