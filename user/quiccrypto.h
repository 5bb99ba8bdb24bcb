/* The cryptography a QUIC v1 Initial packet needs to be read (RFC 9001
 * 5): SHA-256, HMAC-SHA256, HKDF-Extract and TLS 1.3's HKDF-Expand-Label
 * to derive the keys from the connection ID, AES-128 for header
 * protection, and AES-128-GCM to open the payload.
 *
 * Only what reading a client's first datagram takes: AES encrypts one
 * block (GCM and header protection never decrypt with the block cipher),
 * and GCM only opens.  The keys derive from the packet itself, so nothing
 * secret passes through here, and the code makes no claim to resist
 * timing or cache attacks: do not use it for secrets. */
#ifndef SPROXY_QUICCRYPTO_H
#define SPROXY_QUICCRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32
#define SHA256_BLOCK 64
#define AES128_KEY_LEN 16
#define AES_BLOCK 16
#define GCM_NONCE_LEN 12
#define GCM_TAG_LEN 16

struct sha256 {
	uint32_t h[8];
	uint64_t bytes;                 /* hashed so far */
	uint8_t buf[SHA256_BLOCK];
	size_t n;                       /* bytes waiting in buf */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_LEN]);
void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN]);

void hmac_sha256(const uint8_t *key, size_t keylen, const void *data, size_t len,
		 uint8_t out[SHA256_LEN]);

/* RFC 5869 with SHA-256. */
void hkdf_extract(const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen,
		  uint8_t prk[SHA256_LEN]);
/* 0, or -1 when outlen is over 255 blocks. */
int hkdf_expand(const uint8_t prk[SHA256_LEN], const uint8_t *info, size_t infolen,
		uint8_t *out, size_t outlen);
/* RFC 8446 7.1 with an empty context (all QUIC uses): 0, or -1 when the
 * label or the length does not fit the HkdfLabel structure. */
int hkdf_expand_label(const uint8_t secret[SHA256_LEN], const char *label, uint8_t *out,
		      size_t outlen);

struct aes128 {
	uint32_t rk[11][4];             /* the round keys, by column */
};

extern const uint8_t aes_sbox[256];

void aes128_init(struct aes128 *a, const uint8_t key[AES128_KEY_LEN]);
void aes128_encrypt(const struct aes128 *a, const uint8_t in[AES_BLOCK],
		    uint8_t out[AES_BLOCK]);

/* AES-128-GCM with a 96-bit nonce: 0 and the plaintext in out (len
 * bytes, may be ct itself) when the tag verifies; -1 and out untouched
 * otherwise. */
int aes128_gcm_open(const uint8_t key[AES128_KEY_LEN], const uint8_t nonce[GCM_NONCE_LEN],
		    const uint8_t *aad, size_t aadlen, const uint8_t *ct, size_t len,
		    const uint8_t tag[GCM_TAG_LEN], uint8_t *out);

#endif
