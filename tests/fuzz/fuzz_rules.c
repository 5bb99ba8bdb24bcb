/* Fuzzer for the rules (user/rules.c, user/rules_match.c) and the config
 * file (user/config.c through cli_apply).  The input is a config file;
 * when it reads and compiles, a fixed set of connections is decided by
 * the indexed matcher and by the rule-by-rule one, which must agree.
 * Each line is also given to rules_add alone, which must either take it
 * or say why.  Invariants: no crash, no leak, no out-of-bounds read (the
 * sanitizers), and the two matchers give the same answer. */
#include <dlfcn.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "cli.h"
#include "daemon.h"
#include "rules.h"
#include "fuzz.h"

/* No lookups by name while fuzzing: an upstream's host name would wait
 * for a resolver on every input that has one.  Numeric hosts go through
 * the real getaddrinfo, as in the daemon. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	static int (*real)(const char *, const char *, const struct addrinfo *,
			   struct addrinfo **);
	struct addrinfo h = { 0 };

	if (!real)
		real = (int (*)(const char *, const char *, const struct addrinfo *,
				struct addrinfo **))dlsym(RTLD_NEXT, "getaddrinfo");
	if (!real)
		return EAI_SYSTEM;
	if (hints)
		h = *hints;
	h.ai_flags |= AI_NUMERICHOST;
	return real(node, service, &h, res);
}

static void decide_all(const struct rules *r)
{
	static const char *const hosts[] = { NULL, "a.example", "www.example.com",
					     "EXAMPLE.COM.", "x" };
	static const char *const ips[] = { "192.0.2.1", "198.51.100.7", "2001:db8::1",
					   "::ffff:203.0.113.9", "10.0.0.1" };
	struct sockaddr_storage dst, res;

	for (int i = 0; i < 5 * 5 * 4; i++) {
		struct rule_input in = { 0 };
		struct rule_result a, b;
		const char *ip = ips[i % 5];
		int ra, rb;

		memset(&dst, 0, sizeof(dst));
		if (strchr(ip, ':')) {
			struct sockaddr_in6 *s = (void *)&dst;

			s->sin6_family = AF_INET6;
			s->sin6_port = htons((uint16_t)(i * 37));
			inet_pton(AF_INET6, ip, &s->sin6_addr);
		} else {
			struct sockaddr_in *s = (void *)&dst;

			s->sin_family = AF_INET;
			s->sin_port = htons((uint16_t)(i * 37));
			inet_pton(AF_INET, ip, &s->sin_addr);
		}
		res = dst;
		in.dst = (struct sockaddr *)&dst;
		in.host = hosts[(i / 5) % 5];
		in.fakeip = (i / 25) & 1;
		in.resolved_done = (i / 50) & 1;
		in.resolved = &res;
		in.n_resolved = in.resolved_done;
		in.network = i & 1 ? RULE_NET_UDP : RULE_NET_TCP;
		in.comm = i & 2 ? "curl" : NULL;
		in.exe = i & 4 ? "/usr/bin/curl" : NULL;
		in.cgroup = i & 8 ? "user.slice/app-a@1.service" : NULL;
		in.uid = (uint32_t)i;
		ra = rules_match(r, &in, &a);
		rb = rules_match_linear(r, &in, &b);
		ASSERT(ra == rb && a.rule == b.rule && strcmp(a.target, b.target) == 0);
		ASSERT(a.rule >= 0 && a.rule <= rules_count(r));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct options o = { 0 };
	char err[4096];
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	if (cli_apply_config_mem(&o, "fuzz.conf", text, size, err, sizeof(err)) == 0 &&
	    cli_finish(&o, err, sizeof(err)) == 0)
		decide_all(o.rules);
	cli_options_free(&o);

	/* Each line as a rule of its own. */
	for (char *line = text, *nl; line; line = nl ? nl + 1 : NULL) {
		struct rules *r = rules_new();
		const char *names[] = { "up" };

		nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		err[0] = 0;
		if (rules_add(r, line, "fuzz", err, sizeof(err)) == 0) {
			ASSERT(rules_count(r) == 1);
			if (rules_compile(r, names, 1, err, sizeof(err)) == 0)
				decide_all(r);
		} else {
			ASSERT(err[0] && rules_count(r) == 0);
		}
		rules_unref(r);
	}
	free(text);
	return 0;
}
