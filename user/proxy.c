#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <bpf/bpf.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "addr.h"
#include "connector.h"
#include "daemon.h"
#include "dnsserver.h"
#include "dnstcp.h"
#include "http.h"
#include "tag.h"
#include "live.h"
#include "log.h"
#include "policyset.h"
#include "proxy.h"
#include "proxy_int.h"
#include "relay.h"
#include "sproxy.h"
#include "sproxy.skel.h"

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif

/* Families other than these two have no business here: left unknown. */
static void sa46_from_storage(union sa46 *a, const struct sockaddr_storage *ss)
{
	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET)
		memcpy(&a->in, ss, sizeof(a->in));
	else if (ss->ss_family == AF_INET6)
		memcpy(&a->in6, ss, sizeof(a->in6));
}

static double since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Sessions by the application socket's cookie, for the BPF side's word
 * that the application changed its socket options.  One daemon per
 * process: the table is the process's. */
#define COOKIE_BUCKETS 4096
static struct session *by_cookie[COOKIE_BUCKETS];

static void cookie_add(struct session *s)
{
	struct session **b = &by_cookie[s->cookie % COOKIE_BUCKETS];

	s->hnext = *b;
	*b = s;
}

static void cookie_del(struct session *s)
{
	struct session **p = &by_cookie[s->cookie % COOKIE_BUCKETS];

	while (*p && *p != s)
		p = &(*p)->hnext;
	if (*p)
		*p = s->hnext;
}

static struct session *cookie_find(uint64_t cookie)
{
	struct session *s = by_cookie[cookie % COOKIE_BUCKETS];

	while (s && s->cookie != cookie)
		s = s->hnext;
	return s;
}

static void session_link(struct session *s)
{
	s->next = s->pl->sessions;
	if (s->next)
		s->next->prev = s;
	s->pl->sessions = s;
}

static void session_unlink(struct session *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		s->pl->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	if (s->cookie)
		cookie_del(s);
}

