/* The QUIC Initial cryptography against published vectors: FIPS 197
 * C.1 (AES-128), the GCM specification's test cases 1-4 (AES-128-GCM,
 * also with a wrong tag, ciphertext or AAD), FIPS 180-2 (SHA-256),
 * RFC 4231 cases 1-2 (HMAC-SHA256), RFC 5869 case 1 (HKDF) and RFC 9001
 * A.1 (the Initial secrets and keys). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "quiccrypto.h"

static char hexbuf[2 * 256 + 1];

static const char *hex(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n && i < 256; i++)
		sprintf(hexbuf + 2 * i, "%02x", b[i]);
	hexbuf[n < 256 ? 2 * n : 512] = 0;
	return hexbuf;
}

static size_t unhex(uint8_t *out, const char *s)
{
	size_t n = 0;
	unsigned v;

	for (; s[0] && s[1]; s += 2) {
		sscanf(s, "%2x", &v);
		out[n++] = (uint8_t)v;
	}
	return n;
}

/* The S-box from its definition (FIPS 197 5.1.1): the inverse in GF(2^8)
 * modulo x^8+x^4+x^3+x+1, then the affine map. */
static uint8_t gmul(uint8_t a, uint8_t b)
{
	uint8_t p = 0;

	for (int i = 0; i < 8; i++) {
		if (b & 1)
			p ^= a;
		a = (uint8_t)(a << 1) ^ (a & 0x80 ? 0x1b : 0);
		b >>= 1;
	}
	return p;
}

static void sbox_definition(void)
{
	for (int x = 0; x < 256; x++) {
		uint8_t inv = 0, s;

		for (int y = 1; y < 256 && x; y++)
			if (gmul((uint8_t)x, (uint8_t)y) == 1)
				inv = (uint8_t)y;
		s = inv;
		for (int r = 1; r <= 4; r++)
			s ^= (uint8_t)(inv << r | inv >> (8 - r));
		s ^= 0x63;
		if (aes_sbox[x] != s)
			printf("  sbox[%02x] = %02x, expected %02x\n", x, aes_sbox[x], s);
		CHECK(aes_sbox[x] == s);
	}
}

static void aes_fips197(void)
{
	uint8_t key[16], in[16], out[16], rk[16];
	struct aes128 a;

	unhex(key, "000102030405060708090a0b0c0d0e0f");
	unhex(in, "00112233445566778899aabbccddeeff");
	aes128_init(&a, key);
	aes128_encrypt(&a, in, out);
	CHECK_STREQ(hex(out, 16), "69c4e0d86a7b0430d8cdb78070b4c55a");
	/* the last round key (FIPS 197 C.1, round[10].k_sch) */
	for (int i = 0; i < 16; i++)
		rk[i] = (uint8_t)(a.rk[10][i / 4] >> (24 - 8 * (i % 4)));
	CHECK_STREQ(hex(rk, 16), "13111d7fe3944a17f307a78b4d2b30c5");
	aes128_encrypt(&a, in, in);                  /* in place */
	CHECK_STREQ(hex(in, 16), "69c4e0d86a7b0430d8cdb78070b4c55a");
}

static const char *k3 = "feffe9928665731c6d6a8f9467308308";
static const char *iv3 = "cafebabefacedbaddecaf888";
static const char *p3 =
	"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	"1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
static const char *c3 =
	"42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
	"21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985";

static void gcm_cases_1_2(void)
{
	uint8_t key[16] = { 0 }, nonce[12] = { 0 }, ct[16], tag[16], out[16];

	unhex(tag, "58e2fccefa7e3061367f1d57a4e7455a");
	CHECK(aes128_gcm_open(key, nonce, NULL, 0, NULL, 0, tag, out) == 0);
	tag[15] ^= 0x80;
	CHECK(aes128_gcm_open(key, nonce, NULL, 0, NULL, 0, tag, out) == -1);

	unhex(ct, "0388dace60b6a392f328c2b971b2fe78");
	unhex(tag, "ab6e47d42cec13bdf53a67b21257bddf");
	CHECK(aes128_gcm_open(key, nonce, NULL, 0, ct, 16, tag, out) == 0);
	CHECK_STREQ(hex(out, 16), "00000000000000000000000000000000");
}

static void gcm_case_3(void)
{
	uint8_t key[16], nonce[12], ct[64], tag[16], out[64];

	unhex(key, k3);
	unhex(nonce, iv3);
	CHECK(unhex(ct, c3) == 64);
	unhex(tag, "4d5c2af327cd64a62cf35abd2ba6fab4");
	CHECK(aes128_gcm_open(key, nonce, NULL, 0, ct, 64, tag, out) == 0);
	CHECK_STREQ(hex(out, 64), p3);
	/* in place */
	CHECK(aes128_gcm_open(key, nonce, NULL, 0, ct, 64, tag, ct) == 0);
	CHECK_STREQ(hex(ct, 64), p3);
}

