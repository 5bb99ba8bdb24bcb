#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <event2/event.h>

#include "addr.h"
#include "connector.h"
#include "daemon.h"
#include "dnsserver.h"
#include "log.h"
#include "sproxy.h"
#include "sproxy.skel.h"
#include "udp.h"

#define MAX_QUEUED   16    /* datagrams held while a flow connects */
#define MAX_DNS      32    /* queries in flight per flow */
#define MAX_DGRAM    65536

struct udp_flow;

struct udp_slot {
	struct udp_pool *pool;
	int family;
	int fd;
	uint32_t port;
	struct event *ev;
	struct udp_flow *flow;       /* NULL: free, or handed out but not seen yet */
};

struct dns_query {
	struct udp_flow *flow;
	struct dns_pending *p;
	int starting;
};

struct queued {
	struct queued *next;
	size_t len;
	uint8_t data[];
};

struct udp_flow {
	struct udp_slot *slot;
	struct udp_flow *prev, *next;
	struct sproxy_flow rec;
	struct sockaddr_storage app;
	struct target t;
	int is_dns;
	const char *refused;         /* set: datagrams are dropped, this says why */
	char why[160];
	char dns_err[200];           /* the last query that failed, and why */
	int out_fd;
	struct event *out_ev;
	struct connect_req *creq;
	struct queued *q, **qtail;
	int nq;
	struct dns_query *dns[MAX_DNS];
	uint64_t up, down;
	struct timespec start;
	time_t last;
};

struct udp_pool {
	struct daemon *d;
	struct udp_slot *slots;
	size_t n_slots;
	struct udp_flow *active;
	size_t n_active;
	struct event *sweep;
	time_t last_orphan_scan;
	time_t last_dry_log;
	uint64_t dry;
};

static uint8_t dgram[MAX_DGRAM];

static int ports_fd(struct udp_pool *p, int family)
{
	struct sproxy_bpf *s = p->d->bpf.skel;

	return bpf_map__fd(family == AF_INET ? s->maps.ports4 : s->maps.ports6);
}

/* Gives a port back to the BPF side: its records go, the port is free. */
static void port_free(struct udp_pool *p, int family, uint32_t port,
		      const struct sproxy_flow *rec)
{
	struct sproxy_flow_key k;

	memset(&k, 0, sizeof(k));
	k.cookie = rec->cookie;
	k.dst = rec->dst;
	bpf_map_delete_elem(bpf_map__fd(p->d->bpf.skel->maps.flows), &k);
	bpf_map_delete_elem(ports_fd(p, family), &port);
	if (loader_push_port(&p->d->bpf, family, port) < 0)
		log_err("cannot return UDP pool port %u: %s", port, strerror(errno));
}

static void flow_end(struct udp_flow *f, const char *result, const char *err)
{
	if (!err && f->dns_err[0]) {
		result = "error";
		err = f->dns_err;
	}
	struct udp_pool *p = f->slot->pool;
	struct timespec now;
	struct conn_log c = {
		.proto = f->is_dns ? "dns" : "udp",
		.proc = &f->rec.proc,
		.cgroup = daemon_cgroup_name(p->d, f->rec.proc.cgroup_id),
		.src = (struct sockaddr *)&f->app,
		.dst = (struct sockaddr *)&f->t.addr,
		.host = f->t.host[0] ? f->t.host : NULL,
		.up = f->up,
		.down = f->down,
		.result = result,
		.error = err,
	};
	struct queued *q;
	int i;

	clock_gettime(CLOCK_MONOTONIC, &now);
	c.duration = (double)(now.tv_sec - f->start.tv_sec) +
		     (double)(now.tv_nsec - f->start.tv_nsec) / 1e9;
	if (f->app.ss_family == 0)
		c.src = NULL;
	connlog_write(&c);
	for (i = 0; i < MAX_DNS; i++) {
		if (f->dns[i]) {
			dns_pending_cancel(f->dns[i]->p);
			free(f->dns[i]);
		}
	}
	while ((q = f->q)) {
		f->q = q->next;
		free(q);
	}
	if (f->creq)
		connector_cancel(f->creq);
	if (f->out_ev)
		event_free(f->out_ev);
	if (f->out_fd >= 0)
		close(f->out_fd);
	if (f->prev)
		f->prev->next = f->next;
	else
		p->active = f->next;
	if (f->next)
		f->next->prev = f->prev;
	p->n_active--;
	f->slot->flow = NULL;
	port_free(p, f->slot->family, f->slot->port, &f->rec);
	free(f);
}