/* Closing with SO_LINGER 0 sends a reset: the peer learns at once. */
static void close_reset(int fd)
{
	struct linger lg = { 1, 0 };

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* Ends a session: one log line, both sockets closed, with a reset when
 * anything went wrong (or the daemon stops mid-stream), so that neither
 * peer takes a cut stream for a complete one. */
void session_close(struct session *s, const char *result, const char *err, int reset)
{
	/* A relay on another loop stops there first: its counts are final. */
	if (s->relaying)
		relay_halt(&s->relay);
	struct conn_log c = {
		.proto = "tcp",
		.proc = s->have_proc ? &s->proc : NULL,
		.cgroup = s->have_proc ? daemon_cgroup_name(s->d, s->proc.cgroup_id) : NULL,
		.src = &s->src.sa,
		.dst = s->dst.sa.sa_family ? &s->dst.sa : NULL,
		.host = s->host,
		.sniffed = sniff_kind_name(s->sniffed),
		.rule = s->rule,
		.route = s->decided ? s->route : NULL,
		.via = s->via,
		.up = s->relay.up.bytes,
		.down = s->relay.down.bytes,
		.duration = since(&s->start),
		.result = result,
		.error = err,
		.capture = s->transparent ? "tproxy" : NULL,
		.netns = s->pl ? s->pl->netns_ino : 0,
	};

	connlog_write(&c);
	session_route_cancel(s);
	live_del(&s->live);
	if (s->creq)
		connector_cancel(s->creq);
	if (s->relaying)
		relay_free(&s->relay);
	/* Nothing uses the route's upstream now (the handshake is gone). */
	policyset_unref(s->ps);
	session_unlink(s);
	if (reset) {
		close_reset(s->cfd);
		close_reset(s->sfd);
	} else {
		close(s->cfd);
		if (s->sfd >= 0)
			close(s->sfd);
	}
	s->d->n_conns--;
	free(s->host);
	free(s);
}

void session_end(struct session *s, const char *result, const char *err)
{
	session_close(s, result, err, err != NULL);
}

/* The application's keepalive and user timeout, on the leg out: a server
 * that vanished is only noticed there, and the relay then fails, which
 * resets the application's leg. */
static void apply_sockopts(struct session *s)
{
	static const struct { uint32_t bit; int level, name; const char *what; } opts[] = {
		{ SPROXY_OPT_KEEPIDLE, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE" },
		{ SPROXY_OPT_KEEPINTVL, IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL" },
		{ SPROXY_OPT_KEEPCNT, IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT" },
		{ SPROXY_OPT_USER_TIMEOUT, IPPROTO_TCP, TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT" },
		{ SPROXY_OPT_KEEPALIVE, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE" },
	};
	struct sproxy_conn c;
	const struct sproxy_sockopts *o = &c.opts;
	char a[ADDR_STRLEN];

	/* The record keyed by the application socket's cookie holds the
	 * options as they are now (the 4-tuple's copy may be older): read
	 * when they are needed, not kept in every session.  No cookie, no
	 * record (TPROXY). */
	if (s->sfd < 0 || !s->cookie ||
	    bpf_map_lookup_elem(bpf_map__fd(s->d->bpf.skel->maps.conns), &s->cookie, &c) < 0 ||
	    !c.opts.set)
		return;
	const uint32_t vals[] = { o->keepidle, o->keepintvl, o->keepcnt, o->user_timeout,
				  o->keepalive };

	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		int v = (int)vals[i];

		if (!(o->set & opts[i].bit))
			continue;
		if (setsockopt(s->sfd, opts[i].level, opts[i].name, &v, sizeof(v)) < 0)
			log_debug("%s %d on the connection to %s: %s", opts[i].what, v,
				  addr_str(&s->dst.sa, a, sizeof(a)), strerror(errno));
	}
}

void proxy_sockopts_changed(struct daemon *d, uint64_t cookie)
{
	struct session *s = cookie ? cookie_find(cookie) : NULL;

	(void)d;
	if (!s)
		return;     /* not accepted yet: the connection out reads the record */
	apply_sockopts(s);
}

static void on_relay_done(struct relay *r, const char *err, void *arg)
{
	struct session *s = arg;

	(void)r;
	session_end(s, err ? "error" : "ok", err);
}

/* The relay's tagger for the next request: made from the process each
 * time, so that a connection between requests holds none. */
static struct http_tagger *new_tagger(void *arg)
{
	struct session *s = arg;
	char tag[TAG_BUF];

	tag_format(tag, sizeof(tag), s->d->opt->tag, s->proc.comm, s->proc.tgid,
		   s->proc.uid, s->proc.gid);
	return http_tagger_new(tag);
}

void session_connected(int fd, const char *errmsg, void *arg)
{
	struct session *s = arg;

	s->creq = NULL;
	if (fd < 0) {
		session_end(s, "error", errmsg);
		return;
	}
	s->sfd = fd;
	apply_sockopts(s);
	if (relay_start(&s->relay, s->d->base, s->cfd, s->sfd,
			s->have_proc && s->d->opt->tag,
			!s->d->opt->relay_copy, &s->d->limits, on_relay_done, s) < 0) {
		s->relaying = 1;
		session_end(s, "error", "out of memory");
		return;
	}
	s->relaying = 1;
}

static void use_record(struct session *s, const struct sproxy_conn *c)
{
	s->proc = c->proc;
	s->have_proc = 1;
	daemon_process_comm(&s->proc);
	s->cookie = c->cookie;
	if (s->cookie)
		cookie_add(s);
}

/* The record the BPF side keyed by this connection's 4-tuple: the process.
 * Read, not deleted: the BPF side deletes it when the connection ends, and
 * counts it until then (a full map refuses new connections). */
static int take_record(struct session *s, const struct sockaddr_storage *local)
{
	struct sproxy_tuple k;
	struct sproxy_conn c;

	memset(&k, 0, sizeof(k));
	/* The namespace the connection lives in: the listener's. */
	k.netns = s->pl->netns ? s->pl->netns : s->d->netns;
	addr_to_sproxy(&s->src.sa, &k.app);
	addr_to_sproxy((const struct sockaddr *)local, &k.proxy);
	if (bpf_map_lookup_elem(s->d->tuples_fd, &k, &c) < 0)
		return -1;
	use_record(s, &c);
	return 0;
}

static void refuse(struct session *s, const char *why)
{
	session_end(s, "refused", why);
}

/* Where the application was going: SO_ORIGINAL_DST, as any REDIRECT-style
 * proxy asks it, answered by the getsockopt hook, which checks that the
 * record is this very connection's (its ISN: user space cannot see it
 * without another call).  Asked with a buffer of struct sproxy_origdst's
 * size (larger than any address), the hook returns the whole record,
 * process and all; an older object, or a
 * kernel answer, returns the address only, and the process comes from the
 * record read by 4-tuple.  0, or -1 with err saying why the connection is
 * refused. */
static int original_destination(struct session *s, const struct sockaddr_storage *local,
				char *err, size_t errlen)
{
	int level = local->ss_family == AF_INET ? SOL_IP : SOL_IPV6;
	struct sockaddr_storage dst;
	struct sproxy_origdst x;
	socklen_t olen = sizeof(x);
	char a[ADDR_STRLEN];

	_Static_assert(sizeof(x) > sizeof(dst), "the whole record takes a larger buffer");
	if (getsockopt(s->cfd, level, SO_ORIGINAL_DST, &x, &olen) < 0) {
		if (errno == ENOENT)
			snprintf(err, errlen, "no original destination for %s: not "
				 "captured (a direct connection? a client outside the "
				 "cgroup or its netns? run 'sproxy-bpf doctor')",
				 addr_str(&s->src.sa, a, sizeof(a)));
		else
			snprintf(err, errlen, "SO_ORIGINAL_DST: %s (getsockopt hook not "
				 "attached, or another BPF program in the way? run "
				 "'sproxy-bpf doctor')", strerror(errno));
		return -1;
	}
	if (olen == sizeof(x) && x.magic == SPROXY_ORIGDST_MAGIC) {
		addr_from_sproxy(&x.rec.dst, &dst);
		sa46_from_storage(&s->dst, &dst);
		use_record(s, &x.rec);
		return 0;
	}
	memset(&dst, 0, sizeof(dst));
	memcpy(&dst, &x, olen < sizeof(dst) ? olen : sizeof(dst));
	addr_unmap(&dst);
	sa46_from_storage(&s->dst, &dst);
	if (take_record(s, local) < 0)
		log_debug("no process record for %s (aged out of the map?)",
			  addr_str(&s->src.sa, a, sizeof(a)));
	return 0;
}

/* Behind TPROXY the accepted socket keeps the address the client asked
 * for as its own; no record, no process.  A connection made to one of our
 * addresses on the listener's port came straight to the listener, not
 * through the rules: relaying it would connect to ourselves forever. */
static int tproxy_destination(struct session *s, const struct proxy_listener *pl,
			      const struct sockaddr_storage *local, char *err, size_t errlen)
{
	char a[ADDR_STRLEN];

	sa46_from_storage(&s->dst, local);
	if (addr_port((const struct sockaddr *)local) == addr_port((const struct sockaddr *)&pl->addr) &&
	    addr_is_ours((const struct sockaddr *)local)) {
		snprintf(err, errlen, "%s connected to the TPROXY listener %s itself, not "
			 "through the TPROXY rules (run 'sproxy-bpf doctor')",
			 addr_str(&s->src.sa, a, sizeof(a)),
			 addr_str((const struct sockaddr *)local, a, sizeof(a)));
		return -1;
	}
	return 0;
}

/* DNS goes to the built-in server; the rest through the policy. */
static void route(struct session *s)
{
	struct daemon *d = s->d;
	struct sockaddr_storage src, dst;

	if (addr_port(&s->dst.sa) == 53) {
		sa46_to_storage(&s->src, &src);
		sa46_to_storage(&s->dst, &dst);
		if (dnstcp_start(d, s->cfd, &s->proc, s->have_proc, &src, &dst) < 0) {
			refuse(s, "out of memory");
			return;
		}
		session_unlink(s);
		d->n_conns--;
		free(s);            /* the DNS session owns the socket now */
		return;
	}
	session_route(s);
}

static void on_accept(struct evconnlistener *lis, evutil_socket_t fd,
		      struct sockaddr *peer, int plen, void *arg)
{
	struct proxy_listener *pl = arg;
	struct sockaddr_storage local, src;
	socklen_t len = sizeof(local);
	struct session *s;
	char err[200];

	(void)lis;
	s = calloc(1, sizeof(*s));
	if (!s) {
		log_err("out of memory accepting a connection: reset");
		close_reset(fd);
		return;
	}
	s->d = pl->d;
	s->pl = pl;
	session_link(s);
	s->cfd = fd;
	s->sfd = -1;
	s->d->n_conns++;
	clock_gettime(CLOCK_MONOTONIC, &s->start);
	memset(&src, 0, sizeof(src));
	memcpy(&src, peer, (size_t)plen < sizeof(src) ? (size_t)plen : sizeof(src));
	addr_unmap(&src);
	sa46_from_storage(&s->src, &src);
	/* TCP_NODELAY comes from the listener. */
	if (!pl->wildcard) {
		local = pl->addr;
	} else if (getsockname(fd, (struct sockaddr *)&local, &len) < 0) {
		snprintf(err, sizeof(err), "getsockname: %s", strerror(errno));
		refuse(s, err);
		return;
	}
	addr_unmap(&local);
	s->transparent = pl->transparent;
	if (pl->transparent ? tproxy_destination(s, pl, &local, err, sizeof(err)) < 0
			    : original_destination(s, &local, err, sizeof(err)) < 0) {
		refuse(s, err);
		return;
	}
	route(s);
}

static void on_accept_error(struct evconnlistener *lis, void *arg)
{
	struct proxy_listener *pl = arg;
	int err = EVUTIL_SOCKET_ERROR();
	static time_t last;
	time_t now = time(NULL);

	struct timeval tv = { 0, 100 * 1000 };

	/* EMFILE and friends: keep serving what is open, stop accepting for a
	 * moment (the pending connection would wake us at once, forever), and
	 * say so once a second at most. */
	if (now != last)
		log_err("accept: %s (%llu connections open; raise the fd limit with "
			"ulimit -n)", strerror(err), (unsigned long long)pl->d->n_conns);
	last = now;
	evconnlistener_disable(lis);
	evtimer_add(pl->pause, &tv);
}

static void on_pause_end(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_listener *pl = arg;

	(void)fd;
	(void)what;
	evconnlistener_enable(pl->l);
}

/* The header budget ran out: this connection goes untagged.  Said once a
 * second at most, with how many more went the same way; relays on every
 * loop may call it. */
static void on_over_budget(struct relay *r, size_t held, void *arg)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	struct session *s = arg;
	const struct relay_limits *lim = &s->d->limits;
	static time_t last;
	static unsigned long more;
	time_t now = time(NULL);
	char a[ADDR_STRLEN], also[64];

	(void)r;
	pthread_mutex_lock(&mu);
	if (now == last) {
		more++;
		pthread_mutex_unlock(&mu);
		return;
	}
	last = now;
	snprintf(also, sizeof(also), " (and %lu more since the last such line)", more);
	log_warn("header budget of %zu KiB used up by unfinished request headers: a "
		 "request of %.16s (pid %u) to %s (%zu bytes so far) goes untagged%s; "
		 "raise --header-budget, or lower --header-timeout if slow clients "
		 "hold it", lim->header_budget / 1024, s->proc.comm, s->proc.tgid,
		 addr_str(&s->dst.sa, a, sizeof(a)), held,
		 more ? also : "");
	more = 0;
	pthread_mutex_unlock(&mu);
}

struct proxy_listener *proxy_listen(struct daemon *d, struct sockaddr_storage *addr,
				    char *err, size_t errlen)
{
	struct proxy_listener *pl = calloc(1, sizeof(*pl));
	socklen_t len = addr_len((struct sockaddr *)addr);
	char a[ADDR_STRLEN];
	int fd, one = 1;

	if (!pl) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pl->d = d;
	d->limits.header_timeout = d->opt->header_timeout;
	d->limits.idle_timeout = d->opt->idle_timeout;
	d->limits.header_budget = d->opt->header_budget;
	d->limits.over_budget = on_over_budget;
	d->limits.new_tagger = new_tagger;
	fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));   /* inherited */
	if (addr->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	daemon_mark(d, fd);
	if (bind(fd, (struct sockaddr *)addr, len) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
		close(fd);
		goto fail;
	}
	pl->addr = *addr;
	addr_unmap(&pl->addr);
	pl->wildcard = addr->ss_family == AF_INET
		? ((struct sockaddr_in *)addr)->sin_addr.s_addr == INADDR_ANY
		: IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)addr)->sin6_addr);
	/* Backlog 0: the socket listens already, with ours; -1 would have
	 * libevent listen again with 128. */
	pl->l = evconnlistener_new(d->base, on_accept, pl,
				   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (!pl->l) {
		close(fd);
		goto fail;
	}
	evconnlistener_set_error_cb(pl->l, on_accept_error);
	pl->pause = evtimer_new(d->base, on_pause_end, pl);
	if (!pl->pause) {
		evconnlistener_free(pl->l);
		free(pl);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	return pl;
fail:
	snprintf(err, errlen, "cannot listen on %s: %s",
		 addr_str((struct sockaddr *)addr, a, sizeof(a)), strerror(errno));
	free(pl);
	return NULL;
}

void proxy_listener_netns(struct proxy_listener *l, uint64_t cookie, uint64_t ino)
{
	l->netns = cookie;
	l->netns_ino = ino;
}

void proxy_listener_free(struct proxy_listener *l)
{
	if (!l)
		return;
	/* The daemon is stopping: what is still open is cut, and logged. */
	while (l->sessions)
		session_close(l->sessions, "shutdown", NULL, 1);
	evconnlistener_free(l->l);
	event_free(l->pause);
	free(l);
}

/* fd: a bound, listening socket that the caller made transparent. */
struct proxy_listener *proxy_listen_transparent(struct daemon *d, int fd,
						const struct sockaddr_storage *addr,
						char *err, size_t errlen)
{
	struct proxy_listener *pl = calloc(1, sizeof(*pl));

	if (!pl)
		goto oom;
	pl->d = d;
	d->limits.header_timeout = d->opt->header_timeout;
	d->limits.idle_timeout = d->opt->idle_timeout;
	d->limits.header_budget = d->opt->header_budget;
	d->limits.over_budget = on_over_budget;
	d->limits.new_tagger = new_tagger;
	pl->addr = *addr;
	pl->wildcard = 1;           /* every connection has its own local address */
	pl->transparent = 1;
	pl->l = evconnlistener_new(d->base, on_accept, pl,
				   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (!pl->l)
		goto oom;
	evconnlistener_set_error_cb(pl->l, on_accept_error);
	pl->pause = evtimer_new(d->base, on_pause_end, pl);
	if (!pl->pause) {
		evconnlistener_free(pl->l);
		goto oom;
	}
	return pl;
oom:
	if (!pl || !pl->l)
		close(fd);
	free(pl);
	snprintf(err, errlen, "out of memory");
	return NULL;
}
