/* DNS codec: queries in, responses out, every malformed class. */
#include "check.h"
#include "dns.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* What dig 9.18 sends for "dig example.com": RD+AD, an OPT with a cookie. */
static const uint8_t dig_query[] = {
	0xab, 0xcd, 0x01, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
	0x07, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0x03, 'c', 'o', 'm', 0x00,
	0x00, 0x01, 0x00, 0x01,
	0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c,
	0x00, 0x0a, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8,
};

static void test_parse_real_query(void)
{
	struct dns_query q;
	const char *why = NULL;

	CHECK(dns_parse_query(dig_query, sizeof(dig_query), &q, &why) ==
	      DNS_RCODE_NOERROR);
	CHECK(q.id == 0xabcd);
	CHECK(q.flags == 0x0120);
	CHECK(q.has_question);
	CHECK_STREQ(q.qname, "example.com");
	CHECK(q.qtype == DNS_TYPE_A);
	CHECK(q.qclass == DNS_CLASS_IN);
	CHECK(q.has_opt);
	CHECK(q.udp_size == 1232);
	CHECK(q.qname_wire_len == 13);
	CHECK(memcmp(q.qname_wire, dig_query + 12, 13) == 0);
}

static void test_build_query_roundtrip(void)
{
	uint8_t buf[512];
	struct dns_query q;
	ssize_t n;

	n = dns_build_query(7, DNS_FLAG_RD, "WwW.Example.ORG.", DNS_TYPE_AAAA,
			    DNS_CLASS_IN, 0, buf, sizeof(buf));
	CHECK(n == 12 + 17 + 4);
	CHECK(dns_parse_query(buf, (size_t)n, &q, NULL) == 0);
	CHECK(q.id == 7 && q.qtype == DNS_TYPE_AAAA && !q.has_opt);
	CHECK(q.udp_size == 512);
	CHECK_STREQ(q.qname, "WwW.Example.ORG");

	n = dns_build_query(8, 0, "a.b", DNS_TYPE_TXT, DNS_CLASS_IN, 4096,
			    buf, sizeof(buf));
	CHECK(n > 0 && dns_parse_query(buf, (size_t)n, &q, NULL) == 0);
	CHECK(q.has_opt && q.udp_size == 4096);
	/* OPT sizes below 512 count as 512 */
	n = dns_build_query(8, 0, "a.b", DNS_TYPE_TXT, DNS_CLASS_IN, 100,
			    buf, sizeof(buf));
	CHECK(n > 0 && dns_parse_query(buf, (size_t)n, &q, NULL) == 0);
	CHECK(q.udp_size == 512);
	/* root query */
	n = dns_build_query(9, 0, ".", DNS_TYPE_NS, DNS_CLASS_IN, 0, buf,
			    sizeof(buf));
	CHECK(n == 12 + 1 + 4);
	CHECK(dns_parse_query(buf, (size_t)n, &q, NULL) == 0);
	CHECK_STREQ(q.qname, "");
	/* too small a buffer */
	CHECK(dns_build_query(9, 0, "example.com", DNS_TYPE_A, 1, 0, buf,
			      20) == -1);
}

/* Builds a message: header (id 0x1111) then body bytes. */
static size_t msg(uint8_t *out, uint16_t flags, uint16_t qd, uint16_t an,
		  uint16_t ns, uint16_t ar, const uint8_t *body, size_t blen)
{
	uint16_t h[6] = { 0x1111, flags, qd, an, ns, ar };

	for (int i = 0; i < 6; i++) {
		out[2 * i] = (uint8_t)(h[i] >> 8);
		out[2 * i + 1] = (uint8_t)h[i];
	}
	memcpy(out + 12, body, blen);
	return 12 + blen;
}

static const uint8_t q_example[] = {
	7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1
};

static int parse_rc(const uint8_t *m, size_t len, struct dns_query *q)
{
	return dns_parse_query(m, len, q, NULL);
}

