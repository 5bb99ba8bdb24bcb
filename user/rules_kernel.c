/* The rules compiled for the BPF hooks: see rules_kernel.h. */
#include <stdlib.h>
#include <string.h>

#include "rules_int.h"
#include "rules_kernel.h"

static struct sproxy_fp_hit no_hit(void)
{
	return (struct sproxy_fp_hit){ .idx = SPROXY_FP_NONE };
}

static void take(struct sproxy_fp_hit *best, struct sproxy_fp_hit h)
{
	if (h.idx < best->idx)
		*best = h;
}

static struct sproxy_fp_hit hit_of(const struct rule *ru, int idx)
{
	struct sproxy_fp_hit h = { .idx = (uint32_t)idx };

	h.verdict = ru->action == RULE_DIRECT ? SPROXY_FP_DIRECT :
		    ru->action == RULE_REJECT ? SPROXY_FP_REJECT : SPROXY_FP_PROXY;
	return h;
}

static struct sproxy_fp_hit barrier_at(int idx)
{
	return (struct sproxy_fp_hit){ .idx = (uint32_t)idx, .verdict = SPROXY_FP_PROXY };
}

static int prefix_has(const uint8_t *net, int plen, const uint8_t *a)
{
	int bytes = plen / 8, bits = plen % 8;

	if (memcmp(net, a, (size_t)bytes) != 0)
		return 0;
	return !bits || ((net[bytes] ^ a[bytes]) & (uint8_t)(0xff << (8 - bits))) == 0;
}

/* Each prefix takes the first rule among the prefixes that contain it
 * (itself included), so that the trie's longest match answers with the
 * first matching rule.  Quadratic, on at most RULES_KERNEL_MAX_CIDR. */
static void cidr_fold(struct rules_kernel_cidr *v, size_t n)
{
	struct sproxy_fp_hit *best = malloc(n * sizeof(*best));

	if (!best)
		return;        /* the caller's hits stay: a later rule may win */
	for (size_t i = 0; i < n; i++) {
		best[i] = v[i].hit;
		for (size_t j = 0; j < n; j++)
			if (v[j].key.prefixlen <= v[i].key.prefixlen &&
			    prefix_has(v[j].key.ip, (int)v[j].key.prefixlen, v[i].key.ip))
				take(&best[i], v[j].hit);
	}
	for (size_t i = 0; i < n; i++)
		v[i].hit = best[i];
	free(best);
}

static int add_cidr(struct rules_kernel *k, const struct cond *c, struct sproxy_fp_hit h)
{
	struct rules_kernel_cidr *e;

	if (k->n_cidr_all == RULES_KERNEL_MAX_CIDR)
		return -1;
	e = &k->cidr_all[k->n_cidr_all++];
	memset(e, 0, sizeof(*e));
	e->key.prefixlen = (uint32_t)c->plen;
	memcpy(e->key.ip, c->ip, 16);
	e->hit = h;
	e->resolvable = !c->no_resolve;
	if (e->resolvable)
		k->cidr_res[k->n_cidr_res++] = *e;
	return 0;
}

static int add_uids(struct rules_kernel *k, const struct cond *c, struct sproxy_fp_hit h)
{
	uint64_t n = 0;

	for (int i = 0; i < c->n_ranges; i++)
		n += (uint64_t)c->ranges[i].hi - c->ranges[i].lo + 1;
	if (k->n_uid + n > RULES_KERNEL_MAX_UID)
		return -1;
	for (int i = 0; i < c->n_ranges; i++)
		for (uint64_t u = c->ranges[i].lo; u <= c->ranges[i].hi; u++) {
			size_t j;

			for (j = 0; j < k->n_uid && k->uid[j].uid != u; j++)
				;
			if (j == k->n_uid) {
				k->uid[k->n_uid].uid = (uint32_t)u;
				k->uid[k->n_uid++].hit = h;
			} else {
				take(&k->uid[j].hit, h);
			}
		}
	return 0;
}

static int add_comm(struct rules_kernel *k, const struct cond *c, struct sproxy_fp_hit h)
{
	size_t len = strlen(c->str), j;

	/* A comm holds 15 bytes: a longer name cannot be told from it. */
	if (len >= SPROXY_COMM_LEN)
		return -1;
	for (j = 0; j < k->n_comm; j++)
		if (strncmp(k->comm[j].comm, c->str, SPROXY_COMM_LEN) == 0) {
			take(&k->comm[j].hit, h);
			return 0;
		}
	if (k->n_comm == RULES_KERNEL_MAX_COMM)
		return -1;
	memset(k->comm[k->n_comm].comm, 0, SPROXY_COMM_LEN);
	memcpy(k->comm[k->n_comm].comm, c->str, len);
	k->comm[k->n_comm++].hit = h;
	return 0;
}

