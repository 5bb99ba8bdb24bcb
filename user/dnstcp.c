#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "daemon.h"
#include "dnsserver.h"
#include "dnstcp.h"
#include "log.h"
#include "sproxy.h"

/* A session that takes in no query for this long is closed, whatever
 * state it is in: a stub resolver asks at once or hangs up (RFC 7766
 * expects idle bounds of seconds). */
#define IDLE_SECONDS 10
/* Answers waiting for a client that does not read: past OUT_HIGH no more
 * queries are taken (nor read) until it has read down to OUT_LOW.  One
 * answer is at most 64 KiB, so a session holds at most about twice that. */
#define OUT_HIGH (64 * 1024)
#define OUT_LOW  (16 * 1024)
/* Sessions at once from one process, and from all of them. */
#define PER_PROCESS 16
#define MAX_SESSIONS 512

struct dnstcp {
	struct daemon *d;
	struct dnstcp *prev, *next;    /* every open session */
	struct bufferevent *bev;
	struct event *idle;
	struct dns_pending *pending;
	struct sproxy_proc proc;
	int have_proc;
	struct sockaddr_storage src, dst;
	uint64_t up, down;
	struct timespec start;
	int closing;
	int paused;                    /* over OUT_HIGH: not reading */
	char dns_err[200];             /* the last query that failed, and why */
};

static struct dnstcp *sessions;
static unsigned n_sessions;

static void next_query(struct dnstcp *s);

/* The idle bound starts again with each query taken in. */
static void idle_reset(struct dnstcp *s)
{
	struct timeval tv = { IDLE_SECONDS, 0 };

	evtimer_add(s->idle, &tv);
}

static void end(struct dnstcp *s, const char *err)
{
	struct timespec now;
	size_t left;
	struct conn_log c = {
		.proto = "dns",
		.proc = s->have_proc ? &s->proc : NULL,
		.cgroup = s->have_proc ? daemon_cgroup_name(s->d, s->proc.cgroup_id) : NULL,
		.src = (struct sockaddr *)&s->src,
		.dst = (struct sockaddr *)&s->dst,
		.up = s->up,
		.down = s->down,
		.result = err ? "error" : "ok",
		.error = err,
	};

	left = evbuffer_get_length(bufferevent_get_input(s->bev));
	c.up += left;
	if (!err && left) {
		uint8_t hdr[2] = { 0, 0 };

		evbuffer_copyout(bufferevent_get_input(s->bev), hdr, 2);
		snprintf(s->dns_err, sizeof(s->dns_err), "connection closed inside a "
			 "query: %zu bytes of a %u-byte message", left < 2 ? 0 : left - 2,
			 (unsigned)hdr[0] << 8 | hdr[1]);
	}
	if (!err && s->dns_err[0]) {
		c.result = "error";
		c.error = s->dns_err;
	}

	clock_gettime(CLOCK_MONOTONIC, &now);
	c.duration = (double)(now.tv_sec - s->start.tv_sec) +
		     (double)(now.tv_nsec - s->start.tv_nsec) / 1e9;
	connlog_write(&c);
	if (s->pending)
		dns_pending_cancel(s->pending);
	if (s->prev)
		s->prev->next = s->next;
	else
		sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	n_sessions--;
	event_free(s->idle);
	bufferevent_free(s->bev);
	free(s);
}

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct dnstcp *s = arg;

	(void)fd;
	(void)what;
	/* A forwarded query has its own bound (the server's timeout). */
	if (s->pending) {
		idle_reset(s);
		return;
	}
	end(s, s->closing ? "idle timeout (half-closed with a query unanswered "
	    "or unread)" : "idle timeout");
}

/* 1 when a whole length-framed query is in the input. */
static int have_query(struct dnstcp *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	uint8_t hdr[2];

	if (evbuffer_copyout(in, hdr, 2) < 2)
		return 0;
	return evbuffer_get_length(in) >= ((size_t)hdr[0] << 8 | hdr[1]) + 2;
}

static size_t out_len(struct dnstcp *s)
{
	return evbuffer_get_length(bufferevent_get_output(s->bev));
}

/* Marks a query in flight whose answer may come back before
 * dns_server_query returns. */
#define STARTING ((struct dns_pending *)1)

static void on_reply(const uint8_t *reply, size_t len, void *arg)
{
	struct dnstcp *s = arg;
	int sync = s->pending == STARTING;
	uint16_t n = htons((uint16_t)len);
	const char *why = dns_server_reply_error(s->d->dns);

	if (why)
		snprintf(s->dns_err, sizeof(s->dns_err), "%s", why);
	s->pending = NULL;
	if (reply && len && len <= 65535) {
		bufferevent_write(s->bev, &n, 2);
		bufferevent_write(s->bev, reply, len);
		s->down += len + 2;
	}
	if (!sync)
		next_query(s);
}

/* Answers the queries that are in, one at a time, while the client reads
 * its answers: with OUT_HIGH bytes of them waiting, reading stops (the
 * sender then stalls in its own kernel) until on_write sees them go. */
