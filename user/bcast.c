#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <event2/event.h>

#include "bcast.h"
#include "daemon.h"
#include "log.h"
#include "sproxy.h"
#include "sproxy.skel.h"

#define MAX_BCAST 64

struct bcast {
	struct daemon *d;
	int watch_fd;                /* RTMGRP_IPV4_ROUTE notifications */
	struct event *ev;
	uint32_t ours[MAX_BCAST];    /* entries this module added (network order) */
	size_t n_ours;
};

static struct sproxy_bypass_key key_of(uint32_t ip)
{
	struct sproxy_bypass_key k;

	memset(&k, 0, sizeof(k));
	k.prefixlen = 128;
	k.ip32[2] = htonl(0xffff);
	k.ip32[3] = ip;
	return k;
}

static int has(const uint32_t *v, size_t n, uint32_t ip)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i] == ip)
			return 1;
	return 0;
}

/* The broadcast addresses of the namespace: the kernel's own list is its
 * broadcast routes (table local), made for each address and prefix (an
 * address added without "brd" has them too, with no IFA_BROADCAST). */
static int dump(uint32_t *out, size_t max, size_t *n)
{
	struct {
		struct nlmsghdr h;
		struct rtmsg m;
	} req;
	long buf[4096];
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), rc = 0;
	struct timeval tv = { 1, 0 };

	*n = 0;
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = RTM_GETROUTE;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.m.rtm_family = AF_INET;
	if (send(fd, &req, sizeof(req), 0) < 0) {
		rc = -errno;
		goto out;
	}
	for (;;) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *h = (void *)buf;

		if (len < 0) {
			rc = -errno;
			goto out;
		}
		for (; NLMSG_OK(h, (size_t)len); h = NLMSG_NEXT(h, len)) {
			struct rtmsg *m = NLMSG_DATA(h);
			struct rtattr *a = RTM_RTA(m);
			int alen = (int)RTM_PAYLOAD(h);

			if (h->nlmsg_type == NLMSG_DONE)
				goto out;
			if (h->nlmsg_type == NLMSG_ERROR) {
				rc = -EPROTO;
				goto out;
			}
			if (h->nlmsg_type != RTM_NEWROUTE || m->rtm_family != AF_INET ||
			    m->rtm_type != RTN_BROADCAST)
				continue;
			for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen))
				if (a->rta_type == RTA_DST && RTA_PAYLOAD(a) == 4 && *n < max &&
				    !has(out, *n, *(uint32_t *)RTA_DATA(a)))
					memcpy(&out[(*n)++], RTA_DATA(a), 4);
		}
	}
out:
	close(fd);
	return rc;
}

/* Adds the broadcast addresses that are new, removes ours that are gone.
 * An entry the user gave (--bypass) is left as it is. */
static void sync_map(struct bcast *b)
{
	int fd = bpf_map__fd(b->d->bpf.skel->maps.bypass);
	uint32_t now[MAX_BCAST];
	size_t n, i, j;
	char a[INET_ADDRSTRLEN];
	int rc = dump(now, MAX_BCAST, &n);

	if (rc < 0) {
		log_warn("cannot list the namespace's broadcast routes: %s; subnet "
			 "broadcast may be captured", strerror(-rc));
		return;
	}
	for (i = j = 0; i < b->n_ours; i++) {
		struct sproxy_bypass_key k = key_of(b->ours[i]);

		if (has(now, n, b->ours[i]))
			b->ours[j++] = b->ours[i];
		else
			bpf_map_delete_elem(fd, &k);
	}
	b->n_ours = j;
	for (i = 0; i < n; i++) {
		struct sproxy_bypass_key k = key_of(now[i]);
		struct sproxy_bypass_val v;

		if (has(b->ours, b->n_ours, now[i]) || bpf_map_lookup_elem(fd, &k, &v) == 0 ||
		    b->n_ours == MAX_BCAST)
			continue;
		memset(&v, 0, sizeof(v));
		if (bpf_map_update_elem(fd, &k, &v, BPF_NOEXIST) < 0) {
			log_warn("cannot let broadcast to %s go direct: bypass map: %s",
				 inet_ntop(AF_INET, &now[i], a, sizeof(a)), strerror(errno));
			continue;
		}
		b->ours[b->n_ours++] = now[i];
		log_debug("broadcast to %s goes direct",
			  inet_ntop(AF_INET, &now[i], a, sizeof(a)));
	}
}

static void on_change(evutil_socket_t fd, short what, void *arg)
{
	long buf[2048];

	(void)what;
	/* What changed does not matter (and ENOBUFS may have lost some of
	 * it): the list is read again. */
	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0 || errno == ENOBUFS)
		;
	sync_map(arg);
}

struct bcast *bcast_new(struct daemon *d)
{
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_IPV4_ROUTE };
	struct bcast *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->d = d;
	b->watch_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (b->watch_fd < 0 || bind(b->watch_fd, (struct sockaddr *)&nl, sizeof(nl)) < 0) {
		log_warn("cannot watch the namespace's addresses: %s; subnet broadcast "
			 "to addresses added later may be captured", strerror(errno));
	} else {
		b->ev = event_new(d->base, b->watch_fd, EV_READ | EV_PERSIST, on_change, b);
		if (!b->ev || event_add(b->ev, NULL) < 0)
			log_warn("cannot watch the namespace's addresses: out of memory");
	}
	sync_map(b);
	return b;
}

void bcast_free(struct bcast *b)
{
	if (!b)
		return;
	if (b->ev)
		event_free(b->ev);
	if (b->watch_fd >= 0)
		close(b->watch_fd);
	free(b);
}
