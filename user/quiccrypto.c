/* SHA-256 (FIPS 180-4), HMAC (RFC 2104), HKDF (RFC 5869) with TLS 1.3's
 * labels (RFC 8446 7.1), AES-128 encryption (FIPS 197) and GCM opening
 * (NIST SP 800-38D), written from those documents for reading QUIC
 * Initial packets.
 *
 * What goes through here is public: the Initial keys derive from a
 * connection ID that the packet carries in clear, and the output is a
 * server name that anyone on the path can read the same way.  So the
 * S-box and GHASH's multiples of H are plain tables looked up by the data
 * (which leaks through the cache), for speed without AES or carry-less
 * multiply instructions; only the tag is compared without an early exit.
 * Not for secrets. */
#include <string.h>

#include "quiccrypto.h"

/* ---- SHA-256 ---- */

/* The first 32 bits of the fractional parts of the cube roots of the
 * first 64 primes (FIPS 180-4 4.2.2). */
static const uint32_t sha_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5,
	0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
	0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
	0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
	0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror(uint32_t x, unsigned n)
{
	return x >> n | x << (32 - n);
}

static uint32_t load32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void store32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void store64(uint8_t *p, uint64_t v)
{
	store32(p, (uint32_t)(v >> 32));
	store32(p + 4, (uint32_t)v);
}

static void sha256_block(uint32_t h[8], const uint8_t b[SHA256_BLOCK])
{
	uint32_t w[64], a[8];

	for (int i = 0; i < 16; i++)
		w[i] = load32(b + 4 * i);
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ w[i - 15] >> 3;
		uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ w[i - 2] >> 10;

		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	memcpy(a, h, sizeof(a));
	for (int i = 0; i < 64; i++) {
		uint32_t s1 = ror(a[4], 6) ^ ror(a[4], 11) ^ ror(a[4], 25);
		uint32_t ch = (a[4] & a[5]) ^ (~a[4] & a[6]);
		uint32_t t1 = a[7] + s1 + ch + sha_k[i] + w[i];
		uint32_t s0 = ror(a[0], 2) ^ ror(a[0], 13) ^ ror(a[0], 22);
		uint32_t maj = (a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]);

		memmove(a + 1, a, 7 * sizeof(a[0]));
		a[4] += t1;
		a[0] = t1 + s0 + maj;
	}
	for (int i = 0; i < 8; i++)
		h[i] += a[i];
}

void sha256_init(struct sha256 *s)
{
	/* the square roots of the first 8 primes, likewise (5.3.3) */
	static const uint32_t h0[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};

	memcpy(s->h, h0, sizeof(h0));
	s->bytes = 0;
	s->n = 0;
}

void sha256_update(struct sha256 *s, const void *data, size_t len)
{
	const uint8_t *p = data;

	s->bytes += len;
	while (len) {
		size_t k = SHA256_BLOCK - s->n;

		if (k > len)
			k = len;
		memcpy(s->buf + s->n, p, k);
		s->n += k;
		p += k;
		len -= k;
		if (s->n == SHA256_BLOCK) {
			sha256_block(s->h, s->buf);
			s->n = 0;
		}
	}
}

void sha256_final(struct sha256 *s, uint8_t out[SHA256_LEN])
{
	uint64_t bits = s->bytes * 8;
	uint8_t pad[SHA256_BLOCK + 8] = { 0x80 };
	/* a 1 bit, zeros up to 56 mod 64, then the length in bits */
	size_t padlen = (s->n < 56 ? 56 : 120) - s->n;

	store64(pad + padlen, bits);
	sha256_update(s, pad, padlen + 8);
	for (int i = 0; i < 8; i++)
		store32(out + 4 * i, s->h[i]);
}

void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN])
{
	struct sha256 s;

	sha256_init(&s);
	sha256_update(&s, data, len);
	sha256_final(&s, out);
}

/* ---- HMAC, HKDF ---- */

