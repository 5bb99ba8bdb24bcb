/* The DNS server on a real event loop.  The "resolver" is a UDP and TCP
 * socket pair on 127.0.0.1 (or ::1) inside this process; nothing leaves
 * the machine. */
#include "check.h"
#include "dns.h"
#include "dnsserver.h"
#include "fakeip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#define MARK 0x5e7

enum mode { ANSWER, SILENT, TRUNCATE, SERVFAIL, JUNK_FIRST };

struct resolver {
	struct event_base *base;
	enum mode mode;
	int udp;
	struct event *uev;
	struct evconnlistener *lis;
	struct bufferevent *conns[16];
	int nconns;
	struct sockaddr_storage addr;
	int udp_queries, tcp_queries;
	uint8_t last[4096];        /* the last answer sent */
	size_t last_len;
	uint16_t last_id;          /* ID of the last query seen */
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* A plausible answer to query: A 1.2.3.4, AAAA 2001:db8::1, names
 * starting with "nx" NXDOMAIN, anything else one TXT record (big: 700
 * bytes of it); truncated: header and question with TC. */
static size_t make_answer(const uint8_t *query, size_t qlen, int truncated,
			  int big, int rcode, uint8_t *out, size_t cap)
{
	struct dns_query q;
	size_t n;

	if (dns_parse_query(query, qlen, &q, NULL) != 0 ||
	    cap < 12 + q.qname_wire_len + 4 + 12 + 800)
		return 0;
	if (q.qname[0] == 'n' && q.qname[1] == 'x')
		rcode = DNS_RCODE_NXDOMAIN;
	int an = !truncated && rcode == 0;
	put16(out, q.id);
	put16(out + 2, (uint16_t)(DNS_FLAG_QR | (q.flags & DNS_FLAG_RD) |
				  DNS_FLAG_RA | (truncated ? DNS_FLAG_TC : 0) |
				  rcode));
	put16(out + 4, 1);
	put16(out + 6, (uint16_t)an);
	put16(out + 8, 0);
	put16(out + 10, 0);
	memcpy(out + 12, q.qname_wire, q.qname_wire_len);
	n = 12 + q.qname_wire_len;
	put16(out + n, q.qtype);
	put16(out + n + 2, q.qclass);
	n += 4;
	if (!an)
		return n;
	uint8_t rdata[800];
	size_t rdlen;
	uint16_t type = q.qtype;
	if (type == DNS_TYPE_A) {
		memcpy(rdata, "\1\2\3\4", 4);
		rdlen = 4;
	} else if (type == DNS_TYPE_AAAA) {
		inet_pton(AF_INET6, "2001:db8::1", rdata);
		rdlen = 16;
	} else {
		type = DNS_TYPE_TXT;
		rdlen = big ? 700 : 6;
		for (size_t i = 0; i < rdlen; i += 100) {
			size_t l = rdlen - i < 100 ? rdlen - i : 100;
			rdata[i] = (uint8_t)(l - 1);
			memset(rdata + i + 1, 't', l - 1);
		}
	}
	put16(out + n, 0xc00c);
	put16(out + n + 2, type);
	put16(out + n + 4, q.qclass);
	put16(out + n + 6, 0);
	put16(out + n + 8, 60);
	put16(out + n + 10, (uint16_t)rdlen);
	memcpy(out + n + 12, rdata, rdlen);
	return n + 12 + rdlen;
}

static void resolver_udp_cb(evutil_socket_t fd, short what, void *arg)
{
	struct resolver *r = arg;
	uint8_t q[4096], a[4096];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	ssize_t n;
	size_t an;

	(void)what;
	n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
	if (n < 12)
		return;
	r->udp_queries++;
	r->last_id = get16(q);
	if (r->mode == SILENT)
		return;
	if (r->mode == JUNK_FIRST) {
		uint8_t junk[4096];
		size_t jn = make_answer(q, (size_t)n, 0, 0, 0, junk, sizeof(junk));
		put16(junk, (uint16_t)(get16(q) + 1)); /* wrong ID */
		sendto(fd, junk, jn, 0, (struct sockaddr *)&from, fl);
		sendto(fd, "garbage", 7, 0, (struct sockaddr *)&from, fl);
	}
	an = make_answer(q, (size_t)n, r->mode == TRUNCATE, 0,
			 r->mode == SERVFAIL ? DNS_RCODE_SERVFAIL : 0, a,
			 sizeof(a));
	if (!an)
		return;
	memcpy(r->last, a, an);
	r->last_len = an;
	sendto(fd, a, an, 0, (struct sockaddr *)&from, fl);
}

static void resolver_tcp_read(struct bufferevent *bev, void *arg)
{
	struct resolver *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint8_t q[4096], a[4096], hdr[2];

	while (evbuffer_get_length(in) >= 2) {
		evbuffer_copyout(in, hdr, 2);
		size_t n = get16(hdr);
		if (evbuffer_get_length(in) < 2 + n || n > sizeof(q))
			return;
		evbuffer_drain(in, 2);
		evbuffer_remove(in, q, n);
		r->tcp_queries++;
		r->last_id = get16(q);
		size_t an = make_answer(q, n, 0, 1, 0, a, sizeof(a));
		memcpy(r->last, a, an);
		r->last_len = an;
		put16(hdr, (uint16_t)an);
		bufferevent_write(bev, hdr, 2);
		bufferevent_write(bev, a, an);
	}
}

static void resolver_accept(struct evconnlistener *lis, evutil_socket_t fd,
			    struct sockaddr *sa, int len, void *arg)
{
	struct resolver *r = arg;

