/* One UDP flow behind TPROXY: its reply socket bound to the original
 * destination, its route by the rules, its relay through a connector or
 * the built-in DNS server, and its log line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <event2/event.h>

#include "addr.h"
#include "connector.h"
#include "daemon.h"
#include "dnsserver.h"
#include "log.h"
#include "ownsock.h"
#include "policy.h"
#include "policyset.h"
#include "rules.h"
#include "sniff.h"
#include "tproxyudp.h"
#include "tproxyudp_int.h"
#include "upstream.h"

static void log_flow(struct tflow *f, const char *result, const char *err)
{
	struct timespec now;
	struct conn_log c = {
		.proto = f->is_dns ? "dns" : "udp",
		.src = (struct sockaddr *)&f->client,
		.dst = (struct sockaddr *)&f->t.addr,
		.host = f->t.host[0] ? f->t.host : f->sniffed ? f->sniffed_host : NULL,
		.sniffed = sniff_kind_name(f->sniffed),
		.rule = f->rule,
		.route = f->decided ? f->route : NULL,
		.up = f->up,
		.down = f->down,
		.result = result,
		.error = err,
		.via = f->via,
		.capture = "tproxy",
	};

	clock_gettime(CLOCK_MONOTONIC, &now);
	c.duration = (double)(now.tv_sec - f->start.tv_sec) +
		     (double)(now.tv_nsec - f->start.tv_nsec) / 1e9;
	connlog_write(&c);
}

void tflow_end(struct tflow *f)
{
	struct tproxy_udp *u = f->u;
	struct tflow **pp;
	struct queued *q;

	if (f->own && f->refused)
		log_warn("the daemon's own lookup through %s: %s", "TPROXY", f->refused);
	else if (f->rejected)
		log_flow(f, "rejected", NULL);
	else if (f->refused)
		log_flow(f, "refused", f->refused);
	else if (!f->own)
		log_flow(f, f->dns_err[0] ? "error" : "ok", f->dns_err[0] ? f->dns_err : NULL);
	for (int i = 0; i < MAX_DNS; i++) {
		if (f->dns[i]) {
			dns_pending_cancel(f->dns[i]->p);
			free(f->dns[i]);
		}
	}
	while ((q = f->q)) {
		f->q = q->next;
		free(q);
	}
	policy_cancel(f->preq);
	if (f->creq)
		connector_cancel(f->creq);
	if (f->oev)
		event_free(f->oev);
	if (f->out_fd >= 0)
		close(f->out_fd);
	policyset_unref(f->ps);
	if (f->rev)
		event_free(f->rev);
	if (f->rfd >= 0)
		close(f->rfd);
	for (pp = &u->bucket[f->bucket]; *pp; pp = &(*pp)->hnext)
		if (*pp == f) {
			*pp = f->hnext;
			break;
		}
	if (f->prev)
		f->prev->next = f->next;
	else
		u->all = f->next;
	if (f->next)
		f->next->prev = f->prev;
	u->n--;
	free(f);
}

/* To the client, from the destination's own address. */
static void to_client(struct tflow *f, const void *data, size_t len)
{
	if (send(f->rfd, data, len, MSG_DONTWAIT) < 0) {
		log_debug("UDP reply to a TPROXY client dropped: %s", strerror(errno));
		return;
	}
	f->down += len;
	f->last = time(NULL);
}

static void on_out_read(evutil_socket_t fd, short what, void *arg)
{
	struct tflow *f = arg;

	(void)what;
	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(fd, tudp_dgram, sizeof(tudp_dgram), MSG_DONTWAIT);

		if (n < 0)
			return;     /* EAGAIN; ICMP errors the client would not see either */
		to_client(f, tudp_dgram, (size_t)n);
	}
}

