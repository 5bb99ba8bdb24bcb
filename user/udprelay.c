/* A UDP flow's route, relay and log line (see udprelay.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>

#include "addr.h"
#include "connector.h"
#include "daemon.h"
#include "dnsserver.h"
#include "log.h"
#include "policy.h"
#include "policyset.h"
#include "rules.h"
#include "sniff.h"
#include "sproxy.h"
#include "udprelay.h"

time_t udprelay_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}
#include "upstream.h"

/* One datagram's room for every flow's replies: the daemon is one thread
 * and each reader is done with it before it returns. */
static uint8_t dgram[MAX_DGRAM];

void udprelay_init(struct udprelay *r, const struct udprelay_ops *ops,
		   struct udprelay_table *tab, struct daemon *d,
		   const struct sockaddr_storage *client, const struct sockaddr_storage *dst)
{
	r->ops = ops;
	r->tab = tab;
	r->d = d;
	r->client = *client;
	r->t.addr = *dst;
	r->out_fd = -1;
	r->qtail = &r->q;
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	r->last = udprelay_now();
	r->is_dns = addr_port((const struct sockaddr *)dst) == 53;
	r->next = tab->all;
	if (tab->all)
		tab->all->prev = r;
	tab->all = r;
	tab->n++;
}

static const char *host_of(const struct udprelay *r)
{
	return r->t.host[0] ? r->t.host : r->sniffed ? r->sniffed_host : NULL;
}

static void queue_drop(struct udprelay *r)
{
	struct udprelay_queued *q;

	while ((q = r->q)) {
		r->q = q->next;
		free(q);
	}
	r->qtail = &r->q;
	r->tab->queued -= r->qbytes;
	r->qbytes = 0;
	r->nq = 0;
}