static void test_malformed(void)
{
	uint8_t m[70000];
	struct dns_query q;
	size_t n;

	/* no header: drop */
	CHECK(parse_rc(dig_query, 11, &q) == -1);
	CHECK(parse_rc(dig_query, 0, &q) == -1);
	CHECK(parse_rc(NULL, 0, &q) == -1);

	/* truncated question: FORMERR, the ID is known, no question */
	for (size_t cut = 12; cut < 12 + sizeof(q_example); cut++) {
		n = msg(m, 0x0100, 1, 0, 0, 0, q_example, cut - 12);
		CHECK(parse_rc(m, n, &q) == DNS_RCODE_FORMERR);
		CHECK(q.id == 0x1111 && !q.has_question);
	}
	n = msg(m, 0x0100, 1, 0, 0, 0, q_example, sizeof(q_example));
	CHECK(parse_rc(m, n, &q) == 0);

	/* QDCOUNT 0 and 2 */
	n = msg(m, 0x0100, 0, 0, 0, 0, q_example, sizeof(q_example));
	CHECK(parse_rc(m, n, &q) == DNS_RCODE_FORMERR);
	n = msg(m, 0x0100, 2, 0, 0, 0, q_example, sizeof(q_example));
	CHECK(parse_rc(m, n, &q) == DNS_RCODE_FORMERR);

	/* a response */
	n = msg(m, 0x8100, 1, 0, 0, 0, q_example, sizeof(q_example));
	CHECK(parse_rc(m, n, &q) == DNS_RCODE_FORMERR);

	/* opcodes other than QUERY: NOTIMP */
	for (unsigned op = 1; op < 16; op++) {
		n = msg(m, (uint16_t)(op << 11), 1, 0, 0, 0, q_example,
			sizeof(q_example));
		CHECK(parse_rc(m, n, &q) == DNS_RCODE_NOTIMP);
	}

	/* pointer to itself, forward, past the end, into the header */
	static const uint8_t self[] = { 0xc0, 12, 0, 1, 0, 1 };
	static const uint8_t fwd[] = { 0xc0, 14, 1, 'a', 0, 0, 1, 0, 1 };
	static const uint8_t far[] = { 0xff, 0xff, 0, 1, 0, 1 };
	static const uint8_t hdr[] = { 0xc0, 2, 0, 1, 0, 1 };
	static const uint8_t loop2[] = { 1, 'a', 0xc0, 12, 0, 1, 0, 1 };
	const struct { const uint8_t *b; size_t l; } bad[] = {
		{ self, sizeof(self) }, { fwd, sizeof(fwd) },
		{ far, sizeof(far) }, { hdr, sizeof(hdr) },
		{ loop2, sizeof(loop2) },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = msg(m, 0, 1, 0, 0, 0, bad[i].b, bad[i].l);
		CHECK(parse_rc(m, n, &q) == DNS_RCODE_FORMERR);
	}

	/* label types 0x40 and 0x80 (a "length" > 63) */
	static const uint8_t l64[] = { 0x40, 'a', 0, 0, 1, 0, 1 };
	static const uint8_t l80[] = { 0x80, 'a', 0, 0, 1, 0, 1 };
	n = msg(m, 0, 1, 0, 0, 0, l64, sizeof(l64));
	CHECK(parse_rc(m, n, &q) == DNS_RCODE_FORMERR);
	n = msg(m, 0, 1, 0, 0, 0, l80, sizeof(l80));
	CHECK(parse_rc(m, n, &q) == DNS_RCODE_FORMERR);

	/* names of 255 bytes pass, 256 do not */
	uint8_t body[400];
	size_t b = 0;
	for (int i = 0; i < 3; i++) {
		body[b++] = 63;
		memset(body + b, 'x', 63);
		b += 63;
	}
	body[b++] = 61;
	memset(body + b, 'y', 61);
	b += 61;
	body[b++] = 0;
	CHECK(b == 255);
	memcpy(body + b, "\0\1\0\1", 4);
	n = msg(m, 0, 1, 0, 0, 0, body, b + 4);
	CHECK(parse_rc(m, n, &q) == 0);
	CHECK(q.qname_wire_len == 255 && strlen(q.qname) == 253);
	body[3 * 64] = 62;
	memmove(body + 3 * 64 + 1 + 62, body + 3 * 64 + 1 + 61, 5);
	body[3 * 64 + 62] = 'y';
	n = msg(m, 0, 1, 0, 0, 0, body, b + 5);
	CHECK(parse_rc(m, n, &q) == DNS_RCODE_FORMERR);

	/* counts that lie: an additional record that is not there */
	n = msg(m, 0, 1, 0, 0, 1, q_example, sizeof(q_example));
	CHECK(parse_rc(m, n, &q) == DNS_RCODE_FORMERR);
	CHECK(q.has_question); /* FORMERR can echo it */
	n = msg(m, 0, 1, 65535, 65535, 65535, q_example, sizeof(q_example));
	CHECK(parse_rc(m, n, &q) == DNS_RCODE_FORMERR);

	/* two OPT records; an OPT with a name */
	static const uint8_t opt[] = { 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0 };
	static const uint8_t opt_named[] = { 1, 'a', 0, 0, 41, 4, 0, 0, 0, 0,
					     0, 0, 0 };
	memcpy(body, q_example, sizeof(q_example));
	memcpy(body + sizeof(q_example), opt, sizeof(opt));
	memcpy(body + sizeof(q_example) + sizeof(opt), opt, sizeof(opt));
	n = msg(m, 0, 1, 0, 0, 1, body, sizeof(q_example) + sizeof(opt));
	CHECK(parse_rc(m, n, &q) == 0 && q.has_opt && q.udp_size == 1024);
	n = msg(m, 0, 1, 0, 0, 2, body, sizeof(q_example) + 2 * sizeof(opt));
	CHECK(parse_rc(m, n, &q) == DNS_RCODE_FORMERR);
	memcpy(body + sizeof(q_example), opt_named, sizeof(opt_named));
	n = msg(m, 0, 1, 0, 0, 1, body, sizeof(q_example) + sizeof(opt_named));
	CHECK(parse_rc(m, n, &q) == DNS_RCODE_FORMERR);
	/* OPT in the answer section */
	memcpy(body + sizeof(q_example), opt, sizeof(opt));
	n = msg(m, 0, 1, 1, 0, 0, body, sizeof(q_example) + sizeof(opt));
	CHECK(parse_rc(m, n, &q) == DNS_RCODE_FORMERR);

	/* an answer record in a query, compressed against the question:
	 * accepted (some tools do it) */
	static const uint8_t rr[] = { 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4,
				      1, 2, 3, 4 };
	memcpy(body + sizeof(q_example), rr, sizeof(rr));
	n = msg(m, 0, 1, 1, 0, 0, body, sizeof(q_example) + sizeof(rr));
	CHECK(parse_rc(m, n, &q) == 0);

	/* oversized */
	memset(m, 0, sizeof(m));
	n = msg(m, 0, 1, 0, 0, 0, q_example, sizeof(q_example));
	CHECK(parse_rc(m, 65536, &q) == DNS_RCODE_FORMERR);
	CHECK(parse_rc(m, 65535, &q) == 0); /* trailing zeros are fine */

	/* zone transfers */
	n = dns_build_query(1, 0, "example.com", DNS_TYPE_AXFR, 1, 0, m, 512);
	CHECK(parse_rc(m, n, &q) == DNS_RCODE_NOTIMP);
}

