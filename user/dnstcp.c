#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "daemon.h"
#include "dnsserver.h"
#include "dnstcp.h"
#include "log.h"
#include "sproxy.h"

#define IDLE_SECONDS 30

struct dnstcp {
	struct daemon *d;
	struct bufferevent *bev;
	struct dns_pending *pending;
	struct sproxy_proc proc;
	int have_proc;
	struct sockaddr_storage src, dst;
	uint64_t up, down;
	struct timespec start;
	int closing;
	char dns_err[200];             /* the last query that failed, and why */
};

static void next_query(struct dnstcp *s);

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
	bufferevent_free(s->bev);
	free(s);
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

/* Answers the queries that are in, one at a time. */
static void next_query(struct dnstcp *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	uint8_t hdr[2], *q;
	size_t len;

	while (!s->pending) {
		if (evbuffer_copyout(in, hdr, 2) < 2) {
			if (s->closing &&
			    evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
				end(s, NULL);
			return;
		}
		len = (size_t)hdr[0] << 8 | hdr[1];
		if (evbuffer_get_length(in) < len + 2)
			return;
		evbuffer_drain(in, 2);
		s->up += len + 2;
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
		struct dns_pending *p = dns_server_query(s->d->dns, q, len, 1, on_reply, s);

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

static void on_write(struct bufferevent *bev, void *arg)
{
	struct dnstcp *s = arg;

	(void)bev;
	if (s->closing && !s->pending &&
	    evbuffer_get_length(bufferevent_get_input(s->bev)) < 2)
		end(s, NULL);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct dnstcp *s = arg;

	(void)bev;
	if (what & BEV_EVENT_EOF) {
		s->closing = 1;
		bufferevent_disable(s->bev, EV_READ);
		if (!s->pending && evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
			end(s, NULL);
		return;
	}
	end(s, (what & BEV_EVENT_TIMEOUT) ? "idle timeout" : "connection error");
}

int dnstcp_start(struct daemon *d, int fd, const struct sproxy_proc *proc, int have_proc,
		 const struct sockaddr_storage *src, const struct sockaddr_storage *dst)
{
	struct dnstcp *s = calloc(1, sizeof(*s));
	struct timeval idle = { IDLE_SECONDS, 0 };

	if (!s)
		return -1;
	s->d = d;
	s->proc = *proc;
	s->have_proc = have_proc;
	s->src = *src;
	s->dst = *dst;
	clock_gettime(CLOCK_MONOTONIC, &s->start);
	s->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!s->bev) {
		free(s);
		return -1;
	}
	/* A query is at most 64 KiB; do not read far beyond one. */
	bufferevent_setwatermark(s->bev, EV_READ, 0, 70000);
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	bufferevent_set_timeouts(s->bev, &idle, &idle);
	bufferevent_enable(s->bev, EV_READ);
	return 0;
}
