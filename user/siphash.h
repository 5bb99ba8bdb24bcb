/* SipHash-2-4 (Aumasson and Bernstein): a keyed hash for tables whose
 * keys come from outside (DNS names from any app), so that nobody who
 * does not know the key can pick keys that share a bucket. */
#ifndef SPROXY_SIPHASH_H
#define SPROXY_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_LEN 16

uint64_t siphash24(const uint8_t key[SIPHASH_KEY_LEN], const void *data,
		   size_t len);

#endif