static void test_compression(void)
{
	/* question example.com, answer "www" + pointer to it, then a name
	 * that points at the "www" label (a chain of two pointers) */
	uint8_t m[512];
	size_t off, wl;
	uint8_t wire[DNS_NAME_WIRE_MAX];
	char text[DNS_NAME_TEXT_MAX];
	static const uint8_t body[] = {
		7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
		0, 1, 0, 1,
		3, 'w', 'w', 'w', 0xc0, 12,                 /* at 29 */
		0xc0, 29,                                   /* at 35 */
		1, 'x', 0xc0, 35,                           /* at 37 */
	};
	size_t n = msg(m, 0x8180, 1, 0, 0, 0, body, sizeof(body));

	off = 29;
	CHECK(dns_read_name(m, n, &off, wire, &wl) == 0);
	CHECK(off == 35 && wl == 17);
	CHECK(dns_name_to_text(wire, wl, text, sizeof(text)) == 15);
	CHECK_STREQ(text, "www.example.com");
	off = 35;
	CHECK(dns_read_name(m, n, &off, wire, &wl) == 0 && off == 37);
	CHECK(dns_name_to_text(wire, wl, text, sizeof(text)) > 0);
	CHECK_STREQ(text, "www.example.com");
	off = 37;
	CHECK(dns_read_name(m, n, &off, wire, &wl) == 0 && off == 41);
	CHECK(dns_name_to_text(wire, wl, text, sizeof(text)) > 0);
	CHECK_STREQ(text, "x.www.example.com");

	/* a pointer back into a name that then jumps forward again */
	static const uint8_t loop[] = {
		1, 'a', 0xc0, 16,     /* 12: a -> 16 (forward: refused) */
		1, 'b', 0xc0, 12,     /* 16: b -> 12 */
	};
	n = msg(m, 0, 1, 0, 0, 0, loop, sizeof(loop));
	off = 16;
	CHECK(dns_read_name(m, n, &off, wire, &wl) == -1);
	off = 12;
	CHECK(dns_read_name(m, n, &off, wire, &wl) == -1);
}

