/* FakeIP pool: mapping, recency, eviction, the store file. */
#include "check.h"
#include "fakeip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/sproxy-test-fakeip.XXXXXX";

static struct in_addr ip4(const char *s)
{
	struct in_addr a;

	inet_pton(AF_INET, s, &a);
	return a;
}

static struct in6_addr ip6(const char *s)
{
	struct in6_addr a;

	inet_pton(AF_INET6, s, &a);
	return a;
}

static const char *str4(const struct in_addr *a)
{
	static char buf[INET_ADDRSTRLEN];

	return inet_ntop(AF_INET, a, buf, sizeof(buf));
}

static const char *str6(const struct in6_addr *a)
{
	static char buf[INET6_ADDRSTRLEN];

	return inet_ntop(AF_INET6, a, buf, sizeof(buf));
}

static void path_in_tmp(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (!f)
		return;
	fwrite(data, 1, len, f);
	fclose(f);
}

static void test_new_and_ranges(void)
{
	char err[256] = "";
	struct fakeip_pool *p = fakeip_new(NULL, NULL, 0, err, sizeof(err));

	CHECK(p != NULL);
	if (!p)
		return;
	CHECK(fakeip_capacity(p) == 131070);
	CHECK_STREQ(fakeip_range4(p), "198.18.0.0/15");
	CHECK_STREQ(fakeip_range6(p), "fd73:7072:6f78:7900::/64");
	CHECK(fakeip_count(p) == 0 && !fakeip_dirty(p));
	struct in_addr a = ip4("198.19.255.255");
	CHECK(fakeip_contains4(p, &a));
	a = ip4("198.20.0.0");
	CHECK(!fakeip_contains4(p, &a));
	struct in6_addr b = ip6("fd73:7072:6f78:7900:ffff::1");
	CHECK(fakeip_contains6(p, &b));
	b = ip6("fd73:7072:6f78:7901::1");
	CHECK(!fakeip_contains6(p, &b));
	fakeip_free(p);

	/* host bits are masked; explicit sizes; a small v6 range bounds it */
	p = fakeip_new("10.1.2.3/24", "fd00::77/120", 0, err, sizeof(err));
	CHECK(p && fakeip_capacity(p) == 254);
	CHECK(p && strcmp(fakeip_range4(p), "10.1.2.0/24") == 0);
	CHECK(p && strcmp(fakeip_range6(p), "fd00::/120") == 0);
	fakeip_free(p);
	p = fakeip_new("10.0.0.0/8", "fd00::/125", 0, err, sizeof(err));
	CHECK(p && fakeip_capacity(p) == 7);
	fakeip_free(p);
	p = fakeip_new("10.0.0.0/8", NULL, 100, err, sizeof(err));
	CHECK(p && fakeip_capacity(p) == 100);
	fakeip_free(p);
	p = fakeip_new("10.0.0.0/0", "::/0", 0, err, sizeof(err));
	CHECK(p && fakeip_capacity(p) == FAKEIP_MAX_ENTRIES);
	fakeip_free(p);

	const char *bad4[] = { "198.18.0.0", "198.18.0.0/31", "198.18.0.0/33",
			       "198.18.0/15", "x/15", "198.18.0.0/", "1.2.3.4/15x",
			       "::/64", "" };
	for (size_t i = 0; i < sizeof(bad4) / sizeof(bad4[0]); i++) {
		err[0] = '\0';
		CHECK(fakeip_new(bad4[i], NULL, 0, err, sizeof(err)) == NULL);
		CHECK(strstr(err, "IPv4 range") != NULL);
	}
	CHECK(fakeip_new(NULL, "fd00::/127", 0, err, sizeof(err)) == NULL);
	CHECK(fakeip_new(NULL, "10.0.0.0/8", 0, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "IPv6 range") != NULL);
}

