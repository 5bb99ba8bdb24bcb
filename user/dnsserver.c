/* The built-in DNS server (see dnsserver.h): FakeIP answers from the pool,
 * everything else forwarded to the real resolvers, names resolved for the
 * proxy through evdns.  All of it on the caller's event loop. */
#include "dnsserver.h"

#include "dns.h"
#include "fakeip.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

struct dns_server {
	struct event_base *base;
	struct fakeip_pool *pool;          /* NULL: FakeIP disabled */
	char **exclude;                    /* normalised suffixes */
	size_t n_exclude;
	struct sockaddr_storage *resolvers;
	size_t n_resolvers;
	char *store_path;
	unsigned ttl, timeout_ms, attempt_ms;
	size_t max_pending, n_pending;
	uint32_t mark;
	int verbose, mark_warned;
	struct evdns_base *evdns;
	struct event *save_timer;
	struct dns_pending *pending;       /* forwards in flight */
	struct dns_resolving *resolving;   /* resolves not yet delivered */
	struct dns_stats st;
	const char *reply_err;             /* see dns_server_reply_error */
	char errbuf[400];
	time_t warned_at;                  /* failure warnings: one a second */
	unsigned long warn_suppressed;
	uint8_t rxbuf[DNS_MSG_MAX + 1];
};

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
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char msg[320];
	char name[];
};

static void dlog(const struct dns_server *srv, int debug, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void dlog(const struct dns_server *srv, int debug, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (debug && !srv->verbose && slog_level < SLOG_DEBUG)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (debug && slog_level < SLOG_DEBUG) /* cfg->verbose alone */
		fprintf(stderr, "sproxy-bpf: debug: dns: %s\n", buf);
	else
		slog(debug ? SLOG_DEBUG : SLOG_WARN, "dns: %s", buf);
}

/* Failures every query can hit (a dead resolver) would flood the log:
 * one line a second, with a count of the ones left out. */
static void warn_limited(struct dns_server *srv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void warn_limited(struct dns_server *srv, const char *fmt, ...)
{
	struct timespec now;
	char buf[800];
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (srv->warned_at && now.tv_sec == srv->warned_at) {
		srv->warn_suppressed++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (srv->warn_suppressed)
		dlog(srv, 0, "%s (and %lu more like it)", buf,
		     srv->warn_suppressed);
	else
		dlog(srv, 0, "%s", buf);
	srv->warned_at = now.tv_sec;
	srv->warn_suppressed = 0;
}

static const char *sa_str(const struct sockaddr_storage *ss, char *buf,
			  size_t cap)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)ss;
		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		snprintf(buf, cap, "%s:%u", a, ntohs(s->sin_port));
	} else {
		const struct sockaddr_in6 *s = (const void *)ss;
		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
		snprintf(buf, cap, "[%s]:%u", a, ntohs(s->sin6_port));
	}
	return buf;
}

static socklen_t sa_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
					: sizeof(struct sockaddr_in6);
}

static void set_mark(struct dns_server *srv, int fd)
{
	if (!srv->mark)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &srv->mark,
		       sizeof(srv->mark)) == 0)
		return;
	/* Once loudly, then only in verbose mode: it fails for every
	 * socket alike (missing CAP_NET_ADMIN). */
	dlog(srv, srv->mark_warned++ > 0, "cannot set SO_MARK 0x%x on a "
	     "resolver socket: %s; its packets may be captured again",
	     srv->mark, strerror(errno));
}

/* ---- store ---- */

static void save_store(struct dns_server *srv)
{
	char err[512];

	if (!srv->pool || !srv->store_path || !fakeip_dirty(srv->pool))
		return;
	if (fakeip_save(srv->pool, srv->store_path, err, sizeof(err)) < 0) {
		srv->st.store_errors++;
		dlog(srv, 0, "%s; FakeIP mappings not persisted", err);
		return;
	}
	srv->st.store_saves++;
	fakeip_mark_clean(srv->pool);
}

