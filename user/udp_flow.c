/* The flows of the UDP pool: who makes one, relaying it (connector,
 * queue while it connects, DNS answered here), its end. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <event2/event.h>

#include "addr.h"
#include "connector.h"
#include "daemon.h"
#include "dnsserver.h"
#include "live.h"
#include "log.h"
#include "policy.h"
#include "policyset.h"
#include "rules.h"
#include "sniff.h"
#include "sproxy.h"
#include "udp_int.h"
#include "udp_owner.h"
#include "udp_ports.h"
#include "upstream.h"

static uint8_t dgram[MAX_DGRAM];

/* A process's name, made safe for the log (it chose the bytes). */
#define COMM(proc) log_escape(comm, sizeof(comm), (proc).comm, SPROXY_COMM_LEN)

time_t udp_mono_sec(void)
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

void udp_flow_end(struct udp_flow *f, const char *result, const char *err)
{
	if (!err && f->dns_err[0]) {
		result = "error";
		err = f->dns_err;
	}
	if (f->rejected) {
		result = "rejected";
		err = NULL;
	}
	struct udp_pool *p = f->slot->pool;
	struct timespec now;
	struct conn_log c = {
		.proto = f->is_dns ? "dns" : "udp",
		.proc = &f->rec.proc,
		.cgroup = daemon_cgroup_name(p->d, f->rec.proc.cgroup_id),
		.src = (struct sockaddr *)&f->app,
		.dst = (struct sockaddr *)&f->t.addr,
		.host = f->t.host[0] ? f->t.host : f->sniffed ? f->sniffed_host : NULL,
		.sniffed = sniff_kind_name(f->sniffed),
		.rule = f->rule,
		.route = f->decided ? f->route : NULL,
		.via = f->via,
		.up = f->up,
		.down = f->down,
		.result = result,
		.error = err,
		.netns = p->netns_ino,
	};
	int i;

	clock_gettime(CLOCK_MONOTONIC, &now);
	c.duration = (double)(now.tv_sec - f->start.tv_sec) +
		     (double)(now.tv_nsec - f->start.tv_nsec) / 1e9;
	if (f->app.ss_family == 0)
		c.src = NULL;
	connlog_write(&c);
	live_del(&f->live);
	for (i = 0; i < MAX_DNS; i++) {
		if (f->dns[i]) {
			dns_pending_cancel(f->dns[i]->p);
			free(f->dns[i]);
		}
	}
	queue_drop(f);
	policy_cancel(f->preq);
	if (f->creq)
		connector_cancel(f->creq);
	if (f->out_ev)
		event_free(f->out_ev);
	if (f->out_fd >= 0)
		close(f->out_fd);
	policyset_unref(f->ps);
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
	f->last = udp_mono_sec();
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
	struct udp_pool *p = f->slot->pool;
	char a[ADDR_STRLEN], comm[SPROXY_COMM_LEN + 1];

	snprintf(f->why, sizeof(f->why), "%s", why);
	f->refused = f->why;
	f->retry_at = udp_mono_sec() + 1;
	queue_drop(f);
	if (p->last_connect_log != f->retry_at) {
		p->last_connect_log = f->retry_at;
		log_warn("UDP flow of %s (pid %u) to %s: %s; its datagrams are dropped, "
			 "tried again on one a second later or more%s", COMM(f->rec.proc),
			 f->rec.proc.tgid, addr_str((struct sockaddr *)&f->t.addr, a, sizeof(a)),
			 why, strstr(why, "Too many open files") ? " (raise the fd limit)" : "");
	}
}

static void on_connected(int fd, const char *errmsg, void *arg)
{
	struct udp_flow *f = arg;
	struct queued *q;

	f->creq = NULL;
	if (fd < 0) {
		connect_failed(f, errmsg);
		if (f->closing)
			udp_flow_end(f, "refused", f->refused);
		return;
	}
	f->out_fd = fd;
	f->out_ev = event_new(f->slot->pool->d->base, fd, EV_READ | EV_PERSIST,
			      on_out_read, f);
	if (!f->out_ev || event_add(f->out_ev, NULL) < 0) {
		f->refused = "out of memory";
		queue_drop(f);
		if (f->closing)
			udp_flow_end(f, "refused", f->refused);
		return;
	}
	for (q = f->q; q; q = q->next)
		out_send(f, q->data, q->len);
	queue_drop(f);
	if (f->closing)
		udp_flow_end(f, "ok", NULL);
}

