/* Part of the one BPF object sproxy.bpf.c builds: other network namespaces
 * (containers).  A socket's namespace is served when user space has opened
 * a listener and a UDP pool inside it and named them here, by the
 * namespace's cookie; a namespace not served yet is reported to user space
 * (at most once a second each) and its traffic left alone until then.
 * Included by sproxy.bpf.c only, after common.bpf.h. */
#ifndef SPROXY_NETNS_BPF_H
#define SPROXY_NETNS_BPF_H

/* Set by the loader: capture namespaces other than the daemon's (false:
 * --netns current). */
const volatile bool netns_all;

/* Served namespaces: netns cookie -> the listener opened inside it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SPROXY_NETNS_MAX);
	__type(key, __u64);
	__type(value, struct sproxy_netns);
} netns_served SEC(".maps");

/* When each unserved namespace was last reported (ns), so that a busy
 * container does not flood the ring buffer before it is served. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SPROXY_NETNS_MAX);
	__type(key, __u64);
	__type(value, __u64);
} netns_reported SEC(".maps");

/* Each served namespace's free UDP pool ports, a queue per family made by
 * user space (its pool sockets live in that namespace). */
struct netns_queue {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 64);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, SPROXY_NETNS_MAX);
	__type(key, __u64);
	__array(values, struct netns_queue);
} netns_pool4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, SPROXY_NETNS_MAX);
	__type(key, __u64);
	__array(values, struct netns_queue);
} netns_pool6 SEC(".maps");

static __always_inline void netns_report(void *ctx, __u64 cookie)
{
	__u64 now = bpf_ktime_get_ns(), *last;
	struct sproxy_proc p;

	last = bpf_map_lookup_elem(&netns_reported, &cookie);
	if (last && now - *last < 1000000000ull)
		return;
	bpf_map_update_elem(&netns_reported, &cookie, &now, BPF_ANY);
	fill_proc(&p);
	emit(SPROXY_EV_NETNS, 0, cookie, &p);
}

/* Whether this socket's namespace is one we capture: the daemon's, or a
 * served one (an unserved one is reported). */
static __always_inline bool netns_capture(void *ctx)
{
	__u64 cookie = bpf_get_netns_cookie(ctx);

	if (cookie == netns_cookie)
		return true;
	if (!netns_all)
		return false;
	if (bpf_map_lookup_elem(&netns_served, &cookie))
		return true;
	netns_report(ctx, cookie);
	return false;
}

/* Where this socket's TCP goes: the daemon's listeners in its own
 * namespace, the namespace's loopback listeners in another (ports 0 when
 * it is not served). */
struct netns_listener {
	__u32 ip4;
	__u32 ip6[4];
	__u16 port4, port6;
};

static __always_inline void netns_listener(struct bpf_sock_addr *ctx,
					   struct netns_listener *l)
{
	__u64 cookie = bpf_get_netns_cookie(ctx);
	struct sproxy_netns *ns;

	if (cookie == netns_cookie) {
		l->ip4 = proxy4_ip;
		l->ip6[0] = proxy6_ip[0];
		l->ip6[1] = proxy6_ip[1];
		l->ip6[2] = proxy6_ip[2];
		l->ip6[3] = proxy6_ip[3];
		l->port4 = proxy4_port;
		l->port6 = proxy6_port;
		return;
	}
	ns = bpf_map_lookup_elem(&netns_served, &cookie);
	l->ip4 = bpf_htonl(0x7f000001);
	l->ip6[0] = 0;
	l->ip6[1] = 0;
	l->ip6[2] = 0;
	l->ip6[3] = bpf_htonl(1);
	l->port4 = ns ? ns->port4 : 0;
	l->port6 = ns ? ns->port6 : 0;
}

/* The free-port queue of this socket's namespace: the daemon's own
 * (pool, and the DNS reserve) are left as given (0); another's replaces
 * both (1: a container's pool has no reserve).  -1: no pool of that
 * family there. */
static __always_inline int netns_pools(struct bpf_sock_addr *ctx, bool to_v4,
				       void **pool, void **reserve)
{
	__u64 cookie = bpf_get_netns_cookie(ctx);
	void *q;

	if (cookie == netns_cookie)
		return 0;
	q = bpf_map_lookup_elem(to_v4 ? (void *)&netns_pool4 : (void *)&netns_pool6,
				&cookie);
	if (!q)
		return -1;
	*pool = q;
	*reserve = q;
	return 1;
}

#endif
