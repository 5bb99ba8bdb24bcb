/* Deciding a connection: the first rule that matches.
 *
 * Rules of the types that lists grow long in (DOMAIN, DOMAIN-SUFFIX,
 * IP-CIDR, PROCESS-NAME, PROCESS-PATH) sit in one hash table, keyed by
 * their value, holding the smallest rule index with that value.  A
 * decision looks up the host name, each of its parent domains, the address
 * under each prefix length present, the process's names: a few dozen
 * lookups whatever the number of rules.  The smallest index found is the
 * best candidate; the other rules (keywords, ports, cgroups, AND/OR/NOT)
 * are tried one by one, in order, but only those before it. */
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "ruleidx.h"
#include "rules_int.h"

/* The input, normalized once per decision. */
struct mctx {
	const struct rule_input *in;
	char host[256];               /* lower case, no trailing dot */
	size_t hostlen;
	int has_host;
	uint8_t dst[16];              /* IPv4 as ::ffff:a.b.c.d */
	int has_dst;
	uint16_t port;
	const char *exe_base;
	int want_resolve;             /* a FakeIP name whose addresses are not known yet */
};

static int to16(const struct sockaddr *sa, uint8_t out[16], uint16_t *port)
{
	if (!sa)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)sa;

		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &s->sin_addr, 4);
		if (port)
			*port = ntohs(s->sin_port);
		return 1;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)sa;

		memcpy(out, &s->sin6_addr, 16);
		if (port)
			*port = ntohs(s->sin6_port);
		return 1;
	}
	return 0;
}

static void mctx_init(struct mctx *m, const struct rule_input *in)
{
	memset(m, 0, sizeof(*m));
	m->in = in;
	if (in->host) {
		size_t len = strlen(in->host);

		if (len && in->host[len - 1] == '.')
			len--;
		if (len && len < sizeof(m->host)) {
			for (size_t i = 0; i < len; i++) {
				char c = in->host[i];

				m->host[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
			}
			m->hostlen = len;
			m->has_host = 1;
		}
	}
	m->has_dst = to16(in->dst, m->dst, &m->port);
	if (in->exe) {
		const char *slash = strrchr(in->exe, '/');

		m->exe_base = slash ? slash + 1 : in->exe;
	}
	m->want_resolve = in->fakeip && m->has_host && !in->resolved_done;
}

static int prefix_eq(const uint8_t *a, const uint8_t *b, int plen)
{
	int bytes = plen / 8, bits = plen % 8;

	if (memcmp(a, b, (size_t)bytes) != 0)
		return 0;
	return !bits || ((a[bytes] ^ b[bytes]) & (uint8_t)(0xff << (8 - bits))) == 0;
}

/* IP rules match the real destination; on a FakeIP connection they match
 * the name's real addresses instead, never the FakeIP one, and with
 * no-resolve they do not match it at all. */
static int cidr_eval(const struct cond *c, const struct mctx *m)
{
	const struct rule_input *in = m->in;
	uint8_t a[16];

	if (!in->fakeip)
		return m->has_dst && prefix_eq(c->ip, m->dst, c->plen);
	if (c->no_resolve || !in->resolved_done)
		return 0;
	for (int i = 0; i < in->n_resolved; i++)
		if (to16((const struct sockaddr *)&in->resolved[i], a, NULL) &&
		    prefix_eq(c->ip, a, c->plen))
			return 1;
	return 0;
}

static int in_ranges(const struct cond *c, uint32_t v)
{
	for (int i = 0; i < c->n_ranges; i++)
		if (v >= c->ranges[i].lo && v <= c->ranges[i].hi)
			return 1;
	return 0;
}

/* A pattern without '/' matches any one directory of the path
 * ("snap.firefox.*"); one with '/' matches the path or one of its
 * ancestors, '*' not crossing a '/' ("user.slice/user-1000.slice"). */
static int cgroup_match(const char *pat, const char *path)
{
	char buf[4096];
	size_t len;

	while (*path == '/')
		path++;
	len = strlen(path);
	if (len >= sizeof(buf))
		return 0;
	memcpy(buf, path, len + 1);
	if (!strchr(pat, '/')) {
		for (char *p = buf, *slash; *p; p = slash + 1) {
			slash = strchr(p, '/');
			if (slash)
				*slash = 0;
			if (fnmatch(pat, p, 0) == 0)
				return 1;
			if (!slash)
				break;
		}
		return 0;
	}
	while (*pat == '/')
		pat++;
	for (size_t i = 0; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != 0)
			continue;
		char keep = buf[i];

		buf[i] = 0;
		int hit = fnmatch(pat, buf, FNM_PATHNAME) == 0;

		buf[i] = keep;
		if (hit)
			return 1;
	}
	return 0;
}

