/* Who makes a UDP flow, when sendmsg recorded the sender's own address:
 * the datagram must come from that port, and from that address unless
 * the socket was bound to any. (The sock_diag path needs real sockets and
 * is covered by tests/integration/41_udp_owner.sh.) */
#include <string.h>

#include "addr.h"
#include "check.h"
#include "sproxy.h"
#include "udp_owner.h"

static char err[256];

static struct sockaddr_storage sa(const char *s)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	addr_parse(s, 0, &ss, err, sizeof(err));
	return ss;
}

/* Whether a datagram from `from` to the pool belongs to a flow whose
 * sendmsg recorded `app`. */
static int owner(const char *app, const char *from)
{
	struct sockaddr_storage a = sa(app), f = sa(from), pool = sa("127.0.0.1:40000");
	struct sproxy_flow rec;
	int e;

	memset(&rec, 0, sizeof(rec));
	addr_to_sproxy((struct sockaddr *)&a, &rec.app);
	return udp_owner_is((struct sockaddr *)&f, (struct sockaddr *)&pool, &rec, &e);
}

static void wildcard_bound(void)
{
	CHECK(owner("0.0.0.0:5000", "127.0.0.1:5000"));
	CHECK(!owner("0.0.0.0:5000", "127.0.0.1:5001"));
	/* a dual-stack socket bound to [::] reaches the IPv4 pool from 127.0.0.1 */
	CHECK(owner("[::]:5000", "127.0.0.1:5000"));
	CHECK(owner("[::]:5000", "[::1]:5000"));
	CHECK(!owner("[::]:5000", "[::1]:5002"));
}

static void address_bound(void)
{
	CHECK(owner("203.0.113.1:5000", "203.0.113.1:5000"));
	/* another socket may hold 127.0.0.1:5000 while the app holds 203.0.113.1:5000 */
	CHECK(!owner("203.0.113.1:5000", "127.0.0.1:5000"));
	CHECK(owner("[::ffff:127.0.0.1]:5000", "127.0.0.1:5000"));
	CHECK(!owner("[::1]:5000", "127.0.0.1:5000"));
}

int main(void)
{
	RUN("udp_owner", wildcard_bound);
	RUN("udp_owner", address_bound);
	CHECK_EXIT();
}
