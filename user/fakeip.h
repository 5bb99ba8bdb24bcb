/* FakeIP address pool: gives each DNS name a pair of addresses from two
 * reserved ranges, so that a later connection to such an address tells the
 * proxy which name the app asked for.
 *
 * Defaults (FAKEIP_DEFAULT_V4/_V6): 198.18.0.0/15 (RFC 2544 benchmarking
 * space, what other FakeIP implementations use) and fd73:7072:6f78:7900::/64
 * (ULA; "sprox" in the hex of its global ID and subnet).
 *
 * One pool index per name: the name's IPv4 address is v4base + idx and its
 * IPv6 address v6base + idx, idx in 1..size; offset 0 (network address)
 * and the last address of the IPv4 range (broadcast) are never handed out.
 * size = min(usable addresses of both ranges, max_entries), capped at
 * FAKEIP_MAX_ENTRIES.
 *
 * Names are stored lowercase without the trailing dot, found through a
 * SipHash-2-4 table keyed at random per pool (colliding names cannot be
 * chosen from outside).  A name keeps its index while mapped; when every
 * index is taken, the least recently used mapping (use = created,
 * assigned again, or looked up by address) is evicted and its index
 * reused, but not before the hold (fakeip_set_hold) has passed.
 *
 * Store file (fakeip_save / fakeip_load): text, one mapping per line,
 *     <address> <name>
 * where <address> is the name's IPv4 address (an IPv6 address of the pool
 * is accepted on load too), lines ordered from least to most recently
 * used so that loading restores the eviction order.  Blank lines and lines
 * starting with '#' are ignored; malformed lines, duplicates and
 * addresses outside the current ranges are skipped with a warning.
 *
 * Pure: no I/O except the two store functions.  Not thread-safe. */
#ifndef SPROXY_FAKEIP_H
#define SPROXY_FAKEIP_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#define FAKEIP_DEFAULT_V4 "198.18.0.0/15"
#define FAKEIP_DEFAULT_V6 "fd73:7072:6f78:7900::/64"
#define FAKEIP_MAX_ENTRIES (1u << 20)
#define FAKEIP_NAME_MAX 253

struct fakeip_pool;

/* NULL cidr = default.  max_entries 0 = as many as the ranges allow.
 * Returns NULL with a message in err on a bad range or no memory. */
struct fakeip_pool *fakeip_new(const char *v4_cidr, const char *v6_cidr,
			       size_t max_entries, char *err, size_t errlen);
void fakeip_free(struct fakeip_pool *pool);

/* name -> addresses, creating or refreshing the mapping (either output
 * pointer may be NULL).  Returns 0, or -1 for a name that cannot be
 * mapped: empty, longer than 253, whitespace/control characters, empty
 * labels (errno EINVAL), or when no address is free within the hold
 * (errno EBUSY). */
int fakeip_assign(struct fakeip_pool *pool, const char *name,
		  struct in_addr *v4, struct in6_addr *v6);

/* address -> name, NULL when not a mapped fake address.  Marks the
 * mapping used.  The string stays valid until the next fakeip_assign or
 * fakeip_load on the pool (eviction frees it): copy it to keep it. */
const char *fakeip_lookup4(struct fakeip_pool *pool, const struct in_addr *a);
const char *fakeip_lookup6(struct fakeip_pool *pool, const struct in6_addr *a);

/* 1 when the address is inside the configured range at all (mapped or
 * not, network and broadcast addresses included). */
int fakeip_contains4(const struct fakeip_pool *pool, const struct in_addr *a);
int fakeip_contains6(const struct fakeip_pool *pool, const struct in6_addr *a);

/* Loads mappings from path into the pool (normally an empty one).
 * Returns the number of mappings loaded, 0 for a missing file, -1 with a
 * message in err when the file cannot be read.  Skipped lines are
 * logged as warnings and counted in *skipped if not NULL. */
int fakeip_load_ex(struct fakeip_pool *pool, const char *path,
		   size_t *skipped, char *err, size_t errlen);
int fakeip_load(struct fakeip_pool *pool, const char *path, char *err,
		size_t errlen);
/* The same from len bytes at buf, named "(memory)" in warnings. */
int fakeip_load_mem(struct fakeip_pool *pool, const void *buf, size_t len,
		    size_t *skipped, char *err, size_t errlen);
/* Writes every mapping to path atomically: path.tmp (mode 0600: it
 * lists the names apps looked up), fsync, rename, fsync of the directory.  0 or -1 with a message in err.  Does not
 * clear the dirty flag: call fakeip_mark_clean after a successful save. */
int fakeip_save(const struct fakeip_pool *pool, const char *path, char *err,
		size_t errlen);

/* Dirty: a mapping was created, evicted or loaded-and-dropped since the
 * last fakeip_mark_clean (recency changes alone do not count). */
int fakeip_dirty(const struct fakeip_pool *pool);
void fakeip_mark_clean(struct fakeip_pool *pool);
size_t fakeip_count(const struct fakeip_pool *pool);
size_t fakeip_capacity(const struct fakeip_pool *pool);
/* Reuse bound: an address goes to another name only once its mapping
 * was last used (handed out, assigned again or looked up) at least
 * seconds ago, since clients may still hold it; until then
 * fakeip_assign fails for a new name with errno EBUSY.  0 (the default)
 * reuses the least recently used mapping at once. */
void fakeip_set_hold(struct fakeip_pool *pool, unsigned seconds);
/* The clock of the hold, in seconds (default: CLOCK_MONOTONIC). */
void fakeip_set_clock(struct fakeip_pool *pool, uint64_t (*now)(void));
/* 1 when name is mapped; changes no recency. */
int fakeip_mapped(const struct fakeip_pool *pool, const char *name);
/* The longest chain of the name hash, for tests and the debug log. */
size_t fakeip_longest_chain(const struct fakeip_pool *pool);
/* The ranges as configured (normalised), e.g. for the startup log. */
const char *fakeip_range4(const struct fakeip_pool *pool);
const char *fakeip_range6(const struct fakeip_pool *pool);

#endif