static void send_to_app(struct udp_flow *f, const void *data, size_t len)
{
	struct sockaddr *app = (struct sockaddr *)&f->app;

	if (sendto(f->slot->fd, data, len, MSG_DONTWAIT, app, addr_len(app)) < 0) {
		log_debug("UDP reply to %s dropped: %s", "application", strerror(errno));
		return;
	}
	f->down += len;
	f->last = time(NULL);
}

static void on_out_read(evutil_socket_t fd, short what, void *arg)
{
	struct udp_flow *f = arg;
	int i;

	(void)what;
	for (i = 0; i < 64; i++) {
		ssize_t n = recv(fd, dgram, sizeof(dgram), MSG_DONTWAIT);

		if (n < 0) {
			/* ECONNREFUSED and the like come from ICMP: the
			 * application would not see them either. */
			if (errno != EAGAIN)
				log_debug("UDP flow: recv: %s", strerror(errno));
			return;
		}
		send_to_app(f, dgram, (size_t)n);
	}
}

static void out_send(struct udp_flow *f, const void *data, size_t len)
{
	if (send(f->out_fd, data, len, MSG_DONTWAIT) < 0)
		log_debug("UDP datagram dropped: %s", strerror(errno));
}

static void on_connected(int fd, const char *errmsg, void *arg)
{
	struct udp_flow *f = arg;
	struct queued *q;

	f->creq = NULL;
	if (fd < 0) {
		snprintf(f->why, sizeof(f->why), "%s", errmsg);
		f->refused = f->why;
		while ((q = f->q)) {
			f->q = q->next;
			free(q);
		}
		return;
	}
	f->out_fd = fd;
	f->out_ev = event_new(f->slot->pool->d->base, fd, EV_READ | EV_PERSIST,
			      on_out_read, f);
	if (!f->out_ev || event_add(f->out_ev, NULL) < 0) {
		f->refused = "out of memory";
		return;
	}
	while ((q = f->q)) {
		f->q = q->next;
		out_send(f, q->data, q->len);
		free(q);
	}
	f->nq = 0;
}

static void on_dns_reply(const uint8_t *reply, size_t len, void *arg)
{
	struct dns_query *dq = arg;
	struct udp_flow *f = dq->flow;
	const char *why = dns_server_reply_error(f->slot->pool->d->dns);
	int i;

	if (why)
		snprintf(f->dns_err, sizeof(f->dns_err), "%s", why);
	if (reply && len)
		send_to_app(f, reply, len);
	if (dq->starting) {      /* answered inside dns_server_query */
		dq->starting = 0;
		dq->p = NULL;
		return;
	}
	for (i = 0; i < MAX_DNS; i++)
		if (f->dns[i] == dq)
			f->dns[i] = NULL;
	free(dq);
}

static void dns_in(struct udp_flow *f, const uint8_t *data, size_t len)
{
	struct dns_query *dq;
	int i;

	for (i = 0; i < MAX_DNS && f->dns[i]; i++)
		;
	if (i == MAX_DNS) {
		log_debug("DNS query dropped: %d already in flight on one socket", MAX_DNS);
		return;
	}
	dq = calloc(1, sizeof(*dq));
	if (!dq)
		return;
	dq->flow = f;
	dq->starting = 1;
	dq->p = dns_server_query_from(f->slot->pool->d->dns, f->rec.proc.tgid, data, len, 0,
				      on_dns_reply, dq);
	if (!dq->starting) {     /* already answered */
		free(dq);
		return;
	}
	dq->starting = 0;
	if (!dq->p) {
		free(dq);
		return;
	}
	f->dns[i] = dq;
}

