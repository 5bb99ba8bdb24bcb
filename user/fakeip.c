/* FakeIP pool (see fakeip.h).  Index 0 is "none" everywhere: entries,
 * hash chains and the LRU list are all linked by index. */
#include "fakeip.h"

#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fakeip_entry {
	char *name;              /* NULL = free */
	uint32_t prev, next;     /* LRU list: prev is more recent */
	uint32_t hnext;          /* hash chain */
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
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
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

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 16777619u;
	}
	return h;
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
		seterr(err, errlen, "bad FakeIP IPv4 range '%s': want "
		       "ADDRESS/PREFIX with a prefix of at most 30", v4_cidr);
		return NULL;
	}
	if (parse_cidr(v6_cidr, AF_INET6, &a6, &p6) < 0 || p6 > 126) {
		seterr(err, errlen, "bad FakeIP IPv6 range '%s': want "
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
	seterr(err, errlen, "FakeIP pool: out of memory");
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
static int normalize(const char *name, char buf[FAKEIP_NAME_MAX + 1])
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

static uint32_t find(const struct fakeip_pool *pool, const char *name)
{
	uint32_t i = pool->buckets[name_hash(name) & (pool->nbuckets - 1)];

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
	if (pool->head != i) {
		lru_unlink(pool, i);
		lru_push(pool, i);
	}
}

static void hash_remove(struct fakeip_pool *pool, uint32_t i)
{
	uint32_t *pp = &pool->buckets[name_hash(pool->e[i].name) &
				      (pool->nbuckets - 1)];

	while (*pp && *pp != i)
		pp = &pool->e[*pp].hnext;
	if (*pp)
		*pp = pool->e[i].hnext;
	pool->e[i].hnext = 0;
}

/* Maps a normalized name at a free index; takes ownership of copy. */
static void insert(struct fakeip_pool *pool, uint32_t i, char *copy)
{
	uint32_t *b = &pool->buckets[name_hash(copy) & (pool->nbuckets - 1)];

	pool->e[i].name = copy;
	pool->e[i].hnext = *b;
	*b = i;
	lru_push(pool, i);
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

static void addrs_of(const struct fakeip_pool *pool, uint32_t i,
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

	if (normalize(name, buf) < 0)
		return -1;
	i = find(pool, buf);
	if (i) {
		touch(pool, i);
	} else {
		char *copy = strdup(buf);
		if (!copy)
			return -1;
		while (pool->fresh <= pool->size && pool->e[pool->fresh].name)
			pool->fresh++;
		if (pool->fresh <= pool->size) {
			i = pool->fresh++;
		} else {
			i = pool->tail;
			evict(pool, i);
		}
		insert(pool, i, copy);
	}
	addrs_of(pool, i, v4, v6);
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

static uint32_t index4(const struct fakeip_pool *pool, const struct in_addr *a)
{
	if (!fakeip_contains4(pool, a))
		return 0;
	uint32_t i = ntohl(a->s_addr) - pool->v4base;
	return i <= pool->size ? i : 0;
}

static uint32_t index6(const struct fakeip_pool *pool, const struct in6_addr *a)
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
	return lookup(pool, index4(pool, a));
}

const char *fakeip_lookup6(struct fakeip_pool *pool, const struct in6_addr *a)
{
	return lookup(pool, index6(pool, a));
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

const char *fakeip_range4(const struct fakeip_pool *pool)
{
	return pool->range4;
}

const char *fakeip_range6(const struct fakeip_pool *pool)
{
	return pool->range6;
}

/* ---- store file ---- */

#define STORE_LINE_MAX 512
#define STORE_WARN_MAX 10

static void store_warn(const char *path, unsigned long line, size_t *nwarn,
		       const char *why)
{
	if (++*nwarn <= STORE_WARN_MAX)
		log_warn("fakeip: %s:%lu: %s; line skipped", path, line, why);
}

/* Reads one line into buf without its newline: 1, 0 at the end of the
 * file, -1 for a line that is too long or holds a NUL (consumed). */
static int read_line(FILE *f, char *buf, size_t cap)
{
	size_t n = 0;
	int c, bad = 0;

	while ((c = getc(f)) != EOF && c != '\n') {
		if (c == '\0' || n + 1 >= cap)
			bad = 1;
		else
			buf[n++] = (char)c;
	}
	if (c == EOF && n == 0 && !bad)
		return 0;
	buf[n] = '\0';
	return bad ? -1 : 1;
}

/* One "address name" line; returns NULL or why it was skipped. */
static const char *load_line(struct fakeip_pool *pool, char *line)
{
	char *save, *addr, *name;
	char buf[FAKEIP_NAME_MAX + 1];
	struct in_addr a4;
	struct in6_addr a6;
	uint32_t i;

	addr = strtok_r(line, " \t\r\n", &save);
	if (!addr || addr[0] == '#')
		return NULL;
	name = strtok_r(NULL, " \t\r\n", &save);
	if (!name || strtok_r(NULL, " \t\r\n", &save))
		return "want 'ADDRESS NAME'";
	if (inet_pton(AF_INET, addr, &a4) == 1)
		i = index4(pool, &a4);
	else if (inet_pton(AF_INET6, addr, &a6) == 1)
		i = index6(pool, &a6);
	else
		return "bad address";
	if (!i)
		return "address outside the FakeIP range";
	if (normalize(name, buf) < 0)
		return "bad name";
	if (pool->e[i].name || find(pool, buf))
		return "address or name already mapped";
	char *copy = strdup(buf);
	if (!copy)
		return "out of memory";
	insert(pool, i, copy);
	return NULL;
}

/* The store's lines from f (closed here); path names it in messages. */
static int load_stream(struct fakeip_pool *pool, FILE *f, const char *path,
		       size_t *skipped, char *err, size_t errlen)
{
	char line[STORE_LINE_MAX];
	unsigned long lineno = 0;
	size_t nwarn = 0, before = pool->count;
	int dirty = pool->dirty;

	for (;;) {
		int r = read_line(f, line, sizeof(line));
		if (r == 0)
			break;
		lineno++;
		if (r < 0) {
			store_warn(path, lineno, &nwarn,
				   "line too long or not text");
			continue;
		}
		const char *why = load_line(pool, line);
		if (why)
			store_warn(path, lineno, &nwarn, why);
	}
	int rerr = ferror(f);
	fclose(f);
	if (rerr) {
		seterr(err, errlen, "cannot read FakeIP store %s", path);
		return -1;
	}
	if (nwarn > STORE_WARN_MAX)
		log_warn("fakeip: %s: %zu lines skipped in all", path, nwarn);
	if (skipped)
		*skipped = nwarn;
	/* Loading alone changes nothing on disk; dropping lines does. */
	pool->dirty = dirty || nwarn > 0;
	return (int)(pool->count - before);
}

int fakeip_load_ex(struct fakeip_pool *pool, const char *path,
		   size_t *skipped, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");

	if (skipped)
		*skipped = 0;
	if (!f) {
		if (errno == ENOENT)
			return 0;
		seterr(err, errlen, "cannot open FakeIP store %s: %s", path,
		       strerror(errno));
		return -1;
	}
	return load_stream(pool, f, path, skipped, err, errlen);
}

/* The same from memory, for the fuzzer: the parser sees exactly what a
 * file with these bytes would give it. */
int fakeip_load_mem(struct fakeip_pool *pool, const void *buf, size_t len,
		    size_t *skipped, char *err, size_t errlen)
{
	FILE *f = len ? fmemopen((void *)buf, len, "r") : NULL;

	if (skipped)
		*skipped = 0;
	if (!len)
		return 0; /* as an empty file */
	if (!f) {
		seterr(err, errlen, "cannot read FakeIP store from memory: %s",
		       strerror(errno));
		return -1;
	}
	return load_stream(pool, f, "(memory)", skipped, err, errlen);
}

int fakeip_load(struct fakeip_pool *pool, const char *path, char *err,
		size_t errlen)
{
	return fakeip_load_ex(pool, path, NULL, err, errlen);
}

static int fsync_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (!slash) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		if ((size_t)(slash - path) >= sizeof(dir))
			return -1;
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

int fakeip_save(const struct fakeip_pool *pool, const char *path, char *err,
		size_t errlen)
{
	char tmp[PATH_MAX];
	int fd;
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		seterr(err, errlen, "FakeIP store path too long: %s", path);
		return -1;
	}
	/* A fresh file, never through a planted symlink. */
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0644);
	if (fd < 0) {
		seterr(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	f = fdopen(fd, "w");
	if (!f) {
		seterr(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	fprintf(f, "# sproxy-bpf FakeIP store: ADDRESS NAME, least recently "
		"used first\n# range %s %s\n", pool->range4, pool->range6);
	for (uint32_t i = pool->tail; i; i = pool->e[i].prev) {
		struct in_addr a;
		char as[INET_ADDRSTRLEN];
		addrs_of(pool, i, &a, NULL);
		inet_ntop(AF_INET, &a, as, sizeof(as));
		fprintf(f, "%s %s\n", as, pool->e[i].name);
	}
	if (fflush(f) != 0 || fsync(fd) != 0) {
		seterr(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		fclose(f);
		unlink(tmp);
		return -1;
	}
	if (fclose(f) != 0) {
		seterr(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) != 0) {
		seterr(err, errlen, "cannot rename %s to %s: %s", tmp, path,
		       strerror(errno));
		unlink(tmp);
		return -1;
	}
	fsync_dir(path); /* best effort: the data itself is synced */
	return 0;
}
