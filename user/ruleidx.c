/* An open-addressing hash table whose keys live in one growing arena: a
 * rule set of 20,000 entries is two allocations, and a lookup is one hash
 * and, mostly, one compare. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ruleidx.h"

struct slot {
	uint64_t hash;               /* 0: empty */
	uint32_t off, len;           /* key in the arena */
	int idx;
};

struct ruleidx {
	struct slot *slots;
	size_t cap, used;            /* cap is a power of two */
	char *arena;
	size_t arena_len, arena_cap;
	unsigned kinds[256];          /* keys of each kind: none, no lookup */
};

/* Eight bytes a step, multiply and rotate, then a final mix so that keys
 * that differ in their last bytes (masked addresses) spread over the low
 * bits too.  Keys come from the rules, not from the network: no seed. */
static uint64_t hash_key(int kind, const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)(uint8_t)kind << 56) ^ len, w;

	for (; len >= 8; len -= 8, p += 8) {
		memcpy(&w, p, 8);
		h = ((h ^ w) * 0xff51afd7ed558ccdull);
		h = (h << 31) | (h >> 33);
	}
	w = 0;
	memcpy(&w, p, len);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h ? h : 1;
}

struct ruleidx *ruleidx_new(void)
{
	struct ruleidx *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->cap = 16;
	t->slots = calloc(t->cap, sizeof(*t->slots));
	if (!t->slots) {
		free(t);
		return NULL;
	}
	return t;
}

void ruleidx_free(struct ruleidx *t)
{
	if (!t)
		return;
	free(t->slots);
	free(t->arena);
	free(t);
}

static struct slot *find(const struct ruleidx *t, uint64_t h, int kind, const void *key,
			 size_t len)
{
	size_t mask = t->cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct slot *s = &t->slots[i];

		if (!s->hash)
			return s;
		if (s->hash == h && s->len == len + 1 && t->arena[s->off] == (char)kind &&
		    memcmp(t->arena + s->off + 1, key, len) == 0)
			return s;
	}
}

static int grow(struct ruleidx *t)
{
	struct slot *old = t->slots;
	size_t oldcap = t->cap;
	struct ruleidx n = *t;

	n.cap = oldcap * 2;
	n.slots = calloc(n.cap, sizeof(*n.slots));
	if (!n.slots)
		return -1;
	for (size_t i = 0; i < oldcap; i++) {
		if (!old[i].hash)
			continue;
		size_t j = old[i].hash & (n.cap - 1);

		while (n.slots[j].hash)
			j = (j + 1) & (n.cap - 1);
		n.slots[j] = old[i];
	}
	free(old);
	t->slots = n.slots;
	t->cap = n.cap;
	return 0;
}

int ruleidx_put(struct ruleidx *t, int kind, const void *key, size_t len, int idx)
{
	uint64_t h = hash_key(kind, key, len);
	struct slot *s;

	if ((t->used + 1) * 4 > t->cap * 3 && grow(t) < 0)
		return -1;
	s = find(t, h, kind, key, len);
	if (s->hash) {
		if (idx < s->idx)
			s->idx = idx;
		return 0;
	}
	if (t->arena_len + len + 1 > t->arena_cap) {
		size_t cap = t->arena_cap ? t->arena_cap * 2 : 4096;
		char *a;

		while (cap < t->arena_len + len + 1)
			cap *= 2;
		a = realloc(t->arena, cap);
		if (!a)
			return -1;
		t->arena = a;
		t->arena_cap = cap;
	}
	t->arena[t->arena_len] = (char)kind;
	memcpy(t->arena + t->arena_len + 1, key, len);
	s->hash = h;
	s->off = (uint32_t)t->arena_len;
	s->len = (uint32_t)len + 1;
	s->idx = idx;
	t->arena_len += len + 1;
	t->used++;
	t->kinds[(uint8_t)kind]++;
	return 0;
}

int ruleidx_get(const struct ruleidx *t, int kind, const void *key, size_t len)
{
	const struct slot *s;

	if (!t->kinds[(uint8_t)kind])
		return RULEIDX_NONE;
	s = find(t, hash_key(kind, key, len), kind, key, len);

	return s->hash ? s->idx : RULEIDX_NONE;
}