static int eval(const struct cond *c, const struct mctx *m)
{
	const struct rule_input *in = m->in;
	size_t len;

	switch (c->type) {
	case T_DOMAIN:
		return m->has_host && strcmp(m->host, c->str) == 0;
	case T_SUFFIX:
		len = strlen(c->str);
		if (!m->has_host || m->hostlen < len ||
		    memcmp(m->host + m->hostlen - len, c->str, len) != 0)
			return 0;
		return m->hostlen == len || m->host[m->hostlen - len - 1] == '.';
	case T_KEYWORD:
		return m->has_host && strstr(m->host, c->str);
	case T_CIDR:
		return cidr_eval(c, m);
	case T_PORT:
		return m->has_dst && in_ranges(c, m->port);
	case T_NETWORK:
		return in->network == c->network;
	case T_PNAME:
		return (in->comm && strcmp(in->comm, c->str) == 0) ||
		       (m->exe_base && strcmp(m->exe_base, c->str) == 0);
	case T_PPATH:
		return in->exe && strcmp(in->exe, c->str) == 0;
	case T_UID:
		return in_ranges(c, in->uid);
	case T_CGROUP:
		return in->cgroup && cgroup_match(c->str, in->cgroup);
	case T_AND:
		for (int i = 0; i < c->n_sub; i++)
			if (!eval(&c->sub[i], m))
				return 0;
		return 1;
	case T_OR:
		for (int i = 0; i < c->n_sub; i++)
			if (eval(&c->sub[i], m))
				return 1;
		return 0;
	case T_NOT:
		return !eval(&c->sub[0], m);
	case T_MATCH:
		return 1;
	}
	return 0;
}

static void result(const struct rules *r, int idx, struct rule_result *out)
{
	if (idx == RULEIDX_NONE || idx < 1) {
		out->rule = 0;
		out->action = RULE_DIRECT;
		out->upstream = -1;
		out->target = "DIRECT";
		return;
	}
	out->rule = idx;
	out->action = r->v[idx - 1].action;
	out->upstream = r->v[idx - 1].upstream;
	out->target = r->v[idx - 1].target;
}

int rules_match_linear(const struct rules *r, const struct rule_input *in,
		       struct rule_result *out)
{
	struct mctx m;

	mctx_init(&m, in);
	for (int i = 0; i < r->n; i++) {
		if (m.want_resolve && r->v[i].c.needs_addr) {
			result(r, i + 1, out);
			return RULES_RESOLVE;
		}
		if (eval(&r->v[i].c, &m)) {
			result(r, i + 1, out);
			return RULES_DECIDED;
		}
	}
	result(r, 0, out);
	return RULES_DECIDED;
}

/* The prefix length, then the address masked to it. */
static void cidr_key(uint8_t key[17], int plen, const uint8_t ip[16])
{
	key[0] = (uint8_t)plen;
	for (int i = 0; i < 16; i++) {
		int keep = plen - i * 8;

		key[1 + i] = ip[i] & (keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep)));
	}
}

static int get_str(const struct rules *r, int kind, const char *s, size_t len)
{
	return ruleidx_get(r->idx, kind, s, len);
}

static int min_i(int a, int b)
{
	return a < b ? a : b;
}

