#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/inet_diag.h>

#include "sockdiag.h"

/* sock_diag answers for the namespace its socket was made in: queries
 * about a served namespace's pool make theirs there (diag_ns), then the
 * thread returns home. */
static int diag_ns = -1, diag_home = -1;

void sockdiag_netns(int fd)
{
	if (diag_home < 0)          /* once, for the daemon's life */
		diag_home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	diag_ns = diag_home >= 0 ? fd : -1;
}

static int diag_open(void)
{
	struct timeval tv = { 1, 0 };
	int fd, e;

	if (diag_ns >= 0 && setns(diag_ns, CLONE_NEWNET) < 0)
		return -errno;
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	e = errno;
	if (diag_ns >= 0 && setns(diag_home, CLONE_NEWNET) < 0)
		abort();      /* stuck in a container's namespace: never go on */
	if (fd < 0)
		return -e;
	/* The kernel answers at once; a bound keeps a lost answer from
	 * stalling the event loop. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void put_addr(const struct sockaddr *sa, __be32 ip[4], __be16 *port)
{
	memset(ip, 0, 16);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)sa;

		ip[0] = a->sin_addr.s_addr;
		*port = a->sin_port;
	} else {
		const struct sockaddr_in6 *a = (const void *)sa;

		memcpy(ip, &a->sin6_addr, 16);
		*port = a->sin6_port;
	}
}

static int diag_send(int fd, int family, uint16_t flags, const struct inet_diag_sockid *id)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req;
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK };

	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = sizeof(req);
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST | flags;
	req.r.sdiag_family = (uint8_t)family;
	req.r.sdiag_protocol = IPPROTO_UDP;
	req.r.idiag_states = ~0u;
	if (id)
		req.r.id = *id;
	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&nl, sizeof(nl)) < 0)
		return -errno;
	return 0;
}

static uint64_t msg_cookie(const struct inet_diag_msg *m)
{
	return (uint64_t)m->id.idiag_cookie[0] | (uint64_t)m->id.idiag_cookie[1] << 32;
}

int sockdiag_udp_cookie(const struct sockaddr *local, const struct sockaddr *remote,
			uint64_t *cookie)
{
	struct inet_diag_sockid id;
	long buf[1024];
	struct nlmsghdr *h = (void *)buf;
	ssize_t n;
	int fd, rc;

	memset(&id, 0, sizeof(id));
	/* UDP's exact lookup takes "src" as where datagrams come from and
	 * "dst" as the socket's own end (the reverse of what a dump shows). */
	put_addr(remote, id.idiag_src, &id.idiag_sport);
	put_addr(local, id.idiag_dst, &id.idiag_dport);
	id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	fd = diag_open();
	if (fd < 0)
		return fd;
	rc = diag_send(fd, local->sa_family, 0, &id);
	if (rc < 0)
		goto out;
	n = recv(fd, buf, sizeof(buf), 0);
	if (n < 0) {
		rc = -errno;
	} else if (!NLMSG_OK(h, (size_t)n)) {
		rc = -EPROTO;
	} else if (h->nlmsg_type == NLMSG_ERROR) {
		const struct nlmsgerr *e = NLMSG_DATA(h);

		rc = e->error ? e->error : -ENOENT;
	} else if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
		   h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
		*cookie = msg_cookie(NLMSG_DATA(h));
		rc = 0;
	} else {
		rc = -EPROTO;
	}
out:
	close(fd);
	return rc;
}

static int dump_family(int fd, int family, struct udp_sock_info **v, size_t *n, size_t *cap)
{
	long buf[8192];
	int rc = diag_send(fd, family, NLM_F_DUMP, NULL);

	if (rc < 0)
		return rc;
	for (;;) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *h = (void *)buf;

		if (len < 0)
			return -errno;
		for (; NLMSG_OK(h, (size_t)len); h = NLMSG_NEXT(h, len)) {
			const struct inet_diag_msg *m = NLMSG_DATA(h);

			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				return e->error ? e->error : -EPROTO;
			}
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
				continue;
			if (*n == *cap) {
				size_t nc = *cap ? *cap * 2 : 256;
				struct udp_sock_info *nv = realloc(*v, nc * sizeof(*nv));

				if (!nv)
					return -ENOMEM;
				*v = nv;
				*cap = nc;
			}
			(*v)[*n].cookie = msg_cookie(m);
			(*v)[*n].inode = m->idiag_inode;
			(*v)[*n].peer_port = ntohs(m->id.idiag_dport);
			(*n)++;
		}
	}
}

static int by_cookie(const void *a, const void *b)
{
	const struct udp_sock_info *x = a, *y = b;

	return x->cookie < y->cookie ? -1 : x->cookie > y->cookie;
}

int sockdiag_udp_all(struct udp_sock_info **out, size_t *n)
{
	size_t cap = 0;
	int fd = diag_open(), rc;

	*out = NULL;
	*n = 0;
	if (fd < 0)
		return fd;
	rc = dump_family(fd, AF_INET, out, n, &cap);
	if (rc == 0)
		rc = dump_family(fd, AF_INET6, out, n, &cap);
	close(fd);
	if (rc < 0) {
		free(*out);
		*out = NULL;
		*n = 0;
		return rc;
	}
	qsort(*out, *n, sizeof(**out), by_cookie);
	return 0;
}

const struct udp_sock_info *sockdiag_find(const struct udp_sock_info *v, size_t n,
					  uint64_t cookie)
{
	struct udp_sock_info k = { .cookie = cookie };

	return v ? bsearch(&k, v, n, sizeof(*v), by_cookie) : NULL;
}
