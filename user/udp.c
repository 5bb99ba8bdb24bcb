/* The UDP pool: its sockets on loopback, whose ports the BPF side hands
 * out, and the life of the flows on them (idle expiry, closed sockets,
 * ports never used). */
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
#include "daemon.h"
#include "log.h"
#include "sockdiag.h"
#include "sproxy.h"
#include "sproxy.skel.h"
#include "udp.h"
#include "udp_failopen.h"
#include "udp_int.h"
#include "udp_owner.h"
#include "udp_ports.h"

static uint8_t dgram[MAX_DGRAM];

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
		if (slot->flow) {
			f = slot->flow;
		} else {
			/* The owner check asks sock_diag of the pool's namespace. */
			sockdiag_netns(slot->pool->netns_fd);
			f = udp_flow_new(slot, &from, dgram, (size_t)n);
			sockdiag_netns(-1);
		}
		if (!f) {
			log_debug("UDP datagram on pool port %u without a flow: dropped",
				  slot->port);
			continue;
		}
		/* A flow is one application socket: anything else writing to
		 * its port is not let in. */
		if (!addr_equal((struct sockaddr *)&from, (struct sockaddr *)&f->r.client)) {
			log_debug("UDP datagram on pool port %u from a stranger: dropped",
				  slot->port);
			continue;
		}
		udp_flow_in(f, dgram, (size_t)n);
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
			const struct udp_sock_info *s;
			struct sproxy_flow rec;
			struct udp_slot *slot;
			int dead;

			key = next;
			prev = &key;
			if (bpf_map_lookup_elem(fd, &key, &rec) < 0 ||
			    !(slot = slot_of(p, family, key)))
				continue;
			/* Handed out after the dump began: not in it yet.  A
			 * connected socket that connected elsewhere since (or
			 * disconnected) is done with this port; a second of
			 * grace covers a connect() whose hook ran but that has
			 * not set the peer yet. */
			s = known && rec.generation < now ?
			    sockdiag_find(alive, n_alive, rec.cookie) : NULL;
			dead = known && rec.generation < now &&
			       (!s || ((rec.flags & SPROXY_FLOW_CONNECTED) &&
				       s->peer_port != key &&
				       now - rec.generation > 1000000000ull));
			if (slot->flow && dead)
				gone[n_gone++] = slot;
			else if (!slot->flow && (dead || (!(rec.flags & SPROXY_FLOW_CONNECTED) &&
							  now - rec.generation >= limit)))
				stale[n++] = key;
		}
		for (i = 0; i < n_gone; i++)
			if (gone[i]->flow)
				udprelay_end(&gone[i]->flow->r);
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
	time_t now = udprelay_now();
	struct udprelay *r, *next;

	(void)fd;
	(void)what;
	for (r = p->flows.all; r; r = next) {
		struct udp_flow *f = (struct udp_flow *)r;

		next = r->next;
		/* Sends on a connected socket pass no hook: its port cannot
		 * be handed out again later, so it stays until close. */
		if (now - f->r.last >= (time_t)p->d->opt->udp_timeout && !flow_connected(f))
			udprelay_end(r);
	}
	if (now - p->last_orphan_scan >= (time_t)(p->d->opt->udp_timeout / 2 + 1)) {
		p->last_orphan_scan = now;
		sockdiag_netns(p->netns_fd);
		scan_orphans(p);
		sockdiag_netns(-1);
	}
}

void udp_pool_release(struct udp_pool *p, uint64_t cookie)
{
	struct udprelay *r, *next;

	for (r = p->flows.all; r; r = next) {
		struct udp_flow *f = (struct udp_flow *)r;

		next = r->next;
		/* Answers still in flight go nowhere now; datagrams that
		 * wait for the outbound socket (a sender that exits right
		 * after sending) still go out first. */
		if (f->rec.cookie != cookie)
			continue;
		if ((f->r.creq || f->r.preq) && f->r.q)
			f->r.closing = 1;
		else
			udprelay_end(r);
	}
}

/* The BPF side sends at most one such event a second; the counts of the
 * rest are in its statistics. */
void udp_pool_dry(struct udp_pool *p, int family, const char *comm, uint32_t pid)
{
	time_t now = udprelay_now();

	p->dry++;
	if (now == p->last_dry_log)
		return;
	p->last_dry_log = now;
	log_warn("UDP pool for %s is dry: %zu flows open; a datagram of %s "
		 "(pid %u) was refused (the DNS reserve is kept for port 53); raise "
		 "--udp-flows or lower --udp-timeout", family == AF_INET ? "IPv4" : "IPv6",
		 p->flows.n, comm, pid);
}

void udp_pool_limited(struct udp_pool *p, const char *comm, uint32_t pid)
{
	time_t now = udprelay_now();

	p->limited++;
	if (now == p->last_limit_log)
		return;
	p->last_limit_log = now;
	log_warn("UDP flow of %s (pid %u) refused: the process holds its share "
		 "of the pool (--udp-flows-per-process %u)", comm, pid, p->per_proc);
}

