/* The rules as the BPF hooks see them: first-match order kept across
 * kinds (the lowest rule index wins), a CIDR prefix carrying the first rule
 * of the prefixes that contain it, barriers for what the hooks cannot
 * evaluate, and domain rules answered per name. */
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

#include "check.h"
#include "rules.h"
#include "rules_kernel.h"

static const char *const ups[] = { "up" };

static struct rules *build(const char *const *lines)
{
	struct rules *r = rules_new();
	char err[512];

	for (int i = 0; lines[i]; i++)
		if (rules_add(r, lines[i], "test", err, sizeof(err)) < 0) {
			printf("  rules_add %s: %s\n", lines[i], err);
			return NULL;
		}
	if (rules_compile(r, ups, 1, err, sizeof(err)) < 0) {
		printf("  rules_compile: %s\n", err);
		return NULL;
	}
	return r;
}

static const struct rules_kernel_cidr *find_cidr(const struct rules_kernel *k,
						 const char *v4, uint32_t plen)
{
	uint8_t ip[16] = { [10] = 0xff, [11] = 0xff };

	inet_pton(AF_INET, v4, ip + 12);
	for (size_t i = 0; i < k->n_cidr_all; i++)
		if (k->cidr_all[i].key.prefixlen == 96 + plen &&
		    memcmp(k->cidr_all[i].key.ip, ip, 16) == 0)
			return &k->cidr_all[i];
	return NULL;
}

static void kinds_and_order(void)
{
	static const char *const lines[] = {
		"DST-PORT,4444,REJECT",
		"IP-CIDR,10.0.0.0/8,up",
		"IP-CIDR,10.1.0.0/16,DIRECT",
		"UID,1000-1002,REJECT",
		"PROCESS-NAME,curl,DIRECT",
		"NETWORK,udp,up",
		"DST-PORT,4444/80,DIRECT",
		"IP-CIDR,192.0.2.0/24,REJECT,no-resolve",
		"MATCH,DIRECT",
		NULL,
	};
	struct rules *r = build(lines);
	struct rules_kernel k;
	const struct rules_kernel_cidr *c;

	CHECK(r != NULL);
	if (!r)
		return;
	CHECK(rules_kernel_build(r, &k) == 0);
	CHECK(k.barrier.idx == SPROXY_FP_NONE);
	/* 4444: rule 1 before rule 7; 80: rule 7 only. */
	CHECK(k.ports[4444].idx == 1 && k.ports[4444].verdict == SPROXY_FP_REJECT);
	CHECK(k.ports[80].idx == 7 && k.ports[80].verdict == SPROXY_FP_DIRECT);
	CHECK(k.ports[81].idx == SPROXY_FP_NONE);
	/* 10.1/16 lies in 10/8, which comes first: the upstream wins. */
	c = find_cidr(&k, "10.1.0.0", 16);
	CHECK(c && c->hit.idx == 2 && c->hit.verdict == SPROXY_FP_PROXY);
	c = find_cidr(&k, "10.0.0.0", 8);
	CHECK(c && c->hit.idx == 2);
	/* no-resolve: in the set for real destinations only. */
	c = find_cidr(&k, "192.0.2.0", 24);
	CHECK(c && c->hit.idx == 8 && !c->resolvable);
	CHECK(k.n_cidr_all == 3 && k.n_cidr_res == 2);
	CHECK(k.n_uid == 3 && k.uid[0].hit.idx == 4);
	CHECK(k.n_comm == 1 && strcmp(k.comm[0].comm, "curl") == 0 && k.comm[0].hit.idx == 5);
	CHECK(k.net[1].idx == 6 && k.net[1].verdict == SPROXY_FP_PROXY);
	CHECK(k.net[0].idx == SPROXY_FP_NONE);
	CHECK(k.match.idx == 9 && k.match.verdict == SPROXY_FP_DIRECT);
	rules_kernel_free(&k);
	rules_unref(r);
}

static void barriers(void)
{
	static const char *const lines[] = {
		"DST-PORT,22,REJECT",
		"PROCESS-NAME,a-name-longer-than-a-comm,DIRECT",
		"DST-PORT,23,REJECT",
		NULL,
	};
	static const char *const logic[] = {
		"AND,((NETWORK,udp),(DST-PORT,443)),REJECT",
		"MATCH,DIRECT",
		NULL,
	};
	struct rules *r = build(lines);
	struct rules_kernel k;

	CHECK(r && rules_kernel_build(r, &k) == 0);
	if (!r)
		return;
	/* Rule 2 cannot be evaluated: it and everything after go to the proxy. */
	CHECK(k.barrier.idx == 2 && k.barrier.verdict == SPROXY_FP_PROXY);
	CHECK(k.ports[22].idx == 1);
	CHECK(k.ports[23].idx == SPROXY_FP_NONE);
	rules_kernel_free(&k);
	rules_unref(r);
	r = build(logic);
	CHECK(r && rules_kernel_build(r, &k) == 0);
	if (!r)
		return;
	CHECK(k.barrier.idx == 1 && k.match.idx == SPROXY_FP_NONE);
	rules_kernel_free(&k);
	rules_unref(r);
}

static void names(void)
{
	static const char *const lines[] = {
		"DST-PORT,22,REJECT",
		"DOMAIN-SUFFIX,example.com,REJECT",
		"DOMAIN,www.example.com,DIRECT",
		"DOMAIN-KEYWORD,track,up",
		NULL,
	};
	struct rules *r = build(lines);
	struct rules_kernel k;
	struct sproxy_fp_hit h;

	CHECK(r && rules_kernel_build(r, &k) == 0);
	if (!r)
		return;
	/* Domain rules are no barrier: no name is known for a real address. */
	CHECK(k.barrier.idx == SPROXY_FP_NONE);
	h = rules_kernel_name(r, "WWW.Example.com.");
	CHECK(h.idx == 2 && h.verdict == SPROXY_FP_REJECT);
	h = rules_kernel_name(r, "notexample.com");
	CHECK(h.idx == SPROXY_FP_NONE);
	h = rules_kernel_name(r, "tracker.test");
	CHECK(h.idx == 4 && h.verdict == SPROXY_FP_PROXY);
	h = rules_kernel_name(NULL, "example.com");
	CHECK(h.idx == SPROXY_FP_NONE);
	rules_kernel_free(&k);
	rules_unref(r);
	CHECK(rules_kernel_build(NULL, &k) == 0 && k.barrier.idx == SPROXY_FP_NONE &&
	      k.ports[443].idx == SPROXY_FP_NONE);
	rules_kernel_free(&k);
}

int main(void)
{
	RUN("rules_kernel", kinds_and_order);
	RUN("rules_kernel", barriers);
	RUN("rules_kernel", names);
	CHECK_EXIT();
}
