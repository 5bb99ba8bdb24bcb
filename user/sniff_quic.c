/* The name in a QUIC client's first datagram.  Initial packets are
 * encrypted, but with keys anyone can derive from the packet itself (RFC
 * 9001 5.2): the protection is against middleboxes that would ossify the
 * format, not a secret.  Lengths are checked against the datagram before
 * every read, and the AEAD tag must verify before a byte of plaintext is
 * looked at. */
#include <string.h>

#include "quiccrypto.h"
#include "sniff.h"

#define QUIC_V1 0x00000001u
#define CRYPTO_MAX 16384         /* one TLS record's worth of ClientHello */

/* RFC 9001 5.2: initial_salt for QUIC version 1. */
static const uint8_t salt_v1[20] = {
	0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
	0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
};

int sniff_quic_keys(const uint8_t *dcid, size_t dcidlen, uint8_t key[16], uint8_t iv[12],
		    uint8_t hp[16])
{
	uint8_t initial[32], client[32];

	hkdf_extract(salt_v1, sizeof(salt_v1), dcid, dcidlen, initial);
	if (hkdf_expand_label(initial, "client in", client, 32) < 0 ||
	    hkdf_expand_label(client, "quic key", key, 16) < 0 ||
	    hkdf_expand_label(client, "quic iv", iv, 12) < 0 ||
	    hkdf_expand_label(client, "quic hp", hp, 16) < 0)
		return -1;
	return 0;
}

/* A variable-length integer (RFC 9000 16) at *p, within len. */
static int varint(const uint8_t *b, size_t len, size_t *p, uint64_t *v)
{
	size_t n;
	uint64_t x;

	if (*p >= len)
		return -1;
	n = (size_t)1 << (b[*p] >> 6);
	if (n > len - *p)
		return -1;
	x = b[*p] & 0x3f;
	for (size_t i = 1; i < n; i++)
		x = x << 8 | b[*p + i];
	*p += n;
	*v = x;
	return 0;
}

static uint8_t plain[65536];
static uint8_t hdr[65536];
/* The ClientHello as a TLS record (a header made up in front), so that
 * sniff.c reads it as it reads TLS over TCP. */
static uint8_t rec[5 + CRYPTO_MAX];
static uint8_t have[CRYPTO_MAX];

/* The ACK frame's fields after its type: skipped. */
static int skip_ack(const uint8_t *b, size_t len, size_t *p, int ecn)
{
	uint64_t v, ranges;

	if (varint(b, len, p, &v) < 0 || varint(b, len, p, &v) < 0 ||
	    varint(b, len, p, &ranges) < 0 || varint(b, len, p, &v) < 0 || ranges > len)
		return -1;
	for (uint64_t i = 0; i < 2 * ranges + (ecn ? 3 : 0); i++)
		if (varint(b, len, p, &v) < 0)
			return -1;
	return 0;
}

/* The CRYPTO frames' bytes, placed by their offsets; how many are there
 * from offset 0 on without a gap. */
static size_t crypto_prefix(const uint8_t *b, size_t len)
{
	size_t p = 0, n = 0;
	uint64_t type, off, clen;

	memset(have, 0, sizeof(have));
	while (p < len) {
		if (varint(b, len, &p, &type) < 0)
			break;
		if (type == 0x00 || type == 0x01)        /* PADDING, PING */
			continue;
		if (type == 0x02 || type == 0x03) {      /* ACK */
			if (skip_ack(b, len, &p, type == 0x03) < 0)
				break;
			continue;
		}
		if (type != 0x06)                        /* not CRYPTO: stop here */
			break;
		if (varint(b, len, &p, &off) < 0 || varint(b, len, &p, &clen) < 0 ||
		    clen > len - p)
			break;
		if (off < CRYPTO_MAX && clen <= CRYPTO_MAX - off) {
			memcpy(rec + 5 + off, b + p, clen);
			memset(have + off, 1, clen);
		}
		p += clen;
	}
	while (n < CRYPTO_MAX && have[n])
		n++;
	return n;
}

int sniff_quic(const uint8_t *b, size_t len, char *host, size_t hostlen,
	       enum sniff_kind *kind)
{
	uint8_t key[16], iv[12], hp[16], mask[16], first;
	size_t p = 5, dcidlen, pn_off, pnl, end, ctlen, n;
	const uint8_t *dcid;
	struct aes128 aes;
	uint64_t tok, length, pn = 0, hs;

	*kind = SNIFF_NONE;
	if (len > sizeof(plain))
		return SNIFF_NO;
	/* A long header (form and fixed bits), type Initial, version 1. */
	if (len < 7 || (b[0] & 0xf0) != 0xc0 ||
	    ((uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4]) != QUIC_V1)
		return SNIFF_NO;
	dcidlen = b[p++];
	if (dcidlen > 20 || dcidlen + 1 > len - p)
		return SNIFF_NO;
	dcid = b + p;
	p += dcidlen;
	n = b[p++];                                  /* source connection ID */
	if (n > 20 || n > len - p)
		return SNIFF_NO;
	p += n;
	if (varint(b, len, &p, &tok) < 0 || tok > len - p)
		return SNIFF_NO;
	p += tok;
	if (varint(b, len, &p, &length) < 0 || length > len - p || length < 4 + 16)
		return SNIFF_NO;
	pn_off = p;
	end = pn_off + length;
	if (sniff_quic_keys(dcid, dcidlen, key, iv, hp) < 0)
		return SNIFF_NO;
	aes128_init(&aes, hp);
	aes128_encrypt(&aes, b + pn_off + 4, mask);  /* the sample: 4 bytes past */
	first = b[0] ^ (mask[0] & 0x0f);
	pnl = (first & 0x03) + 1;
	memcpy(hdr, b, pn_off);
	hdr[0] = first;
	for (size_t i = 0; i < pnl; i++) {
		hdr[pn_off + i] = b[pn_off + i] ^ mask[1 + i];
		pn = pn << 8 | hdr[pn_off + i];
	}
	for (size_t i = 0; i < 8; i++)               /* nonce: iv ^ packet number */
		iv[11 - i] ^= (uint8_t)(pn >> (8 * i));
	ctlen = end - pn_off - pnl;
	if (ctlen < 16 ||
	    aes128_gcm_open(key, iv, hdr, pn_off + pnl, b + pn_off + pnl, ctlen - 16,
			    b + end - 16, plain) < 0)
		return SNIFF_NO;
	n = crypto_prefix(plain, ctlen - 16);
	if (n < 4 || rec[5] != 1)                    /* a ClientHello */
		return SNIFF_NO;
	hs = (uint64_t)rec[6] << 16 | (uint64_t)rec[7] << 8 | rec[8];
	if (4 + hs > CRYPTO_MAX)
		return SNIFF_NO;
	rec[0] = 0x16;
	rec[1] = 0x03;
	rec[2] = 0x01;
	rec[3] = (uint8_t)((4 + hs) >> 8);
	rec[4] = (uint8_t)(4 + hs);
	if (sniff_host(rec, 5 + n, host, hostlen, kind) != SNIFF_FOUND)
		return SNIFF_NO;
	*kind = SNIFF_QUIC;
	return SNIFF_FOUND;
}
