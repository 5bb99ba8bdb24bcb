/* Fuzzes the FakeIP store loader (user/fakeip.c): the file the daemon
 * reads at start, which may be damaged, truncated or written by hand.
 * The first input byte picks the pool (ranges, size) and whether the
 * result also goes through a real save; the rest is the file.
 * Invariants:
 *  - load returns the number of mappings it added, never more than the
 *    lines it read, and count() agrees;
 *  - every mapping it made is self-consistent: the IPv4 and IPv6 address
 *    of an index give the same name, a normalised one (lowercase, no
 *    trailing dot, at most FAKEIP_NAME_MAX), and assigning that name again
 *    gives the same addresses;
 *  - loading the same bytes again adds nothing (all duplicates);
 *  - what the pool holds, written back as a store (in memory, and through
 *    fakeip_save for some inputs), loads into a fresh pool whole. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fakeip.h"
#include "log.h"
#include "fuzz.h"

struct shape {
	const char *v4, *v6;
	uint32_t base4;             /* first address, host order */
	struct in6_addr base6;
	size_t max;
};

static void shape_of(uint8_t ctl, struct shape *s)
{
	static const size_t maxes[] = { 0, 1, 2, 7 };

	memset(s, 0, sizeof(*s));
	if (ctl & 0x40) {
		/* the defaults, cut to a size a fuzzer can fill */
		s->v4 = NULL;
		s->v6 = NULL;
		s->base4 = 0xc6120000;  /* 198.18.0.0 */
		inet_pton(AF_INET6, "fd73:7072:6f78:7900::", &s->base6);
		s->max = 260;
	} else {
		s->v4 = "198.18.0.0/24";
		s->v6 = "fd73:7072:6f78:7900::/120";
		s->base4 = 0xc6120000;
		inet_pton(AF_INET6, "fd73:7072:6f78:7900::", &s->base6);
		s->max = maxes[ctl & 3];
	}
}

static void addr_at(const struct shape *s, uint32_t i, struct in_addr *a4,
		    struct in6_addr *a6)
{
	a4->s_addr = htonl(s->base4 + i);
	*a6 = s->base6;
	for (int k = 15; k >= 12; k--, i >>= 8)
		a6->s6_addr[k] = (uint8_t)(s->base6.s6_addr[k] + (i & 0xff));
}

static void check_name(const char *n)
{
	size_t l = strlen(n);

	ASSERT(l >= 1 && l <= FAKEIP_NAME_MAX);
	ASSERT(n[l - 1] != '.');
	for (size_t k = 0; k < l; k++)
		ASSERT(!(n[k] >= 'A' && n[k] <= 'Z') && n[k] > ' ' &&
		       n[k] != 0x7f);
}

/* Walks the pool's addresses, checks each mapping and writes the store
 * the pool amounts to into out (NUL-terminated); returns its length. */
static size_t walk(struct fakeip_pool *p, const struct shape *s, char *out,
		   size_t cap, size_t *found)
{
	size_t cap_n = fakeip_capacity(p), len = 0;

	*found = 0;
	for (uint32_t i = 0; i <= cap_n + 1; i++) {
		struct in_addr a4, x4;
		struct in6_addr a6, x6;
		char as[INET_ADDRSTRLEN], name[FAKEIP_NAME_MAX + 1];
		const char *n;

		addr_at(s, i, &a4, &a6);
		n = fakeip_lookup4(p, &a4);
		if (!n) {
			/* the IPv6 side too, at the edges (all of them would
			 * cost most of the run) */
			if (i == 0 || i >= cap_n)
				ASSERT(!fakeip_lookup6(p, &a6));
			continue;
		}
		ASSERT(i >= 1 && i <= cap_n);
		check_name(n);
		snprintf(name, sizeof(name), "%s", n);
		n = fakeip_lookup6(p, &a6);
		ASSERT(n && !strcmp(n, name));
		ASSERT(fakeip_assign(p, name, &x4, &x6) == 0);
		ASSERT(x4.s_addr == a4.s_addr && !memcmp(&x6, &a6, 16));
		inet_ntop(AF_INET, &a4, as, sizeof(as));
		int w = snprintf(out + len, cap - len, "%s %s\n", as, name);
		ASSERT(w > 0 && (size_t)w < cap - len);
		len += (size_t)w;
		(*found)++;
	}
	return len;
}

static size_t lines_in(const uint8_t *d, size_t n)
{
	size_t l = 0;

	for (size_t k = 0; k < n; k++)
		l += d[k] == '\n';
	return l + (n && d[n - 1] != '\n');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char store[400 * (INET_ADDRSTRLEN + FAKEIP_NAME_MAX + 2)];
	static char path[64];
	struct fakeip_pool *p, *q;
	struct shape s;
	size_t skipped, found, again, slen;
	char err[256];
	int n;

	if (size < 1)
		return 0;
	slog_level = SLOG_ERR; /* skipped lines warn; not news here */
	shape_of(data[0], &s);
	data++;
	size--;

	p = fakeip_new(s.v4, s.v6, s.max, err, sizeof(err));
	ASSERT(p);
	n = fakeip_load_mem(p, data, size, &skipped, err, sizeof(err));
	ASSERT(n >= 0);
	ASSERT((size_t)n == fakeip_count(p));
	ASSERT((size_t)n + skipped <= lines_in(data, size));
	ASSERT(fakeip_dirty(p) == (skipped > 0));

	slen = walk(p, &s, store, sizeof(store), &found);
	ASSERT(found == (size_t)n);

	/* the same bytes again: every line is now a duplicate */
	ASSERT(fakeip_load_mem(p, data, size, &again, err, sizeof(err)) == 0);
	ASSERT(fakeip_count(p) == (size_t)n);
	ASSERT(again == skipped + (size_t)n);

	/* what the pool holds loads back whole */
	q = fakeip_new(s.v4, s.v6, s.max, err, sizeof(err));
	ASSERT(q);
	ASSERT(fakeip_load_mem(q, store, slen, &skipped, err, sizeof(err)) == n);
	ASSERT(skipped == 0);
	fakeip_free(q);

	/* and through the real file writer, for one input in eight */
	if ((data[-1] & 0x38) == 0x38) {
		if (!path[0])
			snprintf(path, sizeof(path), "/dev/shm/fuzz-fakeip-%d",
				 (int)getpid());
		ASSERT(fakeip_save(p, path, err, sizeof(err)) == 0);
		q = fakeip_new(s.v4, s.v6, s.max, err, sizeof(err));
		ASSERT(q);
		ASSERT(fakeip_load_ex(q, path, &skipped, err, sizeof(err)) == n);
		ASSERT(skipped == 0);
		fakeip_free(q);
		unlink(path);
	}
	fakeip_free(p);
	return 0;
}
