/* Fuzzer for what upstream proxies answer (user/upstream_socks5.c,
 * user/upstream_http.c) and for upstream URLs (user/upstream.c).  The first
 * byte picks the parser; the rest is the server's bytes (or the URL).
 * Invariants:
 *  - a parser never claims more bytes than it was given;
 *  - a complete message is complete at exactly its length, and no proper
 *    prefix of it is complete (so a reply read in pieces gives the same
 *    answer, and nothing after it is taken from the tunnel);
 *  - an error names itself (err is not empty);
 *  - a parsed URL's label never contains its password. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector.h"
#include "upstream.h"
#include "fuzz.h"

static int parse(int which, const uint8_t *b, size_t n, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int m, st;

	switch (which) {
	case 0: return socks5_parse_choice(b, n, &m, err, errlen);
	case 1: return socks5_parse_auth(b, n, err, errlen);
	case 2: return socks5_parse_reply(b, n, &ss, err, errlen);
	default: return http_parse_connect_reply((const char *)b, n, &st, err, errlen);
	}
}

static void fuzz_url(const uint8_t *data, size_t size)
{
	char s[600], err[400], want[400];
	struct upstream u;

	if (size >= sizeof(s))
		size = sizeof(s) - 1;
	memcpy(s, data, size);
	s[size] = 0;
	err[0] = 0;
	strcpy(u.name, "f");
	if (upstream_parse_url(s, &u, err, sizeof(err)) < 0) {
		ASSERT(err[0]);
		return;
	}
	/* The label is made of the name, host and port only. */
	if (u.kind == UPSTREAM_DIRECT)
		snprintf(want, sizeof(want), "f (direct)");
	else
		snprintf(want, sizeof(want), strchr(u.host, ':') ? "f ([%s]:%u)" : "f (%s:%u)",
			 u.host, u.port);
	ASSERT(strcmp(u.label, want) == 0);
	ASSERT(!strchr(u.host, '@'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[400];
	int which, len;
	uint8_t *b;

	if (size < 1)
		return 0;
	which = data[0] % 6;
	data++;
	size--;
	if (which == 5) {
		fuzz_url(data, size);
		return 0;
	}
	if (size > HTTP_CONNECT_REPLY_MAX)
		size = HTTP_CONNECT_REPLY_MAX;
	/* An exact-size copy: ASan sees any read past the end. */
	b = malloc(size ? size : 1);
	if (!b)
		return 0;
	memcpy(b, data, size);
	if (which == 4) {
		len = socks5_udp_header_len(b, size);
		ASSERT(len == -1 || (len >= 10 - 6 && (size_t)len <= size));
		free(b);
		return 0;
	}
	err[0] = 0;
	len = parse(which, b, size, err, sizeof(err));
	ASSERT(len >= -1 && (len < 0 || (size_t)len <= size));
	if (len < 0)
		ASSERT(err[0]);
	if (len > 0) {
		ASSERT(parse(which, b, (size_t)len, err, sizeof(err)) == len);
		/* Every prefix of a short message, a few of a long one. */
		for (size_t k = 0; k < (size_t)len; k += k < 64 ? 1 : (size_t)len / 7 + 1)
			ASSERT(parse(which, b, k, err, sizeof(err)) <= 0);
		ASSERT(parse(which, b, (size_t)len - 1, err, sizeof(err)) <= 0);
	}
	free(b);
	return 0;
}
