/* FakeIP pool (see fakeip.h).  Index 0 is "none" everywhere: entries,
 * hash chains and the LRU list are all linked by index. */
#include "fakeip_int.h"

#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>


void fakeip_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void fakeip_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int parse_cidr(const char *s, int family, void *addr, unsigned *plen)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	unsigned max = family == AF_INET ? 32 : 128;

	if (!slash || (size_t)(slash - s) >= sizeof(buf))
		return -1;
	memcpy(buf, s, (size_t)(slash - s));
	buf[slash - s] = '\0';
	if (inet_pton(family, buf, addr) != 1)
		return -1;
	char *end;
	errno = 0;
	unsigned long p = strtoul(slash + 1, &end, 10);
	if (errno || end == slash + 1 || *end || p > max)
		return -1;
	*plen = (unsigned)p;
	return 0;
}

static void mask6(struct in6_addr *a, unsigned plen)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned bits = plen > i * 8 ? plen - i * 8 : 0;
		if (bits < 8)
			a->s6_addr[i] &= (uint8_t)(0xff00u >> bits);
	}
}

static uint32_t name_hash(const struct fakeip_pool *pool, const char *s)
{
	return (uint32_t)siphash24(pool->key, s, strlen(s));
}

static uint64_t monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

/* A new key every start: nobody outside can know which names share a
 * bucket.  Without randomness the pool still works, only less hardened. */
static void new_key(uint8_t key[SIPHASH_KEY_LEN])
{
	static int warned;

	if (getrandom(key, SIPHASH_KEY_LEN, GRND_NONBLOCK) == SIPHASH_KEY_LEN)
		return;
	if (!warned++)
		log_warn("fakeip: getrandom: %s; the name hash key is guessable",
			 strerror(errno));
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
		     (uint64_t)getpid() << 40;
	memcpy(key, &x, 8);
	memcpy(key + 8, &ts, 8);
}

struct fakeip_pool *fakeip_new(const char *v4_cidr, const char *v6_cidr,
			       size_t max_entries, char *err, size_t errlen)
{
	struct in_addr a4;
	struct in6_addr a6;
	unsigned p4, p6;

	if (!v4_cidr)
		v4_cidr = FAKEIP_DEFAULT_V4;
	if (!v6_cidr)
		v6_cidr = FAKEIP_DEFAULT_V6;
	if (parse_cidr(v4_cidr, AF_INET, &a4, &p4) < 0 || p4 > 30) {
		fakeip_seterr(err, errlen, "bad FakeIP IPv4 range '%s': want "
		       "ADDRESS/PREFIX with a prefix of at most 30", v4_cidr);
		return NULL;
	}
	if (parse_cidr(v6_cidr, AF_INET6, &a6, &p6) < 0 || p6 > 126) {
		fakeip_seterr(err, errlen, "bad FakeIP IPv6 range '%s': want "
		       "ADDRESS/PREFIX with a prefix of at most 126", v6_cidr);
		return NULL;
	}
	struct fakeip_pool *pool = calloc(1, sizeof(*pool));
	if (!pool)
		goto nomem;
	pool->v4plen = p4;
	pool->v4base = p4 ? ntohl(a4.s_addr) & (0xffffffffu << (32 - p4)) : 0;
	pool->v6plen = p6;
	mask6(&a6, p6);
	pool->v6base = a6;

	uint64_t n = FAKEIP_MAX_ENTRIES;
	uint64_t u4 = (1ull << (32 - p4)) - 2;   /* no network, broadcast */
	if (u4 < n)
		n = u4;
	if (128 - p6 < 32 && (1ull << (128 - p6)) - 1 < n)
		n = (1ull << (128 - p6)) - 1;    /* no subnet-router anycast */
	if (max_entries && max_entries < n)
		n = max_entries;
	pool->size = (uint32_t)n;
	pool->fresh = 1;
	pool->now = monotonic_seconds;
	new_key(pool->key);

	pool->nbuckets = 16;
	while (pool->nbuckets < pool->size)
		pool->nbuckets <<= 1;
	pool->e = calloc((size_t)pool->size + 1, sizeof(*pool->e));
	pool->buckets = calloc(pool->nbuckets, sizeof(*pool->buckets));
	if (!pool->e || !pool->buckets)
		goto nomem;

	struct in_addr b4 = { htonl(pool->v4base) };
	char tmp[INET6_ADDRSTRLEN];
	inet_ntop(AF_INET, &b4, tmp, sizeof(tmp));
	snprintf(pool->range4, sizeof(pool->range4), "%s/%u", tmp, p4);
	inet_ntop(AF_INET6, &pool->v6base, tmp, sizeof(tmp));
	snprintf(pool->range6, sizeof(pool->range6), "%s/%u", tmp, p6);
	return pool;
nomem:
	fakeip_free(pool);
	fakeip_seterr(err, errlen, "FakeIP pool: out of memory");
	return NULL;
}

