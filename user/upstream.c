/* The table of named upstreams, their URLs, and the loop every handshake
 * shares: connect, write a request, read a bounded reply, under one
 * --connect-timeout deadline.  The protocols fill in what is said. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <event2/event.h>

#include "addr.h"
#include "connector.h"
#include "daemon.h"
#include "log.h"
#include "upstream.h"

/* --- URLs ------------------------------------------------------------- */

static int unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) into out.  -1 on a bad escape, %00, or overflow. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			if (i + 2 >= n)
				return -1;
			if (unhex(s[i + 1]) < 0 || unhex(s[i + 2]) < 0)
				return -1;
			c = unhex(s[i + 1]) * 16 + unhex(s[i + 2]);
			if (c == 0)
				return -1;
			i += 2;
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = 0;
	return 0;
}

static void set_label(struct upstream *u)
{
	if (u->kind == UPSTREAM_DIRECT)
		snprintf(u->label, sizeof(u->label), "%s (direct)", u->name);
	else
		snprintf(u->label, sizeof(u->label), strchr(u->host, ':') ? "%s ([%s]:%u)"
			 : "%s (%s:%u)", u->name, u->host, u->port);
}

int upstream_parse_url(const char *url, struct upstream *u, char *err, size_t errlen)
{
	const char *p, *at, *end, *colon, *hend;
	unsigned long port = 1080;

	memset(&u->kind, 0, sizeof(*u) - offsetof(struct upstream, kind));
	if (strcmp(url, "direct") == 0) {
		u->kind = UPSTREAM_DIRECT;
		set_label(u);
		return 0;
	}
	if (strncmp(url, "socks5://", 9) == 0 || strncmp(url, "socks5h://", 10) == 0) {
		u->kind = UPSTREAM_SOCKS5;
		p = strstr(url, "://") + 3;
	} else if (strncmp(url, "http://", 7) == 0) {
		u->kind = UPSTREAM_HTTP;
		p = url + 7;
	} else {
		snprintf(err, errlen, "an upstream URL starts with socks5://, socks5h:// "
			 "or http://, or is 'direct'");
		return -1;
	}
	end = p + strcspn(p, "/?#");
	if (*end && strcmp(end, "/") != 0) {
		snprintf(err, errlen, "an upstream URL has no path, query or fragment");
		return -1;
	}
	at = memrchr(p, '@', (size_t)(end - p));
	if (at) {
		colon = memchr(p, ':', (size_t)(at - p));
		if (!colon || pct_decode(p, (size_t)(colon - p), u->user, sizeof(u->user)) < 0 ||
		    pct_decode(colon + 1, (size_t)(at - colon - 1), u->pass, sizeof(u->pass)) < 0 ||
		    !u->user[0]) {
			snprintf(err, errlen, "the credentials in an upstream URL are "
				 "USER:PASSWORD@ (percent-encoded, at most 255 bytes each)");
			return -1;
		}
		u->auth = 1;
		p = at + 1;
	}
	if (*p == '[') {
		hend = memchr(p, ']', (size_t)(end - p));
		if (!hend)
			goto bad_host;
		colon = hend + 1 < end && hend[1] == ':' ? hend + 1 : NULL;
		if (hend + 1 != end && !colon)
			goto bad_host;
		p++;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		hend = colon ? colon : end;
	}
	if (hend == p || (size_t)(hend - p) >= sizeof(u->host))
		goto bad_host;
	memcpy(u->host, p, (size_t)(hend - p));
	u->host[hend - p] = 0;
	if (strspn(u->host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "0123456789.-_:") != strlen(u->host))
		goto bad_host;
	if (colon) {
		char num[8];
		size_t len = (size_t)(end - colon - 1);

		if (len == 0 || len >= sizeof(num))
			goto bad_port;
		memcpy(num, colon + 1, len);
		num[len] = 0;
		if (strspn(num, "0123456789") != len)
			goto bad_port;
		port = strtoul(num, NULL, 10);
		if (port < 1 || port > 65535)
			goto bad_port;
	}
	u->port = (uint16_t)port;
	set_label(u);
	return 0;
bad_host:
	snprintf(err, errlen, "an upstream URL needs a host: a name, an IPv4 address "
		 "or an [IPv6] address");
	return -1;
bad_port:
	snprintf(err, errlen, "the port of an upstream URL is a number from 1 to 65535");
	return -1;
}