static void save_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	save_store(arg);
}

/* At most one save per second, whatever the rate of new names. */
static void schedule_save(struct dns_server *srv)
{
	struct timeval tv = { 1, 0 };

	if (srv->store_path && fakeip_dirty(srv->pool) &&
	    !evtimer_pending(srv->save_timer, NULL))
		evtimer_add(srv->save_timer, &tv);
}

/* ---- replies ---- */

/* Every reply goes through here: error (NULL for a good answer) is what
 * dns_server_reply_error returns during cb.  srv may be gone after cb. */
static void set_reply_error(struct dns_server *srv, const char *error)
{
	srv->reply_err = NULL;
	if (error) {
		snprintf(srv->errbuf, sizeof(srv->errbuf), "%s", error);
		srv->reply_err = srv->errbuf;
	}
}

static void deliver(struct dns_server *srv, dns_reply_cb cb, void *arg,
		    const uint8_t *msg, size_t len, const char *error)
{
	set_reply_error(srv, error);
	cb(msg, len, arg);
}

static void reply_error(struct dns_server *srv, const struct dns_query *q,
			int rcode, dns_reply_cb cb, void *arg, const char *error)
{
	uint8_t buf[DNS_HDR_LEN + DNS_NAME_WIRE_MAX + 4];
	ssize_t n = dns_build_error(q, rcode, buf, sizeof(buf));

	if (rcode == DNS_RCODE_SERVFAIL)
		srv->st.servfail++;
	if (n < 0)
		deliver(srv, cb, arg, NULL, 0, error ? error : "cannot answer");
	else
		deliver(srv, cb, arg, buf, (size_t)n, error);
}

const char *dns_server_reply_error(const struct dns_server *srv)
{
	return srv->reply_err;
}

/* ---- forwarding ---- */

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
	}
	/* error may live in p (p->why) */
	set_reply_error(srv, copy || error ? error : "out of memory");
	pending_destroy(p);
	cb(copy, copy ? len : 0, arg);
	free(copy);
}

