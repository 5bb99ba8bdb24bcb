/* The flows of the UDP pool: who makes one (only the socket the port was
 * handed to), how a reply reaches it, what its log line adds, and how it
 * gives its port back.  Its route, relay and log line: udprelay.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include "addr.h"
#include "daemon.h"
#include "live.h"
#include "log.h"
#include "sproxy.h"
#include "udp_int.h"
#include "udp_owner.h"
#include "udp_ports.h"

/* A process's name, made safe for the log (it chose the bytes). */
#define COMM(proc) log_escape(comm, sizeof(comm), (proc).comm, SPROXY_COMM_LEN)

/* The application's process, for a warning. */
static void who(const struct udprelay *r, char *buf, size_t len)
{
	const struct udp_flow *f = (const struct udp_flow *)r;
	char comm[SPROXY_COMM_LEN + 1];

	snprintf(buf, len, "of %s (pid %u)", COMM(f->rec.proc), f->rec.proc.tgid);
}

static int log_adds(const struct udprelay *r, struct conn_log *c)
{
	const struct udp_flow *f = (const struct udp_flow *)r;

	c->cgroup = daemon_cgroup_name(r->d, f->rec.proc.cgroup_id);
	c->netns = f->slot->pool->netns_ino;
	return 0;
}

/* From the pool port the application sent to, as from the destination. */
static int send_to_app(struct udprelay *r, const void *data, size_t len)
{
	const struct udp_flow *f = (const struct udp_flow *)r;
	const struct sockaddr *app = (const struct sockaddr *)&r->client;

	if (sendto(f->slot->fd, data, len, MSG_DONTWAIT, app, addr_len(app)) < 0) {
		log_debug("UDP reply to %s dropped: %s", "application", strerror(errno));
		return -1;
	}
	return 0;
}

/* Out of status, and the port given back. */
static void flow_free(struct udprelay *r)
{
	struct udp_flow *f = (struct udp_flow *)r;
	struct udp_pool *p = f->slot->pool;

	live_del(&f->live);
	f->slot->flow = NULL;
	udp_port_free(p->d, f->slot->family, f->slot->port, &f->rec);
	free(f);
}

static const struct udprelay_ops pool_ops = {
	.reply = send_to_app,
	.who = who,
	.log = log_adds,
	.free = flow_free,
};

void udp_slot_addr(const struct udp_slot *s, struct sockaddr_storage *ss)
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

/* Only the application socket the port was handed to makes the flow:
 * anything else is dropped with a (rate-limited) line. */
static int from_owner(struct udp_slot *slot, const struct sockaddr_storage *from,
		      const struct sproxy_flow *rec)
{
	struct udp_pool *p = slot->pool;
	struct sockaddr_storage pool;
	char a[ADDR_STRLEN], comm[SPROXY_COMM_LEN + 1];
	time_t now;
	int err;

	if (p->no_diag && !rec->app.port)
		return 1;
	udp_slot_addr(slot, &pool);
	if (udp_owner_is((const struct sockaddr *)from, (struct sockaddr *)&pool, rec, &err))
		return 1;
	p->strangers++;
	now = udprelay_now();
	if (now != p->last_owner_log) {
		p->last_owner_log = now;
		log_warn("UDP datagram to pool port %u from %s dropped: not the socket of "
			 "%s (pid %u) the port was handed to%s%s (%llu so far)", slot->port,
			 addr_str((const struct sockaddr *)from, a, sizeof(a)), COMM(rec->proc),
			 rec->proc.tgid, err ? "; sock_diag: " : "", err ? strerror(-err) : "",
			 (unsigned long long)p->strangers);
	}
	return 0;
}

struct udp_flow *udp_flow_new(struct udp_slot *slot, const struct sockaddr_storage *from,
			      const uint8_t *data, size_t n)
{
	struct udp_pool *p = slot->pool;
	struct sockaddr_storage dst;
	struct udp_flow *f;

	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	if (udp_port_record(p->d, slot->family, slot->port, &f->rec) < 0 ||
	    !from_owner(slot, from, &f->rec)) {
		free(f);
		return NULL;      /* a late datagram, or a stranger's */
	}
	daemon_process_comm(&f->rec.proc);
	addr_from_sproxy(&f->rec.dst, &dst);
	udprelay_init(&f->r, &pool_ops, &p->flows, p->d, from, &dst);
	f->r.proc = &f->rec.proc;
	f->slot = slot;
	slot->flow = f;
	f->live = (struct live){ .proto = f->r.is_dns ? "dns" : "udp", .proc = &f->rec.proc,
		.src = (const struct sockaddr *)&f->r.client,
		.dst = (const struct sockaddr *)&f->r.t.addr, .host = f->r.t.host, .up = &f->r.up,
		.down = &f->r.down, .start = &f->r.start, .via = &f->r.via };
	live_add(&p->d->live, &f->live);
	if (f->r.is_dns || udprelay_name(&f->r, data, n, 1) < 0)
		return f;
	if (f->r.sniffed)
		f->live.host = f->r.sniffed_host;
	udprelay_decide(&f->r);
	return f;
}

void udp_flow_in(struct udp_flow *f, const uint8_t *data, size_t n)
{
	udprelay_in(&f->r, data, n);
}