/* Pointer chains: a name may take only so many hops, and a query's
 * answer, authority and additional records are skipped without following
 * their names' pointers, so a 64 KiB query costs one pass over it. */
static void test_pointer_chains(void)
{
	static uint8_t m[65536];
	uint8_t wire[DNS_NAME_WIRE_MAX];
	struct dns_query q;
	size_t off, wl, n = msg(m, 0, 1, 0, 0, 0, q_example, sizeof(q_example));

	/* 300 pointers at 29.., each to the one before, the first to 12 */
	for (size_t i = 0; i < 300; i++) {
		size_t at = n + 2 * i, to = i ? at - 2 : 12;
		m[at] = (uint8_t)(0xc0 | to >> 8);
		m[at + 1] = (uint8_t)to;
	}
	off = n + 2 * 9;  /* 10 hops: a name may chain that far */
	CHECK(dns_read_name(m, n + 600, &off, wire, &wl) == 0 && wl == 13);
	off = n + 2 * 299; /* 300 hops: no name needs that */
	CHECK(dns_read_name(m, n + 600, &off, wire, &wl) == -1);

	/* the attack: one TXT record full of such a chain, then thousands
	 * of records named by its last link; one OPT at the end */
	size_t k = 16000, r = 2600;
	n = msg(m, 0, 1, (uint16_t)(1 + r), 0, 1, q_example, sizeof(q_example));
	uint8_t rr[] = { 0, 0, DNS_TYPE_TXT, 0, 1, 0, 0, 0, 0, 0, 0 };
	rr[9] = (uint8_t)((2 * k) >> 8);
	rr[10] = (uint8_t)(2 * k);
	memcpy(m + n, rr, sizeof(rr));
	n += sizeof(rr);
	size_t chain = n;
	for (size_t i = 0; i < k; i++) {
		size_t at = chain + 2 * i, to = i ? at - 2 : 12;
		m[at] = (uint8_t)(0xc0 | to >> 8);
		m[at + 1] = (uint8_t)to;
	}
	n += 2 * k;
	size_t last = chain + 2 * (k - 1);
	for (size_t i = 0; i < r; i++) {
		uint8_t x[12] = { (uint8_t)(0xc0 | last >> 8), (uint8_t)last,
				  0, DNS_TYPE_A, 0, 1, 0, 0, 0, 0, 0, 0 };
		memcpy(m + n, x, sizeof(x));
		n += sizeof(x);
	}
	uint8_t opt[] = { 0, 0, DNS_TYPE_OPT, 0x10, 0, 0, 0, 0, 0, 0, 0 };
	memcpy(m + n, opt, sizeof(opt));
	n += sizeof(opt);
	CHECK(n <= 65535);
	CHECK(parse_rc(m, n, &q) == DNS_RCODE_NOERROR);
	CHECK(q.has_opt && q.udp_size == 4096);
	CHECK_STREQ(q.qname, "example.com");

	/* an answer record whose name points forward is never read */
	static const uint8_t fwd[] = {
		7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1,
		0xc0, 60, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0,
	};
	n = msg(m, 0, 1, 1, 0, 0, fwd, sizeof(fwd));
	CHECK(parse_rc(m, n, &q) == DNS_RCODE_NOERROR);
	/* but a record cut short is still refused */
	CHECK(parse_rc(m, n - 1, &q) == DNS_RCODE_FORMERR);
}