static void test_assign_lookup(void)
{
	struct fakeip_pool *p = fakeip_new(NULL, NULL, 0, NULL, 0);
	struct in_addr a, a2, x;
	struct in6_addr b, b2, y;

	CHECK(fakeip_assign(p, "example.com", &a, &b) == 0);
	CHECK_STREQ(str4(&a), "198.18.0.1");
	CHECK_STREQ(str6(&b), "fd73:7072:6f78:7900::1");
	CHECK(fakeip_dirty(p));
	CHECK(fakeip_assign(p, "other.org", &a2, &b2) == 0);
	CHECK_STREQ(str4(&a2), "198.18.0.2");
	CHECK_STREQ(str6(&b2), "fd73:7072:6f78:7900::2");

	/* same name, any case, trailing dot: same addresses */
	fakeip_mark_clean(p);
	CHECK(fakeip_assign(p, "EXAMPLE.Com.", &x, &y) == 0);
	CHECK(x.s_addr == a.s_addr && memcmp(&y, &b, 16) == 0);
	CHECK(fakeip_assign(p, "example.com", NULL, NULL) == 0);
	CHECK(!fakeip_dirty(p)); /* recency alone is not a change */
	CHECK(fakeip_count(p) == 2);

	CHECK_STREQ(fakeip_lookup4(p, &a), "example.com");
	CHECK_STREQ(fakeip_lookup6(p, &b), "example.com");
	CHECK_STREQ(fakeip_lookup4(p, &a2), "other.org");
	CHECK_STREQ(fakeip_lookup6(p, &b2), "other.org");
	CHECK(!fakeip_dirty(p));

	x = ip4("198.18.0.3");
	CHECK(fakeip_lookup4(p, &x) == NULL);
	x = ip4("198.18.0.0"); /* network address: never mapped */
	CHECK(fakeip_lookup4(p, &x) == NULL);
	x = ip4("8.8.8.8");
	CHECK(fakeip_lookup4(p, &x) == NULL);
	y = ip6("fd73:7072:6f78:7900:1::1"); /* in range, index too big */
	CHECK(fakeip_lookup6(p, &y) == NULL);
	y = ip6("fd73:7072:6f78:7900::");
	CHECK(fakeip_lookup6(p, &y) == NULL);
	y = ip6("::1");
	CHECK(fakeip_lookup6(p, &y) == NULL);

	/* names that cannot be mapped */
	char longname[300];
	memset(longname, 'a', sizeof(longname));
	longname[254] = '\0';
	const char *bad[] = { "", ".", "a b", "a..b", ".a", "tab\there",
			      "nl\n", "\x7f", "caf\xc3\xa9", "a..", "..", longname,
			      NULL };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(fakeip_assign(p, bad[i], &x, &y) == -1);
	longname[253] = '\0';
	CHECK(fakeip_assign(p, longname, &x, &y) == 0);
	CHECK(fakeip_count(p) == 3);
	fakeip_free(p);
}

static void test_lru_eviction(void)
{
	/* /29: .1 to .6 usable (.0 network, .7 broadcast) */
	struct fakeip_pool *p = fakeip_new("192.0.2.0/29", NULL, 0, NULL, 0);
	struct in_addr a[9];
	char name[16];

	CHECK(fakeip_capacity(p) == 6);
	for (int i = 1; i <= 6; i++) {
		snprintf(name, sizeof(name), "n%d.test", i);
		CHECK(fakeip_assign(p, name, &a[i], NULL) == 0);
		CHECK(ntohl(a[i].s_addr) == (0xc0000200u | (unsigned)i));
	}
	CHECK(fakeip_count(p) == 6);
	/* n1 looked up for a connection, n2 queried again: both recent */
	CHECK_STREQ(fakeip_lookup4(p, &a[1]), "n1.test");
	CHECK(fakeip_assign(p, "N2.test", NULL, NULL) == 0);
	fakeip_mark_clean(p);

	CHECK(fakeip_assign(p, "n7.test", &a[7], NULL) == 0);
	CHECK(a[7].s_addr == a[3].s_addr); /* n3 was least recent */
	CHECK(fakeip_dirty(p));
	CHECK(fakeip_lookup4(p, &a[3]) != NULL);
	CHECK_STREQ(fakeip_lookup4(p, &a[3]), "n7.test");
	CHECK(fakeip_assign(p, "n8.test", &a[8], NULL) == 0);
	CHECK(a[8].s_addr == a[4].s_addr);
	CHECK(fakeip_count(p) == 6);

	/* n3 comes back: evicts n5, gets a new address */
	struct in_addr n3;
	CHECK(fakeip_assign(p, "n3.test", &n3, NULL) == 0);
	CHECK(n3.s_addr == a[5].s_addr);
	CHECK_STREQ(fakeip_lookup4(p, &a[5]), "n3.test");
	/* the broadcast address is never handed out */
	for (int i = 0; i < 20; i++) {
		struct in_addr x;
		snprintf(name, sizeof(name), "m%d.test", i);
		CHECK(fakeip_assign(p, name, &x, NULL) == 0);
		CHECK((ntohl(x.s_addr) & 7) != 0 && (ntohl(x.s_addr) & 7) != 7);
	}
	CHECK(fakeip_count(p) == 6);
	fakeip_free(p);

	/* a pool of one */
	p = fakeip_new(NULL, NULL, 1, NULL, 0);
	struct in_addr x, y;
	CHECK(fakeip_assign(p, "a", &x, NULL) == 0);
	CHECK(fakeip_assign(p, "b", &y, NULL) == 0);
	CHECK(x.s_addr == y.s_addr);
	CHECK(fakeip_lookup4(p, &x) && strcmp(fakeip_lookup4(p, &x), "b") == 0);
	CHECK(fakeip_count(p) == 1);
	fakeip_free(p);
}

