/* Forwarding (see dnsserver.h): a query that needs a real answer goes to
 * the resolvers in turn, over UDP first and over TCP when the answer is
 * truncated, each try bounded, the whole bounded; the best answer kept
 * is given when nothing better comes. */
#include "dnsserver_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

struct dns_pending {
	struct dns_server *srv;
	struct dns_pending *prev, *next;
	dns_reply_cb cb;
	void *arg;
	struct dns_query q;
	uint8_t *query;                    /* as sent upstream (our ID) */
	size_t len;
	uint16_t up_id;
	int client_tcp;
	size_t attempts, max_attempts;
	const struct sockaddr_storage *cur; /* resolver of this attempt */
	int fd;                            /* UDP attempt, or -1 */
	struct event *io;
	struct bufferevent *bev;           /* TCP attempt */
	struct event *attempt_timer, *deadline;
	uint8_t *fallback;                 /* a truncated or failed answer */
	size_t fallback_len;               /* to give when nothing better */
	int fallback_tc;
	char why[200];                     /* what went wrong last */
};

static int try_next(struct dns_pending *p);

static void close_attempt(struct dns_pending *p)
{
	if (p->io) {
		event_free(p->io);
		p->io = NULL;
	}
	if (p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
	}
	if (p->bev) {
		bufferevent_free(p->bev);
		p->bev = NULL;
	}
	if (p->attempt_timer)
		evtimer_del(p->attempt_timer);
}

static void pending_unlink(struct dns_pending *p)
{
	struct dns_server *srv = p->srv;

	if (p->prev)
		p->prev->next = p->next;
	else
		srv->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	srv->n_pending--;
}

static void pending_destroy(struct dns_pending *p)
{
	close_attempt(p);
	if (p->attempt_timer)
		event_free(p->attempt_timer);
	if (p->deadline)
		event_free(p->deadline);
	free(p->fallback);
	free(p->query);
	free(p);
}

/* Ends p with msg (ID set to the client's); p is gone afterwards. */
static void finish(struct dns_pending *p, const uint8_t *msg, size_t len,
		   const char *error)
{
	struct dns_server *srv = p->srv;
	dns_reply_cb cb = p->cb;
	void *arg = p->arg;
	uint8_t *copy = len ? malloc(len) : NULL;

	pending_unlink(p);
	if (copy) {
		memcpy(copy, msg, len);
		dns_set_id(copy, p->q.id);
		/* Behind FakeIP, addresses come from A and AAAA only. */
		if (srv->pool) {
			int n = dns_hide_svc_hints(copy, len);

			if (n)
				dns_log(srv, 1, "%s: %d address hint%s taken out of the "
					"SVCB/HTTPS answer (FakeIP)", p->q.qname, n,
					n == 1 ? "" : "s");
		}
	}
	/* error may live in p (p->why) */
	dns_set_reply_error(srv, copy || error ? error : "out of memory");
	pending_destroy(p);
	cb(copy, copy ? len : 0, arg);
	free(copy);
}

static void finish_servfail(struct dns_pending *p, const char *error)
{
	uint8_t buf[DNS_HDR_LEN + DNS_NAME_WIRE_MAX + 4];
	ssize_t n = dns_build_error(&p->q, DNS_RCODE_SERVFAIL, buf, sizeof(buf));
	char tb[16];

	dns_warn_limited(p->srv, "%s %s: %s; answered SERVFAIL", p->q.qname,
		     dns_type_name(p->q.qtype, tb, sizeof(tb)), error);
	finish(p, buf, n < 0 ? 0 : (size_t)n, error);
}

/* Nothing more to try: the best answer we kept, else SERVFAIL. */
static void finish_fallback(struct dns_pending *p, int timed_out)
{
	char error[400];

	if (p->fallback && !(p->fallback_tc && p->client_tcp)) {
		int rcode = p->fallback[3] & 0xf;
		int failed = rcode == DNS_RCODE_SERVFAIL ||
			     rcode == DNS_RCODE_REFUSED;
		snprintf(error, sizeof(error), "every resolver failed (last: %s)",
			 p->why);
		finish(p, p->fallback, p->fallback_len, failed ? error : NULL);
		return;
	}
	if (timed_out)
		snprintf(error, sizeof(error), "no usable answer within %u ms "
			 "(last: %s)", p->srv->timeout_ms, p->why);
	else
		snprintf(error, sizeof(error), "every resolver failed (last: %s)",
			 p->why);
	finish_servfail(p, error);
}

static void set_why(struct dns_pending *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_why(struct dns_pending *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->why, sizeof(p->why), fmt, ap);
	va_end(ap);
	dns_log(p->srv, 1, "%s: %s", p->q.qname, p->why);
}

static void keep_fallback(struct dns_pending *p, const uint8_t *msg,
			  size_t len, int tc)
{
	uint8_t *copy = malloc(len);

	if (!copy)
		return;
	memcpy(copy, msg, len);
	free(p->fallback);
	p->fallback = copy;
	p->fallback_len = len;
	p->fallback_tc = tc;
}

