/* Fuzzes every path that reads DNS bytes from the network: queries from
 * apps (codec and the whole synchronous server path: FakeIP answers, PTR,
 * errors) and answers from resolvers (validation, ID rewrite, TC).
 * The first input byte picks the path. */
#include "dns.h"
#include "dnsserver.h"
#include "fakeip.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* A parsed query's fields must be self-consistent, and everything built
 * from it must parse back as an answer to it. */
static void check_query(const uint8_t *data, size_t size)
{
	struct dns_query q;
	uint8_t out[2048], wire[DNS_NAME_WIRE_MAX];
	int rc = dns_parse_query(data, size, &q, NULL);

	if (rc < 0) {
		if (size >= DNS_HDR_LEN)
			abort();
		return;
	}
	if (q.id != get16(data))
		abort();
	ssize_t n = dns_build_error(&q, rc ? rc : DNS_RCODE_SERVFAIL, out,
				    sizeof(out));
	if (n < DNS_HDR_LEN || get16(out) != q.id || !(out[2] & 0x80))
		abort();
	if (rc != 0)
		return;
	if (!q.has_question || q.qname_wire_len < 1 ||
	    q.qname_wire_len > DNS_NAME_WIRE_MAX || q.udp_size < DNS_UDP_MIN)
		abort();
	/* text is a faithful rendering of the wire name */
	int wl = dns_name_from_text(q.qname, wire, sizeof(wire));
	if (wl != (int)q.qname_wire_len || memcmp(wire, q.qname_wire, (size_t)wl))
		abort();
	uint16_t flags;
	if (dns_check_response(out, (size_t)n, q.id, &q, &flags) != 0 ||
	    DNS_RCODE(flags) != DNS_RCODE_SERVFAIL)
		abort();
	if (q.qtype == DNS_TYPE_A || q.qtype == DNS_TYPE_AAAA) {
		uint8_t rd[16] = { 198, 18, 0, 1 };
		n = dns_build_addr_answer(&q, rd, q.qtype == DNS_TYPE_A ? 4 : 16,
					  1, out, sizeof(out));
		if (n < 0 || dns_check_response(out, (size_t)n, q.id, &q, NULL))
			abort();
	}
	n = dns_build_ptr_answer(&q, "example.com", 1, out, sizeof(out));
	if (n < 0 || dns_check_response(out, (size_t)n, q.id, &q, NULL))
		abort();
	union { struct in_addr a4; struct in6_addr a6; } a;
	int af = dns_parse_ptr_name(q.qname, &a);
	if (af) {
		char back[128];
		int bl = af == AF_INET ? dns_ptr_name4(&a.a4, back, sizeof(back))
				       : dns_ptr_name6(&a.a6, back, sizeof(back));
		if (bl < 0 || strncasecmp(back, q.qname, (size_t)bl) != 0)
			abort();
	}
	(void)dns_name_is_ip_literal(q.qname);
}

struct seen {
	struct dns_server *srv;
	int calls;
	uint16_t id;
	int have_id;
};

static void on_reply(const uint8_t *reply, size_t len, void *arg)
{
	struct seen *s = arg;

	s->calls++;
	/* a drop always says why, for the connection log */
	if (!reply && !dns_server_reply_error(s->srv))
		abort();
	if (!reply) {
		if (len != 0 || s->have_id)
			abort(); /* a readable header always gets an answer */
		return;
	}
	if (len < DNS_HDR_LEN || len > 1024 || get16(reply) != s->id ||
	    !(reply[2] & 0x80))
		abort();
}

static struct dns_server *server(void)
{
	static struct event_base *base;
	static struct dns_server *srv;
	static const char *excl[] = { "lan", "corp.example" };
	char err[256];

	if (srv)
		return srv;
	base = event_base_new();
	struct dns_config c = { .fakeip_enabled = 1, .pool_size = 64,
				.exclude = excl, .n_exclude = 2 };
	srv = dns_server_new(base, &c, err, sizeof(err));
	if (!srv)
		abort();
	return srv;
}

