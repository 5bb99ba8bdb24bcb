/* One UDP flow behind TPROXY: its reply socket bound to the original
 * destination (the client's datagrams come to it once it exists, and its
 * replies leave from it), the daemon's own lookups, and what its log line
 * says.  Its route, relay and log line: udprelay.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <event2/event.h>

#include "addr.h"
#include "daemon.h"
#include "log.h"
#include "ownsock.h"
#include "tproxyudp.h"
#include "tproxyudp_int.h"

static void who(const struct udprelay *r, char *buf, size_t len)
{
	char a[ADDR_STRLEN];

	snprintf(buf, len, "from %s", addr_str((const struct sockaddr *)&r->client, a, sizeof(a)));
}

/* No process behind TPROXY.  The daemon's own lookups get no line: a
 * warning when they could not go out. */
static int log_adds(const struct udprelay *r, struct conn_log *c)
{
	const struct tflow *f = (const struct tflow *)r;

	if (f->own) {
		if (r->refused)
			log_warn("the daemon's own lookup through %s: %s", "TPROXY", r->refused);
		return -1;
	}
	c->capture = "tproxy";
	return 0;
}

/* To the client, from the destination's own address. */
static int to_client(struct udprelay *r, const void *data, size_t len)
{
	const struct tflow *f = (const struct tflow *)r;

	if (send(f->rfd, data, len, MSG_DONTWAIT) < 0) {
		log_debug("UDP reply to a TPROXY client dropped: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Its reply socket closed, and out of its bucket. */
static void flow_free(struct udprelay *r)
{
	struct tflow *f = (struct tflow *)r;
	struct tflow **pp;

	if (f->rev)
		event_free(f->rev);
	if (f->rfd >= 0)
		close(f->rfd);
	for (pp = &f->u->bucket[f->bucket]; *pp; pp = &(*pp)->hnext)
		if (*pp == f) {
			*pp = f->hnext;
			break;
		}
	free(f);
}

static const struct udprelay_ops tproxy_ops = {
	.reply = to_client,
	.who = who,
	.log = log_adds,
	.free = flow_free,
};

/* A datagram from the client, through the listener or the flow's socket. */
void tflow_from_client(struct tflow *f, const unsigned char *data, size_t len)
{
	udprelay_in(&f->r, data, len);
}

/* Once the flow's socket exists, TPROXY finds it (it is the connected,
 * transparent socket of this 4-tuple) and the client's datagrams come
 * here instead of to the listener. */
static void on_reply_sock(evutil_socket_t fd, short what, void *arg)
{
	struct tflow *f = arg;

	(void)what;
	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(fd, tudp_dgram, sizeof(tudp_dgram), MSG_DONTWAIT);

		if (n < 0)
			return;
		tflow_from_client(f, tudp_dgram, (size_t)n);
	}
}

static int reply_socket(struct tflow *f)
{
	struct daemon *d = f->u->d;
	const struct sockaddr *c = (struct sockaddr *)&f->r.client;

	f->rfd = tsock_open(d, SOCK_DGRAM, &f->r.t.addr, 0, f->r.why, sizeof(f->r.why));
	if (f->rfd < 0)
		return -1;
	if (connect(f->rfd, c, addr_len(c)) < 0) {
		snprintf(f->r.why, sizeof(f->r.why), "UDP reply socket: connect: %s",
			 strerror(errno));
		return -1;
	}
	f->rev = event_new(d->base, f->rfd, EV_READ | EV_PERSIST, on_reply_sock, f);
	if (!f->rev || event_add(f->rev, NULL) < 0) {
		snprintf(f->r.why, sizeof(f->r.why), "out of memory");
		return -1;
	}
	return 0;
}

struct tflow *tflow_new(struct tproxy_udp *u, const struct sockaddr_storage *client,
			const struct sockaddr_storage *dst, unsigned h,
			const uint8_t *first, size_t n)
{
	struct tflow *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	udprelay_init(&f->r, &tproxy_ops, &u->flows, u->d, client, dst);
	f->u = u;
	f->bucket = h;
	f->rfd = -1;
	/* Our own lookups go to the resolver they asked, unlogged: answering
	 * them from the FakeIP pool would be a loop. */
	f->own = f->r.is_dns && ownsock_udp((const struct sockaddr *)client);
	f->r.is_dns = f->r.is_dns && !f->own;
	f->hnext = u->bucket[h];
	u->bucket[h] = f;
	if (reply_socket(f) < 0) {
		f->r.refused = f->r.why;
		return f;
	}
	if (f->r.is_dns || udprelay_name(&f->r, first, n, !f->own) < 0)
		return f;
	/* The daemon's own lookups go where they were sent, past the rules:
	 * by the default route. */
	if (f->own)
		udprelay_default_route(&f->r);
	else
		udprelay_decide(&f->r);
	return f;
}