static void test_text_names(void)
{
	static const uint8_t odd[] = { 6, 'a', '.', 'b', ' ', '\\', 0, 1, 'C', 0 };
	char text[DNS_NAME_TEXT_MAX];
	uint8_t wire[DNS_NAME_WIRE_MAX];

	CHECK(dns_name_to_text(odd, sizeof(odd), text, sizeof(text)) > 0);
	CHECK_STREQ(text, "a\\.b\\032\\\\\\000.C");
	CHECK(dns_name_from_text(text, wire, sizeof(wire)) == sizeof(odd));
	CHECK(memcmp(wire, odd, sizeof(odd)) == 0);
	CHECK(dns_name_to_text(odd, sizeof(odd), text, 5) == -1);
	CHECK(dns_name_to_text(odd, sizeof(odd) - 1, text, sizeof(text)) == -1);

	CHECK(dns_name_from_text("", wire, sizeof(wire)) == 1 && wire[0] == 0);
	CHECK(dns_name_from_text(".", wire, sizeof(wire)) == 1);
	CHECK(dns_name_from_text("a.", wire, sizeof(wire)) == 3);
	CHECK(dns_name_from_text("a..b", wire, sizeof(wire)) == -1);
	CHECK(dns_name_from_text(".a", wire, sizeof(wire)) == -1);
	CHECK(dns_name_from_text("a..", wire, sizeof(wire)) == -1);
	CHECK(dns_name_from_text("a\\", wire, sizeof(wire)) == -1);
	CHECK(dns_name_from_text("\\256", wire, sizeof(wire)) == -1);
	char big[300];
	memset(big, 'x', 64);
	big[64] = '\0';
	CHECK(dns_name_from_text(big, wire, sizeof(wire)) == -1);
	big[63] = '\0';
	CHECK(dns_name_from_text(big, wire, sizeof(wire)) == 65);
	/* 4 labels of 63 = 256 wire bytes */
	for (int i = 0; i < 4; i++) {
		memset(big + 64 * i, 'x', 63);
		big[64 * i + 63] = '.';
	}
	big[255] = '\0';
	CHECK(dns_name_from_text(big, wire, sizeof(wire)) == -1);
	big[253] = '\0'; /* 3 x 63 + 61 */
	CHECK(dns_name_from_text(big, wire, sizeof(wire)) == 255);

	CHECK(dns_name_wire_equal((const uint8_t *)"\3ABC\0", 5,
				  (const uint8_t *)"\3abc\0", 5));
	CHECK(!dns_name_wire_equal((const uint8_t *)"\3ABD\0", 5,
				   (const uint8_t *)"\3abc\0", 5));
}

/* Parses a response built by us, field by field. */
static void test_build_answers(void)
{
	uint8_t qb[512], out[1024];
	struct dns_query q;
	ssize_t qn, n;
	uint16_t flags;

	qn = dns_build_query(0x4242, DNS_FLAG_RD | DNS_FLAG_CD, "ExAmple.COM",
			     DNS_TYPE_A, DNS_CLASS_IN, 1232, qb, sizeof(qb));
	CHECK(dns_parse_query(qb, (size_t)qn, &q, NULL) == 0);
	uint8_t a4[4] = { 198, 18, 0, 7 };
	n = dns_build_addr_answer(&q, a4, 4, 1, out, sizeof(out));
	CHECK(n == 12 + 17 + 16);
	CHECK(rd16(out) == 0x4242);
	CHECK(rd16(out + 2) == (DNS_FLAG_QR | DNS_FLAG_RD | DNS_FLAG_RA));
	CHECK(rd16(out + 4) == 1 && rd16(out + 6) == 1);
	CHECK(rd16(out + 8) == 0 && rd16(out + 10) == 0);
	CHECK(memcmp(out + 12, "\7ExAmple\3COM\0", 13) == 0); /* 0x20 echo */
	CHECK(rd16(out + 25) == DNS_TYPE_A && rd16(out + 27) == DNS_CLASS_IN);
	const uint8_t *rr = out + 29;
	CHECK(rd16(rr) == 0xc00c);
	CHECK(rd16(rr + 2) == DNS_TYPE_A && rd16(rr + 4) == DNS_CLASS_IN);
	CHECK(rd32(rr + 6) == 1 && rd16(rr + 10) == 4);
	CHECK(memcmp(rr + 12, a4, 4) == 0);
	CHECK(dns_check_response(out, (size_t)n, 0x4242, &q, &flags) == 0);
	CHECK(flags & DNS_FLAG_QR);
	/* a short buffer, a wrong rdata size */
	CHECK(dns_build_addr_answer(&q, a4, 4, 1, out, (size_t)n - 1) == -1);
	CHECK(dns_build_addr_answer(&q, a4, 16, 1, out, sizeof(out)) == -1);

	qn = dns_build_query(0x4343, DNS_FLAG_RD, "v6.test", DNS_TYPE_AAAA,
			     DNS_CLASS_IN, 0, qb, sizeof(qb));
	CHECK(dns_parse_query(qb, (size_t)qn, &q, NULL) == 0);
	struct in6_addr a6;
	inet_pton(AF_INET6, "fd73:7072:6f78:7900::7", &a6);
	n = dns_build_addr_answer(&q, &a6, 16, 300, out, sizeof(out));
	CHECK(n == 12 + 9 + 4 + 12 + 16);
	rr = out + 12 + 9 + 4;
	CHECK(rd16(rr + 2) == DNS_TYPE_AAAA && rd32(rr + 6) == 300);
	CHECK(rd16(rr + 10) == 16 && memcmp(rr + 12, &a6, 16) == 0);
	CHECK(dns_check_response(out, (size_t)n, 0x4343, &q, NULL) == 0);

	/* PTR */
	qn = dns_build_query(5, 0, "7.0.18.198.in-addr.arpa", DNS_TYPE_PTR,
			     DNS_CLASS_IN, 0, qb, sizeof(qb));
	CHECK(dns_parse_query(qb, (size_t)qn, &q, NULL) == 0);
	n = dns_build_ptr_answer(&q, "example.com", 1, out, sizeof(out));
	CHECK(n > 0);
	size_t off = 12 + q.qname_wire_len + 4;
	rr = out + off;
	CHECK(rd16(rr + 2) == DNS_TYPE_PTR && rd16(rr + 10) == 13);
	size_t roff = off + 12, wl;
	uint8_t wire[DNS_NAME_WIRE_MAX];
	char text[DNS_NAME_TEXT_MAX];
	CHECK(dns_read_name(out, (size_t)n, &roff, wire, &wl) == 0);
	CHECK(roff == (size_t)n);
	CHECK(dns_name_to_text(wire, wl, text, sizeof(text)) > 0);
	CHECK_STREQ(text, "example.com");
	CHECK(dns_build_ptr_answer(&q, "a..b", 1, out, sizeof(out)) == -1);

	/* errors echo the question */
	n = dns_build_error(&q, DNS_RCODE_SERVFAIL, out, sizeof(out));
	CHECK(n == (ssize_t)(12 + q.qname_wire_len + 4));
	CHECK(rd16(out) == 5 && DNS_RCODE(rd16(out + 2)) == DNS_RCODE_SERVFAIL);
	CHECK(rd16(out + 4) == 1 && rd16(out + 6) == 0);
	CHECK(dns_check_response(out, (size_t)n, 5, &q, &flags) == 0);
	CHECK(DNS_RCODE(flags) == DNS_RCODE_SERVFAIL);

	/* ...or just the header when there is none */
	struct dns_query nq;
	uint8_t m[64];
	size_t mn = msg(m, (uint16_t)(2 << 11) | DNS_FLAG_RD, 1, 0, 0, 0,
			q_example, sizeof(q_example));
	CHECK(dns_parse_query(m, mn, &nq, NULL) == DNS_RCODE_NOTIMP);
	CHECK(!nq.has_question);
	n = dns_build_error(&nq, DNS_RCODE_NOTIMP, out, sizeof(out));
	CHECK(n == 12);
	CHECK(rd16(out) == 0x1111);
	CHECK(rd16(out + 2) == (DNS_FLAG_QR | (2 << 11) | DNS_FLAG_RD |
				DNS_FLAG_RA | DNS_RCODE_NOTIMP));
	CHECK(rd16(out + 4) == 0);
	CHECK(dns_build_error(&nq, DNS_RCODE_NOTIMP, out, 11) == -1);
}

