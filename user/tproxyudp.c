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
#include "rules.h"
#include "sniff.h"
#include "tproxyudp.h"
#include "upstream.h"

#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IP_RECVORIGDSTADDR
#define IP_RECVORIGDSTADDR 20
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif
#ifndef IPV6_RECVORIGDSTADDR
#define IPV6_RECVORIGDSTADDR 74
#endif

#define BUCKETS      1024
#define MAX_QUEUED   16    /* datagrams held while a flow connects */
#define MAX_DNS      32    /* queries in flight per flow */
#define MAX_DGRAM    65536
#define DNS_IDLE     10    /* seconds: a resolver's client port is used once */

struct tflow;

struct tdns {
	struct tflow *flow;
	struct dns_pending *p;
	int starting;
};

struct queued {
	struct queued *next;
	size_t len;
	unsigned char data[];
};

struct tflow {
	struct tproxy_udp *u;
	struct tflow *hnext;              /* in its bucket */
	struct tflow *prev, *next;        /* every flow */
	unsigned bucket;
	struct sockaddr_storage client;   /* unmapped */
	struct target t;                  /* t.addr: the original destination */
	int is_dns;
	int own;                          /* this daemon's own lookup: relayed, not logged */
	const char *via;                  /* the route, for the log */
	const char *refused;              /* set: datagrams are dropped, this says why */
	char why[200];
	char dns_err[200];
	int rfd;                          /* bound to t.addr, connected to client */
	struct event *rev;
	int out_fd;
	struct event *oev;
	struct connect_req *creq;
	struct policy_req *preq;          /* deciding, a name being looked up */
	int decided, rule, rejected;      /* the route, kept across reloads */
	char route[64];
	char sniffed_host[256];           /* from a QUIC Initial */
	int sniffed;                      /* enum sniff_kind */
	struct queued *q, **qtail;
	int nq;
	struct tdns *dns[MAX_DNS];
	uint64_t up, down;
	struct timespec start;
	time_t last;
};

struct tproxy_udp {
	struct daemon *d;
	struct sockaddr_storage addr;
	int fd;
	struct event *ev, *sweep;
	struct tflow *bucket[BUCKETS];
	struct tflow *all;
	size_t n, max;
	uint64_t full;
	time_t last_full_log, last_nodst_log;
};

static unsigned char dgram[MAX_DGRAM];

int tsock_open(const struct daemon *d, int type, const struct sockaddr_storage *addr,
	       int dual, char *err, size_t errlen)
{
	int fam = addr->ss_family, one = 1, off = 0, fd;
	char a[ADDR_STRLEN];
	const char *what = "socket";

	fd = socket(fam, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	what = fam == AF_INET ? "IP_TRANSPARENT" : "IPV6_TRANSPARENT";
	if (fam == AF_INET ? setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one))
			   : setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one)))
		goto fail;
	if (fam == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual ? &off : &one, sizeof(one));
	/* Our mark: the generated rules leave these sockets' packets alone. */
	what = "SO_MARK";
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &d->opt->mark, sizeof(d->opt->mark)) < 0)
		goto fail;
	what = "bind";
	if (bind(fd, (const struct sockaddr *)addr, addr_len((const struct sockaddr *)addr)) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "%s %s on %s: %s%s", type == SOCK_STREAM ? "TCP" : "UDP",
		 what, addr_str((const struct sockaddr *)addr, a, sizeof(a)), strerror(errno),
		 errno == EPERM ? " (needs root or CAP_NET_ADMIN)" : "");
	if (fd >= 0)
		close(fd);
	return -1;
}

static unsigned hash_pair(const struct sockaddr_storage *c, const struct sockaddr_storage *t)
{
	const unsigned char *p[2] = { (const void *)c, (const void *)t };
	unsigned h = 2166136261u;

	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < addr_len((const struct sockaddr *)p[k]); i++)
			h = (h ^ p[k][i]) * 16777619u;
	return h % BUCKETS;
}

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

static void flow_end(struct tflow *f)
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
		ssize_t n = recv(fd, dgram, sizeof(dgram), MSG_DONTWAIT);

		if (n < 0)
			return;     /* EAGAIN; ICMP errors the client would not see either */
		to_client(f, dgram, (size_t)n);
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
static void from_client(struct tflow *f, const unsigned char *data, size_t len)
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
		ssize_t n = recv(fd, dgram, sizeof(dgram), MSG_DONTWAIT);

		if (n < 0)
			return;
		from_client(f, dgram, (size_t)n);
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
static void on_decided(const struct rule_result *out, void *arg)
{
	struct tflow *f = arg;
	const struct upstream *up;
	struct queued *q;

	f->preq = NULL;
	f->decided = 1;
	f->rule = out->rule;
	snprintf(f->route, sizeof(f->route), "%s", out->target);
	if (out->action == RULE_REJECT ||
	    policy_upstream(f->u->d, out, &up, f->why, sizeof(f->why)) < 0) {
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
		on_decided(&out, f);
		break;
	case RULES_RESOLVE:
		break;
	default:
		f->refused = "out of memory";
	}
}

static struct tflow *flow_new(struct tproxy_udp *u, const struct sockaddr_storage *client,
			      const struct sockaddr_storage *dst, unsigned h,
			      const uint8_t *first, size_t n)
{
	struct tflow *f = calloc(1, sizeof(*f));
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
	/* The daemon's own lookups go where they were sent, past the rules. */
	f->via = connector_via(u->d, SOCK_DGRAM);
	f->creq = connector_start(u->d, &f->t, SOCK_DGRAM, on_connected, f);
	if (!f->creq)
		f->refused = "out of memory";
	return f;
}

