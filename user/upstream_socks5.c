/* SOCKS5 upstreams: RFC 1928 (CONNECT, UDP ASSOCIATE) with RFC 1929
 * username/password.  The target goes by name when it has one (a FakeIP
 * address), so the upstream resolves it; else by address.
 *
 * UDP: one association per flow.  A shared one would have to tell replies
 * apart by their source, and two application sockets talking to the same
 * peer (two resolvers' queries to one server) could not be; one per flow
 * also ends with the flow and fails alone.  The flow's datagrams travel
 * over a SEQPACKET socket pair, so udp.c sends and receives as it does
 * direct; the relay below adds and strips the SOCKS5 UDP header. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <event2/event.h>

#include "addr.h"
#include "connector.h"
#include "daemon.h"
#include "log.h"
#include "upstream.h"

#define S5_METHOD_NONE    0x00
#define S5_METHOD_USER    0x02
#define S5_METHOD_REFUSED 0xff
#define S5_CONNECT        0x01
#define S5_UDP_ASSOCIATE  0x03

/* --- parsers ----------------------------------------------------------- */

static int not_socks5(const uint8_t *b, char *err, size_t errlen)
{
	snprintf(err, errlen, "not a SOCKS5 server (its reply starts with 0x%02x%s)",
		 b[0], b[0] == 'H' ? ", which looks like HTTP: an http:// upstream?" : "");
	return -1;
}

int socks5_parse_choice(const uint8_t *b, size_t n, int *method, char *err, size_t errlen)
{
	if (n >= 1 && b[0] != 5)
		return not_socks5(b, err, errlen);
	if (n < 2)
		return 0;
	*method = b[1];
	return 2;
}

int socks5_parse_auth(const uint8_t *b, size_t n, char *err, size_t errlen)
{
	if (n >= 1 && b[0] != 1) {
		snprintf(err, errlen, "bad reply to username/password (version 0x%02x)", b[0]);
		return -1;
	}
	if (n < 2)
		return 0;
	if (b[1] != 0) {
		snprintf(err, errlen, "wrong username or password (refused by the "
			 "upstream, status %u)", b[1]);
		return -1;
	}
	return 2;
}

static const char *reply_name(unsigned rep)
{
	static const char *const names[] = {
		"succeeded", "general SOCKS server failure",
		"connection not allowed by the upstream's rules",
		"network unreachable", "host unreachable",
		"connection refused by destination", "TTL expired",
		"command not supported", "address type not supported",
	};

	return rep < sizeof(names) / sizeof(names[0]) ? names[rep] : "unknown reply code";
}

/* ATYP and what follows: the length of address and port, 0 for more, -1. */
static int addr_field_len(const uint8_t *b, size_t n)
{
	if (n < 1)
		return 0;
	switch (b[0]) {
	case 1: return 1 + 4 + 2;
	case 4: return 1 + 16 + 2;
	case 3: return n < 2 ? 0 : 1 + 1 + b[1] + 2;
	default: return -1;
	}
}

static void get_addr(const uint8_t *b, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (b[0] == 1) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		memcpy(&a->sin_addr, b + 1, 4);
		memcpy(&a->sin_port, b + 5, 2);
	} else if (b[0] == 4) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		memcpy(&a->sin6_addr, b + 1, 16);
		memcpy(&a->sin6_port, b + 17, 2);
	} else {
		/* A name: only its port is of use (the address is the upstream's). */
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		memcpy(&a->sin_port, b + 2 + b[1], 2);
	}
}

int socks5_parse_reply(const uint8_t *b, size_t n, struct sockaddr_storage *bound,
		       char *err, size_t errlen)
{
	int alen;

	if (n >= 1 && b[0] != 5)
		return not_socks5(b, err, errlen);
	if (n < 2)
		return 0;
	if (b[1] != 0) {
		snprintf(err, errlen, "SOCKS5 reply %u: %s", b[1], reply_name(b[1]));
		return -1;
	}
	if (n < 4)
		return 0;
	alen = addr_field_len(b + 3, n - 3);
	if (alen < 0) {
		snprintf(err, errlen, "bad SOCKS5 reply (address type %u)", b[3]);
		return -1;
	}
	if (alen == 0 || n < 3 + (size_t)alen)
		return 0;
	get_addr(b + 3, bound);
	return 3 + alen;
}

int socks5_udp_header_len(const uint8_t *b, size_t n)
{
	int alen;

	if (n < 4 || b[0] || b[1] || b[2])   /* fragments are not reassembled */
		return -1;
	alen = addr_field_len(b + 3, n - 3);
	if (alen <= 0 || n < 3 + (size_t)alen)
		return -1;
	return 3 + alen;
}

