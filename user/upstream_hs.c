/* The loop every upstream handshake shares: connect to the upstream,
 * write what the protocol says, read its bounded answer without taking a
 * byte past it, all under one --connect-timeout deadline; then hand the
 * tunnel (or, for UDP, the association's end of a socket pair) over. */
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
#include "log.h"
#include "upstream.h"

struct upstream_hs {
	struct daemon *d;
	const struct upstream *u;
	struct target t;
	int socktype;
	int fd;                  /* TCP to the upstream */
	int udp;                 /* UDP ASSOCIATE: our socket towards the relay */
	struct event *ev, *timer;
	struct hs_io io;
	size_t outoff;
	uint8_t in[HTTP_CONNECT_REPLY_MAX];
	size_t inlen;
	struct sockaddr_storage bound;
	upstream_cb cb;
	void *arg;
	int result;
	char why[300];
	char err[700];
};

static void hs_free(struct upstream_hs *h)
{
	if (h->ev)
		event_free(h->ev);
	if (h->timer)
		event_free(h->timer);
	if (h->fd >= 0)
		close(h->fd);
	if (h->udp >= 0)
		close(h->udp);
	free(h);
}

static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_hs *h = arg;
	upstream_cb cb = h->cb;
	void *cbarg = h->arg;
	int result = h->result;
	char err[sizeof(h->err)];

	(void)fd;
	(void)what;
	memcpy(err, h->err, sizeof(err));
	hs_free(h);
	cb(result, result < 0 ? err : NULL, cbarg);
}

/* Hands the result over from the loop, never from inside upstream_start. */
static void deliver(struct upstream_hs *h, int result)
{
	h->result = result;
	if (h->ev)
		event_free(h->ev);
	h->ev = event_new(h->d->base, -1, 0, on_deliver, h);
	if (!h->ev) {
		log_err("out of memory finishing an upstream handshake");
		return;
	}
	event_del(h->timer);
	event_active(h->ev, EV_TIMEOUT, 0);
}

static void fail(struct upstream_hs *h, const char *why)
{
	snprintf(h->err, sizeof(h->err), "upstream %s: %s: %s", h->u->label,
		 h->io.stage, why);
	deliver(h, -1);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_hs *h = arg;
	char why[120];

	(void)fd;
	(void)what;
	snprintf(why, sizeof(why), strcmp(h->io.stage, "connect") == 0 ?
		 "timed out after %us (--connect-timeout)" :
		 "no answer within %us (--connect-timeout)", h->d->opt->connect_timeout);
	fail(h, why);
}

static void on_io(evutil_socket_t fd, short what, void *arg);

static int wait_for(struct upstream_hs *h, short what)
{
	if (h->ev)
		event_free(h->ev);
	h->ev = event_new(h->d->base, h->fd, what | EV_PERSIST, on_io, h);
	if (!h->ev || event_add(h->ev, NULL) < 0) {
		fail(h, "out of memory");
		return -1;
	}
	return 0;
}

/* The tunnel is up.  UDP: the relay's address, as the reply said (an
 * unspecified one means the upstream's own), then the relay owns both. */
static void established(struct upstream_hs *h)
{
	struct sockaddr_storage relay = h->bound;
	char a[ADDR_STRLEN], why[300];
	int fd;

	if (h->socktype == SOCK_STREAM) {
		fd = h->fd;
		h->fd = -1;
		deliver(h, fd);
		return;
	}
	if (relay.ss_family == 0 ||
	    (relay.ss_family == AF_INET &&
	     ((struct sockaddr_in *)&relay)->sin_addr.s_addr == INADDR_ANY) ||
	    (relay.ss_family == AF_INET6 &&
	     IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&relay)->sin6_addr))) {
		uint16_t port = addr_port((struct sockaddr *)&h->bound);

		relay = h->u->addr;
		if (relay.ss_family == AF_INET)
			((struct sockaddr_in *)&relay)->sin_port = htons(port);
		else
			((struct sockaddr_in6 *)&relay)->sin6_port = htons(port);
	}
	if (connect(h->udp, (struct sockaddr *)&relay, addr_len((struct sockaddr *)&relay)) < 0) {
		snprintf(why, sizeof(why), "UDP relay %s: %s",
			 addr_str((struct sockaddr *)&relay, a, sizeof(a)), strerror(errno));
		fail(h, why);
		return;
	}
	fd = socks5_udp_relay(h->d, h->u, &h->t, h->fd, h->udp, why, sizeof(why));
	if (fd < 0) {
		fail(h, why);
		return;
	}
	h->fd = h->udp = -1;      /* the relay's now */
	deliver(h, fd);
}

static void on_writable(struct upstream_hs *h)
{
	ssize_t n = send(h->fd, h->io.out + h->outoff, h->io.outlen - h->outoff,
			 MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			fail(h, strerror(errno));
		return;
	}
	h->outoff += (size_t)n;
	if (h->outoff == h->io.outlen)
		wait_for(h, EV_READ);
}

