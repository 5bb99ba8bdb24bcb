/* Ring-buffer dispatch and signals. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/libbpf.h>
#include <event2/event.h>

#include "daemon.h"
#include "events.h"
#include "fastpath.h"
#include "handoff.h"
#include "log.h"
#include "netns.h"
#include "proxy.h"
#include "reload.h"
#include "sproxy.skel.h"
#include "udp.h"

struct events {
	struct daemon *d;
	struct ring_buffer *rb;
	struct event *rbev;
	struct event *drain;      /* once a second: reports that woke nobody */
	struct event *sigs[3];
};

static int on_bpf_event(void *ctx, void *data, size_t size)
{
	struct daemon *d = ctx;
	const struct sproxy_event *e = data;
	static time_t last_full;
	/* A name a process chose, escaped; cut at 16 bytes on a whole escape
	 * (udp_pool_dry prints at most 16). */
	char comm[SPROXY_COMM_LEN + 1];

	if (size < sizeof(*e))
		return 0;
	log_escape(comm, sizeof(comm), e->proc.comm, SPROXY_COMM_LEN);
	switch (e->type) {
	case SPROXY_EV_UDP_RELEASE:
		udp_pool_release(d->udp, e->cookie);
		netns_udp_release(d->nsctl, e->cookie);
		break;
	case SPROXY_EV_NETNS:        /* cookie: the namespace's */
		netns_unserved(d->nsctl, e->cookie, e->proc.tgid,
			       daemon_cgroup_name(d, e->proc.cgroup_id));
		break;
	case SPROXY_EV_POOL_EMPTY:
		udp_pool_dry(d->udp, (int)e->family, comm, e->proc.tgid);
		break;
	case SPROXY_EV_UDP_LIMIT:
		udp_pool_limited(d->udp, comm, e->proc.tgid);
		break;
	case SPROXY_EV_MAP_FULL:
		/* Once a second at most; the stats count every one. */
		if (time(NULL) != last_full)
			log_err("a connection of %s (pid %u) was refused because the record "
				"map is full (%u captured connections open); raise --map-size",
				comm, e->proc.tgid, d->opt->map_size);
		last_full = time(NULL);
		break;
	case SPROXY_EV_FAST:
		fastpath_event(d->fast, data, size);
		break;
	case SPROXY_EV_SOCKOPT:      /* cookie: the application socket's */
		proxy_sockopts_changed(d, e->cookie);
		break;
	case SPROXY_EV_HANDOFF:
		handoff_log(d, data, size);
		break;
	case SPROXY_EV_MAP_HIGH:     /* cookie: the count */
		log_warn("the record map is 80%% full: %llu of %u captured connections "
			 "open (the last by %s, pid %u); beyond %u, new ones are "
			 "refused: raise --map-size", (unsigned long long)e->cookie,
			 d->opt->map_size, comm, e->proc.tgid, d->opt->map_size);
		break;
	}
	return 0;
}

static void on_ringbuf(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	connlog_hold();
	ring_buffer__consume(arg);
	connlog_release();
}

static void on_libevent_log(int severity, const char *msg)
{
	int level = severity == EVENT_LOG_ERR ? SLOG_ERR :
		    severity == EVENT_LOG_WARN ? SLOG_WARN :
		    severity == EVENT_LOG_MSG ? SLOG_INFO : SLOG_DEBUG;

	slog(level, "libevent: %s", msg);
}

void events_route_libevent_log(void)
{
	event_set_log_callback(on_libevent_log);
}

/* logrotate's signal: the daemon lives on, its log file is new; and an
 * edited config file's rules and upstreams take effect. */
static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	connlog_reopen();
	reload_request(arg);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	log_info("%s: detaching", strsignal((int)sig));
	event_base_loopbreak(arg);
}

struct events *events_start(struct daemon *d)
{
	struct events *e = calloc(1, sizeof(*e));

	if (!e) {
		log_err("cannot set up events: out of memory");
		return NULL;
	}
	e->d = d;
	e->rb = ring_buffer__new(bpf_map__fd(d->bpf.skel->maps.events), on_bpf_event,
				 d, NULL);
	if (!e->rb) {
		log_err("ring buffer: %s", strerror(errno));
		goto fail;
	}
	e->rbev = event_new(d->base, ring_buffer__epoll_fd(e->rb), EV_READ | EV_PERSIST,
			    on_ringbuf, e->rb);
	/* Ended connections' reports wake the daemon only in bulk (see
	 * log_wakeup in bpf/common.bpf.h): at most a second late in the log. */
	e->drain = event_new(d->base, -1, EV_PERSIST, on_ringbuf, e->rb);
	e->sigs[0] = evsignal_new(d->base, SIGINT, on_stop, d->base);
	e->sigs[1] = evsignal_new(d->base, SIGTERM, on_stop, d->base);
	e->sigs[2] = evsignal_new(d->base, SIGHUP, on_hup, d);
	if (!e->rbev || event_add(e->rbev, NULL) < 0 || !e->drain ||
	    event_add(e->drain, &(struct timeval){ 1, 0 }) < 0)
		goto fail_events;
	for (int i = 0; i < 3; i++)
		if (!e->sigs[i] || event_add(e->sigs[i], NULL) < 0)
			goto fail_events;
	return e;
fail_events:
	log_err("cannot set up events: %s", strerror(errno));
fail:
	events_free(e);
	return NULL;
}

void events_drain(struct events *e)
{
	if (e && e->rb)
		ring_buffer__consume(e->rb);
}

void events_free(struct events *e)
{
	if (!e)
		return;
	if (e->rbev)
		event_free(e->rbev);
	if (e->drain)
		event_free(e->drain);
	for (int i = 0; i < 3; i++)
		if (e->sigs[i])
			event_free(e->sigs[i]);
	ring_buffer__free(e->rb);
	free(e);
}