/* The original destination, from the control message TPROXY leaves. */
static int orig_dst(struct msghdr *mh, struct sockaddr_storage *dst)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR) {
			memset(dst, 0, sizeof(*dst));
			memcpy(dst, CMSG_DATA(c), sizeof(struct sockaddr_in));
			return 0;
		}
		if (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_ORIGDSTADDR) {
			memset(dst, 0, sizeof(*dst));
			memcpy(dst, CMSG_DATA(c), sizeof(struct sockaddr_in6));
			addr_unmap(dst);
			return 0;
		}
	}
	return -1;
}

static struct tflow *find(struct tproxy_udp *u, const struct sockaddr_storage *client,
			  const struct sockaddr_storage *dst, unsigned h)
{
	for (struct tflow *f = u->bucket[h]; f; f = f->hnext)
		if (addr_equal((struct sockaddr *)&f->client, (const struct sockaddr *)client) &&
		    addr_equal((struct sockaddr *)&f->t.addr, (const struct sockaddr *)dst))
			return f;
	return NULL;
}

/* Dropped, said once a second at most. */
static int refuse_datagram(struct tproxy_udp *u, time_t *last, const struct sockaddr_storage *client,
			   const char *why)
{
	char a[ADDR_STRLEN];
	time_t now = time(NULL);

	if (now != *last)
		log_warn("UDP datagram from %s dropped: %s",
			 addr_str((const struct sockaddr *)client, a, sizeof(a)), why);
	*last = now;
	(void)u;
	return -1;
}

static void on_listener(evutil_socket_t fd, short what, void *arg)
{
	struct tproxy_udp *u = arg;
	char cbuf[256], why[200];

	(void)what;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage client, dst;
		struct iovec iov = { dgram, sizeof(dgram) };
		struct msghdr mh = {
			.msg_name = &client, .msg_namelen = sizeof(client),
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
		};
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
		struct tflow *f;
		unsigned h;

		if (n < 0)
			return;
		addr_unmap(&client);
		if (orig_dst(&mh, &dst) < 0) {
			refuse_datagram(u, &u->last_nodst_log, &client, "no original "
					"destination (sent to the listener itself, not through "
					"the TPROXY rules; run 'sproxy-bpf doctor')");
			continue;
		}
		if (addr_port((struct sockaddr *)&dst) == addr_port((struct sockaddr *)&u->addr) &&
		    addr_is_ours((struct sockaddr *)&dst)) {
			refuse_datagram(u, &u->last_nodst_log, &client, "sent to the TPROXY "
					"listener itself, not through the TPROXY rules");
			continue;
		}
		h = hash_pair(&client, &dst);
		f = find(u, &client, &dst, h);
		if (!f && u->n >= u->max) {
			u->full++;
			snprintf(why, sizeof(why), "%zu UDP flows open (%llu dropped so far); "
				 "raise --udp-flows or lower --udp-timeout", u->n,
				 (unsigned long long)u->full);
			refuse_datagram(u, &u->last_full_log, &client, why);
			continue;
		}
		if (!f && !(f = flow_new(u, &client, &dst, h, dgram, (size_t)n)))
			continue;
		from_client(f, dgram, (size_t)n);
	}
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct tproxy_udp *u = arg;
	time_t now = time(NULL), limit = (time_t)u->d->opt->udp_timeout;
	struct tflow *f, *next;

	(void)fd;
	(void)what;
	for (f = u->all; f; f = next) {
		next = f->next;
		if (now - f->last >= (f->is_dns && limit > DNS_IDLE ? DNS_IDLE : limit))
			flow_end(f);
	}
}

struct tproxy_udp *tproxy_udp_new(struct daemon *d, int fd,
				  const struct sockaddr_storage *addr,
				  char *err, size_t errlen)
{
	struct tproxy_udp *u = calloc(1, sizeof(*u));
	struct timeval sec = { 1, 0 };
	char a[ADDR_STRLEN];
	int one = 1, ok4, ok6 = 1;

	if (!u) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	u->d = d;
	u->fd = fd;
	u->addr = *addr;
	u->max = 2 * (size_t)d->opt->udp_flows;
	/* Dual stack: IPv4 datagrams on an IPv6 socket carry IP_ORIGDSTADDR. */
	ok4 = setsockopt(fd, SOL_IP, IP_RECVORIGDSTADDR, &one, sizeof(one)) == 0;
	if (addr->ss_family == AF_INET6)
		ok6 = setsockopt(fd, SOL_IPV6, IPV6_RECVORIGDSTADDR, &one, sizeof(one)) == 0;
	if (!ok6 || (addr->ss_family == AF_INET && !ok4)) {
		snprintf(err, errlen, "UDP on %s: cannot ask for original destinations: %s",
			 addr_str((const struct sockaddr *)addr, a, sizeof(a)), strerror(errno));
		tproxy_udp_free(u);
		return NULL;
	}
	u->ev = event_new(d->base, fd, EV_READ | EV_PERSIST, on_listener, u);
	u->sweep = event_new(d->base, -1, EV_PERSIST, on_sweep, u);
	if (!u->ev || !u->sweep || event_add(u->ev, NULL) < 0 || event_add(u->sweep, &sec) < 0) {
		snprintf(err, errlen, "out of memory");
		tproxy_udp_free(u);
		return NULL;
	}
	return u;
}

void tproxy_udp_free(struct tproxy_udp *u)
{
	if (!u)
		return;
	while (u->all)
		flow_end(u->all);
	if (u->ev)
		event_free(u->ev);
	if (u->sweep)
		event_free(u->sweep);
	close(u->fd);
	free(u);
}
