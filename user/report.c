/* The status document.  Built on request from what the daemon holds
 * anyway: the registry of sessions and flows, the stats map, the links. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <event2/buffer.h>

#include "addr.h"
#include "daemon.h"
#include "dnsserver.h"
#include "fakeip.h"
#include "fastpath.h"
#include "live.h"
#include "log.h"
#include "relayloop.h"
#include "report.h"
#include "sproxy.h"
#include "sproxy.skel.h"

/* The stats map's counters by the names the document gives them; one
 * added to the enum and not here shows as stat_N. */
static const char *const stat_names[SPROXY_STAT__MAX] = {
	[SPROXY_STAT_TCP_REDIRECTED] = "tcp_redirected",
	[SPROXY_STAT_UDP_REDIRECTED] = "udp_redirected",
	[SPROXY_STAT_DNS_REDIRECTED] = "dns_redirected",
	[SPROXY_STAT_BYPASSED] = "bypassed",
	[SPROXY_STAT_SELF] = "self",
	[SPROXY_STAT_OTHER_NETNS] = "other_netns",
	[SPROXY_STAT_SOCKOPS_MISS] = "sockops_miss",
	[SPROXY_STAT_ORIGDST_HIT] = "origdst_hit",
	[SPROXY_STAT_ORIGDST_MISS] = "origdst_miss",
	[SPROXY_STAT_POOL_EMPTY] = "pool_empty",
	[SPROXY_STAT_MAP_FULL] = "map_full",
	[SPROXY_STAT_RECV_RESTORED] = "recv_restored",
	[SPROXY_STAT_RECORD_MISMATCH] = "record_mismatch",
	[SPROXY_STAT_UDP_EVENTS_QUIET] = "udp_events_quiet",
	[SPROXY_STAT_UDP_PROC_LIMIT] = "udp_proc_limit",
};

/* "KEY":"escaped s" (with a comma before unless first). */
static void put_str(struct evbuffer *out, int first, const char *key, const char *s,
		    size_t n)
{
	char esc[PATH_MAX * 2];

	log_escape_json(esc, sizeof(esc), s, n);
	evbuffer_add_printf(out, "%s\"%s\":\"%s\"", first ? "" : ",", key, esc);
}

static void put_u64(struct evbuffer *out, const char *key, uint64_t v)
{
	evbuffer_add_printf(out, ",\"%s\":%llu", key, (unsigned long long)v);
}

static void put_programs(struct daemon *d, struct evbuffer *out)
{
	struct bpf_program *p;
	int first = 1;

	evbuffer_add_printf(out, ",\"programs\":[");
	for (size_t i = 0; d->bpf.skel && i < d->bpf.n_links; i++) {
		struct bpf_link_info li;
		__u32 len = sizeof(li);
		const char *name = "?", *type;

		memset(&li, 0, sizeof(li));
		if (bpf_obj_get_info_by_fd(bpf_link__fd(d->bpf.links[i]), &li, &len) < 0)
			continue;
		bpf_object__for_each_program(p, d->bpf.skel->obj) {
			struct bpf_prog_info pi;
			__u32 plen = sizeof(pi);

			memset(&pi, 0, sizeof(pi));
			if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &pi, &plen) == 0 &&
			    pi.id == li.prog_id) {
				name = bpf_program__name(p);
				break;
			}
		}
		type = libbpf_bpf_attach_type_str(li.cgroup.attach_type);
		evbuffer_add_printf(out, "%s{", first ? "" : ",");
		put_str(out, 1, "name", name, strlen(name));
		put_str(out, 0, "attach", type ? type : "?", SIZE_MAX);
		put_str(out, 0, "cgroup", daemon_cgroup_name(d, li.cgroup.cgroup_id), SIZE_MAX);
		put_u64(out, "prog_id", li.prog_id);
		evbuffer_add_printf(out, "}");
		first = 0;
	}
	evbuffer_add_printf(out, "]");
}

static void put_stats(struct daemon *d, struct evbuffer *out)
{
	uint64_t st[SPROXY_STAT__MAX];
	int first = 1;

	evbuffer_add_printf(out, ",\"stats\":{");
	if (d->bpf.skel && loader_stats(&d->bpf, st) == 0) {
		for (int i = 0; i < SPROXY_STAT__MAX; i++) {
			if (stat_names[i])
				evbuffer_add_printf(out, "%s\"%s\":%llu", first ? "" : ",",
						    stat_names[i], (unsigned long long)st[i]);
			else
				evbuffer_add_printf(out, "%s\"stat_%d\":%llu", first ? "" : ",",
						    i, (unsigned long long)st[i]);
			first = 0;
		}
	}
	evbuffer_add_printf(out, "}");
}

