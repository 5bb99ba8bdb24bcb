/* A "resolver" for the unit tests: a UDP socket on 127.0.0.1 inside the
 * test process that answers A/AAAA queries from a table.  Nothing leaves
 * the machine.  Included by one test file each (they are built alone). */
#ifndef SPROXY_TEST_RESOLVER_H
#define SPROXY_TEST_RESOLVER_H

#include "dns.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

/* name -> the A (or AAAA) records the resolver gives; any other name
 * has A 203.0.113.99 */
static const struct {
	const char *name;
	const char *a[2];
} table[] = {
	{ "ok.test", { "203.0.113.5" } },
	{ "fake.test", { "198.18.0.7" } },
	{ "fake6.test", { "fd73:7072:6f78:7900::7" } },
	{ "mixed.test", { "198.18.0.9", "203.0.113.6" } },
	{ "loop.test", { "127.0.0.1" } },
	{ "meta.test", { "169.254.169.254" } },
	{ "ll6.test", { "fe80::1" } },
	{ "mapped.test", { "::ffff:127.0.0.2" } },
	{ "zero.test", { "0.0.0.0" } },
	{ "byp.test", { "10.1.2.3" } },
	{ "near.test", { "10.2.0.1" } },
};

struct resolver {
	int fd;
	struct event *ev;
	struct sockaddr_storage addr;
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Answers q with the table's records of its type (pointer to the question
 * as each record's owner). */
static void on_query(evutil_socket_t fd, short what, void *arg)
{
	uint8_t in[1500], out[1500];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	struct dns_query q;
	ssize_t n = recvfrom(fd, in, sizeof(in), 0, (struct sockaddr *)&from, &fl);

	(void)what;
	(void)arg;
	if (n <= 0 || dns_parse_query(in, (size_t)n, &q, NULL) != 0)
		return;
	ssize_t len = dns_build_error(&q, DNS_RCODE_NOERROR, out, sizeof(out));
	uint16_t an = 0;
	size_t i;
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcasecmp(table[i].name, q.qname) == 0)
			break;
	const char *const *addrs = i < sizeof(table) / sizeof(table[0])
		? table[i].a : (const char *const[2]){ "203.0.113.99", NULL };
	{
		for (int k = 0; k < 2 && addrs[k]; k++) {
			uint8_t rd[16];
			int v6 = strchr(addrs[k], ':') != NULL;
			if ((q.qtype == DNS_TYPE_AAAA) != v6)
				continue;
			inet_pton(v6 ? AF_INET6 : AF_INET, addrs[k], rd);
			uint8_t *p = out + len;
			put16(p, 0xc00c);
			put16(p + 2, q.qtype);
			put16(p + 4, DNS_CLASS_IN);
			put16(p + 6, 0);
			put16(p + 8, 60);
			put16(p + 10, v6 ? 16 : 4);
			memcpy(p + 12, rd, v6 ? 16 : 4);
			len += 12 + (v6 ? 16 : 4);
			an++;
		}
	}
	put16(out + 6, an);
	sendto(fd, out, (size_t)len, 0, (struct sockaddr *)&from, fl);
}

static struct resolver *resolver_new(struct event_base *base)
{
	struct resolver *r = calloc(1, sizeof(*r));
	struct sockaddr_in *sin = (struct sockaddr_in *)&r->addr;
	socklen_t len = sizeof(*sin);

	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	bind(r->fd, (struct sockaddr *)sin, len);
	getsockname(r->fd, (struct sockaddr *)sin, &len);
	r->ev = event_new(base, r->fd, EV_READ | EV_PERSIST, on_query, r);
	event_add(r->ev, NULL);
	return r;
}

static void resolver_free(struct resolver *r)
{
	event_free(r->ev);
	close(r->fd);
	free(r);
}

#endif