static void test_check_response(void)
{
	uint8_t qb[512], r[512];
	struct dns_query q;
	ssize_t qn, n;
	uint16_t flags;

	qn = dns_build_query(0x9999, DNS_FLAG_RD, "example.com", DNS_TYPE_MX,
			     DNS_CLASS_IN, 0, qb, sizeof(qb));
	CHECK(dns_parse_query(qb, (size_t)qn, &q, NULL) == 0);
	n = dns_build_error(&q, DNS_RCODE_NOERROR, r, sizeof(r));
	CHECK(dns_check_response(r, (size_t)n, 0x9999, &q, &flags) == 0);
	CHECK(dns_check_response(r, (size_t)n, 0x9998, &q, &flags) == -1);
	CHECK(dns_check_response(r, 11, 0x9999, &q, &flags) == -1);
	CHECK(dns_check_response(r, (size_t)n - 1, 0x9999, &q, &flags) == -1);
	r[2] &= 0x7f; /* QR clear */
	CHECK(dns_check_response(r, (size_t)n, 0x9999, &q, &flags) == -1);
	r[2] |= 0x80;
	r[13] = 'E'; /* case differs: fine */
	CHECK(dns_check_response(r, (size_t)n, 0x9999, &q, &flags) == 0);
	r[13] = 'f'; /* another name */
	CHECK(dns_check_response(r, (size_t)n, 0x9999, &q, &flags) == -1);
	r[13] = 'e';
	r[n - 3] = DNS_TYPE_A; /* another type */
	CHECK(dns_check_response(r, (size_t)n, 0x9999, &q, &flags) == -1);
	r[n - 3] = DNS_TYPE_MX;
	/* no question: only for errors and truncation */
	r[5] = 0;
	CHECK(dns_check_response(r, 12, 0x9999, &q, &flags) == -1);
	r[3] |= DNS_RCODE_REFUSED;
	CHECK(dns_check_response(r, 12, 0x9999, &q, &flags) == 0);
	CHECK(DNS_RCODE(flags) == DNS_RCODE_REFUSED);
	r[3] &= 0xf0;
	r[2] |= DNS_FLAG_TC >> 8;
	CHECK(dns_check_response(r, 12, 0x9999, &q, &flags) == 0);
	CHECK(flags & DNS_FLAG_TC);

	dns_set_id(r, 0xbeef);
	CHECK(dns_get_id(r) == 0xbeef && r[0] == 0xbe && r[1] == 0xef);
}