	(void)lis;
	(void)sa;
	(void)len;
	if (r->nconns == 16) {
		close(fd);
		return;
	}
	struct bufferevent *bev = bufferevent_socket_new(r->base, fd,
							 BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, resolver_tcp_read, NULL, NULL, r);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	r->conns[r->nconns++] = bev;
}

static socklen_t ss_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
					: sizeof(struct sockaddr_in6);
}

/* UDP and TCP on the same loopback port; NULL if the family is absent. */
static struct resolver *resolver_new(struct event_base *base, int family,
				     enum mode mode)
{
	struct resolver *r = calloc(1, sizeof(*r));

	r->base = base;
	r->mode = mode;
	for (int tries = 0; tries < 20; tries++) {
		memset(&r->addr, 0, sizeof(r->addr));
		r->addr.ss_family = (sa_family_t)family;
		if (family == AF_INET)
			((struct sockaddr_in *)&r->addr)->sin_addr.s_addr =
				htonl(INADDR_LOOPBACK);
		else
			((struct sockaddr_in6 *)&r->addr)->sin6_addr = in6addr_loopback;
		r->udp = socket(family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
		socklen_t l = ss_len(&r->addr);
		if (r->udp < 0 ||
		    bind(r->udp, (struct sockaddr *)&r->addr, l) < 0) {
			if (r->udp >= 0)
				close(r->udp);
			free(r);
			return NULL;
		}
		getsockname(r->udp, (struct sockaddr *)&r->addr, &l);
		r->lis = evconnlistener_new_bind(base, resolver_accept, r,
				LEV_OPT_CLOSE_ON_FREE, 16,
				(struct sockaddr *)&r->addr, (int)l);
		if (r->lis)
			break;
		close(r->udp);
	}
	if (!r->lis) {
		free(r);
		return NULL;
	}
	r->uev = event_new(base, r->udp, EV_READ | EV_PERSIST,
			   resolver_udp_cb, r);
	event_add(r->uev, NULL);
	return r;
}

static void resolver_free(struct resolver *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->nconns; i++)
		bufferevent_free(r->conns[i]);
	evconnlistener_free(r->lis);
	event_free(r->uev);
	close(r->udp);
	free(r);
}

/* An address where nothing listens: ICMP port unreachable. */
static struct sockaddr_storage closed_port(void)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s = (struct sockaddr_in *)&ss;
	socklen_t l = sizeof(*s);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	memset(&ss, 0, sizeof(ss));
	s->sin_family = AF_INET;
	s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)s, l);
	getsockname(fd, (struct sockaddr *)s, &l);
	close(fd);
	return ss;
}

/* ---- client side ---- */

struct reply {
	struct dns_server *srv;
	int called;
	int null;
	uint8_t buf[4096];
	size_t len;
	char error[400];            /* dns_server_reply_error, "" = none */
};

static void on_reply(const uint8_t *msg, size_t len, void *arg)
{
	struct reply *r = arg;
	const char *e = dns_server_reply_error(r->srv);

	snprintf(r->error, sizeof(r->error), "%s", e ? e : "");
	r->called++;
	r->null = msg == NULL;
	r->len = len;
	if (msg && len <= sizeof(r->buf))
		memcpy(r->buf, msg, len);
}

static void expire_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(int *)arg = 1;
}

/* Runs the loop until *flag or ms pass; returns the milliseconds spent. */
static long run_until(struct event_base *base, const int *flag, int ms)
{
	struct timespec t0, t1;
	int expired = 0;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event *ev = evtimer_new(base, expire_cb, &expired);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	evtimer_add(ev, &tv);
	while (!(flag && *flag) && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(ev);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0.tv_sec) * 1000 +
	       (t1.tv_nsec - t0.tv_nsec) / 1000000;
}

static struct dns_pending *ask(struct dns_server *s, uint16_t id,
			       const char *name, uint16_t type,
			       uint16_t udp_size, int tcp, struct reply *r)
{
	uint8_t q[512];
	ssize_t n = dns_build_query(id, DNS_FLAG_RD, name, type, DNS_CLASS_IN,
				    udp_size, q, sizeof(q));

	memset(r, 0, sizeof(*r));
	r->srv = s;
	CHECK(n > 0);
	return dns_server_query(s, q, (size_t)n, tcp, on_reply, r);
}

/* The first answer record of a reply. */
struct rr {
	uint16_t id, flags, an, type, rdlen;
	uint32_t ttl;
	const uint8_t *rdata;
};

