/* --bypass rules for the LPM trie: a prefix carries the ports of every
 * entry that contains it, so that the longest match answers for all of
 * them, whatever the order of the entries. */
#include <arpa/inet.h>
#include <string.h>

#include "addr.h"
#include "bypass.h"
#include "check.h"

static char err[256];

static struct bypass_entry entry(const char *s)
{
	struct bypass_entry e;

	memset(&e, 0, sizeof(e));
	if (cidr_parse(s, &e.key, &e.port, err, sizeof(err)) < 0)
		e.key.prefixlen = 999;
	return e;
}

/* What an LPM lookup of ADDR:PORT would decide with these rules: 1 direct,
 * 0 captured (the longest prefix that contains it answers alone). */
static int direct(const struct bypass_rule *r, int n, const char *addr_port)
{
	struct bypass_entry d = entry(addr_port);
	int best = -1, i, j, any = 1;

	for (i = 0; i < n; i++) {
		struct sproxy_bypass_key k = d.key;
		uint32_t bits = r[i].key.prefixlen;

		memset(k.ip + (bits + 7) / 8, 0, 16 - (bits + 7) / 8);
		if (bits % 8)
			k.ip[bits / 8] &= (uint8_t)(0xff << (8 - bits % 8));
		if (memcmp(k.ip, r[i].key.ip, 16) == 0 &&
		    (best < 0 || bits > r[best].key.prefixlen))
			best = i;
	}
	if (best < 0)
		return 0;
	for (j = 0; j < SPROXY_BYPASS_PORTS; j++) {
		if (r[best].val.ports[j]) {
			any = 0;
			if (r[best].val.ports[j] == d.port)
				return 1;
		}
	}
	return any;
}

static int build(const char *const *specs, int n, struct bypass_rule *out)
{
	struct bypass_entry in[16];
	int i;

	for (i = 0; i < n; i++)
		in[i] = entry(specs[i]);
	return bypass_rules(in, (size_t)n, out, 16, err, sizeof(err));
}

/* A /32 with one port inside a /24 with another: the /24's port still goes
 * direct for the /32's address, in both orders. */
static void nested_ports_any_order(void)
{
	const char *a[] = { "203.0.113.0/24:8080", "203.0.113.10:8081" };
	const char *b[] = { "203.0.113.10:8081", "203.0.113.0/24:8080" };
	struct bypass_rule ra[16], rb[16];
	int na = build(a, 2, ra), nb = build(b, 2, rb);

	CHECK(na == 2 && nb == 2);
	for (int k = 0; k < 2; k++) {
		struct bypass_rule *r = k ? rb : ra;
		int n = k ? nb : na;

		CHECK(direct(r, n, "203.0.113.10:8080") == 1);
		CHECK(direct(r, n, "203.0.113.10:8081") == 1);
		CHECK(direct(r, n, "203.0.113.11:8080") == 1);
		CHECK(direct(r, n, "203.0.113.11:8081") == 0);
		CHECK(direct(r, n, "203.0.113.10:443") == 0);
		CHECK(direct(r, n, "198.51.100.1:8080") == 0);
	}
}

/* "Any port" on an outer prefix wins over the inner prefix's ports. */
static void outer_any_wins(void)
{
	const char *a[] = { "10.1.2.3:443", "10.0.0.0/8" };
	const char *b[] = { "10.0.0.0/8", "10.1.2.3:443" };
	struct bypass_rule ra[16], rb[16];
	int na = build(a, 2, ra), nb = build(b, 2, rb);

	CHECK(na == 2 && nb == 2);
	CHECK(direct(ra, na, "10.1.2.3:80") == 1);
	CHECK(direct(rb, nb, "10.1.2.3:80") == 1);
	CHECK(direct(ra, na, "10.9.9.9:22") == 1);
}

/* An inner "any" does not widen the outer prefix. */
static void inner_any_stays_inner(void)
{
	const char *a[] = { "10.0.0.0/8:53", "10.1.0.0/16" };
	struct bypass_rule r[16];
	int n = build(a, 2, r);

	CHECK(n == 2);
	CHECK(direct(r, n, "10.1.2.3:80") == 1);
	CHECK(direct(r, n, "10.2.2.3:80") == 0);
	CHECK(direct(r, n, "10.2.2.3:53") == 1);
}

/* Equal prefixes (host bits aside) make one rule with both ports. */
static void equal_prefixes_merge(void)
{
	const char *a[] = { "10.1.2.3/8:80", "10.0.0.0/8:443", "10.0.0.0/8:80" };
	struct bypass_rule r[16];
	int n = build(a, 3, r);

	CHECK(n == 1);
	CHECK(r[0].key.prefixlen == 96 + 8);
	CHECK(r[0].key.ip[12] == 10 && r[0].key.ip[13] == 0 && r[0].key.ip[15] == 0);
	CHECK(direct(r, n, "10.200.0.1:80") == 1);
	CHECK(direct(r, n, "10.200.0.1:443") == 1);
	CHECK(direct(r, n, "10.200.0.1:22") == 0);
}

static void ipv6_nested(void)
{
	const char *a[] = { "[2001:db8::10]:8081", "[2001:db8::/32]:8080" };
	struct bypass_rule r[16];
	int n = build(a, 2, r);

	CHECK(n == 2);
	CHECK(direct(r, n, "[2001:db8::10]:8080") == 1);
	CHECK(direct(r, n, "[2001:db8::11]:8081") == 0);
}

/* More ports than a rule holds, counting the outer prefixes': an error
 * that names the prefix. */
static void too_many_ports(void)
{
	const char *a[] = { "192.0.2.0/24:1", "192.0.2.0/24:2", "192.0.2.0/24:3",
			    "192.0.2.0/24:4", "192.0.2.0/24:5", "192.0.2.0/24:6",
			    "192.0.2.0/24:7", "192.0.2.7:8", "192.0.2.7:9" };
	struct bypass_rule r[16];

	CHECK(build(a, 9, r) == -1);
	CHECK(strstr(err, "192.0.2.7/32") != NULL);
	CHECK(build(a, 8, r) == 2);
}

int main(void)
{
	RUN("bypass", nested_ports_any_order);
	RUN("bypass", outer_any_wins);
	RUN("bypass", inner_any_stays_inner);
	RUN("bypass", equal_prefixes_merge);
	RUN("bypass", ipv6_nested);
	RUN("bypass", too_many_ports);
	CHECK_EXIT();
}