static void test_ptr_names(void)
{
	char buf[128];
	struct in_addr a4, b4;
	struct in6_addr a6, b6;
	union { struct in_addr a4; struct in6_addr a6; } out;

	inet_pton(AF_INET, "198.18.0.5", &a4);
	CHECK(dns_ptr_name4(&a4, buf, sizeof(buf)) == 23);
	CHECK_STREQ(buf, "5.0.18.198.in-addr.arpa");
	CHECK(dns_parse_ptr_name(buf, &out) == AF_INET);
	CHECK(out.a4.s_addr == a4.s_addr);
	CHECK(dns_ptr_name4(&a4, buf, 10) == -1);

	inet_pton(AF_INET6, "fd73:7072:6f78:7900::1:5", &a6);
	CHECK(dns_ptr_name6(&a6, buf, sizeof(buf)) == 72);
	CHECK_STREQ(buf, "5.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0."
			 "0.0.9.7.8.7.f.6.2.7.0.7.3.7.d.f.ip6.arpa");
	CHECK(dns_parse_ptr_name(buf, &out) == AF_INET6);
	CHECK(memcmp(&out.a6, &a6, 16) == 0);
	CHECK(dns_ptr_name6(&a6, buf, 72) == -1);

	/* case and a trailing dot */
	CHECK(dns_parse_ptr_name("1.2.0.10.IN-ADDR.Arpa.", &out) == AF_INET);
	inet_pton(AF_INET, "10.0.2.1", &b4);
	CHECK(out.a4.s_addr == b4.s_addr);
	CHECK(dns_parse_ptr_name("F.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
				 "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.IP6.ARPA",
				 &out) == AF_INET6);
	inet_pton(AF_INET6, "::f", &b6);
	CHECK(memcmp(&out.a6, &b6, 16) == 0);

	/* not the reverse name of one whole address */
	const char *no[] = {
		"18.198.in-addr.arpa", "in-addr.arpa", ".in-addr.arpa",
		"1.2.3.4.5.in-addr.arpa", "256.0.18.198.in-addr.arpa",
		"01.0.18.198.in-addr.arpa", "a.0.18.198.in-addr.arpa",
		"1..18.198.in-addr.arpa", "1.0.18.198.in-addr.arpa.com",
		"5.0.0.0.ip6.arpa", "example.com", "",
		"g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
		"00.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
	};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		CHECK(dns_parse_ptr_name(no[i], &out) == 0);
}

static void test_ip_literals(void)
{
	CHECK(dns_name_is_ip_literal("1.2.3.4"));
	CHECK(dns_name_is_ip_literal("1.2.3.4."));
	CHECK(dns_name_is_ip_literal("127.1"));
	CHECK(dns_name_is_ip_literal("::1"));
	CHECK(dns_name_is_ip_literal("fd73:7072:6f78:7900::5"));
	CHECK(!dns_name_is_ip_literal("example.com"));
	CHECK(!dns_name_is_ip_literal("1.2.3.4.example.com"));
	CHECK(!dns_name_is_ip_literal(""));
	char buf[16];
	CHECK_STREQ(dns_type_name(DNS_TYPE_HTTPS, buf, sizeof(buf)), "HTTPS");
	CHECK_STREQ(dns_type_name(999, buf, sizeof(buf)), "TYPE999");
}

/* An answer to "svc.test HTTPS" as a resolver gives it: one ServiceMode
 * record with alpn, ipv4hint, ech and ipv6hint, one AliasMode record,
 * then an A record in the additional section whose owner is a pointer. */