void fakeip_free(struct fakeip_pool *pool)
{
	if (!pool)
		return;
	if (pool->e)
		for (uint32_t i = 1; i <= pool->size; i++)
			free(pool->e[i].name);
	free(pool->e);
	free(pool->buckets);
	free(pool);
}

/* Lowercases name into buf without the trailing dot; -1 if unmappable.
 * Only printable non-space ASCII: the store is line- and space-based. */
int fakeip_normalize(const char *name, char buf[FAKEIP_NAME_MAX + 1])
{
	size_t len;

	if (!name)
		return -1;
	len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > FAKEIP_NAME_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (c <= 0x20 || c >= 0x7f)
			return -1;
		/* no empty label, the last one included ("a.." is not
		 * "a.") */
		if (c == '.' && (i == 0 || i == len - 1 || name[i - 1] == '.'))
			return -1;
		buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	buf[len] = '\0';
	return 0;
}

uint32_t fakeip_find(const struct fakeip_pool *pool, const char *name)
{
	uint32_t i = pool->buckets[name_hash(pool, name) & (pool->nbuckets - 1)];

	for (; i; i = pool->e[i].hnext)
		if (strcmp(pool->e[i].name, name) == 0)
			return i;
	return 0;
}

static void lru_unlink(struct fakeip_pool *pool, uint32_t i)
{
	struct fakeip_entry *x = &pool->e[i];

	if (x->prev)
		pool->e[x->prev].next = x->next;
	else
		pool->head = x->next;
	if (x->next)
		pool->e[x->next].prev = x->prev;
	else
		pool->tail = x->prev;
	x->prev = x->next = 0;
}

static void lru_push(struct fakeip_pool *pool, uint32_t i)
{
	struct fakeip_entry *x = &pool->e[i];

	x->prev = 0;
	x->next = pool->head;
	if (pool->head)
		pool->e[pool->head].prev = i;
	pool->head = i;
	if (!pool->tail)
		pool->tail = i;
}

static void touch(struct fakeip_pool *pool, uint32_t i)
{
	pool->e[i].used = pool->now();
	if (pool->head != i) {
		lru_unlink(pool, i);
		lru_push(pool, i);
	}
}

static void hash_remove(struct fakeip_pool *pool, uint32_t i)
{
	uint32_t *pp = &pool->buckets[name_hash(pool, pool->e[i].name) &
				      (pool->nbuckets - 1)];

	while (*pp && *pp != i)
		pp = &pool->e[*pp].hnext;
	if (*pp)
		*pp = pool->e[i].hnext;
	pool->e[i].hnext = 0;
}

/* Maps a normalized name at a free index; takes ownership of copy. */
void fakeip_insert(struct fakeip_pool *pool, uint32_t i, char *copy)
{
	uint32_t *b = &pool->buckets[name_hash(pool, copy) & (pool->nbuckets - 1)];

	pool->e[i].name = copy;
	pool->e[i].hnext = *b;
	*b = i;
	lru_push(pool, i);
	pool->e[i].used = pool->now();
	pool->count++;
	pool->dirty = 1;
}

static void evict(struct fakeip_pool *pool, uint32_t i)
{
	hash_remove(pool, i);
	lru_unlink(pool, i);
	free(pool->e[i].name);
	pool->e[i].name = NULL;
	pool->count--;
	pool->dirty = 1;
}

void fakeip_addrs_of(const struct fakeip_pool *pool, uint32_t i,
		     struct in_addr *v4, struct in6_addr *v6)
{
	if (v4)
		v4->s_addr = htonl(pool->v4base + i);
	if (v6) {
		*v6 = pool->v6base;
		/* host bits of the base are zero and i fits in them */
		for (int k = 15; k >= 12; k--)
			v6->s6_addr[k] |= (uint8_t)(i >> (8 * (15 - k)));
	}
}