/* The server with no resolvers answers everything synchronously. */
static void check_server(const uint8_t *data, size_t size)
{
	struct dns_server *srv = server();
	struct seen s = { srv, 0, 0, 0 };

	if (size >= DNS_HDR_LEN) {
		s.id = get16(data);
		s.have_id = 1;
	}
	if (dns_server_query(srv, data, size, size & 1, on_reply, &s) != NULL ||
	    s.calls != 1)
		abort();
	/* and the proxy's lookups, with addresses from the input */
	if (size >= 16) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
		int in;
		memcpy(&sin.sin_addr, data + size - 4, 4);
		sin.sin_addr.s_addr = htonl(0xc6120000 | (ntohl(sin.sin_addr.s_addr) & 0x3f));
		const char *n = dns_server_fake_name(srv, (struct sockaddr *)&sin, &in);
		if (!in || (n && strlen(n) > FAKEIP_NAME_MAX))
			abort();
		memcpy(&sin6.sin6_addr, data + size - 16, 16);
		(void)dns_server_fake_name(srv, (struct sockaddr *)&sin6, &in);
	}
}

/* A resolver's answer to a query taken from the start of the input. */
static void check_response(const uint8_t *data, size_t size)
{
	struct dns_query q;
	uint16_t flags;

	if (size < 1)
		return;
	size_t ql = data[0];
	if (ql > size - 1)
		return;
	if (dns_parse_query(data + 1, ql, &q, NULL) != 0)
		return;
	const uint8_t *r = data + 1 + ql;
	size_t rl = size - 1 - ql;
	if (rl < 2)
		return;
	uint16_t expect = get16(r);
	if (dns_check_response(r, rl, expect, &q, &flags) == 0) {
		if (rl < DNS_HDR_LEN || flags != get16(r + 2) ||
		    !(flags & DNS_FLAG_QR))
			abort();
		uint8_t *copy = malloc(rl);
		memcpy(copy, r, rl);
		dns_set_id(copy, q.id);
		if (dns_get_id(copy) != q.id || memcmp(copy + 2, r + 2, rl - 2))
			abort();
		free(copy);
	}
	if (dns_check_response(r, rl, (uint16_t)(expect + 1), &q, &flags) == 0)
		abort(); /* another ID never passes */
}

/* Any bytes as a forwarded answer losing its SVCB/HTTPS address hints:
 * nothing changes unless a hint went, the header never, and a second pass
 * finds none. */
static void check_svc_hints(const uint8_t *data, size_t size)
{
	uint8_t *m = malloc(size ? size : 1);
	int n;

	memcpy(m, data, size);
	n = dns_hide_svc_hints(m, size);
	if (n < 0 || (n == 0 && memcmp(m, data, size) != 0))
		abort();
	if (size >= DNS_HDR_LEN && memcmp(m, data, DNS_HDR_LEN) != 0)
		abort();
	if (dns_hide_svc_hints(m, size) != 0)
		abort();
	free(m);
}

/* Names at every offset of a message. */
static void check_names(const uint8_t *data, size_t size)
{
	uint8_t wire[DNS_NAME_WIRE_MAX], back[DNS_NAME_WIRE_MAX];
	char text[DNS_NAME_TEXT_MAX];
	size_t wl;

	for (size_t off = DNS_HDR_LEN; off < size && off < 80; off++) {
		size_t o = off;
		if (dns_read_name(data, size, &o, wire, &wl) < 0)
			continue;
		if (wl < 1 || wl > DNS_NAME_WIRE_MAX || o <= off || o > size)
			abort();
		if (dns_name_to_text(wire, wl, text, sizeof(text)) < 0)
			abort();
		int bl = dns_name_from_text(text, back, sizeof(back));
		if (bl != (int)wl || memcmp(back, wire, wl) != 0)
			abort();
	}
	/* and text from the input as a name */
	if (size > 0 && size < 600) {
		char t[600];
		memcpy(t, data, size);
		t[size] = '\0';
		int n = dns_name_from_text(t, back, sizeof(back));
		if (n > DNS_NAME_WIRE_MAX)
			abort();
		(void)dns_parse_ptr_name(t, &back);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] & 3) {
	case 0:
		check_query(data + 1, size - 1);
		break;
	case 1:
		check_server(data + 1, size - 1);
		break;
	case 2:
		check_response(data + 1, size - 1);
		break;
	case 3:
		check_names(data + 1, size - 1);
		break;
	}
	if (data[0] & 4)
		check_svc_hints(data + 1, size - 1);
	return 0;
}
