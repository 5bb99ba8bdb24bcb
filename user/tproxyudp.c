/* UDP behind TPROXY: the transparent listener, which finds each datagram's
 * original destination and its flow (tproxyudp_flow.c), and the sweep that
 * ends idle flows. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <event2/event.h>

#include "addr.h"
#include "daemon.h"
#include "log.h"
#include "tproxyudp.h"
#include "tproxyudp_int.h"

#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IP_RECVORIGDSTADDR
#define IP_RECVORIGDSTADDR 20
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif
#ifndef IPV6_RECVORIGDSTADDR
#define IPV6_RECVORIGDSTADDR 74
#endif

#define DNS_IDLE     10    /* seconds: a resolver's client port is used once */

unsigned char tudp_dgram[MAX_DGRAM];

int tsock_open(const struct daemon *d, int type, const struct sockaddr_storage *addr,
	       int dual, char *err, size_t errlen)
{
	int fam = addr->ss_family, one = 1, off = 0, fd;
	char a[ADDR_STRLEN];
	const char *what = "socket";

	fd = socket(fam, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	what = fam == AF_INET ? "IP_TRANSPARENT" : "IPV6_TRANSPARENT";
	if (fam == AF_INET ? setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one))
			   : setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one)))
		goto fail;
	if (fam == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual ? &off : &one, sizeof(one));
	/* Our mark: the generated rules leave these sockets' packets alone. */
	what = "SO_MARK";
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &d->opt->mark, sizeof(d->opt->mark)) < 0)
		goto fail;
	what = "bind";
	if (bind(fd, (const struct sockaddr *)addr, addr_len((const struct sockaddr *)addr)) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "%s %s on %s: %s%s", type == SOCK_STREAM ? "TCP" : "UDP",
		 what, addr_str((const struct sockaddr *)addr, a, sizeof(a)), strerror(errno),
		 errno == EPERM ? " (needs root or CAP_NET_ADMIN)" : "");
	if (fd >= 0)
		close(fd);
	return -1;
}

static unsigned hash_pair(const struct sockaddr_storage *c, const struct sockaddr_storage *t)
{
	const unsigned char *p[2] = { (const void *)c, (const void *)t };
	unsigned h = 2166136261u;

	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < addr_len((const struct sockaddr *)p[k]); i++)
			h = (h ^ p[k][i]) * 16777619u;
	return h % BUCKETS;
}

/* The original destination, from the control message TPROXY leaves. */
static int orig_dst(struct msghdr *mh, struct sockaddr_storage *dst)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR) {
			memset(dst, 0, sizeof(*dst));
			memcpy(dst, CMSG_DATA(c), sizeof(struct sockaddr_in));
			return 0;
		}
		if (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_ORIGDSTADDR) {
			memset(dst, 0, sizeof(*dst));
			memcpy(dst, CMSG_DATA(c), sizeof(struct sockaddr_in6));
			addr_unmap(dst);
			return 0;
		}
	}
	return -1;
}

static struct tflow *find(struct tproxy_udp *u, const struct sockaddr_storage *client,
			  const struct sockaddr_storage *dst, unsigned h)
{
	for (struct tflow *f = u->bucket[h]; f; f = f->hnext)
		if (addr_equal((struct sockaddr *)&f->r.client, (const struct sockaddr *)client) &&
		    addr_equal((struct sockaddr *)&f->r.t.addr, (const struct sockaddr *)dst))
			return f;
	return NULL;
}

/* Dropped, said once a second at most. */
static int refuse_datagram(struct tproxy_udp *u, time_t *last, const struct sockaddr_storage *client,
			   const char *why)
{
	char a[ADDR_STRLEN];
	time_t now = time(NULL);

	if (now != *last)
		log_warn("UDP datagram from %s dropped: %s",
			 addr_str((const struct sockaddr *)client, a, sizeof(a)), why);
	*last = now;
	(void)u;
	return -1;
}

