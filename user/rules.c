/* The rules' lines: parsing, targets, the set's life.  Matching is in
 * rules_match.c. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ruleidx.h"
#include "rules_int.h"

#define MAX_DEPTH 8         /* AND/OR/NOT inside one another */
#define MAX_SUB 64          /* conditions of one AND/OR */
#define MAX_RANGES 32       /* DST-PORT 80/443/8000-8080 */

static const struct {
	const char *name;
	enum rule_type type;
} types[] = {
	{ "DOMAIN", T_DOMAIN }, { "DOMAIN-SUFFIX", T_SUFFIX },
	{ "DOMAIN-KEYWORD", T_KEYWORD }, { "IP-CIDR", T_CIDR }, { "IP-CIDR6", T_CIDR },
	{ "DST-PORT", T_PORT }, { "NETWORK", T_NETWORK }, { "PROCESS-NAME", T_PNAME },
	{ "PROCESS-PATH", T_PPATH }, { "UID", T_UID }, { "CGROUP", T_CGROUP },
	{ "AND", T_AND }, { "OR", T_OR }, { "NOT", T_NOT }, { "MATCH", T_MATCH },
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = 0;
	return s;
}

static int is_logic(enum rule_type t)
{
	return t == T_AND || t == T_OR || t == T_NOT;
}

static int find_type(const char *name, enum rule_type *t)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcasecmp(name, types[i].name) == 0) {
			*t = types[i].type;
			return 0;
		}
	return -1;
}

/* Letters, digits, '-' and '_' in labels of 1 to 63 bytes; lower-cased
 * in place.  A trailing dot is dropped (a name written fully qualified). */
static int domain_ok(char *s)
{
	size_t len = strlen(s), label = 0;

	if (len && s[len - 1] == '.')
		s[--len] = 0;
	if (!len || len > 253)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (!label)
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return 0;
		s[i] = (char)tolower(c);
		if (++label > 63)
			return 0;
	}
	return label > 0;
}

static int cidr_value(struct cond *c, const char *v, char *err, size_t errlen)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	struct in_addr a4;
	long bits;
	int v4;

	if (strlen(v) >= sizeof(buf))
		goto bad;
	strcpy(buf, v);
	slash = strchr(buf, '/');
	if (!slash)
		goto bad;
	*slash++ = 0;
	if (!*slash || strlen(slash) > 3 || strspn(slash, "0123456789") != strlen(slash))
		goto bad;
	bits = strtol(slash, &end, 10);
	v4 = inet_pton(AF_INET, buf, &a4) == 1;
	if (v4) {
		if (bits > 32)
			goto bad;
		memset(c->ip, 0, 10);
		c->ip[10] = c->ip[11] = 0xff;
		memcpy(c->ip + 12, &a4, 4);
		c->plen = 96 + (int)bits;
	} else if (inet_pton(AF_INET6, buf, c->ip) == 1) {
		if (bits > 128)
			goto bad;
		c->plen = (int)bits;
	} else {
		goto bad;
	}
	/* Host bits are dropped: 192.0.2.1/24 is 192.0.2.0/24. */
	for (int i = 0; i < 16; i++) {
		int keep = c->plen - i * 8;

		c->ip[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
	}
	return 0;
bad:
	return fail(err, errlen, "'%s' is not an address/prefix (e.g. 192.0.2.0/24, "
		    "2001:db8::/32)", v);
}

/* "80", "8000-8080", "80/443/8000-8080". */
static int ranges_value(struct cond *c, const char *v, uint32_t max, const char *what,
			char *err, size_t errlen)
{
	const char *p = v;

	c->ranges = calloc(MAX_RANGES, sizeof(*c->ranges));
	if (!c->ranges)
		return fail(err, errlen, "out of memory");
	for (;;) {
		unsigned long lo, hi;
		char *end;

		if (c->n_ranges == MAX_RANGES)
			return fail(err, errlen, "at most %d %ss in one rule", MAX_RANGES, what);
		if (!isdigit((unsigned char)*p))
			goto bad;
		lo = hi = strtoul(p, &end, 10);
		if (*end == '-') {
			if (!isdigit((unsigned char)end[1]))
				goto bad;
			hi = strtoul(end + 1, &end, 10);
		}
		if (lo > max || hi > max || lo > hi || end - p > 24)
			goto bad;
		c->ranges[c->n_ranges].lo = (uint32_t)lo;
		c->ranges[c->n_ranges++].hi = (uint32_t)hi;
		if (!*end)
			return 0;
		if (*end != '/')
			goto bad;
		p = end + 1;
	}
bad:
	return fail(err, errlen, "'%s' is not a %s, a range A-B or a list of them "
		    "joined by '/' (%s at most %lu)", v, what, what, (unsigned long)max);
}