static void on_connected(int fd, const char *errmsg, void *arg)
{
	struct tflow *f = arg;
	struct queued *q;

	f->creq = NULL;
	if (fd < 0) {
		snprintf(f->why, sizeof(f->why), "%s", errmsg);
		f->refused = f->why;
		return;
	}
	f->out_fd = fd;
	f->oev = event_new(f->u->d->base, fd, EV_READ | EV_PERSIST, on_out_read, f);
	if (!f->oev || event_add(f->oev, NULL) < 0) {
		f->refused = "out of memory";
		return;
	}
	while ((q = f->q)) {
		f->q = q->next;
		if (send(fd, q->data, q->len, MSG_DONTWAIT) < 0)
			log_debug("UDP datagram dropped: %s", strerror(errno));
		free(q);
	}
	f->qtail = &f->q;
	f->nq = 0;
}

static void on_dns_reply(const uint8_t *reply, size_t len, void *arg)
{
	struct tdns *dq = arg;
	struct tflow *f = dq->flow;
	const char *why = dns_server_reply_error(f->u->d->dns);

	if (why)
		snprintf(f->dns_err, sizeof(f->dns_err), "%s", why);
	if (reply && len)
		to_client(f, reply, len);
	if (dq->starting) {          /* answered inside dns_server_query */
		dq->starting = 0;
		dq->p = NULL;
		return;
	}
	for (int i = 0; i < MAX_DNS; i++)
		if (f->dns[i] == dq)
			f->dns[i] = NULL;
	free(dq);
}

static void dns_in(struct tflow *f, const unsigned char *data, size_t len)
{
	struct tdns *dq;
	int i;

	for (i = 0; i < MAX_DNS && f->dns[i]; i++)
		;
	if (i == MAX_DNS || !(dq = calloc(1, sizeof(*dq))))
		return;
	dq->flow = f;
	dq->starting = 1;
	dq->p = dns_server_query(f->u->d->dns, data, len, 0, on_dns_reply, dq);
	if (!dq->starting || !dq->p) {
		free(dq);
		return;
	}
	dq->starting = 0;
	f->dns[i] = dq;
}

/* A datagram from the client, through the listener or the flow's socket. */
void tflow_from_client(struct tflow *f, const unsigned char *data, size_t len)
{
	struct queued *q;

	f->up += len;
	f->last = time(NULL);
	if (f->refused)
		return;
	if (f->is_dns) {
		dns_in(f, data, len);
	} else if (f->out_fd >= 0) {
		if (send(f->out_fd, data, len, MSG_DONTWAIT) < 0)
			log_debug("UDP datagram dropped: %s", strerror(errno));
	} else if (f->nq < MAX_QUEUED && (q = malloc(sizeof(*q) + len))) {
		q->next = NULL;
		q->len = len;
		memcpy(q->data, data, len);
		*f->qtail = q;
		f->qtail = &q->next;
		f->nq++;
	}
}

/* Once the flow's socket exists, TPROXY finds it (it is the connected,
 * transparent socket of this 4-tuple) and the client's datagrams come
 * here instead of to the listener. */
static void on_reply_sock(evutil_socket_t fd, short what, void *arg)
{
	struct tflow *f = arg;

	(void)what;
	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(fd, tudp_dgram, sizeof(tudp_dgram), MSG_DONTWAIT);

		if (n < 0)
			return;
		tflow_from_client(f, tudp_dgram, (size_t)n);
	}
}

static int reply_socket(struct tflow *f)
{
	struct daemon *d = f->u->d;
	const struct sockaddr *c = (struct sockaddr *)&f->client;

	f->rfd = tsock_open(d, SOCK_DGRAM, &f->t.addr, 0, f->why, sizeof(f->why));
	if (f->rfd < 0)
		return -1;
	if (connect(f->rfd, c, addr_len(c)) < 0) {
		snprintf(f->why, sizeof(f->why), "UDP reply socket: connect: %s", strerror(errno));
		return -1;
	}
	f->rev = event_new(d->base, f->rfd, EV_READ | EV_PERSIST, on_reply_sock, f);
	if (!f->rev || event_add(f->rev, NULL) < 0) {
		snprintf(f->why, sizeof(f->why), "out of memory");
		return -1;
	}
	return 0;
}

/* The policy's answer (no process behind TPROXY: process rules match
 * nothing).  Rejected: the datagrams are dropped. */
