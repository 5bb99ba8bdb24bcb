/* make bench-rules: time per decision of rules_match against the number of
 * rules, half DOMAIN-SUFFIX and half IP-CIDR (the lists people import),
 * behind two rules that are tried one by one and before a final MATCH.
 * The rule-by-rule matcher runs alongside as the baseline, and must agree.
 *
 *   bench_rules [N...]      (default 10 1000 20000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include "rules.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct rules *build(int n)
{
	struct rules *r = rules_new();
	char line[128], err[512];
	unsigned seed = 1;

	rules_add(r, "DST-PORT,25,REJECT", "bench", err, sizeof(err));
	rules_add(r, "DOMAIN-KEYWORD,tracker,REJECT", "bench", err, sizeof(err));
	for (int i = 0; i < n; i++) {
		if (i % 2)
			snprintf(line, sizeof(line), "DOMAIN-SUFFIX,site%d.example%d.com,%s", i,
				 i % 7, i % 3 ? "DIRECT" : "REJECT");
		else
			snprintf(line, sizeof(line), "IP-CIDR,%u.%u.%u.0/%d,%s",
				 1 + rand_r(&seed) % 223, rand_r(&seed) % 256, rand_r(&seed) % 256,
				 16 + rand_r(&seed) % 9, i % 3 ? "DIRECT" : "REJECT");
		if (rules_add(r, line, "bench", err, sizeof(err)) < 0) {
			fprintf(stderr, "bench_rules: %s: %s\n", line, err);
			exit(1);
		}
	}
	rules_add(r, "MATCH,DIRECT", "bench", err, sizeof(err));
	if (rules_compile(r, NULL, 0, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_rules: %s\n", err);
		exit(1);
	}
	return r;
}

#define N_INPUTS 1024

struct sample {
	struct sockaddr_in dst;
	char host[64];
	struct rule_input in;
};

/* Half with a name (a quarter of them listed), half by address alone. */
static void inputs(struct sample *s, int n)
{
	unsigned seed = 2;

	for (int i = 0; i < N_INPUTS; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		s[i].dst.sin_family = AF_INET;
		s[i].dst.sin_port = htons(443);
		s[i].dst.sin_addr.s_addr = htonl(0x01000000u + (uint32_t)rand_r(&seed) * 7919u);
		s[i].in.dst = (struct sockaddr *)&s[i].dst;
		s[i].in.network = RULE_NET_TCP;
		s[i].in.comm = "curl";
		s[i].in.uid = 1000;
		if (i % 2) {
			int k = rand_r(&seed) % (n ? n : 1);

			snprintf(s[i].host, sizeof(s[i].host), i % 4 == 1 ?
				 "www.cdn.site%d.example%d.com" : "www.cdn.other%d.example%d.org",
				 k | 1, (k | 1) % 7);
			s[i].in.host = s[i].host;
		}
	}
}

static double per_decision(const struct rules *r, const struct sample *s, int linear,
			   long *matched)
{
	struct rule_result out;
	long rounds = 0, hits = 0;
	double t0 = now(), t;

	do {
		for (int i = 0; i < N_INPUTS; i++) {
			if (linear)
				rules_match_linear(r, &s[i].in, &out);
			else
				rules_match(r, &s[i].in, &out);
			hits += out.rule;
		}
		rounds++;
		t = now() - t0;
	} while (t < 0.3);
	*matched = hits / rounds;
	return t / ((double)rounds * N_INPUTS) * 1e9;
}

int main(int argc, char **argv)
{
	static const int def[] = { 10, 1000, 20000 };
	static struct sample s[N_INPUTS];
	int n_sizes = argc > 1 ? argc - 1 : 3;

	printf("%-8s %14s %14s\n", "rules", "indexed ns", "one-by-one ns");
	for (int k = 0; k < n_sizes; k++) {
		int n = argc > 1 ? atoi(argv[k + 1]) : def[k];
		struct rules *r = build(n);
		long m1, m2;
		double a, b;

		inputs(s, n);
		a = per_decision(r, s, 0, &m1);
		b = per_decision(r, s, 1, &m2);
		printf("%-8d %14.0f %14.0f\n", rules_count(r), a, b);
		if (m1 != m2) {
			fprintf(stderr, "bench_rules: the two matchers disagree at %d rules\n", n);
			return 1;
		}
		rules_unref(r);
	}
	return 0;
}