static struct udp_flow *flow_new(struct udp_slot *slot, const struct sockaddr_storage *from)
{
	struct udp_pool *p = slot->pool;
	struct udp_flow *f;
	const char *name;
	int in_range = 0;
	char a[ADDR_STRLEN];

	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	if (bpf_map_lookup_elem(ports_fd(p, slot->family), &slot->port, &f->rec) < 0) {
		free(f);
		return NULL;      /* a late datagram of a flow that ended */
	}
	daemon_process_comm(&f->rec.proc);
	f->slot = slot;
	f->out_fd = -1;
	f->app = *from;
	f->qtail = &f->q;
	clock_gettime(CLOCK_MONOTONIC, &f->start);
	f->last = time(NULL);
	addr_from_sproxy(&f->rec.dst, &f->t.addr);
	f->is_dns = addr_port((struct sockaddr *)&f->t.addr) == 53;
	slot->flow = f;
	f->next = p->active;
	if (p->active)
		p->active->prev = f;
	p->active = f;
	p->n_active++;
	if (f->is_dns)
		return f;
	name = dns_server_fake_name(p->d->dns, (struct sockaddr *)&f->t.addr, &in_range);
	if (in_range && !name) {
		snprintf(f->why, sizeof(f->why), "%s is a FakeIP address that is not "
			 "mapped to any name (handed out before a restart without "
			 "--fakeip-store?)", addr_str((struct sockaddr *)&f->t.addr, a, sizeof(a)));
		f->refused = f->why;
		return f;
	}
	if (name)
		snprintf(f->t.host, sizeof(f->t.host), "%s", name);
	f->creq = connector_start(p->d, &f->t, SOCK_DGRAM, on_connected, f);
	if (!f->creq)
		f->refused = "out of memory";
	return f;
}

static void on_slot_read(evutil_socket_t fd, short what, void *arg)
{
	struct udp_slot *slot = arg;
	int i;

	(void)what;
	for (i = 0; i < 64; i++) {
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(fd, dgram, sizeof(dgram), MSG_DONTWAIT,
				     (struct sockaddr *)&from, &flen);
		struct udp_flow *f;

		if (n < 0)
			return;
		f = slot->flow ? slot->flow : flow_new(slot, &from);
		if (!f) {
			log_debug("UDP datagram on pool port %u without a flow: dropped",
				  slot->port);
			continue;
		}
		/* A flow is one application socket: anything else writing to
		 * its port is not let in. */
		if (!addr_equal((struct sockaddr *)&from, (struct sockaddr *)&f->app)) {
			log_debug("UDP datagram on pool port %u from a stranger: dropped",
				  slot->port);
			continue;
		}
		f->up += (uint64_t)n;
		f->last = time(NULL);
		if (f->refused)
			continue;
		if (f->is_dns) {
			dns_in(f, dgram, (size_t)n);
		} else if (f->out_fd >= 0) {
			out_send(f, dgram, (size_t)n);
		} else if (f->nq < MAX_QUEUED) {
			struct queued *q = malloc(sizeof(*q) + (size_t)n);

			if (!q)
				continue;
			q->next = NULL;
			q->len = (size_t)n;
			memcpy(q->data, dgram, (size_t)n);
			*f->qtail = q;
			f->qtail = &q->next;
			f->nq++;
		}
	}
}

/* Ports the BPF side handed out whose flow never reached us (the
 * application connected a UDP socket and never sent, or closed before we
 * read): give them back once they are as old as an idle flow. */
static void scan_orphans(struct udp_pool *p)
{
	struct timespec now;
	uint64_t now_ns, limit = (uint64_t)p->d->opt->udp_timeout * 1000000000ull;
	int fam;

	clock_gettime(CLOCK_MONOTONIC, &now);
	now_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	for (fam = 0; fam < 2; fam++) {
		int family = fam ? AF_INET6 : AF_INET, fd = ports_fd(p, family);
		uint32_t key, next, stale[256];
		size_t n = 0, i;
		void *prev = NULL;

		while (n < 256 && bpf_map_get_next_key(fd, prev, &next) == 0) {
			struct sproxy_flow rec;

			key = next;
			prev = &key;
			if (bpf_map_lookup_elem(fd, &key, &rec) < 0)
				continue;
			if (now_ns - rec.generation < limit)
				continue;
			for (i = 0; i < p->n_slots; i++)
				if (p->slots[i].port == key && p->slots[i].family == family)
					break;
			if (i < p->n_slots && !p->slots[i].flow)
				stale[n++] = key;
		}
		for (i = 0; i < n; i++) {
			struct sproxy_flow rec;

			if (bpf_map_lookup_elem(fd, &stale[i], &rec) == 0)
				port_free(p, family, stale[i], &rec);
		}
	}
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct udp_pool *p = arg;
	time_t now = time(NULL);
	struct udp_flow *f, *next;

	(void)fd;
	(void)what;
	for (f = p->active; f; f = next) {
		next = f->next;
		if (now - f->last >= (time_t)p->d->opt->udp_timeout)
			flow_end(f, f->refused ? "refused" : "ok", f->refused);
	}
	if (now - p->last_orphan_scan >= (time_t)(p->d->opt->udp_timeout / 2 + 1)) {
		p->last_orphan_scan = now;
		scan_orphans(p);
	}
}