static void on_listener(evutil_socket_t fd, short what, void *arg)
{
	struct tproxy_udp *u = arg;
	char cbuf[256], why[200];

	(void)what;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage client, dst;
		struct iovec iov = { tudp_dgram, sizeof(tudp_dgram) };
		struct msghdr mh = {
			.msg_name = &client, .msg_namelen = sizeof(client),
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
		};
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
		struct tflow *f;
		unsigned h;

		if (n < 0)
			return;
		addr_unmap(&client);
		if (orig_dst(&mh, &dst) < 0) {
			refuse_datagram(u, &u->last_nodst_log, &client, "no original "
					"destination (sent to the listener itself, not through "
					"the TPROXY rules; run 'sproxy-bpf doctor')");
			continue;
		}
		if (addr_port((struct sockaddr *)&dst) == addr_port((struct sockaddr *)&u->addr) &&
		    addr_is_ours((struct sockaddr *)&dst)) {
			refuse_datagram(u, &u->last_nodst_log, &client, "sent to the TPROXY "
					"listener itself, not through the TPROXY rules");
			continue;
		}
		h = hash_pair(&client, &dst);
		f = find(u, &client, &dst, h);
		if (!f && u->flows.n >= u->max) {
			u->full++;
			snprintf(why, sizeof(why), "%zu UDP flows open (%llu dropped so far); "
				 "raise --udp-flows or lower --udp-timeout", u->flows.n,
				 (unsigned long long)u->full);
			refuse_datagram(u, &u->last_full_log, &client, why);
			continue;
		}
		if (!f && !(f = tflow_new(u, &client, &dst, h, tudp_dgram, (size_t)n)))
			continue;
		tflow_from_client(f, tudp_dgram, (size_t)n);
	}
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct tproxy_udp *u = arg;
	time_t now = udprelay_now(), limit = (time_t)u->d->opt->udp_timeout;
	struct udprelay *r, *next;

	(void)fd;
	(void)what;
	for (r = u->flows.all; r; r = next) {
		next = r->next;
		if (now - r->last >= (r->is_dns && limit > DNS_IDLE ? DNS_IDLE : limit))
			udprelay_end(r);
	}
}

struct tproxy_udp *tproxy_udp_new(struct daemon *d, int fd,
				  const struct sockaddr_storage *addr,
				  char *err, size_t errlen)
{
	struct tproxy_udp *u = calloc(1, sizeof(*u));
	struct timeval sec = { 1, 0 };
	char a[ADDR_STRLEN];
	int one = 1, ok4, ok6 = 1;

	if (!u) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	u->d = d;
	u->fd = fd;
	u->addr = *addr;
	u->max = 2 * (size_t)d->opt->udp_flows;
	/* Dual stack: IPv4 datagrams on an IPv6 socket carry IP_ORIGDSTADDR. */
	ok4 = setsockopt(fd, SOL_IP, IP_RECVORIGDSTADDR, &one, sizeof(one)) == 0;
	if (addr->ss_family == AF_INET6)
		ok6 = setsockopt(fd, SOL_IPV6, IPV6_RECVORIGDSTADDR, &one, sizeof(one)) == 0;
	if (!ok6 || (addr->ss_family == AF_INET && !ok4)) {
		snprintf(err, errlen, "UDP on %s: cannot ask for original destinations: %s",
			 addr_str((const struct sockaddr *)addr, a, sizeof(a)), strerror(errno));
		tproxy_udp_free(u);
		return NULL;
	}
	u->ev = event_new(d->base, fd, EV_READ | EV_PERSIST, on_listener, u);
	u->sweep = event_new(d->base, -1, EV_PERSIST, on_sweep, u);
	if (!u->ev || !u->sweep || event_add(u->ev, NULL) < 0 || event_add(u->sweep, &sec) < 0) {
		snprintf(err, errlen, "out of memory");
		tproxy_udp_free(u);
		return NULL;
	}
	return u;
}

void tproxy_udp_free(struct tproxy_udp *u)
{
	if (!u)
		return;
	while (u->flows.all)
		udprelay_end(u->flows.all);
	if (u->ev)
		event_free(u->ev);
	if (u->sweep)
		event_free(u->sweep);
	close(u->fd);
	free(u);
}