static int put_sockaddr(uint8_t *out, size_t cap, const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

		if (cap < 7)
			return -1;
		out[0] = 1;
		memcpy(out + 1, &a->sin_addr, 4);
		memcpy(out + 5, &a->sin_port, 2);
		return 7;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

		if (cap < 19)
			return -1;
		out[0] = 4;
		memcpy(out + 1, &a->sin6_addr, 16);
		memcpy(out + 17, &a->sin6_port, 2);
		return 19;
	}
	return -1;
}

int socks5_put_addr(uint8_t *out, size_t cap, const struct target *t)
{
	size_t len = strnlen(t->host, sizeof(t->host));
	uint16_t port;

	if (!len)
		return put_sockaddr(out, cap, &t->addr);
	if (len > 255 || cap < len + 4)
		return -1;
	port = htons(addr_port((const struct sockaddr *)&t->addr));
	out[0] = 3;
	out[1] = (uint8_t)len;
	memcpy(out + 2, t->host, len);
	memcpy(out + 2 + len, &port, 2);
	return (int)len + 4;
}

/* --- the handshake's SOCKS5 half ---------------------------------------- */

int socks5_begin(struct hs_io *io, const struct upstream *u)
{
	static const uint8_t plain[] = { 5, 1, S5_METHOD_NONE };
	static const uint8_t both[] = { 5, 2, S5_METHOD_NONE, S5_METHOD_USER };

	io->stage = "greeting";
	io->outlen = u->auth ? sizeof(both) : sizeof(plain);
	memcpy(io->out, u->auth ? both : plain, io->outlen);
	return 0;
}

static int request(struct hs_io *io, const struct target *t, int socktype)
{
	int alen;

	io->stage = "request";
	io->out[0] = 5;
	io->out[1] = socktype == SOCK_DGRAM ? S5_UDP_ASSOCIATE : S5_CONNECT;
	io->out[2] = 0;
	alen = socktype == SOCK_DGRAM
		? put_sockaddr(io->out + 3, sizeof(io->out) - 3, &io->udp_local)
		: socks5_put_addr(io->out + 3, sizeof(io->out) - 3, t);
	if (alen < 0) {
		snprintf(io->err, io->errlen, "the destination cannot be named in SOCKS5");
		return -1;
	}
	io->outlen = 3 + (size_t)alen;
	return 0;
}

static int auth(struct hs_io *io, const struct upstream *u)
{
	size_t ul = strlen(u->user), pl = strlen(u->pass);

	io->stage = "auth";
	io->out[0] = 1;
	io->out[1] = (uint8_t)ul;
	memcpy(io->out + 2, u->user, ul);
	io->out[2 + ul] = (uint8_t)pl;
	memcpy(io->out + 3 + ul, u->pass, pl);
	io->outlen = 3 + ul + pl;
	return 0;
}

int socks5_input(struct hs_io *io, const struct upstream *u, const struct target *t,
		 int socktype, const uint8_t *b, size_t n, struct sockaddr_storage *bound)
{
	int len, method = 0;

	io->outlen = 0;
	if (strcmp(io->stage, "greeting") == 0) {
		len = socks5_parse_choice(b, n, &method, io->err, io->errlen);
		if (len <= 0)
			return len;
		if (method == S5_METHOD_USER && u->auth)
			return auth(io, u) < 0 ? -1 : len;
		if (method == S5_METHOD_NONE)
			return request(io, t, socktype) < 0 ? -1 : len;
		snprintf(io->err, io->errlen, method == S5_METHOD_REFUSED
			 ? (u->auth ? "the upstream accepts no method offered (none, "
			    "username/password)" : "the upstream wants a username and "
			    "password: give them in the URL")
			 : "the upstream chose a method that was not offered");
		return -1;
	}
	if (strcmp(io->stage, "auth") == 0) {
		len = socks5_parse_auth(b, n, io->err, io->errlen);
		if (len <= 0)
			return len;
		return request(io, t, socktype) < 0 ? -1 : len;
	}
	len = socks5_parse_reply(b, n, bound, io->err, io->errlen);
	if (len > 0)
		io->done = 1;
	return len;
}

/* --- the UDP relay ------------------------------------------------------- */

struct s5udp {
	struct s5udp *prev, *next;
	char label[300];
	uint8_t hdr[262];            /* the header every datagram out starts with */
	size_t hdrlen;
	int ctl, udp, pair;
	struct event *ev_ctl, *ev_udp, *ev_pair;
};

static struct s5udp *relays;
static uint8_t rbuf[65536 + 262];