int fakeip_assign(struct fakeip_pool *pool, const char *name,
		  struct in_addr *v4, struct in6_addr *v6)
{
	char buf[FAKEIP_NAME_MAX + 1];
	uint32_t i;

	if (fakeip_normalize(name, buf) < 0) {
		errno = EINVAL;
		return -1;
	}
	i = fakeip_find(pool, buf);
	if (i) {
		touch(pool, i);
	} else {
		while (pool->fresh <= pool->size && pool->e[pool->fresh].name)
			pool->fresh++;
		if (pool->fresh <= pool->size) {
			i = pool->fresh;
		} else {
			/* The least recently used one, unless a client may
			 * still hold it: then no address is free. */
			i = pool->tail;
			if (pool->hold && pool->now() - pool->e[i].used < pool->hold) {
				errno = EBUSY;
				return -1;
			}
		}
		char *copy = strdup(buf);
		if (!copy)
			return -1;
		if (i == pool->fresh)
			pool->fresh++;
		else
			evict(pool, i);
		fakeip_insert(pool, i, copy);
	}
	fakeip_addrs_of(pool, i, v4, v6);
	return 0;
}

int fakeip_contains4(const struct fakeip_pool *pool, const struct in_addr *a)
{
	uint32_t h = ntohl(a->s_addr);

	return pool->v4plen == 0 ||
	       (h >> (32 - pool->v4plen)) == (pool->v4base >> (32 - pool->v4plen));
}

int fakeip_contains6(const struct fakeip_pool *pool, const struct in6_addr *a)
{
	struct in6_addr m = *a;

	mask6(&m, pool->v6plen);
	return memcmp(&m, &pool->v6base, sizeof(m)) == 0;
}

uint32_t fakeip_index4(const struct fakeip_pool *pool, const struct in_addr *a)
{
	if (!fakeip_contains4(pool, a))
		return 0;
	uint32_t i = ntohl(a->s_addr) - pool->v4base;
	return i <= pool->size ? i : 0;
}

uint32_t fakeip_index6(const struct fakeip_pool *pool, const struct in6_addr *a)
{
	uint32_t i = 0;

	if (!fakeip_contains6(pool, a))
		return 0;
	for (int k = 0; k < 16; k++) {
		uint8_t x = a->s6_addr[k] ^ pool->v6base.s6_addr[k];
		if (k < 12 && x)
			return 0;
		if (k >= 12)
			i = i << 8 | x;
	}
	return i <= pool->size ? i : 0;
}

static const char *lookup(struct fakeip_pool *pool, uint32_t i)
{
	if (!i || !pool->e[i].name)
		return NULL;
	touch(pool, i);
	return pool->e[i].name;
}

const char *fakeip_lookup4(struct fakeip_pool *pool, const struct in_addr *a)
{
	return lookup(pool, fakeip_index4(pool, a));
}

const char *fakeip_lookup6(struct fakeip_pool *pool, const struct in6_addr *a)
{
	return lookup(pool, fakeip_index6(pool, a));
}

int fakeip_dirty(const struct fakeip_pool *pool)
{
	return pool->dirty;
}

void fakeip_mark_clean(struct fakeip_pool *pool)
{
	pool->dirty = 0;
}

size_t fakeip_count(const struct fakeip_pool *pool)
{
	return pool->count;
}

size_t fakeip_capacity(const struct fakeip_pool *pool)
{
	return pool->size;
}

void fakeip_set_hold(struct fakeip_pool *pool, unsigned seconds)
{
	pool->hold = seconds;
}

void fakeip_set_clock(struct fakeip_pool *pool, uint64_t (*now)(void))
{
	pool->now = now;
}

int fakeip_mapped(const struct fakeip_pool *pool, const char *name)
{
	char buf[FAKEIP_NAME_MAX + 1];

	return fakeip_normalize(name, buf) == 0 && fakeip_find(pool, buf) != 0;
}

size_t fakeip_longest_chain(const struct fakeip_pool *pool)
{
	size_t longest = 0;

	for (uint32_t b = 0; b < pool->nbuckets; b++) {
		size_t n = 0;
		for (uint32_t i = pool->buckets[b]; i; i = pool->e[i].hnext)
			n++;
		if (n > longest)
			longest = n;
	}
	return longest;
}

const char *fakeip_range4(const struct fakeip_pool *pool)
{
	return pool->range4;
}

const char *fakeip_range6(const struct fakeip_pool *pool)
{
	return pool->range6;
}

