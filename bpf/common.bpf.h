/* Part of the one BPF object sproxy.bpf.c builds: the settings the loader fills in, the shared maps (TCP records, bypass, stats, events) and the helpers every hook uses.
 * Included by sproxy.bpf.c only, after the parts it names. */
#ifndef SPROXY_COMMON_BPF_H
#define SPROXY_COMMON_BPF_H


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

/* Reports of connections that ended (the kernel path's, --to's) are for
 * the log: the daemon drains them once a second, and is woken for them
 * only when the ring is a quarter full.  At thousands of connections a
 * second, a wakeup per connection cost the daemon's core more than the
 * lines themselves.  Every other event wakes it at once (and so drains
 * these too). */
#define LOG_WAKE_BYTES (64 * 1024)

static __always_inline __u64 log_wakeup(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= LOG_WAKE_BYTES ?
	       BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

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

/* netns.bpf.h: whether the socket's network namespace is captured. */
static __always_inline bool netns_capture(void *ctx);

/* Whether this socket is one to leave alone: the daemon's own (by process
 * and by mark: either alone misses helpers or sockets made before a fork),
 * another network namespace's that is not served (no listener of ours
 * there yet, or --netns current), or bypassed.
 * DNS is captured even to loopback: that is where desktop resolvers sit. */
static __always_inline bool handoff_own(void);   /* handoff.bpf.h */

static __always_inline bool skip(struct bpf_sock_addr *ctx,
				 const struct sproxy_addr *dst)
{
	struct bpf_sock *sk = ctx->sk;

	if (is_self() || (sk && sock_mark && sk->mark == sock_mark) || handoff_own()) {
		stat_inc(SPROXY_STAT_SELF);
		return true;
	}
	if (!netns_capture(ctx)) {
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

#endif