static void log_line(struct udprelay *r)
{
	const char *result = "ok", *err = NULL;
	struct timespec now;
	struct conn_log c;

	if (r->rejected) {
		result = "rejected";
	} else if (r->refused) {
		result = "refused";
		err = r->refused;
	} else if (r->dns_err[0]) {
		result = "error";
		err = r->dns_err;
	}
	c = (struct conn_log){
		.proto = r->is_dns ? "dns" : "udp",
		.proc = r->proc,
		.src = r->client.ss_family ? (struct sockaddr *)&r->client : NULL,
		.dst = (struct sockaddr *)&r->t.addr,
		.host = host_of(r),
		.sniffed = sniff_kind_name(r->sniffed),
		.rule = r->rule,
		.route = r->decided ? r->route : NULL,
		.via = r->via,
		.up = r->up,
		.down = r->down,
		.result = result,
		.error = err,
	};
	if (r->ops->log(r, &c) < 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	c.duration = (double)(now.tv_sec - r->start.tv_sec) +
		     (double)(now.tv_nsec - r->start.tv_nsec) / 1e9;
	connlog_write(&c);
}

void udprelay_end(struct udprelay *r)
{
	int i;

	log_line(r);
	for (i = 0; i < MAX_DNS; i++) {
		if (r->dns[i]) {
			dns_pending_cancel(r->dns[i]->p);
			free(r->dns[i]);
		}
	}
	queue_drop(r);
	policy_cancel(r->preq);
	if (r->creq)
		connector_cancel(r->creq);
	if (r->out_ev)
		event_free(r->out_ev);
	if (r->out_fd >= 0)
		close(r->out_fd);
	policyset_unref(r->ps);
	if (r->prev)
		r->prev->next = r->next;
	else
		r->tab->all = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->tab->n--;
	r->ops->free(r);
}

static void to_client(struct udprelay *r, const void *data, size_t len)
{
	if (r->ops->reply(r, data, len) < 0)
		return;
	r->down += len;
	r->last = udprelay_now();
}

static void on_out_read(evutil_socket_t fd, short what, void *arg)
{
	struct udprelay *r = arg;
	int i;

	(void)what;
	for (i = 0; i < 64; i++) {
		ssize_t n = recv(fd, dgram, sizeof(dgram), MSG_DONTWAIT);

		if (n < 0) {
			/* ECONNREFUSED and the like come from ICMP.  A connected
			 * application socket would have seen them, an
			 * unconnected one not; neither a pool port nor a TPROXY
			 * reply socket can pass them on, so they are only
			 * logged. */
			if (errno != EAGAIN)
				log_debug("UDP flow: recv: %s", strerror(errno));
			return;
		}
		to_client(r, dgram, (size_t)n);
	}
}

static void out_send(struct udprelay *r, const void *data, size_t len)
{
	if (send(r->out_fd, data, len, MSG_DONTWAIT) < 0)
		log_debug("UDP datagram dropped: %s", strerror(errno));
}

/* A connector that failed (out of fds, no route, a name that did not
 * resolve, an upstream down) is tried again on a datagram a second later
 * or more: EMFILE passes once fds free up, and the flow need not stay
 * refused for life. */
static void connect_failed(struct udprelay *r, const char *why)
{
	struct udprelay_table *tab = r->tab;
	char a[ADDR_STRLEN], who[ADDR_STRLEN + 48];

	snprintf(r->why, sizeof(r->why), "%s", why);
	r->refused = r->why;
	queue_drop(r);
	r->retry_at = udprelay_now() + 1;
	if (tab->last_connect_log != r->retry_at) {
		tab->last_connect_log = r->retry_at;
		r->ops->who(r, who, sizeof(who));
		log_warn("UDP flow %s to %s: %s; its datagrams are dropped, "
			 "tried again on one a second later or more%s", who,
			 addr_str((struct sockaddr *)&r->t.addr, a, sizeof(a)),
			 why, strstr(why, "Too many open files") ? " (raise the fd limit)" : "");
	}
}

static void on_connected(int fd, const char *errmsg, void *arg)
{
	struct udprelay *r = arg;
	struct udprelay_queued *q;

	r->creq = NULL;
	if (fd < 0) {
		connect_failed(r, errmsg);
		if (r->closing)
			udprelay_end(r);
		return;
	}
	r->out_fd = fd;
	r->out_ev = event_new(r->d->base, fd, EV_READ | EV_PERSIST, on_out_read, r);
	if (!r->out_ev || event_add(r->out_ev, NULL) < 0) {
		r->refused = "out of memory";
		queue_drop(r);
		if (r->closing)
			udprelay_end(r);
		return;
	}
	for (q = r->q; q; q = q->next)
		out_send(r, q->data, q->len);
	queue_drop(r);
	if (r->closing)
		udprelay_end(r);
}

static void connect_start(struct udprelay *r)
{
	const struct options *o = r->d->opt;
	struct target t = r->t;

	r->refused = NULL;
	r->retry_at = 0;
	/* An upstream that takes names gets the sniffed one (--sniff-override). */
	if (r->upstream && o->sniff_override && r->sniffed && !t.host[0] &&
	    upstream_carries(o, r->upstream, SOCK_DGRAM))
		snprintf(t.host, sizeof(t.host), "%s", r->sniffed_host);
	r->via = upstream_via(o, r->upstream, SOCK_DGRAM);
	r->creq = connector_start_via(r->d, r->upstream, &t, SOCK_DGRAM, on_connected, r);
	if (!r->creq)
		connect_failed(r, "out of memory");
}

void udprelay_default_route(struct udprelay *r)
{
	if ((r->upstream = policyset_default(r->d->policy)))
		r->ps = policyset_ref(r->d->policy);
	connect_start(r);
}

/* The policy's answer.  A rejected flow's datagrams are dropped, as if
 * sent into the void: UDP has nothing like a reset to say so. */
static void on_decided(const struct rule_result *out, struct policyset *ps, void *arg)
{
	struct udprelay *r = arg;

	r->preq = NULL;
	r->decided = 1;
	r->rule = out->rule;
	snprintf(r->route, sizeof(r->route), "%s", out->target);
	if (out->action == RULE_REJECT ||
	    policy_upstream(ps, out, &r->upstream, &r->ps, r->why, sizeof(r->why)) < 0) {
		r->rejected = out->action == RULE_REJECT;
		r->refused = r->rejected ? "rejected" : r->why;
		queue_drop(r);
		if (r->closing)
			udprelay_end(r);
		return;
	}
	if (r->upstream)
		snprintf(r->route, sizeof(r->route), "%s", r->upstream->name);
	connect_start(r);
}

/* The flow's route, decided once when it begins (its datagrams wait in
 * the queue meanwhile). */
void udprelay_decide(struct udprelay *r)
{
	struct policy_conn c = {
		.dst = (struct sockaddr *)&r->t.addr,
		.network = RULE_NET_UDP,
		.host = host_of(r),
		.fakeip = r->t.host[0] != 0,
		.proc = r->proc,
	};

	if (policy_route(r->d, &c, on_decided, r, &r->preq) < 0)
		connect_failed(r, "out of memory");
}

int udprelay_name(struct udprelay *r, const uint8_t *first, size_t n, int sniff)
{
	const char *name;
	int in_range = 0;
	char a[ADDR_STRLEN];

	name = dns_server_fake_name(r->d->dns, (struct sockaddr *)&r->t.addr, &in_range);
	if (in_range && !name) {
		snprintf(r->why, sizeof(r->why), "%s is a FakeIP address that is not "
			 "mapped to any name (handed out before a restart without "
			 "--fakeip-store?)", addr_str((struct sockaddr *)&r->t.addr, a, sizeof(a)));
		r->refused = r->why;
		return -1;
	}
	if (name) {
		snprintf(r->t.host, sizeof(r->t.host), "%s", name);
	} else if (sniff && r->d->opt->sniff) {
		/* The datagram is in hand: reading its name costs no wait. */
		enum sniff_kind k;

		if (sniff_quic(first, n, r->sniffed_host, sizeof(r->sniffed_host), &k) == SNIFF_FOUND)
			r->sniffed = k;
	}
	return 0;
}

static void on_dns_reply(const uint8_t *reply, size_t len, void *arg)
{
	struct udprelay_dns *dq = arg;
	struct udprelay *r = dq->r;
	const char *why = dns_server_reply_error(r->d->dns);
	int i;

	if (why)
		snprintf(r->dns_err, sizeof(r->dns_err), "%s", why);
	if (reply && len)
		to_client(r, reply, len);
	if (dq->starting) {      /* answered inside dns_server_query */
		dq->starting = 0;
		dq->p = NULL;
		return;
	}
	for (i = 0; i < MAX_DNS; i++)
		if (r->dns[i] == dq)
			r->dns[i] = NULL;
	free(dq);
}

static void dns_in(struct udprelay *r, const uint8_t *data, size_t len)
{
	struct udprelay_dns *dq;
	int i;

	for (i = 0; i < MAX_DNS && r->dns[i]; i++)
		;
	if (i == MAX_DNS) {
		log_debug("DNS query dropped: %d already in flight on one socket", MAX_DNS);
		return;
	}
	dq = calloc(1, sizeof(*dq));
	if (!dq)
		return;
	dq->r = r;
	dq->starting = 1;
	/* A process's queries count against its max_names_per_process. */
	dq->p = dns_server_query_from(r->d->dns, r->proc ? r->proc->tgid : 0, data, len, 0,
				      on_dns_reply, dq);
	if (!dq->starting || !dq->p) {   /* already answered, or failed */
		free(dq);
		return;
	}
	dq->starting = 0;
	r->dns[i] = dq;
}

/* Holds a datagram until the flow's connector is done: at most MAX_QUEUED
 * per flow and MAX_QUEUED_BYTES for all the table's (flows resolving a
 * name can be many, each with 64 KiB datagrams). */
static void enqueue(struct udprelay *r, const uint8_t *data, size_t n)
{
	struct udprelay_table *tab = r->tab;
	struct udprelay_queued *q;
	char a[ADDR_STRLEN], who[ADDR_STRLEN + 48];
	time_t now;

	if (r->nq >= MAX_QUEUED)
		return;
	if (tab->queued + n > MAX_QUEUED_BYTES) {
		tab->queue_drops++;
		now = udprelay_now();
		if (now != tab->last_queue_log) {
			tab->last_queue_log = now;
			r->ops->who(r, who, sizeof(who));
			log_warn("UDP datagram %s to %s dropped: %zu bytes "
				 "already queued for flows still connecting or resolving "
				 "(at most %u; %llu dropped so far)", who,
				 addr_str((struct sockaddr *)&r->t.addr, a, sizeof(a)),
				 tab->queued, MAX_QUEUED_BYTES, (unsigned long long)tab->queue_drops);
		}
		return;
	}
	q = malloc(sizeof(*q) + n);
	if (!q)
		return;
	q->next = NULL;
	q->len = n;
	memcpy(q->data, data, n);
	*r->qtail = q;
	r->qtail = &q->next;
	r->nq++;
	r->qbytes += n;
	tab->queued += n;
}

void udprelay_in(struct udprelay *r, const uint8_t *data, size_t n)
{
	r->up += (uint64_t)n;
	r->last = udprelay_now();
	if (r->refused && r->retry_at && r->last >= r->retry_at) {
		if (r->decided)
			connect_start(r);
		else
			udprelay_decide(r);
	}
	if (r->refused)
		return;
	if (r->is_dns)
		dns_in(r, data, n);
	else if (r->out_fd >= 0)
		out_send(r, data, n);
	else
		enqueue(r, data, n);
}