static int parse_reply(const struct reply *r, struct rr *rr)
{
	size_t off = 12, wl;
	uint8_t wire[DNS_NAME_WIRE_MAX];

	memset(rr, 0, sizeof(*rr));
	if (r->null || r->len < 12)
		return -1;
	rr->id = get16(r->buf);
	rr->flags = get16(r->buf + 2);
	rr->an = get16(r->buf + 6);
	if (get16(r->buf + 4) == 1) {
		if (dns_read_name(r->buf, r->len, &off, wire, &wl) < 0)
			return -1;
		off += 4;
	}
	if (!rr->an)
		return 0;
	if (dns_read_name(r->buf, r->len, &off, wire, &wl) < 0 ||
	    off + 10 > r->len)
		return -1;
	rr->type = get16(r->buf + off);
	rr->ttl = (uint32_t)get16(r->buf + off + 4) << 16 |
		  get16(r->buf + off + 6);
	rr->rdlen = get16(r->buf + off + 8);
	rr->rdata = r->buf + off + 10;
	return off + 10 + rr->rdlen <= r->len ? 0 : -1;
}

static const char *ptr_target(const struct reply *r, char *text, size_t cap)
{
	struct rr rr;
	uint8_t wire[DNS_NAME_WIRE_MAX];
	size_t wl;

	if (parse_reply(r, &rr) < 0 || rr.type != DNS_TYPE_PTR)
		return NULL;
	size_t off = (size_t)(rr.rdata - r->buf);
	if (dns_read_name(r->buf, r->len, &off, wire, &wl) < 0 ||
	    dns_name_to_text(wire, wl, text, cap) < 0)
		return NULL;
	return text;
}

static struct dns_config base_config(void)
{
	struct dns_config c;

	memset(&c, 0, sizeof(c));
	c.fakeip_enabled = 1;
	c.mark = MARK;
	c.timeout_ms = 2000;
	c.attempt_timeout_ms = 1000;
	return c;
}

/* Frees in the documented order: server, one loop pass, the rest. */
static void teardown(struct event_base *base, struct dns_server *s,
		     struct resolver *r1, struct resolver *r2)
{
	dns_server_free(s);
	event_base_loop(base, EVLOOP_NONBLOCK);
	resolver_free(r1);
	resolver_free(r2);
	event_base_free(base);
}