static void put_fill(struct daemon *d, struct evbuffer *out)
{
	const struct options *o = d->opt;
	uint64_t conns = 0, tuples = 0;
	size_t used, cap, flows = 0;

	if (d->bpf.skel)
		loader_live(&d->bpf, &conns, &tuples);
	evbuffer_add_printf(out, ",\"fill\":{\"tcp_records\":{\"used\":%llu,\"size\":%u}",
			    (unsigned long long)tuples, o->map_size);
	evbuffer_add_printf(out, ",\"tcp_sockets\":{\"used\":%llu,\"size\":%u}",
			    (unsigned long long)conns, o->map_size);
	evbuffer_add_printf(out, ",\"tcp_sessions\":%llu", (unsigned long long)d->n_conns);
	/* Each flow holds one pool port. */
	for (const struct live *e = d->live.head; e; e = e->next)
		flows += strcmp(e->proto, "tcp") != 0;
	evbuffer_add_printf(out, ",\"udp_pool\":{\"used\":%zu,\"size\":%u}", flows,
			    2 * o->udp_flows);
	if (d->dns && dns_server_fakeip_fill(d->dns, &used, &cap) == 0)
		evbuffer_add_printf(out, ",\"fakeip\":{\"used\":%zu,\"size\":%zu}", used, cap);
	/* Per event loop, the main one first: bulk relays on it now, and
	 * since the start; none listed with one loop (nothing is placed). */
	evbuffer_add_printf(out, ",\"relay_loops\":[");
	for (int i = 0; d->limits.loops && i < relay_loops_count(d->limits.loops); i++) {
		unsigned long now, taken;

		relay_loops_stats(d->limits.loops, i, &now, &taken);
		evbuffer_add_printf(out, "%s{\"bulk\":%lu,\"taken\":%lu}", i ? "," : "", now,
				    taken);
	}
	evbuffer_add_printf(out, "]}");
}

static uint32_t tgid_of(const struct live *e)
{
	return e->proc ? e->proc->tgid : 0;
}