static void finish_servfail(struct dns_pending *p, const char *error)
{
	uint8_t buf[DNS_HDR_LEN + DNS_NAME_WIRE_MAX + 4];
	ssize_t n = dns_build_error(&p->q, DNS_RCODE_SERVFAIL, buf, sizeof(buf));
	char tb[16];

	p->srv->st.servfail++;
	warn_limited(p->srv, "%s %s: %s; answered SERVFAIL", p->q.qname,
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
		p->srv->st.forward_ok++;
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
	dlog(p->srv, 1, "%s: %s", p->q.qname, p->why);
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

	sa_str(p->cur, as, sizeof(as));
	if (!via_tcp && (flags & DNS_FLAG_TC)) {
		srv->st.tcp_retries++;
		keep_fallback(p, msg, len, 1);
		close_attempt(p);
		dlog(srv, 1, "%s: truncated answer from %s, retrying over TCP",
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
		srv->st.forward_ok++;
		finish(p, msg, len, p->why);
		return 1;
	}
	srv->st.forward_ok++;
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
		set_why(p, "%s: %s", sa_str(p->cur, as, sizeof(as)),
			strerror(errno));
		try_next(p);
		return;
	}
	if (dns_check_response(srv->rxbuf, (size_t)n, p->up_id, &p->q,
			       &flags) < 0) {
		dlog(srv, 1, "%s: ignored %zd bytes from %s: not our answer",
		     p->q.qname, n, sa_str(p->cur, as, sizeof(as)));
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
	set_mark(srv, p->fd);
	if (connect(p->fd, (const struct sockaddr *)p->cur, sa_len(p->cur)) < 0 ||
	    send(p->fd, p->query, p->len, 0) != (ssize_t)p->len)
		goto fail;
	p->io = event_new(srv->base, p->fd, EV_READ | EV_PERSIST, udp_read_cb, p);
	if (!p->io || event_add(p->io, NULL) < 0 ||
	    evtimer_add(p->attempt_timer, &tv) < 0)
		goto fail;
	return 0;
fail:
	set_why(p, "cannot query %s: %s", sa_str(p->cur, as, sizeof(as)),
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
			sa_str(p->cur, as, sizeof(as)));
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
	set_why(p, "%s over TCP: %s", sa_str(p->cur, as, sizeof(as)),
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
	set_mark(srv, fd);
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
				       (int)sa_len(p->cur)) < 0 ||
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
		sa_str(p->cur, as, sizeof(as)), p->srv->attempt_ms);
	try_next(p);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_pending *p = arg;

	(void)fd;
	(void)what;
	if (!p->why[0]) {
		char as[80];
		set_why(p, "%s: no answer", sa_str(p->cur, as, sizeof(as)));
	}
	finish_fallback(p, 1);
}

static struct dns_pending *forward(struct dns_server *srv,
				   const struct dns_query *q,
				   const uint8_t *query, size_t len, int tcp,
				   dns_reply_cb cb, void *arg)
{
	struct timeval tv = { srv->timeout_ms / 1000,
			      (srv->timeout_ms % 1000) * 1000 };
	struct dns_pending *p;

	if (srv->n_resolvers == 0) {
		reply_error(srv, q, DNS_RCODE_SERVFAIL, cb, arg,
			    "no resolver configured");
		return NULL;
	}
	if (srv->n_pending >= srv->max_pending) {
		srv->st.overload++;
		warn_limited(srv, "%zu queries already waiting for resolvers "
			     "(the limit); answering SERVFAIL", srv->n_pending);
		reply_error(srv, q, DNS_RCODE_SERVFAIL, cb, arg,
			    "too many queries waiting for resolvers");
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->query = malloc(len))) {
		free(p);
		deliver(srv, cb, arg, NULL, 0, "out of memory");
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
		deliver(srv, cb, arg, NULL, 0, "out of memory");
		return NULL;
	}
	p->next = srv->pending;
	if (p->next)
		p->next->prev = p;
	srv->pending = p;
	srv->n_pending++;
	srv->st.forwarded++;
	return try_next(p) ? NULL : p;
}

void dns_pending_cancel(struct dns_pending *p)
{
	if (!p)
		return;
	pending_unlink(p);
	pending_destroy(p);
}

/* ---- FakeIP answers ---- */

static int under(const char *name, const char *suffix)
{
	size_t nl = strlen(name), sl = strlen(suffix);

	if (nl < sl || strcasecmp(name + nl - sl, suffix) != 0)
		return 0;
	return nl == sl || name[nl - sl - 1] == '.';
}

/* Names that get real answers: see dnsserver.h. */
static int wants_real(const struct dns_server *srv, const char *name)
{
	if (!name[0] || strchr(name, '\\') || dns_name_is_ip_literal(name) ||
	    under(name, "arpa") || under(name, "localhost"))
		return 1;
	for (size_t i = 0; i < srv->n_exclude; i++)
		if (under(name, srv->exclude[i]))
			return 1;
	return 0;
}

/* Answers A/AAAA from the pool: 1 when answered. */
static int answer_fake(struct dns_server *srv, const struct dns_query *q,
		       dns_reply_cb cb, void *arg)
{
	struct in_addr a4;
	struct in6_addr a6;
	uint8_t buf[DNS_HDR_LEN + DNS_NAME_WIRE_MAX + 4 + 12 + 16];
	char as[INET6_ADDRSTRLEN];

	if (wants_real(srv, q->qname) ||
	    fakeip_assign(srv->pool, q->qname, &a4, &a6) < 0)
		return 0;
	schedule_save(srv);
	ssize_t n = q->qtype == DNS_TYPE_A
		? dns_build_addr_answer(q, &a4, 4, srv->ttl, buf, sizeof(buf))
		: dns_build_addr_answer(q, &a6, 16, srv->ttl, buf, sizeof(buf));
	if (n < 0)
		return 0;
	srv->st.fake++;
	if (srv->verbose)
		dlog(srv, 1, "%s %s -> %s (fake)", q->qtype == DNS_TYPE_A ?
		     "A" : "AAAA", q->qname, q->qtype == DNS_TYPE_A ?
		     inet_ntop(AF_INET, &a4, as, sizeof(as)) :
		     inet_ntop(AF_INET6, &a6, as, sizeof(as)));
	deliver(srv, cb, arg, buf, (size_t)n, NULL);
	return 1;
}