static void test_fake_answers(void)
{
	struct event_base *base = event_base_new();
	struct resolver *res = resolver_new(base, AF_INET, ANSWER);
	struct dns_config c = base_config();
	const char *excl[] = { "*.Corp.example", "lan.", "", "." };
	char err[256], text[DNS_NAME_TEXT_MAX], as[INET6_ADDRSTRLEN];
	struct reply r;
	struct rr rr;

	c.resolvers = &res->addr;
	c.n_resolvers = 1;
	c.exclude = excl;
	c.n_exclude = 4;
	struct dns_server *s = dns_server_new(base, &c, err, sizeof(err));
	CHECK(s != NULL);

	/* A: answered before dns_server_query returns */
	CHECK(ask(s, 0x100, "Example.COM", DNS_TYPE_A, 0, 0, &r) == NULL);
	CHECK(r.called == 1 && parse_reply(&r, &rr) == 0);
	CHECK(rr.id == 0x100 && DNS_RCODE(rr.flags) == 0 && rr.an == 1);
	CHECK_STREQ(r.error, "");
	CHECK(rr.type == DNS_TYPE_A && rr.rdlen == 4 && rr.ttl == 1);
	CHECK_STREQ(inet_ntop(AF_INET, rr.rdata, as, sizeof(as)), "198.18.0.1");
	CHECK(memcmp(r.buf + 12, "\7Example\3COM", 12) == 0);

	CHECK(ask(s, 0x101, "example.com.", DNS_TYPE_AAAA, 1232, 1, &r) == NULL);
	CHECK(r.called == 1 && parse_reply(&r, &rr) == 0);
	CHECK(rr.type == DNS_TYPE_AAAA && rr.rdlen == 16);
	CHECK_STREQ(inet_ntop(AF_INET6, rr.rdata, as, sizeof(as)),
		    "fd73:7072:6f78:7900::1");

	CHECK(ask(s, 0x102, "second.example", DNS_TYPE_A, 0, 0, &r) == NULL);
	CHECK(parse_reply(&r, &rr) == 0 && rr.rdlen == 4);
	CHECK_STREQ(inet_ntop(AF_INET, rr.rdata, as, sizeof(as)), "198.18.0.2");

	/* PTR back, both families; unmapped fake address: NXDOMAIN */
	CHECK(ask(s, 0x103, "1.0.18.198.in-addr.arpa", DNS_TYPE_PTR, 0, 0,
		  &r) == NULL);
	CHECK_STREQ(ptr_target(&r, text, sizeof(text)), "example.com");
	CHECK(ask(s, 0x104, "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.7.8.7.f.6"
		  ".2.7.0.7.3.7.d.f.ip6.arpa", DNS_TYPE_PTR, 0, 0, &r) == NULL);
	CHECK_STREQ(ptr_target(&r, text, sizeof(text)), "second.example");
	CHECK(ask(s, 0x105, "99.0.18.198.in-addr.arpa", DNS_TYPE_PTR, 0, 0,
		  &r) == NULL);
	CHECK(parse_reply(&r, &rr) == 0 && rr.id == 0x105);
	CHECK(DNS_RCODE(rr.flags) == DNS_RCODE_NXDOMAIN && rr.an == 0);
	CHECK_STREQ(r.error, "");

	/* the proxy's view */
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	int in = -1;
	inet_pton(AF_INET, "198.18.0.1", &sin.sin_addr);
	CHECK_STREQ(dns_server_fake_name(s, (struct sockaddr *)&sin, &in),
		    "example.com");
	CHECK(in == 1);
	inet_pton(AF_INET6, "::ffff:198.18.0.2", &sin6.sin6_addr);
	CHECK_STREQ(dns_server_fake_name(s, (struct sockaddr *)&sin6, &in),
		    "second.example");
	inet_pton(AF_INET6, "fd73:7072:6f78:7900::1", &sin6.sin6_addr);
	CHECK_STREQ(dns_server_fake_name(s, (struct sockaddr *)&sin6, &in),
		    "example.com");
	inet_pton(AF_INET, "198.18.3.3", &sin.sin_addr);
	CHECK(dns_server_fake_name(s, (struct sockaddr *)&sin, &in) == NULL);
	CHECK(in == 1);
	inet_pton(AF_INET, "8.8.8.8", &sin.sin_addr);
	CHECK(dns_server_fake_name(s, (struct sockaddr *)&sin, &in) == NULL);
	CHECK(in == 0);
	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	CHECK(dns_server_fake_name(s, (struct sockaddr *)&sin6, &in) == NULL);
	CHECK(in == 0);

	/* real answers: excluded suffixes, IP literals, arpa, localhost,
	 * other types and classes, other PTRs */
	const struct { const char *name; uint16_t type; } real[] = {
		{ "host.corp.example", DNS_TYPE_A },
		{ "CORP.example", DNS_TYPE_AAAA },
		{ "x.lan", DNS_TYPE_A },
		{ "1.2.3.4", DNS_TYPE_A },
		{ "::1", DNS_TYPE_AAAA },
		{ "localhost", DNS_TYPE_A },
		{ "4.4.8.8.in-addr.arpa", DNS_TYPE_PTR },
		{ "example.com", DNS_TYPE_MX },
		{ "example.com", DNS_TYPE_TXT },
		{ "example.com", DNS_TYPE_HTTPS },
		{ "example.com", DNS_TYPE_ANY },
		{ "", DNS_TYPE_A },
	};
	for (size_t i = 0; i < sizeof(real) / sizeof(real[0]); i++) {
		int before = res->udp_queries;
		uint16_t id = (uint16_t)(0x200 + i);
		CHECK(ask(s, id, real[i].name, real[i].type, 0, 0, &r) != NULL);
		CHECK(r.called == 0);
		run_until(base, &r.called, 2000);
		CHECK(r.called == 1 && res->udp_queries == before + 1);
		CHECK(parse_reply(&r, &rr) == 0 && rr.id == id);
		CHECK_STREQ(r.error, "");
		/* unchanged but for the ID */
		CHECK(r.len == res->last_len &&
		      memcmp(r.buf + 2, res->last + 2, r.len - 2) == 0);
		if (real[i].type == DNS_TYPE_A)
			CHECK(rr.rdlen == 4 && memcmp(rr.rdata, "\1\2\3\4", 4) == 0);
	}
	/* "notcorp.example" is not under corp.example */
	CHECK(ask(s, 0x300, "notcorp.example", DNS_TYPE_A, 0, 0, &r) == NULL);
	CHECK(parse_reply(&r, &rr) == 0 && rr.rdata[0] == 198);
	/* class CH is forwarded */
	uint8_t q[512];
	ssize_t qn = dns_build_query(0x301, 0, "version.bind", DNS_TYPE_TXT,
				     3, 0, q, sizeof(q));
	memset(&r, 0, sizeof(r));
	r.srv = s;
	CHECK(dns_server_query(s, q, (size_t)qn, 0, on_reply, &r) != NULL);
	run_until(base, &r.called, 2000);
	CHECK(r.called == 1);

	teardown(base, s, res, NULL);
}