/* By process, then oldest first (proxied and kernel-path together). */
static int by_process(const void *a, const void *b)
{
	const struct live *x = *(const struct live *const *)a, *y = *(const struct live *const *)b;
	uint32_t px = tgid_of(x), py = tgid_of(y);

	if (px != py)
		return px < py ? -1 : 1;
	if (x->start->tv_sec != y->start->tv_sec)
		return x->start->tv_sec < y->start->tv_sec ? -1 : 1;
	if (x->start->tv_nsec != y->start->tv_nsec)
		return x->start->tv_nsec < y->start->tv_nsec ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static double age(const struct timespec *t0, const struct timespec *now)
{
	return (double)(now->tv_sec - t0->tv_sec) + (double)(now->tv_nsec - t0->tv_nsec) / 1e9;
}

static void put_conn(struct evbuffer *out, int first, const struct live *e,
		     const struct timespec *now)
{
	char a[ADDR_STRLEN];

	/* A kernel-path connection has no id and no byte counts while open
	 * (the kernel counts them; they reach the log when it closes). */
	if (e->up)
		evbuffer_add_printf(out, "%s{\"id\":%llu", first ? "" : ",",
				    (unsigned long long)e->id);
	else
		evbuffer_add_printf(out, "%s{\"path\":\"kernel\"", first ? "" : ",");
	put_str(out, 0, "proto", e->proto, SIZE_MAX);
	if (e->src->sa_family)
		put_str(out, 0, "src", addr_str(e->src, a, sizeof(a)),
			SIZE_MAX);
	put_str(out, 0, "dst", e->dst->sa_family ?
		addr_str(e->dst, a, sizeof(a)) : "?", SIZE_MAX);
	if (e->host[0])
		put_str(out, 0, "host", e->host, SIZE_MAX);
	if (e->via && *e->via)
		put_str(out, 0, "via", *e->via, SIZE_MAX);
	if (e->up) {
		put_u64(out, "up", __atomic_load_n(e->up, __ATOMIC_RELAXED));
		put_u64(out, "down", __atomic_load_n(e->down, __ATOMIC_RELAXED));
	}
	evbuffer_add_printf(out, ",\"age\":%.3f}", age(e->start, now));
}

/* A kernel-path connection as a live entry of the report's own. */
struct kconn {
	struct live l;
	struct sproxy_proc proc;
	struct sockaddr_storage src, dst;
	struct timespec start;
	char host[FAKEIP_NAME_MAX + 1];
};

struct kconns {
	struct daemon *d;
	struct kconn *v;
	size_t n, cap;
};

static void add_kconn(void *arg, const struct sproxy_fp_conn *c)
{
	struct kconns *ks = arg;
	struct kconn *k;
	const char *host = NULL;

	if (ks->n == ks->cap) {
		size_t cap = ks->cap ? 2 * ks->cap : 64;
		struct kconn *v = realloc(ks->v, cap * sizeof(*v));

		if (!v)
			return;          /* out of memory: not listed */
		ks->v = v;
		ks->cap = cap;
	}
	k = &ks->v[ks->n++];
	memset(k, 0, sizeof(*k));
	k->proc = c->proc;
	daemon_process_comm(&k->proc);
	addr_from_sproxy(&c->dst, &k->dst);
	if (ks->d->dns)
		host = dns_server_fake_name(ks->d->dns, (struct sockaddr *)&k->dst, NULL);
	snprintf(k->host, sizeof(k->host), "%s", host ? host : "");
	k->start.tv_sec = (time_t)(c->start_ns / 1000000000ull);
	k->start.tv_nsec = (long)(c->start_ns % 1000000000ull);
	k->l.proto = "tcp";
	k->l.proc = &k->proc;
	k->l.src = (struct sockaddr *)&k->src;     /* not known: left out */
	k->l.dst = (struct sockaddr *)&k->dst;
	k->l.host = k->host;
	k->l.start = &k->start;
}

/* Processes by pid, each with its connections oldest first; one without
 * a record (aged out) under pid 0. */
static int put_processes(struct daemon *d, struct evbuffer *out)
{
	size_t n = d->live.n < REPORT_MAX_CONNS ? d->live.n : REPORT_MAX_CONNS, k = 0;
	struct kconns ks = { .d = d };
	struct live **v;
	struct timespec now;
	uint32_t cur = 0;

	fastpath_each_open(d->fast, REPORT_MAX_CONNS - n, add_kconn, &ks);
	v = calloc(n + ks.n + 1, sizeof(*v));
	if (!v) {
		free(ks.v);
		return -1;
	}
	for (struct live *e = d->live.head; e && k < n; e = e->next)
		v[k++] = e;
	for (size_t i = 0; i < ks.n; i++)
		v[k++] = &ks.v[i].l;
	qsort(v, k, sizeof(*v), by_process);
	clock_gettime(CLOCK_MONOTONIC, &now);
	evbuffer_add_printf(out, ",\"processes\":[");
	for (size_t i = 0; i < k; i++) {
		const struct sproxy_proc *p = v[i]->proc;
		int first_conn = i == 0 || tgid_of(v[i]) != cur;

		if (first_conn) {
			if (i)
				evbuffer_add_printf(out, "]},");
			cur = tgid_of(v[i]);
			evbuffer_add_printf(out, "{\"pid\":%u", cur);
			if (p) {
				put_str(out, 0, "comm", p->comm, SPROXY_COMM_LEN);
				evbuffer_add_printf(out, ",\"uid\":%u,\"gid\":%u", p->uid, p->gid);
				put_str(out, 0, "cgroup", daemon_cgroup_name(d, p->cgroup_id),
					SIZE_MAX);
			}
			evbuffer_add_printf(out, ",\"conns\":[");
		}
		put_conn(out, first_conn, v[i], &now);
	}
	/* Kernel-path connections past the cap are not counted either. */
	evbuffer_add_printf(out, "%s],\"conns\":%zu,\"unlisted\":%zu", k ? "]}" : "",
			    d->live.n + ks.n, d->live.n + ks.n - k);
	free(ks.v);
	free(v);
	return 0;
}

int report_status(struct daemon *d, struct evbuffer *out)
{
	time_t now = time(NULL);

	evbuffer_add_printf(out, "{\"version\":\"%s\",\"pid\":%d", SPROXY_VERSION,
			    (int)getpid());
	put_str(out, 0, "cgroup", d->target, SIZE_MAX);
	put_u64(out, "attached_at", (uint64_t)d->attached_at);
	put_u64(out, "now", (uint64_t)now);
	put_programs(d, out);
	put_stats(d, out);
	put_fill(d, out);
	if (put_processes(d, out) < 0)
		return -1;
	return evbuffer_add_printf(out, "}\n") < 0 ? -1 : 0;
}