static void next_query(struct dnstcp *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	uint8_t hdr[2], *q;
	size_t len;

	while (!s->pending) {
		if (out_len(s) > OUT_HIGH) {
			if (!s->paused && !s->closing)
				bufferevent_disable(s->bev, EV_READ);
			s->paused = 1;
			return;
		}
		if (!have_query(s)) {
			/* After EOF no more bytes come: a partial query
			 * never completes. */
			if (s->closing && out_len(s) == 0)
				end(s, NULL);
			return;
		}
		evbuffer_copyout(in, hdr, 2);
		len = (size_t)hdr[0] << 8 | hdr[1];
		evbuffer_drain(in, 2);
		s->up += len + 2;
		idle_reset(s);
		if (len == 0) {
			snprintf(s->dns_err, sizeof(s->dns_err), "malformed query: a "
				 "zero-length message");
			continue;
		}
		q = malloc(len);
		if (!q) {
			end(s, "out of memory");
			return;
		}
		evbuffer_remove(in, q, len);
		s->pending = STARTING;
		struct dns_pending *p = dns_server_query_from(s->d->dns, s->have_proc ?
							      s->proc.tgid : 0, q, len, 1,
							      on_reply, s);

		free(q);
		if (s->pending == STARTING)
			s->pending = p;
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	next_query(arg);
}

/* Called once the output is down to OUT_LOW (the write low watermark). */
static void on_write(struct bufferevent *bev, void *arg)
{
	struct dnstcp *s = arg;

	(void)bev;
	if (s->paused && out_len(s) <= OUT_LOW) {
		s->paused = 0;
		if (!s->closing)
			bufferevent_enable(s->bev, EV_READ);
		next_query(s);   /* may end s */
		return;
	}
	if (s->closing && !s->pending && !have_query(s) && out_len(s) == 0)
		end(s, NULL);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct dnstcp *s = arg;

	(void)bev;
	if (what & BEV_EVENT_EOF) {
		s->closing = 1;
		bufferevent_disable(s->bev, EV_READ);
		if (!s->pending)
			next_query(s);   /* what is left in, then the end */
		return;
	}
	end(s, (what & BEV_EVENT_TIMEOUT) ? "idle timeout" : "connection error");
}

/* Sessions open now from the process with this tgid. */
static unsigned count_process(uint32_t tgid)
{
	unsigned n = 0;

	for (struct dnstcp *s = sessions; s; s = s->next)
		n += s->have_proc && s->proc.tgid == tgid;
	return n;
}

/* Refuses a session over a cap: one connection-log line as for every
 * session, and a warning at most once a second. */
static void refuse(struct daemon *d, int fd, const struct sproxy_proc *proc, int have_proc,
		   const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
		   const char *why)
{
	static time_t warned;
	static unsigned long quiet;
	struct timespec now;
	struct conn_log c = {
		.proto = "dns",
		.proc = have_proc ? proc : NULL,
		.cgroup = have_proc ? daemon_cgroup_name(d, proc->cgroup_id) : NULL,
		.src = (const struct sockaddr *)src,
		.dst = (const struct sockaddr *)dst,
		.result = "refused",
		.error = why,
	};

	connlog_write(&c);
	close(fd);
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (warned == now.tv_sec) {
		quiet++;
		return;
	}
	warned = now.tv_sec;
	if (have_proc)
		log_warn("dns: pid %u (%.16s): %s; closed a new session (%lu more "
			 "since the last line)", proc->tgid, proc->comm, why, quiet);
	else
		log_warn("dns: %s; closed a new session (%lu more since the last "
			 "line)", why, quiet);
	quiet = 0;
}

int dnstcp_start(struct daemon *d, int fd, const struct sproxy_proc *proc, int have_proc,
		 const struct sockaddr_storage *src, const struct sockaddr_storage *dst)
{
	struct dnstcp *s;
	char why[160];

	if (n_sessions >= MAX_SESSIONS) {
		snprintf(why, sizeof(why), "%u DNS-over-TCP sessions open (the "
			 "limit of all processes)", n_sessions);
		refuse(d, fd, proc, have_proc, src, dst, why);
		return 0;
	}
	if (have_proc && count_process(proc->tgid) >= PER_PROCESS) {
		snprintf(why, sizeof(why), "%u DNS-over-TCP sessions open from "
			 "this process (the limit per process)", PER_PROCESS);
		refuse(d, fd, proc, have_proc, src, dst, why);
		return 0;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	s->d = d;
	s->proc = *proc;
	s->have_proc = have_proc;
	s->src = *src;
	s->dst = *dst;
	clock_gettime(CLOCK_MONOTONIC, &s->start);
	s->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
	s->idle = evtimer_new(d->base, on_idle, s);
	if (!s->bev || !s->idle) {
		if (s->bev) {
			bufferevent_setfd(s->bev, -1);
			bufferevent_free(s->bev);
		}
		if (s->idle)
			event_free(s->idle);
		free(s);
		return -1;
	}
	/* A query is at most 64 KiB; do not read far beyond one. */
	bufferevent_setwatermark(s->bev, EV_READ, 0, 70000);
	bufferevent_setwatermark(s->bev, EV_WRITE, OUT_LOW, 0);
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	s->next = sessions;
	if (sessions)
		sessions->prev = s;
	sessions = s;
	n_sessions++;
	idle_reset(s);
	bufferevent_enable(s->bev, EV_READ);
	return 0;
}