static int tcp_start(struct dns_pending *p);

static const char *rcode_name(int rcode)
{
	return rcode == DNS_RCODE_SERVFAIL ? "SERVFAIL" :
	       rcode == DNS_RCODE_REFUSED ? "REFUSED" : "an error";
}

/* A resolver's answer that matches our question.  Returns 1 when p is
 * finished (freed). */
static int handle_answer(struct dns_pending *p, const uint8_t *msg,
			 size_t len, uint16_t flags, int via_tcp)
{
	struct dns_server *srv = p->srv;
	int rcode = DNS_RCODE(flags);
	char as[80];

	dns_sa_str(p->cur, as, sizeof(as));
	if (!via_tcp && (flags & DNS_FLAG_TC)) {
		keep_fallback(p, msg, len, 1);
		close_attempt(p);
		dns_log(srv, 1, "%s: truncated answer from %s, retrying over TCP",
		     p->q.qname, as);
		if (tcp_start(p) == 0)
			return 0;
		set_why(p, "%s: cannot connect over TCP: %s", as,
			strerror(errno));
		return try_next(p);
	}
	if (rcode == DNS_RCODE_SERVFAIL || rcode == DNS_RCODE_REFUSED) {
		set_why(p, "%s answered %s", as, rcode_name(rcode));
		/* Another resolver may know better; keep this answer as a
		 * last resort. */
		if (p->attempts < srv->n_resolvers) {
			keep_fallback(p, msg, len, 0);
			return try_next(p);
		}
		finish(p, msg, len, p->why);
		return 1;
	}
	/* A full answer too large for a UDP client: the truncated one tells
	 * it to come back over TCP. */
	if (via_tcp && !p->client_tcp && len > p->q.udp_size &&
	    p->fallback && p->fallback_tc)
		finish(p, p->fallback, p->fallback_len, NULL);
	else
		finish(p, msg, len, NULL);
	return 1;
}

static void udp_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_pending *p = arg;
	struct dns_server *srv = p->srv;
	uint16_t flags;
	char as[80];

	(void)what;
	ssize_t n = recv(fd, srv->rxbuf, sizeof(srv->rxbuf), 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		set_why(p, "%s: %s", dns_sa_str(p->cur, as, sizeof(as)),
			strerror(errno));
		try_next(p);
		return;
	}
	if (dns_check_response(srv->rxbuf, (size_t)n, p->up_id, &p->q,
			       &flags) < 0) {
		dns_log(srv, 1, "%s: ignored %zd bytes from %s: not our answer",
		     p->q.qname, n, dns_sa_str(p->cur, as, sizeof(as)));
		return;
	}
	handle_answer(p, srv->rxbuf, (size_t)n, flags, 0);
}

static int udp_start(struct dns_pending *p)
{
	struct dns_server *srv = p->srv;
	struct timeval tv = { srv->attempt_ms / 1000,
			      (srv->attempt_ms % 1000) * 1000 };
	char as[80];

	p->fd = socket(p->cur->ss_family,
		       SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0)
		goto fail;
	dns_set_mark(srv, p->fd);
	if (connect(p->fd, (const struct sockaddr *)p->cur, dns_sa_len(p->cur)) < 0 ||
	    send(p->fd, p->query, p->len, 0) != (ssize_t)p->len)
		goto fail;
	p->io = event_new(srv->base, p->fd, EV_READ | EV_PERSIST, udp_read_cb, p);
	if (!p->io || event_add(p->io, NULL) < 0 ||
	    evtimer_add(p->attempt_timer, &tv) < 0)
		goto fail;
	return 0;
fail:
	set_why(p, "cannot query %s: %s", dns_sa_str(p->cur, as, sizeof(as)),
		strerror(errno));
	close_attempt(p);
	return -1;
}

static void tcp_read_cb(struct bufferevent *bev, void *arg)
{
	struct dns_pending *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint8_t hdr[2];
	uint16_t flags;
	char as[80];

	if (evbuffer_get_length(in) < 2)
		return;
	evbuffer_copyout(in, hdr, 2);
	size_t n = (size_t)hdr[0] << 8 | hdr[1];
	if (evbuffer_get_length(in) < 2 + n)
		return;
	evbuffer_drain(in, 2);
	uint8_t *msg = malloc(n ? n : 1);
	if (!msg || evbuffer_remove(in, msg, n) != (int)n ||
	    dns_check_response(msg, n, p->up_id, &p->q, &flags) < 0) {
		set_why(p, "%s: bad answer over TCP",
			dns_sa_str(p->cur, as, sizeof(as)));
		free(msg);
		try_next(p);
		return;
	}
	handle_answer(p, msg, n, flags, 1);
	free(msg);
}