static int slot_open(struct udp_pool *p, struct udp_slot *s, int family,
		     int reserve, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	uint32_t want;
	int one = 1, tries = 0;

again:
	s->pool = p;
	s->family = family;
	s->port = 0;
	udp_slot_addr(s, &ss);
	len = addr_len((struct sockaddr *)&ss);
	s->fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		goto fail;
	if (family == AF_INET6)
		setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	daemon_mark(p->d, s->fd);
	/* Taking pins over: the earlier daemon's ports, so that its flows
	 * go on. */
	want = p->owner == UDP_OWNER_SELF ? loader_pool_reclaim(&p->d->bpf, family, reserve) : 0;
	/* sin6_port lies where sin_port does */
	((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)want);
	if (want && bind(s->fd, (struct sockaddr *)&ss, len) < 0) {
		loader_port_lost(&p->d->bpf, family, want);
		((struct sockaddr_in *)&ss)->sin_port = 0;
		want = 0;
	}
	if ((!want && bind(s->fd, (struct sockaddr *)&ss, len) < 0) ||
	    getsockname(s->fd, (struct sockaddr *)&ss, &len) < 0)
		goto fail;
	s->port = addr_port((struct sockaddr *)&ss);
	/* Another namespace's pool may hold this port number: the BPF side
	 * knows a port by its number alone, so take another. */
	if (udp_ports_claim(family, s->port, p->owner) < 0) {
		close(s->fd);
		s->fd = -1;
		if (++tries < 64)
			goto again;
		errno = EADDRINUSE;
		s->port = 0;
		goto fail;
	}
	s->ev = event_new(p->d->base, s->fd, EV_READ | EV_PERSIST, on_slot_read, s);
	if (!s->ev || event_add(s->ev, NULL) < 0)
		goto fail;
	if ((p->owner != UDP_OWNER_SELF || !loader_port_busy(&p->d->bpf, family, s->port)) &&
	    udp_port_push(p->d, family, s->port, reserve) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "UDP pool socket on %s: %s (%zu of %zu open; "
		 "lower --udp-flows or raise the fd limit)",
		 family == AF_INET ? "127.0.0.1" : "[::1]", strerror(errno),
		 (size_t)(s - p->slots), p->n_slots);
	return -1;
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
	return udp_pool_new_ns(d, per_family, UDP_OWNER_SELF, -1, 0, err, errlen);
}

struct udp_pool *udp_pool_new_ns(struct daemon *d, uint32_t per_family, int owner,
				 int netns_fd, uint64_t netns_ino, char *err, size_t errlen)
{
	struct udp_pool *p = calloc(1, sizeof(*p));
	struct timeval sec = { 1, 0 };
	uint32_t reserve = dns_reserve(per_family);
	struct sockaddr_storage ss;
	size_t i;
	int rc;

	if (!p)
		goto oom;
	p->d = d;
	p->owner = owner;
	p->netns_fd = netns_fd;
	p->netns_ino = netns_ino;
	p->n_slots = 2 * (size_t)per_family;
	p->slots = calloc(p->n_slots, sizeof(*p->slots));
	if (!p->slots)
		goto oom;
	for (i = 0; i < p->n_slots; i++)
		p->slots[i].fd = -1;
	for (i = 0; i < p->n_slots; i++) {
		if (slot_open(p, &p->slots[i], i < per_family ? AF_INET : AF_INET6,
			      i % per_family >= per_family - reserve, err, errlen) == 0)
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
	p->per_proc = d->opt->udp_per_proc;
	d->bpf.skel->bss->udp_per_proc = p->per_proc;
	udp_slot_addr(&p->slots[0], &ss);
	rc = udp_owner_probe(p->slots[0].fd, (struct sockaddr *)&ss);
	if (rc < 0) {
		p->no_diag = 1;
		log_warn("sock_diag cannot name the owner of a UDP socket (%s; is the "
			 "udp_diag module available?): any local process that writes to a "
			 "pool port first can take that flow", strerror(-rc));
	}
	p->last_orphan_scan = udprelay_now();
	if (owner == UDP_OWNER_SELF)
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
	/* Every namespace's flows at once (the daemon's pool goes last);
	 * pinned: the cgroup stays captured. */
	if (p->owner == UDP_OWNER_SELF && !p->d->bpf.pin)
		udp_failopen(p->d);
	while (p->flows.all)
		udprelay_end(p->flows.all);
	/* A namespace's pool goes while the daemon lives on: ports handed out
	 * but never used leave no record behind. */
	for (i = 0; p->owner != UDP_OWNER_SELF && p->slots && i < p->n_slots; i++) {
		struct sproxy_flow rec;
		struct udp_slot *s = &p->slots[i];

		if (s->port && udp_port_record(p->d, s->family, s->port, &rec) == 0)
			udp_port_free(p->d, s->family, s->port, &rec);
	}
	for (i = 0; p->slots && i < p->n_slots; i++) {
		if (p->slots[i].ev)
			event_free(p->slots[i].ev);
		if (p->slots[i].fd >= 0)
			close(p->slots[i].fd);
		if (p->slots[i].port)
			udp_ports_unclaim(p->slots[i].family, p->slots[i].port);
	}
	if (p->sweep)
		event_free(p->sweep);
	bcast_free(p->bcast);
	free(p->slots);
	free(p);
}