static void test_malformed(void)
{
	struct event_base *base = event_base_new();
	struct dns_config c = base_config();
	char err[256];
	struct reply r;
	struct rr rr;
	struct dns_server *s = dns_server_new(base, &c, err, sizeof(err));
	uint8_t q[512];

	CHECK(s != NULL);
	memset(&r, 0, sizeof(r));
	r.srv = s;
	CHECK(dns_server_query(s, (const uint8_t *)"\1\2\3\4\5", 5, 0,
			       on_reply, &r) == NULL);
	CHECK(r.called == 1 && r.null && r.len == 0);
	CHECK(strstr(r.error, "shorter than a header") != NULL);

	ssize_t n = dns_build_query(0x77, 0, "a.b", DNS_TYPE_A, 1, 0, q,
				    sizeof(q));
	q[2] |= 0x80; /* QR */
	memset(&r, 0, sizeof(r));
	r.srv = s;
	CHECK(dns_server_query(s, q, (size_t)n, 0, on_reply, &r) == NULL);
	CHECK(parse_reply(&r, &rr) == 0 && rr.id == 0x77);
	CHECK(DNS_RCODE(rr.flags) == DNS_RCODE_FORMERR);
	CHECK(strstr(r.error, "malformed query") && strstr(r.error, "QR"));
	q[2] = 0x28; /* opcode UPDATE */
	memset(&r, 0, sizeof(r));
	r.srv = s;
	CHECK(dns_server_query(s, q, (size_t)n, 1, on_reply, &r) == NULL);
	CHECK(parse_reply(&r, &rr) == 0);
	CHECK(DNS_RCODE(rr.flags) == DNS_RCODE_NOTIMP);
	CHECK(strstr(r.error, "unsupported query") != NULL);
	q[2] = 0;
	q[12] = 0xc0; /* a pointer loop */
	q[13] = 12;
	memset(&r, 0, sizeof(r));
	r.srv = s;
	CHECK(dns_server_query(s, q, (size_t)n, 0, on_reply, &r) == NULL);
	CHECK(parse_reply(&r, &rr) == 0 && get16(r.buf + 4) == 0);
	CHECK(DNS_RCODE(rr.flags) == DNS_RCODE_FORMERR);

	/* no resolvers: real answers are SERVFAIL, at once */
	CHECK(ask(s, 0x78, "example.com", DNS_TYPE_MX, 0, 0, &r) == NULL);
	CHECK(parse_reply(&r, &rr) == 0 && rr.id == 0x78);
	CHECK(DNS_RCODE(rr.flags) == DNS_RCODE_SERVFAIL);
	CHECK_STREQ(r.error, "no resolver configured");

	teardown(base, s, NULL, NULL);

	/* bad configuration */
	c.v4_range = "198.18.0.0/99";
	err[0] = '\0';
	base = event_base_new();
	CHECK(dns_server_new(base, &c, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "198.18.0.0/99") != NULL);
	event_base_free(base);
}

static void test_truncated_retry(void)
{
	struct event_base *base = event_base_new();
	struct resolver *res = resolver_new(base, AF_INET, TRUNCATE);
	struct dns_config c = base_config();
	char err[256];
	struct reply r;
	struct rr rr;

	c.resolvers = &res->addr;
	c.n_resolvers = 1;
	struct dns_server *s = dns_server_new(base, &c, err, sizeof(err));

	/* a UDP client without EDNS cannot take 700 bytes: it gets the
	 * truncated answer and comes back over TCP */
	CHECK(ask(s, 0x11, "big.example", DNS_TYPE_TXT, 0, 0, &r) != NULL);
	run_until(base, &r.called, 3000);
	CHECK(r.called == 1 && parse_reply(&r, &rr) == 0 && rr.id == 0x11);
	CHECK((rr.flags & DNS_FLAG_TC) && rr.an == 0);
	CHECK(res->udp_queries == 1 && res->tcp_queries == 1);

	/* with EDNS 4096 it gets the whole answer */
	CHECK(ask(s, 0x12, "big.example", DNS_TYPE_TXT, 4096, 0, &r) != NULL);
	run_until(base, &r.called, 3000);
	CHECK(r.called == 1 && parse_reply(&r, &rr) == 0 && rr.id == 0x12);
	CHECK(!(rr.flags & DNS_FLAG_TC) && rr.an == 1 && rr.rdlen == 700);
	CHECK(r.len == res->last_len &&
	      memcmp(r.buf + 2, res->last + 2, r.len - 2) == 0);

	/* a TCP client too */
	CHECK(ask(s, 0x13, "big.example", DNS_TYPE_TXT, 0, 1, &r) != NULL);
	run_until(base, &r.called, 3000);
	CHECK(r.called == 1 && parse_reply(&r, &rr) == 0 && rr.id == 0x13);
	CHECK(rr.an == 1 && rr.rdlen == 700 && r.len > 512);
	CHECK(res->udp_queries == 3 && res->tcp_queries == 3);
	teardown(base, s, res, NULL);
}

