/* Address and CIDR parsing: what --listen, --resolver and --bypass take. */
#include <arpa/inet.h>
#include <string.h>

#include "addr.h"
#include "check.h"
#include "sproxy.h"

static char err[256];

static const char *fmt(const char *in, uint16_t defport)
{
	static char out[ADDR_STRLEN];
	struct sockaddr_storage ss;

	if (addr_parse(in, defport, &ss, err, sizeof(err)) < 0)
		return "ERR";
	return addr_str((struct sockaddr *)&ss, out, sizeof(out));
}

static void parse_addresses(void)
{
	CHECK_STREQ(fmt("127.0.0.1:3333", 0), "127.0.0.1:3333");
	CHECK_STREQ(fmt("[::1]:3333", 0), "[::1]:3333");
	CHECK_STREQ(fmt("[2001:db8::10]:53", 0), "[2001:db8::10]:53");
	CHECK_STREQ(fmt("198.51.100.53", 53), "198.51.100.53:53");
	CHECK_STREQ(fmt("2001:db8::53", 53), "[2001:db8::53]:53");
	/* IPv4-mapped IPv6 becomes plain IPv4 */
	CHECK_STREQ(fmt("[::ffff:203.0.113.10]:80", 0), "203.0.113.10:80");
}

static void reject_bad_addresses(void)
{
	CHECK_STREQ(fmt("127.0.0.1", 0), "ERR");        /* port required */
	CHECK(strstr(err, "needs a port") != NULL);
	CHECK_STREQ(fmt("127.0.0.1:0", 0), "ERR");
	CHECK_STREQ(fmt("127.0.0.1:65536", 0), "ERR");
	CHECK(strstr(err, "bad port") != NULL);
	CHECK_STREQ(fmt("example.com:80", 0), "ERR");
	CHECK(strstr(err, "not an address") != NULL);
	CHECK_STREQ(fmt("[::1:80", 0), "ERR");
	CHECK_STREQ(fmt("", 80), "ERR");
	CHECK_STREQ(fmt("1.2.3.4:80x", 0), "ERR");
}

static int cidr(const char *s, struct sproxy_bypass_key *k, uint16_t *port)
{
	return cidr_parse(s, k, port, err, sizeof(err));
}

static void parse_cidrs(void)
{
	struct sproxy_bypass_key k;
	uint16_t port;
	uint8_t want4[16] = { [10] = 0xff, [11] = 0xff, [12] = 10 };
	struct in6_addr a6;

	CHECK(cidr("10.0.0.0/8", &k, &port) == 0);
	CHECK(k.prefixlen == 96 + 8);
	CHECK(memcmp(k.ip, want4, 16) == 0);
	CHECK(port == 0);

	CHECK(cidr("10.0.0.0/8:443", &k, &port) == 0);
	CHECK(k.prefixlen == 104 && port == htons(443));

	CHECK(cidr("192.0.2.7", &k, &port) == 0);
	CHECK(k.prefixlen == 128);

	CHECK(cidr("2001:db8::/32", &k, &port) == 0);
	inet_pton(AF_INET6, "2001:db8::", &a6);
	CHECK(k.prefixlen == 32 && memcmp(k.ip, &a6, 16) == 0 && port == 0);

	CHECK(cidr("[2001:db8::/32]:80", &k, &port) == 0);
	CHECK(k.prefixlen == 32 && port == htons(80));

	CHECK(cidr("2001:db8::1", &k, &port) == 0);
	CHECK(k.prefixlen == 128);
}

static void reject_bad_cidrs(void)
{
	struct sproxy_bypass_key k;
	uint16_t port;

	CHECK(cidr("10.0.0.0/33", &k, &port) < 0);
	CHECK(strstr(err, "CIDR") != NULL);
	CHECK(cidr("2001:db8::/129", &k, &port) < 0);
	CHECK(cidr("10.0.0.0/", &k, &port) < 0);
	CHECK(cidr("10.0.0.0/8:0", &k, &port) < 0);
	CHECK(cidr("10.0.0.0/8:99999", &k, &port) < 0);
	CHECK(cidr("nonsense", &k, &port) < 0);
	CHECK(cidr("[2001:db8::/32", &k, &port) < 0);
}

static void sproxy_round_trip(void)
{
	struct sockaddr_storage in, out;
	struct sproxy_addr a;
	char s1[ADDR_STRLEN], s2[ADDR_STRLEN];
	const char *cases[] = { "203.0.113.10:8080", "[2001:db8::10]:443" };

	for (size_t i = 0; i < 2; i++) {
		CHECK(addr_parse(cases[i], 0, &in, err, sizeof(err)) == 0);
		addr_to_sproxy((struct sockaddr *)&in, &a);
		addr_from_sproxy(&a, &out);
		CHECK_STREQ(addr_str((struct sockaddr *)&out, s1, sizeof(s1)), cases[i]);
		CHECK(addr_equal((struct sockaddr *)&in, (struct sockaddr *)&out));
	}
	/* IPv4 lives in the IPv4-mapped form on the BPF side */
	CHECK(addr_parse("203.0.113.10:80", 0, &in, err, sizeof(err)) == 0);
	addr_to_sproxy((struct sockaddr *)&in, &a);
	CHECK(a.ip[10] == 0xff && a.ip[11] == 0xff && a.ip[12] == 203);
	CHECK(a.port == htons(80));
	(void)s2;
}

static void loopback(void)
{
	struct sockaddr_storage ss;

	addr_parse("127.0.0.53:53", 0, &ss, err, sizeof(err));
	CHECK(addr_is_loopback((struct sockaddr *)&ss));
	addr_parse("[::1]:53", 0, &ss, err, sizeof(err));
	CHECK(addr_is_loopback((struct sockaddr *)&ss));
	addr_parse("203.0.113.1:53", 0, &ss, err, sizeof(err));
	CHECK(!addr_is_loopback((struct sockaddr *)&ss));
}

int main(void)
{
	RUN("addr", parse_addresses);
	RUN("addr", reject_bad_addresses);
	RUN("addr", parse_cidrs);
	RUN("addr", reject_bad_cidrs);
	RUN("addr", sproxy_round_trip);
	RUN("addr", loopback);
	CHECK_EXIT();
}
