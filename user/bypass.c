#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "bypass.h"

/* The key with every bit past its prefix cleared. */
static struct sproxy_bypass_key masked(const struct sproxy_bypass_key *k)
{
	struct sproxy_bypass_key m;
	uint32_t bits = k->prefixlen > 128 ? 128 : k->prefixlen;

	memset(&m, 0, sizeof(m));
	m.prefixlen = bits;
	memcpy(m.ip, k->ip, bits / 8);
	if (bits % 8)
		m.ip[bits / 8] = k->ip[bits / 8] & (uint8_t)(0xff << (8 - bits % 8));
	return m;
}

/* Whether prefix a contains prefix b (both masked). */
static int contains(const struct sproxy_bypass_key *a, const struct sproxy_bypass_key *b)
{
	struct sproxy_bypass_key cut = *b;

	if (a->prefixlen > b->prefixlen)
		return 0;
	cut.prefixlen = a->prefixlen;
	cut = masked(&cut);
	return memcmp(cut.ip, a->ip, sizeof(a->ip)) == 0;
}

static const char *prefix_str(const struct sproxy_bypass_key *k, char *buf, size_t len)
{
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };
	char ip[INET6_ADDRSTRLEN];

	if (k->prefixlen >= 96 && memcmp(k->ip, v4mapped, 12) == 0) {
		inet_ntop(AF_INET, k->ip + 12, ip, sizeof(ip));
		snprintf(buf, len, "%s/%u", ip, k->prefixlen - 96);
	} else {
		inet_ntop(AF_INET6, k->ip, ip, sizeof(ip));
		snprintf(buf, len, "%s/%u", ip, k->prefixlen);
	}
	return buf;
}

/* Adds port to the rule's set; 0 (any) empties the set for good. */
static int add_port(struct bypass_rule *r, int *any, uint16_t port)
{
	int i;

	if (*any)
		return 0;
	if (port == 0) {
		*any = 1;
		memset(&r->val, 0, sizeof(r->val));
		return 0;
	}
	for (i = 0; i < SPROXY_BYPASS_PORTS && r->val.ports[i]; i++)
		if (r->val.ports[i] == port)
			return 0;
	if (i == SPROXY_BYPASS_PORTS)
		return -1;
	r->val.ports[i] = port;
	return 0;
}

int bypass_rules(const struct bypass_entry *in, size_t n, struct bypass_rule *out,
		 size_t max, char *err, size_t errlen)
{
	size_t nout = 0, i, j;
	char p[INET6_ADDRSTRLEN + 8];

	for (i = 0; i < n; i++) {
		struct sproxy_bypass_key k = masked(&in[i].key);
		int any = 0;

		for (j = 0; j < nout; j++)
			if (memcmp(&out[j].key, &k, sizeof(k)) == 0)
				break;
		if (j < nout)
			continue;     /* this prefix has its rule already */
		if (nout == max) {
			snprintf(err, errlen, "more than %zu --bypass prefixes", max);
			return -1;
		}
		memset(&out[nout], 0, sizeof(out[nout]));
		out[nout].key = k;
		for (j = 0; j < n; j++) {
			struct sproxy_bypass_key outer = masked(&in[j].key);

			if (contains(&outer, &k) &&
			    add_port(&out[nout], &any, in[j].port) < 0) {
				snprintf(err, errlen, "more than %d --bypass ports apply "
					 "to %s (with the prefixes that contain it)",
					 SPROXY_BYPASS_PORTS, prefix_str(&k, p, sizeof(p)));
				return -1;
			}
		}
		nout++;
	}
	return (int)nout;
}