static void test_timeouts_and_failover(void)
{
	struct event_base *base = event_base_new();
	struct resolver *silent = resolver_new(base, AF_INET, SILENT);
	struct resolver *good = resolver_new(base, AF_INET, ANSWER);
	struct dns_config c = base_config();
	char err[256];
	struct reply r, r2;
	struct rr rr;
	long ms;

	/* nothing answers: SERVFAIL within the total bound */
	c.resolvers = &silent->addr;
	c.n_resolvers = 1;
	c.timeout_ms = 300;
	c.attempt_timeout_ms = 100;
	struct dns_server *s = dns_server_new(base, &c, err, sizeof(err));
	CHECK(ask(s, 0x21, "example.com", DNS_TYPE_MX, 0, 0, &r) != NULL);
	ms = run_until(base, &r.called, 3000);
	CHECK(r.called == 1 && parse_reply(&r, &rr) == 0 && rr.id == 0x21);
	CHECK(DNS_RCODE(rr.flags) == DNS_RCODE_SERVFAIL);
	/* Not before the total bound; after it only as late as a loaded
	 * machine runs the timer.  Asked again on each attempt's timeout:
	 * three times at most in 300 ms, twice at least, however late the
	 * attempt timers fire. */
	CHECK(ms >= 250 && ms < 3000);
	CHECK(silent->udp_queries >= 2 && silent->udp_queries <= 3);
	char sil[64];
	snprintf(sil, sizeof(sil), "127.0.0.1:%u",
		 ntohs(((struct sockaddr_in *)&silent->addr)->sin_port));
	CHECK(strstr(r.error, "within 300 ms") && strstr(r.error, sil));

	/* too many in flight: SERVFAIL at once; cancel: no callback */
	dns_server_free(s);
	c.max_pending = 1;
	s = dns_server_new(base, &c, err, sizeof(err));
	struct dns_pending *p = ask(s, 0x22, "a.example", DNS_TYPE_TXT, 0, 0, &r);
	CHECK(p != NULL);
	CHECK(ask(s, 0x23, "b.example", DNS_TYPE_TXT, 0, 0, &r2) == NULL);
	CHECK(parse_reply(&r2, &rr) == 0 && rr.id == 0x23);
	CHECK(DNS_RCODE(rr.flags) == DNS_RCODE_SERVFAIL);
	CHECK(strstr(r2.error, "too many") != NULL);
	dns_pending_cancel(p);
	run_until(base, NULL, 400);
	CHECK(r.called == 0);
	/* and the slot is free again; freeing the server cancels it */
	CHECK(ask(s, 0x24, "c.example", DNS_TYPE_TXT, 0, 0, &r) != NULL);
	dns_server_free(s);
	run_until(base, NULL, 400);
	CHECK(r.called == 0);

	/* a refusing resolver, then a silent one, then a good one */
	struct sockaddr_storage list[3] = { closed_port(), silent->addr,
					     good->addr };
	c.resolvers = list;
	c.n_resolvers = 3;
	c.max_pending = 0;
	c.timeout_ms = 2000;
	c.attempt_timeout_ms = 200;
	s = dns_server_new(base, &c, err, sizeof(err));
	CHECK(ask(s, 0x25, "example.com", DNS_TYPE_A, 0, 0, &r) == NULL);
	CHECK(ask(s, 0x26, "example.com", DNS_TYPE_MX, 0, 0, &r) != NULL);
	ms = run_until(base, &r.called, 3000);
	CHECK(r.called == 1 && parse_reply(&r, &rr) == 0 && rr.id == 0x26);
	CHECK(DNS_RCODE(rr.flags) == 0 && rr.an == 1);
	CHECK(ms >= 150 && ms < 3000);
	CHECK(good->udp_queries == 1);
	dns_server_free(s);

	/* SERVFAIL from the first: the second one is asked */
	struct resolver *failing = resolver_new(base, AF_INET, SERVFAIL);
	struct sockaddr_storage list2[2] = { failing->addr, good->addr };
	c.resolvers = list2;
	c.n_resolvers = 2;
	s = dns_server_new(base, &c, err, sizeof(err));
	CHECK(ask(s, 0x27, "example.com", DNS_TYPE_MX, 0, 0, &r) != NULL);
	run_until(base, &r.called, 3000);
	CHECK(r.called == 1 && parse_reply(&r, &rr) == 0 && rr.id == 0x27);
	CHECK(DNS_RCODE(rr.flags) == 0 && rr.an == 1);
	CHECK_STREQ(r.error, "");
	CHECK(failing->udp_queries == 1 && good->udp_queries == 2);
	dns_server_free(s);
	/* ...and when it is the only one, its SERVFAIL is relayed */
	c.n_resolvers = 1;
	s = dns_server_new(base, &c, err, sizeof(err));
	CHECK(ask(s, 0x28, "example.com", DNS_TYPE_MX, 0, 0, &r) != NULL);
	ms = run_until(base, &r.called, 3000);
	CHECK(r.called == 1 && parse_reply(&r, &rr) == 0 && rr.id == 0x28);
	/* At once: not asked again after the 200 ms attempt timeout. */
	CHECK(DNS_RCODE(rr.flags) == DNS_RCODE_SERVFAIL && ms < 2000);
	CHECK(failing->udp_queries == 2);
	CHECK(strstr(r.error, "answered SERVFAIL") != NULL);
	dns_server_free(s);

	/* every resolver refuses at once: SERVFAIL long before the bound */
	struct sockaddr_storage dead[2] = { closed_port(), closed_port() };
	c.resolvers = dead;
	c.n_resolvers = 2;
	s = dns_server_new(base, &c, err, sizeof(err));
	CHECK(ask(s, 0x2a, "example.com", DNS_TYPE_MX, 0, 0, &r) != NULL);
	ms = run_until(base, &r.called, 3000);
	CHECK(r.called == 1 && parse_reply(&r, &rr) == 0 && rr.id == 0x2a);
	CHECK(DNS_RCODE(rr.flags) == DNS_RCODE_SERVFAIL && ms < 2000);
	CHECK(strstr(r.error, "every resolver failed") &&
	      strstr(r.error, "refused"));
	dns_server_free(s);
	c.n_resolvers = 1;

	/* forged and garbage datagrams before the real answer are ignored */
	struct resolver *junk = resolver_new(base, AF_INET, JUNK_FIRST);
	c.resolvers = &junk->addr;
	s = dns_server_new(base, &c, err, sizeof(err));
	CHECK(ask(s, 0x29, "example.com", DNS_TYPE_MX, 0, 0, &r) != NULL);
	run_until(base, &r.called, 3000);
	CHECK(r.called == 1 && parse_reply(&r, &rr) == 0 && rr.id == 0x29);
	CHECK(DNS_RCODE(rr.flags) == 0 && rr.an == 1);
	resolver_free(failing);
	resolver_free(junk);
	teardown(base, s, silent, good);
}

