/* Reverse names, IP literals and type names (see dns.h): text helpers
 * of the DNS server that touch no message. */
#include "dns.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

int dns_ptr_name4(const struct in_addr *a, char *out, size_t cap)
{
	const uint8_t *b = (const uint8_t *)&a->s_addr;
	int n = snprintf(out, cap, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2],
			 b[1], b[0]);
	return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

int dns_ptr_name6(const struct in6_addr *a, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const char *suffix = "ip6.arpa";
	size_t need = 64 + strlen(suffix);

	if (cap < need + 1)
		return -1;
	char *p = out;
	for (int i = 15; i >= 0; i--) {
		*p++ = hex[a->s6_addr[i] & 0xf];
		*p++ = '.';
		*p++ = hex[a->s6_addr[i] >> 4];
		*p++ = '.';
	}
	memcpy(p, suffix, strlen(suffix) + 1);
	return (int)need;
}

static int has_suffix_ci(const char *name, size_t len, const char *suffix,
			 size_t *prefix_len)
{
	size_t sl = strlen(suffix);

	if (len < sl || strncasecmp(name + len - sl, suffix, sl) != 0)
		return 0;
	*prefix_len = len - sl;
	return 1;
}

static int parse_rev4(const char *p, size_t len, uint8_t out[4])
{
	int i = 3;
	size_t k = 0;

	while (k < len) {
		unsigned v = 0, digits = 0;
		if (i < 0)
			return -1;
		while (k < len && p[k] != '.') {
			if (!isdigit((unsigned char)p[k]) || ++digits > 3)
				return -1;
			v = v * 10 + (unsigned)(p[k++] - '0');
		}
		if (digits == 0 || v > 255 || (digits > 1 && p[k - digits] == '0'))
			return -1;
		out[i--] = (uint8_t)v;
		k++; /* the dot */
	}
	return i == -1 ? 0 : -1;
}

static int parse_rev6(const char *p, size_t len, uint8_t out[16])
{
	/* exactly 32 "x." pairs */
	if (len != 64)
		return -1;
	for (int n = 0; n < 32; n++) {
		int c = tolower((unsigned char)p[2 * n]), v;
		if (p[2 * n + 1] != '.')
			return -1;
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			return -1;
		/* nibble n counts from the least significant one */
		int byte = 15 - n / 2;
		if (n % 2 == 0)
			out[byte] = (uint8_t)v;
		else
			out[byte] |= (uint8_t)(v << 4);
	}
	return 0;
}

int dns_parse_ptr_name(const char *name, void *addr)
{
	size_t len = strlen(name), pl;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (has_suffix_ci(name, len, ".in-addr.arpa", &pl)) {
		uint8_t b[4];
		if (parse_rev4(name, pl + 1, b) < 0)
			return 0;
		memcpy(addr, b, 4);
		return AF_INET;
	}
	if (has_suffix_ci(name, len, ".ip6.arpa", &pl)) {
		uint8_t b[16];
		if (parse_rev6(name, pl + 1, b) < 0)
			return 0;
		memcpy(addr, b, 16);
		return AF_INET6;
	}
	return 0;
}

int dns_name_is_ip_literal(const char *name)
{
	char buf[INET6_ADDRSTRLEN + 8];
	size_t len = strlen(name);
	struct in6_addr a6;
	struct in_addr a4;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, name, len);
	buf[len] = '\0';
	return inet_aton(buf, &a4) == 1 || inet_pton(AF_INET6, buf, &a6) == 1;
}

const char *dns_type_name(uint16_t type, char *buf, size_t cap)
{
	static const struct { uint16_t t; const char *n; } names[] = {
		{ DNS_TYPE_A, "A" }, { DNS_TYPE_NS, "NS" },
		{ DNS_TYPE_CNAME, "CNAME" }, { DNS_TYPE_SOA, "SOA" },
		{ DNS_TYPE_PTR, "PTR" }, { DNS_TYPE_MX, "MX" },
		{ DNS_TYPE_TXT, "TXT" }, { DNS_TYPE_AAAA, "AAAA" },
		{ DNS_TYPE_SRV, "SRV" }, { DNS_TYPE_OPT, "OPT" },
		{ 64, "SVCB" }, { DNS_TYPE_HTTPS, "HTTPS" },
		{ DNS_TYPE_IXFR, "IXFR" }, { DNS_TYPE_AXFR, "AXFR" },
		{ DNS_TYPE_ANY, "ANY" },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].t == type)
			return names[i].n;
	snprintf(buf, cap, "TYPE%u", type);
	return buf;
}
