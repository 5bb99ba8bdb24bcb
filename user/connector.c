#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/event.h>

#include "addr.h"
#include "connector.h"
#include "daemon.h"
#include "dnsserver.h"
#include "log.h"
#include "upstream.h"

struct connect_req {
	struct daemon *d;
	struct target t;
	int socktype;
	connect_cb cb;
	void *arg;
	int fd;
	struct event *ev;
	struct dns_resolving *res;
	struct upstream_hs *hs;        /* through an upstream */
	int family;                    /* the one being resolved */
	int other_tried;
	int result;                    /* the connected fd, or -1: owned until delivered */
	char err[512];
};

static void deliver(evutil_socket_t fd, short what, void *arg)
{
	struct connect_req *r = arg;
	connect_cb cb = r->cb;
	void *cbarg = r->arg;
	int result = r->result;
	char err[sizeof(r->err)];

	(void)fd;
	(void)what;
	memcpy(err, r->err, sizeof(err));
	event_free(r->ev);
	free(r);
	cb(result, result < 0 ? err : NULL, cbarg);
}

/* The callback always runs from the event loop, never from inside
 * connector_start: the caller's state is complete by then. */
static void finish(struct connect_req *r, int fd, const char *errmsg)
{
	if (r->ev)
		event_free(r->ev);
	if (fd < 0 && r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->result = fd;
	if (errmsg && errmsg != r->err)
		snprintf(r->err, sizeof(r->err), "%s", errmsg);
	r->ev = event_new(r->d->base, -1, 0, deliver, r);
	if (!r->ev) {
		log_err("out of memory finishing a connection");
		if (fd >= 0)
			close(fd);
		return;   /* leaks r rather than calling back twice */
	}
	event_active(r->ev, EV_TIMEOUT, 0);
}

static void on_connected(evutil_socket_t fd, short what, void *arg)
{
	struct connect_req *r = arg;
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	char a[ADDR_STRLEN];

	if (what & EV_TIMEOUT) {
		snprintf(r->err, sizeof(r->err), "connect to %s: timed out after %us",
			 addr_str((struct sockaddr *)&r->t.addr, a, sizeof(a)),
			 r->d->opt->connect_timeout);
		finish(r, -1, r->err);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr) {
		snprintf(r->err, sizeof(r->err), "connect to %s: %s",
			 addr_str((struct sockaddr *)&r->t.addr, a, sizeof(a)),
			 strerror(soerr));
		finish(r, -1, r->err);
		return;
	}
	r->fd = -1;
	finish(r, (int)fd, NULL);
}

static void do_connect(struct connect_req *r)
{
	const struct sockaddr *sa = (const struct sockaddr *)&r->t.addr;
	struct timeval tv = { r->d->opt->connect_timeout, 0 };
	char a[ADDR_STRLEN];
	int one = 1;

	r->fd = socket(sa->sa_family, r->socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (r->fd < 0) {
		snprintf(r->err, sizeof(r->err), "socket: %s", strerror(errno));
		finish(r, -1, r->err);
		return;
	}
	daemon_mark(r->d, r->fd);
	if (r->socktype == SOCK_STREAM)
		setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(r->fd, sa, addr_len(sa)) == 0) {
		int fd = r->fd;

		r->fd = -1;
		finish(r, fd, NULL);
		return;
	}
	if (errno != EINPROGRESS) {
		snprintf(r->err, sizeof(r->err), "connect to %s: %s",
			 addr_str(sa, a, sizeof(a)), strerror(errno));
		finish(r, -1, r->err);
		return;
	}
	r->ev = event_new(r->d->base, r->fd, EV_WRITE, on_connected, r);
	if (!r->ev || event_add(r->ev, &tv) < 0) {
		snprintf(r->err, sizeof(r->err), "out of memory");
		finish(r, -1, r->err);
	}
}

static void on_resolved(int err, const char *errmsg, const struct sockaddr *addr,
			socklen_t addrlen, void *arg);

/* 0: resolving (the callback comes from the loop), -1: could not start. */
static int start_resolve(struct connect_req *r, int family)
{
	struct dns_resolving *res;

	r->family = family;
	res = dns_server_resolve(r->d->dns, r->t.host, family, on_resolved, r);
	if (!res)
		return -1;
	r->res = res;
	return 0;
}

static void on_resolved(int err, const char *errmsg, const struct sockaddr *addr,
			socklen_t addrlen, void *arg)
{
	struct connect_req *r = arg;
	uint16_t port = addr_port((struct sockaddr *)&r->t.addr);

	r->res = NULL;
	/* An app that took the name's IPv6 fake address still reaches a name
	 * with only IPv4 addresses (and the other way round): the leg to the
	 * server is ours to choose. */
	/* An answer refused by policy (a private address, a resolver loop)
	 * is the reason to report, not the other family's. */
	if ((err || !addr) && !r->other_tried && err != EACCES && err != ELOOP) {
		r->other_tried = 1;
		if (start_resolve(r, r->family == AF_INET6 ? AF_INET : AF_INET6) == 0)
			return;
	}
	if (err || !addr) {
		snprintf(r->err, sizeof(r->err), "resolve %s: %s", r->t.host,
			 errmsg ? errmsg : "no address");
		finish(r, -1, r->err);
		return;
	}
	memset(&r->t.addr, 0, sizeof(r->t.addr));
	memcpy(&r->t.addr, addr, addrlen);
	addr_unmap(&r->t.addr);
	if (r->t.addr.ss_family == AF_INET)
		((struct sockaddr_in *)&r->t.addr)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&r->t.addr)->sin6_port = htons(port);
	do_connect(r);
}

/* Already called from the loop: handed on at once, so that no fd waits
 * in r for a second round. */
static void on_upstream(int fd, const char *errmsg, void *arg)
{
	struct connect_req *r = arg;
	connect_cb cb = r->cb;
	void *cbarg = r->arg;

	free(r);
	cb(fd, errmsg, cbarg);
}

struct connect_req *connector_start_via(struct daemon *d, const struct upstream *u,
					const struct target *t, int socktype,
					connect_cb cb, void *arg)
{
	struct connect_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->d = d;
	r->t = *t;
	r->socktype = socktype;
	r->cb = cb;
	r->arg = arg;
	r->fd = -1;
	r->result = -1;
	if (upstream_refuses(d->opt, u, socktype, r->err, sizeof(r->err))) {
		finish(r, -1, r->err);
		return r;
	}
	if (upstream_carries(d->opt, u, socktype)) {
		r->hs = upstream_start(d, u, t, socktype, on_upstream, r);
		if (!r->hs)
			finish(r, -1, "out of memory");
		return r;
	}
	if (t->host[0]) {
		/* The family the application asked for (A or AAAA) first. */
		if (start_resolve(r, t->addr.ss_family == AF_INET6 ? AF_INET6 : AF_INET) < 0)
			finish(r, -1, "cannot start resolving (out of memory)");
		return r;
	}
	do_connect(r);
	return r;
}

void connector_cancel(struct connect_req *r)
{
	if (!r)
		return;
	if (r->res)
		dns_resolving_cancel(r->res);
	if (r->hs)
		upstream_cancel(r->hs);
	if (r->ev)
		event_free(r->ev);
	if (r->fd >= 0)
		close(r->fd);
	/* Finished, not yet delivered: the connected socket is still ours. */
	if (r->result >= 0)
		close(r->result);
	free(r);
}
