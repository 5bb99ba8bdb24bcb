/* The wait for a client's first bytes.  Edge-triggered: a ClientHello
 * that comes in pieces wakes us once per piece, not for as long as the
 * first piece sits unread. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <event2/event.h>

#include "sniffwait.h"

struct sniff_wait {
	struct event *rd, *timer;
	int fd;
	sniff_done_cb cb;
	void *arg;
};

static uint8_t peek[SNIFF_MAX];

static void done(struct sniff_wait *w, const char *host, enum sniff_kind kind)
{
	sniff_done_cb cb = w->cb;
	void *arg = w->arg;

	sniff_wait_cancel(w);
	cb(host, kind, arg);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct sniff_wait *w = arg;
	char host[256];
	enum sniff_kind kind;
	ssize_t n;

	(void)what;
	n = recv(fd, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {                  /* closed or failed: the relay sees it */
		done(w, NULL, SNIFF_NONE);
		return;
	}
	switch (sniff_host(peek, (size_t)n, host, sizeof(host), &kind)) {
	case SNIFF_FOUND:
		done(w, host, kind);
		return;
	case SNIFF_NO:
		done(w, NULL, SNIFF_NONE);
		return;
	}
	/* The name is further on: wait for the next piece. */
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	done(arg, NULL, SNIFF_NONE);
}

struct sniff_wait *sniff_wait_start(struct event_base *base, int fd, unsigned timeout_ms,
				    sniff_done_cb cb, void *arg)
{
	struct sniff_wait *w = calloc(1, sizeof(*w));
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

	if (!w)
		return NULL;
	w->fd = fd;
	w->cb = cb;
	w->arg = arg;
	w->rd = event_new(base, fd, EV_READ | EV_PERSIST | EV_ET, on_read, w);
	w->timer = evtimer_new(base, on_timeout, w);
	if (!w->rd || !w->timer || event_add(w->rd, NULL) < 0 ||
	    evtimer_add(w->timer, &tv) < 0) {
		sniff_wait_cancel(w);
		return NULL;
	}
	/* Bytes that came before the watch began wake no edge: look now,
	 * from the loop (cb must not run inside this call). */
	event_active(w->rd, EV_READ, 0);
	return w;
}

void sniff_wait_cancel(struct sniff_wait *w)
{
	if (!w)
		return;
	if (w->rd)
		event_free(w->rd);
	if (w->timer)
		event_free(w->timer);
	free(w);
}