/* A glob on cgroup paths: no blanks, no empty pattern. */
static int glob_ok(const char *v)
{
	if (!*v)
		return 0;
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= ' ')
			return 0;
	return 1;
}

static int leaf_value(struct cond *c, char *v, char *err, size_t errlen)
{
	switch (c->type) {
	case T_DOMAIN:
	case T_SUFFIX:
		/* ".example.com" and "+.example.com" say the same as "example.com". */
		if (c->type == T_SUFFIX && strncmp(v, "+.", 2) == 0)
			v += 2;
		else if (c->type == T_SUFFIX && *v == '.')
			v++;
		if (!domain_ok(v))
			return fail(err, errlen, "'%s' is not a domain name", v);
		break;
	case T_KEYWORD:
		if (!*v || strpbrk(v, " \t/"))
			return fail(err, errlen, "'%s' is not a keyword of a domain name", v);
		for (char *p = v; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		break;
	case T_CIDR:
		return cidr_value(c, v, err, errlen);
	case T_PORT:
		return ranges_value(c, v, 65535, "port", err, errlen);
	case T_UID:
		return ranges_value(c, v, 4294967294u, "uid", err, errlen);
	case T_NETWORK:
		if (strcasecmp(v, "tcp") == 0)
			c->network = RULE_NET_TCP;
		else if (strcasecmp(v, "udp") == 0)
			c->network = RULE_NET_UDP;
		else
			return fail(err, errlen, "NETWORK is tcp or udp, not '%s'", v);
		return 0;
	case T_PNAME:
		if (!*v || strchr(v, '/') || strlen(v) > 255)
			return fail(err, errlen, "'%s' is not a process name (an executable's "
				    "file name, without '/')", v);
		break;
	case T_PPATH:
		if (*v != '/' || strlen(v) >= 4096)
			return fail(err, errlen, "'%s' is not an absolute path", v);
		break;
	case T_CGROUP:
		if (!glob_ok(v))
			return fail(err, errlen, "'%s' is not a cgroup pattern", v);
		break;
	default:
		return fail(err, errlen, "internal: not a leaf");
	}
	c->str = strdup(v);
	return c->str ? 0 : fail(err, errlen, "out of memory");
}

/* s[0] is '('; the index of its ')', or -1. */
static long closing(const char *s)
{
	long depth = 0;

	for (long i = 0; s[i]; i++) {
		if (s[i] == '(')
			depth++;
		else if (s[i] == ')' && --depth == 0)
			return i;
	}
	return -1;
}

static int parse_cond(struct cond *c, char *s, int depth, char *err, size_t errlen);

/* "(A),(B),(C)": the conditions of AND/OR/NOT, each parsed by parse_cond. */
static int parse_list(struct cond *c, char *s, int depth, char *err, size_t errlen)
{
	s = trim(s);
	c->sub = calloc(MAX_SUB, sizeof(*c->sub));
	if (!c->sub)
		return fail(err, errlen, "out of memory");
	while (*s) {
		long end;

		if (*s != '(')
			return fail(err, errlen, "a condition is written (TYPE,VALUE), "
				    "not '%.40s'", s);
		end = closing(s);
		if (end < 0)
			return fail(err, errlen, "a '(' without its ')'");
		if (c->n_sub == MAX_SUB)
			return fail(err, errlen, "at most %d conditions in one AND/OR", MAX_SUB);
		s[end] = 0;
		if (parse_cond(&c->sub[c->n_sub++], s + 1, depth + 1, err, errlen) < 0)
			return -1;
		c->needs_addr |= c->sub[c->n_sub - 1].needs_addr;
		s = trim(s + end + 1);
		if (*s == ',')
			s = trim(s + 1);
		else if (*s)
			return fail(err, errlen, "',' expected between conditions, not '%.40s'", s);
	}
	if (!c->n_sub)
		return fail(err, errlen, "AND, OR and NOT need a condition");
	if (c->type == T_NOT && c->n_sub != 1)
		return fail(err, errlen, "NOT takes one condition, not %d", c->n_sub);
	return 0;
}

/* Splits "TYPE,REST": the type, and REST (NULL without a comma). */
static int split_type(struct cond *c, char *s, char **rest, char *err, size_t errlen)
{
	char *comma = strchr(s, ',');

	if (comma)
		*comma = 0;
	*rest = comma ? trim(comma + 1) : NULL;
	s = trim(s);
	if (find_type(s, &c->type) < 0)
		return fail(err, errlen, "'%.40s' is not a rule type (DOMAIN, DOMAIN-SUFFIX, "
			    "DOMAIN-KEYWORD, IP-CIDR, IP-CIDR6, DST-PORT, NETWORK, PROCESS-NAME, "
			    "PROCESS-PATH, UID, CGROUP, AND, OR, NOT, MATCH)", s);
	return 0;
}

static int no_resolve_flag(struct cond *c, char *flag, char *err, size_t errlen)
{
	if (c->type != T_CIDR)
		return fail(err, errlen, "'%.40s' after the value: only IP-CIDR and IP-CIDR6 "
			    "take a flag (no-resolve)", flag);
	if (strcasecmp(flag, "no-resolve") != 0)
		return fail(err, errlen, "'%.40s' is not a flag (no-resolve)", flag);
	c->no_resolve = 1;
	return 0;
}

/* A condition inside AND/OR/NOT: "TYPE,VALUE[,no-resolve]" or
 * "AND,(...)"; no target. */
static int parse_cond(struct cond *c, char *s, int depth, char *err, size_t errlen)
{
	char *rest, *flag;

	if (depth > MAX_DEPTH)
		return fail(err, errlen, "AND/OR/NOT nested deeper than %d", MAX_DEPTH);
	if (split_type(c, s, &rest, err, errlen) < 0)
		return -1;
	if (c->type == T_MATCH)
		return fail(err, errlen, "MATCH is not a condition");
	if (!rest || !*rest)
		return fail(err, errlen, "a condition is TYPE,VALUE");
	if (is_logic(c->type)) {
		long end = *rest == '(' ? closing(rest) : -1;

		if (end < 0 || *trim(rest + end + 1))
			return fail(err, errlen, "AND, OR and NOT are written "
				    "AND,((TYPE,VALUE),(TYPE,VALUE))");
		rest[end] = 0;
		return parse_list(c, rest + 1, depth, err, errlen);
	}
	flag = strchr(rest, ',');
	if (flag) {
		*flag = 0;
		if (no_resolve_flag(c, trim(flag + 1), err, errlen) < 0)
			return -1;
	}
	if (leaf_value(c, trim(rest), err, errlen) < 0)
		return -1;
	c->needs_addr = c->type == T_CIDR && !c->no_resolve;
	return 0;
}

/* A whole line: "TYPE,VALUE,TARGET[,no-resolve]", "MATCH,TARGET" or
 * "AND,(...),TARGET". */
static int parse_rule(struct rule *r, char *s, char *err, size_t errlen)
{
	char *rest, *target, *flag = NULL;
	struct cond *c = &r->c;

	if (split_type(c, s, &rest, err, errlen) < 0)
		return -1;
	if (!rest || !*rest)
		return fail(err, errlen, c->type == T_MATCH ? "MATCH needs a target: MATCH,TARGET"
			    : "a rule is TYPE,VALUE,TARGET");
	if (c->type == T_MATCH) {
		target = rest;
	} else if (is_logic(c->type)) {
		long end = *rest == '(' ? closing(rest) : -1;
		char *after;

		if (end < 0)
			return fail(err, errlen, "AND, OR and NOT are written "
				    "AND,((TYPE,VALUE),(TYPE,VALUE)),TARGET");
		rest[end] = 0;
		after = trim(rest + end + 1);
		if (*after != ',')
			return fail(err, errlen, "a target after the conditions expected");
		target = trim(after + 1);
		if (parse_list(c, rest + 1, 1, err, errlen) < 0)
			return -1;
	} else {
		char *value = rest;

		target = strchr(rest, ',');
		if (!target)
			return fail(err, errlen, "a rule is TYPE,VALUE,TARGET; no target in '%.60s'",
				    rest);
		*target++ = 0;
		flag = strchr(target, ',');
		if (flag) {
			*flag++ = 0;
			if (no_resolve_flag(c, trim(flag), err, errlen) < 0)
				return -1;
		}
		if (leaf_value(c, trim(value), err, errlen) < 0)
			return -1;
		c->needs_addr = c->type == T_CIDR && !c->no_resolve;
		target = trim(target);
	}
	if (!*target || strpbrk(target, ",() \t"))
		return fail(err, errlen, "'%.40s' is not a target (DIRECT, REJECT or an "
			    "upstream's name)", target);
	r->target_name = strdup(target);
	return r->target_name ? 0 : fail(err, errlen, "out of memory");
}

static void cond_free(struct cond *c)
{
	for (int i = 0; i < c->n_sub; i++)
		cond_free(&c->sub[i]);
	free(c->sub);
	free(c->str);
	free(c->ranges);
}

struct rules *rules_new(void)
{
	struct rules *r = calloc(1, sizeof(*r));

	if (r)
		r->refs = 1;
	return r;
}

int rules_add(struct rules *r, const char *line, const char *origin, char *err,
	      size_t errlen)
{
	char buf[RULES_MAX_LINE], *s;
	struct rule n = { 0 };

	if (r->compiled)
		return fail(err, errlen, "internal: rule added after compiling");
	if (r->n >= RULES_MAX)
		return fail(err, errlen, "more than %d rules", RULES_MAX);
	if (strlen(line) >= sizeof(buf))
		return fail(err, errlen, "a rule longer than %d bytes", RULES_MAX_LINE - 1);
	strcpy(buf, line);
	s = trim(buf);
	n.line = strdup(s);
	n.origin = strdup(origin ? origin : "");
	if (!n.line || !n.origin) {
		fail(err, errlen, "out of memory");
		goto bad;
	}
	if (parse_rule(&n, s, err, errlen) < 0)
		goto bad;
	if (r->n == r->cap) {
		int cap = r->cap ? r->cap * 2 : 16;
		struct rule *v = realloc(r->v, (size_t)cap * sizeof(*v));

		if (!v) {
			fail(err, errlen, "out of memory");
			goto bad;
		}
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = n;
	return 0;
bad:
	cond_free(&n.c);
	free(n.line);
	free(n.origin);
	free(n.target_name);
	return -1;
}

static int resolve_target(struct rules *r, struct rule *ru, char *err, size_t errlen)
{
	char known[256] = "DIRECT, REJECT";
	size_t len;

	ru->upstream = -1;
	ru->target = ru->target_name;
	if (strcmp(ru->target_name, "DIRECT") == 0) {
		ru->action = RULE_DIRECT;
		return 0;
	}
	if (strcmp(ru->target_name, "REJECT") == 0) {
		ru->action = RULE_REJECT;
		return 0;
	}
	for (int i = 0; i < r->n_names; i++)
		if (strcmp(ru->target_name, r->names[i]) == 0) {
			ru->action = RULE_UPSTREAM;
			ru->upstream = i;
			ru->target = r->names[i];
			return 0;
		}
	for (int i = 0; i < r->n_names && (len = strlen(known)) < sizeof(known) - 1; i++)
		snprintf(known + len, sizeof(known) - len, ", %s", r->names[i]);
	return fail(err, errlen, "%s%srule '%.80s': unknown target '%s' (known: %s)",
		    ru->origin, *ru->origin ? ": " : "", ru->line, ru->target_name, known);
}

int rules_compile(struct rules *r, const char *const *names, int n, char *err,
		  size_t errlen)
{
	if (r->compiled)
		return fail(err, errlen, "internal: rules compiled twice");
	r->names = calloc((size_t)n + 1, sizeof(*r->names));
	if (!r->names)
		return fail(err, errlen, "out of memory");
	for (int i = 0; i < n; i++) {
		r->names[i] = strdup(names[i]);
		if (!r->names[i])
			return fail(err, errlen, "out of memory");
		r->n_names = i + 1;
	}
	for (int i = 0; i < r->n; i++)
		if (resolve_target(r, &r->v[i], err, errlen) < 0)
			return -1;
	if (rules_build_index(r) < 0)
		return fail(err, errlen, "out of memory for %d rules", r->n);
	r->compiled = 1;
	return 0;
}

int rules_count(const struct rules *r)
{
	return r->n;
}

unsigned rules_needs(const struct rules *r)
{
	return r->needs;
}

const char *rules_line(const struct rules *r, int idx)
{
	return idx >= 1 && idx <= r->n ? r->v[idx - 1].line : NULL;
}

struct rules *rules_ref(struct rules *r)
{
	if (r)
		r->refs++;
	return r;
}

void rules_unref(struct rules *r)
{
	if (!r || --r->refs > 0)
		return;
	for (int i = 0; i < r->n; i++) {
		cond_free(&r->v[i].c);
		free(r->v[i].line);
		free(r->v[i].origin);
		free(r->v[i].target_name);
	}
	for (int i = 0; i < r->n_names; i++)
		free(r->names[i]);
	free(r->names);
	free(r->v);
	free(r->linear);
	ruleidx_free(r->idx);
	free(r);
}
