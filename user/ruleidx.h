/* The rules' lookup table: byte-string keys (a domain, a suffix, a masked
 * address) to the smallest rule index that holds them. */
#ifndef SPROXY_RULEIDX_H
#define SPROXY_RULEIDX_H
#include <limits.h>
#include <stddef.h>

#define RULEIDX_NONE INT_MAX

struct ruleidx;

struct ruleidx *ruleidx_new(void);
void ruleidx_free(struct ruleidx *t);
/* Keys are a kind byte (which rule type) and bytes.  Keeps the smaller of
 * idx and what the key had.  -1 when out of memory. */
int ruleidx_put(struct ruleidx *t, int kind, const void *key, size_t len, int idx);
/* The index stored for the key, or RULEIDX_NONE. */
int ruleidx_get(const struct ruleidx *t, int kind, const void *key, size_t len);

#endif