/* One rule into k; -1 when the hooks cannot evaluate it. */
static int add_rule(struct rules_kernel *k, const struct rule *ru, int idx)
{
	const struct cond *c = &ru->c;
	struct sproxy_fp_hit h = hit_of(ru, idx);

	switch (c->type) {
	case T_DOMAIN:
	case T_SUFFIX:
	case T_KEYWORD:
		return 0;          /* per FakeIP name: rules_kernel_name */
	case T_CIDR:
		return add_cidr(k, c, h);
	case T_PORT:
		for (int i = 0; i < c->n_ranges; i++)
			for (uint32_t p = c->ranges[i].lo; p <= c->ranges[i].hi && p < 65536; p++)
				take(&k->ports[p], h);
		return 0;
	case T_NETWORK:
		take(&k->net[c->network == RULE_NET_TCP ? 0 : 1], h);
		return 0;
	case T_UID:
		return add_uids(k, c, h);
	case T_PNAME:
		return add_comm(k, c, h);
	case T_MATCH:
		take(&k->match, h);
		return 0;
	default:
		return -1;
	}
}

int rules_kernel_build(const struct rules *r, struct rules_kernel *k)
{
	memset(k, 0, sizeof(*k));
	k->barrier = k->barrier_fake = k->match = no_hit();
	k->net[0] = k->net[1] = no_hit();
	k->ports = malloc(65536 * sizeof(*k->ports));
	k->cidr_all = calloc(RULES_KERNEL_MAX_CIDR, sizeof(*k->cidr_all));
	k->cidr_res = calloc(RULES_KERNEL_MAX_CIDR, sizeof(*k->cidr_res));
	k->uid = calloc(1024, sizeof(*k->uid));
	k->comm = calloc(RULES_KERNEL_MAX_COMM, sizeof(*k->comm));
	if (!k->ports || !k->cidr_all || !k->cidr_res || !k->uid || !k->comm)
		goto oom;
	for (size_t p = 0; p < 65536; p++)
		k->ports[p] = no_hit();
	for (int i = 0; r && i < r->n; i++) {
		const struct rule *ru = &r->v[i];

		if (ru->c.type == T_UID) {
			struct rules_kernel_uid *big = realloc(k->uid, RULES_KERNEL_MAX_UID *
							       sizeof(*big));
			if (!big)
				goto oom;
			k->uid = big;
		}
		/* Nothing after the first barrier can decide anything. */
		if (add_rule(k, ru, i + 1) < 0) {
			k->barrier = k->barrier_fake = barrier_at(i + 1);
			break;
		}
	}
	cidr_fold(k->cidr_all, k->n_cidr_all);
	cidr_fold(k->cidr_res, k->n_cidr_res);
	return 0;
oom:
	rules_kernel_free(k);
	return -1;
}

void rules_kernel_free(struct rules_kernel *k)
{
	free(k->ports);
	free(k->cidr_all);
	free(k->cidr_res);
	free(k->uid);
	free(k->comm);
	memset(k, 0, sizeof(*k));
}

static int name_matches(const struct cond *c, const char *host, size_t len)
{
	size_t n;

	if (c->type != T_DOMAIN && c->type != T_SUFFIX && c->type != T_KEYWORD)
		return 0;
	n = strlen(c->str);
	switch (c->type) {
	case T_DOMAIN:
		return len == n && memcmp(host, c->str, n) == 0;
	case T_SUFFIX:
		if (len < n || memcmp(host + len - n, c->str, n) != 0)
			return 0;
		return len == n || host[len - n - 1] == '.';
	case T_KEYWORD:
		return strstr(host, c->str) != NULL;
	default:
		return 0;
	}
}

struct sproxy_fp_hit rules_kernel_name(const struct rules *r, const char *name)
{
	char host[256];
	size_t len = strlen(name);

	if (len && name[len - 1] == '.')
		len--;
	if (!r || !len || len >= sizeof(host))
		return no_hit();
	for (size_t i = 0; i < len; i++)
		host[i] = name[i] >= 'A' && name[i] <= 'Z' ? (char)(name[i] + 32) : name[i];
	host[len] = 0;
	for (int i = 0; i < r->n; i++)
		if (name_matches(&r->v[i].c, host, len))
			return hit_of(&r->v[i], i + 1);
	return no_hit();
}