static const uint8_t https_answer[] = {
	0x12, 0x34, 0x81, 0x80, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01,
	0x03, 's', 'v', 'c', 0x04, 't', 'e', 's', 't', 0x00, 0x00, 0x41, 0x00, 0x01,
	/* answer 1: ServiceMode, target "." */
	0xc0, 0x0c, 0x00, 0x41, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x2d,
	0x00, 0x01, 0x00,
	0x00, 0x01, 0x00, 0x03, 0x02, 'h', '2',                     /* alpn */
	0x00, 0x04, 0x00, 0x04, 203, 0, 113, 10,                     /* ipv4hint */
	0x00, 0x05, 0x00, 0x03, 0xaa, 0xbb, 0xcc,                    /* ech */
	0x00, 0x06, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,  /* ipv6hint */
	0, 0, 0, 0, 0, 0, 0, 0x10,
	/* answer 2: AliasMode to "a.test", no parameters */
	0xc0, 0x0c, 0x00, 0x41, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x0a,
	0x00, 0x00, 0x01, 'a', 0x04, 't', 'e', 's', 't', 0x00,
	/* additional: svc.test A */
	0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x04,
	203, 0, 113, 10,
};

static void test_svc_hints(void)
{
	uint8_t m[sizeof(https_answer)];
	const uint8_t *rd = m + 26 + 12 + 3;   /* answer 1's parameters */
	struct dns_query q;
	uint16_t flags;
	const char *why;

	memcpy(m, https_answer, sizeof(m));
	CHECK(dns_hide_svc_hints(m, sizeof(m)) == 2);
	/* alpn and ech, in order, then the filler over the 28 bytes freed */
	CHECK(rd16(rd) == 1 && rd16(rd + 2) == 3 && memcmp(rd + 4, "\x02h2", 3) == 0);
	CHECK(rd16(rd + 7) == 5 && rd16(rd + 9) == 3 && rd[11] == 0xaa && rd[13] == 0xcc);
	CHECK(rd16(rd + 14) == DNS_SVC_KEY_FILLER && rd16(rd + 16) == 28 - 4);
	for (int i = 18; i < 18 + 24; i++)
		CHECK(rd[i] == 0);
	/* Nothing after it moved: the alias record and the additional A. */
	CHECK(memcmp(m + 26 + 12 + 0x2d, https_answer + 26 + 12 + 0x2d,
		     sizeof(m) - (26 + 12 + 0x2d)) == 0);
	CHECK(memcmp(m, https_answer, 26 + 12 + 3) == 0);
	/* Still a well-formed answer to the question. */
	CHECK(dns_build_query(0x1234, 0x0100, "svc.test", DNS_TYPE_HTTPS, DNS_CLASS_IN, 0,
			      (uint8_t[64]){ 0 }, 64) > 0);
	{
		uint8_t qb[64];
		ssize_t ql = dns_build_query(0x1234, 0x0100, "svc.test", DNS_TYPE_HTTPS,
					     DNS_CLASS_IN, 0, qb, sizeof(qb));

		CHECK(ql > 0 && dns_parse_query(qb, (size_t)ql, &q, &why) == 0);
		CHECK(dns_check_response(m, sizeof(m), 0x1234, &q, &flags) == 0);
	}
	/* Once is enough: a second pass finds nothing. */
	CHECK(dns_hide_svc_hints(m, sizeof(m)) == 0);

	/* A parameter longer than the record: left as it is. */
	memcpy(m, https_answer, sizeof(m));
	m[26 + 12 + 3 + 7 + 3] = 0x40;           /* ipv4hint's length */
	{
		uint8_t before[sizeof(m)];

		memcpy(before, m, sizeof(m));
		CHECK(dns_hide_svc_hints(m, sizeof(m)) == 0);
		CHECK(memcmp(m, before, sizeof(m)) == 0);
	}
	/* Cut short, and a header alone: nothing done, nothing read past. */
	memcpy(m, https_answer, sizeof(m));
	CHECK(dns_hide_svc_hints(m, 60) == 0);
	CHECK(dns_hide_svc_hints(m, 5) == 0);
}

int main(void)
{
	RUN("dns", test_parse_real_query);
	RUN("dns", test_build_query_roundtrip);
	RUN("dns", test_malformed);
	RUN("dns", test_compression);
	RUN("dns", test_pointer_chains);
	RUN("dns", test_text_names);
	RUN("dns", test_build_answers);
	RUN("dns", test_check_response);
	RUN("dns", test_ptr_names);
	RUN("dns", test_ip_literals);
	RUN("dns", test_svc_hints);
	CHECK_EXIT();
}
