/* DNS message codec (see dns.h).  Every read from a message goes through
 * the bounds-checked helpers below; nothing here allocates. */
#include "dns.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint8_t lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

uint16_t dns_get_id(const uint8_t *msg)
{
	return get16(msg);
}

void dns_set_id(uint8_t *msg, uint16_t id)
{
	put16(msg, id);
}

int dns_read_name(const uint8_t *msg, size_t len, size_t *off,
		  uint8_t wire[DNS_NAME_WIRE_MAX], size_t *wire_len)
{
	size_t pos = *off, limit = *off, w = 0, next = 0;
	unsigned hops = 0;
	int jumped = 0;

	for (;;) {
		if (pos >= len)
			return -1;
		uint8_t c = msg[pos];
		if (c == 0) {
			if (w + 1 > DNS_NAME_WIRE_MAX)
				return -1;
			wire[w++] = 0;
			if (!jumped)
				next = pos + 1;
			break;
		}
		if ((c & 0xc0) == 0xc0) {
			if (pos + 1 >= len)
				return -1;
			size_t target = (size_t)(c & 0x3f) << 8 | msg[pos + 1];
			/* Strictly below every earlier position: no loops,
			 * no forward references, never into the header. */
			if (target >= limit || target < DNS_HDR_LEN)
				return -1;
			/* Backwards alone still allows a 32k-hop chain. */
			if (++hops > DNS_NAME_HOPS_MAX)
				return -1;
			if (!jumped)
				next = pos + 2;
			jumped = 1;
			limit = target;
			pos = target;
			continue;
		}
		if (c & 0xc0) /* 0x40/0x80: obsolete label types, len > 63 */
			return -1;
		if (pos + 1 + c > len)
			return -1;
		if (w + 1 + c + 1 > DNS_NAME_WIRE_MAX)
			return -1;
		memcpy(wire + w, msg + pos, 1 + (size_t)c);
		w += 1 + (size_t)c;
		pos += 1 + (size_t)c;
	}
	*wire_len = w;
	*off = next;
	return 0;
}

int dns_name_to_text(const uint8_t *wire, size_t wire_len, char *text,
		     size_t cap)
{
	size_t i = 0, t = 0;

	if (cap == 0)
		return -1;
	while (i < wire_len && wire[i] != 0) {
		size_t l = wire[i++];
		if (l > DNS_LABEL_MAX || i + l > wire_len)
			return -1;
		if (t > 0) {
			if (t + 1 >= cap)
				return -1;
			text[t++] = '.';
		}
		for (size_t k = 0; k < l; k++) {
			uint8_t c = wire[i + k];
			char esc[5];
			size_t n;
			if (c == '.' || c == '\\') {
				esc[0] = '\\';
				esc[1] = (char)c;
				n = 2;
			} else if (c <= 0x20 || c >= 0x7f) {
				snprintf(esc, sizeof(esc), "\\%03u", c);
				n = 4;
			} else {
				esc[0] = (char)c;
				n = 1;
			}
			if (t + n >= cap)
				return -1;
			memcpy(text + t, esc, n);
			t += n;
		}
		i += l;
	}
	if (i >= wire_len) /* no root label */
		return -1;
	text[t] = '\0';
	return (int)t;
}

int dns_name_from_text(const char *text, uint8_t *wire, size_t cap)
{
	size_t w = 0, lab = 0;
	const char *p = text;

	if (cap == 0)
		return -1;
	if (p[0] == '.' && p[1] == '\0')
		p++; /* "." is the root */
	while (*p) {
		if (w + 1 > cap || w + 1 > DNS_NAME_WIRE_MAX)
			return -1;
		lab = w++;
		size_t l = 0;
		while (*p && *p != '.') {
			int c = (unsigned char)*p++;
			if (c == '\\') {
				if (isdigit((unsigned char)p[0]) &&
				    isdigit((unsigned char)p[1]) &&
				    isdigit((unsigned char)p[2])) {
					c = (p[0] - '0') * 100 + (p[1] - '0') * 10 +
					    (p[2] - '0');
					if (c > 255)
						return -1;
					p += 3;
				} else if (*p) {
					c = (unsigned char)*p++;
				} else {
					return -1;
				}
			}
			if (++l > DNS_LABEL_MAX || w + 1 > cap ||
			    w + 1 >= DNS_NAME_WIRE_MAX)
				return -1;
			wire[w++] = (uint8_t)c;
		}
		if (l == 0)
			return -1; /* empty label: "a..b" or ".a" */
		wire[lab] = (uint8_t)l;
		if (*p == '.') {
			p++;
			/* one trailing dot is fine; "a.." is not */
			if (*p == '\0')
				break;
		}
	}
	if (w + 1 > cap || w + 1 > DNS_NAME_WIRE_MAX)
		return -1;
	wire[w++] = 0;
	return (int)w;
}