static void connect_start(struct udp_flow *f)
{
	const struct options *o = f->slot->pool->d->opt;
	struct target t = f->t;

	f->refused = NULL;
	f->retry_at = 0;
	/* An upstream that takes names gets the sniffed one (--sniff-override). */
	if (f->upstream && o->sniff_override && f->sniffed && !t.host[0] &&
	    upstream_carries(o, f->upstream, SOCK_DGRAM))
		snprintf(t.host, sizeof(t.host), "%s", f->sniffed_host);
	f->via = upstream_via(o, f->upstream, SOCK_DGRAM);
	f->creq = connector_start_via(f->slot->pool->d, f->upstream, &t, SOCK_DGRAM,
				      on_connected, f);
	if (!f->creq)
		connect_failed(f, errno ? strerror(errno) : "out of memory");
}

/* The policy's answer.  A rejected flow's datagrams are dropped, as if
 * sent into the void: UDP has nothing like a reset to say so. */
static void on_decided(const struct rule_result *out, struct policyset *ps, void *arg)
{
	struct udp_flow *f = arg;

	f->preq = NULL;
	f->decided = 1;
	f->rule = out->rule;
	snprintf(f->route, sizeof(f->route), "%s", out->target);
	if (out->action == RULE_REJECT ||
	    policy_upstream(ps, out, &f->upstream, &f->ps, f->why, sizeof(f->why)) < 0) {
		f->rejected = out->action == RULE_REJECT;
		f->refused = f->rejected ? "rejected" : f->why;
		queue_drop(f);
		if (f->closing)
			udp_flow_end(f, "refused", f->refused);
		return;
	}
	if (f->upstream)
		snprintf(f->route, sizeof(f->route), "%s", f->upstream->name);
	connect_start(f);
}

/* The flow's route, decided once when it begins (its datagrams wait in
 * the queue meanwhile). */
static void decide(struct udp_flow *f)
{
	struct policy_conn c = {
		.dst = (struct sockaddr *)&f->t.addr,
		.network = RULE_NET_UDP,
		.host = f->t.host[0] ? f->t.host : f->sniffed ? f->sniffed_host : NULL,
		.fakeip = f->t.host[0] != 0,
		.proc = &f->rec.proc,
	};
	struct rule_result out;

	switch (policy_route(f->slot->pool->d, &c, &out, on_decided, f, &f->preq)) {
	case RULES_DECIDED:
		on_decided(&out, f->slot->pool->d->policy, f);
		break;
	case RULES_RESOLVE:
		break;
	default:
		connect_failed(f, "out of memory");
	}
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
	now = udp_mono_sec();
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
	f->last = udp_mono_sec();
	addr_from_sproxy(&f->rec.dst, &f->t.addr);
	f->is_dns = addr_port((struct sockaddr *)&f->t.addr) == 53;
	slot->flow = f;
	f->next = p->active;
	if (p->active)
		p->active->prev = f;
	p->active = f;
	p->n_active++;
	f->live = (struct live){ .proto = f->is_dns ? "dns" : "udp", .proc = &f->rec.proc,
		.src = (const struct sockaddr *)&f->app,
		.dst = (const struct sockaddr *)&f->t.addr, .host = f->t.host, .up = &f->up,
		.down = &f->down, .start = &f->start, .via = &f->via };
	live_add(&p->d->live, &f->live);
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
	else if (p->d->opt->sniff) {
		/* The datagram is in hand: reading its name costs no wait. */
		enum sniff_kind k;

		if (sniff_quic(data, n, f->sniffed_host, sizeof(f->sniffed_host), &k) == SNIFF_FOUND) {
			f->sniffed = k;
			f->live.host = f->sniffed_host;
		}
	}
	decide(f);
	return f;
}

/* Holds a datagram until the flow's connector is done: at most MAX_QUEUED
 * per flow and MAX_QUEUED_BYTES for all (flows resolving a name can be
 * many, each with 64 KiB datagrams). */
static void enqueue(struct udp_flow *f, const uint8_t *data, size_t n)
{
	struct udp_pool *p = f->slot->pool;
	struct queued *q;
	char a[ADDR_STRLEN], comm[SPROXY_COMM_LEN + 1];
	time_t now;

	if (f->nq >= MAX_QUEUED)
		return;
	if (p->queued + n > MAX_QUEUED_BYTES) {
		p->queue_drops++;
		now = udp_mono_sec();
		if (now != p->last_queue_log) {
			p->last_queue_log = now;
			log_warn("UDP datagram of %s (pid %u) to %s dropped: %zu bytes "
				 "already queued for flows still connecting or resolving "
				 "(at most %u; %llu dropped so far)", COMM(f->rec.proc),
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

void udp_flow_in(struct udp_flow *f, const uint8_t *data, size_t n)
{
	f->up += (uint64_t)n;
	f->last = udp_mono_sec();
	if (f->refused && f->retry_at && f->last >= f->retry_at) {
		if (f->decided)
			connect_start(f);
		else
			decide(f);
	}
	if (f->refused)
		return;
	if (f->is_dns)
		dns_in(f, data, n);
	else if (f->out_fd >= 0)
		out_send(f, data, n);
	else
		enqueue(f, data, n);
}
