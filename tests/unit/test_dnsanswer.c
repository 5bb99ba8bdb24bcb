/* FakeIP answers under pressure: a full pool, a process asking for name
 * after name, and when the store is written. */
#include "check.h"
#include "dns.h"
#include "dnsserver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "test_resolver.h"

struct reply {
	int called;
	size_t len;
	uint8_t buf[1024];
};

static void on_reply(const uint8_t *reply, size_t len, void *arg)
{
	struct reply *r = arg;

	r->called++;
	r->len = len < sizeof(r->buf) ? len : 0;
	if (reply && r->len)
		memcpy(r->buf, reply, r->len);
}

/* The A address of the answer to name from tgid, as text ("" if none). */
static const char *ask(struct event_base *base, struct dns_server *s,
		       uint32_t tgid, const char *name)
{
	static char out[INET_ADDRSTRLEN];
	uint8_t q[512];
	struct reply r = { 0 };
	ssize_t n = dns_build_query(1, DNS_FLAG_RD, name, DNS_TYPE_A,
				    DNS_CLASS_IN, 0, q, sizeof(q));

	out[0] = '\0';
	dns_server_query_from(s, tgid, q, (size_t)n, 0, on_reply, &r);
	for (int i = 0; i < 300 && !r.called; i++)
		event_base_loop(base, EVLOOP_ONCE);
	/* header, question (name + 4), then one A record of 16 bytes */
	size_t at = 12 + strlen(name) + 2 + 4;
	if (r.called && r.len >= at + 16 && r.buf[7] >= 1)
		inet_ntop(AF_INET, r.buf + at + 12, out, sizeof(out));
	return out;
}

static struct dns_server *server(struct event_base *base, struct resolver *res,
				 size_t pool, size_t per_process, const char *store)
{
	struct dns_config c = {
		.fakeip_enabled = 1, .resolvers = &res->addr, .n_resolvers = 1,
		.timeout_ms = 2000, .attempt_timeout_ms = 1000, .pool_size = pool,
		.max_names_per_process = per_process, .store_path = store,
	};
	char err[256];
	struct dns_server *s = dns_server_new(base, &c, err, sizeof(err));

	CHECK(s != NULL);
	return s;
}

static void done(struct event_base *base, struct dns_server *s, struct resolver *res)
{
	dns_server_free(s);
	event_base_loop(base, EVLOOP_NONBLOCK);
	resolver_free(res);
	event_base_free(base);
}

/* Four addresses, five names within the TTL: the fifth gets its real
 * address, and the first four keep theirs. */
static void test_full_pool(void)
{
	struct event_base *base = event_base_new();
	struct resolver *res = resolver_new(base);
	struct dns_server *s = server(base, res, 4, 0, NULL);
	char name[32];

	for (int i = 1; i <= 4; i++) {
		snprintf(name, sizeof(name), "n%d.test", i);
		CHECK(strncmp(ask(base, s, 0, name), "198.18.0.", 9) == 0);
	}
	CHECK_STREQ(ask(base, s, 0, "n5.test"), "203.0.113.99");
	struct sockaddr_in sin = { .sin_family = AF_INET };
	inet_pton(AF_INET, "198.18.0.1", &sin.sin_addr);
	CHECK_STREQ(dns_server_fake_name(s, (struct sockaddr *)&sin, NULL), "n1.test");
	CHECK_STREQ(ask(base, s, 0, "n1.test"), "198.18.0.1");
	done(base, s, res);
}

/* One process asking for name after name gets real answers past its
 * bound; others still get fake ones. */
static void test_names_per_process(void)
{
	struct event_base *base = event_base_new();
	struct resolver *res = resolver_new(base);
	struct dns_server *s = server(base, res, 0, 3, NULL);

	CHECK(strncmp(ask(base, s, 42, "p1.test"), "198.18.", 7) == 0);
	CHECK(strncmp(ask(base, s, 42, "p2.test"), "198.18.", 7) == 0);
	CHECK(strncmp(ask(base, s, 42, "p3.test"), "198.18.", 7) == 0);
	CHECK_STREQ(ask(base, s, 42, "p4.test"), "203.0.113.99");
	CHECK(strncmp(ask(base, s, 42, "p1.test"), "198.18.", 7) == 0);
	CHECK(strncmp(ask(base, s, 43, "q1.test"), "198.18.", 7) == 0);
	CHECK(strncmp(ask(base, s, 43, "p4.test"), "198.18.", 7) == 0);
	done(base, s, res);
}

/* New names do not rewrite the store every second: it is written in
 * batches and on the way out, readable by its owner only. */
static void test_store_batched(void)
{
	char dir[] = "/tmp/sproxy-test-dnsanswer.XXXXXX", path[256];
	struct event_base *base = event_base_new();
	struct resolver *res = resolver_new(base);
	struct stat st;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/store", dir);
	struct dns_server *s = server(base, res, 0, 0, path);
	CHECK(strncmp(ask(base, s, 0, "one.test"), "198.18.", 7) == 0);
	struct timeval tv = { 1, 500000 };
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	CHECK(stat(path, &st) == -1);
	CHECK(strncmp(ask(base, s, 0, "two.test"), "198.18.", 7) == 0);
	done(base, s, res);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	RUN("dnsanswer", test_full_pool);
	RUN("dnsanswer", test_names_per_process);
	RUN("dnsanswer", test_store_batched);
	CHECK_EXIT();
}
