/* HTTP CONNECT upstreams (RFC 9110 9.3.6), with Basic proxy credentials.
 * The reply's header is read whole, up to HTTP_CONNECT_REPLY_MAX bytes,
 * and checked line by line; a status other than 2xx is named. */
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

#include "addr.h"
#include "connector.h"
#include "upstream.h"

static size_t base64(const char *in, size_t n, char *out, size_t cap)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = (const unsigned char *)in;
	size_t i, o = 0;

	if (cap < (n + 2) / 3 * 4 + 1)
		return 0;
	for (i = 0; i + 2 < n; i += 3) {
		out[o++] = tab[s[i] >> 2];
		out[o++] = tab[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
		out[o++] = tab[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
		out[o++] = tab[s[i + 2] & 63];
	}
	if (i < n) {
		out[o++] = tab[s[i] >> 2];
		if (i + 1 < n) {
			out[o++] = tab[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
			out[o++] = tab[(s[i + 1] & 15) << 2];
		} else {
			out[o++] = tab[(s[i] & 3) << 4];
			out[o++] = '=';
		}
		out[o++] = '=';
	}
	out[o] = 0;
	return o;
}

/* host:port, [v6]:port, or the address when the target has no name. */
static void authority(const struct target *t, char *out, size_t cap)
{
	const struct sockaddr *sa = (const struct sockaddr *)&t->addr;
	char ip[INET6_ADDRSTRLEN] = "";

	if (t->host[0]) {
		snprintf(out, cap, "%s:%u", t->host, addr_port(sa));
		return;
	}
	if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
		snprintf(out, cap, "[%s]:%u", ip, addr_port(sa));
	} else {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
		snprintf(out, cap, "%s:%u", ip, addr_port(sa));
	}
}

int http_begin(struct hs_io *io, const struct upstream *u, const struct target *t)
{
	char where[300], cred[520], b64[700], authz[760] = "";
	int len;

	io->stage = "request";
	authority(t, where, sizeof(where));
	if (u->auth) {
		snprintf(cred, sizeof(cred), "%s:%s", u->user, u->pass);
		base64(cred, strlen(cred), b64, sizeof(b64));
		snprintf(authz, sizeof(authz), "Proxy-Authorization: Basic %s\r\n", b64);
	}
	len = snprintf((char *)io->out, sizeof(io->out), "CONNECT %s HTTP/1.1\r\n"
		       "Host: %s\r\n%s\r\n", where, where, authz);
	if (len < 0 || (size_t)len >= sizeof(io->out)) {
		snprintf(io->err, io->errlen, "CONNECT request too long");
		return -1;
	}
	io->outlen = (size_t)len;
	memset(cred, 0, sizeof(cred));
	memset(b64, 0, sizeof(b64));
	return 0;
}

static const char *status_hint(int status)
{
	switch (status) {
	case 407: /* fall through: tinyproxy's BasicAuth answers 401 */
	case 401: return ": wrong or missing credentials";
	case 403: return ": the upstream does not allow this destination";
	case 502: return ": the upstream could not reach the destination";
	case 503: return ": the upstream cannot serve now";
	case 504: return ": the destination did not answer the upstream in time";
	case 405: return ": the upstream does not do CONNECT";
	default: return "";
	}
}

/* The reason phrase, printable ASCII only and short: it comes from the
 * network and goes into the log. */
static void reason(const char *s, size_t n, char *out, size_t cap)
{
	size_t i, o = 0;

	for (i = 0; i < n && o + 1 < cap && o < 60; i++)
		out[o++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	out[o] = 0;
}

static int status_line(const char *b, size_t len, int *status, char *err, size_t errlen)
{
	char why[64];

	if (len >= 1 && b[len - 1] == '\r')
		len--;
	if (len < 12 || memcmp(b, "HTTP/1.", 7) != 0 || b[7] < '0' || b[7] > '9' ||
	    b[8] != ' ' || b[9] < '1' || b[9] > '5' || b[10] < '0' || b[10] > '9' ||
	    b[11] < '0' || b[11] > '9' || (len > 12 && b[12] != ' ')) {
		reason(b, len, why, sizeof(why));
		snprintf(err, errlen, "not an HTTP reply: \"%s\"", why);
		return -1;
	}
	*status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
	if (*status / 100 != 2) {
		reason(b + 12 + (len > 12), len > 13 ? len - 13 : 0, why, sizeof(why));
		snprintf(err, errlen, "HTTP %d%s%s%s", *status, why[0] ? " " : "", why,
			 status_hint(*status));
		return -1;
	}
	return 0;
}

/* A header line: a token, a colon, anything printable or tab after. */
static int header_ok(const char *b, size_t len)
{
	size_t i = 0;

	if (len >= 1 && b[len - 1] == '\r')
		len--;
	while (i < len && b[i] > 0x20 && b[i] < 0x7f && b[i] != ':')
		i++;
	if (i == 0 || i == len || b[i] != ':')
		return 0;
	for (i++; i < len; i++)
		if ((unsigned char)b[i] < 0x20 && b[i] != '\t')
			return 0;
	return 1;
}

int http_parse_connect_reply(const char *b, size_t n, int *status, char *err, size_t errlen)
{
	const char *nl;
	size_t off = 0, len;

	if (n >= 5 && memcmp(b, "HTTP/", 5) != 0)
		return status_line(b, n < 40 ? n : 40, status, err, errlen);
	nl = memchr(b, '\n', n);
	if (!nl)
		return 0;
	if (status_line(b, (size_t)(nl - b), status, err, errlen) < 0)
		return -1;
	off = (size_t)(nl - b) + 1;
	for (;;) {
		nl = memchr(b + off, '\n', n - off);
		if (!nl)
			return 0;
		len = (size_t)(nl - (b + off));
		if (len == 0 || (len == 1 && b[off] == '\r'))
			return (int)(off + len + 1);
		if (!header_ok(b + off, len)) {
			snprintf(err, errlen, "malformed header line in the HTTP reply");
			return -1;
		}
		off += len + 1;
	}
}

int http_input(struct hs_io *io, const uint8_t *b, size_t n)
{
	int status = 0, len;

	len = http_parse_connect_reply((const char *)b, n, &status, io->err, io->errlen);
	if (len > 0)
		io->done = 1;
	return len;
}