void hmac_sha256(const uint8_t *key, size_t keylen, const void *data, size_t len,
		 uint8_t out[SHA256_LEN])
{
	uint8_t k[SHA256_BLOCK] = { 0 }, ipad[SHA256_BLOCK], opad[SHA256_BLOCK];
	uint8_t inner[SHA256_LEN];
	struct sha256 s;

	if (keylen > SHA256_BLOCK)
		sha256(key, keylen, k);
	else if (keylen)
		memcpy(k, key, keylen);
	for (int i = 0; i < SHA256_BLOCK; i++) {
		ipad[i] = k[i] ^ 0x36;
		opad[i] = k[i] ^ 0x5c;
	}
	sha256_init(&s);
	sha256_update(&s, ipad, sizeof(ipad));
	sha256_update(&s, data, len);
	sha256_final(&s, inner);
	sha256_init(&s);
	sha256_update(&s, opad, sizeof(opad));
	sha256_update(&s, inner, sizeof(inner));
	sha256_final(&s, out);
}

void hkdf_extract(const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen,
		  uint8_t prk[SHA256_LEN])
{
	hmac_sha256(salt, saltlen, ikm, ikmlen, prk);
}

int hkdf_expand(const uint8_t prk[SHA256_LEN], const uint8_t *info, size_t infolen,
		uint8_t *out, size_t outlen)
{
	uint8_t t[SHA256_LEN], ctr = 0;
	size_t tlen = 0;

	if (outlen > 255 * SHA256_LEN)
		return -1;
	/* T(i) = HMAC(PRK, T(i-1) | info | i) */
	while (outlen) {
		uint8_t k[SHA256_BLOCK], ipad[SHA256_BLOCK];
		struct sha256 s;
		size_t n = outlen < SHA256_LEN ? outlen : SHA256_LEN;

		ctr++;
		/* HMAC written out: its message comes in three pieces */
		memset(k, 0, sizeof(k));
		memcpy(k, prk, SHA256_LEN);
		for (int i = 0; i < SHA256_BLOCK; i++)
			ipad[i] = k[i] ^ 0x36;
		sha256_init(&s);
		sha256_update(&s, ipad, sizeof(ipad));
		sha256_update(&s, t, tlen);
		sha256_update(&s, info, infolen);
		sha256_update(&s, &ctr, 1);
		sha256_final(&s, t);
		for (int i = 0; i < SHA256_BLOCK; i++)
			ipad[i] = k[i] ^ 0x5c;
		sha256_init(&s);
		sha256_update(&s, ipad, sizeof(ipad));
		sha256_update(&s, t, SHA256_LEN);
		sha256_final(&s, t);
		tlen = SHA256_LEN;
		memcpy(out, t, n);
		out += n;
		outlen -= n;
	}
	return 0;
}

int hkdf_expand_label(const uint8_t secret[SHA256_LEN], const char *label, uint8_t *out,
		      size_t outlen)
{
	/* struct { uint16 length; opaque label<7..255> = "tls13 " + label;
	 * opaque context<0..255>; } */
	uint8_t info[2 + 1 + 255 + 1];
	size_t ll = strlen(label), n = 0;

	if (outlen > 0xffff || 6 + ll > 255)
		return -1;
	info[n++] = (uint8_t)(outlen >> 8);
	info[n++] = (uint8_t)outlen;
	info[n++] = (uint8_t)(6 + ll);
	memcpy(info + n, "tls13 ", 6);
	n += 6;
	memcpy(info + n, label, ll);
	n += ll;
	info[n++] = 0;                   /* context: empty */
	return hkdf_expand(secret, info, n, out, outlen);
}

/* ---- AES-128 ---- */

/* FIPS 197 5.1.1: the multiplicative inverse in GF(2^8), then an affine
 * map; the unit test checks every entry against that definition. */
const uint8_t aes_sbox[256] = {
	0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b,
	0xfe, 0xd7, 0xab, 0x76, 0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0,
	0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0, 0xb7, 0xfd, 0x93, 0x26,
	0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
	0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2,
	0xeb, 0x27, 0xb2, 0x75, 0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0,
	0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84, 0x53, 0xd1, 0x00, 0xed,
	0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
	0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f,
	0x50, 0x3c, 0x9f, 0xa8, 0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5,
	0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2, 0xcd, 0x0c, 0x13, 0xec,
	0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
	0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14,
	0xde, 0x5e, 0x0b, 0xdb, 0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c,
	0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79, 0xe7, 0xc8, 0x37, 0x6d,
	0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
	0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f,
	0x4b, 0xbd, 0x8b, 0x8a, 0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e,
	0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e, 0xe1, 0xf8, 0x98, 0x11,
	0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
	0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f,
	0xb0, 0x54, 0xbb, 0x16,
};