static void tcp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct dns_pending *p = arg;
	char as[80];

	(void)bev;
	if (!(what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)))
		return;
	set_why(p, "%s over TCP: %s", dns_sa_str(p->cur, as, sizeof(as)),
		(what & BEV_EVENT_EOF) ? "closed before answering" :
		evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	try_next(p);
}

static int tcp_start(struct dns_pending *p)
{
	struct dns_server *srv = p->srv;
	struct timeval tv = { srv->attempt_ms / 1000,
			      (srv->attempt_ms % 1000) * 1000 };
	uint8_t hdr[2] = { (uint8_t)(p->len >> 8), (uint8_t)p->len };
	int fd;

	fd = socket(p->cur->ss_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	dns_set_mark(srv, fd);
	p->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!p->bev) {
		close(fd);
		return -1;
	}
	bufferevent_setcb(p->bev, tcp_read_cb, NULL, tcp_event_cb, p);
	if (bufferevent_write(p->bev, hdr, 2) < 0 ||
	    bufferevent_write(p->bev, p->query, p->len) < 0 ||
	    bufferevent_enable(p->bev, EV_READ | EV_WRITE) < 0 ||
	    bufferevent_socket_connect(p->bev, (const struct sockaddr *)p->cur,
				       (int)dns_sa_len(p->cur)) < 0 ||
	    evtimer_add(p->attempt_timer, &tv) < 0) {
		close_attempt(p);
		return -1;
	}
	return 0;
}

/* Closes the current attempt and starts the next one; when none is left
 * or none can start, answers with what we have.  1 when p is finished. */
static int try_next(struct dns_pending *p)
{
	struct dns_server *srv = p->srv;

	close_attempt(p);
	while (p->attempts < p->max_attempts) {
		p->cur = &srv->resolvers[p->attempts % srv->n_resolvers];
		p->attempts++;
		if (udp_start(p) == 0)
			return 0;
	}
	finish_fallback(p, 0);
	return 1;
}

static void attempt_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_pending *p = arg;
	char as[80];

	(void)fd;
	(void)what;
	set_why(p, "%s: no answer within %u ms",
		dns_sa_str(p->cur, as, sizeof(as)), p->srv->attempt_ms);
	try_next(p);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_pending *p = arg;

	(void)fd;
	(void)what;
	if (!p->why[0]) {
		char as[80];
		set_why(p, "%s: no answer", dns_sa_str(p->cur, as, sizeof(as)));
	}
	finish_fallback(p, 1);
}

struct dns_pending *dns_forward(struct dns_server *srv,
				   const struct dns_query *q,
				   const uint8_t *query, size_t len, int tcp,
				   dns_reply_cb cb, void *arg)
{
	struct timeval tv = { srv->timeout_ms / 1000,
			      (srv->timeout_ms % 1000) * 1000 };
	struct dns_pending *p;

	if (srv->n_resolvers == 0) {
		dns_reply_error(srv, q, DNS_RCODE_SERVFAIL, cb, arg,
			    "no resolver configured");
		return NULL;
	}
	if (srv->n_pending >= srv->max_pending) {
		dns_warn_limited(srv, "%zu queries already waiting for resolvers "
			     "(the limit); answering SERVFAIL", srv->n_pending);
		dns_reply_error(srv, q, DNS_RCODE_SERVFAIL, cb, arg,
			    "too many queries waiting for resolvers");
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->query = malloc(len))) {
		free(p);
		dns_deliver(srv, cb, arg, NULL, 0, "out of memory");
		return NULL;
	}
	p->srv = srv;
	p->cb = cb;
	p->arg = arg;
	p->q = *q;
	p->fd = -1;
	p->client_tcp = tcp;
	memcpy(p->query, query, len);
	p->len = len;
	/* Our own random ID upstream: a forged answer has to guess it. */
	evutil_secure_rng_get_bytes(&p->up_id, sizeof(p->up_id));
	dns_set_id(p->query, p->up_id);
	p->max_attempts = (srv->timeout_ms + srv->attempt_ms - 1) / srv->attempt_ms;
	if (p->max_attempts < srv->n_resolvers)
		p->max_attempts = srv->n_resolvers;
	p->attempt_timer = evtimer_new(srv->base, attempt_timeout_cb, p);
	p->deadline = evtimer_new(srv->base, deadline_cb, p);
	if (!p->attempt_timer || !p->deadline ||
	    evtimer_add(p->deadline, &tv) < 0) {
		pending_destroy(p);
		dns_deliver(srv, cb, arg, NULL, 0, "out of memory");
		return NULL;
	}
	p->next = srv->pending;
	if (p->next)
		p->next->prev = p;
	srv->pending = p;
	srv->n_pending++;
	return try_next(p) ? NULL : p;
}

void dns_pending_cancel(struct dns_pending *p)
{
	if (!p)
		return;
	pending_unlink(p);
	pending_destroy(p);
}
