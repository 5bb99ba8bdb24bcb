/* The FakeIP pool's insides, shared by fakeip.c (the pool) and
 * fakeipstore.c (its store file).  Not for other modules: see fakeip.h. */
#ifndef SPROXY_FAKEIP_INT_H
#define SPROXY_FAKEIP_INT_H

#include "fakeip.h"
#include "siphash.h"

#include <stdint.h>

struct fakeip_entry {
	char *name;              /* NULL = free */
	uint32_t prev, next;     /* LRU list: prev is more recent */
	uint32_t hnext;          /* hash chain */
	uint64_t used;           /* pool->now() when last used */
};

struct fakeip_pool {
	uint32_t v4base;         /* host order */
	unsigned v4plen;
	struct in6_addr v6base;
	unsigned v6plen;
	char range4[64], range6[64];

	uint32_t size;           /* indices 1..size */
	uint32_t count;
	uint32_t fresh;          /* every index below it is taken */
	struct fakeip_entry *e;  /* size + 1 */
	uint32_t *buckets;
	uint32_t nbuckets;       /* power of two */
	uint32_t head, tail;     /* most / least recently used */
	int dirty;
	unsigned hold;           /* see fakeip_set_hold */
	uint8_t key[SIPHASH_KEY_LEN];  /* of the name hash, new every start */
	uint64_t (*now)(void);
};

void fakeip_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Lowercase without the trailing dot into buf; -1 if unmappable. */
int fakeip_normalize(const char *name, char buf[FAKEIP_NAME_MAX + 1]);
/* The index of a normalized name, 0 when unmapped. */
uint32_t fakeip_find(const struct fakeip_pool *pool, const char *name);
/* Maps a normalized name at a free index; takes ownership of copy. */
void fakeip_insert(struct fakeip_pool *pool, uint32_t i, char *copy);
/* Index of an address of the pool, 0 when none. */
uint32_t fakeip_index4(const struct fakeip_pool *pool, const struct in_addr *a);
uint32_t fakeip_index6(const struct fakeip_pool *pool, const struct in6_addr *a);
void fakeip_addrs_of(const struct fakeip_pool *pool, uint32_t i,
		     struct in_addr *v4, struct in6_addr *v6);

#endif