static void test_store_roundtrip(void)
{
	char path[512], tmp[600], err[256];
	struct fakeip_pool *p = fakeip_new("192.0.2.0/29", NULL, 0, NULL, 0);
	struct in_addr a[5];
	struct in6_addr b[5];
	struct stat st;

	path_in_tmp(path, sizeof(path), "store");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	CHECK(fakeip_load(p, path, err, sizeof(err)) == 0); /* missing */
	for (int i = 1; i <= 4; i++) {
		char name[16];
		snprintf(name, sizeof(name), "host%d.Example", i);
		CHECK(fakeip_assign(p, name, &a[i], &b[i]) == 0);
	}
	fakeip_lookup4(p, &a[1]); /* order now: 2 3 4 1 */
	CHECK(fakeip_save(p, path, err, sizeof(err)) == 0);
	CHECK(stat(tmp, &st) == -1);  /* no FILE.tmp left */
	CHECK(stat(path, &st) == 0 && st.st_size > 0);
	fakeip_free(p);

	p = fakeip_new("192.0.2.0/29", NULL, 0, NULL, 0);
	size_t skipped = 99;
	CHECK(fakeip_load_ex(p, path, &skipped, err, sizeof(err)) == 4);
	CHECK(skipped == 0);
	CHECK(!fakeip_dirty(p));
	CHECK(fakeip_count(p) == 4);
	for (int i = 1; i <= 4; i++) {
		char name[16];
		struct in_addr x;
		struct in6_addr y;
		snprintf(name, sizeof(name), "host%d.example", i);
		CHECK_STREQ(fakeip_lookup4(p, &a[i]), name);
		CHECK_STREQ(fakeip_lookup6(p, &b[i]), name);
		CHECK(fakeip_assign(p, name, &x, &y) == 0);
		CHECK(x.s_addr == a[i].s_addr && !memcmp(&y, &b[i], 16));
	}
	CHECK(!fakeip_dirty(p));
	fakeip_free(p);

	/* recency survives the round trip: 2 is evicted first, then 3 */
	p = fakeip_new("192.0.2.0/29", NULL, 0, NULL, 0);
	CHECK(fakeip_load(p, path, err, sizeof(err)) == 4);
	struct in_addr x;
	CHECK(fakeip_assign(p, "new1", &x, NULL) == 0);   /* free .5 */
	CHECK(fakeip_assign(p, "new2", &x, NULL) == 0);   /* free .6 */
	CHECK(fakeip_assign(p, "new3", &x, NULL) == 0);
	CHECK(x.s_addr == a[2].s_addr);
	CHECK(fakeip_assign(p, "new4", &x, NULL) == 0);
	CHECK(x.s_addr == a[3].s_addr);
	fakeip_free(p);

	/* a smaller pool drops what no longer fits */
	p = fakeip_new("192.0.2.0/29", NULL, 2, NULL, 0);
	CHECK(fakeip_load_ex(p, path, &skipped, err, sizeof(err)) == 2);
	CHECK(skipped == 2 && fakeip_dirty(p));
	CHECK(fakeip_lookup4(p, &a[1]) != NULL && fakeip_lookup4(p, &a[2]));
	CHECK(fakeip_lookup4(p, &a[3]) == NULL);
	fakeip_free(p);
	/* another range drops everything */
	p = fakeip_new("10.0.0.0/24", NULL, 0, NULL, 0);
	CHECK(fakeip_load_ex(p, path, &skipped, err, sizeof(err)) == 0);
	CHECK(skipped == 4 && fakeip_count(p) == 0);
	fakeip_free(p);

	/* saving an empty pool gives an empty store */
	p = fakeip_new(NULL, NULL, 0, NULL, 0);
	CHECK(fakeip_save(p, path, err, sizeof(err)) == 0);
	fakeip_free(p);
	p = fakeip_new("192.0.2.0/29", NULL, 0, NULL, 0);
	CHECK(fakeip_load(p, path, err, sizeof(err)) == 0);
	fakeip_free(p);
	unlink(path);
}

