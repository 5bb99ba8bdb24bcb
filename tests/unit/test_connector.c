/* The connector's ownership of sockets: a request cancelled at any point
 * leaves no descriptor behind.  UDP only: connect(2) on a datagram socket
 * sends nothing, so the test needs no network namespace. */
#include <dirent.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <event2/event.h>

#include "check.h"
#include "connector.h"
#include "daemon.h"

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int called;

static void on_done(int fd, const char *err, void *arg)
{
	(void)err;
	(void)arg;
	called++;
	if (fd >= 0)
		close(fd);
}

static void setup(struct daemon *d, struct options *o, struct target *t, int port)
{
	struct sockaddr_in *a = (struct sockaddr_in *)&t->addr;

	memset(d, 0, sizeof(*d));
	memset(o, 0, sizeof(*o));
	memset(t, 0, sizeof(*t));
	o->connect_timeout = 5;
	o->mark = SPROXY_MARK_DEFAULT;
	d->opt = o;
	d->base = event_base_new();
	a->sin_family = AF_INET;
	a->sin_port = htons(port);
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* UDP "connects" at once: finished, delivery pending in the loop.  An
 * application that closes at that moment cancels the request; the
 * connected socket must go with it. */
static void cancel_after_finish(void)
{
	struct daemon d;
	struct options o;
	struct target t;
	struct connect_req *r;
	int before;

	setup(&d, &o, &t, 9);
	before = open_fds();
	called = 0;
	r = connector_start_via(&d, NULL, &t, SOCK_DGRAM, on_done, NULL);
	CHECK(r != NULL);
	CHECK(open_fds() == before + 1);
	connector_cancel(r);
	CHECK(open_fds() == before);
	event_base_loop(d.base, EVLOOP_NONBLOCK);
	CHECK(called == 0);
	event_base_free(d.base);
}

/* Delivered: the callback owns the socket; nothing else is closed. */
static void deliver_after_finish(void)
{
	struct daemon d;
	struct options o;
	struct target t;
	int before;

	setup(&d, &o, &t, 9);
	before = open_fds();
	called = 0;
	CHECK(connector_start_via(&d, NULL, &t, SOCK_DGRAM, on_done, NULL) != NULL);
	event_base_loop(d.base, EVLOOP_NONBLOCK);
	CHECK(called == 1);
	CHECK(open_fds() == before);
	event_base_free(d.base);
}

int main(void)
{
	RUN("connector", cancel_after_finish);
	RUN("connector", deliver_after_finish);
	CHECK_EXIT();
}