static int input(struct upstream_hs *h, const uint8_t *b, size_t n)
{
	if (h->u->kind == UPSTREAM_SOCKS5)
		return socks5_input(&h->io, h->u, &h->t, h->socktype, b, n, &h->bound);
	return http_input(&h->io, b, n);
}

/* Peeks, so that nothing past the reply is taken: what follows belongs to
 * the tunnel (a server that speaks first, like SSH or SMTP). */
static void on_readable(struct upstream_hs *h)
{
	ssize_t n = recv(h->fd, h->in + h->inlen, sizeof(h->in) - h->inlen,
			 MSG_PEEK | MSG_DONTWAIT);
	int len;

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		fail(h, n == 0 ? "the upstream closed the connection" : strerror(errno));
		return;
	}
	if (n < 0)
		return;
	len = input(h, h->in, h->inlen + (size_t)n);
	if (len < 0) {
		fail(h, h->why);
		return;
	}
	if (len == 0) {
		if (recv(h->fd, h->in + h->inlen, (size_t)n, MSG_DONTWAIT) != n) {
			fail(h, "lost bytes of the reply");
			return;
		}
		h->inlen += (size_t)n;
		if (h->inlen == sizeof(h->in)) {
			snprintf(h->why, sizeof(h->why), "reply longer than %zu bytes: "
				 "not a proxy's answer", sizeof(h->in));
			fail(h, h->why);
		}
		return;
	}
	if (recv(h->fd, h->in + h->inlen, (size_t)len - h->inlen, MSG_DONTWAIT) !=
	    (ssize_t)((size_t)len - h->inlen)) {
		fail(h, "lost bytes of the reply");
		return;
	}
	h->inlen = 0;
	if (h->io.done)
		established(h);
	else if (h->io.outlen) {
		h->outoff = 0;
		wait_for(h, EV_WRITE);
	}
}

/* A UDP ASSOCIATE names the address it will send from: a socket bound
 * next to the TCP connection's own address. */
static int udp_socket(struct upstream_hs *h)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);

	if (getsockname(h->fd, (struct sockaddr *)&local, &len) < 0)
		return -1;
	addr_unmap(&local);
	if (local.ss_family == AF_INET)
		((struct sockaddr_in *)&local)->sin_port = 0;
	else
		((struct sockaddr_in6 *)&local)->sin6_port = 0;
	h->udp = socket(local.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h->udp < 0)
		return -1;
	daemon_mark(h->d, h->udp);
	len = addr_len((struct sockaddr *)&local);
	if (bind(h->udp, (struct sockaddr *)&local, len) < 0 ||
	    getsockname(h->udp, (struct sockaddr *)&h->io.udp_local, &len) < 0)
		return -1;
	addr_unmap(&h->io.udp_local);
	return 0;
}

static void begin(struct upstream_hs *h)
{
	int rc;

	if (h->u->kind == UPSTREAM_SOCKS5 && h->socktype == SOCK_DGRAM &&
	    udp_socket(h) < 0) {
		fail(h, strerror(errno));
		return;
	}
	rc = h->u->kind == UPSTREAM_SOCKS5 ? socks5_begin(&h->io, h->u)
		: http_begin(&h->io, h->u, &h->t);
	if (rc < 0) {
		fail(h, h->why);
		return;
	}
	h->outoff = 0;
	wait_for(h, EV_WRITE);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_hs *h = arg;
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (strcmp(h->io.stage, "connect") == 0) {
		if (getsockopt((int)fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		if (soerr) {
			fail(h, strerror(soerr));
			return;
		}
		begin(h);
		return;
	}
	if (what & EV_WRITE)
		on_writable(h);
	else
		on_readable(h);
}

struct upstream_hs *upstream_start(struct daemon *d, const struct upstream *u,
				   const struct target *t, int socktype,
				   upstream_cb cb, void *arg)
{
	struct upstream_hs *h = calloc(1, sizeof(*h));
	struct timeval tv = { d->opt->connect_timeout, 0 };
	const struct sockaddr *sa = (const struct sockaddr *)&u->addr;
	int one = 1;

	if (!h)
		return NULL;
	h->d = d;
	h->u = u;
	h->t = *t;
	h->socktype = socktype;
	h->cb = cb;
	h->arg = arg;
	h->fd = h->udp = h->result = -1;
	h->io.stage = "connect";
	h->io.err = h->why;
	h->io.errlen = sizeof(h->why);
	h->timer = evtimer_new(d->base, on_timeout, h);
	if (!h->timer || evtimer_add(h->timer, &tv) < 0) {
		hs_free(h);
		return NULL;
	}
	h->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h->fd < 0) {
		fail(h, strerror(errno));
		return h;
	}
	daemon_mark(d, h->fd);
	setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(h->fd, sa, addr_len(sa)) < 0 && errno != EINPROGRESS) {
		fail(h, strerror(errno));
		return h;
	}
	wait_for(h, EV_WRITE);
	return h;
}

void upstream_cancel(struct upstream_hs *h)
{
	if (!h)
		return;
	/* Finished, not yet delivered: the tunnel is still ours. */
	if (h->result >= 0)
		close(h->result);
	hs_free(h);
}