static void on_decided(const struct rule_result *out, struct policyset *ps, void *arg)
{
	struct tflow *f = arg;
	const struct upstream *up;
	struct queued *q;

	f->preq = NULL;
	f->decided = 1;
	f->rule = out->rule;
	snprintf(f->route, sizeof(f->route), "%s", out->target);
	if (out->action == RULE_REJECT ||
	    policy_upstream(ps, out, &up, &f->ps, f->why, sizeof(f->why)) < 0) {
		f->rejected = out->action == RULE_REJECT;
		f->refused = f->rejected ? "rejected" : f->why;
		while ((q = f->q)) {
			f->q = q->next;
			free(q);
		}
		f->qtail = &f->q;
		f->nq = 0;
		return;
	}
	if (up)
		snprintf(f->route, sizeof(f->route), "%s", up->name);
	f->via = upstream_via(f->u->d->opt, up, SOCK_DGRAM);
	f->creq = connector_start_via(f->u->d, up, &f->t, SOCK_DGRAM, on_connected, f);
	if (!f->creq)
		f->refused = "out of memory";
}

static void decide(struct tflow *f)
{
	struct policy_conn c = {
		.dst = (struct sockaddr *)&f->t.addr,
		.network = RULE_NET_UDP,
		.host = f->t.host[0] ? f->t.host : f->sniffed ? f->sniffed_host : NULL,
		.fakeip = f->t.host[0] != 0,
	};
	struct rule_result out;

	switch (policy_route(f->u->d, &c, &out, on_decided, f, &f->preq)) {
	case RULES_DECIDED:
		on_decided(&out, f->u->d->policy, f);
		break;
	case RULES_RESOLVE:
		break;
	default:
		f->refused = "out of memory";
	}
}

struct tflow *tflow_new(struct tproxy_udp *u, const struct sockaddr_storage *client,
			const struct sockaddr_storage *dst, unsigned h,
			const uint8_t *first, size_t n)
{
	struct tflow *f = calloc(1, sizeof(*f));
	const struct upstream *up;
	const char *name;
	int in_range = 0;
	char a[ADDR_STRLEN];

	if (!f)
		return NULL;
	f->u = u;
	f->bucket = h;
	f->client = *client;
	f->t.addr = *dst;
	f->rfd = f->out_fd = -1;
	f->qtail = &f->q;
	clock_gettime(CLOCK_MONOTONIC, &f->start);
	f->last = time(NULL);
	/* Our own lookups go to the resolver they asked, unlogged: answering
	 * them from the FakeIP pool would be a loop. */
	f->own = addr_port((struct sockaddr *)dst) == 53 && ownsock_udp((const struct sockaddr *)client);
	f->is_dns = addr_port((struct sockaddr *)dst) == 53 && !f->own;
	f->hnext = u->bucket[h];
	u->bucket[h] = f;
	f->next = u->all;
	if (u->all)
		u->all->prev = f;
	u->all = f;
	u->n++;
	if (reply_socket(f) < 0) {
		f->refused = f->why;
		return f;
	}
	if (f->is_dns)
		return f;
	name = dns_server_fake_name(u->d->dns, (struct sockaddr *)dst, &in_range);
	if (in_range && !name) {
		snprintf(f->why, sizeof(f->why), "%s is a FakeIP address that is not mapped "
			 "to any name (handed out before a restart without --fakeip-store?)",
			 addr_str((struct sockaddr *)dst, a, sizeof(a)));
		f->refused = f->why;
		return f;
	}
	if (name)
		snprintf(f->t.host, sizeof(f->t.host), "%s", name);
	if (!f->own) {
		enum sniff_kind k;

		if (!name && u->d->opt->sniff &&
		    sniff_quic(first, n, f->sniffed_host, sizeof(f->sniffed_host), &k) == SNIFF_FOUND)
			f->sniffed = k;
		decide(f);
		return f;
	}
	/* The daemon's own lookups go where they were sent, past the rules:
	 * by the default route. */
	if ((up = policyset_default(u->d->policy)))
		f->ps = policyset_ref(u->d->policy);
	f->via = upstream_via(u->d->opt, up, SOCK_DGRAM);
	f->creq = connector_start_via(u->d, up, &f->t, SOCK_DGRAM, on_connected, f);
	if (!f->creq)
		f->refused = "out of memory";
	return f;
}