static void test_ipv6_resolver(void)
{
	struct event_base *base = event_base_new();
	struct resolver *res = resolver_new(base, AF_INET6, ANSWER);
	struct dns_config c = base_config();
	char err[256];
	struct reply r;
	struct rr rr;

	if (!res) {
		printf("  (no ::1 here; skipped)\n");
		event_base_free(base);
		return;
	}
	c.resolvers = &res->addr;
	c.n_resolvers = 1;
	c.fakeip_enabled = 0;
	struct dns_server *s = dns_server_new(base, &c, err, sizeof(err));
	CHECK(ask(s, 0x31, "example.com", DNS_TYPE_A, 0, 0, &r) != NULL);
	run_until(base, &r.called, 3000);
	CHECK(r.called == 1 && parse_reply(&r, &rr) == 0 && rr.id == 0x31);
	CHECK(rr.rdlen == 4 && memcmp(rr.rdata, "\1\2\3\4", 4) == 0);
	/* FakeIP disabled: no fake names either */
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int in = -1;
	inet_pton(AF_INET, "198.18.0.1", &sin.sin_addr);
	CHECK(dns_server_fake_name(s, (struct sockaddr *)&sin, &in) == NULL);
	CHECK(in == 0);
	teardown(base, s, res, NULL);
}

struct resolved {
	int called, err;
	char msg[400];
	char addr[INET6_ADDRSTRLEN];
	int family;
};

static void on_resolved(int err, const char *msg, const struct sockaddr *sa,
			socklen_t len, void *arg)
{
	struct resolved *x = arg;

	x->called++;
	x->err = err;
	snprintf(x->msg, sizeof(x->msg), "%s", msg ? msg : "");
	x->addr[0] = '\0';
	if (err == 0 && sa) {
		x->family = sa->sa_family;
		if (sa->sa_family == AF_INET && len == sizeof(struct sockaddr_in))
			inet_ntop(AF_INET, &((const struct sockaddr_in *)
					     (const void *)sa)->sin_addr,
				  x->addr, sizeof(x->addr));
		else if (sa->sa_family == AF_INET6 &&
			 len == sizeof(struct sockaddr_in6))
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
					      (const void *)sa)->sin6_addr,
				  x->addr, sizeof(x->addr));
	}
}

static void test_resolve(void)
{
	struct event_base *base = event_base_new();
	struct resolver *res = resolver_new(base, AF_INET, ANSWER);
	struct dns_config c = base_config();
	char err[256];
	struct resolved a, b, x, y, z, n, bad, cancelled;

	c.resolvers = &res->addr;
	c.n_resolvers = 1;
	c.timeout_ms = 1000;
	c.attempt_timeout_ms = 300;
	struct dns_server *s = dns_server_new(base, &c, err, sizeof(err));
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&x, 0, sizeof(x));
	memset(&y, 0, sizeof(y));
	memset(&z, 0, sizeof(z));
	memset(&n, 0, sizeof(n));
	memset(&bad, 0, sizeof(bad));
	memset(&cancelled, 0, sizeof(cancelled));

	CHECK(dns_server_resolve(s, "host.test", AF_INET, on_resolved, &a));
	CHECK(dns_server_resolve(s, "host.test", AF_INET6, on_resolved, &b));
	CHECK(dns_server_resolve(s, "host.test", AF_UNSPEC, on_resolved, &x));
	CHECK(dns_server_resolve(s, "5.6.7.8", AF_UNSPEC, on_resolved, &y));
	CHECK(dns_server_resolve(s, "nx.test", AF_INET, on_resolved, &n));
	CHECK(dns_server_resolve(s, "host.test", 12345, on_resolved, &bad));
	struct dns_resolving *cr = dns_server_resolve(s, "other.test", AF_INET,
						      on_resolved, &cancelled);
	CHECK(cr != NULL);
	/* never before returning, even for a literal */
	CHECK(a.called + b.called + x.called + y.called + n.called +
	      bad.called == 0);
	dns_resolving_cancel(cr);
	for (int i = 0; i < 100 && !(a.called && b.called && x.called &&
				     y.called && n.called && bad.called); i++)
		run_until(base, NULL, 20);
	CHECK(a.called == 1 && a.err == 0);
	CHECK_STREQ(a.addr, "1.2.3.4");
	CHECK(b.called == 1 && b.err == 0);
	CHECK_STREQ(b.addr, "2001:db8::1");
	CHECK(x.called == 1 && x.err == 0 && x.family == AF_INET);
	CHECK_STREQ(x.addr, "1.2.3.4");
	CHECK(y.called == 1 && y.err == 0);
	CHECK_STREQ(y.addr, "5.6.7.8");
	CHECK(n.called == 1 && n.err == ENOENT && strstr(n.msg, "nx.test"));
	CHECK(bad.called == 1 && bad.err == EINVAL);
	run_until(base, NULL, 100);
	CHECK(cancelled.called == 0);

	/* nothing answers: ETIMEDOUT within the bound */
	res->mode = SILENT;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK(dns_server_resolve(s, "slow.test", AF_INET, on_resolved, &z));
	run_until(base, &z.called, 3000);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 +
		  (t1.tv_nsec - t0.tv_nsec) / 1000000;
	CHECK(z.called == 1 && z.err == ETIMEDOUT && ms >= 900 && ms < 3000);
	CHECK(strstr(z.msg, "slow.test") != NULL);

	/* in flight when the server goes: no callback, nothing leaks */
	memset(&z, 0, sizeof(z));
	CHECK(dns_server_resolve(s, "slow2.test", AF_UNSPEC, on_resolved, &z));
	run_until(base, NULL, 50);
	teardown(base, s, res, NULL);
	CHECK(z.called == 0);
}

