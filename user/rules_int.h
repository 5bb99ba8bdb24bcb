/* The rule set's insides, shared by rules.c (parsing) and rules_match.c
 * (lookup tables and matching).  Nothing else includes this. */
#ifndef SPROXY_RULES_INT_H
#define SPROXY_RULES_INT_H
#include <stdint.h>

#include "rules.h"

struct ruleidx;

enum rule_type {
	T_DOMAIN, T_SUFFIX, T_KEYWORD, T_CIDR, T_PORT, T_NETWORK, T_PNAME,
	T_PPATH, T_UID, T_CGROUP, T_AND, T_OR, T_NOT, T_MATCH,
};

struct range { uint32_t lo, hi; };

/* One condition: a rule's, or one inside AND/OR/NOT. */
struct cond {
	enum rule_type type;
	int no_resolve;               /* IP rules: never look up a FakeIP's name */
	int needs_addr;               /* holds an IP rule that may need a lookup */
	char *str;                    /* domain (lower case), name, path, glob */
	uint8_t ip[16];               /* IPv4 as ::ffff:a.b.c.d, masked */
	int plen;                     /* of ip, in IPv6 bits (IPv4: 96 + n) */
	int network;                  /* RULE_NET_* */
	struct range *ranges;         /* DST-PORT, UID */
	int n_ranges;
	struct cond *sub;             /* AND, OR, NOT */
	int n_sub;
};

struct rule {
	struct cond c;
	char *line;                   /* as written, trimmed */
	char *origin;                 /* where it was written */
	char *target_name;
	enum rule_action action;
	int upstream;
	const char *target;
};

struct rules {
	int refs;
	int compiled;
	struct rule *v;
	int n, cap;
	char **names;                 /* the upstream names rules_compile took */
	int n_names;
	/* Built by rules_compile. */
	struct ruleidx *idx;
	uint8_t plen[2][129];         /* IP prefix lengths present: [no_resolve][i] */
	int n_plen[2];
	int *linear;                  /* rules decided one by one, in order */
	int n_linear;
	int first_resolve;            /* 1-based; RULEIDX_NONE when no rule needs it */
	unsigned needs;
};

/* Index keys: a kind byte, then the value. */
enum { K_DOMAIN = 'D', K_SUFFIX = 'S', K_PNAME = 'P', K_PPATH = 'X',
       K_CIDR = 'C', K_CIDR_NR = 'N' };

int rules_build_index(struct rules *r);

#endif