static void test_store_malformed(void)
{
	char path[512], err[256];
	char data[4096];
	size_t n = 0;

	path_in_tmp(path, sizeof(path), "bad");
#define ADD(s) do { memcpy(data + n, s, sizeof(s) - 1); n += sizeof(s) - 1; } while (0)
	ADD("# comment\n");
	ADD("\n");
	ADD("   \t\n");
	ADD("198.18.0.1 good.one\n");            /* loaded */
	ADD("198.18.0.2   Good.Two.  \r\n");     /* loaded, normalised */
	ADD("fd73:7072:6f78:7900::3 six.three\n"); /* loaded by its v6 */
	ADD("198.18.0.4\n");                     /* no name */
	ADD("198.18.0.5 a b\n");                 /* extra field */
	ADD("not-an-ip name\n");
	ADD("198.18.0.6 bad..name\n");
	ADD("198.18.0.1 dup.address\n");
	ADD("198.18.0.7 good.one\n");            /* duplicate name */
	ADD("10.0.0.1 outside\n");
	ADD("198.18.0.0 network\n");
	ADD("198.20.0.1 outside.too\n");
	ADD("198.18.0.8 nul\0byte\n");
	memset(data + n, 'x', 1500);             /* a very long line */
	n += 1500;
	ADD("\n198.18.0.9 last.one");            /* no final newline */
	write_file(path, data, n);

	struct fakeip_pool *p = fakeip_new(NULL, NULL, 0, NULL, 0);
	size_t skipped = 0;
	struct in_addr a;
	CHECK(fakeip_load_ex(p, path, &skipped, err, sizeof(err)) == 4);
	CHECK(skipped == 11);
	CHECK(fakeip_count(p) == 4);
	a = ip4("198.18.0.2");
	CHECK_STREQ(fakeip_lookup4(p, &a), "good.two");
	a = ip4("198.18.0.3");
	CHECK_STREQ(fakeip_lookup4(p, &a), "six.three");
	a = ip4("198.18.0.9");
	CHECK_STREQ(fakeip_lookup4(p, &a), "last.one");
	CHECK(fakeip_dirty(p)); /* lines were dropped: rewrite the store */
	/* new names skip the loaded indices */
	CHECK(fakeip_assign(p, "fresh", &a, NULL) == 0);
	CHECK_STREQ(str4(&a), "198.18.0.4");
	CHECK(fakeip_assign(p, "fresh2", &a, NULL) == 0);
	CHECK_STREQ(str4(&a), "198.18.0.5");
	fakeip_free(p);

	/* binary garbage never crashes */
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 131 + 7);
	write_file(path, data, sizeof(data));
	p = fakeip_new(NULL, NULL, 0, NULL, 0);
	CHECK(fakeip_load(p, path, err, sizeof(err)) >= 0);
	fakeip_free(p);

	/* unreadable: a directory */
	p = fakeip_new(NULL, NULL, 0, NULL, 0);
	err[0] = '\0';
	CHECK(fakeip_load(p, tmpdir, err, sizeof(err)) == -1);
	CHECK(err[0] != '\0');
	/* unwritable: no such directory */
	char nodir[600];
	snprintf(nodir, sizeof(nodir), "%s/no/such/dir/store", tmpdir);
	err[0] = '\0';
	CHECK(fakeip_save(p, nodir, err, sizeof(err)) == -1);
	CHECK(strstr(err, "cannot create") != NULL);
	fakeip_free(p);
	unlink(path);
}

static void test_store_replaces_atomically(void)
{
	char path[512], tmp[600], err[256];
	struct fakeip_pool *p = fakeip_new(NULL, NULL, 0, NULL, 0);
	struct stat st;

	path_in_tmp(path, sizeof(path), "atomic");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	/* a stale tmp file (or a symlink planted there) is replaced, and
	 * never written through */
	char victim[600];
	snprintf(victim, sizeof(victim), "%s/victim", tmpdir);
	write_file(victim, "keep\n", 5);
	CHECK(symlink(victim, tmp) == 0);
	fakeip_assign(p, "a.example", NULL, NULL);
	CHECK(fakeip_save(p, path, err, sizeof(err)) == 0);
	CHECK(lstat(tmp, &st) == -1);
	CHECK(stat(victim, &st) == 0 && st.st_size == 5);
	/* the old file is replaced by rename: an open reader keeps the old */
	FILE *old = fopen(path, "r");
	fakeip_assign(p, "b.example", NULL, NULL);
	CHECK(fakeip_save(p, path, err, sizeof(err)) == 0);
	char line[256], all[1024] = "";
	while (old && fgets(line, sizeof(line), old))
		strncat(all, line, sizeof(all) - strlen(all) - 1);
	if (old)
		fclose(old);
	CHECK(strstr(all, "a.example") && !strstr(all, "b.example"));
	fakeip_free(p);
	p = fakeip_new(NULL, NULL, 0, NULL, 0);
	CHECK(fakeip_load(p, path, err, sizeof(err)) == 2);
	fakeip_free(p);
	unlink(path);
	unlink(victim);
}