static void test_store(void)
{
	char dir[] = "/tmp/sproxy-test-dnsserver.XXXXXX";
	char path[200], err[256], line[256], all[2048] = "";
	struct event_base *base = event_base_new();
	struct dns_config c = base_config();
	struct reply r;
	struct rr rr;
	struct stat stt;
	char as[INET_ADDRSTRLEN];

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/fakeip.txt", dir);
	c.store_path = path;
	struct dns_server *s = dns_server_new(base, &c, err, sizeof(err));
	CHECK(ask(s, 1, "persist.test", DNS_TYPE_A, 0, 0, &r) == NULL);
	CHECK(ask(s, 2, "second.test", DNS_TYPE_AAAA, 0, 0, &r) == NULL);
	run_until(base, NULL, 1300);
	CHECK(stat(path, &stt) == -1); /* not yet: in batches */
	/* the rest is saved on the way out */
	CHECK(ask(s, 3, "third.test", DNS_TYPE_A, 0, 0, &r) == NULL);
	dns_server_free(s);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		strncat(all, line, sizeof(all) - strlen(all) - 1);
	if (f)
		fclose(f);
	CHECK(strstr(all, "198.18.0.3 third.test\n") != NULL);
	snprintf(line, sizeof(line), "%s.tmp", path);
	CHECK(stat(line, &stt) == -1);

	/* restart: same names, same addresses */
	s = dns_server_new(base, &c, err, sizeof(err));
	struct sockaddr_in sin = { .sin_family = AF_INET };
	inet_pton(AF_INET, "198.18.0.3", &sin.sin_addr);
	CHECK_STREQ(dns_server_fake_name(s, (struct sockaddr *)&sin, NULL),
		    "third.test");
	CHECK(ask(s, 4, "PERSIST.test", DNS_TYPE_A, 0, 0, &r) == NULL);
	CHECK(parse_reply(&r, &rr) == 0 && rr.rdlen == 4);
	CHECK_STREQ(inet_ntop(AF_INET, rr.rdata, as, sizeof(as)), "198.18.0.1");
	CHECK(ask(s, 5, "new.test", DNS_TYPE_A, 0, 0, &r) == NULL);
	CHECK(parse_reply(&r, &rr) == 0 && rr.rdlen == 4);
	CHECK_STREQ(inet_ntop(AF_INET, rr.rdata, as, sizeof(as)), "198.18.0.4");
	teardown(base, s, NULL, NULL);
	unlink(path);
	rmdir(dir);
}

static void test_resolv_conf(void)
{
	char path[] = "/tmp/sproxy-test-resolv.XXXXXX";
	int fd = mkstemp(path);
	const char *text = "# comment\nsearch example\nnameserver 127.0.0.53\n"
			   "nameserver ::1\nnameserver bogus\nnameserver\n"
			   "options edns0\nnameserver 10.0.0.1 # x\n";
	struct sockaddr_storage ss[4];

	CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	CHECK(dns_resolv_conf(path, ss, 4) == 3);
	CHECK(ss[0].ss_family == AF_INET && ss[1].ss_family == AF_INET6);
	CHECK(ntohs(((struct sockaddr_in *)&ss[0])->sin_port) == 53);
	CHECK(dns_resolv_conf(path, ss, 1) == 1);
	CHECK(dns_resolv_conf("/nonexistent/resolv.conf", ss, 4) == 0);
	unlink(path);
}

int main(void)
{
	RUN("dnsserver", test_fake_answers);
	RUN("dnsserver", test_malformed);
	RUN("dnsserver", test_truncated_retry);
	RUN("dnsserver", test_timeouts_and_failover);
	RUN("dnsserver", test_ipv6_resolver);
	RUN("dnsserver", test_resolve);
	RUN("dnsserver", test_store);
	RUN("dnsserver", test_resolv_conf);
	CHECK_EXIT();
}
