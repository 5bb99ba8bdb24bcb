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
#include "bcast.h"
#include "connector.h"
#include "daemon.h"
#include "dnsserver.h"
#include "log.h"
#include "sockdiag.h"
#include "sproxy.h"
#include "sproxy.skel.h"
#include "udp.h"
#include "udp_failopen.h"
#include "udp_ports.h"

#define MAX_QUEUED   16    /* datagrams held while a flow connects */
#define MAX_QUEUED_BYTES (4u << 20)  /* ... and by all flows together */
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
	time_t retry_at;             /* set: the connector failed; try again then */
	struct queued *q, **qtail;
	int nq;
	size_t qbytes;
	struct dns_query *dns[MAX_DNS];
	uint64_t up, down;
	struct timespec start;
	time_t last;                 /* CLOCK_MONOTONIC seconds */
};

struct udp_pool {
	struct daemon *d;
	struct udp_slot *slots;
	size_t n_slots;
	struct udp_flow *active;
	size_t n_active;
	struct event *sweep;
	time_t last_orphan_scan;
	time_t last_dry_log, last_limit_log, last_queue_log, last_owner_log;
	uint64_t dry, limited, queue_drops, strangers;
	size_t queued;               /* bytes held by all flows still connecting */
	uint32_t per_proc;
	struct bcast *bcast;         /* broadcast goes direct (UDP only) */
	int no_diag;                 /* sock_diag cannot tell a port's owner */
};

static uint8_t dgram[MAX_DGRAM];

/* Idle times and retries follow CLOCK_MONOTONIC: a wall clock set back
 * would keep flows forever, set forward would end them all. */
static time_t mono_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void queue_drop(struct udp_flow *f)
{
	struct queued *q;

	while ((q = f->q)) {
		f->q = q->next;
		free(q);
	}
	f->qtail = &f->q;
	f->slot->pool->queued -= f->qbytes;
	f->qbytes = 0;
	f->nq = 0;
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
	queue_drop(f);
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
	udp_port_free(p->d, f->slot->family, f->slot->port, &f->rec);
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
	f->last = mono_sec();
}