int dns_name_wire_equal(const uint8_t *a, size_t alen, const uint8_t *b,
			size_t blen)
{
	if (alen != blen)
		return 0;
	for (size_t i = 0; i < alen; i++)
		if (lower(a[i]) != lower(b[i]))
			return 0;
	return 1;
}

/* Steps over a name without following its pointer: the records of a
 * query are only stepped over, so that a message costs one pass over its
 * bytes whatever its pointers say.  *root: the name is the root alone. */
static int skip_name(const uint8_t *msg, size_t len, size_t *off, int *root)
{
	size_t pos = *off;

	*root = pos < len && msg[pos] == 0;
	for (;;) {
		if (pos >= len)
			return -1;
		uint8_t c = msg[pos];
		if (c == 0) {
			*off = pos + 1;
			return 0;
		}
		if ((c & 0xc0) == 0xc0) {
			if (pos + 1 >= len)
				return -1;
			*off = pos + 2;
			return 0;
		}
		if (c & 0xc0)
			return -1;
		pos += 1 + (size_t)c;
	}
}

/* Skips one resource record at *off; reports type and class. */
static int skip_rr(const uint8_t *msg, size_t len, size_t *off,
		   uint16_t *type, uint16_t *class, int *root)
{
	if (skip_name(msg, len, off, root) < 0)
		return -1;
	if (len - *off < 10)
		return -1;
	*type = get16(msg + *off);
	*class = get16(msg + *off + 2);
	size_t rdlen = get16(msg + *off + 8);
	*off += 10;
	if (len - *off < rdlen)
		return -1;
	*off += rdlen;
	return 0;
}

#define SVC_KEY_IPV4HINT 4
#define SVC_KEY_IPV6HINT 6

static int is_hint(uint16_t key)
{
	return key == SVC_KEY_IPV4HINT || key == SVC_KEY_IPV6HINT;
}

/* One SVCB/HTTPS RDATA (rd, n bytes): see dns_hide_svc_hints.  The whole
 * parameter list is checked before a byte moves. */
static int hide_hints_rdata(uint8_t *rd, size_t n)
{
	size_t pos = 2, w, start;
	int gone = 0;

	if (n < 3)
		return 0;
	/* SvcPriority, then TargetName, never compressed (RFC 9460 2.2). */
	while (pos < n && rd[pos] != 0) {
		if (rd[pos] & 0xc0)
			return 0;
		pos += 1 + (size_t)rd[pos];
	}
	if (pos >= n)
		return 0;
	start = ++pos;
	while (pos < n) {
		if (n - pos < 4 || n - pos - 4 < get16(rd + pos + 2))
			return 0;
		gone += is_hint(get16(rd + pos));
		pos += 4 + (size_t)get16(rd + pos + 2);
	}
	if (!gone)
		return 0;
	for (pos = w = start; pos < n;) {
		size_t plen = 4 + (size_t)get16(rd + pos + 2);

		if (!is_hint(get16(rd + pos))) {
			memmove(rd + w, rd + pos, plen);
			w += plen;
		}
		pos += plen;
	}
	/* Each hint took at least its 4-byte key and length: room for the
	 * filler's own. */
	put16(rd + w, DNS_SVC_KEY_FILLER);
	put16(rd + w + 2, (uint16_t)(n - w - 4));
	memset(rd + w + 4, 0, n - w - 4);
	return gone;
}

int dns_hide_svc_hints(uint8_t *msg, size_t len)
{
	size_t off = DNS_HDR_LEN;
	unsigned qd, rrs;
	int root, gone = 0;

	if (len < DNS_HDR_LEN)
		return 0;
	qd = get16(msg + 4);
	rrs = (unsigned)get16(msg + 6) + get16(msg + 8) + get16(msg + 10);
	for (unsigned i = 0; i < qd; i++) {
		if (skip_name(msg, len, &off, &root) < 0 || len - off < 4)
			return gone;
		off += 4;
	}
	for (unsigned i = 0; i < rrs; i++) {
		uint16_t type, class, rdlen;

		if (skip_name(msg, len, &off, &root) < 0 || len - off < 10)
			return gone;
		type = get16(msg + off);
		class = get16(msg + off + 2);
		rdlen = get16(msg + off + 8);
		off += 10;
		if (len - off < rdlen)
			return gone;
		if ((type == DNS_TYPE_SVCB || type == DNS_TYPE_HTTPS) && class == DNS_CLASS_IN)
			gone += hide_hints_rdata(msg + off, rdlen);
		off += rdlen;
	}
	return gone;
}