/* Four bytes at once times x in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1. */
static uint32_t xtime4(uint32_t w)
{
	return (w & 0x7f7f7f7f) << 1 ^ ((w >> 7) & 0x01010101) * 0x1b;
}

static uint32_t rotl32(uint32_t x, unsigned n)
{
	return x << n | x >> (32 - n);
}

static uint32_t sub_word(uint32_t w)
{
	return (uint32_t)aes_sbox[w >> 24] << 24 | (uint32_t)aes_sbox[w >> 16 & 0xff] << 16 |
	       (uint32_t)aes_sbox[w >> 8 & 0xff] << 8 | aes_sbox[w & 0xff];
}

/* The state and the round keys as four columns, a column's first byte in
 * its top bits (the bytes' order in FIPS 197 3.4). */
void aes128_init(struct aes128 *a, const uint8_t key[AES128_KEY_LEN])
{
	uint32_t rcon = 0x01000000;

	for (int i = 0; i < 4; i++)
		a->rk[0][i] = load32(key + 4 * i);
	for (int r = 1; r <= 10; r++) {
		const uint32_t *p = a->rk[r - 1];
		uint32_t *k = a->rk[r];

		k[0] = p[0] ^ sub_word(rotl32(p[3], 8)) ^ rcon;
		for (int i = 1; i < 4; i++)
			k[i] = p[i] ^ k[i - 1];
		rcon = xtime4(rcon);
	}
}

/* SubBytes and ShiftRows together: row r of column c comes from column
 * c + r. */
static void sub_shift(uint32_t t[4], const uint32_t s[4])
{
	for (int c = 0; c < 4; c++)
		t[c] = sub_word((s[c] & 0xff000000) | (s[(c + 1) & 3] & 0x00ff0000) |
				(s[(c + 2) & 3] & 0x0000ff00) | (s[(c + 3) & 3] & 0x000000ff));
}

/* (a, b, c, d) -> 2a ^ 3b ^ c ^ d and its rotations, which is
 * a ^ (a^b^c^d) ^ 2(a^b). */
static uint32_t mix_column(uint32_t w)
{
	uint32_t t = w ^ rotl32(w, 8);

	return w ^ t ^ rotl32(t, 16) ^ xtime4(t);
}

void aes128_encrypt(const struct aes128 *a, const uint8_t in[AES_BLOCK],
		    uint8_t out[AES_BLOCK])
{
	uint32_t s[4], t[4];

	for (int i = 0; i < 4; i++)
		s[i] = load32(in + 4 * i) ^ a->rk[0][i];
	for (int r = 1; r < 10; r++) {
		sub_shift(t, s);
		for (int i = 0; i < 4; i++)
			s[i] = mix_column(t[i]) ^ a->rk[r][i];
	}
	sub_shift(t, s);
	for (int i = 0; i < 4; i++)
		store32(out + 4 * i, t[i] ^ a->rk[10][i]);
}

/* ---- GCM ---- */

/* A block as a 128-bit number, its first byte the most significant:
 * GCM numbers bits from the left, x^0 the top bit of byte 0, so
 * shifting right multiplies by x. */
struct u128 {
	uint64_t hi, lo;
};

static struct u128 load128(const uint8_t b[AES_BLOCK])
{
	struct u128 v = {
		(uint64_t)load32(b) << 32 | load32(b + 4),
		(uint64_t)load32(b + 8) << 32 | load32(b + 12),
	};
	return v;
}

/* V * x: x^128 folds back as R = 11100001 || 0^120 (SP 800-38D 6.3). */
static struct u128 times_x(struct u128 v)
{
	uint64_t carry = -(v.lo & 1);

	v.lo = v.lo >> 1 | v.hi << 63;
	v.hi = v.hi >> 1 ^ (0xe100000000000000ull & carry);
	return v;
}

/* Multiplication by H four bits at a time (the table method of the GCM
 * specification, 4.1): m[n] = n * H for the 16 values of a nibble, its
 * top bit x^0. */
struct ghash {
	struct u128 m[16];
	struct u128 y;
};

static void ghash_init(struct ghash *g, const uint8_t h[AES_BLOCK])
{
	memset(g, 0, sizeof(*g));
	g->m[8] = load128(h);
	g->m[4] = times_x(g->m[8]);
	g->m[2] = times_x(g->m[4]);
	g->m[1] = times_x(g->m[2]);
	for (int i = 2; i < 16; i <<= 1)
		for (int j = 1; j < i; j++) {
			g->m[i + j].hi = g->m[i].hi ^ g->m[j].hi;
			g->m[i + j].lo = g->m[i].lo ^ g->m[j].lo;
		}
}