static void assoc_free(struct s5udp *r)
{
	if (r->ev_ctl)
		event_free(r->ev_ctl);
	if (r->ev_udp)
		event_free(r->ev_udp);
	if (r->ev_pair)
		event_free(r->ev_pair);
	if (r->ctl >= 0)
		close(r->ctl);
	if (r->udp >= 0)
		close(r->udp);
	if (r->pair >= 0)
		close(r->pair);
	if (r->prev)
		r->prev->next = r->next;
	else
		relays = r->next;
	if (r->next)
		r->next->prev = r->prev;
	free(r);
}

/* The upstream ended the association (its TCP connection closed): the
 * flow lives on until udp.c ends it, its datagrams dropped. */
static void on_ctl(evutil_socket_t fd, short what, void *arg)
{
	struct s5udp *r = arg;
	ssize_t n = recv(fd, rbuf, sizeof(rbuf), MSG_DONTWAIT);

	(void)what;
	if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
		return;
	log_warn("upstream %s: UDP association ended by the upstream (%s); the "
		 "flow's datagrams are dropped until it times out", r->label,
		 n == 0 ? "it closed the TCP connection" : strerror(errno));
	event_free(r->ev_ctl);
	event_free(r->ev_udp);
	r->ev_ctl = r->ev_udp = NULL;
	close(r->ctl);
	close(r->udp);
	r->ctl = r->udp = -1;
}

static void on_relay(evutil_socket_t fd, short what, void *arg)
{
	struct s5udp *r = arg;
	int i, hl;

	(void)what;
	for (i = 0; i < 64; i++) {
		ssize_t n = recv(fd, rbuf, sizeof(rbuf), MSG_DONTWAIT);

		if (n < 0)
			return;
		hl = socks5_udp_header_len(rbuf, (size_t)n);
		if (hl < 0) {
			log_debug("upstream %s: malformed or fragmented UDP datagram "
				  "from the relay: dropped", r->label);
			continue;
		}
		send(r->pair, rbuf + hl, (size_t)n - (size_t)hl, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
}

static void on_flow(evutil_socket_t fd, short what, void *arg)
{
	struct s5udp *r = arg;
	int i;

	(void)what;
	for (i = 0; i < 64; i++) {
		ssize_t n = recv(fd, rbuf + r->hdrlen, sizeof(rbuf) - r->hdrlen, MSG_DONTWAIT);

		if (n < 0)
			return;
		if (n == 0) {
			struct pollfd p = { .fd = fd, .events = POLLRDHUP };

			/* A closed pair, or an empty datagram? */
			if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP))) {
				assoc_free(r);
				return;
			}
		}
		if (r->udp < 0)
			continue;
		memcpy(rbuf, r->hdr, r->hdrlen);
		if (send(r->udp, rbuf, r->hdrlen + (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			log_debug("upstream %s: UDP datagram dropped: %s", r->label,
				  strerror(errno));
	}
}

int socks5_udp_relay(struct daemon *d, const struct upstream *u, const struct target *t,
		     int ctl, int udp, char *err, size_t errlen)
{
	struct s5udp *r = calloc(1, sizeof(*r));
	int sv[2] = { -1, -1 }, len;

	if (!r || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "UDP relay: %s", r ? strerror(errno) : "out of memory");
		free(r);
		return -1;
	}
	snprintf(r->label, sizeof(r->label), "%s", u->label);
	r->ctl = ctl;
	r->udp = udp;
	r->pair = sv[0];
	len = socks5_put_addr(r->hdr + 3, sizeof(r->hdr) - 3, t);
	r->hdrlen = 3 + (size_t)(len < 0 ? 0 : len);
	r->ev_ctl = event_new(d->base, ctl, EV_READ | EV_PERSIST, on_ctl, r);
	r->ev_udp = event_new(d->base, udp, EV_READ | EV_PERSIST, on_relay, r);
	r->ev_pair = event_new(d->base, sv[0], EV_READ | EV_PERSIST, on_flow, r);
	r->next = relays;
	if (relays)
		relays->prev = r;
	relays = r;
	if (len < 0 || !r->ev_ctl || !r->ev_udp || !r->ev_pair ||
	    event_add(r->ev_ctl, NULL) < 0 || event_add(r->ev_udp, NULL) < 0 ||
	    event_add(r->ev_pair, NULL) < 0) {
		snprintf(err, errlen, "UDP relay: %s", len < 0
			 ? "the destination cannot be named in SOCKS5" : "out of memory");
		r->ctl = r->udp = -1;    /* the caller's still */
		close(sv[1]);
		assoc_free(r);
		return -1;
	}
	return sv[1];
}

void upstream_shutdown(void)
{
	while (relays)
		assoc_free(relays);
}