static void on_out_read(evutil_socket_t fd, short what, void *arg)
{
	struct udp_flow *f = arg;
	int i;

	(void)what;
	for (i = 0; i < 64; i++) {
		ssize_t n = recv(fd, dgram, sizeof(dgram), MSG_DONTWAIT);

		if (n < 0) {
			/* ECONNREFUSED and the like come from ICMP.  A connected
			 * application socket would have seen them, an
			 * unconnected one not; a pool port cannot pass them
			 * on, so they are only logged. */
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

/* A connector that failed (out of fds, no route, a name that did not
 * resolve) is tried again on a datagram a second later or more: EMFILE
 * passes once fds free up, and the flow need not stay refused for life. */
static void connect_failed(struct udp_flow *f, const char *why)
{
	snprintf(f->why, sizeof(f->why), "%s", why);
	f->refused = f->why;
	f->retry_at = mono_sec() + 1;
	queue_drop(f);
}

static void on_connected(int fd, const char *errmsg, void *arg)
{
	struct udp_flow *f = arg;
	struct queued *q;

	f->creq = NULL;
	if (fd < 0) {
		connect_failed(f, errmsg);
		return;
	}
	f->out_fd = fd;
	f->out_ev = event_new(f->slot->pool->d->base, fd, EV_READ | EV_PERSIST,
			      on_out_read, f);
	if (!f->out_ev || event_add(f->out_ev, NULL) < 0) {
		f->refused = "out of memory";
		return;
	}
	for (q = f->q; q; q = q->next)
		out_send(f, q->data, q->len);
	queue_drop(f);
}

static void connect_start(struct udp_flow *f)
{
	f->refused = NULL;
	f->retry_at = 0;
	f->creq = connector_start(f->slot->pool->d, &f->t, SOCK_DGRAM, on_connected, f);
	if (!f->creq)
		connect_failed(f, errno ? strerror(errno) : "out of memory");
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
	dq->p = dns_server_query(f->slot->pool->d->dns, data, len, 0, on_dns_reply, dq);
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

static void slot_addr(const struct udp_slot *s, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (s->family == AF_INET) {
		struct sockaddr_in *a = (void *)ss;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a->sin_port = htons((uint16_t)s->port);
	} else {
		struct sockaddr_in6 *a = (void *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		a->sin6_port = htons((uint16_t)s->port);
	}
}

/* Whether the datagram comes from the application socket the port was
 * handed to.  Any process of the namespace can write to 127.0.0.1:<port>,
 * and a datagram of a socket that just closed may still wait in the pool
 * socket when the port has gone to another flow: only the socket that
 * owns the sender's address, as the kernel's sock_diag finds it, with the
 * flow's cookie, makes the flow.  (The hooks cannot record the sender's
 * port themselves: connect() runs its hook before the socket is bound.) */
static int from_owner(struct udp_slot *slot, const struct sockaddr_storage *from,
		      const struct sproxy_flow *rec)
{
	struct udp_pool *p = slot->pool;
	struct sockaddr_storage pool;
	uint64_t cookie = 0;
	char a[ADDR_STRLEN];
	time_t now;
	int rc;

	if (p->no_diag)
		return 1;
	slot_addr(slot, &pool);
	rc = sockdiag_udp_cookie((const struct sockaddr *)from, (struct sockaddr *)&pool, &cookie);
	if (rc == 0 && cookie == rec->cookie)
		return 1;
	p->strangers++;
	now = mono_sec();
	if (now != p->last_owner_log) {
		p->last_owner_log = now;
		log_warn("UDP datagram to pool port %u from %s dropped: not the socket of "
			 "%.16s (pid %u) the port was handed to%s%s (%llu so far)", slot->port,
			 addr_str((const struct sockaddr *)from, a, sizeof(a)), rec->proc.comm,
			 rec->proc.tgid, rc < 0 && rc != -ENOENT ? "; sock_diag: " : "",
			 rc < 0 && rc != -ENOENT ? strerror(-rc) : "",
			 (unsigned long long)p->strangers);
	}
	return 0;
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
	if (udp_port_record(p->d, slot->family, slot->port, &f->rec) < 0 ||
	    !from_owner(slot, from, &f->rec)) {
		free(f);
		return NULL;      /* a late datagram, or a stranger's */
	}
	daemon_process_comm(&f->rec.proc);
	f->slot = slot;
	f->out_fd = -1;
	f->app = *from;
	f->qtail = &f->q;
	clock_gettime(CLOCK_MONOTONIC, &f->start);
	f->last = mono_sec();
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
	connect_start(f);
	return f;
}

/* Holds a datagram until the flow's connector is done: at most MAX_QUEUED
 * per flow and MAX_QUEUED_BYTES for all (flows resolving a name can be
 * many, each with 64 KiB datagrams). */
static void enqueue(struct udp_flow *f, const uint8_t *data, size_t n)
{
	struct udp_pool *p = f->slot->pool;
	struct queued *q;
	char a[ADDR_STRLEN];
	time_t now;

	if (f->nq >= MAX_QUEUED)
		return;
	if (p->queued + n > MAX_QUEUED_BYTES) {
		p->queue_drops++;
		now = mono_sec();
		if (now != p->last_queue_log) {
			p->last_queue_log = now;
			log_warn("UDP datagram of %.16s (pid %u) to %s dropped: %zu bytes "
				 "already queued for flows still connecting or resolving "
				 "(at most %u; %llu dropped so far)", f->rec.proc.comm,
				 f->rec.proc.tgid, addr_str((struct sockaddr *)&f->t.addr, a, sizeof(a)),
				 p->queued, MAX_QUEUED_BYTES, (unsigned long long)p->queue_drops);
		}
		return;
	}
	q = malloc(sizeof(*q) + n);
	if (!q)
		return;
	q->next = NULL;
	q->len = n;
	memcpy(q->data, data, n);
	*f->qtail = q;
	f->qtail = &q->next;
	f->nq++;
	f->qbytes += n;
	p->queued += n;
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
		f->last = mono_sec();
		if (f->refused && f->retry_at && f->last >= f->retry_at)
			connect_start(f);
		if (f->refused)
			continue;
		if (f->is_dns)
			dns_in(f, dgram, (size_t)n);
		else if (f->out_fd >= 0)
			out_send(f, dgram, (size_t)n);
		else
			enqueue(f, dgram, (size_t)n);
	}
}

static struct udp_slot *slot_of(struct udp_pool *p, int family, uint32_t port)
{
	size_t i;

	for (i = 0; i < p->n_slots; i++)
		if (p->slots[i].port == port && p->slots[i].family == family)
			return &p->slots[i];
	return NULL;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Ports handed out whose flow never reached us (the application connected
 * a UDP socket and never sent, or closed before we read), and flows whose
 * socket is gone (its release event lost to a full ring buffer): give them
 * back.  A connected socket's port stays as long as the socket lives,
 * whatever its age; another is freed once as old as an idle flow. */
static void scan_orphans(struct udp_pool *p)
{
	uint64_t limit = (uint64_t)p->d->opt->udp_timeout * 1000000000ull;
	uint64_t now = mono_ns();   /* bpf_ktime_get_ns() is CLOCK_MONOTONIC too */
	struct udp_sock_info *alive = NULL;
	size_t n_alive = 0;
	int known = sockdiag_udp_all(&alive, &n_alive) == 0;
	int fam;

	for (fam = 0; fam < 2; fam++) {
		int family = fam ? AF_INET6 : AF_INET;
		int fd = bpf_map__fd(fam ? p->d->bpf.skel->maps.ports6 : p->d->bpf.skel->maps.ports4);
		uint32_t key, next, stale[256];
		struct udp_slot *gone[256];
		size_t n = 0, n_gone = 0, i;
		void *prev = NULL;

		while (n < 256 && n_gone < 256 && bpf_map_get_next_key(fd, prev, &next) == 0) {
			struct sproxy_flow rec;
			struct udp_slot *slot;
			int dead;

			key = next;
			prev = &key;
			if (bpf_map_lookup_elem(fd, &key, &rec) < 0 ||
			    !(slot = slot_of(p, family, key)))
				continue;
			/* Handed out after the dump began: not in it yet. */
			dead = known && rec.generation < now &&
			       !sockdiag_find(alive, n_alive, rec.cookie);
			if (slot->flow && dead)
				gone[n_gone++] = slot;
			else if (!slot->flow && (dead || (!(rec.flags & SPROXY_FLOW_CONNECTED) &&
							  now - rec.generation >= limit)))
				stale[n++] = key;
		}
		for (i = 0; i < n_gone; i++)
			if (gone[i]->flow)
				flow_end(gone[i]->flow, gone[i]->flow->refused ? "refused" : "ok",
					 gone[i]->flow->refused);
		for (i = 0; i < n; i++) {
			struct sproxy_flow rec;

			if (udp_port_record(p->d, family, stale[i], &rec) == 0)
				udp_port_free(p->d, family, stale[i], &rec);
		}
	}
	free(alive);
	udp_procs_recount(p->d);
}

/* A flow is connected when its socket connect()ed to the destination,
 * maybe after the flow began: the BPF side marks the record then. */
static int flow_connected(struct udp_flow *f)
{
	struct sproxy_flow rec;

	if (!(f->rec.flags & SPROXY_FLOW_CONNECTED) &&
	    udp_port_record(f->slot->pool->d, f->slot->family, f->slot->port, &rec) == 0 &&
	    rec.cookie == f->rec.cookie)
		f->rec.flags = rec.flags;
	return !!(f->rec.flags & SPROXY_FLOW_CONNECTED);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct udp_pool *p = arg;
	time_t now = mono_sec();
	struct udp_flow *f, *next;

	(void)fd;
	(void)what;
	for (f = p->active; f; f = next) {
		next = f->next;
		/* Sends on a connected socket pass no hook: its port cannot
		 * be handed out again later, so it stays until close. */
		if (now - f->last >= (time_t)p->d->opt->udp_timeout && !flow_connected(f))
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

/* The BPF side sends at most one such event a second; the counts of the
 * rest are in its statistics. */
void udp_pool_dry(struct udp_pool *p, int family, const char *comm, uint32_t pid)
{
	time_t now = mono_sec();

	p->dry++;
	if (now == p->last_dry_log)
		return;
	p->last_dry_log = now;
	log_warn("UDP pool for %s is dry: %zu flows open; a datagram of %.16s "
		 "(pid %u) was refused (the DNS reserve is kept for port 53); raise "
		 "--udp-flows or lower --udp-timeout", family == AF_INET ? "IPv4" : "IPv6",
		 p->n_active, comm, pid);
}

void udp_pool_limited(struct udp_pool *p, const char *comm, uint32_t pid)
{
	time_t now = mono_sec();

	p->limited++;
	if (now == p->last_limit_log)
		return;
	p->last_limit_log = now;
	log_warn("UDP flow of %.16s (pid %u) refused: the process holds its share "
		 "of the pool (--udp-flows-per-process %u)", comm, pid, p->per_proc);
}

static int slot_open(struct udp_pool *p, struct udp_slot *s, int family,
		     int reserve, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;

	s->pool = p;
	s->family = family;
	s->port = 0;
	slot_addr(s, &ss);
	len = addr_len((struct sockaddr *)&ss);
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
	if (udp_port_push(p->d, family, s->port, reserve) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "UDP pool socket on %s: %s (%zu of %zu open; "
		 "lower --udp-flows or raise the fd limit)",
		 family == AF_INET ? "127.0.0.1" : "[::1]", strerror(errno),
		 (size_t)(s - p->slots), p->n_slots);
	return -1;
}

/* Whether sock_diag can name the owner of a sender: asked about one of
 * our own sockets, it must answer with that socket's cookie. */
static int diag_works(struct udp_slot *s)
{
	struct sockaddr_storage local, any;
	uint64_t want = 0, got = 0;
	socklen_t l = sizeof(want);
	int rc;

	slot_addr(s, &local);
	memset(&any, 0, sizeof(any));
	any.ss_family = (sa_family_t)s->family;
	if (getsockopt(s->fd, SOL_SOCKET, SO_COOKIE, &want, &l) < 0)
		return -errno;
	rc = sockdiag_udp_cookie((struct sockaddr *)&local, (struct sockaddr *)&any, &got);
	if (rc < 0)
		return rc;
	return got == want ? 0 : -ESRCH;
}

/* Ports of a family kept for DNS: a sixteenth of the pool, at least one
 * once the pool has four. */
static uint32_t dns_reserve(uint32_t per_family)
{
	if (per_family < 4)
		return 0;
	return per_family / 16 ? per_family / 16 : 1;
}

struct udp_pool *udp_pool_new(struct daemon *d, uint32_t per_family,
			      char *err, size_t errlen)
{
	struct udp_pool *p = calloc(1, sizeof(*p));
	struct timeval sec = { 1, 0 };
	uint32_t reserve = dns_reserve(per_family);
	size_t i;
	int rc;

	if (!p)
		goto oom;
	p->d = d;
	p->n_slots = 2 * (size_t)per_family;
	p->slots = calloc(p->n_slots, sizeof(*p->slots));
	if (!p->slots)
		goto oom;
	for (i = 0; i < p->n_slots; i++)
		p->slots[i].fd = -1;
	for (i = 0; i < p->n_slots; i++)
		if (slot_open(p, &p->slots[i], i < per_family ? AF_INET : AF_INET6,
			      i % per_family >= per_family - reserve, err, errlen) < 0)
			goto fail;
	p->per_proc = d->opt->udp_per_proc;
	d->bpf.skel->bss->udp_per_proc = p->per_proc;
	rc = diag_works(&p->slots[0]);
	if (rc < 0) {
		p->no_diag = 1;
		log_warn("sock_diag cannot name the owner of a UDP socket (%s; is the "
			 "udp_diag module available?): any local process that writes to a "
			 "pool port first can take that flow", strerror(-rc));
	}
	p->last_orphan_scan = mono_sec();
	p->bcast = bcast_new(d);
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
	udp_failopen(p->d);
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
	bcast_free(p->bcast);
	free(p->slots);
	free(p);
}