/* PTR for an address in a fake range: 1 when answered. */
static int answer_ptr(struct dns_server *srv, const struct dns_query *q,
		      dns_reply_cb cb, void *arg)
{
	union { struct in_addr a4; struct in6_addr a6; } addr;
	uint8_t buf[DNS_HDR_LEN + 2 * DNS_NAME_WIRE_MAX + 4 + 12];
	const char *name;
	int af = dns_parse_ptr_name(q->qname, &addr);

	if (af == AF_INET && fakeip_contains4(srv->pool, &addr.a4))
		name = fakeip_lookup4(srv->pool, &addr.a4);
	else if (af == AF_INET6 && fakeip_contains6(srv->pool, &addr.a6))
		name = fakeip_lookup6(srv->pool, &addr.a6);
	else
		return 0;
	ssize_t n = name ? dns_build_ptr_answer(q, name, srv->ttl, buf,
						  sizeof(buf)) : -1;
	dlog(srv, 1, "PTR %s -> %s (fake)", q->qname, name ? name : "NXDOMAIN");
	if (n < 0) {
		reply_error(srv, q, DNS_RCODE_NXDOMAIN, cb, arg, NULL);
		return 1;
	}
	srv->st.ptr++;
	deliver(srv, cb, arg, buf, (size_t)n, NULL);
	return 1;
}

struct dns_pending *dns_server_query(struct dns_server *srv,
				     const uint8_t *query, size_t len,
				     int tcp, dns_reply_cb cb, void *arg)
{
	struct dns_query q;
	const char *why = "";
	char tb[16], err[128];
	int r;

	srv->st.queries++;
	r = dns_parse_query(query, len, &q, &why);
	if (r < 0) {
		srv->st.dropped++;
		snprintf(err, sizeof(err), "malformed query (%zu bytes): %s",
			 len, why);
		dlog(srv, 1, "%s; dropped", err);
		deliver(srv, cb, arg, NULL, 0, err);
		return NULL;
	}
	if (r != DNS_RCODE_NOERROR) {
		srv->st.formerr++;
		snprintf(err, sizeof(err), "%s query (%zu bytes): %s",
			 r == DNS_RCODE_NOTIMP ? "unsupported" : "malformed",
			 len, why);
		dlog(srv, 1, "%s; answered %s", err,
		     r == DNS_RCODE_NOTIMP ? "NOTIMP" : "FORMERR");
		reply_error(srv, &q, r, cb, arg, err);
		return NULL;
	}
	if (srv->pool && q.qclass == DNS_CLASS_IN) {
		if ((q.qtype == DNS_TYPE_A || q.qtype == DNS_TYPE_AAAA) &&
		    answer_fake(srv, &q, cb, arg))
			return NULL;
		if (q.qtype == DNS_TYPE_PTR && answer_ptr(srv, &q, cb, arg))
			return NULL;
	}
	dlog(srv, 1, "%s %s -> forwarded (%s)",
	     dns_type_name(q.qtype, tb, sizeof(tb)), q.qname, tcp ? "TCP" : "UDP");
	return forward(srv, &q, query, len, tcp, cb, arg);
}