static int parse_question(const uint8_t *msg, size_t len, size_t *off,
			  struct dns_query *q)
{
	if (dns_read_name(msg, len, off, q->qname_wire, &q->qname_wire_len) < 0)
		return -1;
	if (len - *off < 4)
		return -1;
	if (dns_name_to_text(q->qname_wire, q->qname_wire_len, q->qname,
			     sizeof(q->qname)) < 0)
		return -1;
	q->qtype = get16(msg + *off);
	q->qclass = get16(msg + *off + 2);
	*off += 4;
	q->has_question = 1;
	return 0;
}

#define WHY(s) do { if (why) *why = (s); } while (0)

int dns_parse_query(const uint8_t *msg, size_t len, struct dns_query *q,
		    const char **why)
{
	memset(q, 0, sizeof(*q));
	q->udp_size = DNS_UDP_MIN;
	if (!msg || len < DNS_HDR_LEN) {
		WHY("shorter than a header");
		return -1;
	}
	q->id = get16(msg);
	q->flags = get16(msg + 2);
	uint16_t qd = get16(msg + 4), an = get16(msg + 6),
		 ns = get16(msg + 8), ar = get16(msg + 10);

	if (len > DNS_MSG_MAX) {
		WHY("longer than 65535 bytes");
		return DNS_RCODE_FORMERR;
	}
	if (q->flags & DNS_FLAG_QR) {
		WHY("QR set: a response, not a query");
		return DNS_RCODE_FORMERR;
	}
	if (DNS_OPCODE(q->flags) != 0) {
		WHY("opcode is not QUERY");
		return DNS_RCODE_NOTIMP;
	}
	if (qd != 1) {
		WHY("QDCOUNT is not 1");
		return DNS_RCODE_FORMERR;
	}
	size_t off = DNS_HDR_LEN;
	if (parse_question(msg, len, &off, q) < 0) {
		WHY("bad or truncated question");
		return DNS_RCODE_FORMERR;
	}
	/* Walk the other sections, only to find the OPT record and to
	 * refuse a message whose counts lie about its length. */
	uint32_t total = (uint32_t)an + ns + ar;
	for (uint32_t i = 0; i < total; i++) {
		uint16_t type, class;
		int root;
		if (skip_rr(msg, len, &off, &type, &class, &root) < 0) {
			WHY("truncated record");
			return DNS_RCODE_FORMERR;
		}
		if (type != DNS_TYPE_OPT)
			continue;
		if (i < (uint32_t)an + ns || q->has_opt || !root) {
			WHY("misplaced, duplicate or named OPT");
			return DNS_RCODE_FORMERR;
		}
		q->has_opt = 1;
		q->udp_size = class > DNS_UDP_MIN ? class : DNS_UDP_MIN;
	}
	if (q->qtype == DNS_TYPE_AXFR || q->qtype == DNS_TYPE_IXFR) {
		WHY("zone transfer");
		return DNS_RCODE_NOTIMP;
	}
	WHY("ok");
	return DNS_RCODE_NOERROR;
}

/* Header and echoed question; returns the offset after them or -1. */
static ssize_t put_head(const struct dns_query *q, int rcode, uint16_t ancount,
			uint8_t *out, size_t cap)
{
	size_t need = DNS_HDR_LEN;

	if (q->has_question)
		need += q->qname_wire_len + 4;
	if (cap < need)
		return -1;
	uint16_t flags = DNS_FLAG_QR | (q->flags & (0xf << 11)) |
			 (q->flags & DNS_FLAG_RD) | DNS_FLAG_RA |
			 (uint16_t)(rcode & 0xf);
	put16(out, q->id);
	put16(out + 2, flags);
	put16(out + 4, q->has_question ? 1 : 0);
	put16(out + 6, ancount);
	put16(out + 8, 0);
	put16(out + 10, 0);
	if (!q->has_question)
		return DNS_HDR_LEN;
	memcpy(out + DNS_HDR_LEN, q->qname_wire, q->qname_wire_len);
	put16(out + DNS_HDR_LEN + q->qname_wire_len, q->qtype);
	put16(out + DNS_HDR_LEN + q->qname_wire_len + 2, q->qclass);
	return (ssize_t)need;
}

ssize_t dns_build_error(const struct dns_query *q, int rcode, uint8_t *out,
			size_t cap)
{
	return put_head(q, rcode, 0, out, cap);
}

