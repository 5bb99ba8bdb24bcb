/* Names resolved for the proxy (see dns_server_resolve) through evdns,
 * with the real resolvers, bounded by the server's timeout. */
#include "dnsserver_int.h"

#include "fakeip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

struct dns_resolving {
	struct dns_server *srv;            /* NULL once the server is gone */
	struct dns_resolving *prev, *next;
	dns_resolve_cb cb;
	void *arg;
	struct evdns_getaddrinfo_request *req;
	struct event *timer;               /* timeout, then delivery */
	int family;
	int in_evdns;                      /* evdns still owes its callback */
	int done;                          /* cb called or cancelled */
	int ready;                         /* result below is set */
	int err;
	int refused;                       /* ELOOP or EACCES: why an answer */
	struct sockaddr_storage addr;      /* was refused (r->msg says) */
	socklen_t addrlen;
	char msg[320];
	char name[];
};

static void resolving_unlink(struct dns_resolving *r)
{
	if (!r->srv)
		return;
	if (r->prev)
		r->prev->next = r->next;
	else
		r->srv->resolving = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

/* Hands the result (or err) to the user once; r is freed here unless
 * evdns still owes its callback, which then frees it. */
static void resolve_deliver(struct dns_resolving *r)
{
	struct dns_server *srv = r->srv;

	r->done = 1;
	resolving_unlink(r);
	r->srv = NULL;
	if (r->timer) {
		event_free(r->timer);
		r->timer = NULL;
	}
	if (r->err)
		dns_log(srv, 1, "%s", r->msg);
	if (r->in_evdns && r->req)
		evdns_getaddrinfo_cancel(r->req);
	int keep = r->in_evdns;
	r->cb(r->err, r->err ? r->msg : NULL,
	      r->err ? NULL : (const struct sockaddr *)&r->addr,
	      r->err ? 0 : r->addrlen, r->arg);
	if (!keep)
		free(r);
}

static int map_gai_error(int e, const char **what)
{
	switch (e) {
	case EVUTIL_EAI_NONAME:
		*what = "no such name";
		return ENOENT;
#ifdef EVUTIL_EAI_NODATA
	case EVUTIL_EAI_NODATA:
		*what = "no address";
		return ENOENT;
#endif
	case EVUTIL_EAI_AGAIN:
	case EVUTIL_EAI_FAIL:
		*what = "the resolvers failed";
		return EAGAIN;
	case EVUTIL_EAI_MEMORY:
		*what = "out of memory";
		return ENOMEM;
	default:
		*what = evutil_gai_strerror(e);
		return EIO;
	}
}

/* The 128-bit form of an answer: IPv4 as ::ffff:a.b.c.d. */
static void as_v6(const struct sockaddr *sa, uint8_t a[16])
{
	memset(a, 0, 16);
	if (sa->sa_family == AF_INET) {
		a[10] = a[11] = 0xff;
		memcpy(a + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	} else {
		memcpy(a, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
	}
}

static int in_range(const uint8_t a[16], const uint8_t net[16], unsigned plen)
{
	unsigned full = plen / 8, bits = plen % 8;

	if (plen > 128 || memcmp(a, net, full) != 0)
		return 0;
	return !bits || !((a[full] ^ net[full]) & (0xff00u >> bits));
}

/* What kind of address the daemon must not connect to for an app, or
 * NULL.  It connects as root and with its mark, so the app's own firewall
 * rules (per uid, per cgroup) do not see the connection. */
static const char *private_kind(const struct dns_server *srv, const uint8_t a[16])
{
	static const struct { uint8_t net[16]; unsigned plen; const char *kind; } ranges[] = {
		{ { [10] = 0xff, [11] = 0xff, [12] = 127 }, 104, "a loopback address" },
		{ { [10] = 0xff, [11] = 0xff, [12] = 169, [13] = 254 }, 112, "a link-local address" },
		{ { [10] = 0xff, [11] = 0xff }, 104, "an unspecified (this-host) address" },
		{ { [10] = 0xff, [11] = 0xff, [12] = 224 }, 100, "a multicast address" },
		{ { [10] = 0xff, [11] = 0xff, [12] = 255, [13] = 255, [14] = 255, [15] = 255 }, 128,
		  "the broadcast address" },
		{ { [15] = 1 }, 128, "a loopback address" },
		{ { 0 }, 128, "an unspecified address" },
		{ { 0xfe, 0x80 }, 10, "a link-local address" },
		{ { 0xff }, 8, "a multicast address" },
	};

	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
		if (in_range(a, ranges[i].net, ranges[i].plen))
			return ranges[i].kind;
	for (size_t i = 0; i < srv->n_bypass; i++)
		if (in_range(a, srv->bypass[i].addr, srv->bypass[i].prefixlen))
			return "in a --bypass range";
	return NULL;
}

/* 1 when the answer sa must not be used; r->refused and r->msg say why
 * (a resolver loop outranks a private answer). */
static int refuse_answer(struct dns_resolving *r, const struct sockaddr *sa)
{
	struct dns_server *srv = r->srv;
	char as[INET6_ADDRSTRLEN];
	const char *kind;
	uint8_t a[16];
	struct in_addr a4;

	static const uint8_t v4mapped[16] = { [10] = 0xff, [11] = 0xff };
	int v4;

	as_v6(sa, a);
	v4 = in_range(a, v4mapped, 96);
	memcpy(&a4, a + 12, 4);
	if (v4)
		inet_ntop(AF_INET, &a4, as, sizeof(as));
	else
		inet_ntop(AF_INET6, a, as, sizeof(as));
	if (srv->pool && (v4 ? fakeip_contains4(srv->pool, &a4)
			     : fakeip_contains6(srv->pool, (const struct in6_addr *)(const void *)a))) {
		r->refused = ELOOP;
		snprintf(r->msg, sizeof(r->msg), "cannot resolve %s: the resolvers "
			 "answered %s, one of this daemon's FakeIP addresses: they ask "
			 "this daemon (a resolver loop); give --resolver a server "
			 "outside the captured cgroup", r->name, as);
		return 1;
	}
	if (srv->allow_private || !(kind = private_kind(srv, a)))
		return 0;
	if (r->refused != ELOOP) {
		r->refused = EACCES;
		snprintf(r->msg, sizeof(r->msg), "refused %s: it resolves to %s, %s; "
			 "the daemon does not connect there for an app "
			 "(--allow-private-answers allows it)", r->name, as, kind);
	}
	return 1;
}

static void gai_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct dns_resolving *r = arg;
	struct evutil_addrinfo *ai, *pick = NULL;
	const char *what;
	struct timeval now = { 0, 0 };

	r->in_evdns = 0;
	r->req = NULL;
	if (r->done) { /* cancelled, timed out or server gone */
		if (res)
			evutil_freeaddrinfo(res);
		free(r);
		return;
	}
	for (ai = res; ai && result == 0; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		if (r->family != AF_UNSPEC && ai->ai_family != r->family)
			continue;
		if (ai->ai_addrlen > sizeof(r->addr))
			continue;
		if (refuse_answer(r, ai->ai_addr))
			continue;
		if (!pick || (pick->ai_family != AF_INET &&
			      ai->ai_family == AF_INET))
			pick = ai;
	}
	if (result != 0) {
		r->err = map_gai_error(result, &what);
		snprintf(r->msg, sizeof(r->msg), "cannot resolve %s: %s",
			 r->name, what);
	} else if (!pick && r->refused) {
		r->err = r->refused;
		/* One line per refused connection, as in the connection log:
		 * each says which name, address and option. */
		dns_log(r->srv, 0, "%s", r->msg);
	} else if (!pick) {
		r->err = ENOENT;
		snprintf(r->msg, sizeof(r->msg), "cannot resolve %s: no %s "
			 "address", r->name, r->family == AF_INET ? "IPv4" :
			 r->family == AF_INET6 ? "IPv6" : "IP");
	} else {
		memcpy(&r->addr, pick->ai_addr, pick->ai_addrlen);
		r->addrlen = (socklen_t)pick->ai_addrlen;
	}
	if (res)
		evutil_freeaddrinfo(res);
	/* Deliver from the loop: evdns may call us before
	 * dns_server_resolve has returned. */
	r->ready = 1;
	evtimer_del(r->timer);
	evtimer_add(r->timer, &now);
}

static void resolve_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolving *r = arg;

	(void)fd;
	(void)what;
	if (!r->ready) {
		r->err = ETIMEDOUT;
		snprintf(r->msg, sizeof(r->msg), "cannot resolve %s: no answer "
			 "within %u ms", r->name, r->srv->timeout_ms);
	}
	resolve_deliver(r);
}

/* Fails r with err (r->msg already says why) from the loop, never before
 * dns_server_resolve returns. */
static void fail_soon(struct dns_resolving *r, int err)
{
	struct timeval now = { 0, 0 };

	r->err = err;
	r->ready = 1;
	evtimer_del(r->timer);
	evtimer_add(r->timer, &now);
}

struct dns_resolving *dns_server_resolve(struct dns_server *srv,
					 const char *name, int family,
					 dns_resolve_cb cb, void *arg)
{
	struct timeval tv = { srv->timeout_ms / 1000,
			      (srv->timeout_ms % 1000) * 1000 };
	size_t nl = name ? strlen(name) : 0;
	struct dns_resolving *r = calloc(1, sizeof(*r) + nl + 1);
	struct evutil_addrinfo hints;

	if (!r)
		return NULL;
	memcpy(r->name, name ? name : "", nl + 1);
	r->srv = srv;
	r->cb = cb;
	r->arg = arg;
	r->family = family;
	r->timer = evtimer_new(srv->base, resolve_timer_cb, r);
	if (!r->timer || evtimer_add(r->timer, &tv) < 0) {
		if (r->timer)
			event_free(r->timer);
		free(r);
		return NULL;
	}
	r->next = srv->resolving;
	if (r->next)
		r->next->prev = r;
	srv->resolving = r;

	if (!nl || nl > FAKEIP_NAME_MAX + 1 ||
	    (family != AF_INET && family != AF_INET6 && family != AF_UNSPEC)) {
		snprintf(r->msg, sizeof(r->msg), "cannot resolve '%.260s': bad "
			 "name or address family", r->name);
		fail_soon(r, EINVAL);
		return r;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	r->in_evdns = 1;
	struct evdns_getaddrinfo_request *req =
		evdns_getaddrinfo(srv->evdns, r->name, NULL, &hints, gai_cb, r);
	if (r->in_evdns) {
		if (req) {
			r->req = req;
		} else { /* failed without calling back: never seen */
			r->in_evdns = 0;
			snprintf(r->msg, sizeof(r->msg), "cannot resolve %s: "
				 "evdns refused the request", r->name);
			fail_soon(r, EAGAIN);
		}
	}
	return r;
}

void dns_resolving_cancel(struct dns_resolving *r)
{
	if (!r || r->done)
		return;
	r->done = 1;
	resolving_unlink(r);
	r->srv = NULL;
	if (r->timer) {
		event_free(r->timer);
		r->timer = NULL;
	}
	if (r->in_evdns && r->req)
		evdns_getaddrinfo_cancel(r->req); /* gai_cb frees r */
	else if (!r->in_evdns)
		free(r);
}


int dns_resolve_setup(struct dns_server *srv)
{
	char v[32];

	srv->evdns = evdns_base_new(srv->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!srv->evdns)
		return -1;
	snprintf(v, sizeof(v), "%u.%03u", srv->attempt_ms / 1000,
		 srv->attempt_ms % 1000);
	evdns_base_set_option(srv->evdns, "timeout:", v);
	snprintf(v, sizeof(v), "%zu",
		 (size_t)((srv->timeout_ms + srv->attempt_ms - 1) / srv->attempt_ms));
	evdns_base_set_option(srv->evdns, "attempts:", v);
	/* A resolver that lowercases the echoed question would make every
	 * answer look forged. */
	evdns_base_set_option(srv->evdns, "randomize-case:", "0");
	evdns_base_set_option(srv->evdns, "getaddrinfo-allow-skew:", "1");
	for (size_t i = 0; i < srv->n_resolvers; i++) {
		char as[80];
		if (evdns_base_nameserver_sockaddr_add(srv->evdns,
				(const struct sockaddr *)&srv->resolvers[i],
				dns_sa_len(&srv->resolvers[i]), 0) != 0)
			dns_log(srv, 0, "evdns refused resolver %s",
			     dns_sa_str(&srv->resolvers[i], as, sizeof(as)));
	}
	return 0;
}

