#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "addr.h"
#include "sockdiag.h"
#include "sproxy.h"
#include "udp_owner.h"

static int unspecified(const struct sproxy_addr *a)
{
	static const uint8_t any6[16], any4[16] = { [10] = 0xff, [11] = 0xff };

	return !memcmp(a->ip, any6, 16) || !memcmp(a->ip, any4, 16);
}

/* Whether the socket the port went to is gone (closed since). */
static int owner_gone(uint64_t cookie)
{
	struct udp_sock_info *all;
	size_t n;
	int gone;

	if (sockdiag_udp_all(&all, &n) < 0)
		return 0;
	gone = !sockdiag_find(all, n, cookie);
	free(all);
	return gone;
}

/* Two ways to know the owner's datagrams:
 * - sendmsg handed the port out: the hook recorded the socket's own
 *   address (bound by then), which no other socket can send from while
 *   it is bound; and had it closed, its datagram was queued before any
 *   other socket could bind that address.  This holds when the sender
 *   exits right after sending.
 * - connect() handed it out, before the socket was bound: the kernel's
 *   sock_diag finds the socket that owns the sender's address, and its
 *   cookie must be the flow's.  When no socket owns that address any more
 *   and the flow's socket is gone too, the sender was the flow's socket
 *   that closed right after sending (a stranger's socket that closed
 *   could not take a live socket's flow, and a dead flow sends nothing
 *   back to anyone). */
int udp_owner_is(const struct sockaddr *from, const struct sockaddr *pool,
		 const struct sproxy_flow *rec, int *diag_err)
{
	struct sproxy_addr f;
	uint64_t cookie = 0;
	int rc;

	*diag_err = 0;
	if (rec->app.port) {
		addr_to_sproxy(from, &f);
		return f.port == rec->app.port &&
		       (unspecified(&rec->app) || !memcmp(f.ip, rec->app.ip, 16));
	}
	rc = sockdiag_udp_cookie(from, pool, &cookie);
	if (rc == 0)
		return cookie == rec->cookie;
	if (rc == -ENOENT)
		return owner_gone(rec->cookie);
	*diag_err = rc;
	return 0;
}

int udp_owner_probe(int fd, const struct sockaddr *local)
{
	struct sockaddr_storage any;
	uint64_t want = 0, got = 0;
	socklen_t l = sizeof(want);
	int rc;

	memset(&any, 0, sizeof(any));
	any.ss_family = local->sa_family;
	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &want, &l) < 0)
		return -errno;
	rc = sockdiag_udp_cookie(local, (struct sockaddr *)&any, &got);
	if (rc < 0)
		return rc;
	return got == want ? 0 : -ESRCH;
}