/* A URL kept out of argv (and so out of ps): the first line of a file that
 * only its owner and group may read. */
static int read_url_file(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_mode & S_IROTH) {
		snprintf(err, errlen, "%s is readable by every user; it may hold a "
			 "password: chmod o-rwx it", path);
		close(fd);
		return -1;
	}
	n = read(fd, out, cap - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	out[n] = 0;
	out[strcspn(out, "\r\n")] = 0;
	while (*out && isspace((unsigned char)out[strlen(out) - 1]))
		out[strlen(out) - 1] = 0;
	return 0;
}

int upstream_parse_arg(const char *arg, struct upstream *u, char *err, size_t errlen)
{
	size_t nlen = strcspn(arg, "=:/@");
	const char *val = arg;
	char url[2048], why[200];

	memset(u->name, 0, sizeof(u->name));
	if (arg[nlen] == '=') {
		if (nlen == 0 || nlen >= sizeof(u->name) ||
		    strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			   "0123456789_.-") < nlen) {
			snprintf(err, errlen, "an upstream NAME is 1 to %d letters, digits, "
				 "'_', '.' or '-'", UPSTREAM_NAME_MAX - 1);
			return -1;
		}
		memcpy(u->name, arg, nlen);
		val = arg + nlen + 1;
	} else {
		snprintf(u->name, sizeof(u->name), "%s", UPSTREAM_DEFAULT);
	}
	if (*val == '@') {
		if (read_url_file(val + 1, url, sizeof(url), err, errlen) < 0)
			return -1;
		val = url;
	}
	if (upstream_parse_url(val, u, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s", u->name, why);
		return -1;
	}
	return 0;
}

int upstream_resolve(struct upstream *u, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	char port[8];
	int rc;

	if (u->kind == UPSTREAM_DIRECT)
		return 0;
	snprintf(port, sizeof(port), "%u", u->port);
	rc = getaddrinfo(u->host, port, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "upstream %s: cannot resolve %s: %s", u->label,
			 u->host, gai_strerror(rc));
		return -1;
	}
	memset(&u->addr, 0, sizeof(u->addr));
	memcpy(&u->addr, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	addr_unmap(&u->addr);
	return 0;
}

const struct upstream *upstream_find(const struct options *o, const char *name)
{
	for (int i = 0; i < o->n_upstream; i++)
		if (strcmp(o->upstream[i].name, name) == 0)
			return &o->upstream[i];
	return NULL;
}

const struct upstream *upstream_default(const struct options *o)
{
	return upstream_find(o, UPSTREAM_DEFAULT);
}

int upstream_carries(const struct options *o, const struct upstream *u, int socktype)
{
	(void)o;
	if (!u || u->kind == UPSTREAM_DIRECT)
		return 0;
	return u->kind == UPSTREAM_SOCKS5 || socktype == SOCK_STREAM;
}

int upstream_refuses(const struct options *o, const struct upstream *u, int socktype,
		     char *err, size_t errlen)
{
	if (!u || u->kind != UPSTREAM_HTTP || socktype != SOCK_DGRAM ||
	    o->udp_over_http != UDP_OVER_HTTP_REJECT)
		return 0;
	snprintf(err, errlen, "upstream %s is an HTTP proxy, which cannot carry UDP: "
		 "rejected (--udp-over-http direct sends UDP around it)", u->label);
	return 1;
}

const char *upstream_via(const struct options *o, const struct upstream *u, int socktype)
{
	static int said;

	if (!u)
		return NULL;
	if (u->kind == UPSTREAM_HTTP && socktype == SOCK_DGRAM &&
	    o->udp_over_http == UDP_OVER_HTTP_DIRECT) {
		if (!said++)
			log_info("UDP flows go direct, around upstream %s: an HTTP proxy "
				 "cannot carry UDP (--udp-over-http direct)", u->label);
		return "direct";
	}
	return u->name;
}

/* --- the handshake loop ------------------------------------------------ */

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