/* Y = (Y ^ X) * H by Horner's rule from the last nibble (x^124..x^127)
 * to the first: Z = Z * x^4 ^ m[nibble].  The four bits shifted out by
 * x^4 fold back as R times x^0..x^3. */
static void ghash_block(struct ghash *g, const uint8_t b[AES_BLOCK])
{
	static const uint16_t fold[16] = {
		0x0000, 0x1c20, 0x3840, 0x2460, 0x7080, 0x6ca0, 0x48c0, 0x54e0,
		0xe100, 0xfd20, 0xd940, 0xc560, 0x9180, 0x8da0, 0xa9c0, 0xb5e0,
	};
	uint8_t x[AES_BLOCK];
	struct u128 z = { 0, 0 };

	for (int i = 0; i < 8; i++) {
		x[i] = b[i] ^ (uint8_t)(g->y.hi >> (56 - 8 * i));
		x[8 + i] = b[8 + i] ^ (uint8_t)(g->y.lo >> (56 - 8 * i));
	}
	for (int i = 2 * AES_BLOCK - 1; i >= 0; i--) {
		unsigned n = i & 1 ? x[i / 2] & 0x0f : x[i / 2] >> 4;
		unsigned rem = z.lo & 0x0f;

		z.lo = z.lo >> 4 | z.hi << 60;
		z.hi = z.hi >> 4 ^ (uint64_t)fold[rem] << 48;
		z.hi ^= g->m[n].hi;
		z.lo ^= g->m[n].lo;
	}
	g->y = z;
}

/* GHASH over data, zero-padded to whole blocks. */
static void ghash(struct ghash *g, const uint8_t *d, size_t len)
{
	while (len) {
		uint8_t b[AES_BLOCK] = { 0 };
		size_t n = len < AES_BLOCK ? len : AES_BLOCK;

		memcpy(b, d, n);
		ghash_block(g, b);
		d += n;
		len -= n;
	}
}

int aes128_gcm_open(const uint8_t key[AES128_KEY_LEN], const uint8_t nonce[GCM_NONCE_LEN],
		    const uint8_t *aad, size_t aadlen, const uint8_t *ct, size_t len,
		    const uint8_t tag[GCM_TAG_LEN], uint8_t *out)
{
	uint8_t zero[AES_BLOCK] = { 0 }, ctr[AES_BLOCK], ks[AES_BLOCK], lens[AES_BLOCK];
	uint8_t got[GCM_TAG_LEN];
	struct aes128 a;
	struct ghash g;
	uint8_t diff = 0;
	uint32_t c;

	/* 2^36 - 32 bytes at most with one nonce (SP 800-38D 5.2.1.1) */
	if ((uint64_t)len > (1ull << 36) - 32)
		return -1;
	aes128_init(&a, key);
	aes128_encrypt(&a, zero, ks);
	ghash_init(&g, ks);
	ghash(&g, aad, aadlen);
	ghash(&g, ct, len);
	store64(lens, (uint64_t)aadlen * 8);
	store64(lens + 8, (uint64_t)len * 8);
	ghash_block(&g, lens);
	/* the tag: GHASH encrypted with J0 = nonce || 1 */
	memcpy(ctr, nonce, GCM_NONCE_LEN);
	store32(ctr + GCM_NONCE_LEN, 1);
	aes128_encrypt(&a, ctr, ks);
	store64(got, g.y.hi);
	store64(got + 8, g.y.lo);
	for (int i = 0; i < GCM_TAG_LEN; i++)
		diff |= (uint8_t)(ks[i] ^ got[i] ^ tag[i]);
	if (diff)
		return -1;
	/* Only now decrypt: a forged packet leaves out as it was.  Counter
	 * blocks from J0 + 1, the low 32 bits counting. */
	c = 1;
	for (size_t off = 0; off < len; off += AES_BLOCK) {
		size_t n = len - off < AES_BLOCK ? len - off : AES_BLOCK;

		store32(ctr + GCM_NONCE_LEN, ++c);
		aes128_encrypt(&a, ctr, ks);
		for (size_t i = 0; i < n; i++)
			out[off + i] = ct[off + i] ^ ks[i];
	}
	return 0;
}
