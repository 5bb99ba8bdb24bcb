/* Finding the name in a client's first bytes.  Everything read is bounded
 * by len and by the lengths the message itself declares, whichever ends
 * first: a length that points past the record is malformed (give up), one
 * that points past len only means the rest has not arrived yet. */
#include <string.h>
#include <strings.h>

#include "sniff.h"

const char *sniff_kind_name(enum sniff_kind k)
{
	return k == SNIFF_TLS ? "tls" : k == SNIFF_HTTP ? "http" : k == SNIFF_QUIC ? "quic" : NULL;
}

/* A DNS name as rules and upstreams take it: letters, digits, '-', '_'
 * and dots between non-empty labels, at most 253 bytes, lower-cased, one
 * trailing dot dropped.  All digits and dots is an IPv4 literal: no name. */
static int name_ok(const uint8_t *s, size_t n, char *out, size_t outlen)
{
	int alpha = 0;

	if (n && s[n - 1] == '.')
		n--;
	if (n == 0 || n > 253 || n >= outlen || s[0] == '.' || s[n - 1] == '.')
		return SNIFF_NO;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (uint8_t)(c - 'A' + 'a');
		if (c == '.') {
			if (s[i - 1] == '.')
				return SNIFF_NO;
		} else if ((c >= 'a' && c <= 'z') || c == '-' || c == '_') {
			alpha = 1;
		} else if (c < '0' || c > '9') {
			return SNIFF_NO;
		}
		out[i] = (char)c;
	}
	out[n] = 0;
	return alpha ? SNIFF_FOUND : SNIFF_NO;
}

/* Reads k more bytes at p: past end is malformed, past len not here yet. */
#define NEED(k)                                           \
	do {                                              \
		if (p + (k) > end)                        \
			return SNIFF_NO;                  \
		if (p + (k) > len)                        \
			return SNIFF_MORE;                \
	} while (0)
#define U16(i) ((size_t)b[i] << 8 | b[(i) + 1])

/* The server_name extension's body: a list of (type, name); type 0 is a
 * host name. */
static int sni_ext(const uint8_t *b, size_t p, size_t elen, char *host, size_t hostlen)
{
	size_t end = p + elen, q, list;

	if (elen < 2)
		return SNIFF_NO;
	list = U16(p);
	if (2 + list > elen)
		return SNIFF_NO;
	end = p + 2 + list;
	for (q = p + 2; q + 3 <= end;) {
		size_t nl = U16(q + 1);

		if (q + 3 + nl > end)
			return SNIFF_NO;
		if (b[q] == 0)
			return name_ok(b + q + 3, nl, host, hostlen);
		q += 3 + nl;
	}
	return SNIFF_NO;
}

/* The first record of a TLS stream, which must hold a ClientHello; its
 * extensions are looked at only as far as this record goes (a ClientHello
 * split over records almost never has its name past the first). */
static int tls_sni(const uint8_t *b, size_t len, char *host, size_t hostlen)
{
	size_t end, p, n, rec, hs;

	if (len >= 2 && b[1] != 3)
		return SNIFF_NO;
	if (len < 5)
		return SNIFF_MORE;
	rec = U16(3);
	if (rec < 4 || rec > 16384)
		return SNIFF_NO;
	end = 5 + rec;
	if (len < 9)
		return SNIFF_MORE;
	if (b[5] != 1)                    /* not a ClientHello */
		return SNIFF_NO;
	hs = (size_t)b[6] << 16 | (size_t)b[7] << 8 | b[8];
	if (9 + hs < end)
		end = 9 + hs;
	p = 9;
	NEED(2 + 32 + 1);                 /* version, random, session id */
	p += 34;
	n = b[p++];
	NEED(n);
	p += n;
	NEED(2);                          /* cipher suites */
	n = U16(p);
	p += 2;
	NEED(n);
	p += n;
	NEED(1);                          /* compression methods */
	n = b[p++];
	NEED(n);
	p += n;
	NEED(2);                          /* extensions */
	n = U16(p);
	p += 2;
	if (p + n < end)
		end = p + n;
	for (;;) {
		size_t type, elen;

		NEED(4);
		type = U16(p);
		elen = U16(p + 2);
		p += 4;
		NEED(elen);
		if (type == 0)
			return sni_ext(b, p, elen, host, hostlen);
		p += elen;
	}
}

static const char *const methods[] = {
	"GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ",
	"CONNECT ", "TRACE ",
};

/* The Host header's value without its port; an IPv6 literal is no name. */
static int host_value(const uint8_t *v, size_t n, char *host, size_t hostlen)
{
	size_t i;

	while (n && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n && v[0] == '[')
		return SNIFF_NO;
	for (i = n; i > 0 && v[i - 1] >= '0' && v[i - 1] <= '9'; i--)
		;
	if (i > 0 && i < n && v[i - 1] == ':')
		n = i - 1;
	return name_ok(v, n, host, hostlen);
}

/* An HTTP/1 request: a known method, then header lines up to the blank
 * one; the first Host line decides. */
static int http_host(const uint8_t *b, size_t len, char *host, size_t hostlen)
{
	size_t i, ls, nl, m;
	int maybe = 0, is = 0;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		m = strlen(methods[i]);
		if (len < m && memcmp(b, methods[i], len) == 0)
			maybe = 1;
		else if (len >= m && memcmp(b, methods[i], m) == 0)
			is = 1;
	}
	if (!is)
		return maybe ? SNIFF_MORE : SNIFF_NO;
	for (ls = 0;; ls = nl + 1) {
		const uint8_t *e = ls < len ? memchr(b + ls, '\n', len - ls) : NULL;
		size_t ll;

		if (!e)
			return SNIFF_MORE;
		nl = (size_t)(e - b);
		ll = nl - ls;
		if (ll && b[nl - 1] == '\r')
			ll--;
		if (ls > 0 && ll == 0)
			return SNIFF_NO;          /* the header ended without Host */
		if (ls > 0 && ll >= 5 && strncasecmp((const char *)b + ls, "host:", 5) == 0)
			return host_value(b + ls + 5, ll - 5, host, hostlen);
	}
}

int sniff_host(const uint8_t *buf, size_t len, char *host, size_t hostlen,
	       enum sniff_kind *kind)
{
	int rc;

	*kind = SNIFF_NONE;
	if (len == 0)
		return SNIFF_MORE;
	if (buf[0] == 0x16) {
		rc = tls_sni(buf, len, host, hostlen);
		if (rc == SNIFF_FOUND)
			*kind = SNIFF_TLS;
	} else {
		rc = http_host(buf, len, host, hostlen);
		if (rc == SNIFF_FOUND)
			*kind = SNIFF_HTTP;
	}
	/* What did not end within the most we look at never will. */
	if (rc == SNIFF_MORE && len >= SNIFF_MAX)
		rc = SNIFF_NO;
	return rc;
}