const char *dns_server_fake_name(struct dns_server *srv,
				 const struct sockaddr *addr,
				 int *in_fake_range)
{
	struct in_addr a4;
	const struct in6_addr *a6 = NULL;
	int in = 0;
	const char *name = NULL;

	if (srv->pool && addr->sa_family == AF_INET) {
		a4 = ((const struct sockaddr_in *)(const void *)addr)->sin_addr;
	} else if (srv->pool && addr->sa_family == AF_INET6) {
		a6 = &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			memcpy(&a4, &a6->s6_addr[12], 4);
			a6 = NULL;
		}
	} else {
		goto out;
	}
	if (a6) {
		in = fakeip_contains6(srv->pool, a6);
		name = in ? fakeip_lookup6(srv->pool, a6) : NULL;
	} else {
		in = fakeip_contains4(srv->pool, &a4);
		name = in ? fakeip_lookup4(srv->pool, &a4) : NULL;
	}
out:
	if (in_fake_range)
		*in_fake_range = in;
	return name;
}

/* ---- resolving for the proxy (evdns) ---- */

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
	if (r->err) {
		srv->st.resolve_fail++;
		dlog(srv, 1, "%s", r->msg);
	}
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
		if (!pick || (pick->ai_family != AF_INET &&
			      ai->ai_family == AF_INET))
			pick = ai;
	}
	if (result != 0) {
		r->err = map_gai_error(result, &what);
		snprintf(r->msg, sizeof(r->msg), "cannot resolve %s: %s",
			 r->name, what);
	} else if (!pick || pick->ai_addrlen > sizeof(r->addr)) {
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
	srv->st.resolves++;

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

/* ---- set-up ---- */

static int setup_evdns(struct dns_server *srv)
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
				sa_len(&srv->resolvers[i]), 0) != 0)
			dlog(srv, 0, "evdns refused resolver %s",
			     sa_str(&srv->resolvers[i], as, sizeof(as)));
	}
	return 0;
}

/* "lan", ".lan", "*.lan", "+.lan", "lan." -> "lan" (lowercase). */
static char *normalize_suffix(const char *s)
{
	while (*s == '*' || *s == '+' || *s == '.')
		s++;
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0)
		return NULL;
	char *out = strndup(s, n);
	for (char *c = out; c && *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c + 32);
	return out;
}

static int copy_config(struct dns_server *srv, const struct dns_config *cfg,
		       char *err, size_t errlen)
{
	srv->ttl = cfg->ttl ? cfg->ttl : DNS_DEFAULT_TTL;
	srv->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DNS_DEFAULT_TIMEOUT_MS;
	srv->attempt_ms = cfg->attempt_timeout_ms ? cfg->attempt_timeout_ms
						  : DNS_DEFAULT_ATTEMPT_MS;
	if (srv->attempt_ms > srv->timeout_ms)
		srv->attempt_ms = srv->timeout_ms;
	srv->max_pending = cfg->max_pending ? cfg->max_pending
					    : DNS_DEFAULT_MAX_PENDING;
	srv->mark = cfg->mark;
	srv->verbose = cfg->verbose;
	if (cfg->n_resolvers) {
		srv->resolvers = calloc(cfg->n_resolvers, sizeof(*srv->resolvers));
		if (!srv->resolvers)
			goto nomem;
	}
	for (size_t i = 0; i < cfg->n_resolvers; i++) {
		struct sockaddr_storage *ss = &srv->resolvers[srv->n_resolvers];
		*ss = cfg->resolvers[i];
		if (ss->ss_family == AF_INET) {
			struct sockaddr_in *s = (void *)ss;
			if (!s->sin_port)
				s->sin_port = htons(53);
		} else if (ss->ss_family == AF_INET6) {
			struct sockaddr_in6 *s = (void *)ss;
			if (!s->sin6_port)
				s->sin6_port = htons(53);
		} else {
			snprintf(err, errlen, "resolver %zu: not an IPv4 or "
				 "IPv6 address", i + 1);
			return -1;
		}
		srv->n_resolvers++;
	}
	if (cfg->n_exclude) {
		srv->exclude = calloc(cfg->n_exclude, sizeof(*srv->exclude));
		if (!srv->exclude)
			goto nomem;
	}
	for (size_t i = 0; i < cfg->n_exclude; i++) {
		char *s = cfg->exclude[i] ? normalize_suffix(cfg->exclude[i]) : NULL;
		if (s)
			srv->exclude[srv->n_exclude++] = s;
	}
	if (cfg->store_path && !(srv->store_path = strdup(cfg->store_path)))
		goto nomem;
	return 0;
nomem:
	snprintf(err, errlen, "DNS server: out of memory");
	return -1;
}