/* The smallest index among the hashed rules that match. */
static int lookup(const struct rules *r, const struct mctx *m)
{
	const struct rule_input *in = m->in;
	int best = RULEIDX_NONE;
	uint8_t key[17], a[16];

	if (m->has_host) {
		best = min_i(best, get_str(r, K_DOMAIN, m->host, m->hostlen));
		for (size_t i = 0; i < m->hostlen; i++)
			if (i == 0 || m->host[i - 1] == '.')
				best = min_i(best, get_str(r, K_SUFFIX, m->host + i,
							   m->hostlen - i));
	}
	if (!in->fakeip && m->has_dst) {
		for (int nr = 0; nr < 2; nr++)
			for (int i = 0; i < r->n_plen[nr]; i++) {
				cidr_key(key, r->plen[nr][i], m->dst);
				best = min_i(best, ruleidx_get(r->idx, nr ? K_CIDR_NR : K_CIDR,
								key, sizeof(key)));
			}
	} else if (in->fakeip && in->resolved_done) {
		for (int j = 0; j < in->n_resolved; j++) {
			if (!to16((const struct sockaddr *)&in->resolved[j], a, NULL))
				continue;
			for (int i = 0; i < r->n_plen[0]; i++) {
				cidr_key(key, r->plen[0][i], a);
				best = min_i(best, ruleidx_get(r->idx, K_CIDR, key, sizeof(key)));
			}
		}
	}
	if (in->comm)
		best = min_i(best, get_str(r, K_PNAME, in->comm, strlen(in->comm)));
	if (m->exe_base)
		best = min_i(best, get_str(r, K_PNAME, m->exe_base, strlen(m->exe_base)));
	if (in->exe)
		best = min_i(best, get_str(r, K_PPATH, in->exe, strlen(in->exe)));
	return best;
}

int rules_match(const struct rules *r, const struct rule_input *in,
		struct rule_result *out)
{
	struct mctx m;
	int best;

	mctx_init(&m, in);
	best = lookup(r, &m);
	for (int j = 0; j < r->n_linear && r->linear[j] + 1 < best; j++) {
		const struct cond *c = &r->v[r->linear[j]].c;

		/* Those wait for the name's addresses: see first_resolve. */
		if (m.want_resolve && c->needs_addr)
			continue;
		if (eval(c, &m)) {
			best = r->linear[j] + 1;
			break;
		}
	}
	if (m.want_resolve && r->first_resolve < best) {
		result(r, r->first_resolve, out);
		return RULES_RESOLVE;
	}
	result(r, best, out);
	return RULES_DECIDED;
}

static unsigned cond_needs(const struct cond *c)
{
	unsigned n = 0;

	if (c->type == T_PNAME || c->type == T_PPATH)
		n |= RULES_NEED_EXE;
	if (c->type == T_CGROUP)
		n |= RULES_NEED_CGROUP;
	if (c->type == T_DOMAIN || c->type == T_SUFFIX || c->type == T_KEYWORD)
		n |= RULES_NEED_HOST;
	for (int i = 0; i < c->n_sub; i++)
		n |= cond_needs(&c->sub[i]);
	return n;
}

static int put_str(struct rules *r, int kind, const char *s, int idx)
{
	return ruleidx_put(r->idx, kind, s, strlen(s), idx);
}

static int index_one(struct rules *r, const struct cond *c, int idx)
{
	uint8_t key[17];
	int nr = c->no_resolve;

	switch (c->type) {
	case T_DOMAIN: return put_str(r, K_DOMAIN, c->str, idx);
	case T_SUFFIX: return put_str(r, K_SUFFIX, c->str, idx);
	case T_PNAME: return put_str(r, K_PNAME, c->str, idx);
	case T_PPATH: return put_str(r, K_PPATH, c->str, idx);
	case T_CIDR:
		r->plen[nr][c->plen] = 1;     /* a flag here; a list once built */
		cidr_key(key, c->plen, c->ip);
		return ruleidx_put(r->idx, nr ? K_CIDR_NR : K_CIDR, key, sizeof(key), idx);
	default:
		r->linear[r->n_linear++] = idx - 1;
		return 0;
	}
}

int rules_build_index(struct rules *r)
{
	r->idx = ruleidx_new();
	r->linear = malloc(((size_t)r->n + 1) * sizeof(*r->linear));
	if (!r->idx || !r->linear)
		return -1;
	r->first_resolve = RULEIDX_NONE;
	for (int i = 0; i < r->n; i++) {
		const struct cond *c = &r->v[i].c;

		if (index_one(r, c, i + 1) < 0)
			return -1;
		if (c->needs_addr && r->first_resolve == RULEIDX_NONE)
			r->first_resolve = i + 1;
		r->needs |= cond_needs(c);
	}
	/* The prefix lengths present, as lists for the lookups. */
	for (int nr = 0; nr < 2; nr++) {
		uint8_t seen[129];

		memcpy(seen, r->plen[nr], sizeof(seen));
		r->n_plen[nr] = 0;
		for (int p = 128; p >= 0; p--)
			if (seen[p])
				r->plen[nr][r->n_plen[nr]++] = (uint8_t)p;
	}
	return 0;
}
