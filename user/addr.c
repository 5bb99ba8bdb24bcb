#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "sproxy.h"

static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static int parse_port(const char *s, uint16_t *port)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (!*s || *end || v < 1 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* Splits "host", "host:port", "[host]" or "[host]:port" (a host with
 * more than one colon and no brackets is IPv6, with no port). */
static int split_host_port(const char *s, char *host, size_t hostlen,
			   const char **port_s)
{
	size_t n;

	*port_s = NULL;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || (rb[1] && rb[1] != ':'))
			return -1;
		n = (size_t)(rb - s - 1);
		if (rb[1] == ':')
			*port_s = rb + 2;
		s++;
	} else {
		const char *colon = strrchr(s, ':');

		n = strlen(s);
		if (colon && strchr(s, ':') == colon) {
			n = (size_t)(colon - s);
			*port_s = colon + 1;
		}
	}
	if (n == 0 || n >= hostlen)
		return -1;
	memcpy(host, s, n);
	host[n] = 0;
	return 0;
}

int addr_parse(const char *s, uint16_t default_port, struct sockaddr_storage *ss,
	       char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *port_s;
	uint16_t port = default_port;

	memset(ss, 0, sizeof(*ss));
	if (split_host_port(s, host, sizeof(host), &port_s) < 0)
		goto bad;
	if (port_s && parse_port(port_s, &port) < 0) {
		snprintf(err, errlen, "bad port in '%s' (want 1-65535)", s);
		return -1;
	}
	if (!port) {
		snprintf(err, errlen, "'%s' needs a port (ADDR:PORT)", s);
		return -1;
	}
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		((struct sockaddr_in *)ss)->sin_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons(port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
		addr_unmap(ss);
		return 0;
	}
bad:
	snprintf(err, errlen, "'%s' is not an address (want 1.2.3.4:PORT or [::1]:PORT)", s);
	return -1;
}

int cidr_parse(const char *s, struct sproxy_bypass_key *key, uint16_t *port,
	       char *err, size_t errlen)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash;
	const char *port_s;
	struct in_addr a4;
	struct in6_addr a6;
	long bits = -1;

	*port = 0;
	memset(key, 0, sizeof(*key));
	if (split_host_port(s, buf, sizeof(buf), &port_s) < 0)
		goto bad;
	if (port_s && parse_port(port_s, port) < 0)
		goto bad;
	slash = strchr(buf, '/');
	if (slash) {
		char *end;

		*slash++ = 0;
		/* Digits only: strtol would take "-1" (then read as no prefix)
		 * and "+8". */
		if (!*slash || strspn(slash, "0123456789") != strlen(slash) ||
		    strlen(slash) > 3)
			goto bad;
		bits = strtol(slash, &end, 10);
	}
	if (inet_pton(AF_INET, buf, &a4) == 1) {
		if (bits < 0)
			bits = 32;
		if (bits > 32)
			goto bad;
		memcpy(key->ip, v4mapped, 12);
		memcpy(key->ip + 12, &a4, 4);
		key->prefixlen = 96 + (uint32_t)bits;
	} else if (inet_pton(AF_INET6, buf, &a6) == 1) {
		if (bits < 0)
			bits = 128;
		if (bits > 128)
			goto bad;
		memcpy(key->ip, &a6, 16);
		key->prefixlen = (uint32_t)bits;
	} else {
		goto bad;
	}
	*port = htons(*port);
	return 0;
bad:
	snprintf(err, errlen, "'%s' is not CIDR[:PORT] (e.g. 10.0.0.0/8, "
		 "10.0.0.0/8:443, 2001:db8::/32, [2001:db8::/32]:443)", s);
	return -1;
}

const char *addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)sa;

		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(s->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)sa;

		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(s->sin6_port));
	} else {
		snprintf(buf, len, "(family %d)", sa->sa_family);
	}
	return buf;
}

socklen_t addr_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
					: sizeof(struct sockaddr_in6);
}

uint16_t addr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
}

void addr_to_sproxy(const struct sockaddr *sa, struct sproxy_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)sa;

		memcpy(out->ip, v4mapped, 12);
		memcpy(out->ip + 12, &s->sin_addr, 4);
		out->port = s->sin_port;
	} else {
		const struct sockaddr_in6 *s = (const void *)sa;

		memcpy(out->ip, &s->sin6_addr, 16);
		out->port = s->sin6_port;
	}
}

socklen_t addr_from_sproxy(const struct sproxy_addr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (memcmp(a->ip, v4mapped, 12) == 0) {
		struct sockaddr_in *s = (void *)ss;

		s->sin_family = AF_INET;
		memcpy(&s->sin_addr, a->ip + 12, 4);
		s->sin_port = a->port;
		return sizeof(*s);
	}
	struct sockaddr_in6 *s6 = (void *)ss;

	s6->sin6_family = AF_INET6;
	memcpy(&s6->sin6_addr, a->ip, 16);
	s6->sin6_port = a->port;
	return sizeof(*s6);
}

void addr_unmap(struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *s6 = (void *)ss;
	struct sockaddr_in s4 = { .sin_family = AF_INET };

	if (ss->ss_family != AF_INET6 || memcmp(&s6->sin6_addr, v4mapped, 12))
		return;
	s4.sin_port = s6->sin6_port;
	memcpy(&s4.sin_addr, s6->sin6_addr.s6_addr + 12, 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &s4, sizeof(s4));
}

int addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
	struct sproxy_addr x, y;

	addr_to_sproxy(a, &x);
	addr_to_sproxy(b, &y);
	return memcmp(x.ip, y.ip, 16) == 0 && x.port == y.port;
}

int addr_is_loopback(const struct sockaddr *sa)
{
	struct sproxy_addr x;

	addr_to_sproxy(sa, &x);
	if (memcmp(x.ip, v4mapped, 12) == 0)
		return x.ip[12] == 127;
	return memcmp(x.ip, &in6addr_loopback, 16) == 0;
}

/* One of this network namespace's addresses: binding to it (port 0, no
 * IP_TRANSPARENT) works only then. */
int addr_is_ours(const struct sockaddr *sa)
{
	struct sockaddr_storage ss;
	int fd, ok;

	memcpy(&ss, sa, addr_len(sa));
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = 0;
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = 0;
	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	ok = bind(fd, (struct sockaddr *)&ss, addr_len(sa)) == 0;
	close(fd);
	return ok;
}