struct dns_server *dns_server_new(struct event_base *base,
				  const struct dns_config *cfg, char *err,
				  size_t errlen)
{
	struct dns_server *srv = calloc(1, sizeof(*srv));
	char lerr[512];

	if (!srv) {
		snprintf(err, errlen, "DNS server: out of memory");
		return NULL;
	}
	srv->base = base;
	if (copy_config(srv, cfg, err, errlen) < 0)
		goto fail;
	if (cfg->fakeip_enabled) {
		srv->pool = fakeip_new(cfg->v4_range, cfg->v6_range,
				       cfg->pool_size, err, errlen);
		if (!srv->pool)
			goto fail;
	}
	if (setup_evdns(srv) < 0) {
		snprintf(err, errlen, "cannot create the evdns resolver");
		goto fail;
	}
	srv->save_timer = evtimer_new(base, save_timer_cb, srv);
	if (!srv->save_timer) {
		snprintf(err, errlen, "DNS server: out of memory");
		goto fail;
	}
	if (srv->pool && srv->store_path) {
		size_t skipped;
		int n = fakeip_load_ex(srv->pool, srv->store_path, &skipped,
				       lerr, sizeof(lerr));
		if (n < 0)
			dlog(srv, 0, "%s; starting with an empty FakeIP pool", lerr);
		else
			dlog(srv, 1, "loaded %d FakeIP mappings from %s "
			     "(%zu lines skipped)", n, srv->store_path, skipped);
		schedule_save(srv);
	}
	if (srv->n_resolvers == 0)
		dlog(srv, 0, "no resolvers configured: queries that need a "
		     "real answer get SERVFAIL");
	return srv;
fail:
	dns_server_free(srv);
	return NULL;
}

void dns_server_free(struct dns_server *srv)
{
	if (!srv)
		return;
	while (srv->pending)
		dns_pending_cancel(srv->pending);
	while (srv->resolving)
		dns_resolving_cancel(srv->resolving);
	save_store(srv);
	if (srv->evdns)
		evdns_base_free(srv->evdns, 1);
	if (srv->save_timer)
		event_free(srv->save_timer);
	fakeip_free(srv->pool);
	for (size_t i = 0; i < srv->n_exclude; i++)
		free(srv->exclude[i]);
	free(srv->exclude);
	free(srv->resolvers);
	free(srv->store_path);
	free(srv);
}

void dns_server_stats(const struct dns_server *srv, struct dns_stats *out)
{
	*out = srv->st;
	out->fake_mapped = srv->pool ? fakeip_count(srv->pool) : 0;
}

size_t dns_resolv_conf(const char *path, struct sockaddr_storage *out,
		       size_t max)
{
	char line[512];
	size_t n = 0;
	FILE *f = fopen(path ? path : "/etc/resolv.conf", "re");

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		char *save, *kw = strtok_r(line, " \t\r\n", &save);
		char *addr = kw ? strtok_r(NULL, " \t\r\n", &save) : NULL;
		struct addrinfo hints = { .ai_flags = AI_NUMERICHOST,
					  .ai_socktype = SOCK_DGRAM }, *res;
		if (!addr || strcmp(kw, "nameserver") != 0)
			continue;
		/* numeric only: never a lookup; handles fe80::1%eth0 */
		if (getaddrinfo(addr, "53", &hints, &res) != 0)
			continue;
		if (res->ai_addrlen <= sizeof(out[n])) {
			memset(&out[n], 0, sizeof(out[n]));
			memcpy(&out[n], res->ai_addr, res->ai_addrlen);
			n++;
		}
		freeaddrinfo(res);
	}
	fclose(f);
	return n;
}