void udp_pool_release(struct udp_pool *p, uint64_t cookie)
{
	struct udp_flow *f, *next;

	for (f = p->active; f; f = next) {
		next = f->next;
		/* Answers still in flight go nowhere now. */
		if (f->rec.cookie == cookie)
			flow_end(f, f->refused ? "refused" : "ok", f->refused);
	}
}

void udp_pool_dry(struct udp_pool *p, int family, const char *comm, uint32_t pid)
{
	time_t now = time(NULL);

	p->dry++;
	if (now == p->last_dry_log)
		return;
	p->last_dry_log = now;
	log_warn("UDP pool for %s is dry: %zu flows open; a datagram of %.16s "
		 "(pid %u) was refused (%llu so far); raise --udp-flows or lower "
		 "--udp-timeout", family == AF_INET ? "IPv4" : "IPv6", p->n_active,
		 comm, pid, (unsigned long long)p->dry);
}

size_t udp_pool_active(const struct udp_pool *p)
{
	return p->n_active;
}

static int slot_open(struct udp_pool *p, struct udp_slot *s, int family,
		     char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (void *)&ss;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		struct sockaddr_in6 *a = (void *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
	}
	len = addr_len((struct sockaddr *)&ss);
	s->pool = p;
	s->family = family;
	s->fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		goto fail;
	if (family == AF_INET6)
		setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	daemon_mark(p->d, s->fd);
	if (bind(s->fd, (struct sockaddr *)&ss, len) < 0 ||
	    getsockname(s->fd, (struct sockaddr *)&ss, &len) < 0)
		goto fail;
	s->port = addr_port((struct sockaddr *)&ss);
	s->ev = event_new(p->d->base, s->fd, EV_READ | EV_PERSIST, on_slot_read, s);
	if (!s->ev || event_add(s->ev, NULL) < 0)
		goto fail;
	if (loader_push_port(&p->d->bpf, family, s->port) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "UDP pool socket on %s: %s (%zu of %zu open; "
		 "lower --udp-flows or raise the fd limit)",
		 family == AF_INET ? "127.0.0.1" : "[::1]", strerror(errno),
		 (size_t)(s - p->slots), p->n_slots);
	return -1;
}

struct udp_pool *udp_pool_new(struct daemon *d, uint32_t per_family,
			      char *err, size_t errlen)
{
	struct udp_pool *p = calloc(1, sizeof(*p));
	struct timeval sec = { 1, 0 };
	size_t i;

	if (!p)
		goto oom;
	p->d = d;
	p->n_slots = 2 * (size_t)per_family;
	p->slots = calloc(p->n_slots, sizeof(*p->slots));
	if (!p->slots)
		goto oom;
	for (i = 0; i < p->n_slots; i++)
		p->slots[i].fd = -1;
	for (i = 0; i < p->n_slots; i++) {
		if (slot_open(p, &p->slots[i], i < per_family ? AF_INET : AF_INET6,
			      err, errlen) == 0)
			continue;
		/* No IPv6 loopback here (disable_ipv6): an IPv4-only pool. */
		if (i == per_family && (errno == EADDRNOTAVAIL || errno == EAFNOSUPPORT)) {
			log_warn("%s; IPv6 UDP will not be captured", err);
			if (p->slots[i].fd >= 0)
				close(p->slots[i].fd);
			p->slots[i].fd = -1;
			p->n_slots = per_family;
			break;
		}
		goto fail;
	}
	p->last_orphan_scan = time(NULL);
	p->sweep = event_new(d->base, -1, EV_PERSIST, on_sweep, p);
	if (!p->sweep || event_add(p->sweep, &sec) < 0)
		goto oom;
	return p;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	udp_pool_free(p);
	return NULL;
}

void udp_pool_free(struct udp_pool *p)
{
	size_t i;

	if (!p)
		return;
	while (p->active)
		flow_end(p->active, p->active->refused ? "refused" : "ok",
			 p->active->refused);
	for (i = 0; p->slots && i < p->n_slots; i++) {
		if (p->slots[i].ev)
			event_free(p->slots[i].ev);
		if (p->slots[i].fd >= 0)
			close(p->slots[i].fd);
	}
	if (p->sweep)
		event_free(p->sweep);
	free(p->slots);
	free(p);
}