static void gcm_case_4(void)
{
	uint8_t key[16], nonce[12], aad[20], ct[64], tag[16], out[60];
	char want[121];

	unhex(key, k3);
	unhex(nonce, iv3);
	CHECK(unhex(aad, "feedfacedeadbeeffeedfacedeadbeefabaddad2") == 20);
	unhex(ct, c3);                               /* 60 of its bytes used */
	unhex(tag, "5bc94fbc3221a5db94fae95ae7121a47");
	snprintf(want, sizeof(want), "%.120s", p3);
	CHECK(aes128_gcm_open(key, nonce, aad, 20, ct, 60, tag, out) == 0);
	CHECK_STREQ(hex(out, 60), want);

	/* A wrong tag, ciphertext, AAD or nonce: refused, out untouched. */
	memset(out, 0xaa, sizeof(out));
	tag[0] ^= 1;
	CHECK(aes128_gcm_open(key, nonce, aad, 20, ct, 60, tag, out) == -1);
	tag[0] ^= 1;
	ct[59] ^= 0x10;
	CHECK(aes128_gcm_open(key, nonce, aad, 20, ct, 60, tag, out) == -1);
	ct[59] ^= 0x10;
	aad[19] ^= 1;
	CHECK(aes128_gcm_open(key, nonce, aad, 20, ct, 60, tag, out) == -1);
	aad[19] ^= 1;
	CHECK(aes128_gcm_open(key, nonce, aad, 19, ct, 60, tag, out) == -1);
	nonce[11] ^= 1;
	CHECK(aes128_gcm_open(key, nonce, aad, 20, ct, 60, tag, out) == -1);
	nonce[11] ^= 1;
	for (size_t i = 0; i < sizeof(out); i++)
		CHECK(out[i] == 0xaa);
	CHECK(aes128_gcm_open(key, nonce, aad, 20, ct, 60, tag, out) == 0);
}

static void sha256_fips180(void)
{
	const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	uint8_t d[32];
	struct sha256 s;

	sha256("abc", 3, d);
	CHECK_STREQ(hex(d, 32),
		    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha256(m2, strlen(m2), d);
	CHECK_STREQ(hex(d, 32),
		    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* the same fed a byte at a time */
	sha256_init(&s);
	for (size_t i = 0; i < strlen(m2); i++)
		sha256_update(&s, m2 + i, 1);
	sha256_final(&s, d);
	CHECK_STREQ(hex(d, 32),
		    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	sha256("", 0, d);
	CHECK_STREQ(hex(d, 32),
		    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void hmac_rfc4231(void)
{
	uint8_t key[20], d[32];

	memset(key, 0x0b, sizeof(key));
	hmac_sha256(key, 20, "Hi There", 8, d);
	CHECK_STREQ(hex(d, 32),
		    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	hmac_sha256((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28, d);
	CHECK_STREQ(hex(d, 32),
		    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void hkdf_rfc5869(void)
{
	uint8_t ikm[22], salt[13], info[10], prk[32], okm[42];

	memset(ikm, 0x0b, sizeof(ikm));
	unhex(salt, "000102030405060708090a0b0c");
	unhex(info, "f0f1f2f3f4f5f6f7f8f9");
	hkdf_extract(salt, 13, ikm, 22, prk);
	CHECK_STREQ(hex(prk, 32),
		    "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
	CHECK(hkdf_expand(prk, info, 10, okm, 42) == 0);
	CHECK_STREQ(hex(okm, 42), "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db0"
				  "2d56ecc4c5bf34007208d5b887185865");
	CHECK(hkdf_expand(prk, info, 10, okm, 255 * 32 + 1) == -1);
}

static void initial_rfc9001(void)
{
	static const uint8_t salt[20] = {
		0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
		0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
	};
	uint8_t dcid[8], initial[32], client[32], key[16], iv[12], hp[16], mask[16];
	uint8_t sample[16];
	struct aes128 a;

	unhex(dcid, "8394c8f03e515708");
	hkdf_extract(salt, sizeof(salt), dcid, sizeof(dcid), initial);
	CHECK_STREQ(hex(initial, 32),
		    "7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44");
	CHECK(hkdf_expand_label(initial, "client in", client, 32) == 0);
	CHECK_STREQ(hex(client, 32),
		    "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea");
	CHECK(hkdf_expand_label(client, "quic key", key, 16) == 0);
	CHECK_STREQ(hex(key, 16), "1f369613dd76d5467730efcbe3b1a22d");
	CHECK(hkdf_expand_label(client, "quic iv", iv, 12) == 0);
	CHECK_STREQ(hex(iv, 12), "fa044b2f42a3fd3b46fb255c");
	CHECK(hkdf_expand_label(client, "quic hp", hp, 16) == 0);
	CHECK_STREQ(hex(hp, 16), "9f50449e04a0e810283a1e9933adedd2");
	/* A.2's header protection: the sample and the mask */
	unhex(sample, "d1b1c98dd7689fb8ec11d242b123dc9b");
	aes128_init(&a, hp);
	aes128_encrypt(&a, sample, mask);
	CHECK_STREQ(hex(mask, 5), "437b9aec36");
	/* the server's side (A.1) */
	CHECK(hkdf_expand_label(initial, "server in", client, 32) == 0);
	CHECK_STREQ(hex(client, 32),
		    "3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b");
	CHECK(hkdf_expand_label(initial, "client in", client, 256 * 256) == -1);
}

int main(void)
{
	RUN("quiccrypto", sbox_definition);
	RUN("quiccrypto", aes_fips197);
	RUN("quiccrypto", gcm_cases_1_2);
	RUN("quiccrypto", gcm_case_3);
	RUN("quiccrypto", gcm_case_4);
	RUN("quiccrypto", sha256_fips180);
	RUN("quiccrypto", hmac_rfc4231);
	RUN("quiccrypto", hkdf_rfc5869);
	RUN("quiccrypto", initial_rfc9001);
	CHECK_EXIT();
}
