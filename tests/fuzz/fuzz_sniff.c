/* Fuzzer for user/sniff.c.  Invariants:
 *  - never a read past len (ASan);
 *  - a name found is a valid lower-case DNS name that fits;
 *  - the answer does not depend on bytes past what it needed: a prefix
 *    that answers FOUND or NO answers the same on the whole input, and a
 *    prefix of an input that answered MORE for the whole never answers
 *    otherwise than MORE (no decision from bytes not yet seen);
 *  - the same bytes as a QUIC datagram: found or not, never a read past
 *    them, and a name found is valid (the corpus holds RFC 9001's Initial,
 *    whose bytes past the header the fuzzer can change only into a failed
 *    tag, and its header, which it can). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sniff.h"
#include "fuzz.h"

static void valid_name(const char *h)
{
	size_t n = strlen(h);

	ASSERT(n > 0 && n <= 253);
	ASSERT(h[0] != '.' && h[n - 1] != '.' && !strstr(h, ".."));
	for (size_t i = 0; i < n; i++)
		ASSERT((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= '0' && h[i] <= '9') ||
		       h[i] == '.' || h[i] == '-' || h[i] == '_');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char host[256], host2[256];
	enum sniff_kind k, k2;
	uint8_t *copy;
	int rc, rc2;
	size_t cut;

	if (size > SNIFF_MAX)
		size = SNIFF_MAX;
	/* An exact-size copy: ASan sees any read past it. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	rc = sniff_host(copy, size, host, sizeof(host), &k);
	ASSERT(rc == SNIFF_FOUND || rc == SNIFF_MORE || rc == SNIFF_NO);
	ASSERT((rc == SNIFF_FOUND) == (k != SNIFF_NONE));
	if (rc == SNIFF_FOUND)
		valid_name(host);
	/* The first prefix that decides must decide the same. */
	cut = size ? (size_t)data[0] * size / 256 : 0;
	rc2 = sniff_host(copy, cut, host2, sizeof(host2), &k2);
	if (rc2 != SNIFF_MORE) {
		ASSERT(rc2 == rc);
		if (rc == SNIFF_FOUND) {
			ASSERT(k == k2);
			ASSERT(strcmp(host, host2) == 0);
		}
	}
	if (rc == SNIFF_MORE)
		ASSERT(rc2 == SNIFF_MORE);
	rc = sniff_quic(copy, size, host, sizeof(host), &k);
	ASSERT(rc == SNIFF_FOUND || rc == SNIFF_NO);
	ASSERT((rc == SNIFF_FOUND) == (k == SNIFF_QUIC));
	if (rc == SNIFF_FOUND)
		valid_name(host);
	free(copy);
	return 0;
}
