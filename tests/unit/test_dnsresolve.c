/* Names resolved for the proxy (dns_server_resolve): which answers it
 * must not use.  The "resolver" is a UDP socket on 127.0.0.1 inside this
 * process that answers from a table; nothing leaves the machine. */
#include "check.h"
#include "dns.h"
#include "dnsserver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "test_resolver.h"

struct result {
	int called, err;
	char msg[400], addr[INET6_ADDRSTRLEN];
};

static void on_resolved(int err, const char *errmsg, const struct sockaddr *addr,
			socklen_t addrlen, void *arg)
{
	struct result *z = arg;

	(void)addrlen;
	z->called++;
	z->err = err;
	snprintf(z->msg, sizeof(z->msg), "%s", errmsg ? errmsg : "");
	if (addr && addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)addr)->sin_addr,
			  z->addr, sizeof(z->addr));
	else if (addr)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr,
			  z->addr, sizeof(z->addr));
}

static void resolve(struct event_base *base, struct dns_server *s, const char *name,
		    int family, struct result *z)
{
	memset(z, 0, sizeof(*z));
	dns_server_resolve(s, name, family, on_resolved, z);
	for (int i = 0; i < 300 && !z->called; i++)
		event_base_loop(base, EVLOOP_ONCE);
}

static struct dns_server *server(struct event_base *base, struct resolver *res,
				 int allow)
{
	static struct dns_range byp = { .prefixlen = 96 + 16 };
	struct dns_config c = {
		.fakeip_enabled = 1, .resolvers = &res->addr, .n_resolvers = 1,
		.timeout_ms = 2000, .attempt_timeout_ms = 1000,
		.bypass = &byp, .n_bypass = 1, .allow_private_answers = allow,
	};
	char err[256];

	/* --bypass 10.1.0.0/16 */
	byp.addr[10] = byp.addr[11] = 0xff;
	byp.addr[12] = 10;
	byp.addr[13] = 1;
	return dns_server_new(base, &c, err, sizeof(err));
}

/* The resolvers answer with the daemon's own fake addresses: a loop. */
static void test_fake_answers_refused(void)
{
	struct event_base *base = event_base_new();
	struct resolver *res = resolver_new(base);
	struct dns_server *s = server(base, res, 0);
	struct result z;

	resolve(base, s, "ok.test", AF_INET, &z);
	CHECK(z.called == 1 && z.err == 0);
	CHECK_STREQ(z.addr, "203.0.113.5");

	resolve(base, s, "fake.test", AF_INET, &z);
	CHECK(z.called == 1 && z.err == ELOOP);
	CHECK(strstr(z.msg, "fake.test") && strstr(z.msg, "198.18.0.7"));
	CHECK(strstr(z.msg, "loop") != NULL);
	resolve(base, s, "fake6.test", AF_INET6, &z);
	CHECK(z.called == 1 && z.err == ELOOP);
	/* a usable address next to a fake one is taken */
	resolve(base, s, "mixed.test", AF_INET, &z);
	CHECK(z.called == 1 && z.err == 0);
	CHECK_STREQ(z.addr, "203.0.113.6");
	dns_server_free(s);
	event_base_loop(base, EVLOOP_NONBLOCK);
	resolver_free(res);
	event_base_free(base);
}

/* Answers the daemon must not connect to for an app, by default. */
static void test_private_answers(void)
{
	static const struct { const char *name; int family; const char *addr; } bad[] = {
		{ "loop.test", AF_INET, "127.0.0.1" },
		{ "meta.test", AF_INET, "169.254.169.254" },
		{ "ll6.test", AF_INET6, "fe80::1" },
		{ "mapped.test", AF_INET6, "127.0.0.2" },
		{ "zero.test", AF_INET, "0.0.0.0" },
		{ "byp.test", AF_INET, "10.1.2.3" },
	};
	struct event_base *base = event_base_new();
	struct resolver *res = resolver_new(base);
	struct dns_server *s = server(base, res, 0);
	struct result z;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		resolve(base, s, bad[i].name, bad[i].family, &z);
		CHECK(z.called == 1 && z.err == EACCES);
		CHECK(strstr(z.msg, bad[i].name) && strstr(z.msg, bad[i].addr));
		CHECK(strstr(z.msg, "--allow-private-answers") != NULL);
		if (z.err != EACCES)
			printf("    %s: err %d '%s' addr %s\n", bad[i].name, z.err,
			       z.msg, z.addr);
	}
	/* next to a bypassed range, not in it */
	resolve(base, s, "near.test", AF_INET, &z);
	CHECK(z.called == 1 && z.err == 0);
	dns_server_free(s);
	event_base_loop(base, EVLOOP_NONBLOCK);

	/* --allow-private-answers: used as given (fake ones still not) */
	s = server(base, res, 1);
	resolve(base, s, "loop.test", AF_INET, &z);
	CHECK(z.called == 1 && z.err == 0);
	CHECK_STREQ(z.addr, "127.0.0.1");
	resolve(base, s, "byp.test", AF_INET, &z);
	CHECK(z.called == 1 && z.err == 0);
	resolve(base, s, "fake.test", AF_INET, &z);
	CHECK(z.called == 1 && z.err == ELOOP);
	dns_server_free(s);
	event_base_loop(base, EVLOOP_NONBLOCK);
	resolver_free(res);
	event_base_free(base);
}

int main(void)
{
	RUN("dnsresolve", test_fake_answers_refused);
	RUN("dnsresolve", test_private_answers);
	CHECK_EXIT();
}