/* Appends one RR owned by the question name (pointer to offset 12). */
static ssize_t put_answer(const struct dns_query *q, uint16_t type,
			  uint32_t ttl, const void *rdata, size_t rdlen,
			  uint8_t *out, size_t cap)
{
	if (!q->has_question || rdlen > DNS_MSG_MAX)
		return -1;
	ssize_t off = put_head(q, DNS_RCODE_NOERROR, 1, out, cap);
	if (off < 0 || cap - (size_t)off < 12 + rdlen)
		return -1;
	uint8_t *p = out + off;
	put16(p, 0xc000 | DNS_HDR_LEN);
	put16(p + 2, type);
	put16(p + 4, q->qclass);
	put32(p + 6, ttl);
	put16(p + 10, (uint16_t)rdlen);
	memcpy(p + 12, rdata, rdlen);
	return off + 12 + (ssize_t)rdlen;
}

ssize_t dns_build_addr_answer(const struct dns_query *q, const void *rdata,
			      size_t rdlen, uint32_t ttl, uint8_t *out,
			      size_t cap)
{
	if ((q->qtype == DNS_TYPE_A && rdlen != 4) ||
	    (q->qtype == DNS_TYPE_AAAA && rdlen != 16) ||
	    (q->qtype != DNS_TYPE_A && q->qtype != DNS_TYPE_AAAA))
		return -1;
	return put_answer(q, q->qtype, ttl, rdata, rdlen, out, cap);
}

ssize_t dns_build_ptr_answer(const struct dns_query *q, const char *target,
			     uint32_t ttl, uint8_t *out, size_t cap)
{
	uint8_t wire[DNS_NAME_WIRE_MAX];
	int n = dns_name_from_text(target, wire, sizeof(wire));

	if (n < 0)
		return -1;
	return put_answer(q, DNS_TYPE_PTR, ttl, wire, (size_t)n, out, cap);
}

ssize_t dns_build_query(uint16_t id, uint16_t flags, const char *name,
			uint16_t qtype, uint16_t qclass, uint16_t udp_size,
			uint8_t *out, size_t cap)
{
	uint8_t wire[DNS_NAME_WIRE_MAX];
	int n = dns_name_from_text(name, wire, sizeof(wire));

	if (n < 0)
		return -1;
	size_t need = DNS_HDR_LEN + (size_t)n + 4 + (udp_size ? 11 : 0);
	if (cap < need)
		return -1;
	put16(out, id);
	put16(out + 2, flags);
	put16(out + 4, 1);
	put16(out + 6, 0);
	put16(out + 8, 0);
	put16(out + 10, udp_size ? 1 : 0);
	memcpy(out + DNS_HDR_LEN, wire, (size_t)n);
	uint8_t *p = out + DNS_HDR_LEN + n;
	put16(p, qtype);
	put16(p + 2, qclass);
	if (udp_size) {
		p += 4;
		p[0] = 0;                  /* root owner */
		put16(p + 1, DNS_TYPE_OPT);
		put16(p + 3, udp_size);    /* class = payload size */
		put32(p + 5, 0);           /* ext rcode, version, flags */
		put16(p + 9, 0);           /* no options */
	}
	return (ssize_t)need;
}

int dns_check_response(const uint8_t *msg, size_t len, uint16_t expect_id,
		       const struct dns_query *q, uint16_t *flags)
{
	if (len < DNS_HDR_LEN || len > DNS_MSG_MAX)
		return -1;
	uint16_t f = get16(msg + 2), qd = get16(msg + 4);
	if (get16(msg) != expect_id || !(f & DNS_FLAG_QR) ||
	    DNS_OPCODE(f) != DNS_OPCODE(q->flags))
		return -1;
	if (qd == 0) {
		/* Servers may omit the question in error and truncated
		 * replies; anything else must echo it. */
		if (DNS_RCODE(f) == DNS_RCODE_NOERROR && !(f & DNS_FLAG_TC))
			return -1;
	} else {
		uint8_t wire[DNS_NAME_WIRE_MAX];
		size_t wl, off = DNS_HDR_LEN;
		if (qd != 1 || !q->has_question)
			return -1;
		if (dns_read_name(msg, len, &off, wire, &wl) < 0 ||
		    len - off < 4)
			return -1;
		if (!dns_name_wire_equal(wire, wl, q->qname_wire,
					 q->qname_wire_len) ||
		    get16(msg + off) != q->qtype ||
		    get16(msg + off + 2) != q->qclass)
			return -1;
	}
	if (flags)
		*flags = f;
	return 0;
}