/* FNV-1a, the unkeyed hash the pool once used: names that collide under
 * it must not make one long chain. */
static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 16777619u;
	}
	return h;
}

static void test_hash_collisions(void)
{
	struct fakeip_pool *p = fakeip_new(NULL, NULL, 4096, NULL, 0);
	char name[32];
	size_t n = 0;
	uint32_t want = 0;

	for (unsigned k = 0; n < 1000 && k < 50000000; k++) {
		snprintf(name, sizeof(name), "c%u.test", k);
		uint32_t b = fnv1a(name) & 4095;
		if (n == 0)
			want = b;
		if (b != want)
			continue;
		CHECK(fakeip_assign(p, name, NULL, NULL) == 0);
		n++;
	}
	CHECK(n == 1000 && fakeip_count(p) == 1000);
	CHECK(fakeip_longest_chain(p) < 32);
	printf("    longest chain of 1000 FNV-colliding names: %zu\n",
	       fakeip_longest_chain(p));
	CHECK(fakeip_mapped(p, "c0.test") && !fakeip_mapped(p, "c1.test") ==
	      ((fnv1a("c1.test") & 4095) != (fnv1a("c0.test") & 4095)));
	fakeip_free(p);
}

static uint64_t fake_now;
static uint64_t fake_clock(void)
{
	return fake_now;
}

/* An address is not handed to another name while clients may hold it. */
static void test_hold(void)
{
	struct fakeip_pool *p = fakeip_new("192.0.2.0/29", NULL, 0, NULL, 0);
	struct in_addr a[8], x;
	char name[16];

	fakeip_set_clock(p, fake_clock);
	fakeip_set_hold(p, 61);
	fake_now = 1000;
	for (int i = 1; i <= 6; i++) {
		snprintf(name, sizeof(name), "n%d.test", i);
		CHECK(fakeip_assign(p, name, &a[i], NULL) == 0);
	}
	fake_now = 1030;
	CHECK(fakeip_assign(p, "n1.test", NULL, NULL) == 0); /* used again */
	fake_now = 1060;
	errno = 0;
	CHECK(fakeip_assign(p, "n7.test", &x, NULL) == -1 && errno == EBUSY);
	CHECK(fakeip_count(p) == 6 && !fakeip_mapped(p, "n7.test"));
	for (int i = 1; i <= 6; i++) {
		snprintf(name, sizeof(name), "n%d.test", i);
		CHECK_STREQ(fakeip_lookup4(p, &a[i]), name);
	}
	/* the lookups above used every mapping at 1060 */
	fake_now = 1120;
	CHECK(fakeip_assign(p, "n7.test", &x, NULL) == -1 && errno == EBUSY);
	fake_now = 1121;
	CHECK(fakeip_assign(p, "n7.test", &x, NULL) == 0);
	CHECK(x.s_addr == a[1].s_addr); /* n1 was least recently used */
	CHECK(!fakeip_mapped(p, "n1.test"));
	/* a mapped name is always answered */
	CHECK(fakeip_assign(p, "n2.test", NULL, NULL) == 0);
	fakeip_free(p);
}

/* The store names every site a user visited: only root reads it. */
static void test_store_mode(void)
{
	struct fakeip_pool *p = fakeip_new(NULL, NULL, 16, NULL, 0);
	char path[256], err[256];
	struct stat st;
	mode_t old = umask(022);

	path_in_tmp(path, sizeof(path), "mode");
	CHECK(fakeip_assign(p, "private.test", NULL, NULL) == 0);
	CHECK(fakeip_save(p, path, err, sizeof(err)) == 0);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	umask(old);
	unlink(path);
	fakeip_free(p);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN("fakeip", test_new_and_ranges);
	RUN("fakeip", test_assign_lookup);
	RUN("fakeip", test_lru_eviction);
	RUN("fakeip", test_store_roundtrip);
	RUN("fakeip", test_store_malformed);
	RUN("fakeip", test_store_replaces_atomically);
	RUN("fakeip", test_hash_collisions);
	RUN("fakeip", test_hold);
	RUN("fakeip", test_store_mode);
	rmdir(tmpdir);
	CHECK_EXIT();
}
