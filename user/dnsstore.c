/* When the FakeIP store is written (see fakeip_save for how). */
#include "dnsserver_int.h"

#include "fakeip.h"

#include <stdio.h>

#include <event2/event.h>

void dns_store_save(struct dns_server *srv)
{
	char err[512];

	if (!srv->pool || !srv->store_path || !fakeip_dirty(srv->pool))
		return;
	if (fakeip_save(srv->pool, srv->store_path, err, sizeof(err)) < 0) {
		dns_log(srv, 0, "%s; FakeIP mappings not persisted", err);
		return;
	}
	fakeip_mark_clean(srv->pool);
}

static void save_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dns_store_save(arg);
}

/* At most one save every DNS_STORE_INTERVAL seconds, whatever the rate
 * of new names (a rewrite and two fsyncs each), and one at exit: a crash
 * loses the newest names, whose clients then ask again. */
void dns_store_schedule(struct dns_server *srv)
{
	struct timeval tv = { DNS_STORE_INTERVAL, 0 };

	if (srv->store_path && fakeip_dirty(srv->pool) &&
	    !evtimer_pending(srv->save_timer, NULL))
		evtimer_add(srv->save_timer, &tv);
}

/* Creates the timer and loads what the last run left (a bad or
 * unreadable store is logged and ignored).  0, or -1 with err set. */
int dns_store_open(struct dns_server *srv, char *err, size_t errlen)
{
	char lerr[512];
	size_t skipped;

	srv->save_timer = evtimer_new(srv->base, save_timer_cb, srv);
	if (!srv->save_timer) {
		snprintf(err, errlen, "DNS server: out of memory");
		return -1;
	}
	if (!srv->pool || !srv->store_path)
		return 0;
	int n = fakeip_load_ex(srv->pool, srv->store_path, &skipped, lerr,
			       sizeof(lerr));
	if (n < 0)
		dns_log(srv, 0, "%s; starting with an empty FakeIP pool", lerr);
	else
		dns_log(srv, 1, "loaded %d FakeIP mappings from %s (%zu lines "
			"skipped)", n, srv->store_path, skipped);
	dns_store_schedule(srv);
	return 0;
}

/* Writes what is left on the way out. */
void dns_store_close(struct dns_server *srv)
{
	dns_store_save(srv);
	if (srv->save_timer)
		event_free(srv->save_timer);
	srv->save_timer = NULL;
}
