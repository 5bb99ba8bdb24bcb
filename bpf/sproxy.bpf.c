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
#define TCP_FIN_WAIT2 5
#define TCP_CLOSE    7

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

/* The daemon's PID namespace (st_dev, st_ino of /proc/self/ns/pid), where
 * daemon_tgid is its getpid(): compared there, a daemon in a namespace of
 * its own (unshare -p, systemd PrivatePIDs) still knows itself.  Without
 * kernel support (use_pidns false) the tgid is compared as the init
 * namespace sees it. */
const volatile bool use_pidns;
const volatile __u64 pidns_dev;
const volatile __u64 pidns_ino;
/* TCP records: connections refused beyond map_capacity; a warning event
 * once map_warn are live. */
const volatile __u64 map_capacity = 65536;
const volatile __u64 map_warn = 52428;

/* Live TCP records, counted here because a HASH map cannot say how full
 * it is.  Read by user space for its messages. */
__u64 live_conns;
__u64 live_tuples;
bool map_warned;

/* TCP records are plain HASH maps, not LRU: an LRU evicts the record of a
 * live connection without a word.  Every entry is deleted when its socket
 * or connection goes (sock_release, TCP state callbacks), so a full map
 * means that many live connections, and the next one is refused. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sproxy_conn);
} conns SEC(".maps");

/* Twice map_capacity (the loader sets it): connect() is refused once
 * map_capacity tuples are live, so the at most map_capacity connections
 * then still on their way always find room here. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);   /* the reserve costs nothing idle */
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

/* Live-record accounting.  Plain atomic adds (no fetch: that needs a newer
 * BPF ISA); the 80% warning reads the count after, and the map_warned flag
 * keeps a race from warning twice in a row.  It re-arms once both counts
 * are below half. */
static __always_inline void count_up(__u64 *n, const struct sproxy_proc *proc)
{
	__sync_fetch_and_add(n, 1);
	if (*n >= map_warn && !map_warned) {
		map_warned = true;
		emit(SPROXY_EV_MAP_HIGH, 0, *n, proc);
	}
}

static __always_inline void count_down(__u64 *n)
{
	__sync_fetch_and_sub(n, 1);
	if (map_warned && live_conns < map_capacity / 2 &&
	    live_tuples < map_capacity / 2)
		map_warned = false;
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

/* The daemon's own process, compared in its own PID namespace: the hooks
 * run with the init namespace's view, getpid() does not. */
static __always_inline bool is_self(void)
{
	struct bpf_pidns_info ns = {};

	if (!use_pidns)
		return (bpf_get_current_pid_tgid() >> 32) == daemon_tgid;
	if (bpf_get_ns_current_pid_tgid(pidns_dev, pidns_ino, &ns, sizeof(ns)))
		return false;     /* another PID namespace: not us */
	return ns.tgid == daemon_tgid;
}

/* Whether this socket is one to leave alone: the daemon's own (by process
 * and by mark: either alone misses helpers or sockets made before a fork),
 * another network namespace's (our listener is not there), or bypassed.
 * DNS is captured even to loopback: that is where desktop resolvers sit. */
static __always_inline bool skip(struct bpf_sock_addr *ctx,
				 const struct sproxy_addr *dst)
{
	struct bpf_sock *sk = ctx->sk;

	if (is_self() || (sk && sock_mark && sk->mark == sock_mark)) {
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
	long err = -1;

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
	rewrite(ctx, v6sock, proxy4_ip, proxy6_ip, port, to_v4);
	return 1;
}

/* The pool port for (socket, destination): the one it has, or a new one.
 * 0 when the pool is dry. */
static __always_inline __u32 udp_port(struct bpf_sock_addr *ctx,
				      const struct sproxy_addr *dst, bool to_v4)
{
	struct sproxy_flow_key k;
	struct sproxy_flow f = {};
	struct sproxy_flow *old;
	void *pool = to_v4 ? (void *)&pool4 : (void *)&pool6;
	void *ports = to_v4 ? (void *)&ports4 : (void *)&ports6;
	__u32 *have, port = 0, one = 1;

	__builtin_memset(&k, 0, sizeof(k));
	k.cookie = bpf_get_socket_cookie(ctx);
	k.dst = *dst;
	have = bpf_map_lookup_elem(&flows, &k);
	if (have) {
		port = *have;
		old = bpf_map_lookup_elem(ports, &port);
		/* The port may have expired and gone to another flow. */
		if (old && old->cookie == k.cookie && addr_eq(&old->dst, dst))
			return port;
	}
	fill_proc(&f.proc);
	if (bpf_map_pop_elem(pool, &port)) {
		stat_inc(SPROXY_STAT_POOL_EMPTY);
		emit(SPROXY_EV_POOL_EMPTY, to_v4 ? AF_INET : AF_INET6, k.cookie,
		     &f.proc);
		return 0;
	}
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
	bpf_map_update_elem(&udp_socks, &k.cookie, &one, BPF_ANY);
	stat_inc(dst->port == bpf_htons(DNS_PORT) ? SPROXY_STAT_DNS_REDIRECTED
						   : SPROXY_STAT_UDP_REDIRECTED);
	return port;
}

/* sendmsg and connect on a UDP socket.  A dry pool refuses the datagram
 * (EPERM to the application) rather than let it leak around the proxy. */
static __always_inline int udp_send(struct bpf_sock_addr *ctx,
				    const struct sproxy_addr *dst, bool v6sock)
{
	bool to_v4 = is_v4(dst);
	__u32 port;

	if (!capture_udp)
		return 1;
	port = udp_port(ctx, dst, to_v4);
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
	if (skip(ctx, dst))
		return 1;
	if (ctx->type == SOCK_STREAM)
		return tcp_connect(ctx, dst, v6sock);
	return udp_send(ctx, dst, v6sock);
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
	if (skip(ctx, &dst))
		return 1;
	return udp_send(ctx, &dst, false);
}

SEC("cgroup/sendmsg6")
int sproxy_sendmsg6(struct bpf_sock_addr *ctx)
{
	struct sproxy_addr dst;

	dst6(ctx, &dst);
	if (skip(ctx, &dst))
		return 1;
	return udp_send(ctx, &dst, true);
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
SEC("sockops")
int sproxy_sockops(struct bpf_sock_ops *skops)
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
 * its record, and its state learns the record for what it sets later. */
SEC("sockops")
int sproxy_sockops_opts(struct bpf_sock_ops *skops)
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

SEC("cgroup/sock_release")
int sproxy_sock_release(struct bpf_sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);

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
